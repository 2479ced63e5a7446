"""W14: W1's logging load from 4 client processes through a server: `workbench serve` against `mlflow server`.

The 200 runs of W1 (10 params, 10 metrics x 50 steps: 100k points) are split over 4 client
processes (50 runs each), all logging at once, each over HTTP to a server on this machine:

- workbench: ``wb.connect(url, token=...)``, then per run ``with ws.start_run(...)``,
  ``run.log_params`` and ``run.log_metrics`` per step (the remote run buffers them and sends
  them when it ends; the ``with`` block returns once the server has committed the run);
- MLflow: ``MlflowClient(tracking_uri=url)`` against ``mlflow server`` with a sqlite backend
  (its default for a team that starts one), per run ``create_run``, ``log_batch`` (params and
  at most 1,000 metrics a call) and ``set_terminated``, as BENCHMARKS.md's anchor does.

Timed, for both: from the moment all 4 clients have started, imported their library and made
a first request (they wait at a barrier) until the last one exits, every run acknowledged
(committed) by then; then the counts are checked through the server. Not timed: starting the
servers and the clients' processes, making the user and token, the experiment. Cold: the first load on a freshly started
server; warm: a second load (another experiment) on the same server right after.

Run by hand:  python bench/w14_server.py [--reps 3]
The bar (issue 17): workbench points/s at least 10x MLflow's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    banner,
    fmt_s,
    free_port,
    fresh_dir,
    log,
    median,
    quiet_mlflow,
    stop_process_group,
    wait_until_up,
    workbench_server,
    write_results,
)
from w1_logging import (  # noqa: E402
    N_METRICS,
    N_RUNS,
    N_STEPS,
    make_data,
    ml_log_runs,
    wb_log,
)

CLIENTS = 4
BAR = 10.0
STARTUP_S = 120


def _client(target, args, ready, go) -> None:
    client = target(*args[:2])  # import and connect before the clock starts
    ready.release()
    go.wait()
    target.log(client, *args[2:])


def _run_clients(target, args_of) -> float:
    """Start the clients (fresh processes, as separate notebooks or jobs would be), let each
    import and connect, then start the clock and let them all log; stop it when the last exits."""
    ctx = mp.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    jobs = [ctx.Process(target=_client, args=(target, args_of(k), ready, go)) for k in range(CLIENTS)]
    for j in jobs:
        j.start()
    for _ in jobs:
        ready.acquire()
    t0 = time.perf_counter()
    go.set()
    for j in jobs:
        j.join()
    secs = time.perf_counter() - t0
    assert all(j.exitcode == 0 for j in jobs), [j.exitcode for j in jobs]
    return secs


# -- workbench ------------------------------------------------------------------------------
class WbClient:
    """A workbench client: connect (untimed), then log its share of the runs."""

    def __call__(self, url: str, token: str):
        import workbench as wb

        return wb.connect(url, token=token)

    @staticmethod
    def log(ws, params, metrics, experiment: str) -> None:
        wb_log(ws, params, metrics, experiment)


def wb_round(folder: Path, params, metrics) -> tuple[float, float]:
    import workbench as wb
    from workbench.store import shared
    from workbench.workspace import operator_workspace

    store = folder / "wb.duckdb"
    op = operator_workspace(store)
    op.add_user("bench", "data_scientist", None)
    token = op.create_token("w14", user="bench")["token"]
    shared.close(store)
    with workbench_server(store, folder / "serve.log") as url:
        ws = wb.connect(url, token=token)
        times = []
        for experiment in ("w14-cold", "w14-warm"):
            ws.end_run(ws.create_run(experiment))  # the experiment exists before the clock starts, as MLflow's
            times.append(_run_clients(WbClient(), lambda k, e=experiment: (
                url, token, params[k::CLIENTS], metrics[k::CLIENTS], e)))
            found = ws.search_runs(experiment=experiment)
            assert found.height == N_RUNS + 1, found.height
        assert ws.counts()["runs"] == 2 * (N_RUNS + 1)
    return times[0], times[1]


# -- MLflow ---------------------------------------------------------------------------------
class MlClient:
    """An MLflow client: connect (untimed), then log its share of the runs."""

    def __call__(self, url: str, exp_id: str):
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=url)
        client.get_experiment(exp_id)  # the first request, as workbench's connect makes one
        return client, exp_id

    @staticmethod
    def log(client_and_exp, params, metrics) -> None:
        ml_log_runs(*client_and_exp, params, metrics)


def ml_round(folder: Path, params, metrics) -> tuple[float, float]:
    from mlflow.tracking import MlflowClient

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "mlflow.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                                 f"sqlite:///{folder}/mlflow.db", "--default-artifact-root", str(folder / "artifacts"),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(f"{url}/health", proc, log_path)
        client = MlflowClient(tracking_uri=url)
        times = []
        for experiment in ("w14-cold", "w14-warm"):
            exp_id = client.create_experiment(experiment)
            times.append(_run_clients(MlClient(), lambda k, e=exp_id: (url, e, params[k::CLIENTS], metrics[k::CLIENTS])))
            runs = client.search_runs([exp_id], max_results=1000)
            assert len(runs) == N_RUNS, len(runs)
            assert len(client.get_metric_history(runs[0].info.run_id, "m0")) == N_STEPS
    finally:
        stop_process_group(proc)
    return times[0], times[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each side, interleaved (default 3)")
    args = ap.parse_args()
    quiet_mlflow()
    params, metrics = make_data()
    n_points = N_RUNS * N_STEPS * N_METRICS
    banner(f"W14: {N_RUNS} runs ({n_points:,} points) from {CLIENTS} client processes through a server")
    wb_times: dict[str, list[float]] = {"cold": [], "warm": []}
    ml_times: dict[str, list[float]] = {"cold": [], "warm": []}
    for i in range(args.reps):  # interleaved, so drift hits both alike
        with fresh_dir("w14-wb") as d:
            cold, warm = wb_round(d, params, metrics)
        wb_times["cold"].append(cold)
        wb_times["warm"].append(warm)
        with fresh_dir("w14-mlflow") as d:
            cold, warm = ml_round(d, params, metrics)
        ml_times["cold"].append(cold)
        ml_times["warm"].append(warm)
        log(f"  rep {i + 1}: workbench cold {fmt_s(wb_times['cold'][-1])} warm {fmt_s(wb_times['warm'][-1])}; "
            f"mlflow cold {fmt_s(ml_times['cold'][-1])} warm {fmt_s(ml_times['warm'][-1])}")
    res = {"workload": "W14", "clients": CLIENTS, "n_runs": N_RUNS, "n_points": n_points, "bar": BAR}
    for phase in ("cold", "warm"):
        wb_s, ml_s = median(wb_times[phase]), median(ml_times[phase])
        res[phase] = {"workbench": {"seconds": wb_times[phase], "median_s": wb_s, "points_per_s": n_points / wb_s},
                      "mlflow": {"seconds": ml_times[phase], "median_s": ml_s, "points_per_s": n_points / ml_s},
                      "ratio_points_per_s": ml_s / wb_s}
        log(f"{phase}: workbench {fmt_s(wb_s)} ({n_points / wb_s:,.0f} points/s), mlflow {fmt_s(ml_s)} "
            f"({n_points / ml_s:,.0f} points/s): {ml_s / wb_s:.1f}x (bar {BAR:g}x)")
    log(f"results: {write_results('w14_server', res)}")


if __name__ == "__main__":
    main()
