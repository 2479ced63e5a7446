"""Charts for comparing runs: parallel coordinates, overlaid metric curves and scatter plots.

They draw what :mod:`workbench.tracking.compare` returns (``ws.comparison_frame``,
``ws.metric_curves``) and import no streamlit, so notebooks use them as they are. User text
(run names, keys, param values) is escaped, so plotly never reads it as markup.

Example::

    from workbench.ui import compare_charts
    ids = ws.search_runs("metrics.auc > 0.8", max_results=5)["run_id"].to_list()
    compare_charts.curves_figure(ws.metric_curves(ids, keys=["val_loss"]))
"""

from __future__ import annotations

import html
import math
from collections import Counter

import numpy as np
import plotly.colors as pc
import plotly.graph_objects as go
import polars as pl

from ..errors import ValidationError
from ..tracking.compare import MAX_CATEGORIES, MAX_DIMENSIONS, labels

# -- charts --------------------------------------------------------------------------------
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173",
            "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476"]
_DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]


def plotly_text(text) -> str:
    """User text for plotly: its pseudo-HTML (<b>, <a href>, <br>) must show as typed."""
    return html.escape(str(text), quote=False)


def _short(name: str, limit: int = 32) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def _finite(series: pl.Series) -> list:
    """Values for plotly: NaN and +-inf become None (plotly draws a gap, not a broken axis)."""
    return [v if v is not None and math.isfinite(v) else None for v in series.cast(pl.Float64).to_list()]


def _finite_array(series: pl.Series) -> np.ndarray:
    """As :func:`_finite`, as a float array (NaN for gaps): fast for long series."""
    values = series.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.where(np.isfinite(values), values, np.nan)


def _empty_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=plotly_text(title), xaxis={"visible": False}, yaxis={"visible": False},
                      annotations=[{"text": plotly_text(message), "showarrow": False, "xref": "paper", "yref": "paper",
                                    "x": 0.5, "y": 0.5, "font": {"size": 14}}])
    return fig


def _framelabels(frame: pl.DataFrame) -> list[str]:
    if "run_name" not in frame.columns:
        return [str(i + 1) for i in range(frame.height)]
    names = [str(n) for n in frame.get_column("run_name").to_list()]
    ids = frame.get_column("run_id").to_list() if "run_id" in frame.columns else [str(i) for i in range(len(names))]
    return labels(names, [str(i) for i in ids])


def _dimension_kind(col: pl.Series) -> str | None:
    """'number' / 'category' when ``col`` can be an axis, else None."""
    if col.dtype.is_numeric() and col.dtype != pl.Boolean:
        return "number" if any(v is not None for v in _finite(col)) else None
    if col.dtype in (pl.String, pl.Boolean, pl.Categorical):
        n = col.drop_nulls().n_unique()
        return "category" if 1 <= n <= MAX_CATEGORIES else None
    return None


def _varies(col: pl.Series, kind: str) -> bool:
    values = [v for v in _finite(col) if v is not None] if kind == "number" else col.drop_nulls().to_list()
    return len(set(values)) > 1


def _axis_values(col: pl.Series, kind: str) -> dict:
    if kind == "number":
        return {"values": _finite(col)}
    cats = sorted({str(v) for v in col.drop_nulls().to_list()})
    code = {c: i for i, c in enumerate(cats)}
    # Raw text: parcoords draws tick text as plain SVG text (entities would show as typed).
    return {"values": [None if v is None else code[str(v)] for v in col.to_list()],
            "tickvals": list(range(len(cats))), "ticktext": [_short(c, 20) for c in cats]}


def _grey_for_missing(values: list) -> dict:
    """Colour settings that draw runs without a colour value in grey, below the scale."""
    present = [v for v in values if v is not None]
    if len(present) == len(values) or not present:
        return {}
    lo, hi = min(present), max(present)
    span = (hi - lo) or 1.0
    below = lo - 0.05 * span
    edge = (lo - below) / (hi - below)
    viridis = pc.sequential.Viridis
    scale = [[0.0, "#b0b0b0"], [edge * 0.999, "#b0b0b0"]]
    scale += [[edge + (1 - edge) * i / (len(viridis) - 1), c] for i, c in enumerate(viridis)]
    return {"color": [below if v is None else v for v in values], "colorscale": scale, "cmin": below, "cmax": hi}


