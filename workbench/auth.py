"""Dashboard sign-in: local accounts, lockout, sessions, and an audit event for each attempt.

The rules live here, in the service layer, not in the dashboard: which accounts may sign in,
when one locks, how long a session lasts. They are tested without a browser and hold for any
front end. Every sign-in, failed sign-in, lockout and sign-out is an audit event committed in
the same transaction as the users-table change, through the one write path
(:mod:`workbench.store.writer`), so an attempt cannot happen without its record.

Rules:

- A wrong password and an unknown user name get the same message and cost the same argon2
  time (unknown names are checked against a dummy hash), so neither reveals which names exist.
- ``MAX_FAILED`` consecutive failures lock the account for ``LOCK_MINUTES``; a successful
  sign-in, or an admin setting a new password, resets the count.
- A disabled account is reported as disabled only to someone who typed its correct password.
- A session lasts ``SESSION_MINUTES`` (``$WORKBENCH_SESSION_MINUTES`` overrides it).
- A password an admin sets needs at least ``PASSWORD_MIN_LENGTH`` characters, four different
  ones, and must not be a commonly used password (length is what resists guessing;
  character-class rules mostly do not).
- Where Streamlit secrets have an ``[auth]`` section, the dashboard also offers ``st.login``;
  :func:`sign_in_oidc` maps the identity it returns to the account of exactly that name.

Example::

    from workbench import auth
    signed = auth.sign_in("data/workbench.duckdb", "dana", "dana-demo-pw")
    signed.role                   # 'data_scientist'
    auth.check_session(signed)    # raises PermissionDenied once the session has expired
    auth.sign_out("data/workbench.duckdb", signed)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Callable, Union

import polars as pl
import sqlalchemy as sa

from . import users
from .audit import Event
from .errors import PermissionDenied, ValidationError
from .store import schema
from .store.connection import Store
from .workspace import Workspace, _shared_store

#: How long a session lasts, in minutes (``$WORKBENCH_SESSION_MINUTES`` overrides it).
SESSION_MINUTES = 480
#: Consecutive failed sign-ins that lock an account ...
MAX_FAILED = 5
#: ... for this many minutes.
LOCK_MINUTES = 15
#: The password policy (:func:`check_password`).
PASSWORD_MIN_LENGTH = 10
#: Passwords (and stems, before trailing digits or ! or .) that top breach lists: refused
#: whatever their length, as NIST SP 800-63B asks.
COMMON_PASSWORDS = frozenset({
    "password", "passw0rd", "p@ssw0rd", "p@ssword", "qwerty", "qwertyuiop", "qwertyuiop[]", "asdfghjkl",
    "zxcvbnm", "1q2w3e4r5t", "1q2w3e4r5t6y", "1qaz2wsx3edc", "qazwsxedc", "iloveyou", "letmein", "welcome",
    "admin", "administrator", "changeme", "trustno1", "abcdefghij", "abcdefghijk", "abc", "monkey", "dragon",
    "football", "baseball", "sunshine", "princess", "superman", "starwars", "whatever", "workbench",
    "passwordpassword", "secret", "default", "master", "login"})

#: The one message for an unknown user name and for a wrong password.
WRONG = "Wrong user name or password."
#: The role recorded for attempts by someone not (yet) signed in.
ANONYMOUS = "anonymous"
_ID_MAX = 64  # user names are at most 64 characters; longer attempts are cut in the audit

# A hash of a random secret, made with the same argon2 parameters as real hashes: unknown
# user names are verified against it so they take as long as a wrong password.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$W4qGu++2bH2iTIz0OwDobg$fPaw3W6SHtE/vxJ9eVwXuzmQm9ZylFSTyQS9RL6wbFs"

StoreLike = Union[str, os.PathLike, Workspace, Store, None]


@dataclass(frozen=True)
class SignedIn:
    """A signed-in dashboard session: who, as which role, since when, until when (UTC)."""

    user: str
    role: str
    signed_in_at: datetime
    expires_at: datetime
    method: str = "password"  # or "oidc"


# -- plumbing ------------------------------------------------------------------------------
def _utc(now: datetime | None) -> datetime:
    """``now`` as an aware UTC time (a naive one is taken to be UTC); default: the clock."""
    if now is None:
        return schema.utcnow()
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def _call(store: StoreLike, op: Callable[[sa.Connection], tuple[Any, list[Event]]]) -> Any:
    """Run a write op through the store's one writer (the path ``Workspace._call`` uses)."""
    if isinstance(store, Workspace):
        return store._call(op)
    location = store.location if isinstance(store, Store) else store
    _, writer = _shared_store(location)
    return writer.call(op)


def _store(store: StoreLike) -> Store:
    if isinstance(store, Workspace):
        return store.store
    return _shared_store(store.location if isinstance(store, Store) else store)[0]


