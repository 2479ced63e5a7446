"""W13: analytics reads on PostgreSQL against the DuckDB file: same data, same run.

The issue's bar for PostgreSQL: analytics queries that stay fast (indexes for the search
language, server-side downsampling for charts). This script takes W5's cached store
(100,000 runs, 5.95M metric points; ``w5_pages.py`` builds it), copies it (file and
artifact folder) into a temporary folder, adds 50 runs with two 5,000-step curves through
the API (the compare page's long, downsampled series), then migrates the copy with
``workbench migrate`` into a fresh throwaway PostgreSQL cluster (``.ci/start_pg.sh``, under
``/tmp``, loopback only; timed: rows/s) and runs ``ANALYZE`` there, as autovacuum would.
The cached file itself is never opened (opening a store brings it up to the current schema
in place); when it is missing, W5's builder makes a fifth of it. Then, on both stores:

- **search**: W2's four filters over 100k runs, warm (median of ``--reps``); the first search
  in a fresh process (``--cold-reps`` processes per backend, interleaved: it builds the
  per-process run index); the run index rebuilt in the process; a search right after another
  process logged one run (``--write-reps``, a writer process per backend).
- **compare**: ``metric_curves`` for 5 and 50 runs of 2 x 5,000 steps (downsampled to at
  most 1,000 points a series) and of 10 x 100 steps (returned whole), ``params_table``,
  ``metrics_table``, ``comparison_frame`` and ``best_runs`` of 50 runs.
- **pages**: W5's page list as W5 times it (Streamlit's AppTest script run, signed in),
  plus the run detail of a long-curve run; one warm-up then ``--page-reps`` runs.
- **audit**: ``verify_audit`` on the store's chain, the Audit page's newest-500 events, and
  ``verify_audit`` on W8's 200k-event chain (``w8_audit_tables_200000.duckdb``, copied and migrated
  into a second database; skipped when that cache is missing or with ``--skip-chain``).

Before anything is timed the script waits (``--max-wait``, default 10 minutes) for the
1-minute load average to drop below ``--load-threshold`` (1.5), and records it. Warm
operations run as blocks (one untimed call, two when the first takes over 0.5 s, then the
repetitions back to back), one backend after the other, which one goes first alternating
between operations. Both backends
must return the same rows (searches: the same run ids in the same order); a difference is
printed and kept in the JSON. Afterwards the slowest PostgreSQL statements seen while
running each operation once more are shown with ``EXPLAIN (ANALYZE, BUFFERS)``, and timed
again with ``jit`` off when their plan spent time compiling.

    python bench/w13_postgres_reads.py [--reps 11] [--page-reps 7] [--cold-reps 5] [--write-reps 7]
                                       [--explain 8] [--skip-chain] [--skip-pages] [--max-wait 600]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, banner, fmt_s, log, median, write_results  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOURCE = RESULTS_DIR / "w5_store_100k_5M_v2.duckdb"  # w5_pages.py's cached store
CHAIN_SOURCE = RESULTS_DIR / "w8_audit_tables_200000.duckdb"  # w8_audit_verify.py's cached 200k chain
FILTER = "metrics.m0 > 0.5 and params.p0 = 'rf'"
FILTERS = {  # W2 part 2's (w2_search.BIG_FILTERS)
    "and (the W2 filter)": FILTER,
    "or + parentheses": "(params.p0 = 'rf' or params.p0 = 'gbm') and (metrics.m1 < 0.2 or metrics.m2 > 0.9)",
    "min()/max()": "max(metrics.m3) > 0.9 and min(metrics.m4) < 0.5",
    # W2's params.p3 is 'value-N'; W5's store holds numbers 0-99 as text: the same LIKE on its values
    "like": "params.p3 like '1%' and metrics.m5 > 0.5",
}
N_LONG, LONG_KEYS, LONG_STEPS = 50, ("loss", "acc"), 5_000
LONG_EXPERIMENT, PROBE_EXPERIMENT = "w13-long", "w13-probe"
USERS = {"dana": "dana-demo-pw", "riley": "riley-demo-pw"}  # made by w5_pages.build


# -- helpers ------------------------------------------------------------------------------------
def pct(xs: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default)."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stats(xs: list[float]) -> dict:
    return {"n": len(xs), "median_s": median(xs) if xs else float("nan"), "p95_s": pct(xs, 95),
            "min_s": min(xs) if xs else float("nan"), "max_s": max(xs) if xs else float("nan"), "seconds": xs}


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_for_quiet(threshold: float, max_wait: float) -> dict:
    """Wait (up to ``max_wait`` s) for the 1-minute load average to drop to ``threshold``."""
    t0 = time.monotonic()
    first = load_now()
    last_print = -60.0
    while os.getloadavg()[0] > threshold and time.monotonic() - t0 < max_wait:
        el = time.monotonic() - t0
        if el - last_print >= 60:
            log(f"  load average {' '.join(map(str, load_now()))} > {threshold}: waiting for it to drop "
                f"({el:.0f} s of at most {max_wait:.0f} s)")
            last_print = el
        time.sleep(10)
    waited = time.monotonic() - t0
    now = load_now()
    quiet = now[0] <= threshold
    if waited > 1:
        log(f"  waited {waited:.0f} s; load average now {' '.join(map(str, now))}"
            + ("" if quiet else f" (still above {threshold}: timing anyway, expect noise)"))
    return {"load_at_start": first, "waited_s": waited, "load_after_wait": now, "quiet": quiet}


def close_stores() -> None:
    """Close this process's connections (the PostgreSQL cluster must be stoppable, files removable)."""
    from w12_team_load import _close_stores

    _close_stores()