def parallel_coordinates(frame: pl.DataFrame, color: str | None = None,
                         max_dimensions: int = MAX_DIMENSIONS) -> go.Figure:
    """Parallel coordinates of a :func:`~workbench.tracking.compare.comparison_frame`: params left, metrics right.

    Numeric columns become axes, and so do text params with at most ``MAX_CATEGORIES``
    values (as categories). Columns that are equal for every run are left out while at
    least two varying ones remain. At most ``max_dimensions`` axes: params get up to half
    unless metrics need fewer. Lines are coloured by ``color`` (a column; default the first
    varying metric every run has), drawn as the last axis; runs without a value are grey.

    Raises
    ------
    ValidationError
        If ``max_dimensions`` is below 2, or ``color`` is not a column that can be an axis.
    """
    if max_dimensions < 2:
        raise ValidationError("max_dimensions must be at least 2.")
    kinds = {}
    for name in frame.columns:
        if name in ("run_id", "run_name"):
            continue
        kind = _dimension_kind(frame.get_column(name))
        if kind is not None:
            kinds[name] = kind
    if color is not None and color not in kinds:
        raise ValidationError(f"Cannot colour by {color!r}: choose a numeric column or a text param with few values.")
    varying = {c for c, k in kinds.items() if _varies(frame.get_column(c), k)}
    usable = [c for c in kinds if c in varying] if len(varying) >= 2 else list(kinds)
    if not usable:
        return _empty_figure("Parallel coordinates", "No numeric params or metrics to draw: log some, then compare again.")
    if color is None:  # the first metric every run has, else the first metric
        numeric = [c for c in usable if c.startswith("metrics.") and kinds[c] == "number"]
        color = next((c for c in numeric if None not in _finite(frame.get_column(c))), next(iter(numeric), None))
    rest = [c for c in usable if c != color]
    params = [c for c in rest if not c.startswith("metrics.")]
    metrics = [c for c in rest if c.startswith("metrics.")]
    budget = max_dimensions - (1 if color is not None else 0)
    n_params = min(len(params), budget, max(budget - len(metrics), max_dimensions // 2))
    chosen = params[:n_params] + metrics[:budget - n_params] + ([color] if color is not None else [])
    bare = Counter(c.split(".", 1)[-1] for c in chosen)
    dims = []
    for c in chosen:
        label = c.split(".", 1)[-1] if bare[c.split(".", 1)[-1]] == 1 else c
        dims.append({"label": plotly_text(_short(label)), **_axis_values(frame.get_column(c), kinds[c])})
    line: dict = {}
    if color is not None:
        cv = _axis_values(frame.get_column(color), kinds[color])
        bar = {"title": {"text": plotly_text(_short(color.split(".", 1)[-1], 20))}}
        if kinds[color] == "category":
            bar.update(tickvals=cv["tickvals"], ticktext=[plotly_text(t) for t in cv["ticktext"]])  # markup here
        line = {"color": cv["values"], "colorscale": "Viridis", "showscale": True, "colorbar": bar}
        line.update(_grey_for_missing(cv["values"]))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=line))
    fig.update_layout(title=f"Parallel coordinates of {frame.height} run{'s' if frame.height != 1 else ''}",
                      margin={"t": 110, "l": 60, "r": 60})
    return fig


def curves_figure(curves: pl.DataFrame, webgl: bool | None = None) -> go.Figure:
    """Overlaid metric curves from :func:`~workbench.tracking.compare.metric_curves`: a line per run and key.

    A run keeps one colour across keys; keys differ by dash. ``webgl`` (default: when
    more than 20,000 points) draws with WebGL, which stays smooth for 50 runs x 1,000 points.
    """
    keys = curves["key"].unique(maintain_order=True).to_list() if "key" in curves.columns else []
    if curves.is_empty():
        return _empty_figure("Metric curves", "No metric points for these runs: pick runs that logged metrics.")
    one_key = len(keys) == 1
    runs = curves.select("run_id", "run_name").unique(maintain_order=True)
    label = dict(zip(runs["run_id"].to_list(), labels(runs["run_name"].to_list(), runs["run_id"].to_list())))
    colour = {rid: _PALETTE[i % len(_PALETTE)] for i, rid in enumerate(label)}
    dash = {k: _DASHES[i % len(_DASHES)] for i, k in enumerate(keys)}
    trace = go.Scattergl if (webgl if webgl is not None else curves.height > 20_000) else go.Scatter
    traces = []
    for part in curves.partition_by(["run_id", "key"], maintain_order=True):
        rid, key = part["run_id"][0], part["key"][0]
        name = label[rid] if one_key else f"{label[rid]} \u00b7 {key}"
        traces.append(trace(x=part["step"].to_numpy(), y=_finite_array(part["value"]), mode="lines", name=plotly_text(name),
                            legendgroup=rid, line={"color": colour[rid], "dash": dash[key]},
                            hovertemplate="%{fullData.name}<br>step %{x}<br>value %{y}<extra></extra>"))
    fig = go.Figure(data=traces)
    fig.update_layout(title=plotly_text(f"{keys[0]} by step" if one_key else "Metric curves by step"),
                      xaxis_title="step", yaxis_title=plotly_text(keys[0]) if one_key else "value",
                      legend_title_text="run" if one_key else "run \u00b7 metric", hovermode="closest")
    return fig


def scatter_figure(frame: pl.DataFrame, x: str, y: str, color: str | None = None) -> go.Figure:
    """One marker per run of a :func:`~workbench.tracking.compare.comparison_frame`: column ``x`` against ``y``.

    Text columns make a categorical axis. ``color``: a numeric column to colour markers by
    (another column leaves the markers uncoloured).

    Raises
    ------
    ValidationError
        If ``x``, ``y`` or ``color`` is not a column of ``frame``.
    """
    for name in (x, y) + ((color,) if color else ()):
        if name not in frame.columns:
            raise ValidationError(f"No column {name!r} to plot; choose one of: "
                                  + ", ".join(c for c in frame.columns if c not in ("run_id", "run_name")) + ".")

    def axis(name):
        col = frame.get_column(name)
        if col.dtype.is_numeric() and col.dtype != pl.Boolean:
            return _finite(col)
        return [None if v is None else plotly_text(v) for v in col.to_list()]

    labels = [plotly_text(lab) for lab in _framelabels(frame)]
    marker: dict = {"size": 10}
    if color:
        cc = frame.get_column(color)
        if cc.dtype.is_numeric() and cc.dtype != pl.Boolean:
            marker.update(color=_finite_array(cc), colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": plotly_text(_short(color, 20))}})
    fig = go.Figure(go.Scatter(x=axis(x), y=axis(y), mode="markers", text=labels, marker=marker,
                               # Axis titles by reference: user text never enters the template.
                               hovertemplate="%{text}<br>%{xaxis.title.text}: %{x}<br>"
                                             "%{yaxis.title.text}: %{y}<extra></extra>"))
    fig.update_layout(title=plotly_text(f"{y} vs {x}"), xaxis_title=plotly_text(x), yaxis_title=plotly_text(y))
    return fig


__all__ = ["plotly_text", "parallel_coordinates", "curves_figure", "scatter_figure"]
