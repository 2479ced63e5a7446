"""Prediction logs and how a model version behaves over time: drift, performance, latency.

A batch of predictions is a Parquet file in the artifact folder (named by its sha256, checked
before it is read), recorded in ``prediction_batches``; labels that arrive later are batches
of their own, joined on ``request_id`` when read (the latest label of a request wins). A
reference data set for drift is kept the same way. :func:`monitor` reads them with DuckDB
and, per time window, computes:

- volume, latency p50/p95/p99, error rate;
- realized performance over the labelled rows: accuracy, precision, recall, F1 and ROC AUC
  for a classifier (scores >= 0.5 count as positive), RMSE and MAE for a regressor;
- the drift of the window's features (and prediction) against the reference, with
  :func:`workbench.evidence.drift.drift_report`;
- which thresholds of the monitor policy the window breaches.

Column names inside a stored batch are fixed: ``timestamp`` (UTC), ``request_id``,
``prediction``, optional ``label``, ``latency_ms``, ``error``; every other column is a feature.
"""

from __future__ import annotations

import io
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from ..errors import IntegrityError, NotFoundError, ValidationError
from ..store import artifacts
from ..store.connection import frame as sql_frame

RESERVED = ("timestamp", "request_id", "prediction", "label", "latency_ms", "error")

#: Thresholds a window is checked against; None: not checked. The rule says how it breaches.
DEFAULT_THRESHOLDS = {"max_drift_share": 0.5, "max_error_rate": 0.05, "max_latency_p95_ms": None,
                      "min_accuracy": None, "min_auc": None, "min_f1": None, "max_rmse": None, "max_mae": None,
                      "min_rows": None}
_CHECKS = {  # threshold -> (window column, breaches when value ...)
    "max_drift_share": ("drift_share", ">="), "max_error_rate": ("error_rate", ">"),
    "max_latency_p95_ms": ("latency_p95_ms", ">"), "min_accuracy": ("accuracy", "<"), "min_auc": ("auc", "<"),
    "min_f1": ("f1", "<"), "max_rmse": ("rmse", ">"), "max_mae": ("mae", ">"), "min_rows": ("rows", "<"),
}
_WINDOW = re.compile(r"^(\d+)([hdw])$")


def parse_window(window: str) -> str:
    """'6h', '1d', '7d', '1w' -> a polars duration; anything else is refused.

    >>> parse_window("1d"), parse_window("12h")
    ('1d', '12h')
    """
    m = _WINDOW.match(str(window).strip())
    if not m or int(m.group(1)) == 0:
        raise ValidationError(f"window must look like '6h', '1d' or '1w' (a number and h, d or w), got {window!r}.")
    return f"{int(m.group(1))}{m.group(2)}"


#: Thresholds that are shares or scores, so a limit above 1 could never (or always) breach.
_AT_MOST_ONE = {"max_drift_share", "max_error_rate", "min_accuracy", "min_auc", "min_f1"}


