"""A team on one store: 16 writer processes and 4 dashboard readers at once, PostgreSQL vs DuckDB.

The issue's load test: 16 concurrent writer processes log runs, params, metrics and tags
(each write with its audit events) while 4 reader processes render what the dashboard
pages query, for a fixed count of operations. Afterwards: no write lost, no duplicate,
the audit chain verifies; and the median, p95, p99 and max latency of every operation.
The same load runs on a throwaway PostgreSQL cluster (loopback only, started with
``.ci/start_pg.sh`` and removed afterwards), on a DuckDB file, whose writers take the
file one process at a time, and through ``workbench serve`` holding a DuckDB file (every
process a client with its own token; the server is the only one on the file).

Every process is a real one (multiprocessing "spawn"), with its own ``wb.connect``; all
connect first (not timed), then start together on one event.

- Writers (data scientists ``ds00``..): ``--runs`` runs each, every operation followed by
  a flush, so its latency is the time until it is committed: ``start_run`` (the run row),
  ``log_params`` (10 params), ``log_metrics`` (``--steps`` calls of 5 metrics, then the
  flush), ``set_tags`` (2 tags), ``end_run``. Five commits and five audit events a run.
- Readers (reviewers ``rv0``..): loop over five dashboard page views until the writers
  are done: ``home`` (counts, the 10 newest runs, models), ``experiments`` (a filtered
  search over all runs), ``compare`` (5 of the found runs: the comparison frame, best runs,
  params and metrics tables, downsampled curves, as pages/compare.py), ``models`` (models
  and versions) and ``audit`` (head, ``verify_audit`` as the page does when the head moved,
  the newest 500 events); ``--think`` seconds between page views.

    python bench/w12_team_load.py [--backend all|both|pg|duckdb|server] [--writers 16] [--readers 4]
                                  [--runs 20] [--steps 20] [--think 0.5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    PARAM_CHOICES,
    banner,
    fmt_s,
    log,
    median,
    workbench_server,
    write_results,
)

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = ["team-a", "team-b", "team-c", "team-d"]
N_PARAMS, N_KEYS, N_TAGS = 10, 5, 2
WRITE_OPS = ["start_run", "log_params", "log_metrics", "set_tags", "end_run"]
PAGES = ["home", "experiments", "compare", "models", "audit"]
FILTER = "metrics.m0 > 0.5 and params.p0 = 'rf'"
SEED_RUNS = 5  # per experiment, logged before the load (readers see runs from the start)


# -- the worker processes ------------------------------------------------------------------------
def _connect(store: str, user: str, lock_timeout: float, tokens: dict | None):
    """The worker's workspace: on the store itself, or through the server with the user's token."""
    import workbench as wb

    if tokens:
        return wb.connect(store, token=tokens[user])
    ws = wb.connect(store, user=user, lock_timeout=lock_timeout)
    ws.store.release()  # DuckDB: let the next process connect; PostgreSQL: back to the pool
    return ws


def _release(ws) -> None:
    """Let the file go between operations (a remote workspace holds nothing)."""
    if hasattr(ws, "store"):
        ws.store.release()


def _writer(store: str, user: str, index: int, runs: int, steps: int, lock_timeout: float,
            ready, go, out: str, tokens: dict | None = None) -> None:
    result = {"user": user, "lat": {op: [] for op in WRITE_OPS}, "run_ids": [], "points": 0,
              "value_sum": 0.0, "error": None}
    try:
        t = time.perf_counter()
        ws = _connect(store, user, lock_timeout, tokens)
        result["connect_s"] = time.perf_counter() - t
        rng = random.Random(1000 + index)
        # One untimed warm-up run (first-call imports and caches), stored and checked like the rest.
        with ws.start_run(EXPERIMENTS[index % len(EXPERIMENTS)], name=f"{user}-warmup") as run:
            run.log_params({f"p{i}": "warmup" for i in range(N_PARAMS)})
            for s in range(steps):
                vals = {f"m{k}": rng.random() for k in range(N_KEYS)}
                run.log_metrics(vals, step=s)
                result["value_sum"] += sum(vals.values())
            run.set_tags({"writer": user, "round": "warmup"})
        ws.flush()
        _release(ws)
        result["run_ids"].append(run.run_id)
        result["points"] += steps * N_KEYS
        ready.put(user)
        go.wait()
        t_begin = time.perf_counter()
        lat = result["lat"]
        for r in range(runs):
            exp = EXPERIMENTS[(index + r) % len(EXPERIMENTS)]
            t = time.perf_counter()
            run = ws.start_run(exp, name=f"{user}-r{r:03d}")
            run.flush()
            lat["start_run"].append(time.perf_counter() - t)

            params = {"p0": rng.choice(PARAM_CHOICES), **{f"p{i}": f"value-{rng.randrange(100)}" for i in range(1, N_PARAMS)}}
            t = time.perf_counter()
            run.log_params(params)
            run.flush()
            lat["log_params"].append(time.perf_counter() - t)

            t = time.perf_counter()
            for s in range(steps):
                vals = {f"m{k}": rng.random() for k in range(N_KEYS)}
                run.log_metrics(vals, step=s)
                result["value_sum"] += sum(vals.values())
            run.flush()
            lat["log_metrics"].append(time.perf_counter() - t)
            result["points"] += steps * N_KEYS

            t = time.perf_counter()
            run.set_tags({"writer": user, "round": str(r)})
            run.flush()
            lat["set_tags"].append(time.perf_counter() - t)

            t = time.perf_counter()
            run.end()
            ws.flush()
            lat["end_run"].append(time.perf_counter() - t)
            result["run_ids"].append(run.run_id)
        result["wall_s"] = time.perf_counter() - t_begin
        result["t_end"] = time.time()
        ws.close()
    except BaseException as exc:  # noqa: BLE001 - reported in the results, never swallowed
        result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.put(user)  # never leave the parent waiting for a process that failed early
    Path(out).write_text(json.dumps(result))


def _reader(store: str, user: str, index: int, think: float, lock_timeout: float, deadline: float,
            ready, go, writers_done, out: str, tokens: dict | None = None) -> None:
    result = {"user": user, "lat": {p: [] for p in PAGES}, "verify": [], "error": None}
    try:
        import polars as pl

        t = time.perf_counter()
        ws = _connect(store, user, lock_timeout, tokens)
        result["connect_s"] = time.perf_counter() - t
        found: list[str] = []

        def home():
            ws.counts()
            ws.search_runs(max_results=10)
            ws.models()

        def experiments():
            nonlocal found
            runs = ws.search_runs(FILTER)
            found = runs["run_id"].head(5).to_list() or ws.search_runs(max_results=5)["run_id"].to_list()

        def compare_page():
            ids = found or ws.search_runs(max_results=5)["run_id"].to_list()
            ws.comparison_frame(ids)
            ws.best_runs(ids)
            ws.params_table(ids)
            ws.metrics_table(ids)
            ws.metric_curves(ids)

        def models():
            ws.models()
            ws.model_versions().filter(pl.col("stage") == "Staging")

        def audit_page():
            head = ws.audit_head()
            check = ws.verify_audit()
            result["verify"].append({"ok": check.ok, "n": check.n_events, "head_seq_before": head["seq"],
                                     "reason": check.reason, "broken": check.first_broken_seq})
            ws.audit_events(limit=500)

        pages = dict(zip(PAGES, [home, experiments, compare_page, models, audit_page]))
        for fn in pages.values():  # one untimed warm-up of every page
            fn()
        result["verify"].clear()
        _release(ws)
        ready.put(user)
        go.wait()
        i = index  # readers start on different pages
        while not writers_done.is_set() and time.time() < deadline:
            name = PAGES[i % len(PAGES)]
            t = time.perf_counter()
            pages[name]()
            result["lat"][name].append(time.perf_counter() - t)
            i += 1
            if think:
                writers_done.wait(think)
        ws.close()
    except BaseException as exc:  # noqa: BLE001
        result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        ready.put(user)
    Path(out).write_text(json.dumps(result))


# -- setup, load, checks -----------------------------------------------------------------------
def setup_store(store: str, writers: int, readers: int, tokens: bool = False) -> dict:
    """Users, 4 experiments with a few seed runs, 3 registered models (not timed); with
    ``tokens``, a token for each writer and reader (to connect through a server)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import workbench as wb
    from workbench.workspace import operator_workspace

    op = operator_workspace(store)
    op.add_user("seed", "data_scientist")
    for w in range(writers):
        op.add_user(f"ds{w:02d}", "data_scientist")
    for r in range(readers):
        op.add_user(f"rv{r}", "reviewer")
    op.flush()
    seed = wb.connect(store, user="seed")
    rng = random.Random(7)
    for exp in EXPERIMENTS:
        for i in range(SEED_RUNS):
            with seed.start_run(exp, name=f"seed-{exp}-{i}") as run:
                run.log_params({"p0": rng.choice(PARAM_CHOICES), **{f"p{k}": "seed" for k in range(1, N_PARAMS)}})
                for s in range(5):
                    run.log_metrics({f"m{k}": rng.random() for k in range(N_KEYS)}, step=s)
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 2
    for m in range(3):
        with seed.start_run("models") as run:
            run.log_metrics({"auc": 0.7 + m / 100})
            mv = run.register_model(LogisticRegression().fit(X, y), f"model-{m}", risk_tier="low")
        seed.set_stage(mv.name, mv.version, "Staging")
    seed.flush()
    made = {}
    if tokens:
        for user in [f"ds{w:02d}" for w in range(writers)] + [f"rv{r}" for r in range(readers)]:
            made[user] = op.create_token("w12", user=user)["token"]
    head = op.audit_head()
    seed.store.release()
    return {"audit_seq_before": int(head["seq"]), "tokens": made}


