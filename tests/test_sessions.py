"""Dashboard sessions kept in the store (workbench.people.sessions): a one-time code becomes a
cookie's secret; a reload resumes the session from the store; sign-out, expiry and a disabled
account end it. On both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

import workbench as wb
from workbench.people import auth, sessions
from workbench.store import schema

PW = "a long enough passphrase 7"


@pytest.fixture
def signed(op, store_path):
    op.add_user("sam", "reviewer", PW)
    op.add_user("ada", "admin")
    return auth.sign_in(store_path, "sam", PW, address="198.51.100.7")


def test_a_code_opens_a_session_once_and_the_cookie_resumes_it(signed, store_path):
    code = sessions.issue(store_path, signed, address="198.51.100.7")
    secret, expires = sessions.redeem(store_path, code)
    assert expires == signed.expires_at and len(secret) >= 40
    with pytest.raises(wb.AuthenticationError, match="used already or has expired"):
        sessions.redeem(store_path, code)  # once only
    back = sessions.resume(store_path, secret)
    assert (back.user, back.role, back.method, back.expires_at) == ("sam", "reviewer", "password", signed.expires_at)
    assert sessions.resume(store_path, "not-a-secret") is None and sessions.resume(store_path, None) is None
    sessions.end(store_path, secret)
    assert sessions.resume(store_path, secret) is None  # signed out for good
    trail = wb.connect(store_path, user="ada").audit_events(entity="user/sam")["action"].to_list()
    assert {"session.open", "session.cookie", "session.end"} <= set(trail)


def test_an_old_code_and_an_expired_session_open_nothing(signed, store_path):
    code = sessions.issue(store_path, signed)
    with pytest.raises(wb.AuthenticationError):
        sessions.redeem(store_path, code, now=schema.utcnow() + timedelta(seconds=sessions.CODE_SECONDS + 1))
    secret, _ = sessions.redeem(store_path, sessions.issue(store_path, signed))
    assert sessions.resume(store_path, secret, now=signed.expires_at + timedelta(seconds=1)) is None
    assert sessions.resume(store_path, secret) is None  # the expired row was removed


def test_disabling_the_account_ends_its_sessions_at_once(signed, store_path):
    secret, _ = sessions.redeem(store_path, sessions.issue(store_path, signed))
    ada = wb.connect(store_path, user="ada")
    ada.set_user_disabled("sam", True)
    assert sessions.resume(store_path, secret) is None
    ada.set_user_disabled("sam", False)
    assert sessions.resume(store_path, secret) is None  # enabling again does not bring old sessions back
