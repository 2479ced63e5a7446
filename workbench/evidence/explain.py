"""SHAP explanations of a fitted scikit-learn model, computed once, ready to be stored.

What and why: a reviewer must see *why* a model decides as it does before it is approved.
:func:`explain_model` computes per-row SHAP values, base values, global importance
(mean ``|SHAP|``), permutation importance and partial dependence for the top features, and
checks additivity (base value + sum of a row's SHAP values = the model output for that row).
The result, an :class:`Explanation`, is pure data: ``to_frame()`` gives the per-row values
keyed by row id (for a Parquet artifact) and ``summary()`` a JSON-safe dict (for the store).
This module does no storage and downloads nothing.

Where the work is done: :mod:`workbench.evidence.explain_inputs` checks the model and X and samples
the rows; :mod:`workbench.evidence.explainers` picks the SHAP explainer and says what its values add
up to (the ``output`` field); :mod:`workbench.evidence.feature_space` sums a pipeline's transformed
columns back to the original ones; :mod:`workbench.evidence.inspection` adds permutation importance
and partial dependence.

Additivity tolerance, on ``max |base + sum(shap) - output|``, scaled by
``max(1, max |output|)``: 1e-6 for TreeExplainer and LinearExplainer (exact algorithms; the
error seen is float rounding, ~1e-8 for interventional probability), 1e-4 for
PermutationExplainer (exact by telescoping over each permutation, but it sums many model
calls). The check's result is part of the explanation, pass or fail; it never raises.

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
from workbench.evidence.explain_inputs import (
    align_columns,
    as_pandas,
    background_idx,
    check_fitted,
    row_ids_of,
    sample_rows,
    y_array,
)
from workbench.evidence.explainers import (
    agnostic_output,
    classifier_like,
    explain_linear,
    explain_permutation,
    explain_tree,
    model_kind,
    output_fn,
)
from workbench.evidence.feature_space import Unmappable, to_dense, to_original
from workbench.evidence.inspection import (
    partial_dependence_of,
    permutation_importance_of,
)

__all__ = ["Explanation", "explain_model", "TOLERANCES", "CHUNK_ROWS"]

#: Additivity tolerance per explainer (absolute, times ``max(1, max |model output|)``).
TOLERANCES: dict[str, float] = {
    "TreeExplainer": 1e-6,
    "LinearExplainer": 1e-6,
    "PermutationExplainer": 1e-4,
}
#: Rows per chunk (one ``progress`` call per chunk).
CHUNK_ROWS = 1000


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

    Raises
    ------
    ValidationError
        The model is unsupported or not fitted; X is not a frame, is empty, has no feature
        columns or does not match the model's columns; ``y``, ``row_id``, ``sample``,
        ``max_rows``, ``background_size`` or ``output`` is invalid (row ids must be unique).
        A Tree- or LinearExplainer that fails falls back to PermutationExplainer; a failed
        additivity check, permutation importance or partial dependence is recorded, not raised.
    """
    from sklearn.pipeline import Pipeline

    t_start = time.perf_counter()
    if output not in ("auto", "probability", "log_odds", "raw"):
        raise ValidationError(f"output must be 'auto', 'probability', 'log_odds' or 'raw', not {output!r}")
    if isinstance(background_size, bool) or not isinstance(background_size, int) or background_size < 1:
        raise ValidationError(f"background_size must be a positive integer, not {background_size!r}")
    check_fitted(model)
    Xpd = as_pandas(X)
    if Xpd.shape[0] == 0:
        raise ValidationError("X is empty: no rows to explain")
    Xpd, ids = row_ids_of(Xpd, X, row_id)
    Xpd, y_arr = y_array(y, Xpd, len(Xpd))
    if Xpd.shape[1] == 0:
        raise ValidationError("X has no feature columns")
    Xpd, named = align_columns(model, Xpd)
    Xpd = Xpd.reset_index(drop=True)
    in_names = [str(c) for c in Xpd.columns]

    is_clf = classifier_like(model)
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])] \
        if is_clf else None
    binary = bool(is_clf and classes is not None and len(classes) == 2)

    idx, sampled = sample_rows(len(Xpd), sample, max_rows, seed)
    rows = Xpd.iloc[idx].reset_index(drop=True)
    row_ids = [ids[i] for i in idx]
    y_rows = y_arr[idx] if y_arr is not None else None
    bg_idx = background_idx(len(Xpd), background_size, seed)
    bg_rows = Xpd.iloc[bg_idx].reset_index(drop=True)

    def model_in(df):
        return df if named else df.to_numpy()

    notes: list[str] = []
    final = model[-1] if isinstance(model, Pipeline) else model
    kind = model_kind(final)
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
                    raise Unmappable("preprocessing has no get_feature_names_out")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    M = to_dense(pre.transform(model_in(rows)))
                    bg = to_dense(pre.transform(model_in(bg_rows)))
                t_names = [str(c) for c in pre.get_feature_names_out()]
            else:
                M = to_dense(rows.to_numpy(dtype=np.float64, na_value=np.nan))
                bg = to_dense(bg_rows.to_numpy(dtype=np.float64, na_value=np.nan))
                t_names = in_names
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "tree":
                    values, base, out_kind, how = explain_tree(
                        final, M, bg, is_clf, binary, output, chunk_rows, progress)
                    explainer_name = "TreeExplainer"
                else:
                    values, base, out_kind, how = explain_linear(
                        final, M, bg, is_clf, binary, chunk_rows, progress)
                    explainer_name = "LinearExplainer"
            notes.append(f"{explainer_name} ({how}) on {type(final).__name__}")
            if isinstance(model, Pipeline):
                try:
                    values, mapping = to_original(values, pre, in_names, len(t_names))
                    n_summed = len(t_names) - len(set(mapping.tolist()))
                    notes.append(
                        f"explained the final step on the {len(t_names)} transformed columns of "
                        f"the pipeline's preprocessing, then summed SHAP values of columns made "
                        f"from one original column (one-hot etc.; {n_summed} columns merged) "
                        f"back to the {len(in_names)} original columns")
                    unused = [in_names[i] for i in range(len(in_names)) if i not in set(mapping.tolist())]
                    if unused:
                        notes.append(f"columns dropped by the preprocessing have SHAP 0: {unused}")
                except Unmappable as exc:
                    feature_space = "transformed"
                    feature_names = t_names
                    notes.append(
                        f"the preprocessing cannot be mapped back to original columns ({exc}): "
                        f"values are per transformed column (get_feature_names_out)")
                    pd_target = ("final", (M, final))
        except Unmappable as exc:
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
        out_kind = agnostic_output(model, is_clf)
        feature_space = "original"
        feature_names = in_names
        values, base, how = explain_permutation(
            model, rows, bg_rows, output_fn(model, out_kind, binary), binary, seed,
            chunk_rows, progress, named)
        notes.append(f"model-agnostic PermutationExplainer ({how}) on the whole model over the "
                     f"original columns, explaining {out_kind}")
    t_shap = time.perf_counter() - t0

    # additivity, against the whole model's output of the matching kind
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = output_fn(model, out_kind, binary)(model_in(rows))
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
    perm = permutation_importance_of(model, rows, y_rows, named, in_names, n_repeats, seed, notes)
    t_perm = time.perf_counter() - t1

    # partial dependence for the top features
    t2 = time.perf_counter()
    pdep = partial_dependence_of(model, rows, top, pd_target, named, is_clf, classes, binary,
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
