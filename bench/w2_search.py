"""W2: log 5,000 runs (10 params, 10 metrics at step 0) and search them; then 100k runs.

Part 1, side by side: the same 5,000 runs are logged into workbench and into its anchor,
MLflow on a sqlite store (``MlflowClient.log_batch``, one call per run), then
``search_runs("metrics.m0 > 0.5 and params.p0 = 'rf'")`` is timed in both. Both must return
the same runs (checked by run name). MLflow's logging takes about two minutes, so it is
done once; workbench's logging is repeated; each search is repeated (median).

Part 2, workbench only: a store of 100,000 runs of the same shape, searched with the same
filter and three others (OR with parentheses, min()/max(), LIKE). The 100k store is built
through the public API once and cached in bench/results/ under a key naming the workbench,
schema, DuckDB and data versions; ``--rebuild`` builds it again.

Search timings: the headline median is of searches run back to back on an unchanged store
("repeat"). Two more figures show costs a user also meets: "after write" is a search right
after one more run was logged (one probe run, no params or metrics, so it matches no
filter), and "after idle" a search after the store's connection lease has lapsed (idle >
0.3 s), which reopens the file. MLflow gets the same probe runs. "first" is the first
search after the bulk logging.

Run by hand:  python bench/w2_search.py [--search-reps 9] [--big-reps 11] [--skip-mlflow] [--rebuild]
Bars: search at least 10x faster than MLflow on 5k runs; median under 100 ms on 100k runs.
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
    RESULTS_DIR,
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

N_RUNS, N_BIG, N_PARAMS, N_METRICS = 5_000, 100_000, 10, 10
FILTER = "metrics.m0 > 0.5 and params.p0 = 'rf'"
BIG_FILTERS = {
    "and (the W2 filter)": FILTER,
    "or + parentheses": "(params.p0 = 'rf' or params.p0 = 'gbm') and (metrics.m1 < 0.2 or metrics.m2 > 0.9)",
    "min()/max()": "max(metrics.m3) > 0.9 and min(metrics.m4) < 0.5",
    "like": "params.p3 like 'value-1%' and metrics.m5 > 0.5",
}
SEARCH_BAR, BIG_BAR_S = 10.0, 0.100
DOC_MLFLOW_SEARCH_S, DOC_MLFLOW_LOG_RUNS_PER_S = 0.76, 38  # BENCHMARKS.md's anchor figures for W2
PROBE_EXPERIMENT = "w2-probe"
DATA_VERSION = 1  # bump when make_data changes: the cached 100k store is then rebuilt
METRIC_KEYS = [f"m{i}" for i in range(N_METRICS)]


def make_data(n_runs: int, seed: int = 2):
    """Rows of (name, params: {p0..p9: str}, metrics: {m0..m9: float in [0, 1)})."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_runs):
        p = {"p0": rng.choice(PARAM_CHOICES), "p1": str(rng.randrange(50, 500)),
             "p2": f"{rng.uniform(1e-4, 1e-1):.5g}"}
        p.update({f"p{j}": f"value-{rng.randrange(1000)}" for j in range(3, N_PARAMS)})
        rows.append((f"run-{i:06d}", p, {k: rng.random() for k in METRIC_KEYS}))
    return rows


# -- workbench ------------------------------------------------------------------------------
def wb_log(ws, rows, experiment: str = "w2", progress: int = 0) -> None:
    t0 = time.perf_counter()
    for i, (name, p, m) in enumerate(rows, 1):
        with ws.start_run(experiment, name=name) as run:
            run.log_params(p)
            run.log_metrics(m, step=0)
        if progress and i % progress == 0:
            ws.flush()
            el = time.perf_counter() - t0
            log(f"    {i:>7,} runs  {el:6.1f} s  ({i / el:,.0f} runs/s)")
    ws.flush()


def wb_search(ws, flt: str):
    return ws.search_runs(flt)


# -- MLflow ---------------------------------------------------------------------------------
def ml_log(client, folder: Path, rows, experiment: str = "w2") -> str:
    from mlflow.entities import Metric, Param

    exp_id = client.create_experiment(experiment, artifact_location=str(folder / "artifacts"))
    for name, p, m in rows:
        run_id = client.create_run(exp_id, run_name=name).info.run_id
        ts = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, ts, 0) for k, v in m.items()],
                         params=[Param(k, v) for k, v in p.items()])
        client.set_terminated(run_id)
    return exp_id


