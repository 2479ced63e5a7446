"""Scheduled reports: cron arithmetic, each occurrence exported once, failures retried, two schedulers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from _raw import raw_sql

import workbench as wb
from workbench.reports import schedules

T0 = datetime(2026, 11, 2, 5, 0, tzinfo=timezone.utc)  # a Monday, before 06:00


def test_cron_arithmetic_due_missed_and_refusals():
    weekly = "0 6 * * MON"
    assert schedules.due(weekly, last=None, now=T0, created=T0 - timedelta(days=1)) is None  # not yet 06:00
    assert schedules.due(weekly, last=None, now=T0 + timedelta(hours=2), created=T0) == (T0 + timedelta(hours=1), 0)
    three_weeks = T0 + timedelta(days=21, hours=2)
    assert schedules.due(weekly, last=T0 + timedelta(hours=1), now=three_weeks) == (T0 + timedelta(days=21, hours=1), 2)
    assert schedules.next_due(weekly, T0) == T0 + timedelta(hours=1)
    for bad in ("every monday", "61 * * * *", "0 6 * *", "0 6 * * MON extra", ""):
        with pytest.raises(wb.ValidationError, match="Not a cron expression"):
            schedules.check_cron(bad)


@pytest.fixture
def casey(op, store_path):
    from sklearn.linear_model import LogisticRegression

    op.add_user("dana", "data_scientist")
    op.add_user("casey", "compliance_officer")
    dana = wb.connect(store_path, user="dana")
    with dana.start_run("s") as run:
        run.register_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "scorer", risk_tier="low")
    return wb.connect(store_path, user="casey")


def _backdate(ws, store_path, name: str, when: datetime) -> None:
    ws.close()
    raw_sql(store_path, "update report_schedules set created_at = ? where name = ?", [when, name])


def test_run_due_twice_exports_once_and_catches_up_missed_weeks(casey, store_path, tmp_path):
    casey.add_schedule("weekly-card", "0 6 * * MON", "model-card", "scorer", "md", tmp_path)
    _backdate(casey, store_path, "weekly-card", T0)
    first = casey.run_due_schedules(now=T0 + timedelta(days=14, hours=2))  # three Mondays passed
    assert [(o["status"], o["missed"]) for o in first] == [("ok", 2)]
    assert casey.run_due_schedules(now=T0 + timedelta(days=14, hours=3)) == []  # nothing new: not again
    assert len(list(tmp_path.glob("model-card-scorer-*.md"))) == 1
    nxt = casey.run_due_schedules(now=T0 + timedelta(days=21, hours=2))
    assert [(o["status"], o["missed"]) for o in nxt] == [("ok", 0)]
    runs = casey.schedule_runs()
    assert runs["status"].to_list() == ["ok", "ok"] and runs["sha256"].null_count() == 0
    listed = casey.schedules(now=T0 + timedelta(days=21, hours=2)).row(0, named=True)
    assert listed["last_status"] == "ok" and listed["next_due"] == T0 + timedelta(days=28, hours=1)


def test_a_failed_export_is_recorded_and_retried(casey, store_path, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    casey.add_schedule("pack", "0 6 * * *", "validation", "scorer", "json", out)
    _backdate(casey, store_path, "pack", T0)
    out.rmdir()  # the folder vanished after the schedule was made
    now = T0 + timedelta(hours=2)
    failed = casey.run_due_schedules(now=now)
    assert failed[0]["status"] == "failed" and "does not exist" in failed[0]["error"]
    assert casey.schedules()["last_status"].to_list() == ["failed"]
    out.mkdir()
    retried = casey.run_due_schedules(now=now)  # the same occurrence, tried again
    assert [o["status"] for o in retried] == ["ok"] and len(list(out.iterdir())) == 1
    assert casey.schedule_runs()["status"].to_list() == ["ok", "failed"]


def test_bad_schedules_are_refused(casey, tmp_path):
    with pytest.raises(wb.ValidationError, match="Not a cron expression"):
        casey.add_schedule("x", "whenever", "model-card", "scorer", "html", tmp_path)
    with pytest.raises(wb.ValidationError, match="does not exist"):
        casey.add_schedule("x", "0 6 * * *", "model-card", "scorer", "html", tmp_path / "nope")
    with pytest.raises(wb.NotFoundError, match="'nobody'"):
        casey.add_schedule("x", "0 6 * * *", "model-card", "nobody", "html", tmp_path)
    with pytest.raises(wb.ValidationError, match="format must be"):
        casey.add_schedule("x", "0 6 * * *", "model-card", "scorer", "xlsx", tmp_path)
    casey.add_schedule("x", "0 6 * * *", "audit", None, "json", tmp_path)
    with pytest.raises(wb.ConflictError, match="exists already"):
        casey.add_schedule("x", "0 7 * * *", "audit", None, "json", tmp_path)
    casey.remove_schedule("x")
    assert casey.schedules().is_empty()
    with pytest.raises(wb.PermissionDenied):
        wb.connect(casey.store.location, user="dana").add_schedule("y", "0 6 * * *", "audit", None, "json", tmp_path)


def test_two_schedulers_at_once_export_each_occurrence_once(casey, store_path, tmp_path):
    casey.add_schedule("audit-daily", "0 * * * *", "audit", None, "json", tmp_path)
    _backdate(casey, store_path, "audit-daily", datetime.now(timezone.utc) - timedelta(hours=3))
    start = time.time() + 2
    script = (f"import time, sys; time.sleep(max(0, {start} - time.time())); "
              "from workbench.cli import main; sys.argv = ['workbench', 'schedule', 'run-due', '--store', "
              f"{str(store_path)!r}]; main()")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WORKBENCH_")}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len(list(tmp_path.glob("audit-all-*.json"))) == 1, outs
    ws = wb.connect(store_path, user="casey")
    assert ws.schedule_runs()["status"].to_list() == ["ok"]
    said = sorted(o[0].strip() for o in outs)
    winners = [s for s in said if s.startswith("audit-daily: ok")]
    losers = [s for s in said if s not in winners]
    assert len(winners) == 1 and losers[0] in ("Nothing due.", "audit-daily: skipped"), said


def test_cli_schedule_commands(casey, store_path, tmp_path):
    from _demo_store import run_cli

    casey.close()
    bad = run_cli("schedule", "add", "--name", "w", "--cron", "61 * * * *", "--kind", "audit", "--format", "json",
                  "--out", tmp_path, "--store", store_path)
    assert bad.returncode == 1 and "Not a cron expression" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_cli("schedule", "add", "--name", "w", "--cron", "0 6 * * MON", "--kind", "model-card", "--model", "scorer",
                 "--format", "md", "--out", tmp_path, "--store", store_path)
    assert ok.returncode == 0 and "next due" in ok.stdout, ok.stderr
    listed = run_cli("schedule", "list", "--store", store_path)
    assert listed.stdout.startswith("w  '0 6 * * MON'  model-card scorer md") and "never run" in listed.stdout
    assert run_cli("schedule", "run-due", "--store", store_path).stdout.strip() == "Nothing due."
    assert run_cli("schedule", "remove", "w", "--store", store_path).returncode == 0


def test_the_long_running_scheduler_exports_and_stops_on_sigterm(casey, store_path, tmp_path):
    import signal

    casey.add_schedule("hourly", "0 * * * *", "model-card", "scorer", "json", tmp_path)
    _backdate(casey, store_path, "hourly", datetime.now(timezone.utc) - timedelta(hours=2))
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WORKBENCH_")}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "scheduler", "--poll", "0.5", "--store",
                             str(store_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob("model-card-scorer-*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert list(tmp_path.glob("model-card-scorer-*.json")), "the scheduler exported nothing"
        time.sleep(1.5)  # a few more polls: nothing new is due
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.count("hourly: ok") == 1 and out.rstrip().endswith("Scheduler stopped.")
    assert len(list(tmp_path.glob("model-card-scorer-*.json"))) == 1


_CRASH_AFTER_CLAIM = """
import os, sys
from datetime import datetime
import workbench as wb
from workbench.reports import documents as reports

