"""The tables as the audit chain says they must be: replay the events, compare the rows.

The hash chain proves the events were not changed; it says nothing about the tables beside
it, which anyone who can write the store file (or the database) can edit. Every write's
event carries enough to replay it, so :func:`replay` rebuilds the governed state from the
events alone and :func:`compare` checks the tables against it, naming each row that
disagrees:

- users: role and disabled state;
- registered models: risk tier;
- model versions: stage and the model file's sha256; aliases; evidence verdicts;
- runs: that each exists, its params, and its metric points (a count and a digest).

What each action does to the expected state is defined once, in :data:`HANDLERS`
(action -> function); an action not listed there changes none of the checked state.

Metric points are logged in batches; each ``run.log_metrics`` event carries the batch's
digest, :func:`points_digest`: the sum, modulo 2**256, of the sha256 of every point (key,
step, value). A sum does not depend on order, so a run's digest is the sum of its batches'
digests and can be recomputed from the metrics table alone, which does not record batches.
Events written before the digest existed carry only the count: those runs are checked by
count and reported as a warning, not silently passed.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import sqlalchemy as sa

MOD = 1 << 256
_NAN = float("nan")
_POINT = struct.Struct(">qd")  # step as int64, value as IEEE-754 double, big-endian
#: How many disagreements a check lists before it only counts the rest.
MAX_LISTED = 50


# -- metric digests ------------------------------------------------------------------------
def points_digest(keys: Sequence[str], steps: Sequence[int], values: Sequence[float]) -> int:
    """The order-independent digest of metric points: sum of sha256(key, step, value) mod 2**256.

    Each point is hashed as its key's UTF-8 bytes followed by the step (8 bytes, signed) and
    the value's 8 bytes; every NaN counts as the same NaN (a store need not keep NaN's sign
    or payload bits). Summing makes the digest of a union the sum of the digests.

    >>> a = points_digest(["auc", "loss"], [0, 0], [0.5, 1.25])
    >>> a == (points_digest(["loss"], [0], [1.25]) + points_digest(["auc"], [0], [0.5])) % MOD
    True
    """
    sha, pack, fb = hashlib.sha256, _POINT.pack, int.from_bytes
    encoded: dict[str, bytes] = {}
    # One comprehension: about 0.5 us a point (100k points: 50 ms).
    return sum(fb(sha((encoded.get(k) or encoded.setdefault(k, k.encode())) + pack(s, v if v == v else _NAN))
                  .digest()) for k, s, v in zip(keys, steps, values)) % MOD


def batch_digest(chunks) -> str:
    """:func:`points_digest` of a run batch's chunks ``(keys, values, step or steps, ts)``, as hex."""
    keys: list[str] = []
    steps: list[int] = []
    values: list[float] = []
    for k, v, s, _ in chunks:
        keys.extend(k)
        values.extend(v)
        steps.extend([s] * len(k) if isinstance(s, int) else s)
    return f"{points_digest(keys, steps, values):064x}"


# -- the expected state --------------------------------------------------------------------
@dataclass
class RunState:
    """What the chain says one run holds: its params, and its metric points' count and digest.

    ``digest`` is the sum (mod 2**256) of the ``run.log_metrics`` events' digests.
    """

    params: dict[str, str] = field(default_factory=dict)
    points: int = 0
    digest: int = 0
    #: seq of the first metric event without a digest (written before digests existed)
    undigested_seq: int | None = None


@dataclass
class State:
    """What the tables must hold, according to the chain."""

    users: dict[str, dict] = field(default_factory=dict)  # name -> role, disabled
    models: dict[str, dict] = field(default_factory=dict)  # name -> risk_tier
    versions: dict[tuple[str, int], dict] = field(default_factory=dict)  # (name, version) -> stage, sha256
    aliases: dict[tuple[str, str], int] = field(default_factory=dict)  # (name, alias) -> version
    evidence: dict[int, dict] = field(default_factory=dict)  # id -> name, version, verdict
    runs: dict[str, RunState] = field(default_factory=dict)
    #: events that act on something no earlier event created (a chain that cannot be replayed)
    orphans: list[str] = field(default_factory=list)


