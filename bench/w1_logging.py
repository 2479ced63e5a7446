"""W1: log 200 runs, each 10 params and 10 metrics x 50 steps (100k metric points).

Workbench (``run.log_params`` / ``run.log_metrics`` per step, then ``ws.flush()``) against
its anchor, MLflow on a sqlite store through ``MlflowClient.log_batch`` (at most 1,000
metrics per call, params in the first call, then ``set_terminated``). Same values for both.

Timed, for both: creating the experiment, every run, every value, and waiting until all of
it is committed. Not timed: creating the empty store (MLflow's migrations, workbench's
schema and the bench user), generating the data, checks afterwards. A workbench run's end
returns once the run is committed (as MLflow's ``set_terminated`` does), so both sides reach
the same durable end state run by run, not only at the final ``flush()``.

Also timed, workbench only, against the same MLflow median: the 200 runs from 4 threads of one
process (their run ends share commits) and from 4 processes (fork; each logs 50 runs into the
same file, taking turns on it), from the first run to the last child's exit.

Run by hand:  python bench/w1_logging.py [--reps 3] [--wb-reps 7] [--skip-mlflow]
The bar (issue 15, durable run ends): workbench points/s at least 15x MLflow's, sequentially.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PARAM_CHOICES,
    banner,
    close_mlflow,
    fmt_s,
    fresh_dir,
    log,
    median,
    new_mlflow_client,
    new_workspace,
    quiet_mlflow,
    timed,
    write_results,
)

N_RUNS, N_PARAMS, N_METRICS, N_STEPS = 200, 10, 10, 50
BAR = 15.0  # issue 15: with durable run ends (one commit a run at least), >= 15x sequential
DOC_MLFLOW_POINTS_PER_S = 4_751  # BENCHMARKS.md's anchor figure for W1 (21.1 s), same kind of machine
METRIC_KEYS = [f"m{i}" for i in range(N_METRICS)]


def make_data(n_runs: int = N_RUNS, seed: int = 1):
    """params[r]: {p0..p9: str}; metrics[r][step]: list of N_METRICS floats."""
    rng = random.Random(seed)
    params, metrics = [], []
    for _ in range(n_runs):
        p = {"p0": rng.choice(PARAM_CHOICES), "p1": str(rng.randrange(50, 500)),
             "p2": f"{rng.uniform(1e-4, 1e-1):.5g}"}
        p.update({f"p{i}": f"value-{rng.randrange(1000)}" for i in range(3, N_PARAMS)})
        params.append(p)
        metrics.append([[rng.random() for _ in range(N_METRICS)] for _ in range(N_STEPS)])
    return params, metrics


# -- workbench ------------------------------------------------------------------------------
def wb_log(ws, params, metrics, experiment: str = "w1") -> None:
    keys = METRIC_KEYS
    for p, steps in zip(params, metrics):
        with ws.start_run(experiment) as run:
            run.log_params(p)
            for s, vals in enumerate(steps):
                run.log_metrics(dict(zip(keys, vals)), step=s)
    ws.flush()


def wb_concurrent_rep(params, metrics, how: str, workers: int = 4) -> float:
    """The same runs split over ``workers`` threads or forked processes, into one fresh store."""
    import multiprocessing as mp
    import threading

    parts = [(params[k::workers], metrics[k::workers]) for k in range(workers)]
    with fresh_dir(f"w1-wb-{how}") as d:
        ws = new_workspace(d / "wb.duckdb")
        try:
            ws._experiment_id("w1", create=True)  # made once, as MLflow's create_experiment
            if how == "threads":
                jobs = [threading.Thread(target=wb_log, args=(ws, p, m)) for p, m in parts]
            else:
                jobs = [mp.get_context("fork").Process(target=wb_log, args=(ws, p, m)) for p, m in parts]
            t0 = time.perf_counter()
            for j in jobs:
                j.start()
            for j in jobs:
                j.join()
            ws.flush()
            secs = time.perf_counter() - t0
            if how == "processes":
                assert all(j.exitcode == 0 for j in jobs), [j.exitcode for j in jobs]
            assert ws.counts()["runs"] == len(params)
            assert ws.store.scalar("select count(*) from metrics") == len(params) * N_STEPS * N_METRICS
        finally:
            ws.close()
            ws.store.close()
    return secs


def wb_rep(params, metrics) -> float:
    with fresh_dir("w1-wb") as d:
        ws = new_workspace(d / "wb.duckdb")
        try:
            secs, _ = timed(lambda: wb_log(ws, params, metrics))
            n_runs = ws.counts()["runs"]
            n_points = ws.store.scalar("select count(*) from metrics")
            assert n_runs == len(params), n_runs
            assert n_points == len(params) * N_STEPS * N_METRICS, n_points
        finally:
            ws.close()
            ws.store.close()
    return secs


# -- MLflow ---------------------------------------------------------------------------------
def ml_log(client, folder: Path, params, metrics, experiment: str = "w1") -> None:

    exp_id = client.create_experiment(experiment, artifact_location=str(folder / "artifacts"))
    ml_log_runs(client, exp_id, params, metrics)


def ml_log_runs(client, exp_id: str, params, metrics) -> None:
    """MLflow's side of a run, the same for W1 and W14: create, ``log_batch`` (params and at most
    1,000 metrics a call), ``set_terminated``."""
    from mlflow.entities import Metric, Param

    for p, steps in zip(params, metrics):
        run_id = client.create_run(exp_id).info.run_id
        ts = int(time.time() * 1000)
        ms = [Metric(k, v, ts, s) for s, vals in enumerate(steps) for k, v in zip(METRIC_KEYS, vals)]
        ps = [Param(k, v) for k, v in p.items()]
        for i in range(0, len(ms), 1000):
            client.log_batch(run_id, metrics=ms[i:i + 1000], params=ps if i == 0 else [])
        client.set_terminated(run_id)


def ml_rep(params, metrics) -> float:
    with fresh_dir("w1-mlflow") as d:
        client = new_mlflow_client(d)
        secs, _ = timed(lambda: ml_log(client, d, params, metrics))
        exp = client.get_experiment_by_name("w1")
        runs = client.search_runs([exp.experiment_id], max_results=50_000)
        assert len(runs) == len(params), len(runs)
        hist = client.get_metric_history(runs[0].info.run_id, "m0")
        assert len(hist) == N_STEPS, len(hist)
        close_mlflow(client)
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="timed MLflow repetitions (default 3)")
    ap.add_argument("--wb-reps", type=int, default=7, help="timed workbench repetitions (default 7)")
    ap.add_argument("--skip-mlflow", action="store_true", help="workbench only (no ratio; for quick iterations)")
    args = ap.parse_args()
    quiet_mlflow()

    params, metrics = make_data()
    n_points = N_RUNS * N_STEPS * N_METRICS
    banner(f"W1: {N_RUNS} runs x ({N_PARAMS} params, {N_METRICS} metrics x {N_STEPS} steps) = {n_points:,} points")

    log("warm-up (untimed): 5 runs into each tool ...")
    wp, wm = make_data(5, seed=99)
    wb_rep(wp, wm)
    if args.skip_mlflow:
        args.reps = 0
    else:
        ml_rep(wp, wm)

    wb_times, ml_times = [], []
    for i in range(max(args.reps, args.wb_reps)):  # interleaved, so drift hits both alike
        if i < args.wb_reps:
            wb_times.append(wb_rep(params, metrics))
            log(f"  rep {i + 1}: workbench {fmt_s(wb_times[-1])}")
        if i < args.reps:
            ml_times.append(ml_rep(params, metrics))
            log(f"  rep {i + 1}: mlflow    {fmt_s(ml_times[-1])}")

    conc = {"threads": [], "processes": []}
    for i in range(args.wb_reps):
        for how in conc:
            conc[how].append(wb_concurrent_rep(params, metrics, how))
        log(f"  rep {i + 1}: workbench 4 threads {fmt_s(conc['threads'][-1])}, 4 processes {fmt_s(conc['processes'][-1])}")

    wb_s = median(wb_times)
    if not ml_times:
        log(f"\nworkbench: median {fmt_s(wb_s)}, {N_RUNS / wb_s:,.1f} runs/s, {n_points / wb_s:,.0f} points/s "
            f"({len(wb_times)} reps; {n_points / wb_s / DOC_MLFLOW_POINTS_PER_S:.1f}x BENCHMARKS.md's MLflow figure)")
        return  # no side-by-side figures: nothing written to results/
    ml_s = median(ml_times)
    res = {
        "workload": "W1",
        "n_runs": N_RUNS, "n_points": n_points,
        "workbench": {"seconds": wb_times, "median_s": wb_s, "runs_per_s": N_RUNS / wb_s, "points_per_s": n_points / wb_s},
        "mlflow": {"seconds": ml_times, "median_s": ml_s, "runs_per_s": N_RUNS / ml_s, "points_per_s": n_points / ml_s},
        "ratio_points_per_s": ml_s / wb_s,
        "bar": BAR,
    }
    for how, times in conc.items():
        res[f"workbench_4_{how}"] = {"seconds": times, "median_s": median(times), "points_per_s": n_points / median(times),
                                    "ratio_vs_mlflow": ml_s / median(times)}
    res["meets_bar"] = res["ratio_points_per_s"] >= BAR
    res["ratio_vs_doc_anchor"] = res["workbench"]["points_per_s"] / DOC_MLFLOW_POINTS_PER_S
    log("")
    log(f"{'':10} {'median':>10} {'runs/s':>10} {'points/s':>12}   (reps)")
    for name in ("workbench", "mlflow"):
        r = res[name]
        log(f"{name:10} {fmt_s(r['median_s']):>10} {r['runs_per_s']:>10,.1f} {r['points_per_s']:>12,.0f}   ({len(r['seconds'])})")
    for how in conc:
        r = res[f"workbench_4_{how}"]
        log(f"{'4 ' + how:10} {fmt_s(r['median_s']):>10} {N_RUNS / r['median_s']:>10,.1f} {r['points_per_s']:>12,.0f}   "
            f"({len(r['seconds'])}; {r['ratio_vs_mlflow']:.1f}x MLflow's sequential median)")
    log(f"ratio workbench/MLflow points/s: {res['ratio_points_per_s']:.1f}x  (bar {BAR:.0f}x: "
        f"{'met' if res['meets_bar'] else 'MISSED'})")
    log(f"(against BENCHMARKS.md's MLflow figure, {DOC_MLFLOW_POINTS_PER_S:,} points/s: {res['ratio_vs_doc_anchor']:.1f}x)")
    log(f"results: {write_results('w1_logging', res)}")


if __name__ == "__main__":
    main()
