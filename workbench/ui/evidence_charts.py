"""Plotly figures for stored evidence: importance, beeswarm, dependence, waterfall, groups.

Pure functions over the frames :meth:`Workspace.evidence_detail` returns, so pages only
pick what to show. Feature names come from users: plotly reads some labels as markup,
so they are escaped.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl

from .compare_charts import plotly_text

_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=50, b=10))


def importance_bar(importance: list[dict], title: str = "Global importance (mean |SHAP|)", top: int = 20) -> go.Figure:
    """Horizontal bars of the ``top`` features by mean |SHAP|, the most important at the top.

    Parameters
    ----------
    importance : list of dict
        An explanation summary's ``global_importance`` rows (``feature``, ``mean_abs_shap``).
    title : str
        The chart's title (not escaped: not for user text).
    top : int
        How many features to show.
    """
    rows = sorted(importance, key=lambda r: r["mean_abs_shap"], reverse=True)[:top][::-1]
    fig = go.Figure(go.Bar(x=[r["mean_abs_shap"] for r in rows], y=[plotly_text(r["feature"]) for r in rows],
                           orientation="h", marker_color="#1f4e79"))
    fig.update_layout(title=title, xaxis_title="mean |SHAP value|", height=120 + 24 * len(rows), **_LAYOUT)
    return fig


def importance_pair(a: list[dict], b: list[dict], label_a: str, label_b: str, top: int = 15) -> go.Figure:
    """Side-by-side importance of two versions, on the features most important to either."""
    ia = {r["feature"]: r["mean_abs_shap"] for r in a}
    ib = {r["feature"]: r["mean_abs_shap"] for r in b}
    feats = sorted(set(ia) | set(ib), key=lambda f: max(ia.get(f, 0), ib.get(f, 0)), reverse=True)[:top][::-1]
    fig = go.Figure([go.Bar(x=[ia.get(f, 0) for f in feats], y=[plotly_text(f) for f in feats], orientation="h", name=plotly_text(label_a)),
                     go.Bar(x=[ib.get(f, 0) for f in feats], y=[plotly_text(f) for f in feats], orientation="h", name=plotly_text(label_b))])
    fig.update_layout(barmode="group", title="Importance of two versions", xaxis_title="mean |SHAP value|",
                      height=140 + 36 * len(feats), **_LAYOUT)
    return fig


def _numeric(values: pl.Series) -> np.ndarray | None:
    try:
        return values.cast(pl.Float64).to_numpy()
    except pl.exceptions.PolarsError:
        return None


def beeswarm(values: pl.DataFrame, features: list[str], max_points: int = 2000, seed: int = 0) -> go.Figure:
    """SHAP value per row for each feature, coloured by the feature's (scaled) value."""
    rows = values.sample(min(max_points, values.height), seed=seed) if values.height > max_points else values
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    for i, f in enumerate(features[::-1]):
        shap_values = rows[f].to_numpy()
        raw = _numeric(rows[f"value:{f}"]) if f"value:{f}" in rows.columns else None
        color = None
        if raw is not None and np.nanmax(raw) > np.nanmin(raw):
            color = (raw - np.nanmin(raw)) / (np.nanmax(raw) - np.nanmin(raw))
        fig.add_trace(go.Scattergl(x=shap_values, y=i + rng.uniform(-0.3, 0.3, len(shap_values)), mode="markers",
                                   marker=dict(size=4, color=color, colorscale="RdBu_r", cmin=0, cmax=1,
                                               showscale=i == 0, colorbar=dict(title="feature value")),
                                   name=plotly_text(f), showlegend=False))
    fig.update_layout(title="SHAP values per row", xaxis_title="SHAP value (effect on the model output)",
                      yaxis=dict(tickvals=list(range(len(features))), ticktext=[plotly_text(f) for f in features[::-1]]),
                      height=120 + 40 * len(features), **_LAYOUT)
    return fig


