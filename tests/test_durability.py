"""Acknowledged means committed: runs survive their process, and committed data survives its log.

Each process case runs as a real child process (fork, ``os._exit``, a terminated Pool,
SIGTERM, ``kill -9``); the store is then read from this process. The write-ahead-log cases
damage real files beside a real DuckDB store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
from _raw import raw_sql

import workbench as wb

PRELUDE = """
import faulthandler, os, sys, time, multiprocessing as mp
faulthandler.dump_traceback_later(200, exit=True)  # a hung child says where, before the test gives up
import workbench as wb
STORE = sys.argv[1]

def log_runs(ws, prefix, n):
    for i in range(n):
        with ws.start_run("durable", name=f"{prefix}-{i}") as run:
            run.log_params({"i": i})
            for step in range(5):
                run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
"""


def _wal(store):
    return store.with_name(store.name + ".wal")  # DuckDB's write-ahead log, beside the file


def _script(body: str) -> str:
    return PRELUDE + textwrap.dedent(body)


def _start(store, body: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _script(body), str(store)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _run(store, body: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _script(body), str(store)], capture_output=True, text=True,
                          timeout=timeout)


def _wait_for(proc: subprocess.Popen, line: str) -> None:
    got = proc.stdout.readline().strip()
    assert got == line, (got, proc.stderr.read() if proc.poll() is not None else "")


def _runs(store_path) -> list[tuple]:
    return raw_sql(store_path, "select name, status, error from runs order by name")


def _points(store_path) -> int:
    return raw_sql(store_path, "select count(*) from metrics")[0][0]


@pytest.fixture
def dana_store(ws, store_path):
    """A store with ``dana`` (data scientist), released so child processes can take it."""
    ws.close()
    return store_path


def test_runs_of_forked_children_are_stored_when_the_children_return(dana_store):
    done = _run(dana_store, """
        ws = wb.connect(STORE, user="dana")
        log_runs(ws, "parent", 1)           # the parent holds the file when it forks
        procs = [mp.get_context("fork").Process(target=log_runs, args=(ws, f"child{k}", 25)) for k in range(4)]
        for p in procs: p.start()
        for p in procs: p.join()
        print([p.exitcode for p in procs])
        os._exit(0)                          # not even the parent's exit hooks
    """)
    assert done.returncode == 0 and done.stdout.strip() == "[0, 0, 0, 0]", done.stderr
    runs = _runs(dana_store)
    assert len(runs) == 101 and {r[1] for r in runs} == {"FINISHED"}
    assert _points(dana_store) == 101 * 5


def test_runs_are_stored_when_os_exit_follows_the_block(dana_store):
    done = _run(dana_store, """
        ws = wb.connect(STORE, user="dana")
        log_runs(ws, "r", 20)
        os._exit(0)
    """)
    assert done.returncode == 0, done.stderr
    assert [r[1] for r in _runs(dana_store)] == ["FINISHED"] * 20 and _points(dana_store) == 100


def test_runs_are_stored_when_a_pool_terminates_its_workers(dana_store):
    done = _run(dana_store, """
        def work(k):
            log_runs(wb.connect(STORE, user="dana"), f"w{k}", 5)
            return k
        if __name__ == "__main__":
            with mp.get_context("fork").Pool(4) as pool:   # leaving the block terminates the workers
                print(sum(pool.map(work, range(8))))
    """)
    assert done.returncode == 0 and done.stdout.strip() == "28", done.stderr
    assert len(_runs(dana_store)) == 40 and _points(dana_store) == 200


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_runs_are_stored_when_the_process_is_killed_right_after_the_block(dana_store, sig):
    proc = _start(dana_store, """
        ws = wb.connect(STORE, user="dana")
        log_runs(ws, "r", 20)
        print("ended", flush=True)
        time.sleep(120)
    """)
    _wait_for(proc, "ended")
    proc.send_signal(sig)  # at once: no time for anything to happen in the background
    assert proc.wait(timeout=60) == -sig  # no run was open: the signal's own default
    assert [r[1] for r in _runs(dana_store)] == ["FINISHED"] * 20 and _points(dana_store) == 100


def test_sigterm_inside_a_run_ends_it_failed_killed_with_what_it_logged(dana_store):
    proc = _start(dana_store, """
        ws = wb.connect(STORE, user="dana")
        with ws.start_run("durable", name="victim") as run:
            run.log_params({"lr": 0.1})
            run.log_metrics({"loss": 0.5}, step=0)
            print("inside", flush=True)
            time.sleep(120)
    """)
    _wait_for(proc, "inside")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    [(name, status, error)] = _runs(dana_store)
    assert (name, status) == ("victim", "FAILED") and error.startswith("KILLED")
    assert raw_sql(dana_store, "select key, value from params") == [("lr", "0.1")] and _points(dana_store) == 1


def test_a_run_left_running_by_a_killed_process_is_marked_at_the_next_open(dana_store):
    proc = _start(dana_store, """
        ws = wb.connect(STORE, user="dana")
        run = ws.start_run("durable", name="orphan")
        run.log_params({"lr": 0.1})
        run.flush()
        ws.close()
        print("inside", flush=True)
        time.sleep(120)
    """)
    _wait_for(proc, "inside")
    assert [r[:2] for r in _runs(dana_store)] == [("orphan", "RUNNING")]  # its process still lives
    proc.kill()
    proc.wait(timeout=60)
    opened = _run(dana_store, """
        ws = wb.connect(STORE, user="dana")
        run = ws.search_runs(experiment="durable").row(0, named=True)
        print(run["status"], run["params.lr"])
    """)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip() == "FAILED 0.1"
    [(_, status, error)] = _runs(dana_store)
    assert status == "FAILED" and error.startswith(f"KILLED: process {proc.pid}")
    events = raw_sql(dana_store, "select actor, role, payload from audit_events where action = 'run.end'")
    assert [e[:2] for e in events] == [("workbench", "system")] and "KILLED" in events[0][2]


# -- the write-ahead log ----------------------------------------------------------------------------------
def _governance_then_exit(store) -> None:
    done = _run(store, """
        from workbench.workspace import operator_workspace
        from sklearn.linear_model import LogisticRegression
        op = operator_workspace(STORE)
        for name in ("lee", "casey"):
            op.add_user(name, "lead" if name == "lee" else "compliance_officer")
        ws = wb.connect(STORE, user="dana")
        with ws.start_run("durable", name="fit") as run:
            mv = run.register_model(LogisticRegression().fit([[0], [1]], [0, 1]), "scorer", risk_tier="low")
        ws.request_promotion(mv, "Production", "Ready.")
        wb.connect(STORE, user="lee").decide(1, True, "Reviewed.", override_reason="No evidence needed in this test.")
        print(ws.counts()["audit_events"], flush=True)
        os._exit(0)                          # no exit hooks, no release
    """)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.duckdb_file
def test_the_store_file_alone_holds_every_governance_write(dana_store, tmp_path):
    events = _governance_then_exit(dana_store)
    copy = tmp_path / "copy" / "alone.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(dana_store, copy)  # the file the README calls the store, without its log
    assert raw_sql(copy, "select count(*) from audit_events")[0][0] == events
    assert raw_sql(copy, "select stage from model_versions") == [("Production",)]


@pytest.mark.duckdb_file
def test_a_cli_command_leaves_no_log_behind(dana_store):
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "users", "add", "riley", "--role", "reviewer",
                           "--store", str(dana_store)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not _wal(dana_store).exists()
    assert raw_sql(dana_store, "select name from users order by name") == [("dana",), ("riley",)]


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _random(data: bytes) -> bytes:
    return os.urandom(len(data))


def _flip(data: bytes, at: float = 0.5) -> bytes:
    mid = bytearray(data)
    start = int(len(mid) * at)
    for i in range(start, start + 8):
        mid[i] ^= 0xFF
    return bytes(mid)


def _bad_checksum(data: bytes) -> bytes:
    return _flip(data, at=0.3)  # inside an entry: DuckDB refuses the whole log (checked with duckdb 1.4)


@pytest.mark.duckdb_file
@pytest.mark.parametrize("damage", [_truncate, _random, _flip, _bad_checksum],
                         ids=["truncated", "random-bytes", "flipped-bytes", "bad-checksum"])
def test_a_damaged_log_is_reported_as_damaged_and_nothing_is_dropped(dana_store, damage):
    done = _run(dana_store, """
        log_runs(wb.connect(STORE, user="dana"), "r", 10)
        os._exit(0)                          # the runs are committed, in the log
    """)
    assert done.returncode == 0, done.stderr
    wal = _wal(dana_store)
    wal.write_bytes(damage(wal.read_bytes()))
    before = hashlib.sha256(wal.read_bytes()).hexdigest()
    with pytest.raises(wb.StoreError) as info:
        wb.connect(dana_store, user="dana")
    message = str(info.value)
    assert "is damaged" in message and "workbench backup" in message and "workbench recover" in message
    assert "move" not in message
    assert hashlib.sha256(wal.read_bytes()).hexdigest() == before  # left exactly as it was

    recovered = subprocess.run([sys.executable, "-m", "workbench.cli", "recover", "--store", str(dana_store)],
                               capture_output=True, text=True, timeout=120)
    assert recovered.returncode == 0, recovered.stderr
    assert "lost" in recovered.stdout
    [kept] = list(dana_store.parent.glob("*.wal.damaged-*"))
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == before
    from workbench.workspace import operator_workspace

    assert operator_workspace(dana_store).verify_audit().ok
    [payload] = raw_sql(dana_store, "select payload from audit_events where action = 'store.recover'")[0]
    assert '"lost_events":' in payload and '"lost_events":0' not in payload
    if damage is _bad_checksum:  # the log was cut at the bad entry: what came before it was replayed
        assert '"log_cut_at":0' not in payload and '"log_cut_at":null' not in payload
        assert len(_runs(dana_store)) > 0


@pytest.mark.duckdb_file
def test_verify_finds_committed_events_missing_from_a_consistent_chain(dana_store):
    _governance_then_exit(dana_store)
    casey = wb.connect(dana_store, user="casey")
    for _ in range(3):  # events that change no table the chain is checked against
        casey.audit_export("json")
    casey.close()
    cut = raw_sql(dana_store, "select max(seq) from audit_events")[0][0] - 3
    raw_sql(dana_store, "delete from audit_events where seq > ?", [cut])
    raw_sql(dana_store, "update audit_head set seq = ?, hash = (select hash from audit_events where seq = ?)", [cut, cut])
    check = wb.connect(dana_store, user="lee").verify_audit()
    assert not check.ok and "3 committed event(s) are missing" in check.reason


@pytest.mark.duckdb_file
def test_backup_is_a_consistent_copy_and_never_overwrites(dana_store, tmp_path):
    events = _governance_then_exit(dana_store)
    out = tmp_path / "backups" / "store-copy.duckdb"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "workbench.cli", "backup", "--store", str(dana_store), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"head: event {events}" in done.stdout
    shutil.copytree(dana_store.with_suffix(".artifacts"), out.with_suffix(".artifacts"))
    copy = wb.connect(out, user="lee")
    assert copy.counts()["audit_events"] == events and copy.verify_audit().ok
    assert copy.load_model("scorer", "Production").predict([[1]]).tolist() == [1]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "exists already" in again.stderr


def test_runs_ending_together_in_threads_share_commits(ws, monkeypatch):
    import threading

    from workbench.store.writer import Writer

    commits = []
    real = Writer._commit_group
    monkeypatch.setattr(Writer, "_commit_group", lambda self, group: (commits.append(len(group)), real(self, group))[1])
    gate = threading.Barrier(8)

    def work(k: int) -> None:
        gate.wait()
        for i in range(10):
            with ws.start_run("threads", name=f"t{k}-{i}") as run:
                run.log_metrics({"loss": 0.5}, step=0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ws.search_runs(experiment="threads").height == 80
    ended = sum(commits)  # each run's end is one queued batch; more than one per commit means shared commits
    assert ended >= 80 and len(commits) < 80 and max(commits) > 1, commits
