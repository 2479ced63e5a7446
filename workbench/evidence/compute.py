"""Evidence computed where the data is, then recorded by whoever holds the store.

Both workspaces run these functions: the file workspace in its own process, the remote
workspace in the client's, next to the data and the model. What needs the data happens here
(scoring ``X`` with the version, SHAP values, group rates, drift tests). What the store's
holder must decide is left to the ``record_*`` operations, which run where the store is (the
server, through HTTP): identifying values become keyed tokens with the store's key, and
verdicts are reached with the store's policy for the model's risk tier. A client never sends
a verdict of its own, and every record names the digests of the inputs it was computed from.

``ws`` is a :class:`~workbench.workspace.Workspace` or a
:class:`~workbench.remote.RemoteWorkspace`: only their public methods are used.
"""

from __future__ import annotations

import hashlib
from typing import Any

import polars as pl

from ..datasets import fingerprint, to_polars
from ..errors import ValidationError
from ..registry.models import ModelVersion


def version_ref(ws, model_version) -> tuple[str, int]:
    """(name, version) of a :class:`ModelVersion` or a ``(name, version)`` pair that exists.

    Raises
    ------
    ValidationError
        ``model_version`` is neither.
    NotFoundError
        The pair names no registered version.
    """
    if isinstance(model_version, ModelVersion):
        return model_version.name, model_version.version
    if isinstance(model_version, tuple) and len(model_version) == 2:
        mv = ws.get_model_version(*model_version)
        return mv.name, mv.version
    raise ValidationError("Give a ModelVersion (from register_model or get_model_version) or (name, version).")


def input_digests(**inputs) -> dict[str, str]:
    """``{name: sha256}`` of each input given (frames, arrays, series; None skipped): what a
    stored piece of evidence says it was computed from (:func:`workbench.datasets.fingerprint`)."""
    out = {}
    for name, value in inputs.items():
        if value is None:
            continue
        if isinstance(value, pl.Series):
            frame = value.to_frame(name)
        elif isinstance(value, (pl.DataFrame, pl.LazyFrame)) or hasattr(value, "columns"):
            frame = to_polars(value)
        else:
            frame = pl.Series(name, value).to_frame()
        out[name] = fingerprint(frame)[0]
    return out


