"""Write ops of monitoring: prediction/label/reference batches, policies, alerts; each audited.

Ops run inside the writer's transaction (``op(conn) -> (result, events)``), like every write.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from . import registry
from .audit import Event, canonical_json
from .store import schema


def model_id(conn, name: str) -> int:
    return registry._model_row(conn, name)["id"]


def record_batch(conn, actor: str, role: str, *, name: str, version: int, kind: str, sha256: str, rows: int,
                 first_ts=None, last_ts=None, extra: dict | None = None):
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


def set_policy(conn, actor: str, role: str, name: str, thresholds: dict, command: list[str] | None):
    t = schema.MonitorPolicy.__table__
    mid = model_id(conn, name)
    values = dict(thresholds=canonical_json(thresholds), retrain_command=canonical_json(command) if command else None,
                  updated_by=actor, updated_at=schema.utcnow())
    if conn.execute(sa.select(t.c.model_id).where(t.c.model_id == mid)).first() is None:
        conn.execute(sa.insert(t).values(model_id=mid, **values))
    else:
        conn.execute(sa.update(t).where(t.c.model_id == mid).values(**values))
    return None, [Event(actor, role, "monitor_policy.set", "model", name,
                        {"thresholds": thresholds, "retrain_command": command})]


def get_policy(conn, name: str) -> tuple[dict | None, list[str] | None]:
    t = schema.MonitorPolicy.__table__
    row = conn.execute(sa.select(t.c.thresholds, t.c.retrain_command).where(t.c.model_id == model_id(conn, name))).first()
    if row is None:
        return None, None
    return json.loads(row[0]), (json.loads(row[1]) if row[1] else None)


def record_alerts(conn, actor: str, role: str, name: str, version: int, breaches: list[dict]):
    """New alerts for breaches not yet recorded (one per version, window and metric); their ids."""
    t = schema.Alert.__table__
    mid = model_id(conn, name)
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
    # the check itself is recorded too: who looked, and that nothing new was found
    events.append(Event(actor, role, "alerts.check", "model_version", f"{name}/{version}",
                        {"breaches": len(breaches), "new_alerts": new}))
    return new, events


def record_command(conn, actor: str, role: str, name: str, version: int, alert_id: int, command: list[str],
                   exit_code: int | None, output: str):
    t = schema.Alert.__table__
    conn.execute(sa.update(t).where(t.c.id == alert_id).values(command=canonical_json(command), exit_code=exit_code,
                                                              output=output))
    return None, [Event(actor, role, "alert.command", "model_version", f"{name}/{version}",
                        {"alert_id": alert_id, "command": command, "exit_code": exit_code, "output_tail": output[-500:]})]


ALERTS_SQL = """
select a.id, m.name, a.version, a.window_start, a.window_end, a.metric, a.value, a.threshold, a.rule,
       a.command, a.exit_code, a.output, a.created_by, a.created_at
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
