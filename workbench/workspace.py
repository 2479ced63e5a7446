"""The public entry point: ``ws = wb.connect()`` and everything a workspace offers."""

from __future__ import annotations

import dataclasses
import getpass
import inspect
import io
import os
import weakref
from typing import Any

import polars as pl

from .datasets import DatasetRef
from .errors import IntegrityError, NotFoundError, PermissionDenied, ValidationError
from .evidence import compute
from .governance import requests as governance
from .governance.api import GovernanceMethods
from .monitoring.api import MonitoringMethods
from .operations import OPERATIONS, READ, operation
from .people import auth, roles, tokens, users
from .people.context import Ctx
from .protection.api import PrivacyMethods
from .registry import models as registry
from .registry.models import ModelVersion
from .reports.api import ReportMethods
from .store import artifacts, audit
from .store.connection import Store
from .store.shared import shared_store
from .store.writer import Writer
from .tracking import compare
from .tracking.runs import (
    Run,
    check_key,
    check_run_id,
    check_run_name,
    ensure_experiment,
)
from .tracking.search import search_runs as _search_runs

#: The modules that declare the operations bound below (importing them fills the table).
DECLARING_MODULES = (auth, compare, tokens)


def _method(name: str):
    """A Workspace method generated from the operation ``name``: same parameters, result and
    docstring, called with the workspace's :class:`~workbench.people.context.Ctx`."""
    op = OPERATIONS[name]

    def method(self, *args, **kwargs):
        return op.function(self.ctx, *args, **kwargs)

    sig = op.signature
    method.__name__ = method.__qualname__ = name
    method.__doc__ = op.doc
    method.__signature__ = sig.replace(parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
                                                   *sig.parameters.values()])
    method.__module__ = __name__
    return method


def connect(store: str | os.PathLike | None = None, user: str | None = None, *, token: str | None = None,
            lease_seconds: float | None = None, lock_timeout: float | None = None):
    """Open a workspace on a store file acting as ``user``, or on a server acting as ``token``'s user.

    ``store``: a DuckDB file path (or ``duckdb:///path``) or a PostgreSQL URL; default
    ``$WORKBENCH_STORE``, else ``data/workbench.duckdb``. Created if missing. Or a server's
    address (``http://host:port``; default ``$WORKBENCH_URL`` when set): then the result is a
    :class:`~workbench.remote.RemoteWorkspace` with the same operations.
    ``user``: an existing user name; default ``$WORKBENCH_USER``. Without one the
    workspace can read but not write. File mode trusts this name: whoever can write the file
    can act as anyone. Through a server the user is the token's, and ``user`` is refused.
    ``token``: a personal access token (default ``$WORKBENCH_TOKEN``), for a server only.

    Example::

        import workbench as wb
        ws = wb.connect("data/workbench.duckdb", user="dana")
        ws = wb.connect("http://127.0.0.1:8501", token="wbt_...")
    """
    if store is None and os.environ.get("WORKBENCH_URL"):
        store = os.environ["WORKBENCH_URL"]
    from . import remote

    if remote.is_url(store):
        if user is not None:
            raise ValidationError(f"Through a server the user is the token's: drop user={user!r} and pass token=... "
                                  "(a token of that user).")
        return remote.connect(store, token)
    if token is not None:
        raise ValidationError("token= is for a server (wb.connect('http://host:port', token=...)); a store file "
                              "takes user=.")
    s, w = shared_store(store, lease_seconds=lease_seconds, lock_timeout=lock_timeout)
    return Workspace(s, w, user if user is not None else os.environ.get("WORKBENCH_USER") or None)


