"""Runs: what a notebook or script logs while it trains.

A :class:`Run` validates every value when it is logged (a bad value raises at once and
nothing of that call is kept), buffers params, tags and metric points in memory, and hands
them to the store's writer in batches: during long runs every ``flush_points`` points or
``flush_seconds`` seconds, and at its end, which returns only once everything the run logged
is committed (a process may end the moment after, by any means, and lose nothing).

A process that is sent SIGTERM inside a run ends it as ``FAILED`` (error ``KILLED``) with
what it logged, then exits. A run whose process died without ending it (``kill -9``, power
loss) stays ``RUNNING`` until the store is next opened on that host, which marks it
``FAILED`` (:func:`reap_dead_runs`).
"""

from __future__ import annotations

import json
import numbers
import os
import random
import reprlib
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import sqlalchemy as sa

from .. import processes
from ..datasets import DatasetRef, fingerprint, to_polars
from ..errors import NotFoundError, PermissionDenied, ValidationError
from ..freetext import MAX_TEXT, check_text
from ..protection import column_marks, dataset_marks
from ..store import artifacts, audit_replay, schema
from ..store.audit import Event
from ..store.shared import on_first_open
from ..store.writer import RunBatch

if TYPE_CHECKING:
    from ..people.context import Ctx
    from ..registry.models import ModelVersion

MAX_KEY = 250
MAX_PARAM_VALUE = MAX_TEXT  # params are free text too: one limit (workbench.freetext)
#: Distinct params, tags or metric keys one run may have: each is a column of the runs
#: table and of the search index, whose cost grows faster than the number of columns.
MAX_KEYS_PER_RUN = 1000
MAX_STEP = 2**63 - 1  # a metric step is a 64-bit integer in the store


def brief(value: Any) -> str:
    """A short repr for a message, whatever the value (deeply nested, a 10,000-digit int ...)."""
    try:
        return reprlib.repr(value)
    except Exception:  # noqa: BLE001 - a message must not fail on the value it describes
        return f"<{type(value).__name__}>"


def _no_nul(text: str, what: str) -> str:
    # PostgreSQL text cannot hold NUL (0x00); refused on both backends so a store moves intact.
    if "\x00" in text:
        raise ValidationError(f"{what} contains a NUL character (0x00), which the store cannot keep; "
                              "nothing of this call was logged.")
    return text


def as_text(kind: str, key: str, value: Any) -> str:
    """``str(value)``, or a refusal naming the key where Python cannot write the value as text.

    Raises
    ------
    ValidationError
        If ``str(value)`` fails (too deeply nested, an int with too many digits ...) or holds
        a NUL character.
    """
    try:
        return _no_nul(str(value), f"{kind} {brief(key)}'s value")
    except ValidationError:
        raise
    except RecursionError:
        raise ValidationError(f"{kind} {key!r}: the value is nested too deeply to be written as text "
                              f"({type(value).__name__}); nothing of this call was logged.") from None
    except Exception as exc:  # noqa: BLE001 - e.g. an int beyond sys.get_int_max_str_digits()
        raise ValidationError(f"{kind} {key!r}: the value cannot be written as text ({type(exc).__name__}: "
                              f"{exc}); nothing of this call was logged.") from None


def check_run_name(name: Any) -> str | None:
    """A run's name as text (None: one is made up), refused only for a NUL character."""
    return _no_nul(str(name), "Run name") if name else None


def check_key(kind: str, key: Any) -> str:
    """``key`` unchanged if it can name a param, metric, tag, experiment, data set or artifact.

    Parameters
    ----------
    kind : str
        What the key names, for the message (``"Param"``, ``"Metric"`` ...).
    key : Any
        The name as given.

    Returns
    -------
    str
        ``key``.

    Raises
    ------
    ValidationError
        If ``key`` is not a non-blank string, is longer than :data:`MAX_KEY` characters, or
        holds a NUL character.
    """
    if not isinstance(key, str) or not key.strip():
        raise ValidationError(f"{kind} names must be non-empty strings, got {brief(key)}.")
    if len(key) > MAX_KEY:
        raise ValidationError(f"{kind} name {key[:40]!r}... is longer than {MAX_KEY} characters.")
    return _no_nul(key, f"{kind} name {brief(key)}")


