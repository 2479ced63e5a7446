"""Column marks of logged data sets: stored with the data set, carried through lineage.

Write ops (run in the writer's transaction, each returning its audit events) and the reads
that decide which columns of a model version's data are identifying. The precedence, per
column: a person's mark (confirmed) over one inherited from a parent over the detector's.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from ..errors import NotFoundError
from ..store import schema
from ..store.audit import Event

_T = schema.ColumnMark.__table__


def _dataset(conn, dataset_id: int):
    d = schema.Dataset.__table__
    row = conn.execute(sa.select(d.c.id, d.c.name, d.c.columns_json).where(d.c.id == dataset_id)).first()
    if row is None:
        raise NotFoundError(f"Data set {dataset_id} does not exist.")
    return row


def current(conn, dataset_id: int) -> dict[str, dict]:
    """{column: {mark, origin, reason}} of a data set."""
    rows = conn.execute(sa.select(_T.c.column_name, _T.c.mark, _T.c.origin, _T.c.reason)
                        .where(_T.c.dataset_id == dataset_id)).all()
    return {r.column_name: {"mark": r.mark, "origin": r.origin, "reason": r.reason} for r in rows}


def _write(conn, dataset_id: int, marks: dict[str, dict], actor: str) -> None:
    conn.execute(sa.delete(_T).where(_T.c.dataset_id == dataset_id, _T.c.column_name.in_(list(marks))))
    now = schema.utcnow()
    for col, m in marks.items():
        conn.execute(sa.insert(_T).values(dataset_id=dataset_id, column_name=col, mark=m["mark"], origin=m["origin"],
                                          reason=m["reason"], set_by=actor, set_at=now))


def on_log(conn, actor: str, role: str, dataset_id: int, columns: list[str], detected: dict,
           explicit: dict[str, str], parent_ids: list[int], created: bool) -> tuple[dict, list[Event]]:
    """Marks for a data set just logged: the caller's, else a parent's, else the detector's.

    A data set logged again (same name and content) keeps its marks, except those the caller
    gives now. Returns ({column: mark}, events).
    """
    marks: dict[str, dict] = {}
    if created:
        for col, (mark, reason) in detected.items():
            marks[col] = {"mark": mark, "origin": "detected", "reason": reason}
        for pid in parent_ids:
            for col, m in current(conn, pid).items():
                if col in columns and m["origin"] != "detected":
                    marks[col] = {"mark": m["mark"], "origin": "inherited", "reason": f"from data set {pid}"}
    for col, mark in explicit.items():
        marks[col] = {"mark": mark, "origin": "confirmed", "reason": None}
    if not marks:
        return {c: m["mark"] for c, m in current(conn, dataset_id).items()}, []
    _write(conn, dataset_id, marks, actor)
    event = Event(actor, role, "dataset.mark_columns", "dataset", str(dataset_id),
                  {"marks": {c: [m["mark"], m["origin"]] for c, m in marks.items()}})
    return {c: m["mark"] for c, m in current(conn, dataset_id).items()}, [event]


def set_marks(conn, actor: str, role: str, dataset_id: int, marks: dict[str, str], confirm_all: bool):
    """A person marks columns (and, with ``confirm_all``, confirms the other marks: detected or inherited).

    Descendants through lineage take the new marks for columns they share, unless a person
    marked the column there. Returns (the data set's marks, events).

    Raises
    ------
    NotFoundError
        The data set does not exist.
    """
    row = _dataset(conn, dataset_id)
    before = current(conn, dataset_id)
    changed = {c: {"mark": m, "origin": "confirmed", "reason": None} for c, m in marks.items()}
    if confirm_all:
        for col, m in before.items():
            if col not in changed and m["origin"] != "confirmed":
                changed[col] = {**m, "origin": "confirmed"}
    _write(conn, dataset_id, changed, actor)
    events = [Event(actor, role, "dataset.mark_columns", "dataset", str(dataset_id),
                    {"name": row.name, "before": {c: before[c]["mark"] for c in changed if c in before},
                     "after": {c: m["mark"] for c, m in changed.items()}})]
    for child in _descendants(conn, dataset_id):
        child_cols = set(json.loads(_dataset(conn, child).columns_json))
        child_marks = current(conn, child)
        carried = {c: {"mark": m["mark"], "origin": "inherited", "reason": f"from data set {dataset_id}"}
                   for c, m in changed.items()
                   if c in child_cols and child_marks.get(c, {}).get("origin") != "confirmed"}
        if carried:
            _write(conn, child, carried, actor)
            events.append(Event(actor, role, "dataset.mark_columns", "dataset", str(child),
                                {"inherited_from": dataset_id, "after": {c: m["mark"] for c, m in carried.items()}}))
    return {c: m["mark"] for c, m in current(conn, dataset_id).items()}, events


def _descendants(conn, dataset_id: int) -> list[int]:
    lin = schema.DatasetLineage.__table__
    seen, todo = [], [dataset_id]
    while todo:
        parent = todo.pop()
        for (child,) in conn.execute(sa.select(lin.c.child_id).where(lin.c.parent_id == parent)):
            if child not in seen and child != dataset_id:
                seen.append(child)
                todo.append(child)
    return seen


#: Marks of the data sets a model version's run logged (train, test, ...), one row per mark.
VERSION_MARKS_SQL = """
select cm.column_name, cm.mark from column_marks cm
join run_datasets rd on rd.dataset_id = cm.dataset_id
join model_versions v on v.run_id = rd.run_id
join registered_models m on m.id = v.model_id
where m.name = ? and v.version = ?
"""


def strongest(pairs) -> dict[str, str]:
    """{column: mark} from (column, mark) pairs; identifying beats sensitive beats none."""
    rank = {"none": 0, "sensitive": 1, "identifying": 2}
    out: dict[str, str] = {}
    for col, mark in pairs:
        if col not in out or rank[mark] > rank[out[col]]:
            out[col] = mark
    return out
