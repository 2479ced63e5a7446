"""The remote workspace: the same operations as a file workspace, called through a server.

``wb.connect("http://host:port", token="wbt_...")`` (or ``$WORKBENCH_URL`` and
``$WORKBENCH_TOKEN``) returns a :class:`RemoteWorkspace`. Its methods are generated from the
same table of operations as :class:`~workbench.workspace.Workspace`'s, with the same
parameters, results and docstrings; each call is one HTTP request that the server answers
after its commit. The user is the token's: a remote workspace cannot choose it. Errors come
back as the same exception classes as in file mode (``PermissionDenied``, ``ValidationError``
...), with the server's message.

Example::

    import workbench as wb
    ws = wb.connect("http://127.0.0.1:8501", token=os.environ["WORKBENCH_TOKEN"])
    ws.models()
"""

from __future__ import annotations

import http.client
import inspect
import json
import numbers
import os
import threading
import time
import urllib.parse
from typing import Any

from . import errors, wire
from . import workspace as _filled  # noqa: F401  (importing it declares every operation)
from .evidence import compute
from .operations import OPERATIONS
from .people import roles
from .tracking import runs

#: Parameters that take a frame: read here (a pandas frame, a file of this machine) and sent as
#: a polars frame, so the server never opens a path of its own disk.
_FRAME_PARAMETERS = {"log_predictions": ("frame",), "log_labels": ("frame",), "log_reference": ("data",),
                     "monitor": ("reference",)}
_TIMEOUT = 300.0


def is_url(location) -> bool:
    """Whether ``location`` names a server (``http://`` or ``https://``), not a store."""
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


