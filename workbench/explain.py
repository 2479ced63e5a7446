"""SHAP explanations of a fitted scikit-learn model, computed once, ready to be stored.

What and why: a reviewer must see *why* a model decides as it does before it is approved.
:func:`explain_model` computes per-row SHAP values, base values, global importance
(mean ``|SHAP|``), permutation importance and partial dependence for the top features, and
checks additivity (base value + sum of a row's SHAP values = the model output for that row).
The result, an :class:`Explanation`, is pure data: ``to_frame()`` gives the per-row values
keyed by row id (for a Parquet artifact) and ``summary()`` a JSON-safe dict (for the store).
This module does no storage and downloads nothing.

Explainer choice (never KernelExplainer: far too slow, shap#66):

* ``TreeExplainer`` for scikit-learn tree models (``RandomForest*``, ``ExtraTrees*``,
  ``GradientBoosting*``, ``HistGradientBoosting*``, ``DecisionTree*``).
* ``LinearExplainer`` for linear models (``LogisticRegression``, ``LinearRegression``,
  ``Ridge``, ``Lasso``, ``ElasticNet``, ``SGD*``), interventional (background = a sample of X).
* ``PermutationExplainer`` otherwise, model-agnostic, with a background of at most
  ``background_size`` rows sampled with ``seed``; also the fall-back when shap cannot read a
  tree/linear model (e.g. multiclass ``GradientBoostingClassifier``); the ``note`` says so.

What is explained (the ``output`` field) and what additivity is checked against:

==========================================  ==============  ================================
model                                       ``output``      additivity compared with
==========================================  ==============  ================================
regressor (any explainer)                   "prediction"    ``predict``
RandomForest/ExtraTrees/DecisionTree clf.   "probability"   ``predict_proba`` (exact: their
                                                            tree output *is* a probability)
GradientBoostingClassifier, binary          "probability"   ``predict_proba[:, 1]``
                                                            (``model_output="probability"``,
                                                            interventional, background)
HistGradientBoostingClassifier, binary      "log_odds"      ``decision_function`` (shap's
                                                            probability output does not add
                                                            up for HGB: 0.03 off, measured)
HistGradientBoosting, multiclass            "raw"           ``decision_function`` (margins)
linear classifier, binary / multiclass      "log_odds"/raw  ``decision_function``
PermutationExplainer, classifier            "probability"   ``predict_proba``
==========================================  ==============  ================================

``output="log_odds"`` (or ``"raw"``) forces the margin for tree classifiers, which is much
faster for ``GradientBoostingClassifier`` (tree-path-dependent instead of interventional).
Binary classifiers explain the positive class (``classes_[1]``): values are
``rows x features``; multiclass: ``rows x features x classes``.

Additivity tolerance, on ``max |base + sum(shap) - output|``, scaled by
``max(1, max |output|)``: 1e-6 for TreeExplainer and LinearExplainer (exact algorithms; the
error seen is float rounding, ~1e-8 for interventional probability), 1e-4 for
PermutationExplainer (exact by telescoping over each permutation, but it sums many model
calls). The check's result is part of the explanation, pass or fail; it never raises.

Pipelines: when the last step is a tree/linear model and the preprocessing has
``get_feature_names_out``, the final estimator is explained on the transformed data; SHAP
values of columns produced from one original column (one-hot columns; one-to-one scalers and
imputers; ColumnTransformer passthrough) are summed back to that column
(``feature_space="original"``). Additivity is unaffected by the summing and is checked
against the whole pipeline. If the mapping is not possible the values stay per transformed
column (``feature_space="transformed"``), and any other pipeline is explained as a whole by
a PermutationExplainer over the original columns.

>>> import numpy as np, polars as pl
>>> from sklearn.linear_model import LinearRegression
>>> X = pl.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
>>> model = LinearRegression().fit(X.to_pandas(), [1.0, 3.0, 6.0, 7.0])
>>> ex = explain_model(model, X)
>>> ex.explainer, ex.output, ex.values.shape, ex.additivity["passed"]
('LinearExplainer', 'prediction', (4, 2), True)
>>> ex.global_importance["feature"].to_list()
['a', 'b']
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import polars as pl

from workbench.errors import ValidationError

__all__ = ["Explanation", "explain_model", "TOLERANCES", "CHUNK_ROWS"]

#: Additivity tolerance per explainer (absolute, times ``max(1, max |model output|)``).
TOLERANCES: dict[str, float] = {
    "TreeExplainer": 1e-6,
    "LinearExplainer": 1e-6,
    "PermutationExplainer": 1e-4,
}
#: Rows per chunk (one ``progress`` call per chunk).
CHUNK_ROWS = 1000

_TREE_PREFIXES = ("RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting",
                  "DecisionTree", "ExtraTree")
_LINEAR_NAMES = ("LogisticRegression", "LinearRegression", "Ridge", "Lasso", "ElasticNet",
                 "SGD")
# Tree classifiers whose tree output (tree-path-dependent) already is a class probability.
_PROBA_TREES = ("RandomForest", "ExtraTrees", "DecisionTree", "ExtraTree")


# --------------------------------------------------------------------------------------
# result
# --------------------------------------------------------------------------------------
@dataclass
class Explanation:
    """SHAP values of one model on some rows, with the checks and the evidence around them.

    ``values``: ``rows x features`` (binary classifier: positive class; regressor), or
    ``rows x features x classes`` (multiclass). ``base_values``: ``rows`` or
    ``rows x classes``.
    """

    explainer: str
    output: str
    feature_space: str
    note: str
    feature_names: list[str]
    row_ids: list
    values: np.ndarray
    base_values: np.ndarray
    global_importance: pl.DataFrame
    additivity: dict
    sampled: dict
    permutation_importance: pl.DataFrame | None = None
    partial_dependence: dict = field(default_factory=dict)
    classes: list | None = None
    model_class: str = ""
    timings: dict = field(default_factory=dict)
    data: pl.DataFrame | None = field(default=None, repr=False)

    # -- frames -------------------------------------------------------------------------
    def to_frame(self, layout: str = "wide", *, with_values: bool = False) -> pl.DataFrame:
        """Per-row SHAP values keyed by ``row_id`` (for a Parquet artifact).

        ``layout="wide"``: ``row_id, [class], base_value, <one Float64 column per feature>``
        (multiclass: one row per row id and class). ``layout="long"``:
        ``row_id, [class], feature, shap_value``. ``with_values=True`` (wide only) adds the
        explained feature values as ``value:<feature>`` columns (for beeswarm colouring).
        """
        if layout not in ("wide", "long"):
            raise ValidationError(f"layout must be 'wide' or 'long', not {layout!r}")
        ids = pl.Series("row_id", self.row_ids)
        n, f = self.values.shape[0], self.values.shape[1]
        multi = self.values.ndim == 3
        classes = self.classes if multi else None
        if layout == "wide":
            parts = []
            for ci in range(self.values.shape[2] if multi else 1):
                v = self.values[:, :, ci] if multi else self.values
                b = self.base_values[:, ci] if multi else self.base_values
                cols: dict[str, Any] = {"row_id": ids}
                if multi:
                    cols["class"] = pl.Series("class", [str(classes[ci])] * n)
                cols["base_value"] = pl.Series("base_value", np.asarray(b, dtype=np.float64))
                for j, name in enumerate(self.feature_names):
                    cols[name] = pl.Series(name, np.asarray(v[:, j], dtype=np.float64))
                frame = pl.DataFrame(cols)
                if with_values and self.data is not None:
                    frame = pl.concat(
                        [frame, self.data.rename({c: f"value:{c}" for c in self.data.columns})],
                        how="horizontal")
                parts.append(frame)
            return pl.concat(parts) if multi else parts[0]
        # long
        k = self.values.shape[2] if multi else 1
        vals = np.asarray(self.values, dtype=np.float64).reshape(n, f, k)
        rid = np.repeat(np.arange(n), f * k)
        feat = np.tile(np.repeat(np.arange(f), k), n)
        cls = np.tile(np.arange(k), n * f)
        out: dict[str, Any] = {"row_id": ids.gather(rid)}
        if multi:
            out["class"] = pl.Series("class", [str(c) for c in classes]).gather(cls)
        out["feature"] = pl.Series("feature", self.feature_names).gather(feat)
        out["shap_value"] = pl.Series("shap_value", vals.reshape(-1))
        return pl.DataFrame(out)

    # -- JSON ---------------------------------------------------------------------------
    def summary(self) -> dict:
        """Everything but the per-row values, as a JSON-safe dict (for the store)."""
        base = np.asarray(self.base_values, dtype=np.float64)
        base_value = (base.mean(axis=0).tolist() if base.ndim == 2 else float(base.mean())) \
            if base.size else None
        return _jsonable({
            "explainer": self.explainer,
            "output": self.output,
            "feature_space": self.feature_space,
            "note": self.note,
            "model_class": self.model_class,
            "classes": self.classes,
            "feature_names": list(self.feature_names),
            "n_rows": int(self.values.shape[0]),
            "values_shape": list(self.values.shape),
            "base_value": base_value,
            "global_importance": self.global_importance.to_dicts(),
            "additivity": self.additivity,
            "sampled": self.sampled,
            "permutation_importance": (self.permutation_importance.to_dicts()
                                       if self.permutation_importance is not None else None),
            "partial_dependence": self.partial_dependence,
            "timings": self.timings,
        })


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return str(obj)


# --------------------------------------------------------------------------------------
# helpers: model kinds, outputs
# --------------------------------------------------------------------------------------
def _kind(est) -> str:
    name = type(est).__name__
    mod = type(est).__module__ or ""
    if mod.startswith("sklearn.") and name.startswith(_TREE_PREFIXES):
        return "tree"
    if mod.startswith("sklearn.linear_model") and name.startswith(_LINEAR_NAMES):
        return "linear"
    return "other"


def _is_classifier(model) -> bool:
    from sklearn.base import is_classifier

    try:
        if is_classifier(model):
            return True
    except Exception:  # noqa: BLE001 - non-sklearn objects
        pass
    return hasattr(model, "classes_") and hasattr(model, "predict_proba")


def _output_fn(model, output: str, binary: bool) -> Callable:
    """The model output that SHAP values of kind ``output`` add up to."""
    if output == "probability":
        def f(X):
            p = np.asarray(model.predict_proba(X), dtype=np.float64)
            return p[:, 1] if binary else p
    elif output in ("log_odds", "raw"):
        def f(X):
            return np.asarray(model.decision_function(X), dtype=np.float64)
    else:
        def f(X):
            return np.asarray(model.predict(X), dtype=np.float64)
    return f


def _agnostic_output(model, is_clf: bool) -> str:
    if not is_clf:
        return "prediction"
    if hasattr(model, "predict_proba"):
        return "probability"
    if hasattr(model, "decision_function"):
        return "raw"
    return "prediction"


def _check_fitted(model) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(model, "predict"):
        raise ValidationError(
            f"unsupported model: {type(model).__name__} has no predict(); explain_model needs a "
            "fitted scikit-learn-style estimator or pipeline")
    target = model[-1] if isinstance(model, Pipeline) else model
    if target in (None, "passthrough"):
        raise ValidationError("unsupported model: the pipeline has no final estimator")
    try:
        check_is_fitted(target)
    except NotFittedError:
        raise ValidationError(
            f"model {type(model).__name__} is not fitted: fit it before explaining it") from None
    except TypeError:
        # not a scikit-learn estimator; accept if it looks usable
        if not (hasattr(target, "predict")):
            raise ValidationError(f"unsupported model: {type(target).__name__}") from None


# --------------------------------------------------------------------------------------
# helpers: input frames
# --------------------------------------------------------------------------------------
def _to_pandas(X):
    import pandas as pd

    if isinstance(X, pl.DataFrame):
        return X.to_pandas()
    if isinstance(X, pl.LazyFrame):
        return X.collect().to_pandas()
    if isinstance(X, pd.DataFrame):
        return X
    raise ValidationError(
        f"X must be a polars or pandas DataFrame, not {type(X).__name__}")


def _row_ids(Xpd, X, row_id: str | None) -> tuple[Any, list]:
    """(X without the id column, ids) — ids from ``row_id=``, a ``row_id`` column, or the index."""
    import pandas as pd

    col = row_id
    if col is None and "row_id" in Xpd.columns:
        col = "row_id"
    if col is not None:
        if col not in Xpd.columns:
            raise ValidationError(f"row_id column {col!r} is not a column of X")
        ids = Xpd[col].tolist()
        Xpd = Xpd.drop(columns=[col])
    elif isinstance(X, pd.DataFrame):
        ids = X.index.tolist()
    else:
        ids = list(range(len(Xpd)))
    if len(set(ids)) != len(ids):
        raise ValidationError("row ids are not unique: pass row_id= naming a unique id column")
    return Xpd, ids


def _align_columns(model, Xpd):
    expected = getattr(model, "feature_names_in_", None)
    if expected is not None:
        expected = [str(c) for c in expected]
        cols = [str(c) for c in Xpd.columns]
        missing = [c for c in expected if c not in cols]
        extra = [c for c in cols if c not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise ValidationError(
                "columns of X do not match the model's feature_names_in_: " + "; ".join(parts))
        return Xpd[expected], True
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None and Xpd.shape[1] != n_in:
        raise ValidationError(
            f"X has {Xpd.shape[1]} columns but the model was fitted on {n_in} features")
    return Xpd, False


def _y_array(y, Xpd, n: int):
    if y is None:
        return Xpd, None
    if isinstance(y, str):
        if y not in Xpd.columns:
            raise ValidationError(f"y column {y!r} is not a column of X")
        arr = Xpd[y].to_numpy()
        return Xpd.drop(columns=[y]), arr
    if isinstance(y, pl.Series):
        arr = y.to_numpy()
    else:
        arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n:
        raise ValidationError(f"y must be one value per row of X ({n}); got shape {arr.shape}")
    return Xpd, arr


def _sample_rows(n: int, sample, max_rows, seed: int) -> tuple[np.ndarray, dict]:
    target = n
    if sample is not None:
        if isinstance(sample, float) and 0 < sample <= 1:
            target = max(1, int(round(n * sample)))
        elif isinstance(sample, (int, np.integer)) and not isinstance(sample, bool) and sample > 0:
            target = min(n, int(sample))
        else:
            raise ValidationError(
                f"sample must be a row count > 0 or a fraction in (0, 1], not {sample!r}")
    if max_rows is not None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 1:
            raise ValidationError(f"max_rows must be a positive integer, not {max_rows!r}")
        target = min(target, int(max_rows))
    if target >= n:
        idx = np.arange(n)
        method = "all rows"
    else:
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=target, replace=False))
        method = "uniform random sample without replacement (row order kept)"
    return idx, {"rows_total": n, "rows_explained": int(len(idx)), "seed": seed,
                 "method": method, "max_rows": max_rows, "sample": sample}


def _background_idx(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n, size=size, replace=False))


def _dense(a) -> np.ndarray:
    if hasattr(a, "toarray"):
        a = a.toarray()
    if hasattr(a, "to_numpy"):
        a = a.to_numpy()
    return np.asarray(a, dtype=np.float64)


# --------------------------------------------------------------------------------------
# helpers: mapping transformed columns back to original ones
# --------------------------------------------------------------------------------------
class _Unmappable(Exception):
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
                raise _Unmappable(name)
            result[out_sl] = sub_in[sm]
        if (result < 0).any():
            raise _Unmappable("unmapped output")
        return result
    if isinstance(trans, OneHotEncoder):
        counts = getattr(trans, "_n_features_outs", None)
        if counts is None or len(counts) != len(in_names):
            raise _Unmappable("OneHotEncoder")
        return np.repeat(np.arange(len(in_names)), counts)
    if hasattr(trans, "get_feature_names_out"):
        out = [str(c) for c in trans.get_feature_names_out(in_names)]
        if out == list(in_names):  # one-to-one (scalers, imputers without indicators, ...)
            return np.arange(len(in_names))
    raise _Unmappable(type(trans).__name__)


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


# --------------------------------------------------------------------------------------
# the explainers
# --------------------------------------------------------------------------------------
def _chunks(n: int, size: int):
    for s in range(0, n, size):
        yield s, min(n, s + size)


def _run_chunks(fn, M, chunk_rows, progress):
    """fn(chunk) -> (values, base) per chunk; concatenated."""
    n = M.shape[0]
    vals, bases = [], []
    for s, e in _chunks(n, chunk_rows):
        v, b = fn(M[s:e])
        vals.append(v)
        bases.append(b)
        if progress is not None:
            progress(e, n)
    return np.concatenate(vals, axis=0), np.concatenate(bases, axis=0)


def _normalize(values, base, n: int, binary: bool):
    v = np.asarray(values, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    if binary and v.ndim == 3:
        v = v[:, :, -1]
        b = b[..., -1] if b.ndim >= 1 and b.shape[-1] == 2 else b
    if v.ndim == 3:
        k = v.shape[2]
        b = np.broadcast_to(b.reshape(-1, k) if b.size != k else b.reshape(1, k), (n, k)).copy()
    else:
        b = np.broadcast_to(b.reshape(-1) if b.size != 1 else b.reshape(1), (n,)).copy()
    return v, b


def _tree_plan(est, is_clf: bool, binary: bool, requested: str):
    """(output, shap kwargs needing background?) for a tree model."""
    name = type(est).__name__
    if not is_clf:
        return "prediction", False
    if name.startswith(_PROBA_TREES):
        return "probability", False
    margin = "log_odds" if binary else "raw"
    if requested in ("log_odds", "raw"):
        return margin, False
    if name.startswith("GradientBoosting") and binary:
        return "probability", True
    return margin, False


def _explain_tree(est, M, bg, is_clf, binary, requested, chunk_rows, progress):
    import shap

    output, interventional = _tree_plan(est, is_clf, binary, requested)
    if interventional:
        explainer = shap.TreeExplainer(est, bg, model_output="probability",
                                       feature_perturbation="interventional")
    else:
        explainer = shap.TreeExplainer(est, feature_perturbation="tree_path_dependent")
    expected = explainer.expected_value

    def fn(chunk):
        sv = explainer.shap_values(chunk, check_additivity=False)
        if isinstance(sv, list):  # older shap: one array per class
            sv = np.stack(sv, axis=-1)
        return _normalize(sv, expected, chunk.shape[0], binary)

    values, base = _run_chunks(fn, M, chunk_rows, progress)
    how = ("interventional, background of %d rows, model_output='probability'" % len(bg)
           if interventional else "tree_path_dependent")
    return values, base, output, how


def _explain_linear(est, M, bg, is_clf, binary, chunk_rows, progress):
    import shap

    explainer = shap.LinearExplainer(est, shap.maskers.Independent(bg, max_samples=len(bg)))

    def fn(chunk):
        r = explainer(chunk)
        return _normalize(r.values, r.base_values, chunk.shape[0], binary)

    values, base = _run_chunks(fn, M, chunk_rows, progress)
    output = ("log_odds" if binary else "raw") if is_clf else "prediction"
    return values, base, output, f"interventional, background of {len(bg)} rows"


class _Codec:
    """Float matrix <-> DataFrame, so shap's maskers see numbers and the model its own dtypes."""

    def __init__(self, Xpd):
        import pandas as pd

        self.columns = list(Xpd.columns)
        self.dtypes = dict(Xpd.dtypes)
        self.cats: dict[str, np.ndarray] = {}
        for c in self.columns:
            s = Xpd[c]
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                self.cats[c] = np.asarray(pd.unique(s.astype(object)), dtype=object)

    def encode(self, Xpd) -> np.ndarray:
        out = np.empty((len(Xpd), len(self.columns)), dtype=np.float64)
        for j, c in enumerate(self.columns):
            if c in self.cats:
                lut = {v: i for i, v in enumerate(self.cats[c])}
                out[:, j] = [lut.get(v, -1) for v in Xpd[c].astype(object)]
            else:
                out[:, j] = Xpd[c].to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def decode(self, M: np.ndarray):
        import pandas as pd

        data = {}
        for j, c in enumerate(self.columns):
            col = M[:, j]
            if c in self.cats:
                data[c] = self.cats[c][np.clip(col.astype(int), 0, len(self.cats[c]) - 1)]
            else:
                dt = self.dtypes[c]
                if pd.api.types.is_integer_dtype(dt) or pd.api.types.is_bool_dtype(dt):
                    try:
                        data[c] = col.astype(dt)
                    except (TypeError, ValueError):
                        data[c] = col
                else:
                    data[c] = col
        df = pd.DataFrame(data, columns=self.columns)
        for c in self.cats:
            if isinstance(self.dtypes[c], pd.CategoricalDtype):
                df[c] = df[c].astype(self.dtypes[c])
        return df