def run_load(store: str, args, deadline: float, work: Path, tokens: dict | None = None) -> dict:
    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Queue(), ctx.Event(), ctx.Event()
    procs, outs = [], []
    for w in range(args.writers):
        out = work / f"writer-{w}.json"
        outs.append(out)
        procs.append(ctx.Process(target=_writer, name=f"w12-writer-{w}", args=(
            store, f"ds{w:02d}", w, args.runs, args.steps, args.lock_timeout, ready, go, str(out), tokens)))
    readers = []
    for r in range(args.readers):
        out = work / f"reader-{r}.json"
        outs.append(out)
        readers.append(ctx.Process(target=_reader, name=f"w12-reader-{r}", args=(
            store, f"rv{r}", r, args.think, args.lock_timeout, deadline, ready, go, done, str(out), tokens)))
    t = time.perf_counter()
    for p in procs + readers:
        p.start()
    for _ in procs + readers:
        ready.get(timeout=max(deadline - time.time(), 1))
    connect_all = time.perf_counter() - t
    log(f"  {len(procs)} writers and {len(readers)} readers connected in {connect_all:.1f} s (not timed); go")
    t0 = time.perf_counter()
    go.set()
    timed_out = False
    for p in procs:
        p.join(timeout=max(deadline - time.time(), 0.1))
        if p.is_alive():
            timed_out = True
    writers_wall = time.perf_counter() - t0
    done.set()
    for p in procs + readers:
        p.join(timeout=60)
        if p.is_alive():  # past the deadline: stop the processes this script started
            timed_out = True
            p.terminate()
            p.join(10)
    results = [json.loads(o.read_text()) if o.exists() else {"error": "no result file (killed?)"} for o in outs]
    return {"writers": results[:args.writers], "readers": results[args.writers:], "writers_wall_s": writers_wall,
            "connect_all_s": connect_all, "timed_out": timed_out}


