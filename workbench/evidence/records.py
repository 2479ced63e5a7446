"""Evidence bound to a model version: computed once, stored, read by the dashboard.

The write op here stores a summary (typed JSON) and verdict in the ``evidence`` table
and the bulky part as a content-addressed Parquet file, with its audit event, in one
transaction. Reports are never recomputed by a page.
"""

from __future__ import annotations

import io

import polars as pl
import sqlalchemy as sa

from ..errors import NotFoundError
from ..store import artifacts, schema
from ..store.audit import Event, canonical_json


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """``frame`` written as a Parquet file, in memory."""
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def stored(conn, evidence_id: int) -> dict:
    """One evidence row's ``summary``, ``policy`` and ``artifact_sha256``, as stored.

    Raises
    ------
    NotFoundError
        No evidence has that id.
    """
    e = schema.Evidence.__table__
    row = conn.execute(sa.select(e.c.summary, e.c.policy, e.c.artifact_sha256).where(e.c.id == evidence_id)
                       ).mappings().first()
    if row is None:
        raise NotFoundError(f"No evidence with id {evidence_id}.")
    return dict(row)


def store(conn, actor: str, role: str, *, name: str, version: int, kind: str, summary: dict,
          artifact_sha256: str | None, verdict: str | None, policy: dict | None):
    """Write op: one evidence row for ``name`` v``version``; returns its id.

    Returns
    -------
    evidence_id : int
        The new row's id.
    events : list of Event
        Its audit event (``evidence.<kind>``).

    Raises
    ------
    NotFoundError
        The model has no such version.
    """
    m = schema.RegisteredModel.__table__
    v = schema.ModelVersion.__table__
    row = conn.execute(sa.select(m.c.id).select_from(m.join(v, v.c.model_id == m.c.id))
                       .where(m.c.name == name, v.c.version == version)).first()
    if row is None:
        raise NotFoundError(f"Model {name!r} has no version {version}.")
    e = schema.Evidence.__table__
    evidence_id = conn.execute(sa.insert(e).values(
        model_id=row[0], version=version, kind=kind, summary=summary,
        artifact_sha256=artifact_sha256, verdict=verdict, policy=policy or None,
        created_by=actor, created_at=schema.utcnow()).returning(e.c.id)).scalar_one()
    return evidence_id, [Event(actor, role, f"evidence.{kind}", "model_version", f"{name}/{version}",
                               {"evidence_id": evidence_id, "verdict": verdict, "artifact_sha256": artifact_sha256,
                                "summary_sha256": artifacts.sha256_bytes(canonical_json(summary).encode())})]


LATEST_SQL = """
select name, version, kind, id, verdict, created_by, created_at from (
  select m.name, e.version, e.kind, e.id, e.verdict, e.created_by, e.created_at,
         row_number() over (partition by e.model_id, e.version, e.kind order by e.created_at desc, e.id desc) as rn
  from evidence e join registered_models m on m.id = e.model_id
  where (cast(? as varchar) is null or m.name = ?)) latest
where rn = 1
order by name, version, kind
"""

