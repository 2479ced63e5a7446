"""The monitoring part of :class:`~workbench.workspace.Workspace`: prediction logs, monitors, alerts.

A mixin, so the workspace stays one object for users while its modules stay short.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import polars as pl

from . import artifacts, evidence, monitor_store, monitoring
from .errors import ValidationError

COMMAND_TIMEOUT_S = 600


class MonitoringMethods:
    """Mixed into Workspace; uses its ``_require``, ``_call``, ``_read``, ``_version_ref``, ``store``."""

    def _put_batch(self, name: str, version: int, kind: str, frame: pl.DataFrame, *, ts: pl.Series | None = None,
                   extra: dict | None = None) -> int:
        digest, _ = artifacts.put_bytes(self.store.artifact_root, evidence.parquet_bytes(frame))
        first, last = (ts.min(), ts.max()) if ts is not None else (None, None)
        return self._call(lambda conn: monitor_store.record_batch(
            conn, self.user, self.role, name=name, version=version, kind=kind, sha256=digest, rows=frame.height,
            first_ts=first, last_ts=last, extra=extra))

    def _batches(self, name: str, version: int, kind: str, *, last: bool = False) -> list[pl.DataFrame]:
        """The batches logged for a version, oldest first (``last``: only the newest is read)."""
        digests = self._read(monitor_store.BATCHES_SQL, [name, version, kind])["sha256"].to_list()
        return monitoring.checked_frames(self.store.artifact_root, digests[-1:] if last else digests)

    def log_predictions(self, model_version, frame, *, timestamp: str = "timestamp", request_id: str = "request_id",
                        prediction: str = "prediction", label: str | None = None, latency: str = "latency_ms",
                        error: str = "error", marks: dict[str, str] | None = None) -> dict:
        """Log a batch of a version's predictions: time, features, prediction, and optionally
        the label, latency (ms) and an error flag. Every other column is a feature.

        Request ids and identifying feature columns (``marks``, else the marks of the
        version's data sets, else the detector's) are stored as keyed tokens
        (:mod:`workbench.pseudonyms`), never as given.
        Returns ``{"batch_id", "rows", "request_ids"}``: the stored (tokenised) ids, generated
        when the frame has no ``request_id`` column. Labels arriving later are joined on
        them; :meth:`log_labels` takes the original ids or these.
        """
        from .datasets import to_polars

        self._require("log_predictions")
        name, version = self._version_ref(model_version)
        self.get_model_version(name, version)
        batch = monitoring.prediction_batch(to_polars(frame), timestamp=timestamp, request_id=request_id,
                                            prediction=prediction, label=label, latency=latency, error=error)
        features = batch.drop([c for c in monitoring.RESERVED if c in batch.columns])
        batch = self._pseudonymise(batch, ["request_id", *self._identifying(features, name, version, marks)])
        batch_id = self._put_batch(name, version, "predictions", batch, ts=batch["timestamp"])
        return {"batch_id": batch_id, "rows": batch.height, "request_ids": batch["request_id"]}

    def log_labels(self, model_version, frame, *, request_id: str = "request_id", label: str = "label") -> dict:
        """Labels that arrived after the predictions, joined on ``request_id`` when read.

        Returns ``{"batch_id", "rows", "matched", "unknown"}``: ``unknown`` counts request ids no
        logged prediction has (kept, and reported, in case their predictions arrive later).
        """
        from .datasets import to_polars

        self._require("log_predictions")
        name, version = self._version_ref(model_version)
        self.get_model_version(name, version)
        batch = self._pseudonymise(monitoring.label_batch(to_polars(frame), request_id=request_id, label=label),
                                   ["request_id"])
        matched = monitoring.known_request_ids(self._batches(name, version, "predictions"), batch["request_id"])
        unknown = batch["request_id"].n_unique() - matched
        batch_id = self._put_batch(name, version, "labels", batch, extra={"matched": matched, "unknown": unknown})
        return {"batch_id": batch_id, "rows": batch.height, "matched": matched, "unknown": unknown}

    def log_reference(self, model_version, data, *, marks: dict[str, str] | None = None) -> int:
        """Keep ``data`` (e.g. the training features) as the version's reference for drift
        monitoring; identifying columns are stored as tokens, as in :meth:`log_predictions`."""
        from .datasets import to_polars

        self._require("log_predictions")
        name, version = self._version_ref(model_version)
        self.get_model_version(name, version)
        frame = to_polars(data)
        if frame.height == 0:
            raise ValidationError("The reference data set is empty.")
        frame = self._pseudonymise(frame, self._identifying(frame, name, version, marks))
        return self._put_batch(name, version, "reference", frame)

    def set_monitor_policy(self, name: str, *, retrain_command: list[str] | None = None, **thresholds) -> dict:
        """Thresholds a monitored window must keep (see ``monitoring.DEFAULT_THRESHOLDS``), and
        a command (a list of arguments, run without a shell) to run when a new alert is raised."""
        self._require("manage_policies")
        values = monitoring.check_thresholds(thresholds)
        if retrain_command is not None and (not isinstance(retrain_command, (list, tuple)) or not retrain_command
                                            or not all(isinstance(a, str) for a in retrain_command)):
            raise ValidationError("retrain_command must be a non-empty list of strings, e.g. ['python', 'retrain.py'].")
        command = list(retrain_command) if retrain_command else None
        self._call(lambda conn: monitor_store.set_policy(conn, self.user, self.role, name, values, command))
        return {"thresholds": values, "retrain_command": command}

    def monitor_policy(self, name: str) -> dict:
        self._model_exists(name)
        thresholds, command = self._in_transaction(lambda conn: monitor_store.get_policy(conn, name))
        return {"thresholds": thresholds or dict(monitoring.DEFAULT_THRESHOLDS), "retrain_command": command,
                "default": thresholds is None}

    def monitor(self, model_version, window: str = "1d", *, reference: Any = None, start=None, end=None,
                alerts: bool = True, allow_pickle: bool = False) -> monitoring.MonitorReport:
        """Per ``window`` of logged predictions: volume, latency, errors, performance over the
        labelled rows, drift against the reference (default: the one logged with
        :meth:`log_reference`), and the monitor policy's breaches. With ``alerts`` (needs a
        data scientist or lead), new breaches are recorded as alerts and the policy's
        retraining command is run once, its exit status and output recorded.
        """
        window = monitoring.parse_window(window)
        if alerts:
            self._require("record_alerts")
        name, version = self._version_ref(model_version)
        mv = self.get_model_version(name, version)
        lo, hi = monitoring.window_bounds(start, end)
        batches = self._batches(name, version, "predictions")
        if not batches:
            raise ValidationError(f"{name} v{version} has no logged predictions: log some with ws.log_predictions().")
        logs = monitoring.read_logs(batches, self._batches(name, version, "labels"), lo, hi)
        if reference is None:
            references = self._batches(name, version, "reference", last=True)
            reference = references[0] if references else None
        task = "classification" if hasattr(self.load_model(name, version, allow_pickle=allow_pickle), "predict_proba") else "regression"
        policy = self.monitor_policy(name)
        report = monitoring.monitor(logs, window=window, task=task, thresholds=policy["thresholds"], reference=reference)
        if alerts:
            self._raise_alerts(name, version, report, policy["retrain_command"])
        report.alerts = self.alerts(name).filter(pl.col("version") == mv.version)
        return report

    def _raise_alerts(self, name: str, version: int, report, command: list[str] | None) -> None:
        breaches = [{**b, "window_start": w["window_start"], "window_end": w["window_end"]}
                    for w in report.windows.iter_rows(named=True) for b in w["breaches"]]
        new = self._call(lambda conn: monitor_store.record_alerts(conn, self.user, self.role, name, version, breaches))
        if new and command:
            exit_code, output = _run(command, {"WORKBENCH_ALERT_ID": str(new[-1]), "WORKBENCH_MODEL": name,
                                               "WORKBENCH_VERSION": str(version), "WORKBENCH_STORE": self.store.location})
            self._call(lambda conn: monitor_store.record_command(conn, self.user, self.role, name, version, new[-1],
                                                                 command, exit_code, output))

    def monitored_versions(self) -> pl.DataFrame:
        """Versions with logged predictions: how many batches and rows, over which time span."""
        return self._read(monitor_store.MONITORED_SQL)

    def alerts(self, name: str | None = None) -> pl.DataFrame:
        """Recorded alerts, newest window first (with the command each ran and its exit status)."""
        return self._read_for_model(monitor_store.ALERTS_SQL, name)


def _run(command: list[str], env: dict[str, str]) -> tuple[int | None, str]:
    """Run the retraining command without a shell; (exit code or None if it could not run, output tail)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                             env={**os.environ, **env})
    except FileNotFoundError:
        return None, f"command not found: {command[0]}"
    except subprocess.TimeoutExpired as exc:
        return None, f"timed out after {COMMAND_TIMEOUT_S} s\n{(exc.stdout or '')[-2000:]}"
    return out.returncode, (out.stdout + out.stderr)[-4000:]
