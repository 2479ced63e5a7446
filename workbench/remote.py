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

import inspect
import json
import os
import urllib.error
import urllib.request
from typing import Any

from . import errors, wire
from . import workspace as _filled  # noqa: F401  (importing it declares every operation)
from .operations import OPERATIONS

#: Operations whose arguments or results are live objects (a run, a fitted model, frames of
#: evidence computed where the data is): the remote workspace does not offer them yet.
NOT_YET_REMOTE = frozenset({"start_run", "register_model", "load_model", "explain", "fairness", "drift",
                            "monitor", "log_predictions", "log_labels", "log_reference", "export_report"})
_TIMEOUT = 300.0


def is_url(location) -> bool:
    """Whether ``location`` names a server (``http://`` or ``https://``), not a store."""
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


class Client:
    """One server and token: sends operations, raises the server's errors as workbench errors."""

    def __init__(self, url: str, token: str) -> None:
        if not isinstance(token, str) or not token.strip():
            raise errors.AuthenticationError(
                f"Connecting to {url} needs a token: wb.connect({url!r}, token=...) or $WORKBENCH_TOKEN. Make one on "
                "the dashboard's Tokens page.")
        self.url = url.rstrip("/")
        self._token = token.strip()

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    def post(self, path: str, body: dict | None = None) -> Any:
        """POST ``body`` (encoded with :mod:`workbench.wire`) to ``/api/<path>``; the decoded result."""
        data = json.dumps(wire.encode(body or {})).encode()
        req = urllib.request.Request(f"{self.url}/api/{path}", data=data, method="POST", headers={
            "Authorization": f"Bearer {self._token}", "Content-Type": "application/json"})
        return self._send(req)

    def get(self, path: str) -> Any:
        """GET ``/api/<path>``; the decoded result."""
        req = urllib.request.Request(f"{self.url}/api/{path}", headers={"Authorization": f"Bearer {self._token}"})
        return self._send(req)

    def _send(self, req: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(req, timeout=_TIMEOUT) as resp:
                body, kind = resp.read(), resp.headers.get("content-type", "")
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except urllib.error.URLError as exc:
            raise errors.StoreError(f"Cannot reach the workbench server at {self.url}: {exc.reason}.") from None
        if kind.startswith(wire.ARROW):
            return wire.read_frame(body)
        return wire.decode(json.loads(body))


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
        if name in NOT_YET_REMOTE:
            raise errors.ValidationError(f"{name} is not available through the server yet; use a file workspace "
                                         "on a store no server holds.")
        bound = sig.bind(*args, **kwargs)
        body = {}
        for key, value in bound.arguments.items():
            if sig.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                body.update(value)
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


def connect(url: str, token: str | None = None) -> RemoteWorkspace:
    """A :class:`RemoteWorkspace` on the server at ``url``, acting as ``token``'s user."""
    return RemoteWorkspace(url, token)


__all__ = ["RemoteWorkspace", "Client", "connect", "is_url", "NOT_YET_REMOTE"]