def start_pg(work: Path) -> tuple[Path, str]:
    """A throwaway cluster as w12_team_load.py starts one: a folder under /tmp (mode 0755), a free port."""
    pg_dir = Path(tempfile.mkdtemp(prefix="wbbench-w13-pg-", dir="/tmp"))
    pg_dir.chmod(0o755)
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = subprocess.run([str(REPO / ".ci/start_pg.sh"), str(pg_dir / "cluster"), str(port)],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        shutil.rmtree(pg_dir, ignore_errors=True)
        raise RuntimeError(f"start_pg.sh failed: {out.stderr.strip()}")
    return pg_dir, out.stdout.strip().splitlines()[-1]


def stop_pg(pg_dir: Path) -> None:
    subprocess.run([str(REPO / ".ci/stop_pg.sh"), str(pg_dir / "cluster"), "--rm"], capture_output=True, timeout=120)
    shutil.rmtree(pg_dir, ignore_errors=True)


def pg_connect(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def copy_store(src: Path, dst: Path) -> None:
    """The store file (and a leftover .wal, if any) and its artifact folder, copied."""
    shutil.copy2(src, dst)
    wal = Path(str(src) + ".wal")
    if wal.exists():
        shutil.copy2(wal, Path(str(dst) + ".wal"))
    arts = src.with_suffix(".artifacts")
    if arts.is_dir():
        shutil.copytree(arts, dst.with_suffix(".artifacts"))


# -- child processes ----------------------------------------------------------------------------
def cold_child(store: str) -> None:
    """Run in a fresh process: connect, then the first search (builds the run index), then one more."""
    t = time.perf_counter()
    import workbench as wb
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    ws = wb.connect(store, user="dana")
    connect_s = time.perf_counter() - t
    t = time.perf_counter()
    df = ws.search_runs(FILTER)
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    ws.search_runs(FILTER)
    second_s = time.perf_counter() - t
    ws.close()
    print(json.dumps({"import_s": import_s, "connect_s": connect_s, "first_search_s": first_s,
                      "second_search_s": second_s, "n": df.height}))


def writer_child(store: str) -> None:
    """Another process of the team: logs one (probe) run per line read on stdin, then lets go of the store."""
    import workbench as wb

    ws = wb.connect(store, user="dana")
    ws.close()
    print("ready", flush=True)
    for line in sys.stdin:
        i = line.strip()
        if not i:
            break
        with ws.start_run(PROBE_EXPERIMENT, name=f"probe-{i}") as run:
            run.set_tags({"probe": i})
        ws.close()  # flush, and release the DuckDB file for the reader
        print("ok", flush=True)


# -- the PostgreSQL statement recorder ----------------------------------------------------------
class Recorder:
    """Times every psycopg ``Cursor.execute`` (server work plus receiving the rows) while on."""

    def __init__(self) -> None:
        import psycopg

        self.on = False
        self.op = ""
        self.calls: list[dict] = []
        orig = psycopg.Cursor.execute
        rec = self

        def execute(cur, query, params=None, *a, **kw):
            if not rec.on:
                return orig(cur, query, params, *a, **kw)
            t = time.perf_counter()
            try:
                return orig(cur, query, params, *a, **kw)
            finally:
                dt = time.perf_counter() - t
                text = query if isinstance(query, str) else query.as_string(cur)
                rec.calls.append({"op": rec.op, "sql": text, "params": params, "seconds": dt,
                                  "rows": cur.rowcount, "db": cur.connection.info.dbname})

        psycopg.Cursor.execute = execute


def _short_params(params) -> str:
    def one(v):
        if isinstance(v, (list, tuple)) and len(v) > 3:
            return f"[{len(v)} values: {', '.join(map(repr, v[:2]))}, ...]"
        return repr(v)
    if isinstance(params, dict):
        return "{" + ", ".join(f"{k}: {one(v)}" for k, v in params.items()) + "}"
    if isinstance(params, (list, tuple)):
        return "[" + ", ".join(one(v) for v in params) + "]"
    return repr(params)


def explain_slowest(url: str, calls: list[dict], top: int) -> list[dict]:
    """EXPLAIN (ANALYZE, BUFFERS) of the ``top`` slowest distinct statements; jit off where it compiled."""
    best: dict[str, dict] = {}
    for c in calls:
        if not re.match(r"\s*(select|with)\b", c["sql"], re.I):
            continue
        key = c["db"] + ":" + re.sub(r"\s+", " ", c["sql"]).strip()
        if key not in best or c["seconds"] > best[key]["seconds"]:
            best[key] = c
    chosen = sorted(best.values(), key=lambda c: -c["seconds"])[:top]
    out = []
    cons: dict = {}
    try:
        for c in chosen:
            if c["db"] not in cons:  # the statement's own database (W8's chain has a second one)
                cons[c["db"]] = pg_connect(url.rsplit("/", 1)[0] + "/" + c["db"])
            con = cons[c["db"]]
            plan = [r[0] for r in con.execute("explain (analyze, buffers) " + c["sql"], c["params"]).fetchall()]
            text = "\n".join(plan)
            m = re.search(r"Execution Time: ([\d.]+) ms", text)
            jit = re.search(r"Timing: .*Total ([\d.]+) ms", text)
            item = {"op": c["op"], "db": c["db"], "sql": c["sql"], "params": _short_params(c["params"]), "seconds_in_op": c["seconds"],
                    "rows": c["rows"], "execution_ms": float(m.group(1)) if m else None,
                    "jit_ms": float(jit.group(1)) if jit else 0.0, "plan": text}
            if jit:  # the same statement with and without JIT compilation, median of 3 each
                times = {}
                for setting in ("on", "off"):
                    con.execute(f"set jit = {setting}")
                    ts = []
                    for _ in range(3):
                        t = time.perf_counter()
                        con.execute(c["sql"], c["params"]).fetchall()
                        ts.append(time.perf_counter() - t)
                    times[setting] = median(ts)
                con.execute("reset jit")
                item["jit_on_s"], item["jit_off_s"] = times["on"], times["off"]
            out.append(item)
    finally:
        for con in cons.values():
            con.close()
    return out


# -- measurement --------------------------------------------------------------------------------
def block(fn, reps: int) -> tuple[list[float], object]:
    """``reps`` timed calls back to back (the caller made an untimed one first)."""
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def summary_of(out) -> object:
    """What both backends must agree on."""
    import polars as pl

    if isinstance(out, pl.DataFrame):
        if "run_id" in out.columns and "key" not in out.columns and "seq" not in out.columns:
            return {"shape": list(out.shape), "run_ids": out["run_id"].to_list()}
        return {"shape": list(out.shape)}
    if hasattr(out, "ok") and hasattr(out, "n_events"):
        return {"ok": out.ok, "n_events": out.n_events, "head": out.head_hash, "reason": out.reason}
    return repr(out)[:200]


def brief(s) -> str:
    if isinstance(s, dict) and "shape" in s:
        return f"{s['shape'][0]:,} x {s['shape'][1]}"
    if isinstance(s, dict) and "ok" in s:
        return f"{'ok' if s['ok'] else 'BROKEN'}, {s['n_events']:,} events"
    return str(s)[:40]


def ops_for(ws: dict, reviewer: dict, chain_ws: dict | None, ids: dict) -> list[tuple[str, str, dict]]:
    """(group, label, {backend: fn}) for every warm operation."""

    def per(make):
        return {b: make(b) for b in ws}

    ops = []
    for label, flt in FILTERS.items():
        ops.append(("search", f"search: {label}", per(lambda b, f=flt: lambda: ws[b].search_runs(f))))
    ops.append(("search", "search: no filter (all 100k runs)", per(lambda b: lambda: ws[b].search_runs(""))))

    from workbench.tracking import search

    def rebuild(b):
        def fn():
            search.forget_run_index(ws[b].store)  # the next search builds the index again, as a new process does
            return ws[b].search_runs(FILTER)
        return fn
    ops.append(("search", "search: run index rebuilt in process", per(rebuild)))
    for label, key in (("5 runs, 2 x 5,000 steps (downsampled)", "long5"), ("50 runs, 2 x 5,000 steps (downsampled)", "long50"),
                       ("5 runs, 10 x 100 steps (whole)", "short5"), ("50 runs, 10 x 100 steps (whole)", "short50")):
        ops.append(("compare", f"metric_curves: {label}",
                    per(lambda b, k=key: lambda: ws[b].metric_curves(ids[k]))))
    for name in ("params_table", "metrics_table", "comparison_frame", "best_runs"):
        ops.append(("compare", f"{name}: 50 runs", per(lambda b, n=name: lambda: getattr(ws[b], n)(ids["short50"]))))
    ops.append(("audit", "verify_audit: the store's chain", {b: (lambda b=b: reviewer[b].verify_audit()) for b in ws}))
    ops.append(("audit", "audit_events: newest 500 (Audit page)",
                {b: (lambda b=b: reviewer[b].audit_events(limit=500)) for b in ws}))
    if chain_ws:
        ops.append(("audit", "verify_audit: W8's 200k-event chain", {b: (lambda b=b: chain_ws[b].verify_audit()) for b in ws}))
    return ops


def time_pages(stores: dict, cases: list, reps: int) -> list[dict]:
    """W5's method: AppTest script runs for a signed-in user, one warm-up then ``reps``, per backend."""
    import logging

    from streamlit.testing.v1 import AppTest

    from workbench.people import auth
    from workbench.ui import widgets as ui

    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda r: "missing ScriptRunContext" not in r.getMessage())  # harmless in bare mode, twice a run
    signed = {(b, u): auth.sign_in(s, u, pw) for b, s in stores.items() for u, pw in USERS.items()}
    rows = []
    for i, (label, page, user, query) in enumerate(cases):
        order = list(stores) if i % 2 == 0 else list(stores)[::-1]
        row = {"page": label}
        for b in order:
            times = []
            for r in range(reps + 1):
                os.environ["WORKBENCH_STORE"] = stores[b]
                at = AppTest.from_file(str(REPO / "pages" / page), default_timeout=180)
                at.session_state[ui.SIGNED] = signed[(b, user)]
                for k, v in (query or {}).items():
                    at.query_params[k] = v
                t0 = time.perf_counter()
                at.run()
                dt = time.perf_counter() - t0
                assert not at.exception, (b, label, [e.value for e in at.exception])
                assert not at.error, (b, label, [e.value for e in at.error])
                assert at.title and at.title[0].value != "Sign in", "the page did not run signed in"
                assert at.dataframe, f"{label} on {b} showed no table"
                if r:
                    times.append(dt)
            row[b] = stats(times)
        rows.append(row)
        log(f"  {label:52} duckdb {fmt_s(row['duckdb']['median_s']):>9}   pg {fmt_s(row['pg']['median_s']):>9}   "
            f"pg/duckdb {row['pg']['median_s'] / row['duckdb']['median_s']:5.2f}x")
    os.environ.pop("WORKBENCH_STORE", None)
    return rows


def prepare_copy(path: Path) -> dict:
    """Bring the copy to this schema and add the long-curve runs through the API (not timed)."""
    import random

    import workbench as wb

    ws = wb.connect(path, user="dana")
    rng = random.Random(13)
    t = time.perf_counter()
    for i in range(N_LONG):
        with ws.start_run(LONG_EXPERIMENT, name=f"long-{i:02d}") as run:
            run.log_params({"p0": "rf", "p1": str(i)})
            for s in range(LONG_STEPS):
                run.log_metrics({k: rng.random() for k in LONG_KEYS}, step=s)
    ws.flush()
    secs = time.perf_counter() - t
    counts = ws.counts()
    close_stores()
    return {"long_runs_s": secs, "counts": counts}


def build_small(path: Path) -> None:
    """W5's builder at a fifth of the size (only when W5's cached store is missing)."""
    import w5_pages

    w5_pages.N_RUNS, w5_pages.N_CURVE_RUNS = 20_000, 1_000
    w5_pages.build(path)
    close_stores()


def code_version() -> dict:
    """The commit measured, and whether workbench/ had changes not yet committed."""
    def git(*a):
        out = subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"), "subject": git("log", "-1", "--format=%s"),
            "uncommitted_in_workbench": git("status", "--short", "--", "workbench").splitlines()}


