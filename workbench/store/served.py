"""The server's claim on a DuckDB store: while ``workbench serve`` runs, nobody else opens the file.

The server writes ``<store>.server`` beside the file (its URL, pid, host and start) once it
holds the store, and removes it when it stops. Every other process that would open the file
(a file-mode ``wb.connect``, the CLI, a sign-in) reads it first and is refused at once with
:class:`StoreServedError`, which names the server and how to connect through it, instead of
waiting for DuckDB's file lock. A claim left by a server that died (its pid is gone, or is
another program since) is ignored.

A PostgreSQL store has no file to hold: several servers may share the database.

>>> claim_path(Path("/data/workbench.duckdb")).name
'workbench.duckdb.server'
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..errors import StoreLockedError
from ..processes import started


class StoreServedError(StoreLockedError):
    """The store is held by a running ``workbench serve``: connect through it."""


def claim_path(path: Path) -> Path:
    """Where the claim on the store file ``path`` is kept."""
    return path.with_name(path.name + ".server")


def claim(path: Path, url: str, operator_secret: str | None = None) -> None:
    """Record that this process serves the store file ``path`` at ``url``.

    ``operator_secret`` lets the local operator's CLI act through the server: the claim file is
    readable by its owner only, so only who could open the store file itself (the operator, in
    file mode) can read it.
    """
    me = {"url": url, "pid": os.getpid(), "host": socket.gethostname(), "started": started(os.getpid()),
          "operator": operator_secret}
    tmp = claim_path(path).with_name(claim_path(path).name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me))
    os.replace(tmp, claim_path(path))


def release(path: Path) -> None:
    """Remove this process's claim on ``path`` (another process's claim is left alone)."""
    holder = _read(path)
    if holder is not None and holder.get("pid") == os.getpid():
        claim_path(path).unlink(missing_ok=True)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(claim_path(path).read_text())
    except PermissionError:  # another user's server: it holds the file all the same
        return {"url": "(a server of another user)", "pid": "?", "host": "?"}
    except (OSError, ValueError):
        return None


def holder(path: Path) -> dict | None:
    """The live server holding ``path`` (``url``, ``pid``, ``host``, ``operator``), or None.

    None too when this process is the server, and for a claim whose process is gone: same
    host, and no process with that pid started when the claim says.
    """
    found = _read(path)
    if not isinstance(found, dict) or found.get("pid") == os.getpid() and found.get("host") == socket.gethostname():
        return None
    if found.get("host") == socket.gethostname():
        now = started(int(found.get("pid", -1)))
        if now is None or (found.get("started") and now and abs(now - found["started"]) > 1):
            return None  # that server died; the pid is free or belongs to another program now
    return found


def refuse_if_served(path: Path) -> None:
    """Raise :class:`StoreServedError` when a live server holds the store file ``path``."""
    found = holder(path)
    if found is not None:
        url = found.get("url", "?")
        raise StoreServedError(
            f"Store {path} is served by workbench serve (pid {found.get('pid')} on {found.get('host')}) at {url}; "
            f"while it runs, only the server opens the file. Connect through it: "
            f"wb.connect({url!r}, token=...) or WORKBENCH_URL={url} and WORKBENCH_TOKEN; the CLI takes --url. "
            "Make a token on the dashboard's Tokens page, or ask an admin to run "
            f"`workbench tokens create --user NAME --store {path}` as the user who runs the server.")


__all__ = ["StoreServedError", "claim_path", "claim", "release", "holder", "refuse_if_served"]
