"""The ``workbench`` command, run as a real subprocess (``python -m workbench.cli``)."""

from __future__ import annotations

import subprocess

import _demo_store
import polars as pl
import pytest
import typer
from _demo_store import run_cli

import workbench as wb
from workbench import cli

ROLES_EXPECTED = {"data_scientist", "reviewer", "compliance_officer", "lead", "admin"}


def _command_paths(cmd, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the typer app (typer vendors click: duck-type the groups)."""
    paths = [prefix]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        paths += _command_paths(sub, prefix + (name,))
    return paths


COMMAND_PATHS = _command_paths(typer.main.get_command(cli.app))


def _assert_clean_failure(result, *needles: str) -> str:
    """Non-zero exit, an 'Error: ...' on stderr naming every needle, and no traceback anywhere."""
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    assert result.stderr.startswith("Error: "), out
    for needle in needles:
        assert needle in result.stderr, out
    return result.stderr


@pytest.fixture
def store(tmp_path):
    """A path for a store that does not exist yet."""
    return tmp_path / "new" / "workbench.duckdb"


# -- help -----------------------------------------------------------------------------

def test_every_command_is_covered():
    assert set(COMMAND_PATHS) >= {(), ("init",), ("demo",), ("serve",), ("users",), ("users", "add"),
                                          ("users", "list"), ("users", "unlock"), ("users", "reset-password"),
                                          ("users", "unblock"), ("models",), ("models", "list"), ("audit",),
                                          ("audit", "verify")}


@pytest.fixture(scope="module")
def helps():
    """``--help`` of every command: the root as a real subprocess (the installed entry point), the
    others in this process through typer's runner, which renders the same text (a subprocess
    each cost the suite ~28 s of interpreter start-ups for the same output)."""
    from typer.testing import CliRunner

    results = {(): run_cli("--help")}
    runner = CliRunner()
    for path in COMMAND_PATHS:
        if path:
            got = runner.invoke(cli.app, [*path, "--help"])
            results[path] = subprocess.CompletedProcess(path, got.exit_code, got.stdout,
                                                        got.stderr + (repr(got.exception) if got.exception else ""))
    return results


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "workbench")
def test_help(helps, path):
    result = helps[path]
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    if path and path[-1] in ("init", "demo", "serve", "add", "list", "verify", "unlock", "reset-password", "unblock"):
        assert "--store" in result.stdout  # every command takes --store


# -- init, users, models on fresh stores ----------------------------------------------------

def test_init_creates_store(store):
    assert not store.parent.exists()
    result = run_cli("init", "--store", store)
    assert result.returncode == 0, result.stderr
    assert store.is_file() and store.stat().st_size > 0
    assert str(store) in result.stdout
    assert "0 runs" in result.stdout and "0 users" in result.stdout
    again = run_cli("init", "--store", store)  # an existing store is checked, not recreated
    assert again.returncode == 0, again.stderr
    assert "Store ready" in again.stdout


def test_users_add_and_list(store):
    for name, role in [("riley", "reviewer"), ("dana", "data_scientist")]:
        result = run_cli("users", "add", name, "--role", role, "--password", f"{name}-long-pw", "--store", store)
        assert result.returncode == 0, result.stderr
        assert name in result.stdout and role in result.stdout
    listed = run_cli("users", "list", "--store", store)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["dana data_scientist", "riley reviewer"]
    assert "pw" not in listed.stdout
    dup = run_cli("users", "add", "dana", "--role", "lead", "--password", "long-enough-pw", "--store", store)
    _assert_clean_failure(dup, "dana")


def test_users_add_applies_the_password_policy(store):
    assert run_cli("init", "--store", store).returncode == 0
    weak = run_cli("users", "add", "mallory", "--role", "admin", "--password", "x", "--store", store)
    _assert_clean_failure(weak, "at least 10 characters")
    common = run_cli("users", "add", "mallory", "--role", "admin", "--password", "Password123!", "--store", store)
    _assert_clean_failure(common, "commonly used")
    listed = run_cli("users", "list", "--store", store)
    assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stdout + listed.stderr
    op = wb.workspace.operator_workspace(store)
    try:
        assert not op.audit_events(action="user.*").height  # nothing of the refused calls stored
    finally:
        op.close()


def test_users_unlock_reset_password_and_unblock(store):
    from datetime import datetime, timezone

    from workbench.people import auth

    assert run_cli("users", "add", "dana", "--role", "data_scientist", "--password", "dana-demo-pw",
                   "--store", store).returncode == 0
    t0 = datetime.now(timezone.utc)
    for i in range(5):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store, "dana", f"guess-{i}", address="203.0.113.9", now=t0)
    op = wb.workspace.operator_workspace(store)
    assert op.accounts(now=t0).filter(pl.col("name") == "dana")["locked"].to_list() == [True]
    assert op.blocked_addresses(now=t0)["address"].to_list() == ["203.0.113.9"]
    op.close()

    result = run_cli("users", "unlock", "dana", "--store", store)
    assert result.returncode == 0, result.stderr
    assert "Unlocked dana" in result.stdout
    _assert_clean_failure(run_cli("users", "unlock", "ghost", "--store", store), "ghost")
    result = run_cli("users", "unblock", "203.0.113.9", "--store", store)
    assert result.returncode == 0, result.stderr
    _assert_clean_failure(run_cli("users", "unblock", "not-an-ip", "--store", store), "not an IP address")
    assert auth.sign_in(store, "dana", "dana-demo-pw", address="203.0.113.9").user == "dana"

    _assert_clean_failure(run_cli("users", "reset-password", "dana", "--password", "short", "--store", store),
                          "at least 10 characters")
    _assert_clean_failure(run_cli("users", "reset-password", "dana", "--store", store), "--password")  # no tty
    result = run_cli("users", "reset-password", "dana", "--password", "a-brand-new-secret", "--store", store)
    assert result.returncode == 0, result.stderr
    with pytest.raises(wb.PermissionDenied):
        auth.sign_in(store, "dana", "dana-demo-pw", address="198.51.100.1")
    assert auth.sign_in(store, "dana", "a-brand-new-secret", address="198.51.100.1").user == "dana"
    op = wb.workspace.operator_workspace(store)
    try:
        actions = op.audit_events().sort("seq")["action"].to_list()
        assert [a for a in actions if a in ("user.unlock", "address.unblock", "user.set_password")] == [
            "user.unlock", "address.unblock", "user.set_password"]
        assert op.verify_audit().ok
    finally:
        op.close()


def test_users_add_unknown_role(store):
    result = run_cli("users", "add", "bob", "--role", "wizard", "--password", "pw", "--store", store)
    err = _assert_clean_failure(result, "wizard")
    assert "data_scientist" in err  # says what the valid roles are
    listed = run_cli("users", "list", "--store", store)
    assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stdout + listed.stderr


@pytest.mark.parametrize("command", [("init",), ("models", "list")],
                         ids=" ".join)
def test_garbage_file_as_store(tmp_path, command):
    garbage = tmp_path / "garbage.duckdb"
    content = bytes(range(256)) * 40
    garbage.write_bytes(content)
    result = run_cli(*command, "--store", garbage)
    err = _assert_clean_failure(result, str(garbage))
    assert "not a DuckDB database" in err or "not a workbench store" in err, err
    assert garbage.read_bytes() == content  # left untouched


def test_store_under_regular_file(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("just a file\n")
    store = blocker / "workbench.duckdb"
    result = run_cli("init", "--store", store)
    err = _assert_clean_failure(result, str(blocker))
    assert len(err.strip().splitlines()) == 1, err
    low = err.lower()
    assert "not a directory" in low or "not a folder" in low or "is a file" in low, err
    assert blocker.read_text() == "just a file\n"


def test_store_is_a_directory(tmp_path):
    result = run_cli("init", "--store", tmp_path)
    err = _assert_clean_failure(result, str(tmp_path))
    assert "directory" in err


def test_serve_refuses_a_bad_store(tmp_path):
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"\x00garbage" * 100)
    result = run_cli("serve", "--store", garbage, "--port", "1", timeout=30)
    _assert_clean_failure(result, str(garbage))


def test_models_list_and_audit_on_empty_store(store):
    result = run_cli("models", "list", "--store", store)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "No registered models yet."
    audit = run_cli("audit", "verify", "--store", store)
    assert audit.returncode == 0, audit.stderr
    assert audit.stdout.startswith("OK: 0 events")


# -- demo -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo():
    return _demo_store.demo_store()


def _read(path):
    """A read-only workspace; released afterwards so other processes may open the file."""
    return wb.connect(path)


def test_demo_seeds_quickly_and_prints_passwords(demo):
    # The budget is 90 s on 2 cores. Wall time on this shared machine mostly measures the
    # other jobs running at the same time, so the budget is checked on the CPU time the demo
    # used (with 2 cores available, wall time on an idle machine is at most about that);
    # a wall-clock ceiling still catches a demo that waits (a lock, a hang).
    assert demo.cpu_seconds < 90, f"workbench demo used {demo.cpu_seconds:.0f} s of CPU ({demo.seconds:.0f} s wall)"
    assert demo.seconds < 180, f"workbench demo took {demo.seconds:.0f} s wall ({demo.cpu_seconds:.0f} s CPU)"
    out = demo.result.stdout
    assert "Traceback" not in out + demo.result.stderr
    for name, role in [("dana", "data_scientist"), ("riley", "reviewer"), ("casey", "compliance_officer"),
                       ("lee", "lead"), ("ada", "admin")]:
        line = next((ln for ln in out.splitlines() if ln.split()[:1] == [name]), None)
        assert line is not None, out
        assert line.split() == [name, f"{name}-demo-pw", role], line


def test_demo_content(demo):
    ws = _read(demo.path)
    try:
        credit = ws.search_runs(experiment="credit-risk")
        assert credit.height >= 30
        families = set(credit["params.family"].drop_nulls().to_list())
        assert len(families) >= 3, families
        assert set(ws.experiments()["name"].to_list()) >= {"credit-risk", "diabetes-progression"}
        versions = ws.model_versions()
        stages = set(versions["stage"].to_list())
        assert len(stages) >= 3, stages
        assert "Production" in stages
        credit_versions = ws.model_versions("credit-default")
        assert credit_versions.height == 5
        assert dict(zip(credit_versions["version"], credit_versions["stage"]))[4] == "Production"
        roles = set(ws.users()["role"].to_list())
        assert roles == ROLES_EXPECTED == set(wb.ROLES)
    finally:
        ws.close()


def test_demo_stores_evidence_with_one_fairness_failure(demo):
    ws = _read(demo.path)
    try:
        ev = ws.evidence("credit-default")
        kinds = {v: set(ev.filter(pl.col("version") == v)["kind"]) for v in range(1, 6)}
        # drift against the later month: the champion's, and the two versions asked for promotion
        assert kinds == {v: {"explanation", "fairness"} | ({"drift"} if v in (2, 3, 4) else set())
                         for v in range(1, 6)}, kinds
        verdicts = dict(ev.filter(pl.col("kind") == "fairness").select(["version", "verdict"]).iter_rows())
        # the form-only scorecard leans on the postcode proxy: the one that fails; the rest pass
        assert verdicts == {1: "pass", 2: "pass", 3: "pass", 4: "pass", 5: "fail"}, verdicts
        failed = ws.evidence_summary(ev.filter((pl.col("kind") == "fairness") & (pl.col("version") == 5))["id"][0])
        assert any("four-fifths" in r for r in failed["reasons"]), failed["reasons"]
        for eid in ev.filter(pl.col("kind") == "explanation")["id"]:
            assert ws.evidence_summary(eid)["additivity"]["passed"] is True
    finally:
        ws.close()


def test_demo_logs_months_of_predictions_with_labels_and_one_alert(demo):
    ws = _read(demo.path)
    try:
        monitored = ws.monitored_versions()
        # the champion for 17 weeks; the canary (v2, a quarter of the traffic) for the last six
        assert monitored.select(["name", "version", "predictions"]).rows() == [("credit-default", 2, 6 * 175),
                                                                               ("credit-default", 4, 17 * 700)]
        assert ws.rollout("credit-default")["challenger_version"] == 2
        report = ws.monitor(("credit-default", 4), "1w", alerts=False)
        assert report.windows.height == 17 and report.reference and report.task == "classification"
        labelled = report.windows["labelled"].to_list()
        assert labelled[-2:] == [0, 0] and all(400 < n < 700 for n in labelled[:-2])  # most, but not the newest
        alerts = ws.alerts("credit-default")
        assert alerts.select(["version", "metric"]).rows() == [(4, "drift_share")]
        assert alerts["window_start"][0] == report.windows["window_start"][-1]  # the drifted last week
        assert ws.monitor_policy("credit-default")["thresholds"]["max_drift_share"] == 0.3
    finally:
        ws.close()


def test_demo_has_requests_in_every_state_a_rollback_and_a_sound_audit_trail(demo):
    from workbench.workspace import operator_workspace

    ws = operator_workspace(demo.path)
    try:
        reqs = ws.requests()
        assert sorted(reqs["status"].to_list()) == ["approved", "approved", "pending", "pending", "rejected"]
        stale = reqs.filter(pl.col("stale"))
        assert stale.select(["name", "version", "status"]).rows() == [("credit-default", 2, "pending")]
        rejected = ws.request(reqs.filter(pl.col("status") == "rejected")["id"][0])
        assert rejected.version == 5 and "four-fifths" in rejected.decisions[0]["comment"]
        overridden = ws.request(reqs.filter((pl.col("name") == "credit-default") & (pl.col("status") == "approved"))["id"][0])
        assert [d["role"] for d in overridden.decisions] == ["lead", "compliance_officer"]
        assert overridden.decisions[0]["override_reason"]
        stages = dict(ws.model_versions("credit-default").select(["version", "stage"]).rows())
        assert (stages[3], stages[4]) == ("Archived", "Production")  # v3 approved, then rolled back
        assert ws.audit_events(action="model.rollback").height == 1
        assert ws.verify_audit().ok
    finally:
        ws.close()


def test_demo_users_and_models_via_cli(demo):
    users = run_cli("users", "list", "--store", demo.path)
    assert users.returncode == 0, users.stderr
    assert {ln.split()[1] for ln in users.stdout.splitlines()} == ROLES_EXPECTED
    models = run_cli("models", "list", "--store", demo.path)
    assert models.returncode == 0, models.stderr
    credit = next(ln for ln in models.stdout.splitlines() if ln.startswith("credit-default "))
    assert "versions=5" in credit and "production=v4" in credit
    assert any(ln.startswith("diabetes-progression ") for ln in models.stdout.splitlines())


def test_demo_is_idempotent(demo):
    ws = _read(demo.path)
    before = ws.counts()
    ws.close()
    again = run_cli("demo", "--store", demo.path, "-q", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already seeded" in again.stdout
    assert f"{before['runs']} runs in {before['experiments']} experiments, {before['versions']} model versions" \
        in again.stdout
    assert "dana-demo-pw" in again.stdout
    ws = _read(demo.path)
    try:
        assert ws.counts() == before  # not even an audit event more
    finally:
        ws.close()


def test_audit_verify_on_demo(demo):
    result = run_cli("audit", "verify", "--store", demo.path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: ")
    n_events = int(result.stdout.split()[1])
    assert n_events > 0
