"""The HTTP API, generated from the table of operations: one route per operation.

``POST /api/v1/ops/<name>`` with the operation's parameters as a JSON object (values JSON
cannot hold travel as :mod:`workbench.wire` tags) calls the operation as the token's user and
answers with its result: a frame as an Arrow IPC stream, anything else as JSON. The request
body of each route is a pydantic model made from the operation's signature, so the OpenAPI
document (``/api/openapi.json``) lists every operation with its typed parameters and
docstring, and wrong types are refused before the operation runs.

Who calls is never taken from the request body: the ``Authorization`` header carries a
personal access token (``Bearer wbt_...``, or HTTP basic with the token as the password),
checked against the store on every call (:func:`workbench.people.tokens.check`); the role
and enabled state come from the store at that moment, and a token limited to some
operations is refused the others. Errors map once to status codes (:data:`STATUS`) with a
body ``{"error": "<class>", "message": "..."}``; the remote workspace raises the same class.
No route answers with a traceback.
"""

import base64
import binascii
import hmac
import inspect
import logging
import os
import typing
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ConfigDict, create_model

from .. import errors, wire
from .._version import __version__
from ..operations import OPERATIONS, Operation
from ..people import sessions, tokens
from ..store.shared import shared_store
from ..workspace import Workspace

log = logging.getLogger("workbench.server")

#: Error class -> HTTP status; a subclass takes its nearest listed base's status.
STATUS: dict[type, int] = {
    errors.AuthenticationError: 401,
    errors.PermissionDenied: 403,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.IntegrityError: 409,
    errors.ValidationError: 400,
    errors.KeyUnavailableError: 409,
    errors.StoreLockedError: 503,
    errors.StoreError: 503,
    errors.WorkbenchError: 400,
}
#: Operations whose arguments name a folder of the machine they run on: over HTTP that would be
#: the server's disk, chosen by the caller. Refused; the remote workspace writes reports itself.
LOCAL_ONLY = {"export_report": "export_report writes into a folder of the machine it runs on: through the server, "
                               "use download_report (the remote workspace's export_report does, and writes the file "
                               "on your side)."}
#: Operations that need the data or the model where the caller is: the server would have to
#: load (perhaps unpickle) a caller's model and compute on its own cores. The remote workspace
#: computes them on the client and records them with the ``record_*`` operations.
CLIENT_SIDE = {name: f"{name} computes where the data is: through the server, call it on wb.connect(url, token=...), "
                     f"which computes on your side and records the result here"
               for name in ("explain", "fairness", "drift")}
CLIENT_SIDE["load_model"] = ("The server does not load models: model_file gives the version's file (the remote "
                             "workspace's load_model loads it on your side).")
#: Every operation a route refuses, with the message that says what to do instead.
NOT_OVER_HTTP = {**LOCAL_ONLY, **CLIENT_SIDE}
#: Operations with a parameter naming a folder the server itself writes into later (a schedule's
#: reports): through the API it is a folder under the server's reports folder, never a path the
#: caller picks on the server's disk.
SERVER_FOLDERS = {"add_schedule": "out_dir"}
#: Largest request body accepted (bytes): a model file or a frame fits; a flood does not.
MAX_BODY = 256 * 1024 * 1024
_JSON_TYPES = (str, int, float, bool, type(None), dict, list, datetime, date)


def status_of(exc: BaseException) -> int:
    """The HTTP status of a workbench error (its class's, or its nearest base's)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(exc: BaseException) -> dict:
    """``{"error": class name, "message": ..., "args": [...]}``: what the remote workspace raises
    again (``args``, the exception's own arguments, when they are plain values, rebuild it whole:
    a filter syntax error keeps its position)."""
    body = {"error": type(exc).__name__, "message": str(exc)}
    if all(isinstance(a, (str, int, float, bool)) or a is None for a in exc.args):
        body["args"] = list(exc.args)
    return body


def _wire_type(hint: Any) -> Any:
    """A parameter's annotation as pydantic should check it; ``Any`` where JSON cannot carry it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return Any
    if origin in (typing.Union, __import__("types").UnionType):
        parts = [_wire_type(a) for a in args]
        return Any if Any in parts else typing.Union[tuple(parts)]
    if origin in (list, tuple, Iterable, set) or hint in (list, tuple):
        inner = _wire_type(args[0]) if args else Any
        return list[inner]
    if origin in (dict, Mapping) or hint is dict:
        return dict[str, _wire_type(args[1])] if len(args) == 2 else dict[str, Any]
    if origin is typing.Literal:
        return hint
    if isinstance(hint, type) and issubclass(hint, _JSON_TYPES):
        return hint
    return Any


