"""Start and stop the real dashboard server (``workbench serve``) for the browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import _demo_store
import pytest

STARTUP_TIMEOUT = 60  # seconds for the server to answer /_stcore/health


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.read()
    except OSError:
        return None


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and the Streamlit process it started (its own process group)."""
    if proc.poll() is None or _group_alive(proc.pid):
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and _group_alive(proc.pid):
                proc.poll()
                time.sleep(0.1)
            if not _group_alive(proc.pid):
                break
    proc.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _artifacts() -> dict[str, str]:
    """The artifact folder the test set for its store (a fresh PostgreSQL store records none)."""
    folder = os.environ.get("WORKBENCH_ARTIFACTS")
    return {"WORKBENCH_ARTIFACTS": folder} if folder else {}


@contextmanager
def serving(store, log_path: Path, *options: str, scheme: str = "http",
            health: Callable[[str], bytes | None] = _health, started: list | None = None, env: dict | None = None):
    """``workbench serve --store store [options]`` on a free port until the block ends.

    Yields (url, port) once ``health(url)`` answers ``ok``; fails the test, with the server's
    log, if it exits or stays unhealthy for ``STARTUP_TIMEOUT`` seconds. The server's process
    (the leader of its own process group) is appended to ``started`` when given; ``env`` adds
    variables to its environment.
    """
    port = _free_port()
    url = f"{scheme}://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--store", str(store),
                                 "--port", str(port), *options],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=_demo_store.cli_env(**_artifacts(), **(env or {})), cwd=_demo_store.REPO,
                                start_new_session=True)
        if started is not None:
            started.append(proc)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while health(url) != b"ok":
                if proc.poll() is not None:
                    pytest.fail(f"workbench serve exited with {proc.returncode}:\n{log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"server not healthy after {STARTUP_TIMEOUT} s:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield url, port
        finally:
            _stop(proc)