def _explain_permutation(model, Xpd_rows, Xpd_bg, out_fn, binary, seed, chunk_rows,
                         progress, as_frame: bool):
    import shap

    codec = _Codec(Xpd_bg if len(Xpd_bg) else Xpd_rows)
    # categories seen in the explained rows too
    for c in codec.cats:
        extra = [v for v in Xpd_rows[c].astype(object).unique() if v not in set(codec.cats[c])]
        if extra:
            codec.cats[c] = np.concatenate([codec.cats[c], np.asarray(extra, dtype=object)])

    def f(M):
        df = codec.decode(np.asarray(M, dtype=np.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return out_fn(df if as_frame else df.to_numpy())

    bg = codec.encode(Xpd_bg)
    M = codec.encode(Xpd_rows)
    nf = M.shape[1]
    explainer = shap.PermutationExplainer(f, shap.maskers.Independent(bg, max_samples=len(bg)),
                                          seed=seed)
    max_evals = max(500, 2 * nf + 1)

    def fn(chunk):
        r = explainer(chunk, max_evals=max_evals, silent=True)
        return _normalize(r.values, r.base_values, chunk.shape[0], binary)

    values, base = _run_chunks(fn, M, chunk_rows, progress)
    return values, base, f"background of {len(bg)} rows, max_evals={max_evals}"


# --------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------
def explain_model(
    model,
    X,
    *,
    y=None,
    sample=None,
    max_rows: int | None = None,
    background_size: int = 200,
    seed: int = 0,
    top_k: int = 5,
    progress: Callable[[int, int], Any] | None = None,
    row_id: str | None = None,
    output: str = "auto",
    n_repeats: int = 5,
    pd_rows: int = 1000,
    grid_resolution: int = 20,
    chunk_rows: int = CHUNK_ROWS,
    keep_data: bool = True,
) -> Explanation:
    """Explain fitted ``model`` on the rows of ``X`` (polars or pandas); see the module doc.

    ``y``: true targets (array/Series, or the name of a column of X, excluded from the
    features), needed for permutation importance (skipped with a note when None).
    ``sample``: explain a random sample of this many rows (int) or this fraction (float);
    ``max_rows``: cap on explained rows (random sample with ``seed`` when X is larger). Both
    are stated in ``sampled``. ``row_id``: a column of X holding row ids (default: a
    ``row_id`` column if present, else the pandas index / row position).
    ``output``: "auto" or "log_odds"/"raw" (force the margin for tree classifiers).
    ``progress(done, total)`` is called after each chunk of ``chunk_rows`` rows.
    """
    from sklearn.pipeline import Pipeline

    t_start = time.perf_counter()
    if output not in ("auto", "probability", "log_odds", "raw"):
        raise ValidationError(f"output must be 'auto', 'probability', 'log_odds' or 'raw', not {output!r}")
    if isinstance(background_size, bool) or not isinstance(background_size, int) or background_size < 1:
        raise ValidationError(f"background_size must be a positive integer, not {background_size!r}")
    _check_fitted(model)
    Xpd = _to_pandas(X)
    if Xpd.shape[0] == 0:
        raise ValidationError("X is empty: no rows to explain")
    Xpd, ids = _row_ids(Xpd, X, row_id)
    Xpd, y_arr = _y_array(y, Xpd, len(Xpd))
    if Xpd.shape[1] == 0:
        raise ValidationError("X has no feature columns")
    Xpd, named = _align_columns(model, Xpd)
    Xpd = Xpd.reset_index(drop=True)
    in_names = [str(c) for c in Xpd.columns]

    is_clf = _is_classifier(model)
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])] \
        if is_clf else None
    binary = bool(is_clf and classes is not None and len(classes) == 2)

    idx, sampled = _sample_rows(len(Xpd), sample, max_rows, seed)
    rows = Xpd.iloc[idx].reset_index(drop=True)
    row_ids = [ids[i] for i in idx]
    y_rows = y_arr[idx] if y_arr is not None else None
    bg_idx = _background_idx(len(Xpd), background_size, seed)
    bg_rows = Xpd.iloc[bg_idx].reset_index(drop=True)

    def model_in(df):
        return df if named else df.to_numpy()

    notes: list[str] = []
    final = model[-1] if isinstance(model, Pipeline) else model
    kind = _kind(final)
    feature_space = "original"
    feature_names = in_names
    explainer_name = None
    values = base = None
    out_kind = None
    pd_target = ("model", None)  # what partial dependence runs on
    t0 = time.perf_counter()

    if kind in ("tree", "linear"):
        try:
            if isinstance(model, Pipeline):
                pre = model[:-1]
                if not hasattr(pre, "get_feature_names_out"):
                    raise _Unmappable("preprocessing has no get_feature_names_out")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    M = _dense(pre.transform(model_in(rows)))
                    bg = _dense(pre.transform(model_in(bg_rows)))
                t_names = [str(c) for c in pre.get_feature_names_out()]
            else:
                M = _dense(rows.to_numpy(dtype=np.float64, na_value=np.nan))
                bg = _dense(bg_rows.to_numpy(dtype=np.float64, na_value=np.nan))
                t_names = in_names
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "tree":
                    values, base, out_kind, how = _explain_tree(
                        final, M, bg, is_clf, binary, output, chunk_rows, progress)
                    explainer_name = "TreeExplainer"
                else:
                    values, base, out_kind, how = _explain_linear(
                        final, M, bg, is_clf, binary, chunk_rows, progress)
                    explainer_name = "LinearExplainer"
            notes.append(f"{explainer_name} ({how}) on {type(final).__name__}")
            if isinstance(model, Pipeline):
                try:
                    mapping = _map_outputs(pre, in_names)
                    if len(mapping) != len(t_names):
                        raise _Unmappable("length")
                    G = np.zeros((len(t_names), len(in_names)))
                    G[np.arange(len(t_names)), mapping] = 1.0
                    values = (np.einsum("nfk,fg->ngk", values, G) if values.ndim == 3
                              else values @ G)
                    n_summed = len(t_names) - len(set(mapping.tolist()))
                    notes.append(
                        f"explained the final step on the {len(t_names)} transformed columns of "
                        f"the pipeline's preprocessing, then summed SHAP values of columns made "
                        f"from one original column (one-hot etc.; {n_summed} columns merged) "
                        f"back to the {len(in_names)} original columns")
                    unused = [in_names[i] for i in range(len(in_names)) if i not in set(mapping.tolist())]
                    if unused:
                        notes.append(f"columns dropped by the preprocessing have SHAP 0: {unused}")
                except _Unmappable as exc:
                    feature_space = "transformed"
                    feature_names = t_names
                    notes.append(
                        f"the preprocessing cannot be mapped back to original columns ({exc}): "
                        f"values are per transformed column (get_feature_names_out)")
                    pd_target = ("final", (M, final))
        except _Unmappable as exc:
            notes.append(f"pipeline not explainable per step ({exc})")
            values = None
        except Exception as exc:  # noqa: BLE001 - shap cannot read this model: fall back
            notes.append(f"shap could not use a {('Tree' if kind == 'tree' else 'Linear')}"
                         f"Explainer for {type(final).__name__} ({type(exc).__name__}: {exc})")
            values = None
    else:
        notes.append(f"{type(final).__name__} is neither a tree nor a linear model")

    if values is None:
        explainer_name = "PermutationExplainer"
        out_kind = _agnostic_output(model, is_clf)
        feature_space = "original"
        feature_names = in_names
        values, base, how = _explain_permutation(
            model, rows, bg_rows, _output_fn(model, out_kind, binary), binary, seed,
            chunk_rows, progress, named)
        notes.append(f"model-agnostic PermutationExplainer ({how}) on the whole model over the "
                     f"original columns, explaining {out_kind}")
    t_shap = time.perf_counter() - t0

    # additivity, against the whole model's output of the matching kind
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = _output_fn(model, out_kind, binary)(model_in(rows))
    recon = base + values.sum(axis=1)
    pred = pred.reshape(recon.shape)
    err = float(np.max(np.abs(recon - pred))) if recon.size else 0.0
    tol = TOLERANCES[explainer_name] * max(1.0, float(np.max(np.abs(pred))) if pred.size else 1.0)
    additivity = {"max_abs_error": err, "tolerance": tol, "passed": bool(err <= tol),
                  "compared_with": {"probability": "predict_proba", "log_odds": "decision_function",
                                    "raw": "decision_function",
                                    "prediction": "predict"}[out_kind],
                  "relative_tolerance": TOLERANCES[explainer_name]}

    # global importance
    absv = np.abs(values)
    gi_cols: dict[str, Any] = {"feature": feature_names}
    if values.ndim == 3:
        per_class = absv.mean(axis=0)  # features x classes
        gi_cols["mean_abs_shap"] = per_class.sum(axis=1)
        for ci, c in enumerate(classes or range(values.shape[2])):
            gi_cols[f"mean_abs_shap:{c}"] = per_class[:, ci]
        notes.append("multiclass global importance: sum over classes of mean |SHAP| per class")
    else:
        gi_cols["mean_abs_shap"] = absv.mean(axis=0)
    gi = pl.DataFrame(gi_cols).sort("mean_abs_shap", descending=True, maintain_order=True)
    top = gi["feature"].head(top_k).to_list()

    # permutation importance (whole model, original columns)
    t1 = time.perf_counter()
    perm = None
    if y_rows is None:
        notes.append("permutation importance skipped: no y given")
    else:
        from sklearn.inspection import permutation_importance

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = permutation_importance(model, model_in(rows), y_rows, n_repeats=n_repeats,
                                           random_state=seed)
            perm = pl.DataFrame({"feature": in_names, "importance_mean": r.importances_mean,
                                 "importance_std": r.importances_std}).sort(
                "importance_mean", descending=True, maintain_order=True)
            notes.append(f"permutation importance: model's default score, {n_repeats} repeats, "
                         f"on the {len(rows)} explained rows")
        except Exception as exc:  # noqa: BLE001
            notes.append(f"permutation importance failed ({type(exc).__name__}: {exc})")
    t_perm = time.perf_counter() - t1

    # partial dependence for the top features
    t2 = time.perf_counter()
    pdep = _partial_dependence(model, rows, top, pd_target, named, is_clf, classes, binary,
                               feature_names, pd_rows, grid_resolution, seed, notes)
    t_pd = time.perf_counter() - t2

    data = None
    if keep_data:
        if feature_space == "original":
            try:
                data = pl.from_pandas(rows)
            except Exception:  # noqa: BLE001 - exotic dtypes: values not kept
                data = None
        else:
            data = pl.DataFrame(pd_target[1][0], schema=feature_names, orient="row")

    if sampled["rows_explained"] < sampled["rows_total"]:
        notes.append(f"explained {sampled['rows_explained']} of {sampled['rows_total']} rows "
                     f"(random sample, seed {seed})")
    return Explanation(
        explainer=explainer_name, output=out_kind, feature_space=feature_space,
        note="; ".join(notes), feature_names=list(feature_names), row_ids=row_ids,
        values=values, base_values=base, global_importance=gi, additivity=additivity,
        sampled=sampled, permutation_importance=perm, partial_dependence=pdep,
        classes=classes, model_class=type(model).__name__,
        timings={"shap_s": t_shap, "permutation_importance_s": t_perm,
                 "partial_dependence_s": t_pd, "total_s": time.perf_counter() - t_start},
        data=data)