def _version_key(entity_id: str) -> tuple[str, int]:
    name, _, version = entity_id.rpartition("/")  # a model's name may itself hold a '/'
    return name, int(version)


def _orphan(state: State, seq: int, what: str) -> None:
    state.orphans.append(f"event {seq} acts on {what}, which no earlier event created")


def _payload_free(handler):
    """Mark a handler that needs only the entity: its event's JSON is not parsed (speed)."""
    handler.payload_free = True
    return handler


def _user_add(state, seq, eid, p):
    state.users[eid] = {"role": p["role"], "disabled": False}


def _user_disabled(value: bool):
    @_payload_free
    def handler(state, seq, eid, p):
        if eid not in state.users:
            return _orphan(state, seq, f"user {eid!r}")
        state.users[eid]["disabled"] = value
    return handler


def _model_create(state, seq, eid, p):
    state.models[eid] = {"risk_tier": p.get("risk_tier")}


def _model_update(state, seq, eid, p):
    if eid not in state.models:
        return _orphan(state, seq, f"model {eid!r}")
    change = p.get("risk_tier")
    if isinstance(change, dict) and "to" in change:
        state.models[eid]["risk_tier"] = change["to"]


def _version_create(state, seq, eid, p):
    state.versions[_version_key(eid)] = {"stage": "None", "sha256": p["sha256"]}


def _version_stage(state, seq, eid, p):
    key = _version_key(eid)
    if key not in state.versions:
        return _orphan(state, seq, f"model version {eid!r}")
    state.versions[key]["stage"] = p["to"]


def _alias(state, seq, eid, p):
    if p.get("version") is None:
        state.aliases.pop((eid, p["alias"]), None)
    else:
        state.aliases[(eid, p["alias"])] = int(p["version"])


def _evidence(state, seq, eid, p):
    name, version = _version_key(eid)
    state.evidence[int(p["evidence_id"])] = {"name": name, "version": version, "verdict": p.get("verdict")}


@_payload_free
def _run_start(state, seq, eid, p):
    state.runs[eid] = RunState()


def _run(state: State, seq: int, eid: str) -> RunState | None:
    run = state.runs.get(eid)
    if run is None:
        _orphan(state, seq, f"run {eid!r}")
    return run


def _run_params(state, seq, eid, p):
    run = _run(state, seq, eid)
    if run is not None:
        run.params.update(p["params"])


def _run_metrics(state, seq, eid, p):
    run = _run(state, seq, eid)
    if run is None:
        return
    run.points += int(p["points"])
    if "digest" in p:
        run.digest = (run.digest + int(p["digest"], 16)) % MOD
    elif run.undigested_seq is None:
        run.undigested_seq = seq


Handler = Callable[[State, int, str, dict], None]

#: action -> how it changes the expected state. One entry per action; add new actions here.
HANDLERS: dict[str, Handler] = {
    "user.add": _user_add,
    "user.disable": _user_disabled(True),
    "user.enable": _user_disabled(False),
    "model.create": _model_create,
    "model.update": _model_update,  # payload {field: {"from": ..., "to": ...}}; risk_tier is checked
    "model_version.create": _version_create,
    "model_version.stage": _version_stage,
    "model.alias": _alias,
    "evidence.explanation": _evidence,
    "evidence.fairness": _evidence,
    "evidence.drift": _evidence,
    "run.start": _run_start,
    "run.log_params": _run_params,
    "run.log_metrics": _run_metrics,
}