def _row(conn: sa.Connection, name: str):
    """The users row of ``name``, or None (also for names no account could have)."""
    try:
        users.check_name(name)
    except ValidationError:
        return None
    t = schema.User.__table__
    return conn.execute(sa.select(t).where(t.c.name == name)).mappings().first()


def _read_row(store: StoreLike, name: str):
    with _store(store).connection() as conn:
        try:
            return _row(conn, name)
        finally:
            conn.commit()


def _update(conn: sa.Connection, name: str, **values) -> None:
    t = schema.User.__table__
    conn.execute(sa.update(t).where(t.c.name == name).values(**values))


def _clip(text: str) -> str:
    """An attempted name fit for the actor / entity columns: at most 64 characters, with
    control and other unprintable characters escaped (``\\n``, ``\\x00``) so a log line or CSV
    export of the trail cannot be broken by them. The payload keeps the name as typed."""
    text = text[:_ID_MAX]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)[:_ID_MAX]


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _locked_until(row, now: datetime) -> datetime | None:
    until = _as_utc(row["locked_until"])
    return until if until is not None and until > now else None


def _locked_message(name: str, until: datetime, failed: int) -> str:
    return f"Account {name} is locked until {until:%H:%M} UTC after {failed} failed sign-ins."


@cache
def _dummy_hash() -> str:
    # Should argon2's default parameters change, make a dummy hash with the new ones.
    if users._hasher.check_needs_rehash(_DUMMY_HASH):
        return users.hash_password(os.urandom(16).hex())
    return _DUMMY_HASH


def session_minutes() -> float:
    """The session length: ``$WORKBENCH_SESSION_MINUTES`` if set, else :data:`SESSION_MINUTES`."""
    raw = os.environ.get("WORKBENCH_SESSION_MINUTES")
    if raw is None or not raw.strip():
        return SESSION_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = float("nan")
    if not minutes > 0 or minutes == float("inf"):
        raise ValidationError(f"WORKBENCH_SESSION_MINUTES must be a positive number of minutes, not {raw!r}.")
    return minutes


def _session(name: str, role: str, now: datetime, method: str) -> SignedIn:
    return SignedIn(name, role, now, now + timedelta(minutes=session_minutes()), method)


# -- sign-in, sessions, sign-out ------------------------------------------------------------
def sign_in(store: StoreLike, name: str, password: str, *, now: datetime | None = None) -> SignedIn:
    """Check a local account's password and open a session of :func:`session_minutes`.

    ``store``: a store path or ``duckdb:///`` URL, or a Workspace. ``now`` (aware UTC)
    stands in for the clock, for tests. Raises :class:`~workbench.PermissionDenied` with a
    message fit to show: wrong name or password (the same for both), account locked,
    disabled, or without a password. Every attempt is audited, refused ones included.

    Example::

        signed = sign_in("data/workbench.duckdb", "dana", "dana-demo-pw")
        signed.expires_at - signed.signed_in_at   # timedelta(seconds=28800)
    """
    now = _utc(now)
    session_minutes()  # a bad $WORKBENCH_SESSION_MINUTES fails before anything is recorded
    name = name if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    # The slow part, argon2, runs outside the write transaction so it never holds the writer;
    # the op below re-reads the row and only trusts the verdict if the hash is unchanged.
    row = _read_row(store, name)
    checked_hash, verdict = None, None
    if row is None:
        users.password_matches(_dummy_hash(), password)  # same time as a wrong password
    elif row["password_hash"] and _locked_until(row, now) is None:
        checked_hash = row["password_hash"]
        verdict = users.password_matches(checked_hash, password)
    error, result = _call(store, lambda conn: _record_attempt(conn, name, checked_hash, verdict, now))
    if error:
        raise PermissionDenied(error)
    return result


