"""W3 / W4: drift report, reference and current of 100k (W3) or 1M (W4) rows x 20 columns.

Data (BENCHMARKS.md): 10 numeric columns normal(0, 1) in reference and normal(0.2, 1) in every
third current column; 10 categorical columns over 4 values, with shifted frequencies in every
fourth current column. Generated once from a fixed seed and written to Parquet in
bench/results/ (not timed). Each measurement runs in a fresh Python process, so its peak
RSS is that tool's alone:

* workbench: ``drift_report(ref.parquet, cur.parquet)``, reading a column at a time;
* Evidently 0.7.23: ``pd.read_parquet`` both files, then ``Report([DataDriftPreset()]).run``.

Timed in both from the files on disk to the finished report (imports not timed). Peak RSS
is the child's ``ru_maxrss``; the RSS after imports is printed beside it. The per-column
results of the two are compared (same test and verdict, statistic to 1e-6 relative).
Then the out-of-core case: a 10M-row Parquet current against the 1M reference, workbench
only, which must stay within 4 GB.

    python bench/w3_w4_drift.py [--reps 3] [--evidently-reps-1m 1] [--skip-10m]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, banner, fmt_s, log, median, write_results  # noqa: E402

N_NUM = N_CAT = 10


def make_parquet(path: Path, rows: int, seed: int, current: bool, chunk: int = 1_000_000) -> None:
    """Write ``rows`` rows in chunks (so 10M rows never sit in memory at once)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    letters = np.array(["a", "b", "c", "d"])
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        cols = {}
        for i in range(N_NUM):
            cols[f"num_{i}"] = rng.normal(0.2 if current and i % 3 == 0 else 0.0, 1.0, n)
        for i in range(N_CAT):
            p = [0.25, 0.25, 0.25, 0.25] if current and i % 4 == 0 else [0.4, 0.3, 0.2, 0.1]
            cols[f"cat_{i}"] = letters[rng.choice(4, n, p=p)]
        table = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def data(rows: int, current_rows: int | None = None) -> tuple[Path, Path]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    ref = RESULTS_DIR / f"drift_ref_{rows}.parquet"
    cur = RESULTS_DIR / f"drift_cur_{current_rows or rows}.parquet"
    if not ref.exists():
        make_parquet(ref, rows, seed=0, current=False)
    if not cur.exists():
        make_parquet(cur, current_rows or rows, seed=1, current=True)
    return ref, cur


def child(tool: str, ref: str, cur: str) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import resource
    import time
    import warnings

    warnings.filterwarnings("ignore")
    if tool == "workbench":
        from workbench.evidence.drift import drift_report
    else:
        import pandas as pd
        from evidently import Dataset, Report
        from evidently.presets import DataDriftPreset

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import _evidently_reference
    after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if tool == "workbench":
        report = drift_report(Path(ref), Path(cur))
        rows = report.columns.select("column", "stattest", "statistic", "drift_detected").rows()
        compute = None
    else:
        reference, current = pd.read_parquet(ref), pd.read_parquet(cur)
        t1 = time.perf_counter()
        Report([DataDriftPreset()]).run(Dataset.from_pandas(current), Dataset.from_pandas(reference))
        compute = time.perf_counter() - t1
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if tool == "evidently":  # the per-column values, untimed, for the parity check
        truth = _evidently_reference.evidently_drift(reference, current)["columns"]
        rows = truth.select("column", "stattest", "statistic", "drift_detected").rows()
    print(json.dumps({"seconds": seconds, "compute_s": compute, "peak_mb": peak, "after_imports_mb": after_imports,
                      "rows": rows}))


def measure(tool: str, ref: Path, cur: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", tool, str(ref), str(cur)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def same(a: list, b: list) -> bool:
    ours = {r[0]: r for r in a}
    return all(ours[c][1] == t and ours[c][3] == d and math.isclose(ours[c][2], s, rel_tol=1e-6, abs_tol=1e-12)
               for c, t, s, d in b) and len(a) == len(b)


def workload(name: str, rows: int, reps: int, ev_reps: int) -> dict:
    ref, cur = data(rows)
    wb_runs = [measure("workbench", ref, cur) for _ in range(reps)]
    ev_runs = [measure("evidently", ref, cur) for _ in range(ev_reps)]
    wb_s, ev_s = median([r["seconds"] for r in wb_runs]), median([r["seconds"] for r in ev_runs])
    wb_mb, ev_mb = max(r["peak_mb"] for r in wb_runs), max(r["peak_mb"] for r in ev_runs)
    parity = same(wb_runs[0]["rows"], ev_runs[0]["rows"])
    log(f"{name} ({rows:,} rows each, 20 columns)")
    log(f"  workbench  median {fmt_s(wb_s):>9} of {reps}; peak RSS {wb_mb:6.0f} MB (after imports "
        f"{wb_runs[0]['after_imports_mb']:.0f} MB)")
    log(f"  Evidently  median {fmt_s(ev_s):>9} of {ev_reps} (report alone {fmt_s(median([r['compute_s'] for r in ev_runs]))}); "
        f"peak RSS {ev_mb:6.0f} MB (after imports {ev_runs[0]['after_imports_mb']:.0f} MB)")
    log(f"  -> {ev_s / wb_s:.1f}x faster, {wb_mb / ev_mb:.2f} of Evidently's peak memory; "
        f"same tests, verdicts and statistics: {parity}")
    return {"rows": rows, "workbench_s": [r["seconds"] for r in wb_runs], "evidently_s": [r["seconds"] for r in ev_runs],
            "evidently_report_only_s": [r["compute_s"] for r in ev_runs], "workbench_peak_mb": wb_mb,
            "evidently_peak_mb": ev_mb, "speedup": ev_s / wb_s, "memory_ratio": wb_mb / ev_mb, "parity": parity,
            "drifted": sorted(r[0] for r in wb_runs[0]["rows"] if r[3])}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:5])
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--evidently-reps-1m", type=int, default=1)
    ap.add_argument("--skip-10m", action="store_true")
    args = ap.parse_args()
    banner("W3/W4: drift report, workbench vs Evidently 0.7.23 DataDriftPreset, each run in a fresh process")
    results = {"W3": workload("W3", 100_000, args.reps, args.reps),
               "W4": workload("W4", 1_000_000, args.reps, args.evidently_reps_1m)}
    log("BENCHMARKS.md anchors: Evidently 10.1 s / 409 MB (W3), 93.9 s / 1.43 GB (W4); issue bar for W4: "
        ">= 30x faster, <= 1/3 of the memory")
    if not args.skip_10m:
        ref, cur = data(1_000_000, 10_000_000)
        big = measure("workbench", ref, cur)
        log(f"10M-row Parquet current vs 1M reference: {fmt_s(big['seconds'])}, peak RSS {big['peak_mb']:.0f} MB "
            f"({'within' if big['peak_mb'] < 4096 else 'OVER'} 4 GB)")
        results["10M"] = {"seconds": big["seconds"], "peak_mb": big["peak_mb"]}
    write_results("w3_w4_drift", results)


if __name__ == "__main__":
    main()
