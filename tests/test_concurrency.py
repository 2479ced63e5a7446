"""The issue's test: four processes log 200 runs each into one DuckDB store at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import workbench as wb

N_PROCS = 4
N_RUNS = 200

_LOGGER = textwrap.dedent("""\
    import sys, time
    import workbench as wb

    store, proc, n_runs, start_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    ws = wb.connect(store=store, user="dana")
    while time.time() < start_at:  # all four start logging together
        time.sleep(0.005)
    for i in range(n_runs):
        with ws.start_run("concurrent", name=f"p{proc}-r{i}") as run:
            run.log_params({"proc": proc, "i": i, "model": "rf"})
            run.set_tags({"writer": f"p{proc}"})
            for step in range(3):
                run.log_metrics({"loss": 1.0 / (step + 1 + i), "acc": (i % 10) / 10}, step=step)
    ws.close()
    print("done", proc, flush=True)
""")


def test_four_processes_log_200_runs_each_into_one_store(ws, op, store_path, tmp_path):
    op.add_user("cora", "compliance_officer")
    ws.close()
    script = tmp_path / "logger.py"
    script.write_text(_LOGGER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    start_at = time.time() + 3.0  # time for the interpreters to import workbench
    procs = [subprocess.Popen([sys.executable, str(script), str(store_path), str(p), str(N_RUNS), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for p in range(N_PROCS)]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=90)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (rc, out, err) in enumerate(results):
        assert rc == 0, f"process {p} exited {rc}:\n{err}"
        assert "Traceback" not in err and "Error" not in err and "workbench:" not in err, err
        assert out.strip() == f"done {p}"

    runs = ws.search_runs(experiment="concurrent")
    assert runs.height == N_PROCS * N_RUNS
    assert runs["run_id"].n_unique() == N_PROCS * N_RUNS
    assert runs["status"].unique().to_list() == ["FINISHED"]
    assert runs["end_time"].null_count() == 0
    per_proc = runs.group_by("params.proc").len().sort("params.proc")
    assert per_proc["params.proc"].to_list() == [str(p) for p in range(N_PROCS)]
    assert per_proc["len"].to_list() == [N_RUNS] * N_PROCS
    assert sorted(runs["run_name"].to_list()) == sorted(f"p{p}-r{i}" for p in range(N_PROCS) for i in range(N_RUNS))
    for row in runs.filter(runs["run_name"].is_in(["p0-r0", "p3-r199"])).iter_rows(named=True):
        i = int(row["params.i"])
        assert row["metrics.loss"] == 1.0 / (3 + i) and row["metrics.acc"] == (i % 10) / 10
        assert row["tags.writer"] == f"p{row['params.proc']}"
        assert ws.metric_history(row["run_id"], "loss")["step"].to_list() == [0, 1, 2]
    assert ws.counts()["runs"] == N_PROCS * N_RUNS
    assert ws.store.scalar("select count(*) from metrics") == N_PROCS * N_RUNS * 3 * 2

    cora = wb.connect(store_path, user="cora")
    check = cora.verify_audit()
    assert check.ok, check.reason
    events = cora.audit_events()
    assert check.n_events == events.height
    actions = events.group_by("action").len()
    counts = dict(actions.iter_rows())
    assert counts["run.start"] == N_PROCS * N_RUNS
    assert counts["run.end"] == N_PROCS * N_RUNS
    assert counts["experiment.create"] == 1