def check_metric(key: str, value: Any) -> float:
    """A real number (NaN and inf are kept as such); anything else is refused.

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    ValidationError
        For a bool, a non-number, or a number beyond a 64-bit float's range.
    """
    try:
        if type(value) is float or type(value) is int:  # fast path: ABC checks cost ~1 us each
            return float(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValidationError(f"Metric {key!r} must be a number, got {type(value).__name__} {brief(value):.60}; "
                                  "nothing of this call was logged.")
        return float(value)
    except OverflowError:  # an int (or Fraction) beyond 1.8e308: not silently made infinite
        raise ValidationError(f"Metric {key!r} is too large for a 64-bit float (the limit is about 1.8e308); "
                              "nothing of this call was logged.") from None


# uuid4() reads os.urandom, which costs ~2 ms a call on these machines; a per-process
# generator seeded from it (and reseeded after fork) gives ids just as unique, fast.
_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))


def new_run_id() -> str:
    """A new random run id: a version-4 UUID as 32 hex digits."""
    return uuid.UUID(int=_rng.getrandbits(128), version=4).hex


def check_run_id(run_id: Any) -> str:
    """``run_id`` unchanged if it has a run id's shape (32 lower-case hex digits), as a client
    that makes its own ids (the remote run) must send.

    >>> check_run_id("0" * 32) == "0" * 32
    True
    """
    if not isinstance(run_id, str) or len(run_id) != 32 or any(c not in "0123456789abcdef" for c in run_id):
        raise ValidationError(f"A run id is 32 lower-case hex digits, not {brief(run_id)}.")
    return run_id


