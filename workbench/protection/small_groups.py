"""Protected attributes shown only in aggregate: groups under the minimum size are pooled.

A fairness table's row for a group of three people tells a reader those three people's
outcomes. Pages and reports therefore show groups smaller than the report's
``min_group_size`` (the size below which a group is not judged either) as one pooled row
per feature, its rates recomputed from the pooled counts; when even the pool is under the
minimum (one small group, or a few tiny ones) its rates are withheld and only its size is
shown. The stored evidence keeps every group, since the verdict was computed on them.

>>> import polars as pl
>>> t = pl.DataFrame({"feature": ["g"] * 3, "group": ["a", "b", "c"], "count": [100, 4, 6],
...                   "n_positives": [50, 2, 3], "n_predicted_positives": [40, 1, 3],
...                   "selection_rate": [0.4, 0.25, 0.5], "flagged_small": [False, True, True]})
>>> pool(t, 7).select("group", "count", "selection_rate").rows()
[('a', 100, 0.4), ('2 groups of under 7', 10, 0.4)]
>>> pool(t, 30).select("group", "count", "selection_rate").rows()
[('a', 100, 0.4), ('2 groups of under 30 (rates withheld)', 10, None)]
"""

from __future__ import annotations

import polars as pl

#: Rates pooled from counts: rate -> (numerator per group, denominator per group).
_FROM_COUNTS = {
    "selection_rate": ("n_predicted_positives", "count"),
    "tpr": ("tp", "n_positives"),
    "fpr": ("fp", "negatives"),
    "precision": ("tp", "n_predicted_positives"),
}
#: Means pooled weighted by group size.
_WEIGHTED = ("accuracy", "mean_prediction", "mae", "share")


DEFAULT_MIN_SIZE = 30


def min_size(summary: dict) -> int:
    """The minimum group size a stored fairness summary was judged with."""
    return int((summary.get("params") or {}).get("min_group_size") or DEFAULT_MIN_SIZE)


def label(n_groups: int, min_size: int, withheld: bool = False) -> str:
    """The ``group`` of a pooled row, e.g. ``"2 groups of under 30"`` (``withheld``: with " (rates withheld)")."""
    text = f"{n_groups} group{'s' if n_groups != 1 else ''} of under {min_size}"
    return text + " (rates withheld)" if withheld else text


def pool(by_group: pl.DataFrame, min_size: int) -> pl.DataFrame:
    """``by_group`` with each feature's groups of fewer than ``min_size`` rows pooled into one row."""
    if by_group.is_empty() or "count" not in by_group.columns:
        return by_group
    small = pl.col("count") < min_size
    if not by_group.select(small.any()).item():
        return by_group
    parts = []
    for (feature,), rows in by_group.group_by("feature", maintain_order=True):
        few = rows.filter(small)
        if few.is_empty():
            parts.append(rows)
            continue
        pooled = _pooled(few, rows.filter(~small), feature, min_size)
        parts += [rows.filter(~small), pl.DataFrame([{c: pooled.get(c) for c in by_group.columns}],
                                                     schema=by_group.schema)]
    return pl.concat(parts)


def _pooled(few: pl.DataFrame, judged: pl.DataFrame, feature, min_size: int) -> dict:
    """The pooled row's values; columns not listed (CIs, ratios to the reference) stay empty."""
    total = int(few["count"].sum())
    out = {"feature": feature, "group": label(few.height, min_size, total < min_size), "count": total,
           "flagged_small": True, "is_reference": False}
    if total < min_size:
        return out | {"share": float(few["share"].sum())} if "share" in few.columns else out
    counts = {}
    if {"n_positives", "n_predicted_positives"} <= set(few.columns):
        pos, pp = few["n_positives"].cast(pl.Float64), few["n_predicted_positives"].cast(pl.Float64)
        tp = (few["tpr"].fill_nan(0).fill_null(0) * pos) if "tpr" in few.columns else None
        counts = {"count": few["count"].cast(pl.Float64), "n_positives": pos, "n_predicted_positives": pp,
                  "negatives": few["count"].cast(pl.Float64) - pos}
        if tp is not None:
            counts |= {"tp": tp, "fp": pp - tp}
        out["n_positives"], out["n_predicted_positives"] = int(pos.sum()), int(pp.sum())
    for rate, (num, den) in _FROM_COUNTS.items():
        if rate in few.columns and num in counts and den in counts:
            d = float(counts[den].sum())
            out[rate] = float(counts[num].sum()) / d if d else None
    for mean in _WEIGHTED:
        if mean in few.columns:
            w = few["count"].cast(pl.Float64)
            vals = few[mean].cast(pl.Float64)
            out[mean] = float((vals * w).sum() / w.sum()) if mean != "share" else float(vals.sum())
    if "impact_ratio" in few.columns and "selection_rate" in out and not judged.is_empty():
        # the comparison rate every impact ratio of this feature divides by
        ref = judged.filter(pl.col("impact_ratio") > 0)
        if not ref.is_empty() and out["selection_rate"] is not None:
            top = ref["selection_rate"][0] / ref["impact_ratio"][0]
            out["impact_ratio"] = out["selection_rate"] / top if top else None
    return out
