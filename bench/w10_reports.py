"""A validation pack for one model, HTML and PDF: the issue's bars are 5 s and 20 s.

Seeds the demo store once (cached in bench/results/), then times
``reports.export(ws, "validation", "credit-default", None, fmt, folder)`` for the
Production version: median of ``--reps`` per format. Everything is inside the timing:
reading the store, verifying the audit chain, rendering, (for PDF) starting headless
Chromium and printing, writing the file and its audit event. No anchor tool makes
validation packs from a model registry, so there is no ratio.

    python bench/w10_reports.py [--reps 5] [--rebuild]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import banner, cached_store, fmt_s, fresh_dir, log, median, write_results  # noqa: E402

BARS = {"html": 5.0, "pdf": 20.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    banner("W10: a validation pack of credit-default (the demo store), HTML and PDF")
    from workbench.demo import seed as demo

    path = cached_store("w10_demo.duckdb", lambda p: demo.seed(p, progress=False), args.rebuild)
    import workbench as wb
    from workbench.reports import documents as reports

    ws = wb.connect(path, user="casey")
    results = {}
    for fmt in ("html", "pdf"):
        times = []
        with fresh_dir("w10") as out:
            for _ in range(args.reps):
                t = time.perf_counter()
                written = reports.export(ws, "validation", "credit-default", None, fmt, out)
                times.append(time.perf_counter() - t)
            size = written.stat().st_size
        results[fmt] = {"seconds": times, "median_s": median(times), "bytes": size, "bar_s": BARS[fmt]}
        log(f"{fmt:4}: median {fmt_s(median(times))} of {args.reps} ({size:,} bytes) -> "
            f"{'under' if median(times) < BARS[fmt] else 'OVER'} {BARS[fmt]:.0f} s")
    write_results("w10_reports", results)


if __name__ == "__main__":
    main()