def check_store(store: str, args, before_seq: int, writer_results: list[dict]) -> dict:
    """Everything issued is stored exactly once, and the chain verifies."""
    from workbench.workspace import operator_workspace

    op = operator_workspace(store)
    read = op.store.read
    users = [f"ds{w:02d}" for w in range(args.writers)]
    expected_runs = args.writers * (args.runs + 1)  # + each writer's warm-up run
    expected_points = expected_runs * args.steps * N_KEYS
    issued_ids = {rid for r in writer_results for rid in r.get("run_ids", [])}
    mine = "(select run_id from runs where user_name in (select unnest(?::varchar[])))"
    runs = read("select run_id, status, end_time from runs where user_name in (select unnest(?::varchar[]))", [users])
    stored_ids = set(runs["run_id"].to_list())
    one = lambda sql: read(sql, [users]).row(0)  # noqa: E731
    n_params, n_dist_params = one(f"select count(*) as n, count(distinct (run_id, key)) as d from params where run_id in {mine}")
    n_tags, n_dist_tags = one(f"select count(*) as n, count(distinct (run_id, key)) as d from tags where run_id in {mine}")
    n_points, n_dist_points, value_sum = one(
        f"select count(*) as n, count(distinct (run_id, key, step)) as d, sum(value) as s from metrics where run_id in {mine}")
    n_latest, latest_n = one(f"select count(*) as n, sum(n) as s from latest_metrics where run_id in {mine}")
    events = read("select action, count(*) as n, count(distinct entity_id) as runs from audit_events "
                  "where seq > ? group by action order by action", [before_seq])
    by_action = {a: (int(n), int(k)) for a, n, k in events.iter_rows()}
    metric_payloads = read("select payload from audit_events where seq > ? and action = 'run.log_metrics'", [before_seq])
    points_in_events = sum(json.loads(p)["points"] for p in metric_payloads["payload"].to_list())
    n_events_total, max_seq = read("select count(*) as n, max(seq) as m from audit_events").row(0)
    issued_sum = sum(r.get("value_sum", 0.0) for r in writer_results)
    t = time.perf_counter()
    check = op.verify_audit()
    verify_s = time.perf_counter() - t
    op.store.release()
    checks = {
        "runs: every issued run stored, none extra": issued_ids == stored_ids and len(stored_ids) == expected_runs,
        "runs: all FINISHED with an end time": runs.height == expected_runs
        and runs.filter((runs["status"] != "FINISHED") | runs["end_time"].is_null()).height == 0,
        "params: count = issued, no duplicate": n_params == n_dist_params == expected_runs * N_PARAMS,
        "tags: count = issued, no duplicate": n_tags == n_dist_tags == expected_runs * N_TAGS,
        "metric points: count = issued, no duplicate (run, key, step)": n_points == n_dist_points == expected_points,
        "metric values: sum = sum issued": value_sum is not None and abs(value_sum - issued_sum) <= 1e-9 * max(1.0, abs(issued_sum)),
        "latest metrics: one row per (run, key), counts add up": n_latest == expected_runs * N_KEYS and latest_n == expected_points,
        "audit: one start, params, tags, end event per run": all(
            by_action.get(a) == (expected_runs, expected_runs) for a in ("run.start", "run.log_params", "run.set_tags", "run.end")),
        "audit: metric events cover every run and every point": by_action.get("run.log_metrics", (0, 0))[1] == expected_runs
        and points_in_events == expected_points,
        # through a server, a token's first use in an hour is audited too
        "audit: no other event during the load": set(by_action) <= {"run.start", "run.log_params", "run.log_metrics",
                                                                  "run.set_tags", "run.end", "token.use"},
        "audit: seqs contiguous (count = max seq)": n_events_total == max_seq,
        "audit: chain verifies": check.ok and check.n_events == n_events_total,
    }
    return {"checks": checks, "all_ok": all(checks.values()),
            "counts": {"runs": len(stored_ids), "params": int(n_params), "tags": int(n_tags), "points": int(n_points),
                       "latest_rows": int(n_latest), "audit_events_total": int(n_events_total),
                       "audit_events_during_load": {a: n for a, (n, _) in by_action.items()},
                       "points_in_metric_events": points_in_events},
            "expected": {"runs": expected_runs, "params": expected_runs * N_PARAMS, "tags": expected_runs * N_TAGS,
                         "points": expected_points},
            "verify": {"ok": check.ok, "n_events": check.n_events, "reason": check.reason, "seconds": verify_s}}


