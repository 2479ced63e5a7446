"""Plotly figures for monitoring: timelines with alert markers, and one feature's distributions.

Pure functions over :class:`~workbench.monitoring.windows.MonitorReport` frames, like
:mod:`workbench.ui.evidence_charts`.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from .compare_charts import plotly_text

_PERFORMANCE = {"classification": ("auc", "accuracy", "f1"), "regression": ("rmse", "mae")}
_ROWS = ("volume", "drift share", "performance", "latency (ms)", "error rate")
_METRIC_ROW = {"rows": 1, "drift_share": 2, "accuracy": 3, "auc": 3, "f1": 3, "rmse": 3, "mae": 3,
               "latency_p95_ms": 4, "error_rate": 5}


def timelines(windows: pl.DataFrame, task: str, thresholds: dict) -> go.Figure:
    """Volume, drift share, performance, latency and error rate per window; breaches in red."""
    x = windows["window_start"].to_list()
    fig = make_subplots(rows=5, cols=1, shared_xaxes=True, vertical_spacing=0.04, subplot_titles=_ROWS)
    fig.add_trace(go.Bar(x=x, y=windows["rows"].to_list(), name="predictions", marker_color="#1f4e79"), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=windows["drift_share"].to_list(), name="drift share", mode="lines+markers"), 2, 1)
    for metric in _PERFORMANCE[task]:
        if metric in windows.columns:
            fig.add_trace(go.Scatter(x=x, y=windows[metric].to_list(), name=metric, mode="lines+markers"), 3, 1)
    for q in ("p50", "p95", "p99"):
        fig.add_trace(go.Scatter(x=x, y=windows[f"latency_{q}_ms"].to_list(), name=f"latency {q}", mode="lines"), 4, 1)
    fig.add_trace(go.Scatter(x=x, y=windows["error_rate"].to_list(), name="error rate", mode="lines+markers"), 5, 1)
    for key, row in (("max_drift_share", 2), ("max_error_rate", 5), ("max_latency_p95_ms", 4)):
        if thresholds.get(key) is not None:
            fig.add_hline(y=thresholds[key], line_dash="dash", line_color="#b00020", row=row, col=1)
    marks = [(w["window_start"], b) for w in windows.select(["window_start", "breaches"]).iter_rows(named=True)
             for b in w["breaches"]]
    for row in sorted({_METRIC_ROW.get(b["metric"], 1) for _, b in marks}):
        hits = [(t, b) for t, b in marks if _METRIC_ROW.get(b["metric"], 1) == row]
        fig.add_trace(go.Scatter(x=[t for t, _ in hits], y=[b["value"] for _, b in hits], mode="markers",
                                 marker=dict(symbol="x", size=12, color="#b00020"), name="alert",
                                 text=[plotly_text(b["rule"]) for _, b in hits], hoverinfo="text+x",
                                 showlegend=row == min(_METRIC_ROW.get(b["metric"], 1) for _, b in marks)), row, 1)
    fig.update_layout(height=900, template="plotly_white", margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.05))
    return fig


def overlay(reference: pl.Series, current: pl.Series, feature: str, kind: str) -> go.Figure:
    """Reference against current for one feature: shares per value, or overlaid histograms."""
    name = plotly_text(feature)
    if kind == "numerical":
        fig = go.Figure([go.Histogram(x=reference.drop_nulls().to_list(), name="reference", histnorm="probability density",
                                      opacity=0.55, nbinsx=40),
                         go.Histogram(x=current.drop_nulls().to_list(), name="current", histnorm="probability density",
                                      opacity=0.55, nbinsx=40)])
        fig.update_layout(barmode="overlay")
    else:
        shares = []
        for label, s in (("reference", reference), ("current", current)):
            vc = s.drop_nulls().cast(pl.String).value_counts(normalize=True, name="share")
            shares.append(go.Bar(x=[plotly_text(v) for v in vc[:, 0].to_list()], y=vc["share"].to_list(), name=label))
        fig = go.Figure(shares)
        fig.update_layout(barmode="group")
    fig.update_layout(title=f"{name}: reference against the chosen window", template="plotly_white",
                      margin=dict(l=10, r=10, t=50, b=10), xaxis_title=name)
    return fig


def side_by_side(windows: dict[str, pl.DataFrame], task: str) -> go.Figure:
    """Two (or more) versions' windows on shared axes: performance, drift share, latency p95, error rate."""
    perf = _PERFORMANCE[task][0]
    panels = ((perf, perf.upper() if perf == "auc" else perf), ("drift_share", "drift share"),
              ("latency_p95_ms", "latency p95 (ms)"), ("error_rate", "error rate"))
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in panels], shared_xaxes=True)
    colors = ["#1f4e79", "#c55a11", "#548235", "#7030a0"]
    for i, (label, frame) in enumerate(windows.items()):
        for j, (column, _) in enumerate(panels):
            if column in frame.columns:
                fig.add_trace(go.Scatter(x=frame["window_start"].to_list(), y=frame[column].to_list(), mode="lines+markers",
                                         name=plotly_text(label), legendgroup=label, showlegend=j == 0,
                                         line=dict(color=colors[i % len(colors)])), j // 2 + 1, j % 2 + 1)
    fig.update_layout(height=520, template="plotly_white", margin=dict(l=10, r=10, t=40, b=10))
    return fig