def pg_settings(url: str) -> dict:
    con = pg_connect(url)
    try:
        out = {"version": con.execute("show server_version").fetchone()[0]}
        for name in ("jit", "work_mem", "shared_buffers", "effective_cache_size", "random_page_cost",
                     "max_parallel_workers_per_gather", "fsync", "synchronous_commit"):
            out[name] = con.execute(f"show {name}").fetchone()[0]
        out["database_size"] = con.execute("select pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        return out
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=11, help="timed repetitions of each warm operation (default 11)")
    ap.add_argument("--slow-reps", type=int, default=7, help="repetitions of operations slower than 0.5 s (default 7)")
    ap.add_argument("--page-reps", type=int, default=7, help="AppTest runs per page and backend after a warm-up (default 7)")
    ap.add_argument("--cold-reps", type=int, default=5, help="fresh processes per backend for the first search (default 5)")
    ap.add_argument("--write-reps", type=int, default=7, help="searches right after another process's write (default 7)")
    ap.add_argument("--explain", type=int, default=8, help="slowest PostgreSQL statements to EXPLAIN ANALYZE (default 8)")
    ap.add_argument("--skip-chain", action="store_true", help="skip W8's 200k-event chain")
    ap.add_argument("--skip-pages", action="store_true", help="skip the AppTest page runs")
    ap.add_argument("--load-threshold", type=float, default=1.5, help="wait while the 1-min load average is above (1.5)")
    ap.add_argument("--max-wait", type=float, default=600, help="at most this many seconds of waiting (default 600)")
    ap.add_argument("--cold-child", metavar="STORE", help=argparse.SUPPRESS)
    ap.add_argument("--writer-child", metavar="STORE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cold_child:
        return cold_child(args.cold_child)
    if args.writer_child:
        return writer_child(args.writer_child)

    t_all = time.perf_counter()
    banner("W13: analytics reads on PostgreSQL vs the DuckDB file (W5's 100k runs / 5.95M points + 50 long-curve runs)")
    code = code_version()
    log(f"code: commit {code['commit']} ({code['subject']})"
        + (f"; uncommitted in workbench/: {', '.join(code['uncommitted_in_workbench'])}" if code["uncommitted_in_workbench"] else ""))
    load = wait_for_quiet(args.load_threshold, args.max_wait)
    res: dict = {"workload": "W13", "load": load, "code": code, "config": {k: getattr(args, k) for k in (
        "reps", "slow_reps", "page_reps", "cold_reps", "write_reps", "explain")}}
    work = Path(tempfile.mkdtemp(prefix="wbbench-w13-", dir="/tmp"))
    pg_dir = None
    writers: list = []
    try:
        # 1. the data: a copy of W5's store (never the cached file itself)
        copy = work / "store.duckdb"
        if SOURCE.exists():
            t = time.perf_counter()
            copy_store(SOURCE, copy)
            log(f"copied {SOURCE.name} ({SOURCE.stat().st_size / 1e6:.0f} MB) and its artifacts to {work} "
                f"in {fmt_s(time.perf_counter() - t)} (not timed)")
            res["source"] = str(SOURCE)
        else:
            log(f"{SOURCE} does not exist (run bench/w5_pages.py to build it): building a smaller store with "
                "W5's builder (20,000 runs, 1,000 of them with curves)")
            build_small(copy)
            res["source"] = "w5_pages.build at 20k runs (the cached W5 store was missing)"
        prep = prepare_copy(copy)
        log(f"  the copy now holds {prep['counts']['runs']:,} runs; {N_LONG} runs x {len(LONG_KEYS)} keys x "
            f"{LONG_STEPS:,} steps added through the API in {fmt_s(prep['long_runs_s'])} (not timed)")
        res["prepare"] = prep

        # 2. PostgreSQL: start, migrate (timed), ANALYZE
        t = time.perf_counter()
        pg_dir, url = start_pg(work)
        log(f"PostgreSQL started in {fmt_s(time.perf_counter() - t)} ({pg_dir}/cluster)")
        from workbench.store.migrate import migrate

        log(f"migrating the copy into PostgreSQL (load average {' '.join(map(str, load_now()))}) ...")
        mig = migrate(str(copy), url)
        rows = sum(mig["tables"].values())
        log(f"  migrated {rows:,} rows in {mig['seconds']:.1f} s: {rows / mig['seconds']:,.0f} rows/s "
            f"(metrics {mig['tables']['metrics']:,}, latest_metrics {mig['tables']['latest_metrics']:,}, "
            f"params {mig['tables']['params']:,}, runs {mig['tables']['runs']:,}, events {mig['events']:,}); "
            f"head equal to the file's: {mig['head'] == mig['source_head']}")
        con = pg_connect(url)
        t = time.perf_counter()
        con.execute("analyze")
        analyze_s = time.perf_counter() - t
        con.close()
        log(f"  ANALYZE (as autovacuum would after a bulk load): {fmt_s(analyze_s)}")
        res["migration"] = {"seconds": mig["seconds"], "rows": rows, "rows_per_s": rows / mig["seconds"],
                            "tables": mig["tables"], "events": mig["events"], "head_equal": mig["head"] == mig["source_head"],
                            "missing_files": mig["missing_files"], "analyze_s": analyze_s,
                            "load_after": load_now()}
        res["postgres"] = pg_settings(url)
        res["duckdb_file_mb"] = copy.stat().st_size / 1e6
        log(f"  PostgreSQL {res['postgres']['version']}: database {res['postgres']['database_size']}, jit "
            f"{res['postgres']['jit']}, work_mem {res['postgres']['work_mem']}, shared_buffers "
            f"{res['postgres']['shared_buffers']}; the DuckDB copy is {res['duckdb_file_mb']:.0f} MB")

        chain = None
        if not args.skip_chain and CHAIN_SOURCE.exists():
            ccopy = work / "chain.duckdb"
            copy_store(CHAIN_SOURCE, ccopy)
            con = pg_connect(url)
            con.execute("create database w13chain")
            con.close()
            curl = url.rsplit("/", 1)[0] + "/w13chain"
            cm = migrate(str(ccopy), curl)
            con = pg_connect(curl)
            con.execute("analyze")
            con.close()
            chain = {"duckdb": str(ccopy), "pg": curl}
            log(f"  W8's {cm['events']:,}-event chain migrated into a second database in {cm['seconds']:.1f} s, analyzed")
            res["chain_migration"] = {"seconds": cm["seconds"], "events": cm["events"]}
        elif not args.skip_chain:
            log(f"  ({CHAIN_SOURCE.name} missing: run bench/w8_audit_verify.py --events 200000 to add the 200k chain)")
        close_stores()

        stores = {"duckdb": str(copy), "pg": url}
        import workbench as wb
        from workbench.workspace import operator_workspace

        # 3. the runs compared, chosen once on the file (the same ids on both)
        ws0 = wb.connect(stores["duckdb"], user="dana")
        long_ids = ws0.search_runs(f"attributes.experiment = '{LONG_EXPERIMENT}'").sort("run_name")["run_id"].to_list()
        named = ws0.search_runs("attributes.name like 'run-%'")
        by_name = dict(zip(named["run_name"].to_list(), named["run_id"].to_list()))
        short = [by_name[f"run-{i}"] for i in range(50)]  # W5 gave runs 0..4,999 curves of 10 x 100 steps
        ids = {"long5": long_ids[:5], "long50": long_ids[:50], "short5": short[:5], "short50": short}
        some = ws0.search_runs("attributes.name LIKE 'run-1%'", max_results=2000)  # as w5_pages.py picks them
        compare20 = some["run_id"].to_list()[:20]
        with_curves = ws0.search_runs("max(metrics.m0) >= 0", max_results=1)["run_id"].to_list()[0]
        close_stores()
        assert len(ids["long50"]) == 50 and len(ids["short50"]) == 50, {k: len(v) for k, v in ids.items()}

        # 4. cold: the first search in a fresh process, interleaved
        log(f"\nsearch, first in a fresh process ({args.cold_reps} processes per backend, interleaved; "
            f"load {' '.join(map(str, load_now()))})")
        cold = {b: [] for b in stores}
        for r in range(args.cold_reps):
            for b in (list(stores) if r % 2 == 0 else list(stores)[::-1]):
                out = subprocess.run([sys.executable, __file__, "--cold-child", stores[b]], capture_output=True,
                                     text=True, timeout=300)
                if out.returncode != 0:
                    raise RuntimeError(f"cold search child failed on {b}: {out.stderr[-2000:]}")
                cold[b].append(json.loads(out.stdout.strip().splitlines()[-1]))
        res["cold"] = {}
        for b, xs in cold.items():
            res["cold"][b] = {k: stats([x[k] for x in xs]) for k in ("import_s", "connect_s", "first_search_s",
                                                                   "second_search_s")}
            res["cold"][b]["n_matched"] = xs[0]["n"]
            log(f"  {b:7} first search {fmt_s(res['cold'][b]['first_search_s']['median_s']):>9} (connect "
                f"{fmt_s(res['cold'][b]['connect_s']['median_s'])}, next search "
                f"{fmt_s(res['cold'][b]['second_search_s']['median_s'])}), {xs[0]['n']:,} runs")

        # 5. warm operations, both backends in this process
        ws = {b: wb.connect(s, user="dana") for b, s in stores.items()}
        reviewer = {b: wb.connect(s, user="riley") for b, s in stores.items()}
        chain_ws = {b: operator_workspace(chain[b]) for b in stores} if chain else None
        rec = Recorder()
        log(f"\nwarm operations: one untimed call, then {args.reps} (or {args.slow_reps} when slower than 0.5 s) "
            f"back to back per backend; load {' '.join(map(str, load_now()))}")
        res["ops"] = []
        for i, (group, label, fns) in enumerate(ops_for(ws, reviewer, chain_ws, ids)):
            order = list(stores) if i % 2 == 0 else list(stores)[::-1]
            row: dict = {"group": group, "op": label}
            agree = {}
            for b in order:
                probe = 0.0
                for _ in range(2):  # untimed: warm this process for the operation (the first call may build
                    t = time.perf_counter()  # the run index), and tell how long it takes
                    fns[b]()
                    probe = time.perf_counter() - t
                    if probe < 0.5:
                        break
                reps = args.slow_reps if probe > 0.5 else args.reps
                times, out = block(fns[b], reps)
                row[b] = stats(times)
                agree[b] = summary_of(out)
            row["result"] = brief(agree["duckdb"])
            row["same_result"] = agree["duckdb"] == agree["pg"]
            if not row["same_result"]:
                row["results"] = {b: (v if not isinstance(v, dict) or "run_ids" not in v else
                                      {**v, "run_ids": v["run_ids"][:5]}) for b, v in agree.items()}
            row["load"] = load_now()
            res["ops"].append(row)
            d, p = row["duckdb"]["median_s"], row["pg"]["median_s"]
            log(f"  {label:52} duckdb {fmt_s(d):>9}   pg {fmt_s(p):>9}   pg/duckdb {p / d:6.2f}x   {row['result']}"
                + ("" if row["same_result"] else "   RESULTS DIFFER"))
            for b in stores:
                if isinstance(agree[b], dict) and agree[b].get("ok") is False:
                    log(f"    {b}: the chain did not verify: {agree[b]['reason']}")

        # 6. the dashboard pages (they sign in: from here on the two chains differ)
        if not args.skip_pages:
            cases = [  # w5_pages.py's list, plus the run detail of a long-curve run
                ("Home", "overview.py", "dana", None),
                ("Experiments (100k runs, first page of 200)", "experiments.py", "dana", None),
                ("Experiments, filtered", "experiments.py", "dana", {"filter": FILTER}),
                ("Run detail (10 x 100-step curves)", "experiments.py", "dana", {"run": with_curves}),
                ("Run detail (2 x 5,000-step curves, downsampled)", "experiments.py", "dana", {"run": long_ids[0]}),
                ("Compare 20 runs", "compare.py", "dana", {"runs": ",".join(compare20)}),
                ("Models", "models.py", "dana", None),
                ("Audit trail (reviewer)", "audit.py", "riley", None),
            ]
            log(f"\npages (AppTest script run, signed in; one warm-up then {args.page_reps} per backend; "
                f"load {' '.join(map(str, load_now()))})")
            res["pages"] = time_pages(stores, cases, args.page_reps)

        # 7. a search right after another process logged a run
        log(f"\nsearch right after another process logged one run ({args.write_reps} per backend; "
            f"load {' '.join(map(str, load_now()))})")
        procs = {}
        for b, s in stores.items():
            ws[b].close()  # DuckDB: let the writer open the file
            p = subprocess.Popen([sys.executable, __file__, "--writer-child", s], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
            writers.append(p)
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the writer process on {b} failed to start (exit {p.wait()})")
            procs[b] = p
        after = {b: [] for b in stores}
        for r in range(args.write_reps + 1):  # the first round warms up
            for b in (list(stores) if r % 2 == 0 else list(stores)[::-1]):
                ws[b].close()  # DuckDB: let the writer have the file
                procs[b].stdin.write(f"{r}\n")
                procs[b].stdin.flush()
                if procs[b].stdout.readline().strip() != "ok":
                    raise RuntimeError(f"the writer process on {b} failed (exit {procs[b].wait()})")
                t = time.perf_counter()
                ws[b].search_runs(FILTER)
                if r:
                    after[b].append(time.perf_counter() - t)
        for b in stores:
            procs[b].stdin.write("\n")
            procs[b].stdin.flush()
        res["after_write"] = {b: stats(xs) for b, xs in after.items()}
        for b in stores:
            log(f"  {b:7} {fmt_s(res['after_write'][b]['median_s']):>9} median, p95 "
                f"{fmt_s(res['after_write'][b]['p95_s'])}")

        # 8. the slowest PostgreSQL statements, explained
        log("\nthe slowest PostgreSQL statements (each operation run once more, statements timed) ...")
        for group, label, fns in ops_for(ws, reviewer, chain_ws, ids):
            rec.op = label
            rec.on = True
            t = time.perf_counter()
            try:
                fns["pg"]()
            finally:
                rec.on = False
            wall = time.perf_counter() - t
            mine = [c for c in rec.calls if c["op"] == label]
            in_db = sum(c["seconds"] for c in mine)
            for row in res["ops"]:
                if row["op"] == label:
                    row["pg_statements"] = {"wall_s": wall, "in_execute_s": in_db, "n": len(mine)}
            log(f"  {label:52} {fmt_s(wall):>9} wall, {fmt_s(in_db):>9} in {len(mine)} statements' execute "
                f"(the rest: fetching rows into Python, building frames, hashing)")
        res["explain"] = explain_slowest(url, rec.calls, args.explain)
        for e in res["explain"]:
            log("")
            log(f"--- {e['op']}: {fmt_s(e['seconds_in_op'])} in execute; EXPLAIN ANALYZE execution "
                f"{e['execution_ms']} ms, of which JIT {e['jit_ms']:.0f} ms"
                + (f"; timed: jit on {fmt_s(e['jit_on_s'])}, jit off {fmt_s(e['jit_off_s'])}" if "jit_on_s" in e else ""))
            log(re.sub(r"\n\s*\n", "\n", e["sql"].strip()))
            log(f"params: {e['params']}")
            for line in e["plan"].splitlines():
                log("    " + (line if len(line) < 240 else line[:237] + "..."))
    finally:
        for p in writers:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.terminate()
                p.wait(10)
        close_stores()
        if pg_dir is not None:
            stop_pg(pg_dir)
        shutil.rmtree(work, ignore_errors=True)

    # 9. the table
    total = time.perf_counter() - t_all
    res["total_s"] = total
    print_table(res)
    log(f"whole script {total:.0f} s; load average at start {' '.join(map(str, load['load_at_start']))}, "
        f"when timing began {' '.join(map(str, load['load_after_wait']))}, now {' '.join(map(str, load_now()))}")
    log(f"results: {write_results('w13_postgres_reads', res)}")


def print_table(res: dict) -> None:
    def cell(s):
        return f"{fmt_s(s['median_s']):>9} {fmt_s(s['p95_s']) if s['n'] >= 10 else '-':>9}"

    rows = []
    c = res["cold"]
    rows.append(("search: first in a fresh process (builds the run index)", c["duckdb"]["first_search_s"],
                 c["pg"]["first_search_s"], ""))
    for r in res["ops"]:
        rows.append((r["op"], r["duckdb"], r["pg"], "" if r["same_result"] else "results differ"))
    rows.append(("search: right after another process logged a run", res["after_write"]["duckdb"],
                 res["after_write"]["pg"], ""))
    for r in res.get("pages", []):
        rows.append((f"page: {r['page']}", r["duckdb"], r["pg"], ""))
    m = res["migration"]
    print()
    print(f"migration: {m['rows']:,} rows in {m['seconds']:.1f} s ({m['rows_per_s']:,.0f} rows/s), then ANALYZE "
          f"{fmt_s(m['analyze_s'])}")
    head = f"{'operation':<62} {'DuckDB med':>10} {'p95':>9} {'PG med':>10} {'p95':>9} {'PG/DuckDB':>9}  n"
    print(head)
    print("-" * len(head))
    for label, d, p, note in rows:
        print(f"{label[:62]:<62} {cell(d)} {cell(p)} {p['median_s'] / d['median_s']:>8.2f}x  {d['n']}/{p['n']}"
              + (f"  {note}" if note else ""))


if __name__ == "__main__":
    main()
