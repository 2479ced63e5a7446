"""Fairness reports: per-group metrics, fairlearn's disparity summaries, a four-fifths screen.

Pure computation over arrays and frames (no store access). Everything is computed from four
integer sufficient statistics per group (rows, actual positives, predicted positives, true
positives) gathered with one vectorised polars group-by, so one million rows take tens of
milliseconds instead of the minute that fairlearn's ``MetricFrame`` needs. The numbers equal
fairlearn's (0.15) to 1e-9; ``tests/test_fairness.py`` checks every one of them.

Definitions (binary task; ``y_true`` and ``y_pred`` are 0/1, positive label 1)
------------------------------------------------------------------------------
Per group ``g`` of each sensitive feature, and per intersection of two features (the
intersection's name is ``"<a> & <b>"``, its groups ``"<value a> & <value b>"``):

* ``count``, ``share`` (count / all rows), ``n_positives`` (``y_true == 1``),
  ``n_predicted_positives`` (``y_pred == 1``);
* ``selection_rate`` = P(pred = 1 | g);  ``accuracy`` = P(pred = true | g);
* ``tpr`` = P(pred = 1 | true = 1, g) -- **NaN (undefined) when the group has no positives**;
* ``fpr`` = P(pred = 1 | true = 0, g) -- NaN when the group has no negatives;
* ``precision`` = P(true = 1 | pred = 1, g) -- NaN when the group has no predicted positives
  (scikit-learn's ``precision_score(zero_division=np.nan)``; its default would report 0).

Summary (``report.summary``), for each single feature and for the intersection, exactly as
``fairlearn.metrics`` defines them with ``method="between_groups"``:

* ``demographic_parity_difference`` = max - min of group selection rates;
* ``demographic_parity_ratio`` = min / max of group selection rates (NaN if nobody at all
  is selected: 0 / 0, as in fairlearn);
* ``equal_opportunity_difference`` = max - min of group TPRs;
* ``equalized_odds_difference`` = the larger of the TPR difference and the FPR difference.

The top-level keys of ``summary`` are those of the *primary* grouping: the intersection when
two features are given (what fairlearn computes when passed both columns), else the single
feature; ``summary["by_feature"]`` holds every grouping.

Undefined rates in the summary. fairlearn computes TPR/FPR with scikit-learn's
``confusion_matrix(normalize="true")``, which turns 0/0 into **0**: a group without positives
gets TPR 0 there, and that 0 enters the max - min. The summary keeps fairlearn's numbers
(so they match to 1e-9) -- a group with an undefined TPR therefore *widens* the equal
opportunity / equalized odds difference, it can never make the model look fair -- while
``by_group`` shows NaN (undefined, never 0 and never a pass), and the summary lists such groups
under ``groups_without_positives`` / ``groups_without_negatives`` with a note in ``notes``.

Four-fifths screen (adverse impact, ``summary[...]["four_fifths"]``). Each group's impact
ratio is its selection rate divided by the highest selection rate among *judged* groups;
a group passes when the ratio is >= 0.8. Groups with fewer than ``min_group_size`` rows are
flagged (``flagged_small``) and not judged: they get a ratio but no verdict, and never serve
as the comparison group. The confidence interval is a percentile bootstrap (``n_bootstrap``
resamples, fixed ``seed``) stratified by group: resampling a group's rows with replacement
makes its selected count Binomial(count, rate), which is drawn directly, so the bootstrap
costs nothing per row. ``n_bootstrap=0`` skips it. It is a screen, shown beside group sizes,
not a legal finding.

Regression task: per group ``count``, ``share``, ``mean_prediction`` and ``mae`` (mean absolute
error); the summary gives fairlearn's between-groups difference and ratio of both.

Example
-------
>>> import numpy as np
>>> from workbench.evidence.fairness import fairness_report
>>> y_true = np.array([1, 0, 1, 0, 1, 0, 1, 0] * 10)
>>> y_pred = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 10)
>>> sex = np.array(["f", "f", "f", "f", "m", "m", "m", "m"] * 10)
>>> rep = fairness_report(y_true, y_pred, {"sex": sex}, n_bootstrap=50)
>>> rep.by_group.select("group", "count", "selection_rate", "tpr", "fpr").rows()
[('f', 40, 0.75, 1.0, 0.5), ('m', 40, 0.25, 0.5, 0.0)]
>>> rep.summary["demographic_parity_difference"], rep.summary["equalized_odds_difference"]
(0.5, 0.5)
>>> ff = rep.summary["four_fifths"]
>>> ff["passed"], round(ff["min_impact_ratio"], 3), ff["worst_group"]
(False, 0.333, 'm')
>>> rep.reference_group
{'sex': 'f'}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import polars as pl

from workbench.errors import ValidationError

__all__ = ["FairnessReport", "fairness_report", "FOUR_FIFTHS"]

FOUR_FIFTHS = 0.8
_TOL = 1e-12  # a ratio of exactly 0.8 must pass despite float rounding
_JOIN = " & "
_TASKS = ("binary", "regression")


# --------------------------------------------------------------------------- report


@dataclass
class FairnessReport:
    """The result of :func:`fairness_report`.

    ``by_group``: one row per (feature, group), features in the order given, then the
    intersection; groups sorted. ``summary``: see the module docstring. ``reference_group``:
    feature -> the group disparities are measured against (default: the largest group).
    """

    task: str
    by_group: pl.DataFrame
    summary: dict
    reference_group: dict
    sensitive_features: list
    n_rows: int
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-safe dict: NaN -> None, +/-inf -> "inf"/"-inf", numpy scalars -> Python."""
        return _json_safe(
            {
                "task": self.task,
                "n_rows": self.n_rows,
                "sensitive_features": list(self.sensitive_features),
                "reference_group": dict(self.reference_group),
                "params": dict(self.params),
                "summary": self.summary,
                "by_group": self.by_group.to_dicts(),
            }
        )


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_json_safe(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return x


# --------------------------------------------------------------------------- input checks


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise ValidationError(f"{name} is required")
    if isinstance(x, pl.Series):
        arr = x.to_numpy()
    elif isinstance(x, pl.DataFrame) or (hasattr(x, "columns") and hasattr(x, "to_numpy")):
        if len(x.columns) != 1:
            raise ValidationError(f"{name} must be one column, got {len(x.columns)} columns")
        arr = np.asarray(x.to_numpy()).ravel()
    elif hasattr(x, "to_numpy"):
        arr = x.to_numpy()
    else:
        arr = np.asarray(x)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValidationError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _missing_mask(arr: np.ndarray) -> np.ndarray | None:
    if arr.dtype.kind in "fc":
        m = np.isnan(arr)
    elif arr.dtype.kind == "O":
        try:
            import pandas as pd  # catches pd.NA / NaT too

            m = np.asarray(pd.isna(arr), dtype=bool)
        except ImportError:  # pragma: no cover - pandas comes with fairlearn
            m = np.fromiter((v is None or (isinstance(v, float) and v != v) for v in arr),
                            bool, len(arr))
    else:
        return None
    return m if m.any() else None


def _where(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    head = ", ".join(str(i) for i in idx[:5]) + (", ..." if len(idx) > 5 else "")
    return f"{len(idx)} of {len(mask)} rows (row positions {head})"


def _check_no_nan(arr: np.ndarray, name: str) -> None:
    m = _missing_mask(arr)
    if m is not None:
        raise ValidationError(
            f"{name} has NaN/missing values in {_where(m)}; drop or fill those rows "
            f"(e.g. rows whose outcome is not yet known) before computing fairness"
        )


def _as_binary(arr: np.ndarray, name: str) -> np.ndarray:
    """0/1 (or bool) -> bool array; anything else is a ValidationError naming the values."""
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind == "O":  # e.g. pandas object columns holding 0/1 or True/False
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if arr.dtype.kind in "iuf":
        ok = (arr == 0) | (arr == 1)
        if ok.all():
            return arr == 1
        bad = np.unique(arr[~ok])
    else:
        vals = np.unique(arr.astype(str))
        bad = vals
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in bad[:5])
    raise ValidationError(
        f"{name} must be binary (0/1 or bool) for task='binary'; found other values: {shown}"
        f"{' ...' if len(bad) > 5 else ''} (map the positive class to 1, or use task='regression')"
    )


def _sensitive_columns(sensitive: Any, data: Any) -> dict[str, pl.Series]:
    """Normalise ``sensitive`` into an ordered {name: polars String Series}."""
    if isinstance(sensitive, (str, list, tuple)) and data is not None:
        names = [sensitive] if isinstance(sensitive, str) else list(sensitive)
        available = list(data.columns)
        missing = [n for n in names if n not in available]
        if missing:
            raise ValidationError(
                f"sensitive feature(s) {missing} not found in the data; available columns: "
                f"{available}"
            )
        sensitive = {n: data[n] for n in names}
    if sensitive is None:
        raise ValidationError("sensitive features are required (a DataFrame or a dict of arrays)")
    if isinstance(sensitive, pl.Series):
        sensitive = {sensitive.name or "sensitive_feature_0": sensitive}
    elif isinstance(sensitive, pl.DataFrame):
        sensitive = {c: sensitive[c] for c in sensitive.columns}
    elif hasattr(sensitive, "columns") and hasattr(sensitive, "__getitem__"):  # pandas
        sensitive = {str(c): sensitive[c] for c in sensitive.columns}
    elif hasattr(sensitive, "to_numpy") and hasattr(sensitive, "name"):  # pandas Series
        sensitive = {str(sensitive.name) if sensitive.name is not None else "sensitive_feature_0": sensitive}
    elif not isinstance(sensitive, Mapping):
        raise ValidationError(
            f"sensitive must be a DataFrame (polars or pandas) or a dict of arrays, "
            f"got {type(sensitive).__name__}"
        )
    if len(sensitive) == 0:
        raise ValidationError("no sensitive feature given (empty DataFrame or dict)")
    if len(sensitive) > 2:
        raise ValidationError(
            f"at most 2 sensitive features (one intersection) are supported, got "
            f"{len(sensitive)}: {list(sensitive)}"
        )
    out: dict[str, pl.Series] = {}
    for name, col in sensitive.items():
        name = str(name)
        if _JOIN in name:
            raise ValidationError(f"sensitive feature name {name!r} must not contain {_JOIN!r}")
        if col is None:
            raise ValidationError(f"sensitive feature {name!r} is missing (None)")
        if isinstance(col, pl.Series):
            s = col
        else:
            arr = _to_numpy(col, f"sensitive feature {name!r}")
            s = pl.Series(name, arr)
        if len(s) == 0:
            raise ValidationError(f"sensitive feature {name!r} is empty (0 rows)")
        miss = s.is_null()
        if s.dtype in (pl.Float32, pl.Float64):
            miss = miss | s.is_nan()
        if miss.any():
            m = miss.to_numpy()
            raise ValidationError(
                f"sensitive feature {name!r} has missing values in {_where(m)}; fill them with an "
                f"explicit group (e.g. 'unknown') so they are reported, or drop those rows"
            )
        s = s.cast(pl.String).rename(name)
        out[name] = s
    return out


# --------------------------------------------------------------------------- metrics


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _between(values: np.ndarray) -> tuple[float, float]:
    """fairlearn's between_groups difference (max - min) and ratio (min / max), NaN-skipping."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    lo, hi = float(v.min()), float(v.max())
    ratio = lo / hi if hi != 0 else (math.nan if lo == 0 else math.copysign(math.inf, lo))
    return hi - lo, ratio


def _resolve_reference(names: list[str], groups: dict[str, list[str]], counts: dict[str, np.ndarray],
                       reference_group: Any) -> dict[str, str]:
    given: dict[str, Any] = {}
    if reference_group is not None:
        if isinstance(reference_group, Mapping):
            given = {str(k): v for k, v in reference_group.items()}
            unknown = [k for k in given if k not in groups]
            if unknown:
                raise ValidationError(
                    f"reference_group names unknown feature(s) {unknown}; known: {list(groups)}"
                )
        elif len(names) == 1:
            given = {names[0]: reference_group}
        else:
            raise ValidationError(
                "with two sensitive features, reference_group must be a dict "
                "{feature: group} (the intersection's key is "
                f"{_JOIN.join(names)!r}, its group a tuple or 'a & b')"
            )
    ref: dict[str, str] = {}
    for key, glist in groups.items():
        if key in given:
            g = given[key]
            g = _JOIN.join(str(x) for x in g) if isinstance(g, tuple) else str(g)
            if g not in glist:
                raise ValidationError(
                    f"reference group {g!r} does not occur in {key!r}; its groups: {glist}"
                )
            ref[key] = g
        else:
            ref[key] = glist[int(np.argmax(counts[key]))]  # largest; ties -> first in sort order
    return ref


def _four_fifths(key: str, glist: list[str], n: np.ndarray, sel_count: np.ndarray, *,
                 min_group_size: int, n_bootstrap: int, seed: int, k: int,
                 confidence: float) -> dict:
    rate = sel_count / n
    judged = n >= min_group_size
    G = len(glist)
    impact = np.full(G, np.nan)
    ci_lo = np.full(G, np.nan)
    ci_hi = np.full(G, np.nan)
    passed: list[bool | None] = [None] * G
    out: dict[str, Any] = {
        "threshold": FOUR_FIFTHS,
        "min_group_size": int(min_group_size),
        "n_judged_groups": int(judged.sum()),
        "flagged_small_groups": [g for g, j in zip(glist, judged) if not j],
        "comparison_group": None,
        "highest_selection_rate": math.nan,
        "min_impact_ratio": math.nan,
        "min_impact_ratio_ci": [math.nan, math.nan],
        "worst_group": None,
        "passed": None,
        "reason": None,
        "n_bootstrap": int(n_bootstrap),
        "confidence": confidence,
        "seed": int(seed),
    }
    if not judged.any():
        out["reason"] = f"no group has at least {min_group_size} rows: nothing is judged"
    else:
        jidx = np.flatnonzero(judged)
        top = jidx[int(np.argmax(rate[jidx]))]
        top_rate = float(rate[top])
        out["comparison_group"] = glist[top]
        out["highest_selection_rate"] = top_rate
        if top_rate == 0:
            out["reason"] = "no judged group has any positive prediction: impact ratios undefined"
        else:
            impact = rate / top_rate
            for i in jidx:
                passed[i] = bool(impact[i] >= FOUR_FIFTHS - _TOL)
            worst = jidx[int(np.argmin(impact[jidx]))]
            out["min_impact_ratio"] = float(impact[worst])
            out["worst_group"] = glist[worst]
            out["passed"] = all(passed[i] for i in jidx)
            if n_bootstrap > 0:
                rng = np.random.default_rng([int(seed), k])
                draws = rng.binomial(n.astype(np.int64), rate, size=(n_bootstrap, G)) / n
                top_b = draws[:, jidx].max(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    imp_b = draws / top_b[:, None]
                imp_b[top_b == 0] = np.nan
                alpha = (1 - confidence) / 2 * 100
                lo_hi = np.nanpercentile(imp_b, [alpha, 100 - alpha], axis=0) if np.isfinite(imp_b).any() else np.full((2, G), np.nan)
                ci_lo, ci_hi = lo_hi[0], lo_hi[1]
                min_b = np.nanmin(imp_b[:, jidx], axis=1) if np.isfinite(imp_b[:, jidx]).any() else np.array([np.nan])
                if np.isfinite(min_b).any():
                    out["min_impact_ratio_ci"] = [float(v) for v in np.nanpercentile(min_b, [alpha, 100 - alpha])]
    out["groups"] = {
        g: {
            "count": int(n[i]),
            "selection_rate": float(rate[i]),
            "impact_ratio": float(impact[i]),
            "impact_ratio_ci": [float(ci_lo[i]), float(ci_hi[i])],
            "judged": bool(judged[i]),
            "passed": passed[i],
        }
        for i, g in enumerate(glist)
    }
    out["_arrays"] = (impact, ci_lo, ci_hi, passed)
    return out


# --------------------------------------------------------------------------- main


def fairness_report(
    y_true: Any,
    y_pred: Any,
    sensitive: Any,
    *,
    task: str = "binary",
    y_score: Any = None,
    threshold: float = 0.5,
    reference_group: Any = None,
    min_group_size: int = 30,
    n_bootstrap: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    data: Any = None,
    favorable_label: int = 1,
) -> FairnessReport:
    """Per-group metrics and disparity summary of predictions (see the module docstring).

    Parameters
    ----------
    y_true, y_pred:
        1-d arrays / Series of equal length. Binary task: 0/1 or bool. ``y_pred`` may be
        None when ``y_score`` is given: ``y_pred = y_score >= threshold``.
    sensitive:
        A polars or pandas DataFrame, or a dict {name: array}, with 1 or 2 columns; or
        column name(s) of ``data``.
    task:
        ``"binary"`` or ``"regression"`` (see the module docstring).
    reference_group:
        The group disparities are measured against; one feature: the group value; two: a
        dict {feature: group} (the intersection's key ``"a & b"``). Default: largest group.
    min_group_size:
        Groups with fewer rows are flagged and not judged by the four-fifths screen.
    n_bootstrap, seed, confidence:
        Percentile bootstrap of the impact ratios (0 skips it).
    favorable_label:
        Binary task: the class that benefits the person, counted as "selected" (and as
        the positive class for TPR, FPR, precision). For a default-risk model where 1
        means "will default", pass 0: selection rates are then approval rates.

    Returns
    -------
    FairnessReport

    Raises
    ------
    ValidationError
        An argument is out of range; inputs are missing, of different lengths, hold
        missing values, or (binary task) are not 0/1; a sensitive feature has one group
        only or more than two are given; ``reference_group`` names no existing group.
    """
    if task not in _TASKS:
        raise ValidationError(f"task must be one of {_TASKS}, got {task!r}")
    for nm, v in (("min_group_size", min_group_size), ("n_bootstrap", n_bootstrap), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValidationError(f"{nm} must be a non-negative integer, got {v!r}")
    if not 0 < float(confidence) < 1:
        raise ValidationError(f"confidence must be in (0, 1), got {confidence!r}")

    yt = _to_numpy(y_true, "y_true")
    if y_pred is None:
        if y_score is None:
            raise ValidationError("give y_pred, or y_score with a threshold")
        if task != "binary":
            raise ValidationError("y_score/threshold only apply to task='binary'; give y_pred")
        ys = _to_numpy(y_score, "y_score").astype(np.float64, copy=False)
        _check_no_nan(ys, "y_score")
        yp = ys >= float(threshold)
    else:
        yp = _to_numpy(y_pred, "y_pred")
    if len(yt) == 0:
        raise ValidationError("y_true is empty (0 rows)")
    if len(yp) != len(yt):
        raise ValidationError(
            f"lengths differ: y_true has {len(yt)} rows, y_pred{'/y_score' if y_pred is None else ''} "
            f"has {len(yp)}"
        )
    cols = _sensitive_columns(sensitive, data)
    for name, s in cols.items():
        if len(s) != len(yt):
            raise ValidationError(
                f"lengths differ: y_true has {len(yt)} rows, sensitive feature {name!r} has {len(s)}"
            )
    _check_no_nan(yt, "y_true")
    _check_no_nan(yp, "y_pred")
    if task == "binary":
        if favorable_label not in (0, 1):
            raise ValidationError(f"favorable_label must be 0 or 1, got {favorable_label!r}")
        yt = _as_binary(yt, "y_true")
        yp = _as_binary(yp, "y_pred")
        if favorable_label == 0:  # the favourable outcome becomes the "selected" class
            yt, yp = ~yt, ~yp
    else:
        try:
            yt = yt.astype(np.float64)
            yp = yp.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise ValidationError(f"task='regression' needs numeric y_true and y_pred: {e}") from None

    names = list(cols)
    n_rows = len(yt)
    keys = [f"__s{i}" for i in range(len(names))]
    frame = pl.DataFrame([s.rename(k) for k, s in zip(keys, cols.values())])

    # one group-by on all sensitive columns; marginals are summed from its (small) result
    if task == "binary":
        frame = frame.with_columns(
            pl.Series("__yt", yt), pl.Series("__yp", yp)
        )
        stats = ["n", "p", "pp", "tp"]
        cell = frame.group_by(keys).agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("__yt").sum().cast(pl.Int64).alias("p"),
            pl.col("__yp").sum().cast(pl.Int64).alias("pp"),
            (pl.col("__yt") & pl.col("__yp")).sum().cast(pl.Int64).alias("tp"),
        )
        groupings: list[tuple[str, pl.DataFrame]] = []
        for k, nm in zip(keys, names):
            g = cell.group_by(k).agg(pl.col(s).sum() for s in stats).sort(k)
            groupings.append((nm, g.select(pl.col(k).alias("group"), *stats)))
        if len(names) == 2:
            g = cell.sort(keys).select(
                pl.concat_str(keys, separator=_JOIN).alias("group"), *stats
            )
            groupings.append((_JOIN.join(names), g))
    else:
        frame = frame.with_columns(
            pl.Series("__yp", yp), pl.Series("__ae", np.abs(yp - yt))
        )
        groupings = []
        sets = [[k] for k in keys] + ([keys] if len(keys) == 2 else [])
        set_names = names + ([_JOIN.join(names)] if len(names) == 2 else [])
        for ks, nm in zip(sets, set_names):
            g = frame.group_by(ks).agg(
                pl.len().cast(pl.Int64).alias("n"),
                pl.col("__yp").mean().alias("mean_prediction"),
                pl.col("__ae").mean().alias("mae"),
            ).sort(ks)
            groupings.append((nm, g.select(pl.concat_str(ks, separator=_JOIN).alias("group"),
                                           "n", "mean_prediction", "mae")))

    for nm, g in groupings[: len(names)]:
        if g.height < 2:
            raise ValidationError(
                f"sensitive feature {nm!r} has one group only ({g['group'][0]!r}): there is "
                f"nothing to compare; choose a feature with at least two groups"
            )

    glists = {nm: g["group"].to_list() for nm, g in groupings}
    counts = {nm: g["n"].to_numpy() for nm, g in groupings}
    ref = _resolve_reference(names, glists, counts, reference_group)

    parts: list[pl.DataFrame] = []
    by_feature: dict[str, dict] = {}
    notes: list[str] = []
    for k, (nm, g) in enumerate(groupings):
        glist = glists[nm]
        n = counts[nm]
        ridx = glist.index(ref[nm])
        flagged = n < min_group_size
        base = {
            "feature": [nm] * len(glist),
            "group": glist,
            "count": n,
            "share": n / n_rows,
        }
        summ: dict[str, Any] = {"n_groups": len(glist), "reference_group": ref[nm],
                                "flagged_small_groups": [x for x, f in zip(glist, flagged) if f]}
        if task == "binary":
            p, pp, tp = (g[c].to_numpy() for c in ("p", "pp", "tp"))
            neg = n - p
            fp = pp - tp
            tn = neg - fp
            sel = pp / n
            tpr = _safe_div(tp, p)
            fpr = _safe_div(fp, neg)
            prec = _safe_div(tp, pp)
            acc = (tp + tn) / n
            # fairlearn / scikit-learn confusion_matrix(normalize="true") turn 0/0 into 0
            tpr_fl = np.where(p > 0, tpr, 0.0)
            fpr_fl = np.where(neg > 0, fpr, 0.0)
            dpd, dpr = _between(sel)
            tpr_d, _ = _between(tpr_fl)
            fpr_d, _ = _between(fpr_fl)
            no_pos = [x for x, c in zip(glist, p) if c == 0]
            no_neg = [x for x, c in zip(glist, neg) if c == 0]
            summ.update(
                demographic_parity_difference=dpd,
                demographic_parity_ratio=dpr,
                equalized_odds_difference=max(tpr_d, fpr_d),
                equal_opportunity_difference=tpr_d,
                groups_without_positives=no_pos,
                groups_without_negatives=no_neg,
            )
            if no_pos:
                notes.append(
                    f"{nm}: group(s) {no_pos} have no positives: TPR undefined (NaN in by_group); "
                    f"as in fairlearn it counts as 0 in the equal opportunity / equalized odds "
                    f"differences, which it can only widen"
                )
            if no_neg:
                notes.append(
                    f"{nm}: group(s) {no_neg} have no negatives: FPR undefined (NaN in by_group); "
                    f"as in fairlearn it counts as 0 in the equalized odds difference"
                )
            ff = _four_fifths(nm, glist, n, pp, min_group_size=min_group_size,
                              n_bootstrap=n_bootstrap, seed=seed, k=k, confidence=confidence)
            impact, ci_lo, ci_hi, passed = ff.pop("_arrays")
            summ["four_fifths"] = ff
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio_ref = _safe_div(sel, np.full_like(sel, sel[ridx]))
            part = pl.DataFrame(
                {
                    **base,
                    "n_positives": p,
                    "n_predicted_positives": pp,
                    "selection_rate": sel,
                    "tpr": tpr,
                    "fpr": fpr,
                    "precision": prec,
                    "accuracy": acc,
                    "flagged_small": flagged,
                    "is_reference": np.arange(len(glist)) == ridx,
                    "selection_rate_ratio": ratio_ref,
                    "selection_rate_difference": sel - sel[ridx],
                    "impact_ratio": impact,
                    "impact_ratio_ci_low": ci_lo,
                    "impact_ratio_ci_high": ci_hi,
                    "four_fifths_pass": pl.Series(passed, dtype=pl.Boolean),
                },
                strict=False,
            )
        else:
            mp = g["mean_prediction"].to_numpy()
            mae = g["mae"].to_numpy()
            mpd, mpr = _between(mp)
            maed, maer = _between(mae)
            summ.update(mean_prediction_difference=mpd, mean_prediction_ratio=mpr,
                        mae_difference=maed, mae_ratio=maer)
            part = pl.DataFrame(
                {
                    **base,
                    "mean_prediction": mp,
                    "mae": mae,
                    "flagged_small": flagged,
                    "is_reference": np.arange(len(glist)) == ridx,
                    "mean_prediction_ratio": _safe_div(mp, np.full_like(mp, mp[ridx])),
                    "mean_prediction_difference": mp - mp[ridx],
                    "mae_difference": mae - mae[ridx],
                },
                strict=False,
            )
        parts.append(part.with_columns(pl.col("count").cast(pl.Int64)))
        by_feature[nm] = summ

    by_group = pl.concat(parts, how="vertical")
    primary = groupings[-1][0]
    summary: dict[str, Any] = {"task": task, "sensitive_features": names, "primary": primary}
    summary.update({k: v for k, v in by_feature[primary].items()})
    summary["by_feature"] = by_feature
    summary["notes"] = notes
    params = {"threshold": float(threshold) if y_pred is None else None,
              "min_group_size": int(min_group_size), "n_bootstrap": int(n_bootstrap),
              "seed": int(seed), "confidence": float(confidence),
              "four_fifths_threshold": FOUR_FIFTHS, "favorable_label": int(favorable_label)}
    return FairnessReport(task=task, by_group=by_group, summary=summary, reference_group=ref,
                          sensitive_features=names, n_rows=n_rows, params=params)