class ProgressBar:
    """A tqdm bar (a notebook widget or terminal line) fed by ``update(done, total)``."""

    def __init__(self, title: str, unit: str = "rows") -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=title, unit=unit)

    def update(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``."""
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        """End the bar."""
        self._bar.close()


def _with_bar(progress: bool, title: str, unit: str, work):
    bar = ProgressBar(title, unit=unit) if progress else None
    try:
        return work(bar.update if bar else None)
    finally:
        if bar:
            bar.close()


def model_inputs(model, frame: pl.DataFrame, sensitive: list[str]):
    """The columns the model was fitted on (pandas), else every non-sensitive column."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return frame.drop(sensitive).to_pandas()
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValidationError(f"X lacks the model's input column(s) {missing[:8]}.")
    return frame.select(list(names)).to_pandas()


def explain(ws, model_version, X, *, y=None, sample=None, max_rows: int | None = 10_000, row_id: str | None = None,
            masked: list[str] | None = None, progress: bool = False, allow_pickle: bool = False, **options):
    """SHAP values of a version on ``X``, recorded with ``ws.record_explanation`` (see
    :meth:`workbench.workspace.Workspace.explain`)."""
    from .explain import explain_model

    name, version = version_ref(ws, model_version)
    model = ws.load_model(name, version, allow_pickle=allow_pickle)
    frame = to_polars(X)
    result = _with_bar(progress, f"Explaining {name} v{version}", "rows", lambda update: explain_model(
        model, frame, y=y, sample=sample, max_rows=max_rows, row_id=row_id, progress=update, **options))
    summary = {**result.summary(), "inputs": input_digests(X=frame, y=y)}
    recorded = ws.record_explanation(name, version, summary, result.to_frame(with_values=True), row_id=row_id,
                                     masked=masked)
    result.evidence_id = recorded["evidence_id"]
    return result


def fairness(ws, model_version, X, y_true, *, sensitive_features, y_pred=None, threshold: float = 0.5,
             reference_group=None, min_group_size: int = 30, n_bootstrap: int = 200, task: str | None = None,
             favorable_label: int = 1, allow_pickle: bool = False):
    """Fairness across groups, recorded (and judged by the store's policy) with
    ``ws.record_fairness`` (see :meth:`workbench.workspace.Workspace.fairness`)."""
    from .fairness import fairness_report

    name, version = version_ref(ws, model_version)
    frame = to_polars(X)
    features = [sensitive_features] if isinstance(sensitive_features, str) else list(sensitive_features)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValidationError(f"Sensitive feature(s) {missing} are not columns of X (it has {frame.columns[:12]}...).")
    if frame.height == 0:  # before the model predicts on nothing (scikit-learn's error names no input)
        raise ValidationError("X has no rows: fairness needs the predictions and outcomes of at least one "
                              "person per group.")
    model = ws.load_model(name, version, allow_pickle=allow_pickle)
    task = task or ("binary" if hasattr(model, "predict_proba") else "regression")
    given_pred = y_pred
    if y_pred is None:
        inputs = model_inputs(model, frame, features)
        if task == "binary":
            y_pred = (model.predict_proba(inputs)[:, 1] >= threshold).astype(int)
        else:
            y_pred = model.predict(inputs)
    report = fairness_report(y_true, y_pred, frame.select(features), task=task, reference_group=reference_group,
                             min_group_size=min_group_size, n_bootstrap=n_bootstrap, favorable_label=favorable_label)
    stored = report.to_dict()  # JSON-safe; the per-group rows go to Parquet, not here
    stored.pop("by_group")
    numbers = stored.pop("summary")
    summary = {**stored, **numbers, "threshold": threshold, "favorable_label": favorable_label,
               "inputs": input_digests(X=frame, y_true=y_true, y_pred=given_pred)}
    recorded = ws.record_fairness(name, version, summary, report.by_group)
    report.evidence_id, report.verdict = recorded["evidence_id"], recorded["verdict"]
    report.reasons, report.policy = recorded["reasons"], recorded["policy"]
    return report


def drift(ws, reference, current, *, columns: list[str] | None = None, column_kinds: dict | None = None,
          model_version=None, target: str | None = None, prediction: str | None = None, engine: str = "workbench",
          progress: bool = False):
    """Drift of ``current`` against ``reference``; with ``model_version`` recorded (and judged by
    the store's policy) with ``ws.record_drift`` (see :meth:`workbench.workspace.Workspace.drift`)."""
    from . import drift as stats

    if engine not in ("workbench", "evidently"):
        raise ValidationError(f"engine must be 'workbench' or 'evidently', got {engine!r}.")
    name = version = None
    if model_version is not None:
        name, version = version_ref(ws, model_version)
        ws.get_model_version(name, version)  # refuse an unknown version before the work
    options = dict(columns=columns, column_kinds=column_kinds, target=target, prediction=prediction)
    if engine == "evidently":
        from .drift_evidently import evidently_report

        # the HTML shows values: identifying ones as the store's tokens
        if model_version is not None and not isinstance(reference, stats.ReferenceProfile):
            current, reference = ws.pseudonymise_frames(name, version, [to_polars(current), to_polars(reference)])
        report = evidently_report(reference, current, **options)
    else:
        report = _with_bar(progress, "Drift", "columns",
                           lambda update: stats.drift_report(reference, current, progress=update, **options))
    if model_version is None:
        return report
    summary = {**report.summary(), "inputs": _drift_inputs(reference, current)}
    recorded = ws.record_drift(name, version, summary, report.columns, html=report.html)
    report.evidence_id, report.verdict = recorded["evidence_id"], recorded["verdict"]
    report.reasons, report.policy = recorded["reasons"], recorded["policy"]
    return report


def _drift_inputs(reference: Any, current: Any) -> dict[str, str]:
    """Digests of what drift read: a frame's content, a file's bytes (a prepared profile is the
    reference's own summary, and is named so)."""
    from .drift import ReferenceProfile

    named = {}
    for label, value in (("reference", reference), ("current", current)):
        if isinstance(value, ReferenceProfile):
            named[label] = "a prepared ReferenceProfile"
        elif isinstance(value, (str, list, tuple)) or hasattr(value, "__fspath__"):
            paths = [value] if isinstance(value, str) or hasattr(value, "__fspath__") else list(value)
            named[label] = ",".join(_file_sha256(p) for p in paths)
        else:
            named.update(input_digests(**{label: value}))
    return named


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["version_ref", "input_digests", "model_inputs", "explain", "fairness", "drift", "ProgressBar"]