def replay(events: Iterable[tuple[int, str, str, str]]) -> State:
    """The state the chain implies, from ``(seq, action, entity_id, payload JSON)`` in seq order.

    Every action must be a key of :data:`HANDLERS` (:func:`~workbench.store.audit.verify`
    passes only those). An event that cannot be replayed, or acts on something no earlier
    event created, is listed in ``State.orphans`` rather than raised.
    """
    state = State()
    for seq, action, entity_id, payload in events:
        handler = HANDLERS[action]
        try:
            handler(state, seq, entity_id, {} if getattr(handler, "payload_free", False) else json.loads(payload))
        except (KeyError, ValueError, TypeError, AttributeError) as exc:  # an event no write of ours makes
            state.orphans.append(f"event {seq} ({action} of {entity_id!r}) cannot be replayed: its payload or entity "
                                 f"is not what that action records ({type(exc).__name__}: {exc})")
    return state


# -- the comparison ------------------------------------------------------------------------
@dataclass
class StateCheck:
    """The outcome of :func:`compare`: each disagreement between tables and chain, as text
    (the first :data:`MAX_LISTED` listed, then a count of the rest), and what the chain cannot prove."""

    problems: list[str]
    warnings: list[str]


def _rows(conn: sa.Connection, sql: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


def _differ(expected, actual) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return not (expected == actual or (math.isnan(expected) and math.isnan(actual)))
    return expected != actual


class _Report:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.items) < MAX_LISTED:
            self.items.append(text)
        else:
            self.more += 1

    def done(self) -> list[str]:
        return self.items + ([f"... and {self.more} more disagreements"] if self.more else [])


def _compare_keyed(report: _Report, table: str, what: str, expected: dict, actual: dict, fields: tuple[str, ...]):
    """Rows in one but not the other, and differing fields, for ``{key: {field: value}}``."""
    for key in sorted(actual.keys() - expected.keys(), key=str):
        report.add(f"{table} {what(key)}: in the table, but no audit event created it")
    for key in sorted(expected.keys() - actual.keys(), key=str):
        report.add(f"{table} {what(key)}: created by the audit trail, but missing from the table")
    for key in sorted(expected.keys() & actual.keys(), key=str):
        for f in fields:
            if _differ(expected[key][f], actual[key][f]):
                report.add(f"{table} {what(key)}: {f} is {actual[key][f]!r} in the table, "
                           f"{expected[key][f]!r} in the audit trail")


def compare(conn: sa.Connection, state: State, n_events: int) -> StateCheck:
    """Every disagreement between the tables and ``state`` (naming table, key and both values),
    and warnings for what the events cannot prove (runs logged before metric digests)."""
    report, warnings = _Report(), []
    if n_events == 0:
        counts = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar()
                  for t in ("users", "runs", "registered_models", "model_versions", "evidence")}
        held = ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in counts.items() if n)
        if held:
            report.add(f"the audit chain is empty, but the tables hold {held}: the events were deleted")
    for orphan in state.orphans:
        report.add(orphan)

    users = {r[0]: {"role": r[1], "disabled": bool(r[2])} for r in _rows(conn, "select name, role, disabled from users")}
    _compare_keyed(report, "users", lambda k: repr(k), state.users, users, ("role", "disabled"))

    models = {r[0]: {"risk_tier": r[1]} for r in _rows(conn, "select name, risk_tier from registered_models")}
    _compare_keyed(report, "registered_models", lambda k: repr(k), state.models, models, ("risk_tier",))

    versions = {(r[0], int(r[1])): {"stage": r[2], "sha256": r[3]} for r in _rows(
        conn, "select m.name, v.version, v.stage, v.sha256 from model_versions v "
              "join registered_models m on m.id = v.model_id")}
    _compare_keyed(report, "model_versions", lambda k: f"{k[0]} v{k[1]}", state.versions, versions, ("stage", "sha256"))

    aliases = {(r[0], r[1]): {"version": int(r[2])} for r in _rows(
        conn, "select m.name, a.alias, a.version from model_aliases a join registered_models m on m.id = a.model_id")}
    _compare_keyed(report, "model_aliases", lambda k: f"{k[0]} alias {k[1]!r}",
                   {k: {"version": v} for k, v in state.aliases.items()}, aliases, ("version",))

    evidence = {int(r[0]): {"name": r[1], "version": int(r[2]), "verdict": r[3]} for r in _rows(
        conn, "select e.id, m.name, e.version, e.verdict from evidence e join registered_models m on m.id = e.model_id")}
    _compare_keyed(report, "evidence", lambda k: f"id {k}", state.evidence, evidence, ("name", "version", "verdict"))

    _compare_runs(conn, report, state, warnings)
    return StateCheck(report.done(), warnings)


