"""Mapping the output columns of a pipeline's preprocessing back to the original columns.

Pipelines: when the last step is a tree/linear model and the preprocessing has
``get_feature_names_out``, the final estimator is explained on the transformed data; SHAP
values of columns produced from one original column (one-hot columns; one-to-one scalers and
imputers; ColumnTransformer passthrough) are summed back to that column
(``feature_space="original"``). Additivity is unaffected by the summing and is checked
against the whole pipeline. If the mapping is not possible the values stay per transformed
column (``feature_space="transformed"``), and any other pipeline is explained as a whole by
a PermutationExplainer over the original columns.
"""

from __future__ import annotations

import numpy as np


class Unmappable(Exception):
    """A pipeline output column that cannot be traced to one original column (the message says where)."""

    pass


def _map_outputs(trans, in_names: list[str]) -> np.ndarray:
    """For each output column of fitted ``trans``, the index of the input column it comes from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if trans is None or trans == "passthrough":
        return np.arange(len(in_names))
    if isinstance(trans, Pipeline):
        m = np.arange(len(in_names))
        names = list(in_names)
        for _, step in trans.steps:
            if step is None or step == "passthrough":
                continue
            sm = _map_outputs(step, names)
            m = m[sm]
            names = [str(c) for c in step.get_feature_names_out(names)]
        return m
    if isinstance(trans, ColumnTransformer):
        n_out = sum(s.stop - s.start for s in trans.output_indices_.values())
        result = np.full(n_out, -1)
        in_idx_map = getattr(trans, "_transformer_to_input_indices", None)
        for name, sub, cols in trans.transformers_:
            out_sl = trans.output_indices_.get(name, slice(0, 0))
            if out_sl.stop - out_sl.start == 0 or sub == "drop":
                continue
            if in_idx_map is not None and name in in_idx_map:
                sub_in = np.asarray(in_idx_map[name], dtype=int)
            else:
                sub_in = _resolve_cols(cols, in_names)
            sm = _map_outputs(sub, [in_names[i] for i in sub_in])
            if len(sm) != out_sl.stop - out_sl.start:
                raise Unmappable(name)
            result[out_sl] = sub_in[sm]
        if (result < 0).any():
            raise Unmappable("unmapped output")
        return result
    if isinstance(trans, OneHotEncoder):
        counts = getattr(trans, "_n_features_outs", None)
        if counts is None or len(counts) != len(in_names):
            raise Unmappable("OneHotEncoder")
        return np.repeat(np.arange(len(in_names)), counts)
    if hasattr(trans, "get_feature_names_out"):
        out = [str(c) for c in trans.get_feature_names_out(in_names)]
        if out == list(in_names):  # one-to-one (scalers, imputers without indicators, ...)
            return np.arange(len(in_names))
    raise Unmappable(type(trans).__name__)


def _resolve_cols(cols, in_names: list[str]) -> np.ndarray:
    if isinstance(cols, slice):
        return np.arange(len(in_names))[cols]
    if isinstance(cols, str):
        cols = [cols]
    cols = list(cols)
    if cols and isinstance(cols[0], (bool, np.bool_)):
        return np.flatnonzero(cols)
    if cols and isinstance(cols[0], str):
        return np.array([in_names.index(c) for c in cols], dtype=int)
    return np.asarray(cols, dtype=int)


def to_original(values: np.ndarray, pre, in_names: list[str], n_out: int):
    """(values summed per original column, mapping) for SHAP values of ``pre``'s outputs.

    ``values`` has one column per output of fitted ``pre`` (``n_out`` of them); raises
    :class:`Unmappable` when an output cannot be traced to one original column.
    """
    mapping = _map_outputs(pre, in_names)
    if len(mapping) != n_out:
        raise Unmappable("length")
    G = np.zeros((n_out, len(in_names)))
    G[np.arange(n_out), mapping] = 1.0
    values = (np.einsum("nfk,fg->ngk", values, G) if values.ndim == 3
              else values @ G)
    return values, mapping


def to_dense(a) -> np.ndarray:
    """``a`` (a sparse matrix, a DataFrame or an array) as a dense float64 numpy array."""
    if hasattr(a, "toarray"):
        a = a.toarray()
    if hasattr(a, "to_numpy"):
        a = a.to_numpy()
    return np.asarray(a, dtype=np.float64)