def _partial_dependence(model, rows, top, pd_target, named, is_clf, classes, binary,
                        feature_names, pd_rows, grid_resolution, seed, notes) -> dict:
    import pandas as pd
    from sklearn.inspection import partial_dependence

    if not top:
        return {}
    if len(rows) > pd_rows:
        rng = np.random.default_rng([seed, 2])
        sub = np.sort(rng.choice(len(rows), size=pd_rows, replace=False))
    else:
        sub = np.arange(len(rows))
    if pd_target[0] == "final":
        M, est = pd_target[1]
        Xp = M[sub]
        if getattr(est, "feature_names_in_", None) is not None:
            Xp = pd.DataFrame(Xp, columns=list(est.feature_names_in_))
            feats = {f: f for f in top}
        else:
            feats = {f: feature_names.index(f) for f in top}
        cat = []
    else:
        est = model
        Xr = rows.iloc[sub].reset_index(drop=True)
        Xp = Xr if named else Xr.to_numpy()
        feats = {f: (f if named else feature_names.index(f)) for f in top}
        cat = [f for f in top if not pd.api.types.is_numeric_dtype(Xr[f])
               and not pd.api.types.is_bool_dtype(Xr[f])]
    response = "auto"
    if is_clf:
        response = "predict_proba" if hasattr(est, "predict_proba") else "decision_function"
    out = {}
    for f, key in feats.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = partial_dependence(
                    est, Xp, [key], categorical_features=[key] if f in cat else None,
                    response_method=response, grid_resolution=grid_resolution, method="brute",
                    kind="average")
            avg = np.asarray(r["average"], dtype=np.float64)
            grid = r["grid_values"][0]
            entry = {"grid": [g.item() if hasattr(g, "item") else g for g in grid],
                     "average": avg[0].tolist() if avg.shape[0] == 1 else avg.tolist(),
                     "categorical": f in cat,
                     "response": (f"{response}[:, 1]" if binary and response == "predict_proba"
                                  else (response if is_clf else "predict"))}
            if avg.shape[0] > 1 and classes is not None:
                entry["classes"] = classes
            out[f] = entry
        except Exception as exc:  # noqa: BLE001
            out[f] = {"error": f"{type(exc).__name__}: {exc}"}
    notes.append(f"partial dependence (brute force, grid {grid_resolution}) for the top "
                 f"{len(feats)} features on {len(sub)} rows")
    return out