def params_model(op: Operation):
    """The pydantic model of ``op``'s parameters (the route's request body)."""
    try:
        hints = typing.get_type_hints(op.function)
    except Exception:  # a name only imported for type checking: document such parameters as Any
        hints = {}
    fields, extra = {}, "forbid"
    for p in op.signature.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"  # e.g. set_gate_policy(**gates): named settings pass through
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        kind = _wire_type(hints.get(p.name, Any))
        fields[p.name] = (kind, ... if p.default is inspect.Parameter.empty else _default(p.default))
    return create_model(f"{op.name}_parameters", __config__=ConfigDict(extra=extra), **fields)


def _default(value: Any) -> Any:
    return value if isinstance(value, _JSON_TYPES) or value is None else None


class Caller:
    """Who a request comes from: the checked token's user, as a workspace of theirs."""

    def __init__(self, who: tokens.TokenUser, ws: Workspace) -> None:
        self.who, self.ws = who, ws


def _credentials(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():  # MLflow clients: user name and the token as password
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise errors.AuthenticationError("The Authorization header's basic credentials are not base64.") from None
        return password
    raise errors.AuthenticationError("This API needs a token: send 'Authorization: Bearer wbt_...'. Make one on "
                                     "the dashboard's Tokens page or with `workbench tokens create`.")


def make_api(location: str, operator_secret: str | None = None) -> FastAPI:
    """The FastAPI application of the store at ``location`` (mounted at ``/api`` by the server).

    Parameters
    ----------
    location : str
        The store the server holds (a DuckDB file or a PostgreSQL URL).
    operator_secret : str, optional
        The secret in the server's claim file (:mod:`workbench.store.served`): a caller that
        sends it acts as the local operator, as the CLI does on the file when no server runs.

    Returns
    -------
    fastapi.FastAPI
    """
    # servers: the routes are mounted at /api, and a client of the document must know it
    api = FastAPI(title="Workbench API", version=__version__, docs_url=None, redoc_url=None, servers=[{"url": "/api"}],
                  description=__doc__, openapi_url="/openapi.json")

    def authenticate(request: Request) -> Caller:
        store, writer = shared_store(location)
        credential = _credentials(request)
        if operator_secret and hmac.compare_digest(credential.encode(), operator_secret.encode()):
            ws = Workspace(store, writer, None, operator=True)
            return Caller(tokens.TokenUser(ws.user, ws.role, None, None), ws)
        who = tokens.check(store, writer, credential, address=request.client.host if request.client else None)
        return Caller(who, Workspace.for_caller(store, writer, who))

    @api.exception_handler(errors.WorkbenchError)
    def _workbench_error(request: Request, exc: errors.WorkbenchError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.AuthenticationError) else None
        return JSONResponse(error_body(exc), status_code=status_of(exc), headers=headers)

    @api.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"error": "ValidationError", "message": problems}, status_code=400)

    @api.exception_handler(sa.exc.DataError)
    def _data_error(request: Request, exc: sa.exc.DataError) -> JSONResponse:
        # a value the database cannot hold in its column (a number out of range, text it refuses):
        # the caller's value, named by the database's own words
        said = str(exc.orig).splitlines()[0] if exc.orig is not None else "a value the store cannot hold"
        return JSONResponse({"error": "ValidationError", "message": f"A value does not fit the store: {said}"},
                            status_code=400)

    @api.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s", request.url.path)  # the detail stays in the server's log
        return JSONResponse({"error": "InternalError", "message": "The server failed unexpectedly; its log "
                             "has the details."}, status_code=500)

    api.add_middleware(BodyLimit, limit=MAX_BODY)

    @api.get("/v1/me", summary="Who the token acts for")
    def me(caller: Caller = Depends(authenticate)) -> dict:
        """The token's user, their role now, the token's id and its operation limits."""
        return {"user": caller.who.user, "role": caller.who.role, "token_id": caller.who.token_id,
                "operations": list(caller.who.operations) if caller.who.operations is not None else None}

    @api.get("/session/open", include_in_schema=False)
    def open_session(request: Request, code: str = "", next: str = "/") -> Response:
        """The browser's stop after a sign-in: trade the one-time code for the session cookie."""
        try:
            secret, expires = sessions.redeem(location, code)
        except errors.AuthenticationError:
            return RedirectResponse(_same_site(next), status_code=303)  # the page shows the sign-in form again
        reply = RedirectResponse(_same_site(next), status_code=303)
        reply.set_cookie(sessions.COOKIE, secret, httponly=True, samesite="lax", path="/",
                         secure=request.url.scheme == "https", expires=expires)
        return reply

    @api.get("/session/close", include_in_schema=False)
    def close_session(request: Request, next: str = "/") -> Response:
        """Sign-out's stop: end the session the cookie names and forget the cookie."""
        sessions.end(location, request.cookies.get(sessions.COOKIE))
        reply = RedirectResponse(_same_site(next), status_code=303)
        reply.delete_cookie(sessions.COOKIE, path="/")
        return reply

    for op in OPERATIONS.values():
        _add_route(api, op, authenticate)
    return api


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Answer 413 to a request body over ``limit`` bytes: by its ``Content-Length`` before
    reading it, or by counting as it arrives (a chunked body names no length). A plain ASGI
    middleware: Starlette's ``BaseHTTPMiddleware`` costs every call a task and two streams."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = dict(scope["headers"]).get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.limit):
            return await self._refuse(send)
        seen, started = 0, False

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def watched(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send) -> None:
        await JSONResponse({"error": "ValidationError", "message": f"Request bodies are limited to "
                            f"{self.limit // 2**20} MiB."}, status_code=413)({"type": "http"}, None, send)