def crash(*args, **kwargs):
    os._exit(9)  # dies between claim and finish, as under kill -9 or a power cut: no cleanup runs

reports.export = crash
wb.connect(sys.argv[1], user="casey").run_due_schedules(now=datetime.fromisoformat(sys.argv[2]))
"""


def _crash_after_claim(store_path, now: datetime) -> int:
    """Run the due schedules in a process that dies once it has claimed; its pid."""
    proc = subprocess.run([sys.executable, "-c", _CRASH_AFTER_CLAIM, str(store_path), now.isoformat()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    running = raw_sql(store_path, "select runner from report_runs where status = 'running'")
    assert len(running) == 1, running
    return int(running[0][0].rsplit(":", 1)[1])


def test_a_run_whose_process_died_after_its_claim_is_marked_interrupted_and_retried(casey, store_path, tmp_path):
    casey.add_schedule("pack", "0 6 * * *", "model-card", "scorer", "md", tmp_path)
    _backdate(casey, store_path, "pack", T0)
    now = T0 + timedelta(hours=2)
    dead = _crash_after_claim(store_path, now)
    assert list(tmp_path.glob("model-card-scorer-*.md")) == []

    outcomes = casey.run_due_schedules(now=now)  # the same moment: only the dead run's occurrence is due
    assert [(o["schedule"], o["status"]) for o in outcomes] == [("pack", "interrupted"), ("pack", "ok")], outcomes
    assert outcomes[0]["retried"] is True and f":{dead} ended" in outcomes[0]["error"]
    assert outcomes[1]["due_at"] == outcomes[0]["due_at"] == T0 + timedelta(hours=1)  # the same occurrence
    assert len(list(tmp_path.glob("model-card-scorer-*.md"))) == 1
    runs = casey.schedule_runs()
    assert runs["status"].to_list() == ["ok", "failed"]
    assert runs["error"][1].startswith("interrupted: its process") and runs["finished_at"][1] is not None
    event = casey.audit_events().filter(action="schedule.interrupted").row(0, named=True)
    payload = json.loads(event["payload"])
    assert payload["run_id"] == runs["id"][1] and payload["status"] == {"before": "running", "after": "failed"}
    due = (T0 + timedelta(hours=1)).isoformat()
    assert payload["last_due_at"] == {"before": due, "after": None}  # handed back: never handled before
    assert casey.run_due_schedules(now=now) == []  # recovered once, exported once
    assert casey.verify_audit().ok


def test_a_run_that_may_still_be_working_is_left_until_the_timeout(casey, store_path, tmp_path, monkeypatch):
    casey.add_schedule("pack", "0 6 * * *", "model-card", "scorer", "md", tmp_path)
    _backdate(casey, store_path, "pack", T0)
    now = T0 + timedelta(hours=2)
    _crash_after_claim(store_path, now)
    # a runner on another machine (its pid cannot be checked), then a live process of this one
    for runner in ("other-host:4242", f"{socket.gethostname()}:{os.getpid()}"):
        raw_sql(store_path, "update report_runs set runner = ?", [runner])
        assert casey.run_due_schedules(now=now) == []
        assert casey.schedule_runs()["status"].to_list() == ["running"]
    assert list(tmp_path.glob("model-card-scorer-*.md")) == []

    monkeypatch.setenv("WORKBENCH_REPORT_TIMEOUT_MINUTES", "soon")
    with pytest.raises(wb.ValidationError, match="WORKBENCH_REPORT_TIMEOUT_MINUTES must be a positive number"):
        casey.run_due_schedules(now=now)
    monkeypatch.setenv("WORKBENCH_REPORT_TIMEOUT_MINUTES", "30")
    casey.close()
    raw_sql(store_path, "update report_runs set started_at = started_at - interval '31 minutes'")
    outcomes = casey.run_due_schedules(now=now)
    assert [o["status"] for o in outcomes] == ["interrupted", "ok"], outcomes
    assert "still running after 30 minutes" in outcomes[0]["error"]
    assert casey.schedule_runs()["status"].to_list() == ["ok", "failed"]
    assert len(list(tmp_path.glob("model-card-scorer-*.md"))) == 1


def test_an_interrupted_run_whose_occurrence_was_covered_since_is_not_exported_again(casey, store_path, tmp_path):
    casey.add_schedule("pack", "0 6 * * *", "model-card", "scorer", "md", tmp_path)
    _backdate(casey, store_path, "pack", T0)
    dead = _crash_after_claim(store_path, T0 + timedelta(hours=2))
    casey.close()
    # as if the dead runner's pid were alive when the next day's run came: it claimed the next occurrence
    raw_sql(store_path, "update report_runs set runner = ?", [f"{socket.gethostname()}:{os.getpid()}"])
    next_day = T0 + timedelta(days=1, hours=2)
    assert [o["status"] for o in casey.run_due_schedules(now=next_day)] == ["ok"]
    raw_sql(store_path, "update report_runs set runner = ? where status = 'running'", [f"{socket.gethostname()}:{dead}"])
    outcomes = casey.run_due_schedules(now=next_day)
    assert [(o["status"], o["retried"]) for o in outcomes] == [("interrupted", False)], outcomes
    assert casey.schedule_runs()["status"].to_list() == ["ok", "failed"]
    assert len(list(tmp_path.glob("model-card-scorer-*.md"))) == 1


def test_a_padded_name_is_one_name_everywhere(casey, store_path, tmp_path):
    """The name is stored stripped: the duplicate check, the audit event and the CLI use the same."""
    from _demo_store import run_cli

    casey.add_schedule("  nightly ", "0  2 * * *", "audit", None, "json", tmp_path)
    [row] = casey.schedules().select(["name", "cron"]).rows()
    assert row == ("nightly", "0 2 * * *")
    event = casey.audit_events(action="schedule.add").row(0, named=True)
    assert event["entity_id"] == "nightly" and '"cron":"0 2 * * *"' in event["payload"]
    with pytest.raises(wb.ConflictError, match="exists already"):
        casey.add_schedule("nightly  ", "0 3 * * *", "audit", None, "json", tmp_path)
    casey.close()
    added = run_cli("schedule", "add", "--name", " padded", "--cron", "0 6 * * MON", "--kind", "audit",
                    "--format", "json", "--out", tmp_path, "--store", store_path)
    assert added.returncode == 0 and added.stdout.startswith("Added padded: next due"), added.stderr
