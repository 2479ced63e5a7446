"""Write ops of monitoring: prediction/label/reference batches, policies, alerts; each audited.

Ops run inside the writer's transaction (``op(conn) -> (result, events)``), like every write.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from ..registry import models as registry
from ..store import schema
from ..store.audit import Event
from .windows import UNCHANGED, effective_thresholds


def model_id(conn, name: str) -> int:
    """The id of the registered model ``name``; NotFoundError when there is none."""
    return registry.model_row(conn, name)["id"]


def record_batch(conn, actor: str, role: str, *, name: str, version: int, kind: str, sha256: str, rows: int,
                 first_ts=None, last_ts=None, extra: dict | None = None):
    """Write op: record a batch file already in the artifact folder for ``name`` v``version``.

    Parameters
    ----------
    kind : str
        ``"predictions"``, ``"labels"`` or ``"reference"``; the event is ``<kind>.log``.
    sha256 : str
        The batch file's digest.
    rows : int
        Rows in the batch.
    first_ts, last_ts : datetime, optional
        The batch's earliest and latest prediction time.
    extra : dict, optional
        Added to the audit event's payload.

    Returns
    -------
    batch_id : int
    events : list of Event

    Raises
    ------
    NotFoundError
        No registered model is named ``name`` (the version itself is not checked here).
    """
    t = schema.PredictionBatch.__table__
    batch_id = conn.execute(sa.insert(t).values(
        model_id=model_id(conn, name), version=version, kind=kind, sha256=sha256, rows=rows, first_ts=first_ts,
        last_ts=last_ts, created_by=actor, created_at=schema.utcnow()).returning(t.c.id)).scalar_one()
    payload = {"batch_id": batch_id, "sha256": sha256, "rows": rows, **(extra or {})}
    return batch_id, [Event(actor, role, f"{kind}.log", "model_version", f"{name}/{version}", payload)]


BATCHES_SQL = """
select b.sha256 from prediction_batches b join registered_models m on m.id = b.model_id
where m.name = ? and b.version = ? and b.kind = ? order by b.id
"""


def set_policy(conn, actor: str, role: str, name: str, changes: dict, command):
    """Change the thresholds named in ``changes`` (and the command, unless it is
    ``monitoring.UNCHANGED``); the rest stay as stored. Read and written in one transaction,
    so two leads changing different thresholds at once both keep their change."""
    t = schema.MonitorPolicy.__table__
    mid = model_id(conn, name)
    row = conn.execute(sa.select(t.c.thresholds, t.c.retrain_command).where(t.c.model_id == mid)).first()
    before = {"thresholds": effective_thresholds(row[0] if row else None),
              "retrain_command": row[1] if row else None}
    after = {"thresholds": {**before["thresholds"], **changes},
             "retrain_command": before["retrain_command"] if command is UNCHANGED else command}
    values = dict(thresholds=after["thresholds"], retrain_command=after["retrain_command"] or None,
                  updated_by=actor, updated_at=schema.utcnow())
    if row is None:
        conn.execute(sa.insert(t).values(model_id=mid, **values))
    else:
        conn.execute(sa.update(t).where(t.c.model_id == mid).values(**values))
    changed = sorted(k for k in after["thresholds"] if after["thresholds"][k] != before["thresholds"].get(k))
    if after["retrain_command"] != before["retrain_command"]:
        changed.append("retrain_command")
    return after, [Event(actor, role, "monitor_policy.set", "model", name,
                         {"before": before, "after": after, "changed": changed})]


def get_policy(conn, name: str) -> tuple[dict | None, list[str] | None]:
    """(the stored thresholds or None, the retraining command or None)."""
    t = schema.MonitorPolicy.__table__
    row = conn.execute(sa.select(t.c.thresholds, t.c.retrain_command).where(t.c.model_id == model_id(conn, name))).first()
    if row is None:
        return None, None
    return row[0], row[1]


def record_alerts(conn, actor: str, role: str, name: str, version: int, breaches: list[dict]):
    """New alerts for breaches not yet recorded (one per version, window and metric); their ids.

    Nothing is run here: this is the caller's process. When the model's policy names a
    retraining command, the newest new alert is marked ``pending`` with the command (read from
    the policy in this transaction, never from the caller), and only the scheduler runs it
    (:mod:`workbench.monitoring.retrain`).
    """
    t = schema.Alert.__table__
    mid = model_id(conn, name)
    _, command = get_policy(conn, name)
    new, events = [], []
    for b in breaches:
        seen = conn.execute(sa.select(t.c.id).where(t.c.model_id == mid, t.c.version == version,
                                                    t.c.window_start == b["window_start"], t.c.metric == b["metric"])).first()
        if seen is not None:
            continue
        alert_id = conn.execute(sa.insert(t).values(
            model_id=mid, version=version, window_start=b["window_start"], window_end=b["window_end"],
            metric=b["metric"], value=b["value"], threshold=b["threshold"], rule=b["rule"], created_by=actor,
            created_at=schema.utcnow()).returning(t.c.id)).scalar_one()
        new.append(alert_id)
        events.append(Event(actor, role, "alert.raise", "model_version", f"{name}/{version}",
                            {"alert_id": alert_id, "window_start": b["window_start"].isoformat(), "rule": b["rule"],
                             "value": b["value"]}))
    pending = None
    if new and command:  # one retraining per check that found something new, as before
        pending = new[-1]
        conn.execute(sa.update(t).where(t.c.id == pending).values(command=command,
                                                                 command_status="pending"))
        events[-1].payload.update(command=command, command_status="pending")
    # the check itself is recorded too: who looked, and that nothing new was found
    events.append(Event(actor, role, "alerts.check", "model_version", f"{name}/{version}",
                        {"breaches": len(breaches), "new_alerts": new, "command_pending": pending}))
    return new, events


def claim_command(conn, actor: str, role: str, alert: dict, runner: str):
    """Take ``alert``'s pending command (``alert``: a row of COMMANDS_SQL) for this scheduler,
    with a compare-and-set on its status; the command to run, or None when another
    scheduler took it first."""
    t = schema.Alert.__table__
    taken = conn.execute(sa.update(t).where(t.c.id == alert["id"], t.c.command_status == "pending").values(
        command_status="running", command_runner=runner, command_started_at=schema.utcnow())).rowcount
    if taken != 1:  # another scheduler took it first: nothing written, and said so (as schedule.skip does)
        return None, [_skipped(actor, role, alert, runner, "another scheduler claimed the command first")]
    command = conn.execute(sa.select(t.c.command).where(t.c.id == alert["id"])).scalar_one()
    return command, [Event(actor, role, "alert.command_start", "model_version", f"{alert['name']}/{alert['version']}",
                           {"alert_id": alert["id"], "command": command, "runner": runner})]


def finish_command(conn, actor: str, role: str, alert: dict, runner: str, exit_code: int | None, output: str):
    """Record how the command ended. The output stays in the alert row, which only leads and
    admins read; the audit trail (readable by reviewers) gets its digest and length only."""
    t = schema.Alert.__table__
    status = "ok" if exit_code == 0 else "failed"
    done = conn.execute(sa.update(t).where(t.c.id == alert["id"], t.c.command_status == "running",
                                           t.c.command_runner == runner).values(
        command_status=status, exit_code=exit_code, output=output, command_finished_at=schema.utcnow())).rowcount
    if done != 1:  # marked abandoned meanwhile (its runner was taken for dead): keep that record
        return None, [_skipped(actor, role, alert, runner, f"the command ended with exit code {exit_code}, but it "
                                                           "had been marked abandoned meanwhile; that record stays")]
    return status, [Event(actor, role, "alert.command", "model_version", f"{alert['name']}/{alert['version']}",
                          {"alert_id": alert["id"], "status": status, "exit_code": exit_code,
                           "output_sha256": hashlib.sha256(output.encode()).hexdigest(), "output_chars": len(output)})]


def abandon_command(conn, actor: str, role: str, alert: dict, why: str):
    """A command whose scheduler died while running it: failed, saying why (never run twice:
    it may have half-done its work)."""
    t = schema.Alert.__table__
    done = conn.execute(sa.update(t).where(t.c.id == alert["id"], t.c.command_status == "running",
                                           t.c.command_runner == alert["command_runner"]).values(
        command_status="failed", output=why, command_finished_at=schema.utcnow())).rowcount
    if done != 1:  # another scheduler marked it first
        return None, [_skipped(actor, role, alert, alert["command_runner"], "already marked by another scheduler")]
    return "failed", [Event(actor, role, "alert.command", "model_version", f"{alert['name']}/{alert['version']}",
                            {"alert_id": alert["id"], "status": "failed", "exit_code": None, "abandoned": why})]


def _skipped(actor: str, role: str, alert: dict, runner: str | None, why: str) -> Event:
    """A compare-and-set on a command that lost: no row changed, yet every write op leaves its event."""
    return Event(actor, role, "alert.command_skip", "model_version", f"{alert['name']}/{alert['version']}",
                 {"alert_id": alert["id"], "runner": runner, "why": why})


#: Commands waiting for the scheduler, and those claimed but not finished (to find dead runners).
COMMANDS_SQL = """
select a.id, m.name, a.version, a.command_status, a.command_runner from alerts a
join registered_models m on m.id = a.model_id
where a.command_status in ('pending', 'running') order by a.id
"""


ALERTS_SQL = """
select a.id, m.name, a.version, a.window_start, a.window_end, a.metric, a.value, a.threshold, a.rule,
       a.command, a.command_status, a.exit_code, a.output, a.command_finished_at, a.created_by, a.created_at
from alerts a join registered_models m on m.id = a.model_id
where (cast(? as varchar) is null or m.name = ?) order by a.window_start desc, a.id desc
"""


MONITORED_SQL = """
select m.name, b.version, min(v.stage) as stage, count(*) as batches, cast(sum(b.rows) as bigint) as predictions,
       (select max(x.id) from prediction_batches x where x.model_id = b.model_id and x.version = b.version) as last_batch,
       min(b.first_ts) as first_prediction, max(b.last_ts) as last_prediction
from prediction_batches b join registered_models m on m.id = b.model_id
join model_versions v on v.model_id = b.model_id and v.version = b.version
where b.kind = 'predictions' group by m.name, b.model_id, b.version order by m.name, b.version
"""
