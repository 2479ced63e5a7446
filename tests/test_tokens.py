"""Personal access tokens (workbench.people.tokens), in file mode on both backends: made, listed,
limited, revoked, and checked as the server checks them on every call."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import workbench as wb
from workbench.people import auth, tokens
from workbench.store import schema
from workbench.store.shared import shared_store


@pytest.fixture
def team(op, store_path):
    for name, role in (("dana", "data_scientist"), ("lee", "lead"), ("ada", "admin")):
        op.add_user(name, role)
    return {n: wb.connect(store_path, user=n) for n in ("dana", "lee", "ada")}


def _check(store_path, token, **kw):
    store, writer = shared_store(store_path)
    return tokens.check(store, writer, token, **kw)


def test_a_token_is_shown_once_kept_as_a_hash_and_acts_for_its_user(team, store_path):
    made = team["dana"].create_token("laptop", expires_days=30)
    assert made["token"].startswith("wbt_") and tokens.looks_like_token(made["token"])
    assert made["user"] == "dana" and made["operations"] is None
    assert (made["expires_at"] - schema.utcnow()).days in (29, 30)
    who = _check(store_path, made["token"], address="198.51.100.7")
    assert (who.user, who.role, who.token_id, who.operations) == ("dana", "data_scientist", made["id"], None)
    listed = team["dana"].tokens()
    assert listed["name"].to_list() == ["laptop"] and listed["status"].to_list() == ["active"]
    assert listed["last_used_at"][0] is not None
    assert "token" not in listed.columns and "sha256" not in listed.columns
    trail = team["ada"].audit_events(action="token.*")
    assert sorted(trail["action"].to_list()) == ["token.create", "token.use"]
    assert all(made["token"] not in p and made["token"][4:] not in p for p in trail["payload"].to_list())
    assert json.loads(trail.filter(trail["action"] == "token.use")["payload"][0])["address"] == "198.51.100.7"


def test_each_user_makes_and_sees_their_own_and_an_admin_anyones(team):
    team["lee"].create_token("lee's")
    with pytest.raises(wb.PermissionDenied, match="manage users"):
        team["dana"].create_token("for lee", user="lee")
    with pytest.raises(wb.PermissionDenied):
        team["dana"].tokens("lee")
    with pytest.raises(wb.PermissionDenied):
        team["dana"].tokens(all_users=True)
    made = team["ada"].create_token("ci", user="dana", operations=["start_run", "register_model", "models"])
    assert made["user"] == "dana" and made["operations"] == ["models", "register_model", "start_run"]
    assert team["dana"].tokens()["name"].to_list() == ["ci"]
    assert sorted(team["ada"].tokens(all_users=True)["user"].to_list()) == ["dana", "lee"]
    with pytest.raises(wb.NotFoundError, match="of yours"):  # dana cannot revoke (or learn of) lee's
        team["dana"].revoke_token(int(team["ada"].tokens("lee")["id"][0]))
    assert team["ada"].tokens("lee")["status"].to_list() == ["active"]
    with pytest.raises(wb.PermissionDenied, match="signed-in user"):
        wb.connect(team["ada"].store.location).create_token("nobody's")


@pytest.mark.parametrize("bad, message", [
    ({"name": ""}, "needs a name"),
    ({"name": "x" * 65}, "1 to 64 characters"),
    ({"name": "ok", "expires_days": 0}, "from 1 to 366"),
    ({"name": "ok", "expires_days": 400}, "from 1 to 366"),
    ({"name": "ok", "expires_days": True}, "expires_days must be int, not bool"),
    ({"name": "ok", "operations": ["start_run", "launch_rockets"]}, r"Unknown operation\(s\) \['launch_rockets'\]"),
    ({"name": "ok", "operations": []}, "could do nothing"),
    ({"name": "ok", "operations": "start_run"}, "operations must be None or list, not str"),
])
def test_a_bad_token_request_is_refused_and_nothing_is_made(team, bad, message):
    with pytest.raises(wb.ValidationError, match=message):
        team["dana"].create_token(**bad)
    assert team["dana"].tokens().is_empty()


def test_a_token_of_an_unknown_user_is_not_made(team):
    with pytest.raises(wb.NotFoundError, match="No user named 'nobody'"):
        team["ada"].create_token("x", user="nobody")


def test_revoked_expired_disabled_and_garbage_tokens_are_refused_with_why(team, store_path):
    revoked = team["dana"].create_token("old")
    team["dana"].revoke_token(revoked["id"])
    team["dana"].revoke_token(revoked["id"])  # again: nothing changes, nothing is recorded
    assert len(team["ada"].audit_events(action="token.revoke")) == 1
    with pytest.raises(wb.AuthenticationError, match="was revoked"):
        _check(store_path, revoked["token"])
    soon = team["dana"].create_token("short", expires_days=1)
    assert _check(store_path, soon["token"]).user == "dana"
    with pytest.raises(wb.AuthenticationError, match="expired on"):
        _check(store_path, soon["token"], now=schema.utcnow() + timedelta(days=1, seconds=1))
    for garbage in ("", "wbt_short", "Bearer " + soon["token"], soon["token"][:-1] + "A", "x" * 10_000):
        with pytest.raises(wb.AuthenticationError, match="not valid"):
            _check(store_path, garbage, address="203.0.113.9")
    live = team["lee"].create_token("lee")
    team["ada"].set_user_disabled("lee", True)
    with pytest.raises(wb.AuthenticationError, match="'lee' is disabled"):
        _check(store_path, live["token"])
    team["ada"].set_user_disabled("lee", False)
    assert _check(store_path, live["token"]).role == "lead"


def test_failed_checks_from_one_address_block_it_as_failed_sign_ins_do(team, store_path):
    good = team["dana"].create_token("good")
    for _ in range(auth.MAX_FAILED):
        with pytest.raises(wb.AuthenticationError, match="not valid"):
            _check(store_path, "wbt_" + "A" * 43, address="203.0.113.50")
    with pytest.raises(wb.AuthenticationError, match="Too many failed token checks"):
        _check(store_path, good["token"], address="203.0.113.50")  # even a good token, from there
    assert _check(store_path, good["token"], address="203.0.113.51").user == "dana"  # elsewhere: fine
    assert team["ada"].blocked_addresses()["address"].to_list() == ["203.0.113.50"]
    refused = team["ada"].audit_events(action="token.refused")
    assert len(refused) == auth.MAX_FAILED and set(refused["entity_id"].to_list()) == {"203.0.113.50"}


def test_a_token_never_grants_more_than_its_role_and_its_limits_apply():
    assert tokens.TokenUser("dana", "data_scientist", 1, ("models",)).allows("models")
    assert not tokens.TokenUser("dana", "data_scientist", 1, ("models",)).allows("decide")
    assert tokens.TokenUser("dana", "data_scientist", 1, None).allows("decide")  # the role check still applies


def test_a_write_through_a_token_names_it_in_the_audit_trail(team, store_path):
    made = team["ada"].create_token("admin laptop")
    store, writer = shared_store(store_path)
    via = wb.Workspace(store, writer, "ada", token_id=made["id"])
    via.set_gate_policy("low", required_evidence=["explanation"])
    event = team["ada"].audit_events(action="gate_policy.set")
    assert json.loads(event["payload"][0])["token_id"] == made["id"] and event["actor"][0] == "ada"