def _record_attempt(conn, name: str, checked_hash: str | None, verdict: bool | None, now: datetime):
    """Write op: the users-table change an attempt causes, and its audit events.

    Returns ``((error_message, None), events)`` for a refused attempt — returned, not raised,
    so the failure and its events commit — or ``((None, SignedIn), events)``.
    """
    row = _row(conn, name)

    def failed(reason: str, **extra) -> Event:
        payload = {"method": "password", "reason": reason, **extra}
        if row is None:  # what was typed, kept as data (JSON), cut at 64 characters
            payload["attempted"] = name[:_ID_MAX]
            if len(name) > _ID_MAX:
                payload["attempted_length"] = len(name)
        return Event(_clip(name), ANONYMOUS, "auth.sign_in_failed", "user", _clip(name), payload)

    if row is None:
        return (WRONG, None), [failed("unknown user")]
    until = _locked_until(row, now)
    if until is not None:
        msg = _locked_message(name, until, row["failed_logins"])
        return (msg, None), [failed("locked", locked_until=until)]
    count = row["failed_logins"] or 0
    if row["locked_until"] is not None:  # a lock that has run out: the count starts again
        count = 0
        _update(conn, name, failed_logins=0, locked_until=None)
    if not row["password_hash"]:
        return (f"Account {name} has no password set: an admin must set one.", None), [failed("no password set")]
    if verdict is None or row["password_hash"] != checked_hash:
        # The account changed between the check and this write (e.g. a new password was set,
        # or it was unlocked): refuse without counting; the user simply tries again.
        return (WRONG, None), [failed("changed during sign-in")]
    if not verdict:
        count += 1
        events = [failed("wrong password", failed_logins=count)]
        if count >= MAX_FAILED:
            until = now + timedelta(minutes=LOCK_MINUTES)
            _update(conn, name, failed_logins=count, locked_until=until)
            events.append(Event(name, ANONYMOUS, "auth.locked", "user", name,
                                {"failed_logins": count, "locked_until": until, "minutes": LOCK_MINUTES}))
            return (_locked_message(name, until, count), None), events
        _update(conn, name, failed_logins=count)
        return (WRONG, None), events
    if row["disabled"]:  # told only to someone who knows the password
        return (f"Account {name} is disabled.", None), [failed("disabled")]
    if count or row["locked_until"] is not None:
        _update(conn, name, failed_logins=0, locked_until=None)
    signed = _session(name, row["role"], now, "password")
    return (None, signed), [Event(name, row["role"], "auth.sign_in", "user", name,
                                  {"method": "password", "expires_at": signed.expires_at})]


def is_expired(signed: SignedIn, now: datetime | None = None) -> bool:
    """Whether the session has run out (at ``expires_at`` or later)."""
    return _utc(now) >= signed.expires_at


def revoked(store: StoreLike, signed: SignedIn) -> str | None:
    """Why a live session must end now, or None: the account was disabled, removed, or its
    role changed since sign-in. Checked on every page, so an admin's change takes effect
    at the user's next click, not when the session would have expired."""
    row = _read_row(store, signed.user)
    if row is None:
        return f"The account {signed.user} no longer exists."
    if row["disabled"]:
        return f"The account {signed.user} was disabled by an admin."
    if row["role"] != signed.role:
        return f"The role of {signed.user} changed to {row['role']}; sign in again."
    return None


def check_session(signed: SignedIn, now: datetime | None = None) -> None:
    """Raise :class:`~workbench.PermissionDenied` if the session has expired."""
    if is_expired(signed, now):
        raise PermissionDenied(f"Your session expired at {signed.expires_at:%Y-%m-%d %H:%M} UTC; sign in again.")


def sign_out(store: StoreLike, signed: SignedIn, *, now: datetime | None = None) -> None:
    """End a session: records ``auth.sign_out`` (also for a session that has expired)."""
    if not isinstance(signed, SignedIn):
        raise ValidationError(f"sign_out needs the SignedIn that sign_in returned, not {type(signed).__name__}.")
    payload = {"method": signed.method, "signed_in_at": signed.signed_in_at, "expired": is_expired(signed, now)}
    event = Event(signed.user, signed.role, "auth.sign_out", "user", signed.user, payload)
    _call(store, lambda conn: (None, [event]))


# -- single sign-on (Streamlit st.login) -----------------------------------------------------
def _secrets_files() -> list[Path]:
    """Where Streamlit looks for secrets: the project's folder first, then the user's."""
    files = [Path.cwd() / ".streamlit" / "secrets.toml"]
    try:
        files.append(Path.home() / ".streamlit" / "secrets.toml")
    except RuntimeError:  # no home directory
        pass
    return files


def oidc_configured() -> bool:
    """Whether Streamlit secrets have an ``[auth]`` section, so ``st.login`` can be offered.

    Reads ``.streamlit/secrets.toml`` (relative to the working directory) and
    ``~/.streamlit/secrets.toml`` with :mod:`tomllib`; an unreadable file counts as absent.
    """
    for path in _secrets_files():
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        if isinstance(data.get("auth"), dict) and data["auth"]:
            return True
    return False