def _same_site(path: str) -> str:
    """``path`` if it is a path of this server ("/models?x=1"), else "/": never a redirect elsewhere."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def reports_folder(artifact_root: Path, name: Any) -> Path:
    """The folder ``name`` under the server's reports folder (``$WORKBENCH_REPORTS_DIR``, else
    ``reports/`` beside the store's artifact folder), made if missing.

    Raises
    ------
    ValidationError
        ``name`` is not a relative path that stays inside the reports folder.
    """
    root = Path(os.environ.get("WORKBENCH_REPORTS_DIR") or Path(artifact_root).parent / "reports")
    rel = Path(name) if isinstance(name, str) and name.strip() and "\x00" not in name else None
    if rel is None or rel.is_absolute() or ".." in rel.parts:
        raise errors.ValidationError(f"Through the server, out_dir names a folder under its reports folder (relative, "
                                     f"without '..'), e.g. 'weekly', not {str(name)[:80]!r}.")
    folder = root / rel
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.ValidationError(f"The reports folder {rel} cannot be made: {exc.strerror or exc}.") from None
    return folder


def _refuse_server_side_risks(name: str, args: dict) -> None:
    """What a caller may not make the server do: unpickle (run code from a file a caller
    uploaded) or read a path of the server's disk."""
    if args.get("allow_pickle"):
        raise errors.ValidationError(f"{name}: the server never unpickles (allow_pickle runs the file's code). Load "
                                     "the model on your side; the remote workspace does.")
    todo = list(args.values())
    while todo:
        value = todo.pop()
        if isinstance(value, Path):
            raise errors.ValidationError(f"{name}: a path would name a file of the server's disk; send the data.")
        if isinstance(value, (list, tuple)):
            todo.extend(value)
        elif isinstance(value, dict):
            todo.extend(value.values())


def _add_route(api: FastAPI, op: Operation, authenticate) -> None:
    body_model = params_model(op)
    declared = inspect.signature(getattr(Workspace, op.name))
    signature = declared.replace(parameters=list(declared.parameters.values())[1:])  # without self: bound later

    def endpoint(body, caller: Caller) -> Response:
        body = body if body is not None else body_model()
        if op.name in NOT_OVER_HTTP:
            raise errors.ValidationError(NOT_OVER_HTTP[op.name])
        if not caller.who.allows(op.name):
            raise errors.PermissionDenied(f"This token is limited to {', '.join(caller.who.operations)}: "
                                          f"it may not call {op.name}.")
        args = {k: wire.decode(v) for k, v in body.model_dump(exclude_unset=True).items()}
        args.update({k: wire.decode(v) for k, v in (body.model_extra or {}).items()})
        _refuse_server_side_risks(op.name, args)
        if op.name in SERVER_FOLDERS and SERVER_FOLDERS[op.name] in args:
            key = SERVER_FOLDERS[op.name]
            args[key] = str(reports_folder(caller.ws.store.artifact_root, args[key]))
        method = getattr(caller.ws, op.name)
        try:
            signature.bind(**args)
        except TypeError as exc:  # a parameter missing or not the operation's: the caller's mistake
            raise errors.ValidationError(f"{op.name}: {exc}") from None
        result = method(**args)
        caller.ws.flush()  # acknowledged means committed: answer only after the commit
        if isinstance(result, pl.DataFrame):
            return Response(wire.frame_bytes(result), media_type=wire.ARROW)
        return JSONResponse(wire.encode(result))

    optional = all(not f.is_required() for f in body_model.model_fields.values())
    endpoint.__signature__ = inspect.Signature([
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body_model | None if optional else body_model,
                          default=None if optional else inspect.Parameter.empty),
        inspect.Parameter("caller", inspect.Parameter.KEYWORD_ONLY, annotation=Caller,
                          default=Depends(authenticate)),
    ])
    first = op.doc.split("\n\n")[0].replace("\n", " ") if op.doc else op.name
    api.add_api_route(f"/v1/ops/{op.name}", endpoint, methods=["POST"], name=op.name, summary=first[:120],
                      description=f"Needs: {op.permission}. {'Writes (audited).' if op.writes else 'Reads.'}\n\n{op.doc}",
                      tags=["operations"], response_class=Response)


__all__ = ["make_api", "params_model", "status_of", "error_body", "STATUS", "MAX_BODY", "LOCAL_ONLY", "CLIENT_SIDE", "NOT_OVER_HTTP", "SERVER_FOLDERS", "reports_folder", "Caller"]