class Client:
    """One server and token: sends operations over a kept-alive connection (one per thread) and
    raises the server's errors as workbench errors."""

    def __init__(self, url: str, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise errors.AuthenticationError(
                f"Connecting to {url} needs a token: wb.connect({url!r}, token=...) or $WORKBENCH_TOKEN. Make one on "
                "the dashboard's Tokens page.")
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ValidationError(f"{url!r} is not a server address (http://host:port).")
        self._parts = parts
        self._token = token.strip()
        self._local = threading.local()

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, and whether it was used before (a server may have closed it since)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        conn = self._local.conn = cls(self._parts.hostname, self._parts.port, timeout=_TIMEOUT)
        return conn, False

    def post(self, path: str, body: dict | None = None) -> Any:
        """POST ``body`` (encoded with :mod:`workbench.wire`) to ``/api/<path>``; the decoded result."""
        return self._send("POST", path, json.dumps(wire.encode(body or {})).encode())

    def get(self, path: str) -> Any:
        """GET ``/api/<path>``; the decoded result."""
        return self._send("GET", path, None)

    def _send(self, method: str, path: str, data: bytes | None) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        prefix = self._parts.path.rstrip("/")
        while True:
            conn, reused = self._connection()
            try:
                conn.request(method, f"{prefix}/api/{path}", body=data, headers=headers)
                resp = conn.getresponse()
                body, kind, status = resp.read(), resp.getheader("content-type", ""), resp.status
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                self._local.conn = None
                # A kept-alive connection the server closed while it was idle (uvicorn does after
                # a few seconds) fails before the request is read: send it again on a new one.
                if not reused:
                    raise errors.StoreError(f"The workbench server at {self.url} closed the connection: {exc}.") from None
            except OSError as exc:
                conn.close()
                self._local.conn = None
                raise errors.StoreError(f"Cannot reach the workbench server at {self.url}: {exc}.") from None
        if status >= 400:
            raise _error(status, body)
        if kind.startswith(wire.ARROW):
            return wire.read_frame(body)
        return wire.decode(json.loads(body))


def _frame(value):
    from .datasets import to_polars
    from .evidence.drift import ReferenceProfile

    return value if isinstance(value, ReferenceProfile) else to_polars(value)


def _error_classes() -> dict[str, type]:
    """Every workbench error class by name (those of other modules too, e.g. FilterSyntaxError)."""
    found, todo = {}, [errors.WorkbenchError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def _error(status: int, body: bytes) -> errors.WorkbenchError:
    """The workbench error a server's error answer stands for (same class, same message)."""
    try:
        said = json.loads(body)
        name, message = said["error"], said["message"]
    except (ValueError, KeyError, TypeError):
        return errors.StoreError(f"The server answered {status}: {body[:200]!r}")
    cls = _error_classes().get(name, errors.WorkbenchError)
    try:
        return cls(*said.get("args") or [message])
    except TypeError:  # a class whose arguments did not travel: its message still does
        return errors.WorkbenchError(message)


def _remote_method(name: str):
    op = OPERATIONS[name]
    sig = op.signature

    def method(self, *args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        body = {}
        for key, value in bound.arguments.items():
            if sig.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                body.update(value)
            elif key in _FRAME_PARAMETERS.get(name, ()) and value is not None:
                body[key] = _frame(value)
            else:
                body[key] = value
        return self._client.post(f"v1/ops/{name}", body)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = op.doc
    method.__signature__ = sig.replace(parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
                                                   *sig.parameters.values()])
    return method


class RemoteWorkspace:
    """A workspace whose store is held by a server: every operation of
    :data:`workbench.operations.OPERATIONS` as a method, called over HTTP as the token's user."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self._client = Client(url, token if token is not None else os.environ.get("WORKBENCH_TOKEN", ""))
        me = self._client.get("v1/me")
        self._user, self._role = me["user"], me["role"]

    @property
    def url(self) -> str:
        """The server's address."""
        return self._client.url

    @property
    def user(self) -> str:
        """The token's user."""
        return self._user

    @property
    def role(self) -> str:
        """The user's role when the workspace connected (the server checks it again on every call)."""
        return self._role

    def flush(self) -> None:
        """Nothing to wait for: every call returned after its commit."""

    def close(self) -> None:
        """Nothing to close: each call is its own request."""

    def __enter__(self) -> "RemoteWorkspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteWorkspace(url={self.url!r}, user={self.user!r}, role={self.role!r})"


for _name in OPERATIONS:
    setattr(RemoteWorkspace, _name, _remote_method(_name))


def _export_report(self, kind, model, version=None, *, fmt="html", out_dir=".", **options):
    # The server renders and audits the report (download_report); the file is written here, on
    # the caller's machine, into the caller's folder, never into a folder of the server's.
    from .reports.documents import check_folder

    folder = check_folder(out_dir)
    name, data = self.download_report(kind, model, version, fmt=fmt, **options)
    path = folder / name
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise errors.ValidationError(f"Could not write {path}: {exc.strerror or exc} (is the folder writable?).") from None
    return path


_export_report.__name__ = _export_report.__qualname__ = "export_report"
_export_report.__doc__ = OPERATIONS["export_report"].doc
_export_report.__signature__ = RemoteWorkspace.export_report.__signature__
RemoteWorkspace.export_report = _export_report


def connect(url: str, token: str | None = None) -> RemoteWorkspace:
    """A :class:`RemoteWorkspace` on the server at ``url``, acting as ``token``'s user."""
    return RemoteWorkspace(url, token)




class RemoteRun:
    """A run logged through a server: the same ``log_*`` calls as :class:`~workbench.tracking.runs.Run`.

    Values are checked here with the same rules as in file mode (so a bad value fails at the
    call that logs it) and buffered; they reach the server in one call when the buffer is
    large or old, at :meth:`flush`, and when the run ends. When ``end`` (or the ``with`` block)
    returns, the server has committed the run and everything logged in it.
    """

    flush_points = 50_000
    flush_seconds = 5.0

    def __init__(self, ws: "RemoteWorkspace", experiment: str, name: str | None, parent: str | None,
                 tags: dict | None) -> None:
        self._ws = ws
        runs.check_key("Experiment", experiment)
        self.run_id, self.experiment = runs.new_run_id(), experiment  # made here, as file mode does: no round trip
        self.name = runs.check_run_name(name) or f"run-{self.run_id[:8]}"
        self.parent_run_id = parent
        self._created = False  # the server learns of the run with its first batch
        self.status = "RUNNING"
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._pending: dict[str, Any] = {"params": {}, "metrics": [], "tags": {}}
        self._last_flush = time.monotonic()
        if tags:
            self.set_tags(tags)

    def __repr__(self) -> str:
        return f"RemoteRun(name={self.name!r}, run_id={self.run_id!r}, experiment={self.experiment!r}, status={self.status!r})"

    def _check_open(self) -> None:
        if self.status != "RUNNING":
            raise errors.ValidationError(f"Run {self.name!r} has ended ({self.status}); start a new run to log more.")

    def log_params(self, params) -> None:
        """Log hyperparameters (text); a param keeps its first value (as ``Run.log_params``)."""
        self._check_open()
        new = runs.new_params(self.name, self._params, params)
        self._params.update(new)
        self._pending["params"].update(new)
        self._maybe_flush()

    def log_metrics(self, metrics, step: int | None = None) -> None:
        """Log metric values at ``step`` (default: one past the key's last step), as ``Run.log_metrics``."""
        self._check_open()
        if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
            raise errors.ValidationError(f"step must be an integer, got {runs.brief(step)}.")
        points = []
        for key, value in dict(metrics).items():
            runs.check_key("Metric", key)
            value = runs.check_metric(key, value)
            at = int(step) if step is not None else self._steps.get(key, -1) + 1
            points.append([key, value, at])
        for key, value, at in points:
            self._steps[key] = max(self._steps.get(key, -1), at)
        self._pending["metrics"].extend(points)
        self._maybe_flush()

    def log_metric(self, key: str, value, step: int | None = None) -> None:
        """Log one metric value; as :meth:`log_metrics` with ``{key: value}``."""
        self.log_metrics({key: value}, step=step)

    def set_tags(self, tags) -> None:
        """Set tags (text); a tag may be overwritten."""
        self._check_open()
        checked = {runs.check_key("Tag", k): runs.as_text("Tag", k, v) for k, v in dict(tags).items()}
        self._pending["tags"].update(checked)
        self._maybe_flush()

    def log_dataset(self, data, name: str, role: str = "train", *, source: str | None = None, parents=None,
                    marks: dict | None = None):
        """Record a data set this run used, as ``Run.log_dataset``: fingerprinted here (the rows
        never leave this machine), recorded by the server."""
        from .datasets import fingerprint, to_polars
        from .protection import column_marks

        self._check_open()
        runs.check_key("Data set", name)
        runs.check_key("Data set role", role)
        if source is None and isinstance(data, (str, os.PathLike)):
            source = str(data)
        df = to_polars(data)
        column_marks.check(marks or {}, df.columns)
        digest, schema_json = fingerprint(df)
        self.flush()  # the server must know the run first
        parent_ids = [getattr(p, "id", p) for p in (parents or [])]
        return self._ws.log_dataset_fingerprint(self.run_id, name, role, digest, schema_json, df.height, df.width,
                                                source=source, parents=parent_ids, detected=column_marks.detect(df),
                                                marks=marks)

    def log_artifact(self, path, name: str | None = None) -> str:
        """Send a file to the server's artifact folder as an artifact of this run; its sha256."""
        from pathlib import Path

        self._check_open()
        path = Path(path)
        if not path.is_file():
            raise errors.NotFoundError(f"No file at {path}: an artifact is a regular file.")
        data = path.read_bytes()
        self.flush()
        return self._ws.log_artifact_bytes(self.run_id, name or path.name, data)

    def register_model(self, model, name: str, **metadata):
        """Register ``model`` as the next version of ``name``, produced by this run (saved here,
        checked and stored by the server); as ``Run.register_model``."""
        self._check_open()
        self.flush()  # the server must know the run the version names
        return self._ws.register_model(model, name, run_id=self.run_id, **metadata)

    def _maybe_flush(self) -> None:
        if len(self._pending["metrics"]) >= self.flush_points or time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def _send(self, **end) -> None:
        pending, self._pending = self._pending, {"params": {}, "metrics": [], "tags": {}}
        self._last_flush = time.monotonic()
        if self._created and not any(pending.values()) and not end:
            return
        start = {} if self._created else {"experiment": self.experiment, "name": self.name, "parent": self.parent_run_id}
        self._ws.submit_run(self.run_id, **start, **{k: v for k, v in pending.items() if v}, **end)
        self._created = True

    def flush(self) -> None:
        """Send what is buffered (and the run itself, the first time); returns once it is committed."""
        self._send()

    def end(self, status: str = "FINISHED", error: str | None = None) -> None:
        """Send what is buffered and end the run, in one call; returns once the server has committed it."""
        if self.status != "RUNNING":
            return
        self._send(status=status, error=error)
        self.status = status

    def __enter__(self) -> "RemoteRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("FINISHED")
        else:
            self.end("FAILED", error=f"{exc_type.__name__}: {exc}"[:2000])


def _start_run(self, experiment, name=None, parent=None, tags=None):
    if isinstance(parent, RemoteRun):
        parent.flush()  # the server must know the parent before a child names it
        parent = parent.run_id
    return RemoteRun(self, experiment, name, parent, tags)


def _register_model(self, model, name, *, run_id=None, **metadata):
    # Saved here with the same rules as file mode (skops unless format="pickle"); the server
    # opens a skops file without running code to check it, and keeps a pickle as it is.
    fmt = metadata.pop("format", "skops")
    from .registry import models as registry

    data = registry.serialize(model, fmt)
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    return self.register_model_file(name, data, cls, run_id=run_id, format=fmt, **metadata)


def _load_model(self, name, version=None, *, allow_pickle=False):
    from .registry import models as registry

    fmt, data = self.model_file(name, version)  # the server checked the bytes against the audit trail
    return registry.load_bytes(data, fmt, allow_pickle=allow_pickle, label=f"{name} v{version or 'latest'}")


# Evidence is computed here, where the data and the model are (workbench.evidence.compute), and
# recorded by the server's record_* operations, which pseudonymise with the store's key and
# judge by the store's policy. The role is checked first only to fail before the work: the
# server checks it again when the result is recorded.
def _explain(self, model_version, X, **options):
    roles.require(self.user, self.role, "compute_evidence")
    return compute.explain(self, model_version, X, **options)


def _fairness(self, model_version, X, y_true, **options):
    roles.require(self.user, self.role, "compute_evidence")
    return compute.fairness(self, model_version, X, y_true, **options)


def _drift(self, reference, current, **options):
    if options.get("model_version") is not None:
        roles.require(self.user, self.role, "compute_evidence")
    return compute.drift(self, reference, current, **options)


_monitor_on_server = RemoteWorkspace.monitor


def _monitor(self, model_version, window="1d", *, reference=None, start=None, end=None, alerts=True,
             allow_pickle=False, task=None):
    # The server computes the windows (the logs are there) but never unpickles: a pickled
    # model's task is read here, from the model loaded on this side.
    if allow_pickle and task is None:
        name, version = compute.version_ref(self, model_version)
        model = self.load_model(name, version, allow_pickle=True)
        task = "classification" if hasattr(model, "predict_proba") else "regression"
    return _monitor_on_server(self, model_version, window, reference=reference, start=start, end=end, alerts=alerts,
                              task=task)


for _fn, _op in ((_register_model, "register_model"), (_load_model, "load_model"), (_explain, "explain"),
                 (_fairness, "fairness"), (_drift, "drift"), (_monitor, "monitor")):
    _fn.__name__ = _fn.__qualname__ = _op
    _fn.__doc__ = OPERATIONS[_op].doc
    _fn.__signature__ = getattr(RemoteWorkspace, _op).__signature__
    setattr(RemoteWorkspace, _op, _fn)

_start_run.__name__ = _start_run.__qualname__ = "start_run"
_start_run.__doc__ = OPERATIONS["start_run"].doc
_start_run.__signature__ = RemoteWorkspace.start_run.__signature__
RemoteWorkspace.start_run = _start_run


__all__ = ["RemoteWorkspace", "RemoteRun", "Client", "connect", "is_url"]
