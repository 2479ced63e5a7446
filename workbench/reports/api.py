"""The reports part of :class:`~workbench.workspace.Workspace`: exports, schedules, model card text."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from .. import freetext
from ..errors import ValidationError
from ..operations import READ, operation
from ..store import schema
from ..store.audit import Event
from . import documents as reports
from . import schedules


class ReportMethods:
    """Mixed into Workspace; uses its ``_require``, ``_call``, ``_read``, ``store``."""

    @operation("reports", writes=True)
    def export_report(self, kind: str, model: str | None, version: int | None = None, *, fmt: str = "html",
                      out_dir: str | Path = ".", **options) -> Path:
        """Write a model card, validation pack or audit extract (see :mod:`workbench.reports.documents`).

        Audited as ``report.export`` with the file's sha256.

        Parameters
        ----------
        kind : str
            ``"model-card"``, ``"validation"`` or ``"audit"``.
        model : str or None
            The registered model; None only for an audit extract of every model.
        version : int, optional
            Default: the Production version, else the latest.
        fmt : str
            ``"html"``, ``"pdf"``, ``"json"`` or ``"md"``.
        out_dir : str or Path
            An existing, writable folder.
        **options
            For an audit extract: ``since`` and ``until`` (ISO date or time, UTC).

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        ValidationError
            For an unknown kind or format, a missing model name, or an output folder that does
            not exist or is not writable.
        NotFoundError
            For an unknown model or version.
        """
        return reports.export(self, kind, model, version, fmt, out_dir, **options)

    @operation("reports", writes=True)
    def download_report(self, kind: str, model: str | None, version: int | None = None, *, fmt: str = "html",
                        **options) -> tuple[str, bytes]:
        """A report as (file name, bytes), for a browser download; audited like :meth:`export_report`,
        which writes the same document to a folder instead.

        Parameters
        ----------
        kind, model, version, fmt, **options
            As for :meth:`export_report`.

        Returns
        -------
        tuple
            ``(file name, content)``.
        """
        doc = reports.build(self, kind, model, version, **options)
        data = reports.render(doc, fmt)
        name = reports.file_name(doc, fmt)
        reports.record(self, doc, fmt, name, data)
        return name, data

    # -- model card text ---------------------------------------------------------------------------------
    @operation("register_models", writes=True)
    def set_card_text(self, model: str, field: str, text: str) -> None:
        """What the card says about intended use, out-of-scope use, limitations or ethics (audited).

        Parameters
        ----------
        model : str
            The registered model.
        field : str
            One of ``intended_use``, ``out_of_scope_use``, ``limitations``,
            ``ethical_considerations``.
        text : str
            The text; empty removes it (the card then lists it as missing).

        Raises
        ------
        ValidationError
            For an unknown field or an over-long text.
        NotFoundError
            For an unknown model.
        """
        if field not in reports.TEXT_FIELDS:
            raise ValidationError(f"field must be one of {reports.TEXT_FIELDS}, got {field!r}.")
        self._model_exists(model)
        self._call(lambda conn: _set_text(conn, self.user, self.role, model, field, (text or "").strip()))

    @operation(READ, writes=False)
    def card_text(self, model: str) -> dict[str, str | None]:
        """The model card's free-text fields for ``model`` (intended use, limitations ...).

        Returns
        -------
        dict
            Field name -> its text, or None where nobody has written it yet
            (see :meth:`set_card_text`).
        """
        self._model_exists(model)
        rows = self._read("select t.field, t.text from model_card_text t join registered_models m on m.id = t.model_id "
                          "where m.name = ?", [model])
        stored = dict(rows.iter_rows())
        return {f: stored.get(f) or None for f in reports.TEXT_FIELDS}

    # -- schedules ---------------------------------------------------------------------------------------------
    @operation("reports", writes=True)
    def add_schedule(self, name: str, cron: str, kind: str, model: str | None, fmt: str, out_dir: str | Path,
                     version: int | None = None) -> int:
        """Export a report on a schedule, run by ``workbench schedule run-due`` (the scheduler).

        Parameters
        ----------
        name : str
            The schedule's unique name.
        cron : str
            When, as a five-field cron expression in UTC (``"0 6 * * 1"``: Mondays at 06:00).
        kind : str
            ``"model-card"``, ``"validation"`` or ``"audit"``.
        model : str or None
            The model the report is about (None for an audit extract of every model).
        fmt : str
            ``"html"``, ``"pdf"``, ``"json"`` or ``"md"``.
        out_dir : str or Path
            The folder the scheduler writes into.
        version : int, optional
            A fixed version; default: the model's Production version when the report runs, else
            its latest.

        Returns
        -------
        int
            The schedule's id. Audited as ``schedule.add``.

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
        return self._call(lambda conn: schedules.add(conn, self.user, self.role, name=name, cron=cron, kind=kind,
                                                     model=model, version=version, fmt=fmt, out_dir=str(out_dir)))

    @operation("reports", writes=True)
    def remove_schedule(self, name: str) -> None:
        """Delete the schedule called ``name``; its past runs stay listed. Audited as ``schedule.remove``.

        Raises
        ------
        NotFoundError
            If there is no such schedule.
        """
        self._call(lambda conn: schedules.remove(conn, self.user, self.role, name))

    @operation(READ, writes=False)
    def schedules(self, now: datetime | None = None) -> pl.DataFrame:
        """Schedules with their last run (status, time, file) and the next occurrence after ``now``.

        Parameters
        ----------
        now : datetime, optional
            The moment the listing is for (aware UTC); default: the wall clock. Pass it where the
            answer must not depend on the day it is asked (tests, reports of a past state).

        Returns
        -------
        polars.DataFrame
            One row per schedule, by name: its settings, ``last_due_at``, ``last_status``,
            ``last_run_at``, ``last_path`` and ``next_due``.
        """
        rows = self._read(schedules.SCHEDULES_SQL)
        now = now or datetime.now(timezone.utc)
        nxt = [schedules.next_due(c, max(filter(None, [last, created, now]))) for c, last, created
               in rows.select(["cron", "last_due_at", "created_at"]).iter_rows()] if rows.height else []
        return rows.with_columns(pl.Series("next_due", nxt, dtype=pl.Datetime("us", "UTC")))

    @operation(READ, writes=False)
    def schedule_runs(self) -> pl.DataFrame:
        """Every scheduled export that ran or is running: schedule, occurrence, status, file, error.

        Returns
        -------
        polars.DataFrame
            One row per run, newest first.
        """
        return self._read(schedules.RUNS_SQL)

    @operation("reports", writes=True)
    def run_due_schedules(self, now: datetime | None = None) -> list[dict]:
        """Export what is due (each occurrence once, failures retried next time); the outcomes.

        Runs left "running" by a process that died are first marked failed and their
        occurrence exported again (see :mod:`workbench.reports.schedules`).

        Parameters
        ----------
        now : datetime, optional
            The moment to judge what is due at (aware UTC); default: the wall clock.

        Returns
        -------
        list of dict
            One outcome per schedule handled: ``schedule``, ``status`` (``"ok"``, ``"failed"``,
            ``"skipped"`` when another scheduler claimed it, or ``"interrupted"``), ``due_at``
            and, as they apply, ``path``, ``error``, ``missed``, ``run_id``, ``retried``.
        """
        return schedules.run_due(self, now)


def _set_text(conn, actor: str, role: str, model: str, field: str, text: str):
    freetext.check_text(f"Model card {field.replace('_', ' ')}", text)
    m, t = schema.RegisteredModel.__table__, schema.ModelCardText.__table__
    mid = conn.execute(sa.select(m.c.id).where(m.c.name == model)).scalar_one()
    conn.execute(sa.delete(t).where(t.c.model_id == mid, t.c.field == field))
    if text:
        conn.execute(sa.insert(t).values(model_id=mid, field=field, text=text, updated_by=actor,
                                         updated_at=schema.utcnow()))
    return None, [Event(actor, role, "model_card.text", "model", model, {"field": field, "text": text})]
