"""Audit chain verification: 1M events, the issue's bar is under 10 s.

Builds (once, cached in bench/results/) a store whose chain holds 1,000,000 events shaped
like real ones (run, metric, sign-in and request events with small JSON payloads), hashed
exactly as :func:`workbench.store.audit.append` would and appended as Arrow batches, with the
runs and metric points (two a run) the events describe, so that verify's check of the
tables against the chain does its full work. Then times
``ws.verify_audit()`` (median of ``--reps``), and with an anchor. There is no anchor tool
to compare with: MLflow keeps no audit trail at all (mlflow#2863).

    python bench/w8_audit_verify.py [--events 1000000] [--reps 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import banner, cached_store, fmt_s, log, median, write_results  # noqa: E402

from workbench.store import shared

BAR_S = 10.0
#: One unit of six events, as a run and a request leave them: each unit's run is in the runs
#: table with its two metric points, so the tables agree with the chain and verify replays it.
ACTIONS = [("run.start", "run"), ("run.log_metrics", "run"), ("run.end", "run"), ("auth.sign_in", "user"),
           ("request.create", "request"), ("request.decide", "request")]


def build(path: Path, n: int) -> None:
    import pyarrow as pa

    from workbench.store import audit, audit_replay
    from workbench.workspace import operator_workspace

    op = operator_workspace(path)
    op.add_user("cora", "compliance_officer")
    op.close()
    shared.close(path)
    import duckdb

    con = duckdb.connect(str(path))
    (seq, prev), = con.execute("select seq, hash from audit_head").fetchall()
    con.execute("insert into experiments (id, name, created_by, created_at) values (nextval('experiments_id_seq'), "
                "'w8', 'cora', now())")
    (exp_id,), = con.execute("select id from experiments where name = 'w8'").fetchall()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    chunk = 100_000
    while seq < n:
        rows, runs, points = [], [], []
        for _ in range(min(chunk, n - seq)):
            seq += 1
            action, kind = ACTIONS[seq % len(ACTIONS)]
            unit = seq // len(ACTIONS)
            ts = t0 + timedelta(milliseconds=seq)
            entity = {"run": f"run{unit:09d}", "user": "cora", "request": str(unit)}[kind]
            if action == "run.start":
                payload = {"experiment": "w8", "name": f"r{unit}", "parent_run_id": None, "git_commit": None,
                           "source": "w8"}
                runs.append(dict(run_id=entity, experiment_id=exp_id, name=f"r{unit}", status="FINISHED",
                                 user_name="cora", start_time=ts))
            elif action == "run.log_metrics":
                keys, steps, values = ["auc", "loss"], [0, 0], [(unit % 97) / 97, 1 / (1 + unit % 13)]
                payload = {"points": 2, "keys": keys, "digest": f"{audit_replay.points_digest(keys, steps, values):064x}"}
                points += [dict(run_id=entity, key=k, value=v, step=s, ts=ts) for k, s, v in zip(keys, steps, values)]
            else:
                payload = {"status": "FINISHED", "seq": seq % 500}
            e = audit.Event("cora", "compliance_officer", action, kind, entity, {})
            payload = audit.canonical_json(payload)
            h = audit.event_hash(prev, seq, ts, e, payload)
            rows.append(dict(seq=seq, ts=ts, actor=e.actor, role=e.role, action=e.action, entity_type=e.entity_type,
                             entity_id=e.entity_id, payload=payload, prev_hash=prev, hash=h))
            prev = h
        con.from_arrow(pa.Table.from_pylist(rows)).insert_into("audit_events")
        if runs:
            runs_table = pa.Table.from_pylist(runs)  # noqa: F841 - read by name in the statement
            con.execute("insert into runs (run_id, experiment_id, name, status, user_name, start_time) "
                        "select run_id, experiment_id, name, status, user_name, start_time from runs_table")
        if points:
            points_table = pa.Table.from_pylist(points)  # noqa: F841 - read by name in the statement
            con.execute("insert into metrics select run_id, key, value, step, ts from points_table")
    con.execute("update audit_head set seq = ?, hash = ?", [seq, prev])
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    banner(f"W8: verify an audit chain of {args.events:,} events")
    path = cached_store(f"w8_audit_tables_{args.events}.duckdb", lambda p: build(p, args.events), args.rebuild)
    import workbench as wb

    ws = wb.connect(path, user="cora")
    mark = ws.audit_anchor()
    times, anchored = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        check = ws.verify_audit()
        times.append(time.perf_counter() - t)
        assert check.ok and check.n_events >= args.events, check
        t = time.perf_counter()
        assert ws.verify_audit(mark).ok
        anchored.append(time.perf_counter() - t)
    log(f"verify: median {fmt_s(median(times))} of {args.reps} ({', '.join(fmt_s(x) for x in times)}); "
        f"with the anchor {fmt_s(median(anchored))} -> {'under' if median(times) < BAR_S else 'OVER'} {BAR_S:.0f} s")
    write_results("w8_audit_verify", {"events": check.n_events, "seconds": times, "anchored_seconds": anchored,
                                      "median_s": median(times), "bar_s": BAR_S})


if __name__ == "__main__":
    main()
