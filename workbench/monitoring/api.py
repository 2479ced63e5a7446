"""The monitoring part of :class:`~workbench.workspace.Workspace`: prediction logs, monitors, alerts.

A mixin, so the workspace stays one object for users while its modules stay short.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .. import processes
from ..errors import ValidationError
from ..evidence import records as evidence
from ..operations import READ, operation
from ..people import roles
from ..store import artifacts
from . import logs as monitor_store
from . import retrain
from . import windows as monitoring


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

    @operation("log_predictions", writes=True)
    def log_predictions(self, model_version, frame, *, timestamp: str = "timestamp", request_id: str = "request_id",
                        prediction: str = "prediction", label: str | None = None, latency: str = "latency_ms",
                        error: str = "error", marks: dict[str, str] | None = None) -> dict:
        """Log a batch of a version's predictions: time, features, prediction, and optionally
        the label, latency (ms) and an error flag. Every other column is a feature.

        Request ids and identifying feature columns (``marks``, else the marks of the
        version's data sets, else the detector's) are stored as keyed tokens
        (:mod:`workbench.protection.pseudonyms`), never as given.
        Returns ``{"batch_id", "rows", "request_ids"}``: the stored (tokenised) ids, generated
        when the frame has no ``request_id`` column. Labels arriving later are joined on
        them; :meth:`log_labels` takes the original ids or these.
        """
        from ..datasets import to_polars

        name, version = self._version_ref(model_version)
        self.get_model_version(name, version)
        batch = monitoring.prediction_batch(to_polars(frame), timestamp=timestamp, request_id=request_id,
                                            prediction=prediction, label=label, latency=latency, error=error)
        features = batch.drop([c for c in monitoring.RESERVED if c in batch.columns])
        batch = self._pseudonymise(batch, ["request_id", *self._identifying(features, name, version, marks)])
        batch_id = self._put_batch(name, version, "predictions", batch, ts=batch["timestamp"])
        return {"batch_id": batch_id, "rows": batch.height, "request_ids": batch["request_id"]}

    @operation("log_predictions", writes=True)
    def log_labels(self, model_version, frame, *, request_id: str = "request_id", label: str = "label") -> dict:
        """Labels that arrived after the predictions, joined on ``request_id`` when read.

        Returns ``{"batch_id", "rows", "matched", "unknown"}``: ``unknown`` counts request ids no
        logged prediction has (kept, and reported, in case their predictions arrive later).
        """
        from ..datasets import to_polars

        name, version = self._version_ref(model_version)
        self.get_model_version(name, version)
        batch = self._pseudonymise(monitoring.label_batch(to_polars(frame), request_id=request_id, label=label),
                                   ["request_id"])
        matched = monitoring.known_request_ids(self._batches(name, version, "predictions"), batch["request_id"])
        unknown = batch["request_id"].n_unique() - matched
        batch_id = self._put_batch(name, version, "labels", batch, extra={"matched": matched, "unknown": unknown})
        return {"batch_id": batch_id, "rows": batch.height, "matched": matched, "unknown": unknown}

    @operation("log_predictions", writes=True)
    def log_reference(self, model_version, data, *, marks: dict[str, str] | None = None) -> int:
        """Keep ``data`` (e.g. the training features) as the version's reference for drift
        monitoring; identifying columns are stored as tokens, as in :meth:`log_predictions`.

        Returns the batch id. Raises ValidationError when ``data`` has no rows.
        """
        from ..datasets import to_polars

        name, version = self._version_ref(model_version)
        self.get_model_version(name, version)
        frame = to_polars(data)
        if frame.height == 0:
            raise ValidationError("The reference data set is empty.")
        frame = self._pseudonymise(frame, self._identifying(frame, name, version, marks))
        return self._put_batch(name, version, "reference", frame)

    @operation("manage_policies", writes=True)
    def set_monitor_policy(self, name: str, *, retrain_command=monitoring.UNCHANGED, **thresholds) -> dict:
        """Change the thresholds a monitored window must keep, and the retraining command.

        Only what is named changes; the rest of the stored policy stays (the audit event
        holds the policy before and after). Leads and admins only.

        Parameters
        ----------
        name : str
            The registered model.
        retrain_command : list of str or None, optional
            A command (a list of arguments, run without a shell) for the scheduler to run
            once per monitor check that raises a new alert (:mod:`workbench.monitoring.retrain`);
            None removes it; left out, it stays as it is.
        **thresholds
            Keys of ``monitoring.DEFAULT_THRESHOLDS``: a number, or None to turn that check off.

        Returns
        -------
        dict
            The whole policy now: ``{"thresholds", "retrain_command"}``.

        Raises
        ------
        ValidationError
            A threshold is unknown or out of range, ``retrain_command`` is not a non-empty
            list of non-empty strings, or nothing to change is named.
        NotFoundError
            No registered model is named ``name``.
        """
        changes = monitoring.check_thresholds(thresholds)
        command = retrain_command
        if command is not monitoring.UNCHANGED and command is not None:
            if (not isinstance(command, (list, tuple)) or not command
                    or not all(isinstance(a, str) and a for a in command)):
                raise ValidationError("retrain_command must be a non-empty list of strings, e.g. ['python', "
                                      "'retrain.py'], or None to remove it.")
            command = list(command)
        if not changes and command is monitoring.UNCHANGED:
            raise ValidationError(f"Name what to change: a threshold ({', '.join(monitoring.DEFAULT_THRESHOLDS)}) "
                                  "or retrain_command.")
        return self._call(lambda conn: monitor_store.set_policy(conn, self.user, self.role, name, changes, command))

    @operation(READ, writes=False)
    def monitor_policy(self, name: str) -> dict:
        """The model's monitor policy: ``{"thresholds", "retrain_command", "default"}``
        (``default``: no policy was set, the defaults apply)."""
        self._model_exists(name)
        thresholds, command = self._in_transaction(lambda conn: monitor_store.get_policy(conn, name))
        return {"thresholds": monitoring.effective_thresholds(thresholds), "retrain_command": command,
                "default": thresholds is None}

    @operation("record_alerts", writes=True, checked_inside=True)  # only with alerts=True
    def monitor(self, model_version, window: str = "1d", *, reference: Any = None, start=None, end=None,
                alerts: bool = True, allow_pickle: bool = False, task: str | None = None) -> monitoring.MonitorReport:
        """Per ``window`` of logged predictions: volume, latency, errors, performance over the
        labelled rows, drift against the reference (default: the one logged with
        :meth:`log_reference`), and the monitor policy's breaches. With ``alerts`` (needs a
        data scientist or lead), new breaches are recorded as alerts; when the policy names a
        retraining command, the newest new alert is marked pending for the scheduler, which
        runs it (never this process: see :mod:`workbench.monitoring.retrain`).

        ``task``: ``"classification"`` or ``"regression"``; default: read from the model
        (loading it).

        Raises
        ------
        PermissionDenied
            ``alerts`` is True and the user's role may not record alerts.
        ValidationError
            ``window``, ``start`` or ``end`` is malformed, the version has no logged
            predictions (or none in the range), or the reference shares no column with them.
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
        if task is None:
            model = self.load_model(name, version, allow_pickle=allow_pickle)
            task = "classification" if hasattr(model, "predict_proba") else "regression"
        elif task not in ("classification", "regression"):
            raise ValidationError(f"task is 'classification' or 'regression', not {task!r}.")
        policy = self.monitor_policy(name)
        report = monitoring.monitor(logs, window=window, task=task, thresholds=policy["thresholds"], reference=reference)
        if alerts:
            self._raise_alerts(name, version, report)
        report.alerts = self.alerts(name).filter(pl.col("version") == mv.version)
        return report

    def _raise_alerts(self, name: str, version: int, report) -> None:
        breaches = [{**b, "window_start": w["window_start"], "window_end": w["window_end"]}
                    for w in report.windows.iter_rows(named=True) for b in w["breaches"]]
        self._call(lambda conn: monitor_store.record_alerts(conn, self.user, self.role, name, version, breaches))

    @operation(READ, writes=False)
    def monitored_versions(self) -> pl.DataFrame:
        """Versions with logged predictions: how many batches and rows, over which time span."""
        return self._read(monitor_store.MONITORED_SQL)

    @operation(READ, writes=False)
    def alerts(self, name: str | None = None) -> pl.DataFrame:
        """Recorded alerts, newest window first, with the retraining command of each, its
        status (pending, running, ok, failed) and exit code. The command's ``output`` is
        given to leads and admins only; other roles get it as null."""
        rows = self._read_for_model(monitor_store.ALERTS_SQL, name)
        if not roles.allowed(self.role, "view_command_output"):
            rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("output"))
        return rows

    @operation("run_commands", writes=True)
    def run_pending_commands(self) -> list[dict]:
        """Run the retraining commands alerts left pending, each once (the scheduler's work).

        Only the scheduler may: ``workbench schedule run-due`` and ``workbench scheduler``
        call it. A command configured by one person never runs in another person's process.

        Returns
        -------
        list of dict
            Per command: ``alert_id``, ``model``, ``version``, ``status`` (ok, failed, or
            skipped: another scheduler took it) and ``exit_code``.
        """
        configured = retrain.configured_env()  # a broken configuration refuses before anything is claimed
        runner = processes.runner()
        outcomes = []
        for alert in self._read(monitor_store.COMMANDS_SQL).to_dicts():
            out = {"alert_id": alert["id"], "model": alert["name"], "version": alert["version"], "exit_code": None}
            if alert["command_status"] == "running":
                if processes.gone(alert["command_runner"]):
                    why = f"abandoned: the scheduler {alert['command_runner']} stopped before the command finished"
                    if self._call(lambda conn, a=alert: monitor_store.abandon_command(conn, self.user, self.role, a, why)):
                        outcomes.append({**out, "status": "failed", "error": why})
                continue
            command = self._call(lambda conn, a=alert: monitor_store.claim_command(conn, self.user, self.role, a, runner))
            if command is None:
                outcomes.append({**out, "status": "skipped"})
                continue
            if self.store.server_url is None:
                self.store.release()  # the command may open the store itself (a server's goes through it)
            exit_code, output = retrain.run_command(command, retrain.command_env(
                configured, store=self.store.location, alert_id=alert["id"], model=alert["name"],
                version=alert["version"], server_url=self.store.server_url))
            status = self._call(lambda conn, a=alert: monitor_store.finish_command(
                conn, self.user, self.role, a, runner, exit_code, output))
            outcomes.append({**out, "status": status or "failed", "exit_code": exit_code})
        return outcomes
