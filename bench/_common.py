"""Shared helpers for the hand-run benchmarks in bench/ (not a test module).

Timing: ``time.perf_counter``; figures are medians over repetitions, each repetition on a
fresh store in a temporary folder. Results are printed and also written as JSON to
``bench/results/<name>.json`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

PARAM_CHOICES = ["rf", "gbm", "lr"]


def median(xs) -> float:
    return float(statistics.median(xs))


@contextlib.contextmanager
def fresh_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder removed afterwards (one per repetition: a fresh store each time)."""
    d = Path(tempfile.mkdtemp(prefix=f"wbbench-{prefix}-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def quiet_mlflow() -> None:
    """Silence MLflow's and alembic's per-store INFO lines and warnings (not timed anyway)."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    for name in ("alembic", "mlflow", "sqlalchemy", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def machine_info() -> dict:
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1_5_15": os.getloadavg(),  # other processes on a shared machine skew timings
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for mod in ("workbench", "mlflow", "duckdb", "polars", "sqlalchemy"):
        try:
            info[f"{mod}_version"] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - informational only
            pass
    return info


def write_results(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine_info(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def new_workspace(store_path: Path, user: str = "bench"):
    """A store with one data_scientist user and a workspace acting as that user (setup, not timed)."""
    import workbench as wb
    from workbench.workspace import operator_workspace

    op = operator_workspace(store_path)
    op.add_user(user, "data_scientist", None)
    op.flush()
    return wb.connect(store_path, user=user)


def new_mlflow_client(folder: Path):
    """An MlflowClient on a fresh sqlite store, migrations applied (setup, not timed)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    client.search_experiments()  # creates the database and runs its migrations now
    return client


def close_mlflow(client) -> None:
    """Dispose of the client's sqlite engine so its temporary folder can go (best effort)."""
    try:
        client._tracking_client.store.engine.dispose()
    except Exception:  # noqa: BLE001 - a private attribute; only tidiness is at stake
        pass


def fmt_s(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def log(msg: str) -> None:
    print(msg, flush=True)


def banner(title: str) -> None:
    """Print what is being measured, and how busy the machine is right now."""
    la = os.getloadavg()
    log(f"{title}")
    log(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}; load average now "
        f"{la[0]:.2f} {la[1]:.2f} {la[2]:.2f} (above ~0.5 other work is competing: expect noise)")


def time_page(store: Path, page: str, user: str, password: str, reps: int, query: dict | None = None,
              check: Callable | None = None) -> list[float]:
    """Script-run times of one dashboard page (Streamlit's AppTest), signed in as ``user``.

    The first time warms the process (imports, caches); the rest are what a reader of
    an open dashboard waits. Each run must show no exception and no error, and pass
    ``check(at)`` when given.
    """
    from streamlit.testing.v1 import AppTest

    from workbench.people import auth
    from workbench.ui import widgets as ui

    os.environ["WORKBENCH_STORE"] = str(store)
    signed = auth.sign_in(str(store), user, password)
    times = []
    for _ in range(reps + 1):
        at = AppTest.from_file(str(BENCH_DIR.parent / "pages" / page), default_timeout=120)
        at.session_state[ui.SIGNED] = signed
        for k, v in (query or {}).items():
            at.query_params[k] = v
        t0 = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t0
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        assert at.title and at.title[0].value != "Sign in", "the page did not run signed in"
        if check is not None:
            check(at)
        times.append(dt)
    return times


def cached_store(name: str, build: Callable[[Path], None], rebuild: bool = False) -> Path:
    """A benchmark store in bench/results/, built once by ``build(path)`` (not timed) and reused."""
    path = RESULTS_DIR / name
    if rebuild or not path.exists():
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        for stale in (path, Path(str(path) + ".wal")):
            stale.unlink(missing_ok=True)
        shutil.rmtree(path.with_suffix(".artifacts"), ignore_errors=True)
        t = time.perf_counter()
        build(path)
        log(f"built {name} in {fmt_s(time.perf_counter() - t)} (not timed)")
    return path


# -- servers run by a benchmark ------------------------------------------------------------------
SERVER_STARTUP_S = 120


def free_port() -> int:
    """A free loopback port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc, log_path: Path) -> None:
    """Return once ``url`` answers; exit with the server's log if it stops or stays down."""
    import urllib.request

    deadline = time.monotonic() + SERVER_STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server not up after {SERVER_STARTUP_S} s:\n{log_path.read_text()[-3000:]}")


def stop_process_group(proc) -> None:
    """SIGTERM the server's process group (it shuts down cleanly), SIGKILL if it hangs."""
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def workbench_server(store, log_path: Path) -> Iterator[str]:
    """``workbench serve --store store`` on a free port until the block ends; yields its URL."""
    import subprocess

    url = f"http://127.0.0.1:{free_port()}"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--store", str(store), "--port",
                                 url.rsplit(":", 1)[1]], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"{url}/_stcore/health", proc, log_path)
        yield url
    finally:
        stop_process_group(proc)