def _compare_runs(conn: sa.Connection, report: _Report, state: State, warnings: list[str]) -> None:
    runs = {r[0] for r in _rows(conn, "select run_id from runs")}
    for run_id in sorted(runs - state.runs.keys()):
        report.add(f"runs {run_id}: in the table, but no audit event started it")
    for run_id in sorted(state.runs.keys() - runs):
        report.add(f"runs {run_id}: started in the audit trail, but missing from the table")

    params: dict[str, dict[str, str]] = defaultdict(dict)
    for run_id, key, value in _rows(conn, "select run_id, key, value from params"):
        params[run_id][key] = value
    for run_id in sorted(params.keys() | {r for r, s in state.runs.items() if s.params}):
        expected = state.runs[run_id].params if run_id in state.runs else {}
        actual = params.get(run_id, {})
        for key in sorted(expected.keys() | actual.keys()):
            if expected.get(key) != actual.get(key):
                report.add(f"params of run {run_id}, {key!r}: {_shown(actual.get(key))} in the table, "
                           f"{_shown(expected.get(key))} in the audit trail")

    counts, digests = _metric_digests(conn)
    undigested = []
    for run_id in sorted(counts.keys() | {r for r, s in state.runs.items() if s.points}):
        expected = state.runs.get(run_id, RunState())
        n = counts.get(run_id, 0)
        if n != expected.points:
            report.add(f"metrics of run {run_id}: {n:,} points in the table, {expected.points:,} in the audit trail")
        elif expected.undigested_seq is not None:
            undigested.append(expected.undigested_seq)
        elif digests.get(run_id, 0) != expected.digest:
            report.add(f"metrics of run {run_id}: the points' values, keys or steps differ from those logged "
                       f"(digest {digests.get(run_id, 0):064x} in the table, {expected.digest:064x} in the audit trail)")
    if undigested:
        warnings.append(f"cannot check the metric values of {len(undigested):,} run(s) logged before metric digests "
                        f"were recorded (events from seq {min(undigested)}); their point counts match")


def _shown(value) -> str:
    return "absent" if value is None else repr(value)


def _metric_digests(conn: sa.Connection) -> tuple[dict[str, int], dict[str, int]]:
    """Per run: how many points the metrics table holds, and their :func:`points_digest`.

    The points are hashed in Python (about 0.5 us each), so both backends share one
    definition; the rows are read as Arrow and grouped by run there, not sorted in SQL.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    sql = "select run_id, key, step, value from metrics"
    if conn.dialect.name == "duckdb":
        table = conn.connection.dbapi_connection.sql(sql).to_arrow_table()
    else:
        rows = conn.execute(sa.text(sql)).fetchall()
        table = pa.table([pa.array(c) for c in zip(*rows)] if rows else [pa.array([], pa.string())] * 2
                         + [pa.array([], pa.int64()), pa.array([], pa.float64())], names=["run_id", "key", "step", "value"])
    if table.num_rows == 0:
        return {}, {}
    table = table.sort_by("run_id")
    runs = pc.run_end_encode(table.column("run_id").combine_chunks())
    ends = runs.run_ends.to_pylist()
    keys, steps, values = (table.column(c).to_pylist() for c in ("key", "step", "value"))
    counts: dict[str, int] = {}
    digests: dict[str, int] = {}
    start = 0
    for run_id, end in zip(runs.values.to_pylist(), ends):
        counts[run_id] = end - start
        digests[run_id] = points_digest(keys[start:end], steps[start:end], values[start:end])
        start = end
    return counts, digests