def sign_in_oidc(store: StoreLike, email_or_name: str, *, now: datetime | None = None) -> SignedIn:
    """Open a session for an identity the provider vouched for (``st.user``'s email or name).

    The identity must equal an account's name exactly (name accounts by e-mail address for
    single sign-on): no partial matching, so ``dana@elsewhere.example`` is never ``dana``.
    A password lock does not apply (it guards the password, which is not used here) and the
    failed-sign-in count is left as it is. Audited as ``auth.sign_in`` with ``{"method": "oidc"}``.
    """
    now = _utc(now)
    session_minutes()
    identity = email_or_name if isinstance(email_or_name, str) else ""

    def op(conn):
        row = _row(conn, identity)
        if row is None or row["disabled"]:
            reason = "unknown user" if row is None else "disabled"
            payload = {"method": "oidc", "reason": reason}
            if row is None:
                payload["attempted"] = identity[:_ID_MAX]
            msg = (f"No workbench account for {identity[:_ID_MAX]!r}: an admin must add a user of that name."
                   if row is None else f"Account {identity} is disabled.")
            return (msg, None), [Event(_clip(identity), ANONYMOUS, "auth.sign_in_failed", "user", _clip(identity),
                                       payload)]
        signed = _session(identity, row["role"], now, "oidc")
        return (None, signed), [Event(identity, row["role"], "auth.sign_in", "user", identity,
                                      {"method": "oidc", "expires_at": signed.expires_at})]

    error, result = _call(store, op)
    if error:
        raise PermissionDenied(error)
    return result


# -- account administration (admin only) -----------------------------------------------------
def check_password(password: str) -> str:
    """The password policy: at least :data:`PASSWORD_MIN_LENGTH` characters.

    Length is what makes a password hard to guess; rules about character classes mostly
    produce ``Password1!``. Raises :class:`~workbench.ValidationError` naming the rule.

    >>> check_password("correct horse battery")
    'correct horse battery'
    """
    if not isinstance(password, str) or len(password) < PASSWORD_MIN_LENGTH:
        raise ValidationError(f"A password needs at least {PASSWORD_MIN_LENGTH} characters.")
    if len(set(password)) < 4:
        raise ValidationError("A password needs at least 4 different characters, not one or two repeated.")
    stem = password.lower().strip("0123456789!.")
    if not stem or stem in COMMON_PASSWORDS or password.lower() in COMMON_PASSWORDS:
        raise ValidationError("That password is one of the most commonly used ones; choose another.")
    return password


def set_password(ws: Workspace, name: str, password: str) -> None:
    """Set (or reset) ``name``'s password; also clears a lock and the failed-sign-in count.

    Admin only. Audited as ``user.set_password``; the event never holds the password.
    """
    ws._require("manage_users")
    users.check_name(name)
    check_password(password)
    new_hash = users.hash_password(password)  # slow: outside the write transaction

    def op(conn):
        row = users.get(conn, name)  # NotFoundError rolls the op back
        was_locked = row["locked_until"] is not None or bool(row["failed_logins"])
        _update(conn, name, password_hash=new_hash, failed_logins=0, locked_until=None)
        return None, [Event(ws.user, ws.role, "user.set_password", "user", name,
                            {"had_password": bool(row["password_hash"]), "reset_failed_logins": was_locked})]

    ws._call(op)


def set_disabled(ws: Workspace, name: str, disabled: bool) -> None:
    """Disable (or enable again) an account. Admin only; an admin cannot disable themself.

    Audited as ``user.disable`` / ``user.enable``. A disabled user can neither sign in nor
    open a workspace (:func:`workbench.connect` refuses them).
    """
    ws._require("manage_users")
    users.check_name(name)
    if not isinstance(disabled, bool):
        raise ValidationError(f"disabled must be True or False, not {disabled!r}.")
    if disabled and name == ws.user:
        raise ValidationError("You cannot disable your own account: ask another admin.")

    def op(conn):
        row = users.get(conn, name)
        _update(conn, name, disabled=disabled)
        return None, [Event(ws.user, ws.role, "user.disable" if disabled else "user.enable", "user", name,
                            {"was_disabled": bool(row["disabled"])})]

    ws._call(op)


def unlock(ws: Workspace, name: str) -> None:
    """Lift a lock and clear the failed-sign-in count without changing the password. Admin only."""
    ws._require("manage_users")
    users.check_name(name)

    def op(conn):
        row = users.get(conn, name)
        _update(conn, name, failed_logins=0, locked_until=None)
        return None, [Event(ws.user, ws.role, "user.unlock", "user", name,
                            {"failed_logins": row["failed_logins"], "locked_until": row["locked_until"]})]

    ws._call(op)


def accounts(ws: Workspace, *, now: datetime | None = None) -> pl.DataFrame:
    """Every account with its sign-in state (for the Users page). Admin only; no hashes."""
    ws._require("manage_users")
    return ws._read("select name, role, disabled, password_hash is not null as has_password, failed_logins, "
                    "locked_until, coalesce(locked_until > ?, false) as locked, created_at from users order by name",
                    [_utc(now)])


__all__ = [
    "SignedIn", "SESSION_MINUTES", "MAX_FAILED", "LOCK_MINUTES", "PASSWORD_MIN_LENGTH", "WRONG", "sign_in",
    "sign_out", "is_expired", "check_session", "session_minutes", "oidc_configured", "sign_in_oidc",
    "check_password", "set_password", "set_disabled", "unlock", "accounts",
]
