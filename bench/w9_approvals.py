"""The Approvals page with 1,000 promotion requests: the issue's bar is a median under 1 s.

Builds (once, cached in bench/results/) a store with 100 models x 10 versions, one request
each, made through the API: 700 decided (approved or rejected) and 300 pending, a third
of those stale (evidence recomputed after the request). Then times the page's script run
(Streamlit's AppTest) for a lead: one warm-up, median of ``--reps``. No anchor: MLflow has
no approval queue (mlflow#2863).

    python bench/w9_approvals.py [--reps 5] [--rebuild]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import banner, cached_store, fmt_s, log, median, time_page, write_results  # noqa: E402

BAR_S = 1.0
MODELS, VERSIONS = 100, 10


def build(path: Path) -> None:
    import numpy as np
    import polars as pl
    from sklearn.linear_model import LinearRegression

    import workbench as wb
    from workbench.workspace import operator_workspace

    op = operator_workspace(path)
    for name, role in (("dana", "data_scientist"), ("lee", "lead"), ("lou", "lead")):
        op.add_user(name, role, f"{name}-bench-pw")
    dana, lee = wb.connect(path, user="dana"), wb.connect(path, user="lee")
    X = pl.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) % 7})
    model = LinearRegression().fit(X.to_pandas(), np.arange(50.0))
    n = 0
    for m in range(MODELS):
        name = f"model-{m:03d}"
        for v in range(VERSIONS):
            with dana.start_run("w9") as run:
                run.log_metrics({"r2": 0.9})
                mv = run.register_model(model, name, risk_tier="low")
            req = dana.request_promotion(mv, "Staging", f"candidate {v}")
            if n % 10 < 7:
                lee.decide(req.id, n % 2 == 0, "approved" if n % 2 == 0 else "not yet")
            elif n % 10 == 7:
                dana.explain(mv, X, max_rows=20)  # evidence after the request: stale
            n += 1
    dana.close()
    lee.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    banner(f"W9: the Approvals page with {MODELS * VERSIONS:,} requests")
    path = cached_store("w9_approvals.duckdb", build, args.rebuild)

    def check(at):
        assert at.radio and at.radio[0].options[0] == "Awaiting me (300)", at.radio[0].options

    first, *times = time_page(path, "approvals.py", "lou", "lou-bench-pw", args.reps, check=check)
    log(f"Approvals page, lead: median {fmt_s(median(times))} of {args.reps} (first in process {fmt_s(first)}) "
        f"-> {'under' if median(times) < BAR_S else 'OVER'} {BAR_S:.0f} s")
    write_results("w9_approvals", {"requests": MODELS * VERSIONS, "seconds": times, "first_s": first,
                                   "median_s": median(times), "bar_s": BAR_S})


if __name__ == "__main__":
    main()
