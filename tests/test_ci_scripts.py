"""The scripts make test uses to start PostgreSQL refuse, in one line, what would break the pass."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

CI = Path(__file__).resolve().parent.parent / ".ci"


def _start(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CI / "start_pg.sh"), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_start_pg_refuses_a_busy_port_and_bad_arguments(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = _start(tmp_path / "c1", port)
    assert taken.returncode != 0 and f"port {port} on 127.0.0.1 is already in use" in taken.stderr
    assert taken.stdout == ""  # no URL printed: the caller cannot mistake it for a started cluster
    for args, message in [((tmp_path / "c2", "80"), "is not a number in 1024..65535"),
                          ((tmp_path / "c3", "54000", "Bad-Name"), "database name 'Bad-Name'"),
                          ((tmp_path / "c4",), "usage: start_pg.sh")]:
        done = _start(*args)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
    assert not (tmp_path / "c1" / "data").exists()  # nothing was initialised


@pytest.mark.postgres
def test_stop_pg_says_when_there_is_nothing_to_stop(tmp_path):
    done = subprocess.run(["bash", str(CI / "stop_pg.sh"), str(tmp_path / "none")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "does not exist: nothing to stop" in done.stderr