class Workspace(MonitoringMethods, GovernanceMethods, ReportMethods, PrivacyMethods):
    """A store seen by one user: log runs, search them, manage the registry, keep evidence."""

    def __init__(self, store: Store, writer: Writer, user: str | None, *, operator: bool = False,
                 token_id: int | None = None, _found: "tokens.TokenUser | None" = None) -> None:
        self.store = store
        self._writer = writer
        self._open_runs: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
        if _found is not None:  # for_caller: the server has just read who calls
            name, role, token_id = _found.user, _found.role, _found.token_id
        elif operator:  # the local CLI operator: may bootstrap users on a store it can write
            name, role = f"os:{getpass.getuser()}", roles.OPERATOR
        elif user is None:
            name, role = None, None
        else:
            with store.connection() as conn:
                row = users.get(conn, user)
                conn.commit()
            if row["disabled"]:
                raise PermissionDenied(f"User {user!r} is disabled.")
            name, role = row["name"], row["role"]
        #: Who acts and on which store: what every operation takes (see :mod:`workbench.operations`).
        self.ctx = Ctx(store, writer, name, role, before_read=self._submit_open_runs, token_id=token_id,
                       waits_own_writes=_found is not None)

    @classmethod
    def for_caller(cls, store: Store, writer: Writer, who: "tokens.TokenUser") -> "Workspace":
        """The workspace of a server's caller, as :func:`workbench.people.tokens.check` found
        them in the store a moment ago (user, current role, token): no second read per call."""
        return cls(store, writer, who.user, _found=who)

    @property
    def user(self) -> str | None:
        """The acting user's name (fixed when the workspace was opened)."""
        return self.ctx.user

    @property
    def role(self) -> str | None:
        """The acting user's role, as the store had it when the workspace was opened."""
        return self.ctx.role

    def __repr__(self) -> str:
        return f"Workspace(store={self.store.display!r}, user={self.user!r}, role={self.role!r})"

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
        self.store.release()

    # -- plumbing: the workspace's own shorthands for its Ctx, where each rule lives once ------
    def _require(self, action: str) -> None:
        self.ctx.require(action)

    def _call(self, op) -> Any:
        return self.ctx.call(op)

    def flush(self) -> None:
        """Wait until every buffered write is committed (raises if one failed)."""
        if self.ctx.waits_own_writes:  # a server's caller: each write was waited for as it was made
            self._submit_open_runs()
            return
        self._writer.flush()

    def close(self) -> None:
        """Commit pending writes and release the store file now."""
        self.flush()
        self.store.release()

    def _submit_open_runs(self) -> None:
        for run in list(self._open_runs.values()):
            run.submit()

    def _sync(self) -> None:
        """Read your own writes: values buffered in open runs too, not only queued ones."""
        self.ctx.sync()

    def _read(self, sql: str, params: list | None = None) -> pl.DataFrame:
        return self.ctx.read(sql, params)

    # -- experiments and runs ------------------------------------------------------------
    def _experiment_id(self, name: str, *, create: bool) -> int:
        # Experiments are created synchronously and never deleted, so ids are cached
        # per store: starting a run must not wait for the previous run's commit.
        check_key("Experiment", name)
        cache = self.store.experiment_ids
        if name not in cache:
            exp_id = self.store.scalar("select id from experiments where name = ?", [name])
            if exp_id is None:
                if not create:
                    raise NotFoundError(f"No experiment named {name!r}.")
                exp_id = self._call(lambda conn: ensure_experiment(conn, self.ctx, name))
            cache[name] = exp_id
        return cache[name]

    @operation("log_runs", writes=True)
    def start_run(self, experiment: str, name: str | None = None, parent: Run | str | None = None,
                  tags: dict | None = None) -> Run:
        """Start a run in ``experiment`` (created if new). Use it as a context manager."""
        name = check_run_name(name)  # before the experiment is made: a refused call leaves nothing
        parent_id = parent.run_id if isinstance(parent, Run) else parent
        if parent_id is not None:
            self.get_run(parent_id)  # raises NotFoundError for an unknown parent
        run = Run(self.ctx, self._experiment_id(experiment, create=True), experiment, name, parent_id,
                  register=self._register_model, on_end=lambda run_id: self._open_runs.pop(run_id, None))
        self._open_runs[run.run_id] = run
        if tags:
            run.set_tags(tags)
        return run

    # -- a run in separate calls: what a remote client (and MLflow's protocol) logs with -----
    @operation("log_runs", writes=True)
    def create_run(self, experiment: str, name: str | None = None, parent: str | None = None,
                   tags: dict | None = None) -> str:
        """Start a run that later calls log into (:meth:`log_batch`) and end (:meth:`end_run`).

        The run is committed, RUNNING, when this returns. Unlike :meth:`start_run` it names no
        process of this host, so no restart marks it failed; a run nobody ends stays RUNNING.

        Parameters
        ----------
        experiment : str
            The experiment (created if new).
        name : str, optional
            The run's name; default ``run-<first 8 characters of its id>``.
        parent : str, optional
            The id of the parent run (a nested run).
        tags : dict, optional
            Tags to set at once.

        Returns
        -------
        str
            The new run's id.
        """
        name = check_run_name(name)
        if parent is not None:
            self.get_run(parent)  # raises NotFoundError for an unknown parent
        run = Run(self.ctx, self._experiment_id(experiment, create=True), experiment, name, parent,
                  register=self._register_model, local=False)
        if tags:
            run.set_tags(tags)
        run.flush()
        return run.run_id

    @operation("log_runs", writes=True)
    def log_batch(self, run_id: str, params: dict | None = None, metrics: list | None = None,
                  tags: dict | None = None) -> None:
        """Log params, metric points and tags into one's own RUNNING run, committed on return.

        The same rules as a :class:`Run`'s ``log_params``, ``log_metrics`` and ``set_tags`` hold
        (a param keeps its first value; metric steps default to one past the key's last).

        Parameters
        ----------
        run_id : str
            A run of the caller's, still RUNNING.
        params, tags : dict, optional
            Key -> value.
        metrics : list, optional
            Points as ``[key, value]`` or ``[key, value, step]``, in the order they were logged.

        Raises
        ------
        NotFoundError, PermissionDenied, ValidationError
            For an unknown run, another user's run, an ended run, or a value the rules refuse;
            nothing of the call is kept then.
        """
        run = Run.attach(self.ctx, run_id, register=self._register_model)
        _log_into(run, params, metrics, tags)
        run.flush()

    @operation("log_runs", writes=True)
    def submit_run(self, run_id: str, experiment: str | None = None, *, name: str | None = None,
                   parent: str | None = None, params: dict | None = None, metrics: list | None = None,
                   tags: dict | None = None, status: str | None = None, error: str | None = None) -> None:
        """Start (with ``experiment``), log into and end (with ``status``) a run in one call and one
        commit: how a remote run sends what it buffered. Committed when it returns.

        Parameters
        ----------
        run_id : str
            The run's id, 32 hex digits; for a new run the client makes it (as file mode does),
            so a run that ends before its first flush needs one call in all.
        experiment : str, optional
            Given: start the run now, in this experiment (created if new); the id must be new.
            None: the run exists already, RUNNING, and is the caller's.
        name, parent : str, optional
            A new run's name and parent run id.
        params, metrics, tags : optional
            As for :meth:`log_batch`.
        status, error : str, optional
            End the run: ``"FINISHED"``, or ``"FAILED"`` with ``error``.

        Raises
        ------
        NotFoundError, PermissionDenied, ValidationError
            As :meth:`create_run`, :meth:`log_batch` and :meth:`end_run` do, and for a new run
            whose id is taken; nothing of the call is kept then.
        """
        if status is not None and status not in ("FINISHED", "FAILED"):
            raise ValidationError(f"status must be 'FINISHED' or 'FAILED', not {status!r}.")
        if experiment is None:
            run = Run.attach(self.ctx, run_id, register=self._register_model)
        else:
            check_run_id(run_id)
            name = check_run_name(name)
            if parent is not None:
                self.get_run(parent)
            run = Run(self.ctx, self._experiment_id(experiment, create=True), experiment, name, parent,
                      register=self._register_model, local=False, run_id=run_id)
            run.flush_points = run.flush_seconds = float("inf")  # one call, one commit
        _log_into(run, params, metrics, tags)
        try:
            if status is not None:
                run.end(status, error=error)
            else:
                run.flush()
        except Exception:
            # A taken id fails the insert, and with it the whole call (one transaction). Asked only
            # then: a query before every new run would cost each one a read for a rare mistake.
            if experiment is not None and self.store.scalar("select count(*) from runs where run_id = ?", [run_id]):
                raise ValidationError(f"A run with id {run_id} exists already: a new run needs a new id.") from None
            raise

    @operation("log_runs", writes=True)
    def log_dataset_fingerprint(self, run_id: str, name: str, role: str, digest: str, columns_json: str, n_rows: int,
                                n_cols: int, *, source: str | None = None, parents: list | None = None,
                                detected: dict | None = None, marks: dict | None = None) -> DatasetRef:
        """Record a data set one's own RUNNING run used, known by its fingerprint (the frame
        stays where it is): how a remote run logs a data set. See ``Run.log_fingerprint``.

        Returns
        -------
        DatasetRef
        """
        run = Run.attach(self.ctx, run_id, register=self._register_model)
        return run.log_fingerprint(name, role, digest, columns_json, n_rows, n_cols, source=source, parents=parents,
                                   detected=detected, marks=marks)

    @operation("log_runs", writes=True)
    def log_artifact_bytes(self, run_id: str, name: str, data: bytes) -> str:
        """Store ``data`` as artifact ``name`` of one's own RUNNING run; its sha256. How a remote
        run logs a file (``Run.log_artifact`` reads one from a path)."""
        return Run.attach(self.ctx, run_id, register=self._register_model).log_artifact_bytes(name, data)

    @operation("log_runs", writes=True)
    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> None:
        """End one's own RUNNING run (``FINISHED`` or ``FAILED``, with ``error``), committed on return.

        Raises
        ------
        NotFoundError, PermissionDenied, ValidationError
            For an unknown run, another user's run, a run that has ended, or another status.
        """
        if status not in ("FINISHED", "FAILED"):
            raise ValidationError(f"status must be 'FINISHED' or 'FAILED', not {status!r}.")
        Run.attach(self.ctx, run_id, register=self._register_model).end(status, error=error)

    @operation(READ, writes=False)
    def experiments(self) -> pl.DataFrame:
        """Every experiment with its number of runs and the start of its latest run, by name.

        Returns
        -------
        polars.DataFrame
            ``id``, ``name``, ``description``, ``created_by``, ``created_at``, ``n_runs``, ``last_run``.
        """
        return self._read(
            "select e.id, e.name, e.description, e.created_by, e.created_at, count(r.run_id) as n_runs, "
            "max(r.start_time) as last_run from experiments e left join runs r on r.experiment_id = e.id "
            "group by e.id, e.name, e.description, e.created_by, e.created_at order by e.name")

    @operation(READ, writes=False)
    def search_runs(self, filter: str = "", experiment: str | None = None, max_results: int | None = None) -> pl.DataFrame:
        """Runs matching ``filter``, one row per run, newest first.

        Example::

            ws.search_runs("metrics.auc > 0.8 AND (params.model = 'rf' OR params.model = 'gbm')")
        """
        exp_id = self._experiment_id(experiment, create=False) if experiment else None
        self._sync()
        return _search_runs(self.store, filter, exp_id, max_results)

    @operation(READ, writes=False)
    def get_run(self, run_id: str) -> dict:
        """Attributes, params, tags and latest metrics of one run."""
        df = self._read(
            "select r.*, e.name as experiment from runs r join experiments e on e.id = r.experiment_id where r.run_id = ?",
            [run_id])
        if df.is_empty():
            raise NotFoundError(f"No run with id {run_id!r}.")
        info = df.row(0, named=True)
        info["params"] = dict(self.store.read("select key, value from params where run_id = ? order by key", [run_id]).iter_rows())
        info["tags"] = dict(self.store.read("select key, value from tags where run_id = ? order by key", [run_id]).iter_rows())
        info["metrics"] = dict(self.store.read("select key, value from latest_metrics where run_id = ? order by key", [run_id]).iter_rows())
        return info

    @operation(READ, writes=False)
    def metric_history(self, run_id: str, key: str | None = None) -> pl.DataFrame:
        """Every logged point of a run (optionally one key), ordered by step."""
        self.get_run(run_id)
        return self._read("select key, step, value, ts from metrics where run_id = ? and (cast(? as varchar) is null or key = ?) "
                          "order by key, step, ts", [run_id, key, key])

    @operation(READ, writes=False)
    def run_datasets(self, run_id: str) -> pl.DataFrame:
        """The data sets run ``run_id`` used or made: role (train, test ...), digest, size, source
        and the data sets each was derived from (``parent_ids``)."""
        return self._read(
            "select d.id, d.name, rd.role, d.digest, d.n_rows, d.n_cols, d.source, d.columns_json, "
            "(select array_agg(l.parent_id) from dataset_lineage l where l.child_id = d.id) as parent_ids "
            "from run_datasets rd join datasets d on d.id = rd.dataset_id where rd.run_id = ? order by rd.role, d.name",
            [run_id])

    @operation(READ, writes=False)
    def datasets(self) -> pl.DataFrame:
        """Every logged data set (id, name, digest, rows, columns, source), newest first."""
        return self._read("select id, name, digest, n_rows, n_cols, source, created_by, created_at "
                          "from datasets order by created_at desc, id desc")

    @operation(READ, writes=False)
    def run_artifacts(self, run_id: str) -> pl.DataFrame:
        """The files logged with run ``run_id``: name, sha256, size and when, by name."""
        return self._read("select name, sha256, size, created_at from artifacts where run_id = ? order by name", [run_id])

    # -- registry ------------------------------------------------------------------------
    def _register_model(self, model: Any, name: str, *, run_id: str | None, owner_team=None, use_case=None,
                        risk_tier=None, description=None, format: str = "skops") -> ModelVersion:
        self._require("register_models")
        check_key("Model", name)
        if risk_tier is not None:
            registry.check_risk_tier(risk_tier)
        registry.check_model_text(dict(owner_team=owner_team, use_case=use_case, description=description))
        data = registry.serialize(model, format)
        cls = f"{type(model).__module__}.{type(model).__qualname__}"
        return self._register_bytes(data, cls, name, run_id=run_id, owner_team=owner_team, use_case=use_case,
                                    risk_tier=risk_tier, description=description, format=format)

    def _register_bytes(self, data: bytes, cls: str, name: str, *, run_id, owner_team, use_case, risk_tier,
                        description, format) -> ModelVersion:
        digest, size = artifacts.put_bytes(self.store.artifact_root, data)
        return self._call(lambda conn: registry.register(
            conn, self.user, self.role, name=name, digest=digest, size=size, model_class=cls, run_id=run_id,
            owner_team=owner_team, use_case=use_case, risk_tier=risk_tier, description=description, fmt=format))

    @operation("register_models", writes=True)
    def register_model(self, model: Any, name: str, *, run_id: str | None = None, **metadata) -> ModelVersion:
        """Register ``model`` as the next version of ``name`` (prefer ``run.register_model``).

        Saved with skops; ``format="pickle"`` opts in to pickle for models skops cannot save
        without trusting their code (:mod:`workbench.registry.models` states the trust rule).
        """
        unknown = sorted(set(metadata) - _MODEL_METADATA)
        if unknown:
            raise ValidationError(f"register_model takes {', '.join(sorted(_MODEL_METADATA))}; not {unknown}.")
        if run_id is not None:
            self.get_run(run_id)
        return self._register_model(model, name, run_id=run_id, **metadata)

    @operation(READ, writes=False)
    def models(self) -> pl.DataFrame:
        """Registered models: owner team, use case, risk tier, versions and stages."""
        return self._read(registry.MODELS_SQL)

    @operation(READ, writes=False)
    def model_versions(self, name: str | None = None) -> pl.DataFrame:
        """The versions of model ``name`` (or of every model), newest first: stage, aliases, source
        run, model class, sha256, who registered it and when.

        Raises
        ------
        NotFoundError
            If ``name`` is given and no such model is registered.
        """
        return self._read_for_model(registry.VERSIONS_SQL, name)

    def _read_for_model(self, sql: str, name: str | None) -> pl.DataFrame:
        """``sql`` (with ``? is null or m.name = ?``) for one model, which must exist, or for all."""
        if name is not None:
            self._model_exists(name)
        return self._read(sql, [name, name])

    def _in_transaction(self, fn):
        """``fn(conn)`` for reads that need more than one query, all seeing the same moment."""
        return self.ctx.snapshot(fn)

    def _model_exists(self, name: str) -> None:
        if self.store.scalar("select count(*) from registered_models where name = ?", [name]) == 0:
            raise NotFoundError(f"No registered model named {name!r}.")

    @operation(READ, writes=False)
    def get_model_version(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version by number, by alias, by stage name ('Production'), or the latest.

        ``'champion'`` is the Production version, by definition (its alias moves with the stage).
        """
        asked = version
        if version == registry.PRODUCTION_ALIAS:
            version = "Production"
        df = self.model_versions(name)
        if df.is_empty():
            raise NotFoundError(f"Model {name!r} has no versions.")
        if version is None:
            sel = df.head(1)
        elif isinstance(version, int) or str(version).isdigit():
            sel = df.filter(pl.col("version") == int(version))
        elif version in registry.STAGES:
            sel = df.filter(pl.col("stage") == version).head(1)
        else:
            sel = df.filter(pl.col("aliases").list.contains(version))
        if sel.is_empty():
            raise NotFoundError(f"Model {name!r} has no version {asked!r}.")
        r = sel.row(0, named=True)
        return ModelVersion(r["name"], r["version"], r["run_id"], r["stage"], r["sha256"], r["model_class"],
                            r["created_by"], r["created_at"], tuple(r["aliases"] or ()))

    @operation(READ, writes=False)
    def load_model(self, name: str, version: int | str | None = None, *, allow_pickle: bool = False) -> Any:
        """Load a version after checking its file against the digest the audit trail recorded.

        A model saved as a pickle loads only with ``allow_pickle=True``: unpickling runs
        whatever code its author put in the file.
        """
        mv = self.get_model_version(name, version)
        digest, fmt = self._in_transaction(lambda conn: registry.recorded_file(conn, mv.name, mv.version, mv.sha256))
        return registry.load(self.store.artifact_root, digest, fmt, allow_pickle=allow_pickle,
                             label=f"{mv.name} v{mv.version}")

    @operation("register_models", writes=True)
    def register_model_file(self, name: str, data: bytes, model_class: str | None = None, *, run_id: str | None = None,
                            **metadata) -> ModelVersion:
        """Register a model saved elsewhere (``registry.serialize``'s bytes): how a remote
        workspace registers the model it fitted. A skops file is opened here (no code runs) to
        check it holds only trusted types and to name its class; a pickle is kept as it is,
        named ``model_class``, and loads only with ``allow_pickle=True``.

        Parameters
        ----------
        name : str
            The registered model.
        data : bytes
            The model file.
        model_class : str, optional
            The model's class (``module.Class``): needed for a pickle, taken from the file for skops.
        run_id : str, optional
            The run that produced it.
        **metadata
            As for :meth:`register_model` (``format`` is ``"skops"`` or ``"pickle"``).

        Returns
        -------
        ModelVersion

        Raises
        ------
        ValidationError
            For a file that is not a model in the named format, untrusted skops types, a pickle
            without ``model_class``, or unknown metadata.
        """
        unknown = sorted(set(metadata) - _MODEL_METADATA)
        if unknown:
            raise ValidationError(f"register_model_file takes {', '.join(sorted(_MODEL_METADATA))}; not {unknown}.")
        fmt = metadata.pop("format", "skops")
        registry.check_format(fmt)
        if fmt == "pickle":
            if not isinstance(model_class, str) or not model_class.strip():
                raise ValidationError("A pickled model needs model_class (module.Class): the server does not unpickle it.")
            cls = model_class.strip()
        else:
            try:
                model = registry.load_bytes(bytes(data), fmt, label=f"the file for {name!r}")
            except IntegrityError as exc:
                raise ValidationError(str(exc)) from None
            except Exception as exc:  # noqa: BLE001 - not a skops file at all: the caller's mistake
                raise ValidationError(f"The file for {name!r} is not a skops model file ({type(exc).__name__}).") from None
            cls = f"{type(model).__module__}.{type(model).__qualname__}"
        self._require("register_models")
        check_key("Model", name)
        if run_id is not None:
            self.get_run(run_id)
        if metadata.get("risk_tier") is not None:
            registry.check_risk_tier(metadata["risk_tier"])
        registry.check_model_text({k: metadata.get(k) for k in ("owner_team", "use_case", "description")})
        return self._register_bytes(bytes(data), cls, name, run_id=run_id, owner_team=metadata.get("owner_team"),
                                    use_case=metadata.get("use_case"), risk_tier=metadata.get("risk_tier"),
                                    description=metadata.get("description"), format=fmt)

    @operation(READ, writes=False)
    def model_file(self, name: str, version: int | str | None = None) -> tuple[str, bytes]:
        """A version's model file as ``(format, bytes)``, checked against the digest the audit
        trail recorded: how a remote workspace loads a model (it deserialises on its side)."""
        mv = self.get_model_version(name, version)
        digest, fmt = self._in_transaction(lambda conn: registry.recorded_file(conn, mv.name, mv.version, mv.sha256))
        return fmt, artifacts.get_bytes(self.store.artifact_root, digest)

    @operation("register_models", writes=True)
    def set_stage(self, name: str, version: int, stage: str, reason: str | None = None) -> str:
        """Move a version to None, Staging or Archived. Production needs an approved request."""
        if stage == "Production":
            raise PermissionDenied("Production is reached only through an approved promotion request, never set directly.")
        return self._call(lambda conn: registry.transition_stage(conn, self.user, self.role, name, version, stage, reason=reason))

    @operation("register_models", writes=True)
    def set_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point alias ``alias`` of model ``name`` at ``version`` (None removes it). Audited.

        The aliases that governance owns (``champion`` follows Production; ``challenger`` is set by
        :meth:`set_rollout`) are refused here.

        Raises
        ------
        ValidationError
            For an alias that looks like a stage or a version number, or a governed one.
        """
        check_key("Alias", alias)
        if alias in registry.STAGES or alias.isdigit():
            raise ValidationError(f"Alias {alias!r} would be confused with a stage or version number.")
        self._call(lambda conn: registry.set_alias(conn, self.user, self.role, name, alias, version))

    @operation("register_models", writes=True, checked_inside=True)  # a tier change: set_risk_tier
    def update_model(self, name: str, **fields) -> dict:
        """Edit owner_team, use_case, description (those who register models) or risk_tier of a model.

        A risk tier change is governed: leads and admins only, never by someone with a pending
        request on the model, and pending requests keep the strictest tier they have seen.
        """
        return self._governed("update_model", name, None, lambda conn: governance.update_model(
            conn, self.user, self.role, name, fields))

    # -- evidence ------------------------------------------------------------------------
    # Computed where the data is (workbench.evidence.compute, in this process or a remote
    # client's), then recorded by the record_* operations, which run where the store is: they
    # alone pseudonymise identifying values and judge verdicts by the store's policy.
    def _version_ref(self, model_version) -> tuple[str, int]:
        return compute.version_ref(self, model_version)

    @operation("compute_evidence", writes=True)
    def fairness(self, model_version, X, y_true, *, sensitive_features, y_pred=None, threshold: float = 0.5,
                 reference_group=None, min_group_size: int = 30, n_bootstrap: int = 200, task: str | None = None,
                 favorable_label: int = 1, allow_pickle: bool = False):
        """Fairness of a version's predictions across sensitive groups, judged and stored.

        ``sensitive_features`` names columns of ``X`` (they need not be model inputs).
        ``favorable_label``: the class that benefits the person (selection). For a model of
        default risk where 1 means "will default", pass 0: selection rates are then approval
        rates, as the four-fifths rule intends.
        Computed where ``X`` is (through a server: on the client), judged by the store's
        fairness policy for the model's risk tier (:meth:`record_fairness`).
        Returns the :class:`~workbench.evidence.fairness.FairnessReport` with ``verdict``, ``reasons``,
        ``policy`` and ``evidence_id`` set.
        """
        return compute.fairness(self, model_version, X, y_true, sensitive_features=sensitive_features, y_pred=y_pred,
                                threshold=threshold, reference_group=reference_group, min_group_size=min_group_size,
                                n_bootstrap=n_bootstrap, task=task, favorable_label=favorable_label,
                                allow_pickle=allow_pickle)

    @operation("compute_evidence", writes=True)
    def explain(self, model_version, X, *, y=None, sample=None, max_rows: int | None = 10_000, row_id: str | None = None,
                masked: list[str] | None = None, progress: bool = False, allow_pickle: bool = False, **options):
        """SHAP explanation of a version on ``X``, computed once and stored.

        Per-row SHAP values (keyed by row id) go to a Parquet file in the artifact folder;
        the summary (explainer, output, base value, global importance, additivity check,
        sampling, permutation importance, partial dependence, the digests of ``X`` and ``y``)
        goes to the store. Computed where ``X`` is (through a server: on the client). Returns
        the :class:`~workbench.evidence.explain.Explanation` with ``evidence_id`` set.

        ``masked``: features whose values per-row views never show (protected attributes,
        identifiers); default: the features marked so on the version's data sets, else by the
        detector.
        Identifying columns of ``X`` (the version's data set marks, else the detector's),
        ``row_id`` included, are stored as keyed tokens.
        """
        return compute.explain(self, model_version, X, y=y, sample=sample, max_rows=max_rows, row_id=row_id,
                               masked=masked, progress=progress, allow_pickle=allow_pickle, **options)

    @operation("compute_evidence", writes=True, checked_inside=True)  # only to store against a version
    def drift(self, reference, current, *, columns: list[str] | None = None, column_kinds: dict | None = None,
              model_version=None, target: str | None = None, prediction: str | None = None,
              engine: str = "workbench", progress: bool = False):
        """Data drift of ``current`` against ``reference``, with Evidently 0.7's defaults.

        ``reference`` and ``current``: polars or pandas DataFrames or Parquet path(s), read a
        column at a time; ``reference`` may also be a :class:`~workbench.evidence.drift.ReferenceProfile`
        prepared once for many windows. With ``model_version`` the report is judged by the
        drift policy of the model's risk tier and stored (:meth:`record_drift`).
        ``engine="evidently"`` runs Evidently itself and keeps its HTML report too.
        Returns the :class:`~workbench.evidence.drift.DriftReport`.
        """
        if model_version is not None:
            self._require("compute_evidence")
        return compute.drift(self, reference, current, columns=columns, column_kinds=column_kinds,
                             model_version=model_version, target=target, prediction=prediction, engine=engine,
                             progress=progress)

    @operation("compute_evidence", writes=True)
    def record_explanation(self, name: str, version: int, summary: dict, table: pl.DataFrame, *,
                           row_id: str | None = None, masked: list[str] | None = None) -> dict:
        """Store an explanation computed by :func:`workbench.evidence.compute.explain` (``explain``
        calls this; through a server it runs there).

        The identifying columns among the explained values (``value:<feature>``) and the row
        ids are decided here (the version's data set marks, else the detector's reading of
        the values) and stored as keyed tokens; ``masked`` defaults to the identifying and
        sensitive features.

        Parameters
        ----------
        name, version : str, int
            The version explained.
        summary : dict
            The explanation's summary (it must list ``global_importance``).
        table : polars.DataFrame
            Per-row SHAP values with the explained values (``Explanation.to_frame(with_values=True)``).
        row_id : str, optional
            The column of ``X`` the row ids came from.
        masked : list of str, optional
            Features whose values per-row views never show.

        Returns
        -------
        dict
            ``{"evidence_id", "masked"}``.
        """
        from .protection import column_marks

        self.get_model_version(name, version)
        features = _explained_features(summary, table)
        values = table.select([f"value:{f}" for f in features if f"value:{f}" in table.columns])
        values = values.rename({c: c.removeprefix("value:") for c in values.columns})
        if row_id and "row_id" in table.columns and row_id not in values.columns:
            values = values.with_columns(table["row_id"].alias(row_id))
        marked = self._marks(values, name, version, None)
        identifying = [c for c, m in marked.items() if m == "identifying"]
        if masked is None:
            masked = [f for f in features if marked.get(f, column_marks.propose([f]).get(f)) in ("identifying", "sensitive")]
        elif unknown := [c for c in masked if c not in features]:
            raise ValidationError(f"masked names column(s) {unknown[:8]} that are not explained features {features[:8]}.")
        # the stored rows carry tokens, never the identifying values (the row id included)
        hidden = [f"value:{c}" for c in identifying if f"value:{c}" in table.columns]
        hidden += ["row_id"] if row_id in identifying and "row_id" in table.columns else []
        summary = {**summary, "masked": sorted(masked)}
        evidence_id = self._store_evidence(name, version, "explanation", summary, self._pseudonymise(table, hidden),
                                           None, None)
        return {"evidence_id": evidence_id, "masked": sorted(masked)}

    @operation("compute_evidence", writes=True)
    def record_fairness(self, name: str, version: int, summary: dict, by_group: pl.DataFrame) -> dict:
        """Store a fairness report computed by :func:`workbench.evidence.compute.fairness`, judged
        here by the fairness policy of the model's risk tier (a binary task's; a regression's
        is stored unjudged). Whatever verdict ``summary`` carries is replaced.

        Returns
        -------
        dict
            ``{"evidence_id", "verdict", "reasons", "policy"}``.
        """
        from . import policy

        self.get_model_version(name, version)
        tier = self._risk_tier(name)
        task = summary.get("task")
        if task not in ("binary", "regression"):
            raise ValidationError(f"A fairness summary names its task ('binary' or 'regression'), not {task!r}.")
        verdict, rules, reasons = policy.fairness_verdict(summary, tier) if task == "binary" else (None, None, [])
        summary = {**summary, "verdict": verdict, "reasons": reasons}
        evidence_id = self._store_evidence(name, version, "fairness", summary, by_group, verdict, rules)
        return {"evidence_id": evidence_id, "verdict": verdict, "reasons": reasons, "policy": rules}

    @operation("compute_evidence", writes=True)
    def record_drift(self, name: str, version: int, summary: dict, columns: pl.DataFrame, *,
                     html: str | None = None) -> dict:
        """Store a drift report computed by :func:`workbench.evidence.compute.drift`, judged here by
        the drift policy of the model's risk tier (whatever verdict ``summary`` carries is
        replaced); ``html``, Evidently's report, is kept as an artifact.

        Returns
        -------
        dict
            ``{"evidence_id", "verdict", "reasons", "policy"}``.
        """
        from . import policy

        self.get_model_version(name, version)
        summary = dict(summary)
        if html is not None:
            summary["evidently_html_sha256"] = artifacts.put_bytes(self.store.artifact_root, html.encode())[0]
        tier = self._risk_tier(name)
        try:
            verdict, rules, reasons = policy.drift_verdict(summary, tier)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"The drift summary lacks or mistypes a number the policy needs: {exc}.") from None
        summary.update(verdict=verdict, reasons=reasons)
        evidence_id = self._store_evidence(name, version, "drift", summary, columns, verdict, rules)
        return {"evidence_id": evidence_id, "verdict": verdict, "reasons": reasons, "policy": rules}

    def _risk_tier(self, name: str) -> str:
        """The tier whose policy judges ``name``'s evidence."""
        return self.store.scalar("select risk_tier from registered_models where name = ?", [name])

    @operation("compute_evidence", writes=False)
    def pseudonymise_frames(self, name: str, version: int, frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
        """``frames`` with the version's identifying columns as the store's keyed tokens (decided
        on the first frame: the version's data set marks, else the detector's reading): what
        Evidently's HTML report may show of them."""
        self.get_model_version(name, version)
        if not frames or not all(isinstance(f, pl.DataFrame) for f in frames):
            raise ValidationError("frames is a non-empty list of frames.")
        hidden = self._identifying(frames[0], name, version, None)
        return [self._pseudonymise(f, [c for c in hidden if c in f.columns]) for f in frames]

    def _store_evidence(self, name: str, version: int, kind: str, summary: dict, table: pl.DataFrame,
                        verdict: str | None, rules: dict | None) -> int:
        """The table as a Parquet artifact, the summary and verdict as an evidence row (audited)."""
        from .evidence import records as evidence

        digest, _ = artifacts.put_bytes(self.store.artifact_root, evidence.parquet_bytes(table))
        return self._call(lambda conn: evidence.store(
            conn, self.user, self.role, name=name, version=version, kind=kind, summary=summary,
            artifact_sha256=digest, verdict=verdict, policy=rules))

    @operation(READ, writes=False)
    def evidence(self, name: str | None = None) -> pl.DataFrame:
        """The latest evidence of each kind per version (name, version, kind, id, verdict, ...)."""
        from .evidence import records as evidence

        return self._read_for_model(evidence.LATEST_SQL, name)

    @operation(READ, writes=False)
    def evidence_verdicts(self, name: str) -> pl.DataFrame:
        """The versions of model ``name`` (as :meth:`model_versions`) with one column per kind of
        evidence (explanation, fairness, drift): its latest verdict, ``"stored"`` where no policy
        judges it, ``"missing"`` where none was computed.

        Raises
        ------
        NotFoundError
            If no model ``name`` is registered.
        """
        versions = self.model_versions(name)
        latest = self.evidence(name).with_columns(pl.col("verdict").fill_null("stored"))
        for kind in governance.EVIDENCE_KINDS:
            got = latest.filter(pl.col("kind") == kind).select(["version", pl.col("verdict").alias(kind)])
            versions = versions.join(got, on="version", how="left").with_columns(pl.col(kind).fill_null("missing"))
        return versions

    @operation(READ, writes=False)
    def evidence_policy(self, evidence_id: int) -> dict | None:
        """The thresholds a stored verdict was reached with (None where no policy judged it)."""
        return self._evidence_row(evidence_id)["policy"]

    @operation(READ, writes=False)
    def evidence_history(self, name: str, kind: str) -> pl.DataFrame:
        """The latest evidence of ``kind`` per version of ``name``, with its summary's numbers."""
        rows = self.evidence(name).filter(pl.col("kind") == kind)
        out = []
        for evidence_id, version, verdict in rows.select(["id", "version", "verdict"]).iter_rows():
            summary = self.evidence_summary(evidence_id)  # the numbers only: no Parquet read
            numbers = {k: (float(v) if v is not None else None) for k, v in summary.items()
                       if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}
            out.append({"version": version, "verdict": verdict, **numbers})
        if not out:
            return pl.DataFrame(schema={"version": pl.Int64, "verdict": pl.String})
        return pl.DataFrame(out, infer_schema_length=None)

    def _evidence_row(self, evidence_id: int) -> dict:
        from .evidence import records as evidence

        _check_evidence_id(evidence_id)
        return self._in_transaction(lambda conn: evidence.stored(conn, evidence_id))

    @operation(READ, writes=False)
    def evidence_summary(self, evidence_id: int) -> dict:
        """The stored summary of one piece of evidence (without reading its table)."""
        return self._evidence_row(evidence_id)["summary"]

    @operation(READ, writes=False)
    def evidence_detail(self, evidence_id: int) -> tuple[dict, pl.DataFrame | None]:
        """(summary, the stored table) of one piece of evidence; the file is digest-checked."""
        row = self._evidence_row(evidence_id)
        table = None
        if row["artifact_sha256"]:
            table = pl.read_parquet(io.BytesIO(artifacts.get_bytes(self.store.artifact_root, row["artifact_sha256"])))
        return row["summary"], table

    # -- comparing runs: operations declared in workbench.tracking.compare ---------------
    run_labels = _method("run_labels")
    params_table = _method("params_table")
    metrics_table = _method("metrics_table")
    best_runs = _method("best_runs")
    metric_curves = _method("metric_curves")
    comparison_frame = _method("comparison_frame")

    # -- accounts (admins): operations declared in workbench.people.auth -----------------
    set_password = _method("set_password")
    set_user_disabled = _method("set_user_disabled")
    unlock_user = _method("unlock_user")
    accounts = _method("accounts")
    blocked_addresses = _method("blocked_addresses")
    unblock_address = _method("unblock_address")

    # -- API tokens: operations declared in workbench.people.tokens ----------------------
    create_token = _method("create_token")
    tokens = _method("tokens")
    revoke_token = _method("revoke_token")

    # -- users and audit -----------------------------------------------------------------
    @operation(READ, writes=False)
    def users(self) -> pl.DataFrame:
        """Every account: name, role, whether it is disabled, and when it was added.

        Returns
        -------
        polars.DataFrame
            No password hashes; :meth:`accounts` (admins) adds the sign-in state.
        """
        return self._read("select name, role, disabled, created_at from users order by name")

    @operation("manage_users", writes=True)
    def add_user(self, name: str, role: str, password: str | None = None) -> str:
        """Add an account (admins and the local operator); audited as ``user.add``.

        ``password`` must pass :func:`workbench.people.users.check_password`, the one policy every
        entry point applies; None leaves the account without one (no dashboard sign-in).
        Raises ValidationError (bad name, role or password, name taken) with nothing stored.
        """
        return self._call(lambda conn: users.add(conn, self.user, self.role, name, role, password))

    @operation("audit_view", writes=False)
    def audit_events(self, limit: int | None = None, *, actor: str | None = None, action: str | None = None,
                     entity: str | None = None, since=None, until=None) -> pl.DataFrame:
        """Events newest first, filtered: ``action`` may end in ``*`` (a prefix, e.g. "request.*"),
        ``entity`` is an entity id or "type/id"; ``since``/``until`` bound the UTC time."""
        sql, params = audit.filter_sql(actor=actor, action=action, entity=entity, since=since, until=until)
        lim = f" limit {int(limit)}" if limit else ""
        return self._read(f"select * from audit_events {sql} order by seq desc{lim}", params)

    @operation("audit_view", writes=True)
    def verify_audit(self, anchor: dict | None = None) -> audit.ChainCheck:
        """Recompute the chain (and check it passes through ``anchor``, from :meth:`audit_anchor`)."""
        if anchor is not None:
            anchor = audit.check_anchor(anchor)
        self._writer.flush()
        return self._in_transaction(lambda conn: _with_head_mark(audit.verify(conn, anchor), self.store, conn))

    @operation("audit_view", writes=False)
    def audit_head(self) -> dict:
        """The recorded head of the chain (seq, hash), without verifying it."""
        row = self._read("select seq, hash from audit_head")
        return row.row(0, named=True) if row.height else {"seq": 0, "hash": audit.GENESIS}

    @operation("audit_export", writes=False)
    def audit_anchor(self) -> dict:
        """Verify, then the head digest to keep outside the store (compliance officers)."""
        check = self.verify_audit()
        if not check.ok:
            raise IntegrityError(f"The audit chain is broken at event {check.first_broken_seq} ({check.reason}): "
                                 "refusing to anchor it.")
        return audit.anchor(check, self.store.display)

    @operation("audit_export", writes=True)
    def audit_export(self, fmt: str = "csv", **filters) -> bytes:
        """The filtered events as CSV or JSON (compliance officers); the export itself is audited."""
        if fmt not in ("csv", "json"):
            raise ValidationError(f"format must be 'csv' or 'json', got {fmt!r}.")
        events = self.audit_events(**filters).sort("seq")
        data = audit.export_bytes(events, fmt)
        self._call(lambda conn: (None, [audit.Event(self.user, self.role, "audit.export", "audit", fmt, {
            "filters": {k: str(v) for k, v in filters.items() if v is not None}, "events": events.height,
            "sha256": artifacts.sha256_bytes(data)})]))
        return data

    @operation(READ, writes=False)
    def counts(self) -> dict[str, int]:
        """How many experiments, runs, models, versions, users and audit events the store holds."""
        row = self._read(
            "select (select count(*) from experiments) experiments, (select count(*) from runs) runs, "
            "(select count(*) from registered_models) models, (select count(*) from model_versions) versions, "
            "(select count(*) from users) users, (select count(*) from audit_events) audit_events").row(0, named=True)
        return {k: int(v) for k, v in row.items()}


#: What register_model takes besides the model, its name and run.
_MODEL_METADATA = frozenset({"owner_team", "use_case", "risk_tier", "description", "format"})


def _log_into(run: Run, params: dict | None, metrics: list | None, tags: dict | None) -> None:
    """One batch of a remote client's values, through the run's own rules (all or nothing:
    the buffer reaches the writer only when every value passed)."""
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    # Consecutive points of one step go in as one log_metrics call (a run's 500 points are 50
    # calls, not 500); a key seen again, another step, or a point without one starts the next.
    group: dict = {}
    step = None
    for point in metrics or []:
        if not isinstance(point, (list, tuple)) or len(point) not in (2, 3) or not isinstance(point[0], str):
            raise ValidationError(f"A metric point is [key, value] or [key, value, step], not {str(point)[:80]}.")
        if len(point) == 2 or point[2] != step or point[0] in group or type(point[2]) is not type(step):
            if group:
                run.log_metrics(group, step=step)
            group, step = {}, None
        if len(point) == 2:
            run.log_metrics({point[0]: point[1]})
        else:
            group[point[0]], step = point[1], point[2]
    if group:
        run.log_metrics(group, step=step)


def _explained_features(summary: dict, table: pl.DataFrame) -> list[str]:
    """The features an explanation's summary lists, each a column of its table (else ValidationError)."""
    rows = summary.get("global_importance") if isinstance(summary, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("feature"), str) for r in rows):
        raise ValidationError("An explanation's summary lists global_importance: [{'feature': ..., ...}, ...].")
    features = [r["feature"] for r in rows]
    if absent := [f for f in features if f not in table.columns]:
        raise ValidationError(f"The explanation's table lacks the SHAP column(s) of {absent[:8]}.")
    return features


def _check_evidence_id(evidence_id) -> None:
    if isinstance(evidence_id, bool) or not isinstance(evidence_id, int) and not hasattr(evidence_id, "__index__"):
        raise ValidationError(f"An evidence id is the integer in ws.evidence()['id'], got {evidence_id!r}.")
    if not 0 < int(evidence_id) < 2**31:  # ids are 32-bit: PostgreSQL refuses a bigger one outright
        raise NotFoundError(f"No evidence with id {evidence_id}.")


def _with_head_mark(check: audit.ChainCheck, store: Store, conn) -> audit.ChainCheck:
    """A chain that verifies must also reach the head recorded beside the store at its last commit:
    otherwise committed events are gone (a damaged log, a truncated chain, a file copied alone)."""
    if not check.ok:
        return check
    why = store.mark_problem(conn)
    if why is None:
        return check
    return dataclasses.replace(check, ok=False, first_broken_seq=check.n_events + 1,
                               reason=f"{why} (per {store.path.name}.head, written at every commit)")


def operator_workspace(store=None) -> Workspace:
    """The local operator's workspace (CLI): may add users to a store it can write."""
    s, w = shared_store(store)
    return Workspace(s, w, None, operator=True)


__all__ = ["connect", "Workspace", "operator_workspace"]