def dependence(values: pl.DataFrame, feature: str, color_by: str | None = None) -> go.Figure:
    """SHAP value of ``feature`` against its value, one marker per explained row.

    Parameters
    ----------
    values : polars.DataFrame
        An explanation's per-row table: a SHAP column per feature and, where stored,
        ``value:<feature>`` columns (else ``row_id`` is the x axis).
    feature : str
        The feature to draw.
    color_by : str, optional
        Another feature whose value colours the markers.
    """
    x = values[f"value:{feature}"] if f"value:{feature}" in values.columns else values["row_id"]
    color = _numeric(values[f"value:{color_by}"]) if color_by and f"value:{color_by}" in values.columns else None
    fig = go.Figure(go.Scattergl(x=x.to_list(), y=values[feature].to_list(), mode="markers",
                                 marker=dict(size=5, color=color, colorscale="Viridis", showscale=color is not None,
                                             colorbar=dict(title=plotly_text(color_by or "")))))
    fig.update_layout(title=f"Dependence: {plotly_text(feature)}", xaxis_title=plotly_text(feature), yaxis_title="SHAP value", **_LAYOUT)
    return fig


def waterfall(row: dict, features: list[str], base_value: float, masked: set[str], top: int = 12) -> go.Figure:
    """One row's contributions from the base value to the output; masked features show no value."""
    contrib = sorted(((f, row[f]) for f in features), key=lambda t: abs(t[1]), reverse=True)
    shown, rest = contrib[:top], contrib[top:]
    labels = [f"{plotly_text(f)} = {'•••' if f in masked else plotly_text(row.get(f'value:{f}', ''))}" for f, _ in shown]
    measures, values = ["relative"] * len(shown), [v for _, v in shown]
    if rest:
        labels.append(f"{len(rest)} other features")
        measures.append("relative")
        values.append(sum(v for _, v in rest))
    fig = go.Figure(go.Waterfall(orientation="h", measure=["absolute", *measures, "total"],
                                 y=["base value", *labels, "model output"], x=[base_value, *values, 0]))
    fig.update_layout(title="How this row's output is reached", height=160 + 30 * len(labels), **_LAYOUT)
    return fig


def group_bars(by_group: pl.DataFrame, metric: str, feature: str, threshold: float | None = None) -> go.Figure:
    """``metric`` for each group of one sensitive ``feature``, groups too small to judge in grey.

    Parameters
    ----------
    by_group : polars.DataFrame
        A fairness report's table: ``feature``, ``group``, ``count``, ``flagged_small`` and
        the metric columns.
    metric : str
        The column to draw (``selection_rate``, ``tpr`` ...).
    feature : str
        The sensitive feature whose groups are shown.
    threshold : float, optional
        Drawn as a dashed line.
    """
    rows = by_group.filter(pl.col("feature") == feature)
    colors = ["#bbbbbb" if small else "#1f4e79" for small in rows["flagged_small"].to_list()]
    fig = go.Figure(go.Bar(x=[plotly_text(g) for g in rows["group"].to_list()], y=rows[metric].to_list(), marker_color=colors,
                           text=[f"n={n}" for n in rows["count"].to_list()], textposition="outside"))
    if threshold is not None:
        fig.add_hline(y=threshold, line_dash="dash", line_color="#b00020", annotation_text=f"threshold {threshold}")
    fig.update_layout(title=f"{metric.replace('_', ' ')} by {plotly_text(feature)} (grey: too small to judge)",
                      yaxis_title=metric.replace("_", " "), **_LAYOUT)
    return fig


def trend(points: pl.DataFrame, metric: str) -> go.Figure:
    """A fairness metric across versions of one model (columns version, value, verdict)."""
    fig = go.Figure(go.Scatter(x=points["version"].to_list(), y=points["value"].to_list(), mode="lines+markers",
                               text=points["verdict"].to_list()))
    fig.update_layout(title=f"{metric.replace('_', ' ')} across versions", xaxis_title="version",
                      xaxis=dict(dtick=1), **_LAYOUT)
    return fig
