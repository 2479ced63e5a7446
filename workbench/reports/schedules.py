"""Reports on a schedule: cron arithmetic, claiming a due run exactly once, retrying failures.

A schedule remembers the last occurrence it handled (``last_due_at``). :func:`due` says
which occurrence is due now and how many earlier ones were missed (the scheduler was not
running): they are folded into one run, so a week of downtime gives one report, not seven.
:func:`run_due` claims each due schedule with a compare-and-set on ``last_due_at`` inside a
transaction, so two schedulers (or cron firing twice) export each occurrence once. A
failed export hands its claim back, so the next run tries again; the failure is recorded.

A run whose process died between claim and finish (kill -9, a crash, a reboot) would stay
"running" and its occurrence would never be exported. So each run records its runner
(host:pid) and the claim it replaced, and every :func:`run_due` first looks at the runs still
running: one whose process is gone (same host, no such pid) or that started more than
``WORKBENCH_REPORT_TIMEOUT_MINUTES`` (default 60) ago is marked failed as interrupted, and
its occurrence is handed back and exported again by that same ``run_due``, unless a later
occurrence was claimed since (that export covers it). A run on another host is judged by the
timeout alone: its pid cannot be checked from here.

>>> from datetime import datetime, timezone
>>> t = lambda d, h: datetime(2026, 11, d, h, tzinfo=timezone.utc)
>>> due("0 6 * * MON", last=t(23, 6), now=t(30, 7))  # Monday 30 Nov 06:00 is due
(datetime.datetime(2026, 11, 30, 6, 0, tzinfo=datetime.timezone.utc), 0)
>>> due("0 6 * * MON", last=t(30, 6), now=t(30, 7)) is None  # already handled
True
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from .. import processes, settings
from ..errors import ConflictError, NotFoundError, ValidationError, WorkbenchError
from ..store import schema
from ..store.audit import Event


def check_cron(expr: str) -> str:
    """A standard five-field cron expression (minute hour day month weekday), or a clear refusal.

    Returns
    -------
    str
        ``expr`` with its whitespace normalised to single spaces.

    Raises
    ------
    ValidationError
        For anything that is not a valid five-field expression.
    """
    from croniter import croniter

    expr = " ".join(str(expr).split())
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValidationError(f"Not a cron expression: {expr!r}. Five fields: minute hour day-of-month month "
                              "day-of-week, e.g. '0 6 * * MON' for Mondays at 06:00 UTC.")
    return expr


def due(cron: str, *, last: datetime | None, now: datetime, created: datetime | None = None) -> tuple[datetime, int] | None:
    """(the latest occurrence in (last, now], how many earlier ones it folds in), or None.

    Parameters
    ----------
    cron : str
        A checked cron expression (:func:`check_cron`).
    last : datetime or None
        The last occurrence handled; None when the schedule never ran.
    now : datetime
        The moment to judge at.
    created : datetime, optional
        When the schedule was made: the start when ``last`` is None. Without either, the
        start is ``now`` and nothing is due.

    Returns
    -------
    tuple or None
        ``(occurrence, missed)``, or None when nothing is due. ``missed`` counts at most 10,000.
    """
    from croniter import croniter

    start = last or created or now
    latest = croniter(cron, now).get_prev(datetime).replace(fold=0)  # croniter marks some times fold=1
    if latest <= start:
        return None
    missed, probe = 0, croniter(cron, start)
    nxt = probe.get_next(datetime)
    while nxt < latest and missed < 10_000:
        missed += 1
        nxt = probe.get_next(datetime)
    return latest, missed


def next_due(cron: str, after: datetime) -> datetime:
    """The first occurrence of ``cron`` after ``after``."""
    from croniter import croniter

    return croniter(cron, after).get_next(datetime).replace(fold=0)


# -- write ops --------------------------------------------------------------------------------------------
def add(conn, actor: str, role: str, *, name: str, cron: str, kind: str, model: str | None, version: int | None,
        fmt: str, out_dir: str):
    """Write op: create a report schedule (who may is checked by the caller).

    Parameters as for :meth:`Workspace.add_schedule`.

    Returns
    -------
    tuple
        ``(schedule_id, events)``.

    Raises
    ------
    ValidationError
        For an empty name, an unknown kind or format, a missing model, an invalid cron
        expression, or an output folder that does not exist or is not writable.
    NotFoundError
        For an unknown model.
    ConflictError
        If a schedule with that name exists.
    """
    from . import documents as reports

    if not isinstance(name, str) or not name.strip():
        raise ValidationError("A schedule needs a name.")
    name = name.strip()  # stored, checked for duplicates and audited as one and the same
    if kind not in reports.KINDS:
        raise ValidationError(f"kind must be one of {reports.KINDS}, got {kind!r}.")
    reports.check_format(fmt)
    if kind != "audit" and not model:
        raise ValidationError(f"A {kind} schedule needs a model (--model).")
    if model is not None and conn.execute(sa.text("select 1 from registered_models where name = :n"),
                                          {"n": model}).first() is None:
        raise NotFoundError(f"No registered model named {model!r}.")
    folder = reports.check_folder(out_dir)
    t = schema.ReportSchedule.__table__
    if conn.execute(sa.select(t.c.id).where(t.c.name == name)).first() is not None:
        raise ConflictError(f"A schedule named {name!r} exists already; remove it first or pick another name.")
    now = schema.utcnow()
    cron = check_cron(cron)
    sid = conn.execute(sa.insert(t).values(name=name, cron=cron, kind=kind, model=model,
                                           version=version, format=fmt, out_dir=str(folder.resolve()),
                                           created_by=actor, created_at=now, last_due_at=None)
                       .returning(t.c.id)).scalar_one()
    return sid, [Event(actor, role, "schedule.add", "schedule", name, {
        "cron": cron, "kind": kind, "model": model, "version": version, "format": fmt, "out_dir": str(folder.resolve())})]


def remove(conn, actor: str, role: str, name: str):
    """Write op: delete the schedule ``name``; its runs stay as history.

    Returns
    -------
    tuple
        ``(schedule_id, events)``.

    Raises
    ------
    NotFoundError
        If there is no such schedule.
    """
    t = schema.ReportSchedule.__table__
    row = conn.execute(sa.select(t.c.id).where(t.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"No schedule named {name!r}.")
    conn.execute(sa.delete(t).where(t.c.id == row[0]))  # its runs stay: they are history
    return row[0], [Event(actor, role, "schedule.remove", "schedule", name, {"id": row[0]})]


def claim(conn, actor: str, role: str, schedule: dict, due_at: datetime, missed: int):
    """Take the occurrence for this process, unless another scheduler took it first (None).

    Returns
    -------
    tuple
        ``(run_id, events)``: the new ``running`` run's id, or None with a ``schedule.skip``
        event when another scheduler moved ``last_due_at`` first.
    """
    t, r = schema.ReportSchedule.__table__, schema.ReportRun.__table__
    prev = schedule["last_due_at"]
    cond = t.c.last_due_at.is_(None) if prev is None else t.c.last_due_at == prev
    if conn.execute(sa.update(t).where(t.c.id == schedule["id"], cond).values(last_due_at=due_at)).rowcount != 1:
        return None, [Event(actor, role, "schedule.skip", "schedule", schedule["name"],
                            {"due_at": due_at.isoformat(), "why": "claimed by another scheduler"})]
    run_id = conn.execute(sa.insert(r).values(schedule_id=schedule["id"], due_at=due_at, missed=missed,
                                              started_at=schema.utcnow(), status="running",
                                              runner=processes.runner(),
                                              prev_due_at=prev).returning(r.c.id)).scalar_one()
    return run_id, [Event(actor, role, "schedule.claim", "schedule", schedule["name"],
                          {"run_id": run_id, "due_at": due_at.isoformat(), "missed": missed})]


def finish(conn, actor: str, role: str, schedule: dict, run_id: int, *, path: str | None, sha256: str | None,
           error: str | None):
    """Record the outcome; a failure hands the occurrence back so the next run retries it."""
    t, r = schema.ReportSchedule.__table__, schema.ReportRun.__table__
    conn.execute(sa.update(r).where(r.c.id == run_id).values(
        finished_at=schema.utcnow(), status="failed" if error else "ok", path=path, sha256=sha256, error=error))
    if error:
        conn.execute(sa.update(t).where(t.c.id == schedule["id"]).values(last_due_at=schedule["last_due_at"]))
    return None, [Event(actor, role, "schedule.run", "schedule", schedule["name"],
                        {"run_id": run_id, "status": "failed" if error else "ok", "path": path, "sha256": sha256,
                         "error": error})]


def run_timeout() -> timedelta:
    """How long a report run may stay "running" before it is taken as interrupted.

    Well above an export's minutes by default, since a run still working past it would be
    exported a second time.

    Returns
    -------
    timedelta
        ``WORKBENCH_REPORT_TIMEOUT_MINUTES`` (default 60) minutes.

    Raises
    ------
    ValidationError
        The variable is not a positive, finite number.
    """
    return timedelta(minutes=settings.minutes("WORKBENCH_REPORT_TIMEOUT_MINUTES", 60))


def why_interrupted(run: dict, *, now: datetime, timeout: timedelta) -> str | None:
    """Why a run still marked running is taken as interrupted, or None if it may be working.

    Parameters
    ----------
    run : dict
        A row of ``RUNNING_SQL`` (``runner`` is host:pid, ``started_at`` aware UTC).
    now : datetime
        The wall clock (``started_at`` was written from it).
    timeout : timedelta
        Older than this, a run is interrupted even if a process with its pid exists: the pid
        may have been reused, or the run is on another host, whose pids cannot be checked.

    Returns
    -------
    str or None
        The reason (its process ended, or it ran past the timeout), or None.
    """
    if processes.gone(run["runner"]):
        return f"its process {run['runner']} ended before it finished"
    if now - run["started_at"] > timeout:
        return (f"still running after {timeout.total_seconds() / 60:g} minutes "
                f"(WORKBENCH_REPORT_TIMEOUT_MINUTES) on {run['runner']}")
    return None


def interrupt(conn, actor: str, role: str, run: dict, why: str):
    """Mark a run that never finished failed and hand its occurrence back to be exported again.

    A compare-and-set on the status, so two schedulers recover a run once; the claim goes
    back (to the run's ``prev_due_at``) only while it is still the schedule's latest: a later
    occurrence claimed since has exported the current state already.

    Parameters
    ----------
    conn : sqlalchemy.Connection
        The write transaction.
    actor, role : str
        Who runs the scheduler.
    run : dict
        A row of ``RUNNING_SQL``.
    why : str
        From :func:`why_interrupted`.

    Returns
    -------
    tuple
        (whether the occurrence was handed back, or None if another scheduler recovered the
        run first; the ``schedule.interrupted`` event with before and after values, or none).
    """
    t, r = schema.ReportSchedule.__table__, schema.ReportRun.__table__
    if conn.execute(sa.update(r).where(r.c.id == run["id"], r.c.status == "running").values(
            finished_at=schema.utcnow(), status="failed", error=f"interrupted: {why}")).rowcount != 1:
        return None, []
    handed_back = conn.execute(sa.update(t).where(t.c.id == run["schedule_id"], t.c.last_due_at == run["due_at"])
                               .values(last_due_at=run["prev_due_at"])).rowcount == 1

    def iso(d: datetime | None) -> str | None:
        return d.isoformat() if d is not None else None

    return handed_back, [Event(actor, role, "schedule.interrupted", "schedule", run["name"] or f"#{run['schedule_id']}", {
        "run_id": run["id"], "runner": run["runner"], "due_at": iso(run["due_at"]), "error": f"interrupted: {why}",
        "status": {"before": "running", "after": "failed"},
        "last_due_at": {"before": iso(run["due_at"]), "after": iso(run["prev_due_at"] if handed_back else run["due_at"])}})]


RUNNING_SQL = """
select r.id, r.schedule_id, s.name, r.due_at, r.prev_due_at, r.started_at, r.runner
from report_runs r left join report_schedules s on s.id = r.schedule_id where r.status = 'running' order by r.id
"""


def recover_interrupted(ws) -> list[dict]:
    """Mark the runs whose process died (or that ran too long) failed, handing their
    occurrences back; judged on the wall clock, as ``started_at`` is.

    Parameters
    ----------
    ws : Workspace
        A workspace allowed to run reports.

    Returns
    -------
    list of dict
        One outcome per recovered run: schedule, status ``interrupted``, run_id, due_at,
        error (why) and retried (whether its occurrence was handed back).
    """
    timeout, now = run_timeout(), datetime.now(timezone.utc)
    outcomes = []
    for run in ws.ctx.read(RUNNING_SQL).to_dicts():
        why = why_interrupted(run, now=now, timeout=timeout)
        if why is None:
            continue
        handed_back = ws.ctx.call(lambda conn, run=run, why=why: interrupt(conn, ws.user, ws.role, run, why))
        if handed_back is not None:
            outcomes.append({"schedule": run["name"], "status": "interrupted", "run_id": run["id"],
                             "due_at": run["due_at"], "error": why, "retried": handed_back})
    return outcomes


SCHEDULES_SQL = """
select s.id, s.name, s.cron, s.kind, s.model, s.version, s.format, s.out_dir, s.created_by, s.created_at, s.last_due_at,
       (select r.status from report_runs r where r.schedule_id = s.id order by r.id desc limit 1) as last_status,
       (select r.finished_at from report_runs r where r.schedule_id = s.id order by r.id desc limit 1) as last_run_at,
       (select r.path from report_runs r where r.schedule_id = s.id order by r.id desc limit 1) as last_path
from report_schedules s order by s.name
"""

RUNS_SQL = """
select r.id, s.name as schedule, r.due_at, r.missed, r.started_at, r.finished_at, r.status, r.path, r.sha256, r.error,
       r.runner
from report_runs r left join report_schedules s on s.id = r.schedule_id order by r.id desc
"""


def run_due(ws, now: datetime | None = None) -> list[dict]:
    """Export every schedule that is due at ``now``, each occurrence once; the outcome of each.

    Interrupted runs are recovered first (:func:`recover_interrupted`), so their occurrences
    are exported again here. A failed export is recorded and its claim handed back.

    Parameters
    ----------
    ws : Workspace
        A workspace allowed to run reports.
    now : datetime, optional
        The moment to judge what is due at (aware UTC); default: the wall clock.

    Returns
    -------
    list of dict
        The recovered runs' outcomes, then one per due schedule: ``schedule``, ``status``
        (``"ok"``, ``"failed"`` or ``"skipped"``), ``due_at`` and, unless skipped, ``missed``,
        ``path`` and ``error``.
    """
    from ..store import artifacts
    from . import documents as reports

    now = now or datetime.now(timezone.utc)
    outcomes = recover_interrupted(ws)  # first, so an interrupted occurrence is claimed again below
    for s in ws.ctx.read(SCHEDULES_SQL).to_dicts():
        found = due(s["cron"], last=s["last_due_at"], now=now, created=s["created_at"] - timedelta(seconds=1))
        if found is None:
            continue
        due_at, missed = found
        run_id = ws.ctx.call(lambda conn, s=s: claim(conn, ws.user, ws.role, s, due_at, missed))
        if run_id is None:
            outcomes.append({"schedule": s["name"], "status": "skipped", "due_at": due_at})
            continue
        path = digest = error = None
        try:
            written = reports.export(ws, s["kind"], s["model"], s["version"], s["format"], s["out_dir"])
            path, digest = str(written), artifacts.sha256_file(written)
        except WorkbenchError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a scheduler records any failure and carries on
            error = f"{type(exc).__name__}: {exc}"
        ws.ctx.call(lambda conn, s=s: finish(conn, ws.user, ws.role, s, run_id, path=path, sha256=digest, error=error))
        outcomes.append({"schedule": s["name"], "status": "failed" if error else "ok", "due_at": due_at,
                         "missed": missed, "path": path, "error": error})
    return outcomes
