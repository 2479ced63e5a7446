"""Dashboard sign-in (workbench.people.auth): passwords, lockout, sessions, audit, admin actions, pages."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import workbench as wb
from workbench.people import auth, roles
from workbench.store.connection import is_postgres

PW = "dana-demo-pw"


def events(op, action=None) -> list[dict]:
    """Audit events oldest first (optionally one action), payload parsed."""
    rows = op.audit_events().sort("seq").to_dicts()
    for r in rows:
        r["payload"] = json.loads(r["payload"])
    return [r for r in rows if action is None or r["action"] == action]


@pytest.fixture
def dana(op):
    op.add_user("dana", "data_scientist", PW)
    return "dana"


@pytest.fixture
def admin(op, store_path):
    op.add_user("ada", "admin")  # no password: admins act through a workspace here
    return wb.connect(store=store_path, user="ada")


def test_sign_in_returns_role_and_expiry(op, store_path, dana):
    before = datetime.now(timezone.utc)
    signed = auth.sign_in(store_path, "dana", PW)
    assert (signed.user, signed.role, signed.method) == ("dana", "data_scientist", "password")
    assert before <= signed.signed_in_at <= datetime.now(timezone.utc)
    assert signed.expires_at - signed.signed_in_at == timedelta(minutes=480)
    assert not auth.is_expired(signed)
    auth.check_session(signed)
    with pytest.raises(Exception):
        signed.role = "admin"  # frozen
    (ev,) = events(op, "auth.sign_in")
    assert (ev["actor"], ev["role"], ev["entity_type"], ev["entity_id"]) == ("dana", "data_scientist", "user", "dana")
    assert ev["payload"]["method"] == "password"
    # a Workspace (or its store URL) works as the store argument too
    assert auth.sign_in(op, "dana", PW).role == "data_scientist"
    url = str(store_path) if is_postgres(str(store_path)) else f"duckdb:///{store_path}"
    assert auth.sign_in(url, "dana", PW).user == "dana"


def test_session_minutes_from_environment(store_path, dana, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SESSION_MINUTES", "30")
    signed = auth.sign_in(store_path, "dana", PW)
    assert signed.expires_at - signed.signed_in_at == timedelta(minutes=30)
    monkeypatch.setenv("WORKBENCH_SESSION_MINUTES", "soon")
    with pytest.raises(wb.ValidationError, match="WORKBENCH_SESSION_MINUTES"):
        auth.sign_in(store_path, "dana", PW)


def test_wrong_password_and_unknown_user_look_the_same(op, store_path, dana):
    with pytest.raises(wb.PermissionDenied) as wrong:
        auth.sign_in(store_path, "dana", "not-the-password")
    with pytest.raises(wb.PermissionDenied) as unknown:
        auth.sign_in(store_path, "nobody", PW)
    assert str(wrong.value) == str(unknown.value) == "Wrong user name or password."
    failed = events(op, "auth.sign_in_failed")
    assert [(e["actor"], e["role"], e["entity_id"], e["payload"]["reason"]) for e in failed] == [
        ("dana", "anonymous", "dana", "wrong password"),
        ("nobody", "anonymous", "nobody", "unknown user"),
    ]
    assert failed[0]["payload"]["failed_logins"] == 1
    assert failed[1]["payload"]["attempted"] == "nobody"
    assert op.verify_audit().ok


def test_five_failures_block_the_address_and_lock_the_account_then_both_expire(op, store_path, dana):
    t0 = datetime(2030, 1, 2, 9, 0, tzinfo=timezone.utc)
    attacker = "203.0.113.9"
    for i in range(4):
        with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
            auth.sign_in(store_path, "dana", f"guess-{i}", address=attacker, now=t0 + timedelta(seconds=i))
    with pytest.raises(wb.PermissionDenied) as fifth:
        auth.sign_in(store_path, "dana", "guess-4", address=attacker, now=t0 + timedelta(seconds=4))
    throttled = ("Too many failed sign-ins from your address: sign-in from it is blocked until 09:15 UTC "
                 "(an admin can lift the block sooner).")
    assert str(fifth.value) == throttled
    # the 6th attempt from that address, even with the right password, is refused unchecked
    with pytest.raises(wb.PermissionDenied) as sixth:
        auth.sign_in(store_path, "dana", PW, address=attacker, now=t0 + timedelta(minutes=5))
    assert str(sixth.value) == throttled
    row = op.ctx.read("select failed_logins, locked_until from users where name = 'dana'").row(0, named=True)
    assert row["failed_logins"] == 5
    assert row["locked_until"].astimezone(timezone.utc) == datetime(2030, 1, 2, 9, 15, 4, tzinfo=timezone.utc)

    (lock,) = events(op, "auth.locked")
    assert (lock["actor"], lock["role"], lock["entity_id"]) == ("dana", "anonymous", "dana")
    assert lock["payload"]["failed_logins"] == 5 and lock["payload"]["minutes"] == 15
    assert lock["payload"]["address"] == attacker
    (block,) = events(op, "auth.address_blocked")
    assert (block["entity_type"], block["entity_id"]) == ("address", attacker)
    assert block["payload"]["failures"] == 5 and block["payload"]["blocked_until"].startswith("2030-01-02T09:15:04")
    failed = events(op, "auth.sign_in_failed")
    assert [e["payload"]["reason"] for e in failed] == ["wrong password"] * 5 + ["address blocked"]
    assert {e["payload"]["address"] for e in failed} == {attacker}

    # 16 minutes later lock and block have run out: the right password works, the count resets
    later = t0 + timedelta(minutes=16)
    signed = auth.sign_in(store_path, "dana", PW, address=attacker, now=later)
    assert signed.signed_in_at == later
    row = op.ctx.read("select failed_logins, locked_until from users where name = 'dana'").row(0, named=True)
    assert row == {"failed_logins": 0, "locked_until": None}
    assert events(op, "auth.sign_in")[-1]["payload"]["address"] == attacker
    assert op.verify_audit().ok


def test_after_five_failures_every_name_gets_the_same_answer(op, store_path, dana, admin):
    """No account enumeration: a blocked address hears the same for a real, a locked and an
    unknown name; a fresh address hears the same for a locked account and an unknown name."""
    t0 = datetime(2030, 1, 2, 9, 0, tzinfo=timezone.utc)
    for i in range(5):  # five wrong passwords for dana, spread over five addresses: no address blocked
        with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
            auth.sign_in(store_path, "dana", f"guess-{i}", address=f"203.0.113.{i}", now=t0)
    assert [e["payload"]["failed_logins"] for e in events(op, "auth.locked")] == [5]  # dana is locked
    assert admin.blocked_addresses(now=t0).is_empty()

    fresh = "198.51.100.50"  # never used: a locked name, even with its right password, reads as unknown
    answers = {}
    for name, password in [("dana", PW), ("dana", "other-guess"), ("nobody", PW)]:
        with pytest.raises(wb.PermissionDenied) as refused:
            auth.sign_in(store_path, name, password, address=fresh, now=t0 + timedelta(minutes=1))
        answers[(name, password)] = str(refused.value)
    assert set(answers.values()) == {auth.WRONG}, answers

    scanner = "192.0.2.77"  # five unknown names from one address block it
    for i in range(5):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, f"user{i}", "some-password", address=scanner, now=t0)
    answers = set()
    for name, password in [("dana", PW), ("dana", "other-guess"), ("nobody", "x-password"), ("ghost", PW)]:
        with pytest.raises(wb.PermissionDenied) as refused:
            auth.sign_in(store_path, name, password, address=scanner, now=t0 + timedelta(minutes=2))
        answers.add(str(refused.value))
    assert answers == {auth.THROTTLED.format(until=t0 + timedelta(minutes=15))}
    assert admin.blocked_addresses(now=t0)["address"].to_list() == [scanner]
    assert op.verify_audit().ok


def test_a_stranger_cannot_lock_out_an_admin(op, store_path, admin):
    """Failures on an admin's name from elsewhere block the stranger's address and lock the
    account against new addresses only: the admin still signs in from where she did before."""
    admin.set_password("ada", "ada-long-passphrase")
    t0 = datetime(2030, 1, 2, 9, 0, tzinfo=timezone.utc)
    office = "198.51.100.20"
    auth.sign_in(store_path, "ada", "ada-long-passphrase", address=office, now=t0)
    for i in range(6):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, "ada", f"guess-{i}", address="203.0.113.9", now=t0 + timedelta(minutes=1))
    # a second address of the stranger's may not even try the right password while ada is locked
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
        auth.sign_in(store_path, "ada", "ada-long-passphrase", address="203.0.113.10", now=t0 + timedelta(minutes=2))
    acc = {r["name"]: r for r in admin.accounts(now=t0 + timedelta(minutes=2)).to_dicts()}
    assert acc["ada"]["locked"] and acc["ada"]["failed_logins"] == 5
    signed = auth.sign_in(store_path, "ada", "ada-long-passphrase", address=office, now=t0 + timedelta(minutes=3))
    assert (signed.user, signed.role) == ("ada", "admin")
    reasons = [(e["payload"]["address"], e["payload"]["reason"]) for e in events(op, "auth.sign_in_failed")]
    assert reasons == [("203.0.113.9", "wrong password")] * 5 + [("203.0.113.9", "address blocked"),
                                                                 ("203.0.113.10", "locked")]
    assert op.verify_audit().ok


def test_ipv6_clients_are_counted_per_64_network():
    assert auth.client_key("2001:db8:1:2:aaaa::7") == auth.client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert auth.client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert auth.client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert auth.client_key(" 192.0.2.1") == "192.0.2.1"
    assert auth.client_key(None) == auth.client_key("") == "local"
    for bad in ("not-an-address", "192.0.2.300", "local; drop table users"):
        with pytest.raises(wb.ValidationError, match="not an IP address"):
            auth.client_key(bad)


def test_an_attacker_cannot_escape_the_block_by_hopping_within_an_ipv6_64(op, store_path, dana, admin):
    t0 = datetime(2030, 1, 2, 9, 0, tzinfo=timezone.utc)
    for i in range(5):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, f"name{i}", "some-password", address=f"2001:db8:1:2::{i + 1:x}", now=t0)
    with pytest.raises(wb.PermissionDenied, match="^Too many failed sign-ins from your address"):
        auth.sign_in(store_path, "dana", PW, address="2001:db8:1:2:abcd::99", now=t0)
    assert auth.sign_in(store_path, "dana", PW, address="2001:db8:1:3::1", now=t0).user == "dana"
    before = op.counts()["audit_events"]
    with pytest.raises(wb.ValidationError, match="not an IP address"):
        auth.sign_in(store_path, "dana", PW, address="evil")
    with pytest.raises(wb.ValidationError, match="must be a string"):
        auth.sign_in(store_path, "dana", PW, address=3232235521)  # type: ignore[arg-type]
    assert op.counts()["audit_events"] == before  # a refused call stores nothing
    admin.unblock_address("2001:0db8:0001:0002::/64", now=t0)  # the listed /64, spelled otherwise
    assert auth.sign_in(store_path, "dana", PW, address="2001:db8:1:2::5", now=t0).user == "dana"
    assert [e["entity_id"] for e in events(op, "address.unblock")] == ["2001:db8:1:2::/64"]


def test_admin_unblocks_an_address(op, store_path, dana, admin):
    t0 = datetime.now(timezone.utc)
    for i in range(5):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, "dana", f"guess-{i}", address="192.0.2.8", now=t0)
    with pytest.raises(wb.PermissionDenied, match="^Too many failed"):
        auth.sign_in(store_path, "dana", PW, address="192.0.2.8", now=t0)
    blocked = admin.blocked_addresses(now=t0).to_dicts()
    assert [(b["address"], b["failures"]) for b in blocked] == [("192.0.2.8", 5)]
    with pytest.raises(wb.NotFoundError, match="192.0.2.9"):
        admin.unblock_address("192.0.2.9")
    admin.unblock_address("192.0.2.8", now=t0)
    assert admin.blocked_addresses(now=t0).is_empty()
    admin.unlock_user("dana")  # the account locked too (five failures on it): its owner asks the admin
    assert auth.sign_in(store_path, "dana", PW, address="192.0.2.8", now=t0).user == "dana"
    (ev,) = events(op, "address.unblock")
    assert (ev["actor"], ev["role"], ev["entity_type"], ev["entity_id"]) == ("ada", "admin", "address", "192.0.2.8")
    assert ev["payload"]["failures"] == 5 and ev["payload"]["after"] == {"failures": 0, "blocked_until": None}
    assert op.verify_audit().ok


def test_count_restarts_after_an_expired_lock_and_resets_on_success(op, store_path, dana):
    t0 = datetime(2030, 1, 2, 9, 0, tzinfo=timezone.utc)
    for i in range(5):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, "dana", "wrong-pw", now=t0)
    # after the lock: one wrong attempt counts as the first, not the sixth
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name"):
        auth.sign_in(store_path, "dana", "wrong-pw", now=t0 + timedelta(minutes=20))
    assert op.ctx.read("select failed_logins from users where name = 'dana'").item() == 1
    auth.sign_in(store_path, "dana", PW, now=t0 + timedelta(minutes=21))
    assert op.ctx.read("select failed_logins from users where name = 'dana'").item() == 0


def test_disabled_and_passwordless_accounts_are_refused(op, store_path, dana, admin):
    admin.set_user_disabled("dana", True)
    with pytest.raises(wb.PermissionDenied, match=r"^Account dana is disabled\.$"):
        auth.sign_in(store_path, "dana", PW)
    # only someone with the password learns that the account is disabled
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
        auth.sign_in(store_path, "dana", "wrong-password")
    admin.set_user_disabled("dana", False)
    assert auth.sign_in(store_path, "dana", PW).user == "dana"

    op.add_user("nopw", "reviewer")
    # said like a wrong password: a stranger must not learn that the account exists
    with pytest.raises(wb.PermissionDenied, match=r"^Wrong user name or password\.$"):
        auth.sign_in(store_path, "nopw", "anything-at-all")
    assert [e["action"] for e in events(op) if e["entity_id"] == "dana"][-4:] == [
        "auth.sign_in_failed", "auth.sign_in_failed", "user.enable", "auth.sign_in"]
    assert [e["action"] for e in events(op, "user.disable")] == ["user.disable"]
    reasons = [e["payload"]["reason"] for e in events(op, "auth.sign_in_failed")]
    assert reasons == ["disabled", "wrong password", "no password set"]
    with pytest.raises(wb.ValidationError, match="own account"):
        admin.set_user_disabled("ada", True)
    assert op.verify_audit().ok


def test_sign_out_and_session_expiry(op, store_path, dana):
    t0 = datetime(2030, 1, 2, 9, 0, tzinfo=timezone.utc)
    signed = auth.sign_in(store_path, "dana", PW, now=t0)
    assert signed.expires_at == datetime(2030, 1, 2, 17, 0, tzinfo=timezone.utc)
    assert not auth.is_expired(signed, now=t0 + timedelta(minutes=479))
    auth.check_session(signed, now=t0 + timedelta(minutes=479))
    assert auth.is_expired(signed, now=t0 + timedelta(minutes=480))
    with pytest.raises(wb.PermissionDenied, match=r"^Your session expired at 2030-01-02 17:00 UTC; sign in again\.$"):
        auth.check_session(signed, now=t0 + timedelta(hours=9))
    auth.sign_out(store_path, signed, now=t0 + timedelta(hours=1))
    (ev,) = events(op, "auth.sign_out")
    assert (ev["actor"], ev["role"], ev["entity_id"]) == ("dana", "data_scientist", "dana")
    assert ev["payload"]["expired"] is False and ev["payload"]["method"] == "password"
    assert op.verify_audit().ok


def test_set_password_by_admin_is_audited_without_the_password(op, store_path, dana, admin):
    for _ in range(3):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, "dana", "wrong-password")
    secret = "a-brand-new-secret"
    admin.set_password("dana", secret)
    with pytest.raises(wb.PermissionDenied):
        auth.sign_in(store_path, "dana", PW)  # the old one no longer works
    assert auth.sign_in(store_path, "dana", secret).user == "dana"
    (ev,) = events(op, "user.set_password")
    assert (ev["actor"], ev["role"], ev["entity_id"]) == ("ada", "admin", "dana")
    assert ev["payload"] == {"had_password": True, "reset_failed_logins": True}
    trail = op.ctx.read("select * from audit_events")
    for column in trail.columns:
        assert not any(secret in str(v) for v in trail[column].to_list()), column
    assert op.verify_audit().ok

    with pytest.raises(wb.NotFoundError):
        admin.set_password("ghost", secret)


def test_admin_actions_need_manage_users(ws):  # ws is dana, a data scientist
    with pytest.raises(wb.PermissionDenied, match="manage users"):
        ws.set_password("dana", "long-enough-password")
    with pytest.raises(wb.PermissionDenied):
        ws.set_user_disabled("dana", True)
    with pytest.raises(wb.PermissionDenied):
        ws.unlock_user("dana")
    with pytest.raises(wb.PermissionDenied):
        ws.accounts()


def test_password_policy(admin, dana):
    for bad in ("", "short", "123456789", None):
        with pytest.raises(wb.ValidationError, match="at least 10 characters"):
            auth.check_password(bad)
    assert auth.check_password("correct horse battery") == "correct horse battery"
    for common in ("0123456789", "Password123!", "qwertyuiop", "Administrator1", "aaaaaaaaaaaa", "abababababab"):
        with pytest.raises(wb.ValidationError, match="commonly used|4 different characters"):
            auth.check_password(common)
    with pytest.raises(wb.ValidationError, match="at least 10 characters"):
        admin.set_password("dana", "tooshort")


@pytest.mark.parametrize("bad, rule", [("x", "at least 10 characters"), ("", "at least 10 characters"),
                                       ("Password123!", "commonly used"), ("abababababab", "4 different")])
def test_every_entry_point_applies_the_password_policy(op, store_path, admin, bad, rule):
    """ws.add_user (the CLI, the Users page and the demo call it) refuses what the form refused."""
    before = (op.users().height, op.counts()["audit_events"])
    with pytest.raises(wb.ValidationError, match=rule):
        op.add_user("mallory", "admin", bad)  # the local operator, as `workbench users add`
    with pytest.raises(wb.ValidationError, match=rule):
        admin.add_user("mallory", "admin", bad)  # an admin's workspace, as the Users page
    assert (op.users().height, op.counts()["audit_events"]) == before  # nothing of the refused call stored
    assert "mallory" not in op.users()["name"].to_list()
    op.add_user("mallory", "reviewer", None)  # no password at all stays possible: no sign-in until one is set
    with pytest.raises(wb.ValidationError, match=rule):
        admin.set_password("mallory", bad)


def test_the_demo_accounts_pass_the_policy():
    from workbench.demo.seed import DEMO_USERS

    for name, password, _ in DEMO_USERS:
        assert auth.check_password(password) == password == f"{name}-demo-pw"


def test_unlock_and_accounts(op, store_path, dana, admin):
    t0 = datetime.now(timezone.utc)
    for i in range(5):
        with pytest.raises(wb.PermissionDenied):
            auth.sign_in(store_path, "dana", "wrong-password", address=f"203.0.113.{i}", now=t0)
    acc = {r["name"]: r for r in admin.accounts(now=t0).to_dicts()}
    assert acc["dana"]["locked"] and acc["dana"]["failed_logins"] == 5 and acc["dana"]["has_password"]
    assert not acc["ada"]["locked"] and not acc["ada"]["has_password"]
    assert "password_hash" not in admin.accounts().columns
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name"):  # from an address dana never used
        auth.sign_in(store_path, "dana", PW, address="198.51.100.7", now=t0)
    admin.unlock_user("dana")
    assert auth.sign_in(store_path, "dana", PW, address="198.51.100.7", now=t0).user == "dana"
    (ev,) = events(op, "user.unlock")
    assert (ev["actor"], ev["payload"]["failed_logins"], ev["payload"]["after"]) == (
        "ada", 5, {"failed_logins": 0, "locked_until": None})
    with pytest.raises(wb.NotFoundError):
        admin.unlock_user("ghost")


def test_pages_for_each_role_follow_the_roles_table():
    base = ["home", "experiments", "compare", "models", "explanations", "fairness", "drift", "approvals"]
    assert roles.pages_for("data_scientist") == base + ["tokens"]
    assert roles.pages_for("reviewer") == base + ["audit", "tokens"]
    assert roles.pages_for("compliance_officer") == base + ["reports", "audit", "tokens"]
    assert roles.pages_for("lead") == base + ["reports", "audit", "tokens"]
    assert roles.pages_for("admin") == base + ["audit", "users", "tokens"]


def test_hostile_names_are_stored_as_data(op, store_path):
    hostile = "<script>alert('x')</script>"
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
        auth.sign_in(store_path, hostile, "whatever-password")
    long_name = "x" * 100 + "\n\x00"
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
        auth.sign_in(store_path, long_name, "whatever-password")
    with pytest.raises(wb.PermissionDenied, match="^Wrong user name or password.$"):
        auth.sign_in(store_path, "eve\r\nforged line\x1b[31m", "whatever-password")
    with pytest.raises(wb.PermissionDenied):
        auth.sign_in(store_path, None, None)  # type: ignore[arg-type]
    first, second, third, _ = events(op, "auth.sign_in_failed")
    assert first["payload"]["attempted"] == hostile and first["entity_id"] == hostile and first["actor"] == hostile
    assert second["payload"]["attempted"] == "x" * 64 and second["payload"]["attempted_length"] == 102
    assert len(second["entity_id"]) == 64
    assert third["payload"]["attempted"] == "eve\r\nforged line\x1b[31m"
    assert "\n" not in third["actor"] and "\x1b" not in third["entity_id"] and third["actor"].startswith("eve\\r\\n")
    assert op.verify_audit().ok


def test_oidc(op, store_path, dana, tmp_path, monkeypatch):
    home, project = tmp_path / "home", tmp_path / "project"
    (project / ".streamlit").mkdir(parents=True)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    assert not auth.oidc_configured()
    (project / ".streamlit" / "secrets.toml").write_text("[other]\nx = 1\n")
    assert not auth.oidc_configured()
    (home / ".streamlit").mkdir()
    (home / ".streamlit" / "secrets.toml").write_text("not = [valid toml")
    assert not auth.oidc_configured()
    (project / ".streamlit" / "secrets.toml").write_text(
        '[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\ncookie_secret = "s"\n')
    assert auth.oidc_configured()

    op.add_user("sam@example.org", "reviewer")
    signed = auth.sign_in_oidc(store_path, "sam@example.org")
    assert (signed.user, signed.role, signed.method) == ("sam@example.org", "reviewer", "oidc")
    with pytest.raises(wb.PermissionDenied, match="No workbench account for 'dana@elsewhere.example'"):
        auth.sign_in_oidc(store_path, "dana@elsewhere.example")  # no partial matching
    ev = events(op, "auth.sign_in")
    assert [(e["actor"], e["payload"]["method"]) for e in ev] == [("sam@example.org", "oidc")]
    (failed,) = events(op, "auth.sign_in_failed")
    assert failed["payload"] == {"method": "oidc", "reason": "unknown user", "attempted": "dana@elsewhere.example"}
    assert op.verify_audit().ok


def test_disabling_a_user_ends_their_open_dashboard_session_at_the_next_click(op, store_path, dana, admin,
                                                                              monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from workbench.ui import widgets as ui

    signed = auth.sign_in(store_path, "dana", PW)
    assert auth.revoked(store_path, signed) is None
    monkeypatch.setenv("WORKBENCH_STORE", str(store_path))
    page = Path(__file__).resolve().parent.parent / "pages" / "experiments.py"
    at = AppTest.from_file(str(page), default_timeout=60)
    at.session_state[ui.SIGNED] = signed
    at.run()
    assert [t.value for t in at.title] == ["Experiments"]
    admin.set_user_disabled("dana", True)
    assert auth.revoked(store_path, signed) == "The account dana was disabled by an admin."
    at.run()  # the next click
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert "disabled by an admin" in at.warning[0].value
    assert ui.SIGNED not in at.session_state
    assert [e["action"] for e in events(op) if e["actor"] == "dana"][-1] == "auth.sign_out"


def test_a_store_from_before_the_address_rules_gains_them_in_place(op, store_path, dana):
    from _raw import raw_sql
    from conftest import _forget

    from workbench.store import schema

    op.close()
    _forget(store_path)
    raw_sql(store_path, "drop table sign_in_addresses")
    raw_sql(store_path, "alter table users drop column known_addresses")
    raw_sql(store_path, "update store_info set schema_version = 7")
    signed = auth.sign_in(store_path, "dana", PW, address="198.51.100.7")  # opening migrates
    assert signed.user == "dana"
    assert raw_sql(store_path, "select schema_version from store_info") == [(schema.SCHEMA_VERSION,)]
    assert raw_sql(store_path, "select cast(known_addresses as varchar) from users where name = 'dana'") == [
        ('["198.51.100.7"]',)]
    with pytest.raises(wb.PermissionDenied):
        auth.sign_in(store_path, "dana", "a-wrong-guess", address="203.0.113.1")
    assert raw_sql(store_path, "select address, failures from sign_in_addresses") == [("203.0.113.1", 1)]


def test_a_hash_argon2_cannot_verify_with_is_no_match():
    from argon2 import PasswordHasher

    from workbench.people import users

    good = PasswordHasher().hash("correct horse battery")
    assert users.password_matches(good, "correct horse battery")
    for broken in (good.replace("m=65536", "m=1"), good.replace("p=4", "p=0"), "not a hash"):
        assert users.password_matches(broken, "correct horse battery") is False