def pct(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(xs, q)) if xs else float("nan")


def summarise(lat_lists: list[dict], ops: list[str]) -> dict:
    out = {}
    for op in ops:
        xs = [x for d in lat_lists for x in d.get(op, [])]
        out[op] = {"n": len(xs), "median_s": median(xs) if xs else float("nan"), "p95_s": pct(xs, 95),
                   "p99_s": pct(xs, 99), "max_s": max(xs) if xs else float("nan")}
    return out


def one_backend(backend: str, args) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"wbbench-w12-{backend}-", dir="/tmp"))
    pg_dir = None
    deadline = time.time() + args.max_seconds
    saved_artifacts = os.environ.get("WORKBENCH_ARTIFACTS")
    try:
        if backend == "pg":
            pg_dir = Path(tempfile.mkdtemp(prefix="wbbench-w12-pg-", dir="/tmp"))
            pg_dir.chmod(0o755)
            with socket.socket() as s:  # a free loopback port
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            t = time.perf_counter()
            out = subprocess.run([str(REPO / ".ci/start_pg.sh"), str(pg_dir / "cluster"), str(port)],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"start_pg.sh failed: {out.stderr.strip()}")
            store = out.stdout.strip().splitlines()[-1]
            log(f"  PostgreSQL on 127.0.0.1:{port} in {time.perf_counter() - t:.1f} s ({pg_dir}/cluster)")
            os.environ["WORKBENCH_ARTIFACTS"] = str(work / "artifacts")  # children inherit it
        else:
            os.environ.pop("WORKBENCH_ARTIFACTS", None)
            store = str(work / "store.duckdb")
        t = time.perf_counter()
        info = setup_store(store, args.writers, args.readers, tokens=backend == "server")
        log(f"  store ready: users, {len(EXPERIMENTS) * SEED_RUNS} seed runs, 3 models in {fmt_s(time.perf_counter() - t)} "
            f"(not timed)")
        if backend == "server":
            load = _load_through_a_server(store, args, deadline, work, info["tokens"])
        else:
            load = run_load(store, args, deadline, work)
        errors = [r["error"] for r in load["writers"] + load["readers"] if r.get("error")]
        for e in errors[:3]:
            log(f"  ERROR in a worker: {e.strip().splitlines()[0]}")
        t = time.perf_counter()
        checks = check_store(store, args, info["audit_seq_before"], load["writers"])
        log(f"  integrity checks in {fmt_s(time.perf_counter() - t)}")
        w_lat = [r["lat"] for r in load["writers"] if "lat" in r]
        r_lat = [r["lat"] for r in load["readers"] if "lat" in r]
        verifies = [v for r in load["readers"] for v in r.get("verify", [])]
        write_ops = sum(len(x) for d in w_lat for x in d.values())
        page_views = sum(len(x) for d in r_lat for x in d.values())
        wall = load["writers_wall_s"]
        return {
            "backend": backend, "store": {"pg": store.split("@")[-1], "server": "workbench serve on a duckdb file"}.get(
                backend, "duckdb file"),
            "write_ops": summarise(w_lat, WRITE_OPS), "pages": summarise(r_lat, PAGES),
            "writers_wall_s": wall, "write_ops_total": write_ops, "write_ops_per_s": write_ops / wall,
            "points_per_s": args.writers * args.runs * args.steps * N_KEYS / wall,
            "runs_per_s": args.writers * args.runs / wall,
            "page_views": page_views, "page_views_per_s": page_views / wall,
            "writer_wall_s": sorted(r.get("wall_s", float("nan")) for r in load["writers"]),
            "connect_all_s": load["connect_all_s"], "timed_out": load["timed_out"], "worker_errors": errors,
            "reader_verifies": {"n": len(verifies), "failed": [v for v in verifies if not v["ok"]][:10],
                                "n_failed": sum(not v["ok"] for v in verifies)},
            **checks,
            "raw_ms": {"writers": {op: [round(x * 1000, 2) for d in w_lat for x in d[op]] for op in WRITE_OPS},
                       "readers": {p: [round(x * 1000, 2) for d in r_lat for x in d[p]] for p in PAGES}},
        }
    finally:
        if saved_artifacts is None:
            os.environ.pop("WORKBENCH_ARTIFACTS", None)
        else:
            os.environ["WORKBENCH_ARTIFACTS"] = saved_artifacts
        if pg_dir is not None:
            _close_stores()
            subprocess.run([str(REPO / ".ci/stop_pg.sh"), str(pg_dir / "cluster"), "--rm"], capture_output=True, timeout=120)
            shutil.rmtree(pg_dir, ignore_errors=True)
        else:
            _close_stores()
        shutil.rmtree(work, ignore_errors=True)


