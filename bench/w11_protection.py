"""What data protection costs: pseudonymised prediction logs and encrypted artifacts.

Two measurements, each side by side in one run on the same data (medians of ``--reps``):

1. ``ws.log_predictions`` of ``--rows`` predictions (100k distinct customer ids and emails,
   20 numeric features) with the identifying columns tokenised (the default) against the
   same call with those columns cleared (``marks={...: 'none'}``). The anchor for the token
   step itself is the obvious hand-written alternative: ``hmac`` per row through pandas
   ``Series.map``, as a notebook would do it.
2. An artifact of ``--mb`` MB written and read back (``artifacts.put_bytes`` /
   ``get_bytes``, which check the sha256 on every read) with and without an artifact key.

    python bench/w11_protection.py [--rows 1000000] [--mb 256] [--reps 3]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    banner,
    fmt_s,
    fresh_dir,
    log,
    median,
    new_workspace,
    timed,
    write_results,
)


def frame(rows: int):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(11)
    customer = rng.integers(0, 100_000, rows)
    cols = {f"x{i}": rng.normal(size=rows) for i in range(20)}
    return pl.DataFrame({
        "request_id": [f"r{i:09d}" for i in range(rows)],
        "customer_id": [f"C{c:07d}" for c in customer],
        "email": [f"c{c}@example.org" for c in customer],
        "timestamp": np.datetime64("2026-01-01T00:00:00", "us") + np.arange(rows).astype("timedelta64[s]"),
        "prediction": rng.random(rows),
        **cols,
    })


def bench_logging(rows: int, reps: int) -> dict:
    from sklearn.dummy import DummyClassifier

    from workbench.store import keys

    data = frame(rows)
    clear = {"customer_id": "none", "email": "none"}
    times = {"tokenised": [], "clear": []}
    for _ in range(reps):
        for mode in times:
            with fresh_dir("w11") as d:
                ws = new_workspace(d / "store.duckdb")
                mv = ws.register_model(DummyClassifier().fit([[0], [1]], [0, 1]), "m")
                t, out = timed(lambda: ws.log_predictions(mv, data, marks=None if mode == "tokenised" else clear))
                times[mode].append(t)
                ws.close()
        log(f"log_predictions {rows:,} rows: tokenised {fmt_s(times['tokenised'][-1])}, clear {fmt_s(times['clear'][-1])}")
    key = keys.pseudonym_key()
    series = data["customer_id"].to_pandas()
    naive = []
    for _ in range(reps):
        t, _ = timed(lambda: series.map(lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32]))
        naive.append(t)
    from workbench.protection import pseudonyms

    ours = [timed(lambda: pseudonyms.pseudonymise(data.select("customer_id"), ["customer_id"], key))[0]
            for _ in range(reps)]
    return {"rows": rows, "tokenised_s": median(times["tokenised"]), "clear_s": median(times["clear"]),
            "overhead_ratio": median(times["tokenised"]) / median(times["clear"]),
            "token_column_ours_s": median(ours), "token_column_pandas_map_s": median(naive),
            "token_column_speedup": median(naive) / median(ours)}


def bench_encryption(mb: int, reps: int) -> dict:
    from workbench.store import artifacts

    data = os.urandom(mb << 20)
    out = {}
    for mode in ("clear", "encrypted"):
        writes, reads = [], []
        for _ in range(reps):
            with fresh_dir("w11a") as d:
                if mode == "encrypted":
                    os.environ["WORKBENCH_ARTIFACT_KEY"] = "ab" * 32
                try:
                    tw, (digest, _) = timed(lambda: artifacts.put_bytes(d, data))
                    tr, back = timed(lambda: artifacts.get_bytes(d, digest))
                    assert back == data
                finally:
                    os.environ.pop("WORKBENCH_ARTIFACT_KEY", None)
                writes.append(tw)
                reads.append(tr)
        out[mode] = {"write_s": median(writes), "read_s": median(reads),
                     "write_mb_s": mb / median(writes), "read_mb_s": mb / median(reads)}
        log(f"{mode}: write {fmt_s(median(writes))}, read {fmt_s(median(reads))} for {mb} MB")
    out["write_ratio"] = out["encrypted"]["write_s"] / out["clear"]["write_s"]
    out["read_ratio"] = out["encrypted"]["read_s"] / out["clear"]["read_s"]
    return {"mb": mb, **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--mb", type=int, default=256)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    os.environ.setdefault("WORKBENCH_PSEUDONYM_KEY", "cd" * 32)
    banner("W11 data protection: pseudonymised logs, encrypted artifacts")
    logging_ = bench_logging(a.rows, a.reps)
    enc = bench_encryption(a.mb, a.reps)
    print(f"log_predictions, {a.rows:,} rows: tokenised {fmt_s(logging_['tokenised_s'])} vs clear "
          f"{fmt_s(logging_['clear_s'])} = {logging_['overhead_ratio']:.2f}x")
    print(f"token column, {a.rows:,} rows: ours {fmt_s(logging_['token_column_ours_s'])} vs pandas map(hmac) "
          f"{fmt_s(logging_['token_column_pandas_map_s'])} = {logging_['token_column_speedup']:.1f}x faster")
    print(f"{a.mb} MB artifact: write {enc['write_ratio']:.2f}x, read {enc['read_ratio']:.2f}x the time in the clear "
          f"(encrypted {enc['encrypted']['write_mb_s']:.0f} / {enc['encrypted']['read_mb_s']:.0f} MB/s)")
    print("wrote", write_results("w11_protection", {"logging": logging_, "encryption": enc, "reps": a.reps}))


if __name__ == "__main__":
    main()