class _Unchanged:
    """The default of a policy setting the caller did not name: keep what is stored."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()


def check_thresholds(values: dict) -> dict:
    """The thresholds named in ``values``, checked; only these (an update changes what it names).

    None turns a check off. A limit is a finite number >= 0, and at most 1 for shares and scores.

    Parameters
    ----------
    values : dict
        Threshold name (a key of ``DEFAULT_THRESHOLDS``) -> number or None.

    Returns
    -------
    dict
        ``values`` with integers kept as given.

    Raises
    ------
    ValidationError
        An unknown threshold name, or a limit that is not a finite number >= 0 (or is
        above 1 for a share or score).

    >>> check_thresholds({"min_rows": 100})
    {'min_rows': 100}
    """
    unknown = sorted(set(values) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ValidationError(f"Unknown monitor threshold(s) {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}.")
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValidationError(f"Threshold {k} must be a finite number >= 0, or None to turn it off; got {v!r}.")
        if k in _AT_MOST_ONE and v > 1:
            raise ValidationError(f"Threshold {k} is a share or score between 0 and 1; got {v!r}.")
    return dict(values)


def effective_thresholds(stored: dict | None) -> dict:
    """The thresholds a model's windows are judged by: its stored policy over the defaults
    (a threshold added to the defaults later applies to policies stored before it)."""
    return {**DEFAULT_THRESHOLDS, **(stored or {})}


# -- writing batches --------------------------------------------------------------------------
def _timestamps(frame: pl.DataFrame, column: str) -> pl.Series:
    s = frame.get_column(column)
    if s.dtype == pl.String:
        parsed = s.str.to_datetime(time_zone="UTC", strict=False)
        bad = s.filter(parsed.is_null() & s.is_not_null())
        if len(bad):
            raise ValidationError(f"Column {column!r} has {len(bad)} value(s) that are not times, e.g. {bad[0]!r}.")
        s = parsed
    elif s.dtype == pl.Date:
        s = s.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    elif isinstance(s.dtype, pl.Datetime):
        s = s.dt.replace_time_zone("UTC") if s.dtype.time_zone is None else s.dt.convert_time_zone("UTC")
    else:
        raise ValidationError(f"Column {column!r} must hold times (datetime, date or ISO text), not {s.dtype}.")
    if s.null_count():
        raise ValidationError(f"Column {column!r} has {s.null_count()} missing time(s).")
    return s.cast(pl.Datetime("us", "UTC")).alias("timestamp")


def prediction_batch(frame: pl.DataFrame, *, timestamp: str, request_id: str, prediction: str, label: str | None,
                     latency: str, error: str) -> pl.DataFrame:
    """The batch as stored: reserved names, UTC times, a request id per row, checked.

    The keyword arguments name the columns of ``frame`` that hold each reserved column
    (``label`` None: no label). A missing ``request_id`` column gets random ids, a missing
    latency column nulls, a missing error column False; every other column is a feature.

    Raises
    ------
    ValidationError
        The timestamp, prediction or given label column is missing; the frame is empty; a
        feature column uses a reserved name; times cannot be read or are missing; request
        ids are missing or repeated; prediction, label or latency is not numeric.
    """
    names = {"timestamp": timestamp, "prediction": prediction}
    missing = [v for v in names.values() if v not in frame.columns]
    if label is not None and label not in frame.columns:
        missing.append(label)
    if missing:
        raise ValidationError(f"The predictions lack column(s) {missing}; they have {frame.columns[:12]}.")
    if frame.height == 0:
        raise ValidationError("No predictions to log: the frame is empty.")
    given = {timestamp, request_id, prediction, label, latency, error}
    clash = [c for c in frame.columns if c in RESERVED and c not in given]
    if clash:
        raise ValidationError(f"Feature column(s) {clash} use reserved names {RESERVED}; rename them.")
    out = {"timestamp": _timestamps(frame, timestamp)}
    if request_id in frame.columns:
        ids = frame.get_column(request_id).cast(pl.String)
        if ids.null_count() or ids.n_unique() != len(ids):
            raise ValidationError(f"Column {request_id!r} must give every prediction its own request id "
                                  f"({ids.null_count()} missing, {len(ids) - ids.n_unique()} repeated).")
    else:  # labels can still be joined later through the ids returned
        ids = pl.Series([uuid.uuid4().hex for _ in range(frame.height)], dtype=pl.String)
    out["request_id"] = ids.alias("request_id")
    out["prediction"] = _numeric(frame, prediction, "prediction")
    if label is not None:
        out["label"] = _numeric(frame, label, "label")
    out["latency_ms"] = _numeric(frame, latency, "latency_ms") if latency in frame.columns else pl.Series(
        "latency_ms", [None] * frame.height, dtype=pl.Float64)
    out["error"] = (frame.get_column(error).cast(pl.Boolean, strict=False).alias("error") if error in frame.columns
                    else pl.Series("error", [False] * frame.height))
    features = frame.drop([c for c in given if c in frame.columns])
    return pl.DataFrame(list(out.values())).hstack(features)


def _numeric(frame: pl.DataFrame, column: str, name: str) -> pl.Series:
    s = frame.get_column(column)
    if s.dtype == pl.Boolean:
        s = s.cast(pl.Int8)
    if not s.dtype.is_numeric():
        raise ValidationError(f"Column {column!r} must be numeric ({name}), not {s.dtype}.")
    return s.cast(pl.Float64).alias(name)


def label_batch(frame: pl.DataFrame, *, request_id: str, label: str) -> pl.DataFrame:
    """The label batch as stored: ``request_id`` (text) and ``label`` (Float64), checked.

    Parameters
    ----------
    frame : polars.DataFrame
        The labels as given; other columns are dropped.
    request_id, label : str
        The names of the columns holding the request ids and the labels.

    Raises
    ------
    ValidationError
        A column is missing, the frame is empty, a request id is missing, or a label is
        missing, infinite or not numeric.
    """
    missing = [c for c in (request_id, label) if c not in frame.columns]
    if missing:
        raise ValidationError(f"The labels lack column(s) {missing}; they have {frame.columns[:12]}.")
    if frame.height == 0:
        raise ValidationError("No labels to log: the frame is empty.")
    ids = frame.get_column(request_id).cast(pl.String)
    if ids.null_count():
        raise ValidationError(f"Column {request_id!r} has {ids.null_count()} missing request id(s).")
    labels = _numeric(frame, label, "label")
    if labels.null_count() or not labels.is_finite().all():
        raise ValidationError(f"Column {label!r} has missing or infinite labels; log only known outcomes.")
    return pl.DataFrame([ids.alias("request_id"), labels])


# -- reading -----------------------------------------------------------------------------------------
def checked_frames(root: Path, digests: list[str]) -> list[pl.DataFrame]:
    """The batch files, each read only after its content is checked against its digest
    (and decrypted, when artifacts are encrypted).

    Raises
    ------
    IntegrityError
        A file is missing from the artifact folder or no longer matches its digest.
    """
    frames = []
    for digest in digests:
        try:
            data = artifacts.get_bytes(root, digest)
        except NotFoundError:
            raise IntegrityError(f"Prediction log file {digest[:12]}... is missing from the artifact folder {root}.") from None
        frames.append(pl.read_parquet(io.BytesIO(data)))
    return frames


def read_logs(predictions: list[pl.DataFrame], labels: list[pl.DataFrame], start=None, end=None) -> pl.DataFrame:
    """All logged predictions (in [start, end)), with the latest label of each request joined in."""
    con = duckdb.connect()
    try:
        con.register("preds", pl.concat(predictions, how="diagonal_relaxed"))
        logged_label = "label" in [r[0] for r in con.execute("describe select * from preds").fetchall()]
        where, params = [], []
        for bound, op in ((start, ">="), (end, "<")):
            if bound is not None:
                where.append(f"p.timestamp {op} ?")
                params.append(bound)
        cond = f"where {' and '.join(where)}" if where else ""
        if not labels:
            return sql_frame(con, f"select p.* from preds p {cond} order by p.timestamp", params)
        # the batches in logging order: a later label of the same request wins
        con.register("late", pl.concat([f.select("request_id", "label").with_columns(pl.lit(i).alias("k"))
                                        for i, f in enumerate(labels)], how="vertical_relaxed"))
        label = "coalesce(l.late_label, p.label)" if logged_label else "l.late_label"
        select = f"p.* replace ({label} as label)" if logged_label else f"p.*, {label} as label"
        sql = (f"select {select} from preds p left join (select request_id, arg_max(label, k) as late_label "
               f"from late group by request_id) l using (request_id) {cond} order by p.timestamp")
        return sql_frame(con, sql, params)
    finally:
        con.close()


def known_request_ids(predictions: list[pl.DataFrame], ids: pl.Series) -> int:
    """How many of ``ids`` a logged prediction has."""
    if not predictions:
        return 0
    logged = pl.concat([f.select("request_id") for f in predictions])
    return int(ids.unique().is_in(logged["request_id"].implode()).sum())


# -- the monitor -------------------------------------------------------------------------------------
@dataclass
class MonitorReport:
    """Per window: volume, latency, errors, performance, drift and breaches; and the alerts."""

    windows: pl.DataFrame
    drift_by_window: pl.DataFrame
    thresholds: dict
    window: str
    task: str
    reference: bool
    alerts: pl.DataFrame = field(default_factory=pl.DataFrame)
    notes: list[str] = field(default_factory=list)
    logs: pl.DataFrame | None = field(default=None, repr=False)  # with window_start: for distributions
    reference_data: pl.DataFrame | None = field(default=None, repr=False)

    def window_values(self, feature: str, window_start) -> pl.Series:
        """One feature's logged values in the window starting at ``window_start``."""
        return self.logs.filter(pl.col("window_start") == window_start).get_column(feature)

    @property
    def breaching(self) -> pl.DataFrame:
        """The rows of ``windows`` with at least one breach."""
        return self.windows.filter(pl.col("breaches").list.len() > 0)