def _load_through_a_server(store: str, args, deadline: float, work: Path, tokens: dict) -> dict:
    """The load with every worker connected through `workbench serve` on the DuckDB file, each
    user with a token of their own; the server is stopped (cleanly) before the checks."""
    _close_stores()
    with workbench_server(store, work / "serve.log") as url:
        log(f"  serving {store} at {url}")
        return run_load(url, args, deadline, work, tokens)


def _close_stores() -> None:
    """Close this process's connections (a PostgreSQL cluster must be stoppable, a folder removable)."""
    from workbench.store import shared

    try:
        shared.close_all()
    except Exception:  # noqa: BLE001 - tidiness only
        pass


def print_table(res: dict[str, dict]) -> None:
    backends = list(res)
    head = f"{'operation':<14}" + "".join(f"| {b + ' median':>13} {b + ' p95':>11} {b + ' p99':>11} {b + ' max':>11} {'n':>5} "
                                          for b in backends)
    ratio = {"pg", "duckdb"} <= set(backends)
    if ratio:
        head += "| p95 pg/duckdb"
    print(head)
    print("-" * len(head))
    for group, ops in (("write_ops", WRITE_OPS), ("pages", PAGES)):
        for op in ops:
            line = f"{op:<14}"
            for b in backends:
                s = res[b][group][op]
                line += (f"| {s['median_s'] * 1000:>11.1f}ms {s['p95_s'] * 1000:>9.1f}ms {s['p99_s'] * 1000:>9.1f}ms "
                         f"{s['max_s'] * 1000:>9.0f}ms {s['n']:>5} ")
            if ratio:
                a, b = res["pg"][group][op]["p95_s"], res["duckdb"][group][op]["p95_s"]
                line += f"| {a / b:>9.3g}x" if b and b == b else ""
            print(line)
        print("-" * len(head))
    for b in backends:
        r = res[b]
        print(f"{b}: writers' wall {r['writers_wall_s']:.1f} s; {r['write_ops_per_s']:.1f} write ops/s, "
              f"{r['runs_per_s']:.2f} runs/s, {r['points_per_s']:,.0f} points/s; {r['page_views']} page views "
              f"({r['page_views_per_s']:.1f}/s); one writer's own wall {r['writer_wall_s'][0]:.1f}-{r['writer_wall_s'][-1]:.1f} s; "
              f"integrity {'ALL OK' if r['all_ok'] else 'FAILED'}; reader verifies {r['reader_verifies']['n']} "
              f"({r['reader_verifies']['n_failed']} failed)")
        for name, ok in r["checks"].items():
            if not ok:
                print(f"   FAILED: {name}")
        for v in r["reader_verifies"]["failed"][:3]:
            print(f"   a reader's verify failed: event {v['broken']}: {v['reason']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["all", "both", "pg", "duckdb", "server"], default="all",
                    help="all: pg, duckdb and server; both: pg and duckdb")
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--runs", type=int, default=20, help="runs per writer")
    ap.add_argument("--steps", type=int, default=20, help="log_metrics calls (of 5 metrics) per run")
    ap.add_argument("--think", type=float, default=0.5, help="seconds a reader waits between page views")
    ap.add_argument("--lock-timeout", type=float, default=600.0,
                    help="seconds a process may wait for the DuckDB file (WORKBENCH_LOCK_TIMEOUT; default there 120)")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="per backend: stop everything after this")
    args = ap.parse_args()
    banner(f"W12 team load: {args.writers} writers x {args.runs} runs ({args.steps} steps x {N_KEYS} metrics, "
           f"{N_PARAMS} params, {N_TAGS} tags) with {args.readers} dashboard readers (think {args.think} s)")
    t_all = time.perf_counter()
    res = {}
    chosen = {"all": ["pg", "duckdb", "server"], "both": ["pg", "duckdb"]}.get(args.backend, [args.backend])
    for backend in chosen:
        log(f"{backend}:")
        t = time.perf_counter()
        res[backend] = one_backend(backend, args)
        res[backend]["total_s"] = time.perf_counter() - t
        log(f"  done in {res[backend]['total_s']:.1f} s (writers' wall {res[backend]['writers_wall_s']:.1f} s); "
            f"load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print_table(res)
    total = time.perf_counter() - t_all
    print(f"whole script {total:.0f} s; load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    path = write_results("w12_team_load", {
        "config": {k: getattr(args, k) for k in ("writers", "readers", "runs", "steps", "think", "lock_timeout")},
        "shape": {"params": N_PARAMS, "metric_keys": N_KEYS, "tags": N_TAGS, "seed_runs": len(EXPERIMENTS) * SEED_RUNS},
        "results": res, "total_s": total})
    print("wrote", path)


if __name__ == "__main__":
    main()
