"""The audit trail: the one function every write calls, and the chain check.

Each event is hashed together with the previous event's hash, so changing or deleting
any event breaks every hash after it. :func:`append` runs inside the caller's
transaction: the write and its event commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterable

import pyarrow as pa
import sqlalchemy as sa

from ..errors import IntegrityError, ValidationError
from . import audit_replay
from .canonical import canonical_json
from .schema import AuditEvent, AuditHead, utcnow

GENESIS = "0" * 64
_COLUMNS = "seq, ts, actor, role, action, entity_type, entity_id, payload, prev_hash, hash"
_FIELDS = tuple(_COLUMNS.split(", "))


@dataclass(frozen=True)
class Event:
    """What a write records: who (actor, role) did what (action) to which entity."""

    actor: str
    role: str
    action: str
    entity_type: str
    entity_id: str
    payload: dict


def event_hash(prev_hash: str, seq: int, ts: datetime, e: Event, payload_json: str) -> str:
    """The hash an event is stored with: sha256 of ``prev_hash`` and the event's canonical JSON.

    Parameters
    ----------
    prev_hash : str
        The previous event's hash (:data:`GENESIS` before the first event).
    seq : int
        The event's sequence number.
    ts : datetime
        When it was recorded; an aware time, hashed as its UTC ISO form.
    e : Event
        Who did what to which entity; its ``payload`` is not read here.
    payload_json : str
        ``canonical_json(e.payload)``, as stored.

    Returns
    -------
    str
        64 hex digits.
    """
    return _hash(prev_hash, seq, ts.astimezone(timezone.utc).isoformat(), e.actor, e.role, e.action,
                 e.entity_type, e.entity_id, payload_json)


_quote = json.encoder.encode_basestring  # what json.dumps(str, ensure_ascii=False) writes


def _hash(prev_hash: str, seq: int, ts_iso: str, actor: str, role: str, action: str, entity_type: str,
          entity_id: str, payload_json: str) -> str:
    """sha256(prev_hash + the event's canonical JSON), the JSON written out by hand.

    Byte for byte ``canonical_json`` of {seq, ts, actor, role, action, entity_type,
    entity_id, payload} (keys sorted); spelled out because verifying a million events
    spends most of its time here (tests compare the two).
    """
    body = (f'{{"action":{_quote(action)},"actor":{_quote(actor)},"entity_id":{_quote(entity_id)},'
            f'"entity_type":{_quote(entity_type)},"payload":{_quote(payload_json)},"role":{_quote(role)},'
            f'"seq":{int(seq)},"ts":{_quote(ts_iso)}}}')
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append(conn: sa.Connection, events: Iterable[Event]) -> list[int]:
    """Append events to the chain inside the caller's open transaction; returns their seqs.

    The new head is also left in ``conn.info["audit_head"]`` as ``(seq, hash)``, so the
    head mark written after the commit costs no second read (see ``Store.head_if_marked``).
    The audit head row moves in the same transaction. On PostgreSQL the caller must hold
    the head's row lock (``Store.lock_for_write``) so that two writers cannot take the same seq.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        A connection inside the write transaction.
    events : iterable of Event
        In order; each is stamped with the current UTC time.

    Returns
    -------
    list of int
        The new events' seqs (empty when ``events`` is).
    """
    events = list(events)
    if not events:
        return []
    # The head row, not the newest event: a point read, where ``order by seq desc limit 1``
    # scans the whole chain in DuckDB. They agree after every append; verify checks both.
    last = conn.execute(sa.text("select seq, hash from audit_head where id = 1")).first()
    if last is None:  # a store from before the head row, or an empty one
        last = conn.execute(sa.text("select seq, hash from audit_events order by seq desc limit 1")).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    rows, seqs = [], []
    for e in events:
        seq += 1
        ts = utcnow()
        payload = canonical_json(e.payload)
        h = event_hash(prev, seq, ts, e, payload)
        rows.append((seq, ts, e.actor, e.role, e.action, e.entity_type, e.entity_id, payload, prev, h))
        seqs.append(seq)
        prev = h
    if conn.dialect.name == "duckdb":
        raw = conn.connection.dbapi_connection
        if len(rows) > 8:  # a run batch can carry hundreds of events: one Arrow append
            raw.from_arrow(pa.Table.from_pylist([dict(zip(_FIELDS, r)) for r in rows])).insert_into("audit_events")
        else:  # one statement, where an executemany costs one per row
            raw.execute(f"insert into audit_events ({_COLUMNS}) values "
                        + ", ".join(["(" + ", ".join("?" * len(_FIELDS)) + ")"] * len(rows)),
                        [v for r in rows for v in r])
        if not raw.execute("update audit_head set seq = ?, hash = ? where id = 1", [seq, prev]).fetchone()[0]:
            raw.execute("insert into audit_head (id, seq, hash) values (1, ?, ?)", [seq, prev])
    else:
        conn.execute(sa.insert(AuditEvent.__table__), [dict(zip(_FIELDS, r)) for r in rows])
        head = AuditHead.__table__
        if conn.execute(sa.update(head).where(head.c.id == 1).values(seq=seq, hash=prev)).rowcount == 0:
            conn.execute(sa.insert(head).values(id=1, seq=seq, hash=prev))
    conn.info["audit_head"] = (seq, prev)
    return seqs


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of :func:`verify`.

    ``first_broken_seq`` names the first bad event when the chain itself is broken;
    ``problems`` lists the rows of the tables that disagree with the chain (then ``ok`` is
    False and ``first_broken_seq`` None); ``warnings`` what the events cannot prove.
    """

    ok: bool
    n_events: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str = ""
    anchor_checked: bool = False
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()




def _iso(ts):
    """Python's ``isoformat()`` of UTC times, for a whole column at once (no fraction when it is 0)."""
    import polars as pl

    utc = ts.dt.convert_time_zone("UTC")
    frac = pl.when(utc.dt.microsecond() != 0).then(utc.dt.strftime("%.6f")).otherwise(pl.lit(""))
    return utc.dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + pl.lit("+00:00")


def _rows(conn: sa.Connection, batch: int = 100_000):
    """The chain in seq order with ``ts`` as ISO text, read in column batches."""
    import polars as pl

    sql = f"select {_COLUMNS} from audit_events order by seq"
    if conn.dialect.name != "duckdb":
        for seq, ts, *rest in conn.execute(sa.text(sql)):
            yield (seq, ts.astimezone(timezone.utc).isoformat(), *rest)
        return
    reader = conn.connection.dbapi_connection.sql(sql).to_arrow_reader(batch)
    for b in reader:
        frame = pl.from_arrow(b).with_columns(_iso(pl.col("ts")).alias("ts"))
        yield from zip(*(frame.get_column(c).to_list() for c in frame.columns))


def verify(conn: sa.Connection, anchor: dict | None = None) -> ChainCheck:
    """Recompute every hash; name the first event whose stored hash or link is wrong; then
    check the tables against the chain.

    The last event must also be the recorded head (a chain cut short at its end is found),
    and, given an ``anchor`` from :func:`anchor`, the chain must still pass through it (a
    chain rewritten and rehashed whole is found only this way). An intact chain is then
    replayed (:mod:`workbench.store.audit_replay`) and every table row that disagrees with it is
    a problem: a role, stage, alias, model digest, verdict, param or metric point changed
    behind the workbench's back, or rows beside an emptied chain.
    """
    prev, expected_seq, n = GENESIS, 1, 0
    replayed = audit_replay.HANDLERS
    kept = []  # the events that change checked state, replayed once the chain holds
    for seq, ts_iso, actor, role, action, et, eid, payload, prev_hash, h in _rows(conn):
        if seq != expected_seq:
            return ChainCheck(False, n, prev, seq, f"expected seq {expected_seq}, found {seq} (event missing)")
        if prev_hash != prev:
            return ChainCheck(False, n, prev, seq, "prev_hash does not match the previous event's hash")
        if _hash(prev, seq, ts_iso, actor, role, action, et, eid, payload) != h:
            return ChainCheck(False, n, prev, seq, "hash does not match the event's content (event altered)")
        if anchor is not None and seq == anchor["seq"] and h != anchor["hash"]:
            return ChainCheck(False, n, prev, seq, f"the chain no longer passes through the anchor (event {seq}'s hash "
                                                   "differs): it or events before it were rewritten")
        if action in replayed:
            kept.append((seq, action, eid, payload))
        prev, expected_seq, n = h, seq + 1, n + 1
    head = conn.execute(sa.select(AuditHead.__table__.c.seq, AuditHead.__table__.c.hash)).first()
    if head is not None and (head[0], head[1]) != (n, prev):
        return ChainCheck(False, n, prev, n + 1, f"the chain ends at event {n} but its head is event {head[0]}: "
                                                 "events were removed from the end")
    if anchor is not None and anchor["seq"] > n:
        return ChainCheck(False, n, prev, n + 1, f"the chain ends at event {n}, before the anchor's event "
                                                 f"{anchor['seq']}: events were removed")
    state = audit_replay.compare(conn, audit_replay.replay(kept), n)
    if state.problems:
        more = f" (and {len(state.problems) - 1} more)" if len(state.problems) > 1 else ""
        return ChainCheck(False, n, prev, None, f"the tables disagree with the audit trail: {state.problems[0]}{more}",
                          anchor_checked=anchor is not None, problems=tuple(state.problems),
                          warnings=tuple(state.warnings))
    return ChainCheck(True, n, prev, anchor_checked=anchor is not None, warnings=tuple(state.warnings))


def recorded_payload(conn: sa.Connection, action: str, entity_type: str, entity_id: str) -> dict:
    """The payload of the first ``action`` event on an entity, proven part of the chain.

    Cheap enough for every model load: the event's hash is recomputed from its content, and
    the next event (or the recorded head) must link to that hash, so an event edited in
    place is refused (one rewritten with the whole chain after it is found by an anchor).
    Raises :class:`~workbench.IntegrityError` when there is no such event or it fails.
    """
    row = conn.execute(sa.text(f"select {_COLUMNS} from audit_events where action = :a and entity_type = :t "
                               "and entity_id = :e order by seq limit 1"),
                       {"a": action, "t": entity_type, "e": entity_id}).first()
    if row is None:
        raise IntegrityError(f"The audit trail has no {action} event for {entity_type} {entity_id}: refusing to trust "
                             "what the tables say about it (run `workbench audit verify`).")
    seq, ts, actor, role, act, et, eid, payload, prev_hash, h = row
    nxt = conn.execute(sa.text("select prev_hash from audit_events where seq = :s"), {"s": seq + 1}).first()
    if nxt is None:
        nxt = conn.execute(sa.text("select hash from audit_head where seq = :s"), {"s": seq}).first()
    if (_hash(prev_hash, seq, ts.astimezone(timezone.utc).isoformat(), actor, role, act, et, eid, payload) != h
            or nxt is None or nxt[0] != h):
        raise IntegrityError(f"Audit event {seq} ({action} of {entity_type} {entity_id}) was altered: refusing to "
                             "trust it (run `workbench audit verify`).")
    return json.loads(payload)


def anchor(check: ChainCheck, store: str) -> dict:
    """The head digest to keep outside the store (a verified chain only).

    Parameters
    ----------
    check : ChainCheck
        The result of :func:`verify`.
    store : str
        The store it names (kept in the anchor, for the reader).

    Returns
    -------
    dict
        ``{"store", "seq", "hash", "created_at"}``, for :func:`verify` to check later.

    Raises
    ------
    ValueError
        If ``check`` is not ok.
    """
    if not check.ok:
        raise ValueError("refusing to anchor a broken chain")
    return {"store": store, "seq": check.n_events, "hash": check.head_hash, "created_at": utcnow().isoformat()}


def read_anchor(text: str) -> dict:
    """An anchor file's content, checked for its two fields.

    Returns
    -------
    dict
        The anchor, with ``seq`` as an int and ``hash`` as a str.

    Raises
    ------
    ValueError
        If ``text`` is not JSON with a non-negative ``seq`` and a 64-character ``hash``.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"not an audit anchor file ({exc})") from None
    return check_anchor(data)


def check_anchor(data) -> dict:
    """An anchor (from :func:`anchor`) as given in code, checked for its two fields.

    Raises
    ------
    ValidationError
        Unless ``data`` is a mapping with a non-negative integer ``seq`` and a 64-character ``hash``.
    """
    try:
        seq, digest = data["seq"], data["hash"]
    except (KeyError, TypeError) as exc:
        raise ValidationError(f"not an audit anchor: it needs 'seq' and 'hash' ({exc})") from None
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(digest, str) or len(digest) != 64:
        raise ValidationError("not an audit anchor: 'seq' must be a whole number >= 0 and 'hash' 64 hex characters.")
    return {**data, "seq": seq, "hash": digest}


def filter_sql(*, actor=None, action=None, entity=None, since=None, until=None) -> tuple[str, list]:
    """A WHERE clause (bound values) for the audit filters.

    Parameters
    ----------
    actor : str, optional
        Events by this actor.
    action : str, optional
        An action, or a prefix ending in ``*`` (``"request.*"``).
    entity : str, optional
        ``"type/id"`` for a known entity type (``"model/churn"``); else an entity id, which
        also matches ids below it (``"churn"`` matches ``"churn/3"``).
    since, until : datetime, date or ISO str, optional
        Events at or after ``since`` and before ``until``; a time without a zone is UTC.

    Returns
    -------
    tuple
        ``(sql, params)``: ``"where ..."`` with ``?`` placeholders (``""`` without filters),
        and the values to bind.

    Raises
    ------
    ValidationError
        If ``since`` or ``until`` is text that is not an ISO date or time.
    """
    where, params = [], []
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        if action.endswith("*"):
            where.append("starts_with(action, ?)")
            params.append(action[:-1])
        else:
            where.append("action = ?")
            params.append(action)
    if entity:
        if "/" in entity and entity.split("/", 1)[0] in _ENTITY_TYPES:
            kind, ident = entity.split("/", 1)
            where.append("entity_type = ? and entity_id = ?")
            params += [kind, ident]
        else:
            where.append("(entity_id = ? or starts_with(entity_id, ? || '/'))")
            params += [entity, entity]
    for bound, op in ((since, ">="), (until, "<")):
        if bound is not None:
            where.append(f"ts {op} ?")
            params.append(_utc(bound))
    return ("where " + " and ".join(where)) if where else "", params


_ENTITY_TYPES = {"run", "experiment", "model", "model_version", "dataset", "user", "store", "audit", "request", "report",
                 "risk_tier"}


def _utc(value) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"Not an ISO date or time: {value!r} (e.g. 2026-06-01 or 2026-06-01T12:00).") from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, date):
        raise ValidationError(f"A time filter must be an ISO date or time, not {type(value).__name__} {str(value)[:40]!r}.")
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)  # a date


def export_bytes(events, fmt: str) -> bytes:
    """CSV, or JSON with stable keys (one object per event, in seq order).

    Parameters
    ----------
    events : polars.DataFrame
        Rows of ``audit_events``, already in seq order (the rows are written as given).
    fmt : str
        ``"csv"``; any other value gives JSON.

    Returns
    -------
    bytes
        UTF-8 text; times as UTC ISO strings with microseconds and a ``Z``.
    """
    import polars as pl

    frame = events.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    if fmt == "csv":
        return frame.write_csv().encode()
    return (json.dumps(frame.to_dicts(), sort_keys=True, ensure_ascii=False, indent=1) + "\n").encode()