@lru_cache(maxsize=64)
def _git_commit(folder: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", folder, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=256)
def _source_of(fname: str) -> tuple[str, str | None]:
    """(source, git commit) for a caller's file: one stat and one git call per file, not per run."""
    if Path(fname).exists():
        return fname, _git_commit(str(Path(fname).parent))
    # A notebook cell's "file" is a temporary name: record the notebook, if known.
    return os.environ.get("JPY_SESSION_NAME") or "<interactive>", _git_commit(os.getcwd())


def caller_source() -> tuple[str | None, str | None]:
    """(source file, git commit) of the code that called into workbench."""
    here = str(Path(__file__).parent.parent)  # the workbench package, whichever subpackage calls
    frame = sys._getframe(1)  # inspect.stack() reads source files: far too slow per run
    while frame is not None:
        fname = frame.f_code.co_filename
        if not fname.startswith(here) and "contextlib" not in fname:
            return _source_of(fname)
        frame = frame.f_back
    return None, _git_commit(os.getcwd())


HOST = processes.HOST
_open_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()  # this process's runs not yet ended


def new_params(run_name: str, logged: Mapping[str, str], params: Mapping[str, Any]) -> dict[str, str]:
    """The params of ``params`` a run named ``run_name`` has not logged yet, as text; the rule
    that a param keeps its first value, checked against ``logged``.

    >>> new_params("r", {"C": "0.1"}, {"C": 0.1, "max_iter": 100})
    {'max_iter': '100'}

    Raises
    ------
    ValidationError
        For an invalid key, a value that cannot be written as text or is longer than
        :data:`MAX_PARAM_VALUE`, or a different value for a logged param.
    """
    new: dict[str, str] = {}
    for key, value in dict(params).items():
        check_key("Param", key)
        text = as_text("Param", key, value)
        if len(text) > MAX_PARAM_VALUE:
            raise ValidationError(f"Param {key!r} value is {len(text)} characters; the limit is {MAX_PARAM_VALUE}.")
        old = logged.get(key, new.get(key))
        if old is not None and old != text:
            raise ValidationError(
                f"Param {key!r} was already logged as {old!r} in run {run_name!r}; it cannot change to "
                f"{text!r}. Params describe a run's setup: start a new run, or record changing values as metrics or tags."
            )
        if old is None:
            new[key] = text
    return new


class RunKilled(SystemExit):
    """Raised in the main thread by SIGTERM while a run is open: the run ends ``FAILED`` (KILLED)."""


def _on_sigterm(signum, frame) -> None:
    if not _open_runs:  # nothing of ours to end: die as the signal's default would
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise RunKilled(128 + signum)


def _watch_sigterm() -> None:
    """End open runs on SIGTERM, where nobody else handles it (only the main thread can)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


class Run:
    """An experiment run. Use as a context manager from :meth:`Workspace.start_run`.

    Example::

        with ws.start_run("credit-risk") as run:
            run.log_params({"model": "rf", "n_estimators": 200})
            run.log_metrics({"auc": 0.81}, step=0)
    """

    flush_points = 50_000
    flush_seconds = 5.0

    def __init__(self, ctx: "Ctx", experiment_id: int, experiment: str, name: str | None,
                 parent_run_id: str | None, *, register: Callable[..., "ModelVersion"],
                 on_end: Callable[[str], None] = lambda run_id: None, local: bool = True,
                 run_id: str | None = None) -> None:
        # The workspace hands the run what it needs: who acts on which store (ctx), how to
        # register a model, and whom to tell when it ends (its list of open runs).
        self._ctx = ctx
        self._register = register
        self._on_end = on_end
        self.run_id = check_run_id(run_id) if run_id is not None else new_run_id()
        self.experiment = experiment
        self.experiment_id = experiment_id
        self.name = name or f"run-{self.run_id[:8]}"
        self.parent_run_id = parent_run_id
        self.status = "RUNNING"
        # A run started here by a client elsewhere (the server's create_run) names no source, host
        # or pid of ours: the reaper must not end it when this process restarts.
        self.source, self.git_commit = caller_source() if local else (None, None)
        self.start_time = schema.utcnow()
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._metric_keys: set[str] = set()  # validated once per run
        self._tag_keys: set[str] = set()
        self._batch = RunBatch(self.run_id, insert=dict(
            run_id=self.run_id, experiment_id=experiment_id, name=self.name, status="RUNNING",
            user_name=ctx.user, start_time=self.start_time, parent_run_id=parent_run_id,
            git_commit=self.git_commit, source=self.source, host=HOST if local else None,
            pid=os.getpid() if local else None))
        self._batch.events.append(self._event("run.start", {
            "experiment": experiment, "name": self.name, "parent_run_id": parent_run_id,
            "git_commit": self.git_commit, "source": self.source}))
        self._last_flush = time.monotonic()
        self._ended = False
        if local:
            _open_runs.add(self)
            _watch_sigterm()

    @classmethod
    def attach(cls, ctx: "Ctx", run_id: str, *, register: Callable[..., "ModelVersion"]) -> "Run":
        """A Run for a run already in the store, to log into it and end it: how a server logs
        what a remote client sends (``Workspace.log_batch``, ``end_run``). Its params, metric
        steps and key counts are read from the store, so the same rules hold across calls.

        Raises
        ------
        NotFoundError
            For an unknown run.
        PermissionDenied
            For a run of another user: nobody logs into someone else's run.
        ValidationError
            For a run that has ended.
        """
        if not isinstance(run_id, str) or not run_id:
            raise ValidationError(f"run_id must be a run's id (text), not {brief(run_id)}.")

        def read(conn):
            row = conn.execute(sa.text(
                "select r.experiment_id, e.name, r.name, r.parent_run_id, r.status, r.user_name, r.start_time "
                "from runs r join experiments e on e.id = r.experiment_id where r.run_id = :id"), {"id": run_id}).first()
            if row is None:
                return None
            params = dict(conn.execute(sa.text("select key, value from params where run_id = :id"), {"id": run_id}).all())
            steps = dict(conn.execute(sa.text("select key, step from latest_metrics where run_id = :id"),
                                      {"id": run_id}).all())
            tags = {r[0] for r in conn.execute(sa.text("select key from tags where run_id = :id"), {"id": run_id})}
            return row, params, steps, tags

        found = ctx.snapshot(read)
        if found is None:
            raise NotFoundError(f"No run with id {run_id!r}.")
        row, params, steps, tags = found
        if row.user_name != ctx.user:
            raise PermissionDenied(f"Run {run_id} belongs to {row.user_name}: nobody logs into another user's run.")
        if row.status != "RUNNING":
            raise ValidationError(f"Run {row.name!r} has ended ({row.status}); start a new run to log more.")
        run = cls.__new__(cls)
        run._ctx, run._register, run._on_end = ctx, register, (lambda _: None)
        run.run_id, run.experiment_id, run.experiment, run.name = run_id, row.experiment_id, row[1], row[2]
        run.parent_run_id, run.status, run.start_time = row.parent_run_id, "RUNNING", row.start_time
        run.source = run.git_commit = None
        run._params, run._steps = params, steps
        run._metric_keys, run._tag_keys = set(steps), tags
        run._batch = RunBatch(run_id)
        run._last_flush, run._ended = time.monotonic(), False
        run.flush_points = run.flush_seconds = float("inf")  # one call, one commit: all of it or nothing
        return run

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, run_id={self.run_id!r}, experiment={self.experiment!r}, status={self.status!r})"

    def _event(self, action: str, payload: dict) -> Event:
        return Event(self._ctx.user, self._ctx.role, action, "run", self.run_id, payload)

    def _check_open(self) -> None:
        if self._ended:
            raise ValidationError(f"Run {self.name!r} has ended ({self.status}); start a new run to log more.")

    # -- logging ------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log hyperparameters (stored as text). A param keeps its first value for good.

        Logging the same value again is allowed and stores nothing new.

        Raises
        ------
        ValidationError
            If the run has ended, for an invalid key, a value that cannot be written as text or
            is longer than :data:`MAX_PARAM_VALUE`, a different value for a logged param, or
            more than :data:`MAX_KEYS_PER_RUN` params. Nothing of the call is kept.
        """
        self._check_open()
        new = new_params(self.name, self._params, params)
        self._check_room("params", len(self._params), len(new))
        self._params.update(new)
        self._batch.params.extend(new.items())
        if new:
            self._batch.events.append(self._event("run.log_params", {"params": new}))
        self._maybe_flush()

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log metric values at ``step`` (default: one past the key's last step).

        Parameters
        ----------
        metrics : mapping
            Metric key -> real number (NaN and inf are kept).
        step : int, optional
            The step of every value; default: one past the highest step this run logged for
            each key (0 for a new key).

        Raises
        ------
        ValidationError
            If the run has ended, for an invalid key or value, a step that is not a 64-bit
            integer, or more than :data:`MAX_KEYS_PER_RUN` metric keys. Nothing of the call
            is kept.
        """
        self._check_open()
        if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
            raise ValidationError(f"step must be an integer, got {brief(step)}.")
        if step is not None and not -MAX_STEP - 1 <= step <= MAX_STEP:
            raise ValidationError(f"step {brief(step)} is outside the range the store keeps "
                                  f"({-MAX_STEP - 1:,} to {MAX_STEP:,}); nothing of this call was logged.")
        keys = list(metrics)
        known = self._metric_keys
        fresh = [k for k in keys if k not in known]
        for k in fresh:
            check_key("Metric", k)
        if fresh:
            self._check_room("metric keys", len(known), len(set(fresh)))
        values = [check_metric(k, v) for k, v in zip(keys, metrics.values())]
        # All checked: only now does anything of this call reach the buffer.
        last = self._steps
        if step is None:
            steps: list[int] | int = [last.get(k, -1) + 1 for k in keys]
            if steps and max(steps) > MAX_STEP:
                raise ValidationError(f"The next step after {MAX_STEP:,} is outside the range the store keeps; "
                                      "pass step= explicitly. Nothing of this call was logged.")
            last.update(zip(keys, steps))
        else:
            steps = int(step)
            for k in keys:
                if last.get(k, -1) < steps:
                    last[k] = steps
        known.update(keys)
        # One chunk per call; the writer thread expands chunks into Arrow columns.
        self._batch.add_points(keys, values, steps, time.time_ns() // 1000)
        self._maybe_flush()

    def _check_room(self, what: str, have: int, adding: int) -> None:
        if have + adding > MAX_KEYS_PER_RUN:
            raise ValidationError(
                f"Run {self.name!r} would have {have + adding:,} {what}; a run keeps at most {MAX_KEYS_PER_RUN:,} "
                f"(each is a column of the runs table and of every search). Nothing of this call was logged.")

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Log one metric value; as :meth:`log_metrics` with ``{key: value}``."""
        self.log_metrics({key: value}, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (text); a tag may be overwritten, unlike a param.

        Raises
        ------
        ValidationError
            If the run has ended, for an invalid key, a value that cannot be written as text or
            is longer than :data:`~workbench.freetext.MAX_TEXT`, or more than
            :data:`MAX_KEYS_PER_RUN` tags. Nothing of the call is kept.
        """

        self._check_open()
        checked = {check_key("Tag", k): check_text(f"Tag {k!r}", as_text("Tag", k, v)) for k, v in dict(tags).items()}
        self._check_room("tags", len(self._tag_keys), len(checked.keys() - self._tag_keys))
        self._tag_keys.update(checked)
        self._batch.tags.update(checked)
        if checked:
            self._batch.events.append(self._event("run.set_tags", {"tags": checked}))
        self._maybe_flush()

    def log_dataset(self, data, name: str, role: str = "train", *, source: str | None = None,
                    parents: list[DatasetRef | int] | None = None, marks: dict[str, str] | None = None) -> DatasetRef:
        """Record a data set used by this run: name, sha256 digest, schema, rows, source, lineage,
        and which columns identify a person or hold a protected attribute.

        The frame itself is not copied into the store; its fingerprint is. ``marks``
        ({column: 'identifying' | 'sensitive' | 'none'}) are the caller's decisions; other
        columns take a parent's marks, else the detector's proposals
        (:func:`workbench.protection.column_marks.detect`), which wait for a person to confirm them
        (:meth:`Workspace.mark_columns`). ``ref.marks`` holds the result.

        Parameters
        ----------
        data : polars or pandas DataFrame, or str or Path
            The data, or a Parquet/CSV file (then also the default ``source``).
        name : str
            The data set's name; the same name and content is the same data set.
        role : str
            How the run used it (``"train"``, ``"test"``, ``"source"`` ...).
        source : str, optional
            Where it came from.
        parents : list of DatasetRef or int, optional
            The data sets it was derived from (lineage).
        marks : dict, optional
            Column -> ``"identifying"``, ``"sensitive"`` or ``"none"``.

        Returns
        -------
        DatasetRef
            The stored data set.

        Raises
        ------
        ValidationError
            If the run has ended, for an invalid name or role, data of another type, a
            missing file, or marks for unknown columns or with unknown values.
        NotFoundError
            If a parent does not exist.
        """
        self._check_open()
        check_key("Data set", name)
        check_key("Data set role", role)
        if source is None and isinstance(data, (str, Path)):
            source = str(data)
        df = to_polars(data)
        column_marks.check(marks or {}, df.columns)
        digest, schema_json = fingerprint(df)
        return self.log_fingerprint(name, role, digest, schema_json, df.height, df.width, source=source,
                                    parents=parents, detected=column_marks.detect(df), marks=marks)

    def log_fingerprint(self, name: str, role: str, digest: str, schema_json: str, n_rows: int, n_cols: int, *,
                        source: str | None = None, parents: list | None = None, detected: dict | None = None,
                        marks: dict[str, str] | None = None) -> DatasetRef:
        """Record a data set known by its fingerprint (:func:`workbench.datasets.fingerprint`):
        what :meth:`log_dataset` does once it has read the frame, and how a server records a
        data set a remote run fingerprinted where the data is.

        Parameters
        ----------
        name, role, source, parents, marks
            As for :meth:`log_dataset`.
        digest : str
            The content's sha256 (64 hex digits).
        schema_json : str
            ``{column: dtype}`` as JSON text, in column order.
        n_rows, n_cols : int
            Its size; ``n_cols`` is the number of columns in ``schema_json``.
        detected : dict, optional
            The detector's proposals, ``{column: (mark, reason)}``.

        Raises
        ------
        ValidationError
            For a malformed digest, schema or size, or marks and proposals for unknown columns.
        NotFoundError
            If a parent does not exist.
        """
        self._check_open()
        check_key("Data set", name)
        check_key("Data set role", role)
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValidationError(f"A data set digest is 64 lower-case hex digits (sha256), not {brief(digest)}.")
        try:
            columns = list(json.loads(schema_json)) if isinstance(schema_json, str) else None
        except ValueError:
            columns = None
        if columns is None or not isinstance(json.loads(schema_json), dict):
            raise ValidationError("The schema must be JSON text of {column: dtype}.")
        for what, value in (("n_rows", n_rows), ("n_cols", n_cols)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValidationError(f"{what} must be a whole number >= 0, not {brief(value)}.")
        if n_cols != len(columns):
            raise ValidationError(f"n_cols is {n_cols} but the schema names {len(columns)} columns.")
        explicit = column_marks.check(marks or {}, columns)
        detected = dict(detected or {})
        if set(detected) - set(columns) or not all(isinstance(v, (list, tuple)) and len(v) == 2 for v in detected.values()):
            raise ValidationError("detected must map the data set's columns to (mark, reason).")
        column_marks.check({c: v[0] for c, v in detected.items()}, columns)
        parent_ids = [p.id if isinstance(p, DatasetRef) else int(p) for p in (parents or [])]
        self.flush()  # the run row must exist before rows that point at it
        return self._ctx.call(lambda conn: _log_dataset(conn, self, name, role, digest, schema_json, int(n_rows),
                                                        int(n_cols), source, parent_ids, detected, explicit))

    def log_artifact(self, path: str | os.PathLike, name: str | None = None) -> str:
        """Copy a file into the content-addressed artifact folder; returns its sha256.

        Parameters
        ----------
        path : str or os.PathLike
            The file.
        name : str, optional
            The artifact's name in the run; default: the file's name.

        Raises
        ------
        ValidationError
            If the run has ended, for a name with a path separator, or when the run already
            has an artifact of that name with other content.
        NotFoundError
            If ``path`` does not exist or is not a regular file.
        """
        self._check_open()
        path = Path(path)
        name = check_key("Artifact", name or path.name)
        if "/" in name or "\\" in name or name in (".", ".."):
            raise ValidationError(f"Artifact name {name!r} may not contain path separators.")
        digest, size = artifacts.put_file(self._ctx.store.artifact_root, path)
        self.flush()
        return self._ctx.call(lambda conn: _log_artifact(conn, self, name, digest, size))

    def log_artifact_bytes(self, name: str, data: bytes) -> str:
        """Store ``data`` as the artifact ``name`` of this run (a file's content sent by a remote
        run); as :meth:`log_artifact`, which reads it from a path."""
        self._check_open()
        name = check_key("Artifact", name)
        if "/" in name or "\\" in name or name in (".", ".."):
            raise ValidationError(f"Artifact name {name!r} may not contain path separators.")
        if not isinstance(data, (bytes, bytearray)):
            raise ValidationError(f"An artifact's content is bytes, not {type(data).__name__}.")
        digest, size = artifacts.put_bytes(self._ctx.store.artifact_root, bytes(data))
        self.flush()
        return self._ctx.call(lambda conn: _log_artifact(conn, self, name, digest, size))

    def register_model(self, model: Any, name: str, **metadata: Any) -> "ModelVersion":
        """Save ``model`` (skops, content-addressed) as the next version of ``name``.

        ``metadata``: owner_team, use_case, risk_tier (low/medium/high), description — set
        on the registered model when it is first created; ``format="pickle"`` to opt in to
        pickle for a model skops cannot save.
        """
        self._check_open()
        self.flush()
        return self._register(model, name, run_id=self.run_id, **metadata)

    # -- lifecycle ----------------------------------------------------------------------
    def _maybe_flush(self) -> None:
        b = self._batch
        if b.n_points >= self.flush_points or time.monotonic() - self._last_flush > self.flush_seconds:
            self.submit()

    def _note_points(self) -> None:
        """Points leave a trace in the audit trail too: how many, which keys, and their digest
        (once a batch), so `audit verify` can check the metrics table against the chain."""
        b = self._batch
        if b.n_points and not any(e.action == "run.log_metrics" for e in b.events):
            b.events.append(self._event("run.log_metrics", {"points": b.n_points, "keys": b.point_keys(),
                                                            "digest": audit_replay.batch_digest(b.chunks)}))

    def submit(self) -> None:
        """Send what the run has buffered to the store's writer, without waiting for the commit
        (:meth:`flush` waits). The workspace does this for its open runs before every read."""
        b = self._batch
        self._note_points()
        self._batch = RunBatch(self.run_id)
        self._last_flush = time.monotonic()
        if not b.events:  # every change above appended an event, so no events means nothing to write
            return
        if self._ctx.waits_own_writes:  # a server's caller: its batch, waited for, its error its own
            self._ctx.writer.commit(b)
        else:
            self._ctx.writer.submit(b)

    def flush(self) -> None:
        """Send buffered values to the store and wait until they are committed."""
        self.submit()
        if not self._ctx.waits_own_writes:  # else submit waited already, for this run's batch alone
            self._ctx.writer.flush()

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """End the run; returns once the run and everything it logged are committed.

        Ending an ended run does nothing.

        Parameters
        ----------
        status : str
            The final status, ``"FINISHED"`` or ``"FAILED"``.
        error : str, optional
            What went wrong, for a failed run.
        """
        if self._ended:
            return
        self.status = status
        self._batch.update = dict(status=status, end_time=schema.utcnow(), error=error)
        self._note_points()  # events keep the order things happened: points before the end
        self._batch.events.append(self._event("run.end", {"status": status, "error": error}))
        self._ended = True
        _open_runs.discard(self)
        self._on_end(self.run_id)
        batch, self._batch = self._batch, RunBatch(self.run_id)
        self._ctx.writer.commit(batch)  # acknowledged means committed: no exit hook, timer or luck

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # A run that raises ends as FAILED; everything it logged is kept.
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, RunKilled):
            self.end("FAILED", error="KILLED: the process received SIGTERM")
        else:
            self.end("FAILED", error=f"{exc_type.__name__}: {exc}"[:2000])


# -- writes (run inside the writer's transaction) ----------------------------------------
def _log_dataset(conn, run: Run, name, role, digest, schema_json, n_rows, n_cols, source, parent_ids, detected,
                 explicit):
    t = schema.Dataset.__table__
    row = conn.execute(sa.select(t.c.id).where(t.c.name == name, t.c.digest == digest)).first()
    events = []
    if row is None:
        ds_id = conn.execute(sa.insert(t).values(
            name=name, digest=digest, columns_json=schema_json, n_rows=n_rows, n_cols=n_cols, source=source,
            created_by=run._ctx.user, created_at=schema.utcnow()).returning(t.c.id)).scalar_one()
        events.append(Event(run._ctx.user, run._ctx.role, "dataset.create", "dataset", str(ds_id),
                            {"name": name, "digest": digest, "rows": n_rows, "cols": n_cols, "source": source}))
    else:
        ds_id = row[0]
    known = {r[0] for r in conn.execute(sa.select(t.c.id).where(t.c.id.in_(parent_ids)))} if parent_ids else set()
    missing = [p for p in parent_ids if p not in known]
    if missing:
        raise NotFoundError(f"Parent data set id(s) {missing} do not exist.")
    lin = schema.DatasetLineage.__table__
    for pid in parent_ids:
        if pid != ds_id and conn.execute(sa.select(lin.c.child_id).where(lin.c.child_id == ds_id, lin.c.parent_id == pid)).first() is None:
            conn.execute(sa.insert(lin).values(child_id=ds_id, parent_id=pid))
    rd = schema.RunDataset.__table__
    if conn.execute(sa.select(rd.c.run_id).where(rd.c.run_id == run.run_id, rd.c.dataset_id == ds_id, rd.c.role == role)).first() is None:
        conn.execute(sa.insert(rd).values(run_id=run.run_id, dataset_id=ds_id, role=role))
    events.append(run._event("run.log_dataset", {"dataset_id": ds_id, "name": name, "digest": digest, "role": role, "parents": parent_ids}))
    marks, mark_events = dataset_marks.on_log(conn, run._ctx.user, run._ctx.role, ds_id, list(json.loads(schema_json)),
                                              detected, explicit, parent_ids, created=row is None)
    return DatasetRef(ds_id, name, digest, n_rows, marks), events + mark_events


def _log_artifact(conn, run: Run, name: str, digest: str, size: int):
    t = schema.Artifact.__table__
    row = conn.execute(sa.select(t.c.sha256).where(t.c.run_id == run.run_id, t.c.name == name)).first()
    if row is not None and row[0] != digest:
        raise ValidationError(f"Run {run.name!r} already has an artifact named {name!r} with other content; use another name.")
    if row is None:
        conn.execute(sa.insert(t).values(run_id=run.run_id, name=name, sha256=digest, size=size, created_at=schema.utcnow()))
    return digest, [run._event("run.log_artifact", {"name": name, "sha256": digest, "size": size})]


def ensure_experiment(conn, ctx: "Ctx", name: str, description: str | None = None):
    """The id of experiment ``name``, created if new (a writer op: returns the id and its event)."""
    t = schema.Experiment.__table__
    row = conn.execute(sa.select(t.c.id).where(t.c.name == name)).first()
    if row is not None:
        return row[0], [Event(ctx.user, ctx.role, "experiment.use", "experiment", str(row[0]), {"name": name})]
    exp_id = conn.execute(sa.insert(t).values(name=name, description=description, created_by=ctx.user,
                                              created_at=schema.utcnow()).returning(t.c.id)).scalar_one()
    return exp_id, [Event(ctx.user, ctx.role, "experiment.create", "experiment", str(exp_id), {"name": name, "description": description})]


# -- runs left behind by dead processes ----------------------------------------------------
def dead_runs(conn) -> list[tuple[str, int]]:
    """(run_id, pid) of the runs this host's processes left ``RUNNING`` and that are gone.

    A pid that now belongs to a process started after the run is a reused pid: that run's
    process is gone too. Runs of other hosts are left alone (their pids mean nothing here).
    """
    t = schema.Run.__table__
    rows = conn.execute(sa.select(t.c.run_id, t.c.pid, t.c.start_time).where(
        t.c.status == "RUNNING", t.c.host == HOST, t.c.pid.is_not(None))).all()
    return [(run_id, pid) for run_id, pid, started in rows if processes.gone(f"{HOST}:{pid}", since=started)]


def reap_dead_runs(conn, actor: str = "workbench", role: str = "system"):
    """Mark the :func:`dead_runs` ``FAILED`` (KILLED), each with its audit event (a writer op)."""
    t = schema.Run.__table__
    events = []
    for run_id, pid in dead_runs(conn):
        error = f"KILLED: process {pid} on {HOST} ended without ending the run"
        conn.execute(sa.update(t).where(t.c.run_id == run_id).values(
            status="FAILED", end_time=schema.utcnow(), error=error))
        events.append(Event(actor, role, "run.end", "run", run_id, {"status": "FAILED", "error": error}))
    if not events:  # another process reaped them first
        events.append(Event(actor, role, "store.reap", "store", "runs", {"runs": 0}))
    return len(events), events


@on_first_open
def _reap_at_open(store, writer) -> None:
    """At a store's first open in a process: runs that processes on this host left RUNNING and
    that died are marked FAILED (KILLED)."""
    with store.connection() as conn:
        found = dead_runs(conn)
        conn.commit()
    if found:
        writer.call(reap_dead_runs)
