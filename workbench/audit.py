"""The audit trail: the one function every write calls, and the chain check.

Each event is hashed together with the previous event's hash, so changing or deleting
any event breaks every hash after it. :func:`append` runs inside the caller's
transaction: the write and its event commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow as pa
import sqlalchemy as sa

from .store.schema import AuditEvent, utcnow

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    """What a write records: who (actor, role) did what (action) to which entity."""

    actor: str
    role: str
    action: str
    entity_type: str
    entity_id: str
    payload: dict


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def canonical_json(value: Any) -> str:
    """Stable JSON: sorted keys, no spaces, non-finite floats as strings.

    >>> canonical_json({"b": float("nan"), "a": [1, 2.5]})
    '{"a":[1,2.5],"b":"NaN"}'
    """
    try:  # the common case needs no rewriting of the value
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_default)
    except (ValueError, TypeError):  # NaN/inf, or keys that are not strings
        return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_hash(prev_hash: str, seq: int, ts: datetime, e: Event, payload_json: str) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "ts": ts.astimezone(timezone.utc).isoformat(),  # DuckDB may hand back another zone
            "actor": e.actor,
            "role": e.role,
            "action": e.action,
            "entity_type": e.entity_type,
            "entity_id": e.entity_id,
            "payload": payload_json,
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(conn: sa.Connection, events: Iterable[Event]) -> list[int]:
    """Append events to the chain inside the caller's open transaction; returns their seqs."""
    events = list(events)
    if not events:
        return []
    last = conn.execute(sa.text("select seq, hash from audit_events order by seq desc limit 1")).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    rows, seqs = [], []
    for e in events:
        seq += 1
        ts = utcnow()
        payload = canonical_json(e.payload)
        h = event_hash(prev, seq, ts, e, payload)
        rows.append(
            dict(seq=seq, ts=ts, actor=e.actor, role=e.role, action=e.action, entity_type=e.entity_type,
                 entity_id=e.entity_id, payload=payload, prev_hash=prev, hash=h)
        )
        seqs.append(seq)
        prev = h
    if conn.dialect.name == "duckdb" and len(rows) > 8:
        # A run batch can carry hundreds of events: one Arrow append, not an ORM row each.
        raw = conn.connection.dbapi_connection
        rel = raw.from_arrow(pa.Table.from_pylist(rows))
        rel.insert_into("audit_events")
    else:
        conn.execute(sa.insert(AuditEvent.__table__), rows)
    return seqs


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    n_events: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str = ""


def verify(conn: sa.Connection) -> ChainCheck:
    """Recompute every hash; name the first event whose stored hash or link is wrong."""
    result = conn.execute(
        sa.text(
            "select seq, ts, actor, role, action, entity_type, entity_id, payload, prev_hash, hash "
            "from audit_events order by seq"
        )
    )
    prev, expected_seq, n = GENESIS, 1, 0
    for row in result:
        seq, ts, actor, role, action, et, eid, payload, prev_hash, h = row
        e = Event(actor, role, action, et, eid, {})
        if seq != expected_seq:
            return ChainCheck(False, n, prev, seq, f"expected seq {expected_seq}, found {seq} (event missing)")
        if prev_hash != prev:
            return ChainCheck(False, n, prev, seq, "prev_hash does not match the previous event's hash")
        if event_hash(prev, seq, ts, e, payload) != h:
            return ChainCheck(False, n, prev, seq, "hash does not match the event's content (event altered)")
        prev, expected_seq, n = h, seq + 1, n + 1
    return ChainCheck(True, n, prev)
