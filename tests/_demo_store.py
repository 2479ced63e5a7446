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


def run_cli(*args, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``workbench ARGS...`` in a subprocess, never attached to a terminal (stdin closed)."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or _SCRATCH, env=cli_env(), stdin=subprocess.DEVNULL)


@dataclass(frozen=True)
class DemoStore:
    path: Path
    seconds: float  # wall time of the first `workbench demo`
    result: subprocess.CompletedProcess


@functools.lru_cache(maxsize=None)
def demo_store() -> DemoStore:
    """Seed the demo once (via the CLI) into a temporary folder; the same store afterwards."""
    path = Path(tempfile.mkdtemp(prefix="demo-", dir=_SCRATCH)) / "demo.duckdb"
    start = time.monotonic()
    result = run_cli("demo", "--store", path, "-q", timeout=300)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"`workbench demo` failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return DemoStore(path, seconds, result)


def scratch_dir(prefix: str) -> Path:
    """A new empty folder that lives as long as the test session."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH))