def _performance(task: str, y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn import metrics

    if len(y) == 0:
        return {}
    if task == "regression":
        return {"rmse": float(np.sqrt(np.mean((y - p) ** 2))), "mae": float(np.mean(np.abs(y - p)))}
    pred, y = p >= 0.5, y.astype(bool)
    tp, fp, fn = int(np.sum(pred & y)), int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    precision = tp / (tp + fp) if tp + fp else 0.0  # sklearn's zero_division=0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": float(np.mean(pred == y)), "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "auc": float(metrics.roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None}


def _breaches(row: dict, thresholds: dict) -> list[dict]:
    found = []
    for key, limit in thresholds.items():
        if limit is None:
            continue
        column, op = _CHECKS[key]
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        hit = {">=": value >= limit, ">": value > limit, "<": value < limit}[op]
        if hit:
            found.append({"metric": column, "value": float(value), "threshold": float(limit),
                          "rule": f"{column} {op} {limit}"})
    return found


def monitor(logs: pl.DataFrame, *, window: str, task: str, thresholds: dict, reference=None) -> MonitorReport:
    """Windows of ``logs`` (from :func:`read_logs`) judged by ``thresholds``; drift against ``reference``.

    Parameters
    ----------
    logs : polars.DataFrame
        The logged predictions, with labels joined in.
    window : str
        The window length, e.g. ``"1d"`` (:func:`parse_window`).
    task : str
        ``"classification"`` or ``"regression"``: which performance metrics are computed.
    thresholds : dict
        The effective thresholds (:func:`effective_thresholds`); None values are not checked.
    reference : polars or pandas DataFrame, ReferenceProfile, or None
        The reference for drift; None: drift is not computed (a note says so).

    Returns
    -------
    MonitorReport
        Its ``alerts`` are left empty: recording them is the caller's work.

    Raises
    ------
    ValidationError
        ``window`` is malformed, ``logs`` is empty, or the reference shares no column with
        the logged features and prediction.
    """
    from ..evidence.drift import ReferenceProfile, drift_report

    window = parse_window(window)
    if logs.height == 0:
        raise ValidationError("No predictions in that time range: nothing to monitor.")
    features = [c for c in logs.columns if c not in RESERVED]
    notes = []
    profile = None
    if reference is not None:
        ref_cols = [c for c in [*features, "prediction"] if c in (reference.columns if not isinstance(reference, ReferenceProfile) else reference.columns)]
        if not ref_cols:
            raise ValidationError(f"The reference shares no column with the logged features {features[:8]}.")
        profile = reference if isinstance(reference, ReferenceProfile) else ReferenceProfile.of(reference, ref_cols)
    else:
        notes.append("no reference data set: drift is not computed")
    logs = logs.with_columns(pl.col("timestamp").dt.truncate(window).alias("window_start"))
    logs = logs.with_columns(pl.col("window_start").dt.offset_by(window).alias("window_end"))
    rows, drift_rows = [], []
    for (start, end), part in logs.group_by(["window_start", "window_end"], maintain_order=True):
        part = part.drop(["window_start", "window_end"])
        lat = part["latency_ms"].drop_nulls() if "latency_ms" in part.columns else pl.Series([], dtype=pl.Float64)
        row = {"window_start": start, "window_end": end, "rows": part.height,
               "labelled": int(part["label"].is_not_null().sum()) if "label" in part.columns else 0,
               "error_rate": float(part["error"].cast(pl.Float64).mean()) if "error" in part.columns else None,
               "latency_p50_ms": lat.quantile(0.5, "linear") if len(lat) else None,
               "latency_p95_ms": lat.quantile(0.95, "linear") if len(lat) else None,
               "latency_p99_ms": lat.quantile(0.99, "linear") if len(lat) else None}
        if "label" in part.columns:
            known = part.filter(pl.col("label").is_not_null())
            row.update(_performance(task, known["label"].to_numpy(), known["prediction"].to_numpy()))
        if profile is not None:
            cols = [c for c in profile.columns if c in part.columns]
            try:
                report = drift_report(profile, part.select(cols), target=None,
                                      prediction="prediction" if "prediction" in cols else None)
                row.update(drift_share=report.drift_share, dataset_drift=report.dataset_drift,
                           prediction_drift=report.prediction_drift)
                drift_rows.append(report.columns.with_columns(pl.lit(start).alias("window_start")))
            except ValidationError as exc:  # e.g. every column of a tiny window is empty
                notes.append(f"window {start:%Y-%m-%d %H:%M}: drift not computed ({exc})")
        rows.append(row)
    for row in rows:
        row["breaches"] = _breaches(row, thresholds)
    windows = pl.DataFrame(rows, infer_schema_length=None)
    for col in ("accuracy", "precision", "recall", "f1", "auc", "rmse", "mae", "drift_share"):
        if col not in windows.columns:
            windows = windows.with_columns(pl.lit(None, dtype=pl.Float64).alias(col))
    drift = pl.concat(drift_rows, how="diagonal_relaxed") if drift_rows else pl.DataFrame()
    return MonitorReport(windows, drift, thresholds, window, task, profile is not None, notes=notes, logs=logs,
                         reference_data=reference if isinstance(reference, pl.DataFrame) else None)


def window_bounds(start, end) -> tuple[datetime | None, datetime | None]:
    """``start`` and ``end`` as UTC datetimes (from datetimes or ISO text); None leaves that side open.

    The range read is ``[start, end)``. A time without a zone is taken to be UTC, as logged
    times are, so a bound with a zone and one without compare as people expect.

    Raises
    ------
    ValidationError
        A bound is neither a datetime nor ISO text, or ``end`` is not after ``start``.
    """
    def parse(v, name):
        if v is None:
            return None
        if not isinstance(v, datetime):
            try:
                v = datetime.fromisoformat(str(v))
            except ValueError:
                raise ValidationError(f"{name} must be a datetime or ISO time, got {v!r}.") from None
        return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)
    s, e = parse(start, "start"), parse(end, "end")
    if s is not None and e is not None and e <= s:
        raise ValidationError(f"end {e} is not after start {s}: an empty time range.")
    return s, e


