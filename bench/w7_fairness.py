"""W7: fairness by group, 1M rows, sensitive features sex (2) x age band (4).

Metrics per intersection group: selection rate, TPR, FPR, accuracy, precision, count; their
between-groups differences and ratios; demographic parity ratio; equalized odds difference.
Anchor: fairlearn 0.15 ``MetricFrame`` (both sensitive columns) plus
``demographic_parity_ratio`` and ``equalized_odds_difference`` (BENCHMARKS.md: 52.5 s).
Workbench: ``fairness_report`` with ``n_bootstrap=0`` for the like-for-like time (it also
computes both single features' groups and the four-fifths screen), and with the default
200-resample bootstrap. Same data (fixed seed, generated up front, not timed), one process,
one untimed warm-up of workbench on a small slice; the numbers must agree to 1e-9.

    python bench/w7_fairness.py [--rows 1000000] [--fl-reps 3] [--wb-reps 7]
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import banner, fmt_s, log, median, timed, write_results  # noqa: E402

BAR = 100.0


def make_data(n: int, seed: int = 0):
    import polars as pl

    rng = np.random.default_rng(seed)
    sex_idx = (rng.random(n) < 0.5).astype(np.int64)
    band_idx = rng.choice(4, size=n, p=[0.2, 0.35, 0.3, 0.15])
    z = -1.2 + 0.3 * sex_idx - 0.15 * band_idx + rng.normal(0, 1, n)
    y_true = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
    score = 1 / (1 + np.exp(-(z + rng.normal(0, 0.8, n))))
    y_pred = (score >= 0.4).astype(np.int64)
    sens = pl.DataFrame({
        "sex": pl.Series(["male", "female"]).gather(sex_idx),
        "age_band": pl.Series(["18-30", "31-45", "46-60", "60+"]).gather(band_idx),
    })
    return y_true, y_pred, sens


def run_fairlearn(y, p, sens_pd):
    import sklearn.metrics as skm
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    mf = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                 "fpr": false_positive_rate, "accuracy": skm.accuracy_score,
                 "precision": skm.precision_score, "count": count},
        y_true=y, y_pred=p, sensitive_features=sens_pd,
    )
    return {
        "by_group": mf.by_group,
        "difference": mf.difference(),
        "ratio": mf.ratio(),
        "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=sens_pd),
        "equalized_odds_difference": equalized_odds_difference(y, p, sensitive_features=sens_pd),
    }


def run_workbench(y, p, sens, n_bootstrap):
    from workbench.evidence.fairness import fairness_report

    return fairness_report(y, p, sens, n_bootstrap=n_bootstrap)


def compare(fl, rep) -> int:
    """Assert every fairlearn number equals workbench's to 1e-9; return how many were checked."""
    import polars as pl

    def close(a, b):
        a, b = float(a), float(b)
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9

    inter = rep.by_group.filter(pl.col("feature") == "sex & age_band")
    ours = {r["group"]: r for r in inter.iter_rows(named=True)}
    checked = 0
    bg = fl["by_group"].dropna(subset=["count"])
    assert len(bg) == len(ours) == 8, (len(bg), len(ours))
    for g, row in bg.iterrows():
        mine = ours[" & ".join(g)]
        for m in ("selection_rate", "tpr", "fpr", "accuracy", "precision", "count"):
            assert close(mine[m], row[m]), (g, m, mine[m], row[m])
            checked += 1
    for m in ("selection_rate", "tpr", "fpr", "accuracy", "precision", "count"):
        col = inter[m].cast(pl.Float64).to_numpy()
        hi, lo = col.max(), col.min()
        assert close(hi - lo, fl["difference"][m]), ("difference", m)
        assert close(lo / hi, fl["ratio"][m]), ("ratio", m)
        checked += 2
    s = rep.summary
    assert close(s["demographic_parity_ratio"], fl["demographic_parity_ratio"])
    assert close(s["equalized_odds_difference"], fl["equalized_odds_difference"])
    assert close(s["demographic_parity_difference"], fl["difference"]["selection_rate"])
    return checked + 3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--fl-reps", type=int, default=3)
    ap.add_argument("--wb-reps", type=int, default=7)
    ap.add_argument("--skip-fairlearn", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    banner(f"W7: fairness by group, {args.rows:,} rows, sex (2) x age band (4)")
    y, p, sens = make_data(args.rows)
    sens_pd = sens.to_pandas()

    run_workbench(y[:10_000], p[:10_000], sens[:10_000], 200)  # warm-up (imports), not timed
    wb0, wb200 = [], []
    rep0 = rep200 = None
    for _ in range(args.wb_reps):
        t, rep0 = timed(lambda: run_workbench(y, p, sens, 0))
        wb0.append(t)
        t, rep200 = timed(lambda: run_workbench(y, p, sens, 200))
        wb200.append(t)
    log(f"workbench fairness_report, n_bootstrap=0:   median {fmt_s(median(wb0))}  "
        f"(all: {', '.join(fmt_s(t) for t in wb0)})")
    log(f"workbench fairness_report, n_bootstrap=200: median {fmt_s(median(wb200))}")

    result = {
        "rows": args.rows,
        "workbench_s": wb0,
        "workbench_median_s": median(wb0),
        "workbench_bootstrap200_s": wb200,
        "workbench_bootstrap200_median_s": median(wb200),
        "summary": {k: rep0.summary[k] for k in ("demographic_parity_difference",
                                                  "demographic_parity_ratio",
                                                  "equalized_odds_difference",
                                                  "equal_opportunity_difference")},
    }
    if not args.skip_fairlearn:
        fl_times, fl = [], None
        for i in range(args.fl_reps):
            t, fl = timed(lambda: run_fairlearn(y, p, sens_pd))
            fl_times.append(t)
            log(f"fairlearn MetricFrame + summaries, rep {i + 1}: {fmt_s(t)}")
        checked = compare(fl, rep0)
        compare(fl, rep200)
        ratio = median(fl_times) / median(wb0)
        log(f"fairlearn median {fmt_s(median(fl_times))}; workbench median {fmt_s(median(wb0))} "
            f"-> {ratio:,.0f}x faster (bar {BAR:.0f}x: {'met' if ratio >= BAR else 'NOT met'}); "
            f"with bootstrap {median(fl_times) / median(wb200):,.0f}x")
        log(f"numbers: {checked} values equal to 1e-9")
        result.update({
            "fairlearn_s": fl_times,
            "fairlearn_median_s": median(fl_times),
            "speedup": ratio,
            "speedup_with_bootstrap": median(fl_times) / median(wb200),
            "bar": BAR,
            "bar_met": ratio >= BAR,
            "values_compared": checked,
            "values_equal": True,
        })
    path = write_results("w7_fairness", result)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