def ml_search(client, exp_id: str, flt: str) -> list:
    """All matching runs, following page tokens (MLflow returns at most 50,000 per call)."""
    out, token = [], None
    while True:
        page = client.search_runs([exp_id], flt, max_results=50_000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def wb_probe(ws, i: int) -> None:
    with ws.start_run(PROBE_EXPERIMENT, name=f"probe-{i}") as run:
        run.set_tags({"probe": str(i)})
    ws.flush()


def ml_probe(client, exp_id: str, i: int) -> None:
    run_id = client.create_run(exp_id, run_name=f"probe-{i}", tags={"probe": str(i)}).info.run_id
    client.set_terminated(run_id)


def after_write_searches(write, search, reps: int) -> list[float]:
    """Each: log one probe run (untimed), then time one search."""
    times = []
    for i in range(reps):
        write(i)
        times.append(timed(search)[0])
    return times


def time_searches(fn, reps: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(reps):
        secs, out = timed(fn)
        times.append(secs)
    return times, out


def idle_searches(ws, flt: str, reps: int, idle: float) -> list[float]:
    """Searches each after ``idle`` seconds, long enough for the connection lease to lapse."""
    times = []
    for _ in range(reps):
        time.sleep(idle)
        times.append(timed(lambda: ws.search_runs(flt))[0])
    return times


# -- part 1 ---------------------------------------------------------------------------------
def part_5k(args) -> dict:
    rows = make_data(N_RUNS)
    banner(f"W2 part 1: {N_RUNS:,} runs x ({N_PARAMS} params, {N_METRICS} metrics), filter: {FILTER}")

    log("warm-up (untimed): 20 runs and one search in each tool ...")
    warm = make_data(20, seed=99)
    with fresh_dir("w2-warm") as d:
        ws = new_workspace(d / "wb.duckdb")
        wb_log(ws, warm)
        wb_search(ws, FILTER)
        ws.close()
        ws.store.close()
        if not args.skip_mlflow:
            c = new_mlflow_client(d)
            e = ml_log(c, d, warm)
            ml_search(c, e, FILTER)
            close_mlflow(c)

    res: dict = {"n_runs": N_RUNS, "filter": FILTER}
    with fresh_dir("w2") as root:
        # workbench: logging repeated, each into a fresh store; the last one is searched
        wb_log_times, ws = [], None
        for i in range(args.wb_log_reps):
            if ws is not None:
                ws.close()
                ws.store.close()
            ws = new_workspace(root / f"wb{i}.duckdb")
            secs, _ = timed(lambda: wb_log(ws, rows))
            wb_log_times.append(secs)
            log(f"  workbench logging rep {i + 1}: {fmt_s(secs)} ({N_RUNS / secs:,.0f} runs/s)")
        assert ws.counts()["runs"] == N_RUNS
        wb_first, wb_df = timed(lambda: wb_search(ws, FILTER))
        wb_times, wb_df = time_searches(lambda: wb_search(ws, FILTER), args.search_reps)
        wb_idle = idle_searches(ws, FILTER, 5, ws.store.lease_seconds + 0.3)
        wb_after = after_write_searches(lambda i: wb_probe(ws, i), lambda: wb_search(ws, FILTER), args.write_reps)
        log(f"  workbench search: first {fmt_s(wb_first)}, repeat median {fmt_s(median(wb_times))} over {len(wb_times)}, "
            f"after write {fmt_s(median(wb_after))}, after idle {fmt_s(median(wb_idle))}; {wb_df.height} runs")
        res["workbench"] = {
            "log_seconds": wb_log_times, "log_median_s": median(wb_log_times),
            "log_runs_per_s": N_RUNS / median(wb_log_times),
            "search_first_s": wb_first, "search_seconds": wb_times, "search_median_s": median(wb_times),
            "search_after_idle_seconds": wb_idle, "search_after_idle_median_s": median(wb_idle),
            "search_after_write_seconds": wb_after, "search_after_write_median_s": median(wb_after),
            "n_matched": wb_df.height,
        }
        wb_names = sorted(wb_df["run_name"].to_list())
        ws.close()
        ws.store.close()

        if args.skip_mlflow:
            return res
        # MLflow: logging once (about two minutes here), searches repeated
        log(f"  mlflow logging {N_RUNS:,} runs (one repetition, takes a couple of minutes) ...")
        client = new_mlflow_client(root)
        ml_log_s, exp_id = timed(lambda: ml_log(client, root, rows))
        log(f"  mlflow logging: {fmt_s(ml_log_s)} ({N_RUNS / ml_log_s:,.1f} runs/s)")
        ml_first, ml_runs = timed(lambda: ml_search(client, exp_id, FILTER))
        ml_times, ml_runs = time_searches(lambda: ml_search(client, exp_id, FILTER), args.search_reps)
        probe_exp = client.create_experiment(PROBE_EXPERIMENT, artifact_location=str(root / "artifacts"))
        ml_after = after_write_searches(lambda i: ml_probe(client, probe_exp, i),
                                        lambda: ml_search(client, exp_id, FILTER), args.write_reps)
        log(f"  mlflow search: first {fmt_s(ml_first)}, repeat median {fmt_s(median(ml_times))} over {len(ml_times)}, "
            f"after write {fmt_s(median(ml_after))}; {len(ml_runs)} runs")
        ml_names = sorted(r.info.run_name for r in ml_runs)
        close_mlflow(client)

    expected = sum(1 for _, p, m in rows if m["m0"] > 0.5 and p["p0"] == "rf")
    log(f"  matched runs: workbench {len(wb_names)}, mlflow {len(ml_names)}, expected {expected}")
    assert len(wb_names) == len(ml_names) == expected, (len(wb_names), len(ml_names), expected)
    assert wb_names == ml_names, "workbench and MLflow returned different runs"
    res["mlflow"] = {
        "log_seconds": [ml_log_s], "log_median_s": ml_log_s, "log_runs_per_s": N_RUNS / ml_log_s,
        "search_first_s": ml_first, "search_seconds": ml_times, "search_median_s": median(ml_times),
        "search_after_write_seconds": ml_after, "search_after_write_median_s": median(ml_after),
        "n_matched": len(ml_runs),
    }
    res["ratio_search"] = res["mlflow"]["search_median_s"] / res["workbench"]["search_median_s"]
    res["ratio_search_after_idle"] = res["mlflow"]["search_median_s"] / res["workbench"]["search_after_idle_median_s"]
    res["ratio_search_after_write"] = (res["mlflow"]["search_after_write_median_s"]
                                       / res["workbench"]["search_after_write_median_s"])
    res["ratio_search_first"] = res["mlflow"]["search_first_s"] / res["workbench"]["search_first_s"]
    res["ratio_logging"] = res["mlflow"]["log_median_s"] / res["workbench"]["log_median_s"]
    res["search_bar"] = SEARCH_BAR
    res["meets_search_bar"] = res["ratio_search"] >= SEARCH_BAR
    return res


# -- part 2 ---------------------------------------------------------------------------------
def big_store_path() -> Path:
    import duckdb

    import workbench
    from workbench.store import schema

    key = f"wb{workbench.__version__}-s{schema.SCHEMA_VERSION}-duckdb{duckdb.__version__}-d{DATA_VERSION}"
    return RESULTS_DIR / f"w2_store_{N_BIG // 1000}k_{key}.duckdb"


def open_big_store(rebuild: bool):
    import workbench as wb

    path = big_store_path()
    if path.exists() and not rebuild:
        ws = wb.connect(path, user="bench")
        exps = ws.experiments()
        n = int(exps.filter(exps["name"] == "w2")["n_runs"].sum())  # probe runs live elsewhere
        if n == N_BIG:
            log(f"  reusing cached store {path} ({n:,} runs)")
            return ws, None
        log(f"  cached store has {n:,} runs, not {N_BIG:,}: rebuilding")
        ws.close()
        ws.store.close()
    for p in (path, path.with_suffix(".duckdb.wal")):
        p.unlink(missing_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log(f"  building {path} through the API ({N_BIG:,} runs; a minute or two) ...")
    rows = make_data(N_BIG, seed=3)
    ws = new_workspace(path)
    secs, _ = timed(lambda: _log_in_threads(ws, rows))
    log(f"  built in {fmt_s(secs)} ({N_BIG / secs:,.0f} runs/s)")
    return ws, secs


def _log_in_threads(ws, rows, threads: int = 8) -> None:
    """``wb_log`` from several threads at once: every run's end waits for its commit, and
    concurrent ends share commits, so the build is not one commit per run."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(wb_log, ws, rows[k::threads], progress=10_000 if k == 0 else 0) for k in range(threads)]:
            f.result()
    ws.flush()


def part_100k(args) -> dict:
    log("")
    log(f"W2 part 2 (workbench only): {N_BIG:,} runs, {args.big_reps} searches per filter")
    ws, build_s = open_big_store(args.rebuild)
    out: dict = {"n_runs": N_BIG, "store": str(big_store_path()), "build_s": build_s, "filters": {}}
    try:
        for label, flt in BIG_FILTERS.items():
            first, df = timed(lambda: ws.search_runs(flt))
            times, df = time_searches(lambda: ws.search_runs(flt), args.big_reps)
            out["filters"][label] = {"filter": flt, "first_s": first, "seconds": times,
                                     "median_s": median(times), "n_matched": df.height}
            log(f"  {label:22} median {fmt_s(median(times)):>9}  (first {fmt_s(first)}, "
                f"{df.height:,} runs x {df.width} cols)  {flt}")
        idle = idle_searches(ws, FILTER, 5, ws.store.lease_seconds + 0.3)
        out["after_idle_seconds"] = idle
        out["after_idle_median_s"] = median(idle)
        log(f"  W2 filter after idle (connection reopened): median {fmt_s(median(idle))}")
        after = after_write_searches(lambda i: wb_probe(ws, i), lambda: ws.search_runs(FILTER), args.write_reps)
        out["after_write_seconds"] = after
        out["after_write_median_s"] = median(after)
        log(f"  W2 filter right after logging one run: median {fmt_s(median(after))} over {len(after)}")
    finally:
        ws.close()
        ws.store.close()
    main_median = out["filters"]["and (the W2 filter)"]["median_s"]
    out["bar_s"] = BIG_BAR_S
    out["meets_bar"] = main_median < BIG_BAR_S
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--search-reps", type=int, default=9, help="timed searches per tool on 5k runs (default 9)")
    ap.add_argument("--wb-log-reps", type=int, default=3, help="workbench logging repetitions on 5k runs (default 3)")
    ap.add_argument("--big-reps", type=int, default=11, help="timed searches per filter on 100k runs (default 11)")
    ap.add_argument("--write-reps", type=int, default=5, help="'search after a write' repetitions (default 5)")
    ap.add_argument("--skip-mlflow", action="store_true", help="workbench only (no side-by-side figures)")
    ap.add_argument("--skip-big", action="store_true", help="skip the 100k-run part")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached 100k-run store")
    args = ap.parse_args()
    quiet_mlflow()

    res = {"workload": "W2", "part_5k": part_5k(args)}
    if not args.skip_big:
        res["part_100k"] = part_100k(args)

    p1 = res["part_5k"]
    log("")
    log(f"{N_RUNS:,} runs        {'log median':>11} {'runs/s':>9} {'search median':>14}")
    for name in ("workbench", "mlflow"):
        if name in p1:
            r = p1[name]
            log(f"{name:18} {fmt_s(r['log_median_s']):>11} {r['log_runs_per_s']:>9,.1f} {fmt_s(r['search_median_s']):>14}")
    if "ratio_search" in p1:
        log(f"ratio MLflow/workbench: search {p1['ratio_search']:.1f}x (bar {SEARCH_BAR:.0f}x: "
            f"{'met' if p1['meets_search_bar'] else 'MISSED'}; after idle {p1['ratio_search_after_idle']:.1f}x), "
            f"logging {p1['ratio_logging']:.1f}x")
        log(f"  after a write: workbench {fmt_s(p1['workbench']['search_after_write_median_s'])}, MLflow "
            f"{fmt_s(p1['mlflow']['search_after_write_median_s'])}: {p1['ratio_search_after_write']:.1f}x; "
            f"first search: {p1['ratio_search_first']:.1f}x")
    if "workbench" in p1:
        w = p1["workbench"]
        log(f"(against BENCHMARKS.md's MLflow figures, search {DOC_MLFLOW_SEARCH_S} s and {DOC_MLFLOW_LOG_RUNS_PER_S} runs/s: "
            f"search {DOC_MLFLOW_SEARCH_S / w['search_median_s']:.0f}x repeat, "
            f"{DOC_MLFLOW_SEARCH_S / w['search_after_write_median_s']:.1f}x after a write; "
            f"logging {w['log_runs_per_s'] / DOC_MLFLOW_LOG_RUNS_PER_S:.0f}x)")
    if "part_100k" in res:
        p2 = res["part_100k"]
        m = p2["filters"]["and (the W2 filter)"]["median_s"]
        log(f"{N_BIG:,} runs: W2 filter median {fmt_s(m)} (bar < {BIG_BAR_S * 1000:.0f} ms: "
            f"{'met' if p2['meets_bar'] else 'MISSED'}); right after a write {fmt_s(p2['after_write_median_s'])}, "
            f"after idle {fmt_s(p2['after_idle_median_s'])}")
        for label, f in p2["filters"].items():
            log(f"  {label:22} {fmt_s(f['median_s']):>9}  ({f['n_matched']:,} runs)")
    log(f"results: {write_results('w2_search', res)}")


if __name__ == "__main__":
    main()
