"""One demo store per pytest process, shared by test_cli, test_dashboard and test_browser.

Seeding takes 20-75 s, so it is done once, lazily, by the first test that asks for it,
through the real command (``workbench demo --store PATH -q``) so that its wall time and
output can be asserted on as well. Import it as ``import _demo_store`` (pytest puts
``tests/`` on ``sys.path``); importing it under another name would seed a second store.
"""

from __future__ import annotations

import atexit
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "workbench.cli"]
_SCRATCH = Path(tempfile.mkdtemp(prefix="wb-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, True)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment without any WORKBENCH_* variable, so only --store decides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    env.update(extra)
    return env


def cli_args(*args) -> list[str]:
    return [*CLI, *map(str, args)]


def run_cli(*args, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``workbench ARGS...`` in a subprocess, never attached to a terminal (stdin closed)."""
    return subprocess.run(cli_args(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or _SCRATCH, env=cli_env(), stdin=subprocess.DEVNULL)


def run_cli_many(commands: list[tuple], timeout: float = 60) -> list[subprocess.CompletedProcess]:
    """Several independent ``workbench`` invocations at once (they only start Python and print)."""
    procs = [(cmd, subprocess.Popen(cli_args(*cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    cwd=_SCRATCH, env=cli_env(), stdin=subprocess.DEVNULL)) for cmd in commands]
    results = []
    try:
        for cmd, proc in procs:
            out, err = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(cli_args(*cmd), proc.returncode, out, err))
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@dataclass(frozen=True)
class DemoStore:
    path: Path
    seconds: float  # wall time of the first `workbench demo`
    cpu_seconds: float  # user + system CPU time of that process (threads included)
    result: subprocess.CompletedProcess


@functools.lru_cache(maxsize=None)
def demo_store() -> DemoStore:
    """Seed the demo once (via the CLI) into a temporary folder; the same store afterwards."""
    path = Path(tempfile.mkdtemp(prefix="demo-", dir=_SCRATCH)) / "demo.duckdb"
    # CPU time is read from RUSAGE_CHILDREN: nothing else of this process runs meanwhile.
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = run_cli("demo", "--store", path, "-q", timeout=300)
    seconds = time.monotonic() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"`workbench demo` failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return DemoStore(path, seconds, cpu, result)


_PG = os.environ.get("WORKBENCH_TEST_PG")
_PG_COPIES = iter(range(1_000_000))


@functools.lru_cache(maxsize=None)
def demo_location() -> str | Path:
    """The demo store the dashboard tests read: the file, or, in the PostgreSQL pass
    (WORKBENCH_TEST_PG), a copy of it in its own database made by ``workbench migrate``."""
    return private_demo()


def private_demo() -> str | Path:
    """A private copy of the demo store on the pass's backend, for tests that change it."""
    copy = demo_copy()
    return _migrated(copy) if _PG else copy


def _migrated(source: Path) -> str:
    import psycopg
    import sqlalchemy as sa
    from _raw import drop_pg_database

    db = f"wbt_demo_{os.getpid()}_{next(_PG_COPIES)}"
    admin = sa.engine.make_url(_PG).set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as con:
        drop_pg_database(con, db)
        con.execute(f"create database {db}")
    atexit.register(_drop_database, admin, db)
    target = sa.engine.make_url(_PG).set(database=db).render_as_string(hide_password=False)
    result = run_cli("migrate", "--from", source, "--to", target, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"`workbench migrate` of the demo failed:\n{result.stdout}\n{result.stderr}")
    return target


def _drop_database(admin: str, db: str) -> None:
    import psycopg
    from _raw import drop_pg_database

    with psycopg.connect(admin, autocommit=True) as con:
        drop_pg_database(con, db)


def demo_copy() -> Path:
    """A private copy of the demo store (file and artifact folder), for tests that change it."""
    source = demo_store().path
    target = Path(tempfile.mkdtemp(prefix="demo-copy-", dir=_SCRATCH)) / "demo.duckdb"
    shutil.copy2(source, target)
    if source.with_suffix(".duckdb.wal").exists():
        shutil.copy2(source.with_suffix(".duckdb.wal"), target.with_suffix(".duckdb.wal"))
    shutil.copytree(source.with_suffix(".artifacts"), target.with_suffix(".artifacts"))
    return target


def scratch_dir(prefix: str) -> Path:
    """A new empty folder that lives as long as the test session."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH))


def tokens_for(store, names) -> dict[str, str]:
    """API tokens of the users ``names`` on ``store``, made in file mode before a server takes it
    (the store is let go afterwards); {name: token}."""
    from workbench.store import shared
    from workbench.workspace import operator_workspace

    op = operator_workspace(store)
    try:
        return {n: op.create_token("tests", user=n)["token"] for n in names}
    finally:
        shared.close(store)
