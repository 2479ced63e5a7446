"""Dashboard sign-in: local accounts, lockout, sessions, and an audit event for each attempt.

The rules live here, in the service layer, not in the dashboard: which accounts may sign in,
when one locks, how long a session lasts. They are tested without a browser and hold for any
front end. Every sign-in, failed sign-in, lockout and sign-out is an audit event committed in
the same transaction as the users-table change, through the one write path
(:mod:`workbench.store.writer`), so an attempt cannot happen without its record.

Rules:

- A wrong password and an unknown user name get the same message and cost the same argon2
  time (unknown names are checked against a dummy hash), so neither reveals which names exist.
- Failures are counted per client address and per account. ``MAX_FAILED`` failed sign-ins
  from one address within ``LOCK_MINUTES`` block that *address* for ``LOCK_MINUTES``: every
  attempt from it, whatever the name, gets the one :data:`THROTTLED` message and no password
  is checked. (The 5th failure already answers so.) Blocking the address, not the name, means
  a stranger guessing an admin's password slows only themself.
- ``MAX_FAILED`` consecutive failures on an account (from any addresses) lock the *account*
  for ``LOCK_MINUTES``, against addresses it has never signed in from: an attacker spread over
  many addresses gets no further guesses, while the owner, from an address she signed in
  from before (:data:`KNOWN_ADDRESSES` are kept), still gets in. A refusal for a locked account
  reads :data:`WRONG`, like an unknown name, so a lock reveals nothing either.
- A successful sign-in resets the account's count; an admin's :func:`unlock_user` or
  :func:`set_password` lifts its lock, :func:`unblock_address` an address's block.
- A disabled account is reported as disabled only to someone who typed its correct password.
- A session lasts ``SESSION_MINUTES`` (``$WORKBENCH_SESSION_MINUTES`` overrides it).
- Every password set anywhere passes :func:`workbench.people.users.check_password` (at least
  ``PASSWORD_MIN_LENGTH`` characters, four different ones, not a commonly used password).
- Where Streamlit secrets have an ``[auth]`` section, the dashboard also offers ``st.login``;
  :func:`sign_in_oidc` maps the identity it returns to the account of exactly that name.

Example::

    from workbench.people import auth
    signed = auth.sign_in("data/workbench.duckdb", "dana", "dana-demo-pw", address="198.51.100.7")
    signed.role                   # 'data_scientist'
    auth.check_session(signed)    # raises PermissionDenied once the session has expired
    auth.sign_out("data/workbench.duckdb", signed)
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Callable, Union

import polars as pl
import sqlalchemy as sa

from .. import settings
from ..errors import NotFoundError, PermissionDenied, ValidationError
from ..operations import operation
from ..store import schema
from ..store.audit import Event
from ..store.connection import Store
from ..store.shared import shared_store
from . import users
from .context import Ctx

#: How long a session lasts, in minutes (``$WORKBENCH_SESSION_MINUTES`` overrides it).
SESSION_MINUTES = 480
#: Failed sign-ins that block a client address (within LOCK_MINUTES) and lock an account ...
MAX_FAILED = 5
#: ... for this many minutes.
LOCK_MINUTES = 15
#: How many recent sign-in addresses an account remembers (a locked account accepts them).
KNOWN_ADDRESSES = 5
#: The key for connections without an address (Streamlit gives none for localhost).
LOCAL = "local"
#: The password policy, kept in :mod:`workbench.people.users` (one place for every entry point).
PASSWORD_MIN_LENGTH = users.PASSWORD_MIN_LENGTH
check_password = users.check_password

#: The one message for an unknown user name, a wrong password and a locked account.
WRONG = "Wrong user name or password."
#: The one message, whatever the name, while the client's address is blocked.
THROTTLED = ("Too many failed sign-ins from your address: sign-in from it is blocked until {until:%H:%M} UTC "
             "(an admin can lift the block sooner).")
#: The role recorded for attempts by someone not (yet) signed in.
ANONYMOUS = "anonymous"
_ID_MAX = 64  # user names are at most 64 characters; longer attempts are cut in the audit

# A hash of a random secret, made with the same argon2 parameters as real hashes: unknown
# user names are verified against it so they take as long as a wrong password.
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$W4qGu++2bH2iTIz0OwDobg$fPaw3W6SHtE/vxJ9eVwXuzmQm9ZylFSTyQS9RL6wbFs"

StoreLike = Union[str, os.PathLike, Store, None]  # or anything with a ``store`` (a Workspace, a Ctx)


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


def _location(store: StoreLike):
    store = getattr(store, "store", store)  # a Workspace or a Ctx: its Store
    return store.location if isinstance(store, Store) else store


def _call(store: StoreLike, op: Callable[[sa.Connection], tuple[Any, list[Event]]]) -> Any:
    """Run a write op through the store's one writer in this process."""
    return shared_store(_location(store))[1].call(op)


def _store(store: StoreLike) -> Store:
    return shared_store(_location(store))[0]


def write(store: StoreLike, op: Callable[[sa.Connection], tuple[Any, list[Event]]]) -> Any:
    """Commit a write op (``op(conn) -> (result, events)``) on ``store`` through this process's
    writer: for sign-in records made before anyone acts in a workspace (sessions too)."""
    return _call(store, op)


def store_of(store: StoreLike) -> Store:
    """The process's :class:`~workbench.store.connection.Store` for a path, URL, Workspace or Store."""
    return _store(store)


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


def client_key(address: str | None) -> str:
    """The key failures are counted under for a client ``address``.

    An IPv4 address as it is; an IPv6 address as its /64 network (one host usually holds a
    whole /64, so counting single IPv6 addresses would let it pick a fresh one per guess);
    None or "" (Streamlit gives no address for localhost) as :data:`LOCAL`.

    Parameters
    ----------
    address : str or None
        The client's IP address, e.g. ``st.context.ip_address``.

    Raises
    ------
    ValidationError
        If ``address`` is neither None nor an IP address.

    Examples
    --------
    >>> client_key("2001:db8:1:2:aaaa::7")
    '2001:db8:1:2::/64'
    """
    if address is None or address == "":
        return LOCAL
    if not isinstance(address, str):  # ipaddress would take an int as an address
        raise ValidationError(f"A client address must be a string, not {type(address).__name__}.")
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValidationError(f"{address[:_ID_MAX]!r} is not an IP address.") from None
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is that IPv4 client
        return str(ip.ipv4_mapped)
    if ip.version == 6:  # from the integer: a zone (fe80::1%eth0) must not make its own key
        return str(ipaddress.IPv6Network((int(ip), 64), strict=False))
    return str(ip)


def address_row(conn: sa.Connection, key: str):
    """The ``sign_in_addresses`` row of client key ``key`` (a mapping), or None."""
    t = schema.SignInAddress.__table__
    return conn.execute(sa.select(t).where(t.c.address == key)).mappings().first()


def address_blocked_until(arow, now: datetime) -> datetime | None:
    """Until when the address of ``arow`` (an :func:`address_row`) is blocked, or None."""
    if arow is None:
        return None
    until = _as_utc(arow["blocked_until"])
    return until if until is not None and until > now else None


def _known(row) -> list[str]:
    """The addresses the account last signed in from with its password (newest first)."""
    known = row["known_addresses"]  # anything but a list of strings counts as none: the stricter reading
    return [k for k in known if isinstance(k, str)] if isinstance(known, list) else []


def count_address_failure(conn: sa.Connection, key: str, now: datetime, actor: str) -> tuple[datetime | None, list[Event]]:
    """Count one failed sign-in (or API token check) from ``key``; block it at the MAX_FAILED-th in one window.

    Returns (blocked_until or None, events). The window starts at the first failure and
    lasts LOCK_MINUTES; a failure after it starts a new one. Success never resets the count,
    else an attacker with an account of their own could sign in between guesses.
    """
    t = schema.SignInAddress.__table__
    arow = address_row(conn, key)
    if arow is None:
        conn.execute(sa.insert(t).values(address=key, failures=1, window_start=now, blocked_until=None))
        failures, start = 1, now
    else:
        start = _as_utc(arow["window_start"])
        failures = 1 if start + timedelta(minutes=LOCK_MINUTES) <= now else arow["failures"] + 1
        start = now if failures == 1 else start
        conn.execute(sa.update(t).where(t.c.address == key).values(failures=failures, window_start=start,
                                                                     blocked_until=None))
    if failures < MAX_FAILED:
        return None, []
    until = now + timedelta(minutes=LOCK_MINUTES)
    conn.execute(sa.update(t).where(t.c.address == key).values(blocked_until=until))
    return until, [Event(actor, ANONYMOUS, "auth.address_blocked", "address", key,
                         {"failures": failures, "since": start, "blocked_until": until, "minutes": LOCK_MINUTES})]


@cache
def _dummy_hash() -> str:
    # Should argon2's default parameters change, make a dummy hash with the new ones.
    if users.needs_rehash(_DUMMY_HASH):
        return users.hash_password(os.urandom(16).hex())
    return _DUMMY_HASH


def session_minutes() -> float:
    """The session length: ``$WORKBENCH_SESSION_MINUTES`` if set, else :data:`SESSION_MINUTES`."""
    return settings.minutes("WORKBENCH_SESSION_MINUTES", SESSION_MINUTES)


def _session(name: str, role: str, now: datetime, method: str) -> SignedIn:
    return SignedIn(name, role, now, now + timedelta(minutes=session_minutes()), method)


# -- sign-in, sessions, sign-out ------------------------------------------------------------
def sign_in(store: StoreLike, name: str, password: str, *, address: str | None = None,
            now: datetime | None = None) -> SignedIn:
    """Check a local account's password and open a session of :func:`session_minutes`.

    Parameters
    ----------
    store : str, path, Workspace or Store
        A store path or URL, or a Workspace on it.
    name, password : str
        What the person typed.
    address : str or None
        The client's IP address (``st.context.ip_address``); failures are counted and
        blocked per :func:`client_key` of it. None (localhost) counts as :data:`LOCAL`.
    now : datetime, optional
        Aware UTC time standing in for the clock, for tests.

    Returns
    -------
    SignedIn

    Raises
    ------
    PermissionDenied
        With a message fit to show: :data:`WRONG` for an unknown name, a wrong password, an
        account without a password and a locked account (from an address it never signed in
        from) alike; :data:`THROTTLED` for any name from a blocked address; "disabled" only
        after the right password. Every attempt is audited, refused ones included.
    ValidationError
        For an ``address`` that is not an IP address, before anything is recorded.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from workbench.workspace import operator_workspace
    >>> store = str(pathlib.Path(tempfile.mkdtemp()) / "example.duckdb")
    >>> _ = operator_workspace(store).add_user("dana", "data_scientist", "dana-example-pw-7")
    >>> signed = sign_in(store, "dana", "dana-example-pw-7")
    >>> signed.expires_at - signed.signed_in_at
    datetime.timedelta(seconds=28800)
    """
    now = _utc(now)
    session_minutes()  # a bad $WORKBENCH_SESSION_MINUTES fails before anything is recorded
    key = client_key(address)
    name = name if isinstance(name, str) else ""
    password = password if isinstance(password, str) else ""
    # The slow part, argon2, runs outside the write transaction so it never holds the writer;
    # the op below re-reads the rows and only trusts the verdict if the hash is unchanged.
    row, arow = _read_rows(store, name, key)
    checked_hash, verdict = None, None
    if address_blocked_until(arow, now) is not None:
        pass  # refused whatever the name: no password is checked, so none can be guessed
    elif row is None or not row["password_hash"] or (_locked_until(row, now) and key not in _known(row)):
        users.password_matches(_dummy_hash(), password)  # same time as a wrong password
    else:
        checked_hash = row["password_hash"]
        verdict = users.password_matches(checked_hash, password)
    error, result = _call(store, lambda conn: _record_attempt(conn, name, key, checked_hash, verdict, now))
    if error:
        raise PermissionDenied(error)
    return result


def _read_rows(store: StoreLike, name: str, key: str):
    with _store(store).connection() as conn:
        try:
            return _row(conn, name), address_row(conn, key)
        finally:
            conn.commit()


def _record_attempt(conn, name: str, key: str, checked_hash: str | None, verdict: bool | None, now: datetime):
    """Write op: the users and sign_in_addresses changes an attempt causes, and its events.

    Returns ``((error_message, None), events)`` for a refused attempt — returned, not raised,
    so the failure and its events commit — or ``((None, SignedIn), events)``.
    """
    row = _row(conn, name)
    actor = name if row is not None else _clip(name)

    def failed(reason: str, **extra) -> Event:
        payload = {"method": "password", "reason": reason, "address": key, **extra}
        if row is None:  # what was typed, kept as data (JSON), cut at 64 characters
            payload["attempted"] = name[:_ID_MAX]
            if len(name) > _ID_MAX:
                payload["attempted_length"] = len(name)
        return Event(actor, ANONYMOUS, "auth.sign_in_failed", "user", actor, payload)

    def refuse(reason: str, **extra):
        """A failed guess: counted against the address; one message whatever the reason."""
        blocked, events = count_address_failure(conn, key, now, actor)
        message = THROTTLED.format(until=blocked) if blocked else WRONG
        return (message, None), [failed(reason, **extra), *events]

    blocked = address_blocked_until(address_row(conn, key), now)
    if blocked is not None:
        return (THROTTLED.format(until=blocked), None), [failed("address blocked", blocked_until=blocked)]
    if row is None:
        return refuse("unknown user")
    until = _locked_until(row, now)
    known = _known(row)
    if until is not None and key not in known:
        return refuse("locked", locked_until=until)
    count = row["failed_logins"] or 0
    if until is None and row["locked_until"] is not None:  # a lock that has run out: count again
        count = 0
        _update(conn, name, failed_logins=0, locked_until=None)
    if not row["password_hash"]:  # said like a wrong password: a stranger learns nothing
        return refuse("no password set")
    if verdict is None or row["password_hash"] != checked_hash:
        # The account changed between the check and this write (a new password was set, it
        # was locked or unlocked): refuse without counting; the user simply tries again.
        return (WRONG, None), [failed("changed during sign-in")]
    if not verdict:
        count += 1
        (message, _), events = refuse("wrong password", failed_logins=count)
        if count >= MAX_FAILED and until is None:
            until = now + timedelta(minutes=LOCK_MINUTES)
            _update(conn, name, failed_logins=count, locked_until=until)
            events.append(Event(name, ANONYMOUS, "auth.locked", "user", name,
                                {"failed_logins": count, "locked_until": until, "minutes": LOCK_MINUTES,
                                 "address": key}))
        else:
            _update(conn, name, failed_logins=count)
        return (message, None), events
    if row["disabled"]:  # told only to someone who knows the password
        return (f"Account {name} is disabled.", None), [failed("disabled")]
    known = [key] + [k for k in known if k != key]
    _update(conn, name, failed_logins=0, locked_until=None, known_addresses=known[:KNOWN_ADDRESSES])
    signed = _session(name, row["role"], now, "password")
    return (None, signed), [Event(name, row["role"], "auth.sign_in", "user", name,
                                  {"method": "password", "expires_at": signed.expires_at, "address": key})]


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
    """End a session: records ``auth.sign_out`` (also for a session that has expired).

    Raises
    ------
    ValidationError
        If ``signed`` is not the :class:`SignedIn` that a sign-in returned.
    """
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

    Returns
    -------
    SignedIn
        A session of :func:`session_minutes`, with ``method`` ``"oidc"``.

    Raises
    ------
    PermissionDenied
        If no account has exactly that name, or the account is disabled; the attempt is
        audited as ``auth.sign_in_failed``.
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
@operation("manage_users", writes=True)
def set_password(ctx: Ctx, name: str, password: str) -> None:
    """Set (or reset) ``name``'s password; also clears a lock and the failed-sign-in count.

    Admin only. Audited as ``user.set_password``; the event never holds the password.

    Raises
    ------
    PermissionDenied
        For anyone but an admin (or the local operator).
    ValidationError
        For a name no account can have, or a password :func:`check_password` refuses.
    NotFoundError
        For an unknown name; nothing is recorded.
    """
    users.check_name(name)
    check_password(password)
    new_hash = users.hash_password(password)  # slow: outside the write transaction

    def op(conn):
        row = users.get(conn, name)  # NotFoundError rolls the op back
        was_locked = row["locked_until"] is not None or bool(row["failed_logins"])
        _update(conn, name, password_hash=new_hash, failed_logins=0, locked_until=None)
        return None, [Event(ctx.user, ctx.role, "user.set_password", "user", name,
                            {"had_password": bool(row["password_hash"]), "reset_failed_logins": was_locked})]

    ctx.call(op)


@operation("manage_users", writes=True)
def set_user_disabled(ctx: Ctx, name: str, disabled: bool) -> None:
    """Disable (or enable again) an account. Admin only; an admin cannot disable themself.

    Audited as ``user.disable`` / ``user.enable``. A disabled user can neither sign in nor
    open a workspace (:func:`workbench.connect` refuses them).

    Raises
    ------
    PermissionDenied
        For anyone but an admin (or the local operator).
    ValidationError
        For a name no account can have, a ``disabled`` that is not a bool, or an admin
        disabling their own account.
    NotFoundError
        For an unknown name; nothing is recorded.
    """
    users.check_name(name)
    if not isinstance(disabled, bool):
        raise ValidationError(f"disabled must be True or False, not {disabled!r}.")
    if disabled and name == ctx.user:
        raise ValidationError("You cannot disable your own account: ask another admin.")

    from . import sessions  # here: sessions builds on this module

    def op(conn):
        row = users.get(conn, name)
        _update(conn, name, disabled=disabled)
        ended = sessions.end_all(conn, name) if disabled else 0  # their dashboard sessions end at once
        return None, [Event(ctx.user, ctx.role, "user.disable" if disabled else "user.enable", "user", name,
                            {"was_disabled": bool(row["disabled"]), "sessions_ended": ended})]

    ctx.call(op)


@operation("manage_users", writes=True)
def unlock_user(ctx: Ctx, name: str) -> None:
    """Lift an account's lock and clear its failed-sign-in count; the password stays.

    Admin only. Audited as ``user.unlock`` with the count and lock it cleared. A block on
    the address the failures came from is separate (:func:`unblock_address`).

    Raises
    ------
    PermissionDenied
        For anyone but an admin (or the local operator).
    NotFoundError
        For an unknown name; nothing is recorded.
    """
    users.check_name(name)

    def op(conn):
        row = users.get(conn, name)
        _update(conn, name, failed_logins=0, locked_until=None)
        return None, [Event(ctx.user, ctx.role, "user.unlock", "user", name,
                            {"failed_logins": row["failed_logins"], "locked_until": _as_utc(row["locked_until"]),
                             "after": {"failed_logins": 0, "locked_until": None}})]

    ctx.call(op)


@operation("manage_users", writes=False)
def blocked_addresses(ctx: Ctx, *, now: datetime | None = None) -> pl.DataFrame:
    """Client addresses blocked now (:func:`client_key` form), with failures and until when.

    Admin only (the Users page lists them for :func:`unblock_address`).

    Parameters
    ----------
    now : datetime, optional
        The time standing in for the clock, for tests; a naive one is taken as UTC.

    Returns
    -------
    polars.DataFrame
        ``address``, ``failures``, ``window_start``, ``blocked_until``; the latest block first.
    """
    return ctx.read("select address, failures, window_start, blocked_until from sign_in_addresses "
                    "where blocked_until > ? order by blocked_until desc, address", [_utc(now)])


@operation("manage_users", writes=True)
def unblock_address(ctx: Ctx, address: str, *, now: datetime | None = None) -> None:
    """Lift the block on a client address and clear its failure count. Admin only.

    ``address`` is an IP address or a key as :func:`blocked_addresses` lists it (an IPv6
    /64, or ``local``). Audited as ``address.unblock`` with the failures and block it cleared.

    Raises
    ------
    PermissionDenied
        For anyone but an admin (or the local operator).
    ValidationError
        If ``address`` is not an IP address, an IPv6 network or ``local``.
    NotFoundError
        If no failure was ever counted for that address; nothing is recorded.
    """
    if not isinstance(address, str) or not address.strip():
        raise ValidationError(f"unblock_address needs an IP address or a listed address key, not {address!r}.")
    address = address.strip()
    if address == LOCAL:
        key = LOCAL
    elif "/" in address:  # an IPv6 /64 as blocked_addresses lists it, in any spelling
        try:
            network = ipaddress.IPv6Network(address, strict=False)
        except ValueError:
            raise ValidationError(f"{address[:_ID_MAX]!r} is not an IP address or an IPv6 /64.") from None
        key = client_key(str(network.network_address))
    else:
        key = client_key(address)
    now = _utc(now)

    def op(conn):
        arow = address_row(conn, key)
        if arow is None:
            raise NotFoundError(f"No failed sign-ins were counted from {key!r}; nothing to unblock.")
        t = schema.SignInAddress.__table__
        conn.execute(sa.update(t).where(t.c.address == key).values(failures=0, window_start=now, blocked_until=None))
        return None, [Event(ctx.user, ctx.role, "address.unblock", "address", key,
                            {"failures": arow["failures"], "blocked_until": _as_utc(arow["blocked_until"]),
                             "after": {"failures": 0, "blocked_until": None}})]

    ctx.call(op)


@operation("manage_users", writes=False)
def accounts(ctx: Ctx, *, now: datetime | None = None) -> pl.DataFrame:
    """Every account with its sign-in state (for the Users page). Admin only; no hashes.

    Parameters
    ----------
    now : datetime, optional
        The time ``locked`` is judged at, standing in for the clock in tests.

    Returns
    -------
    polars.DataFrame
        ``name``, ``role``, ``disabled``, ``has_password``, ``failed_logins``, ``locked_until``,
        ``locked`` (a lock still running at ``now``) and ``created_at``, by name.
    """
    return ctx.read("select name, role, disabled, password_hash is not null as has_password, failed_logins, "
                    "locked_until, coalesce(locked_until > ?, false) as locked, created_at from users order by name",
                    [_utc(now)])


__all__ = [
    "SignedIn", "SESSION_MINUTES", "MAX_FAILED", "LOCK_MINUTES", "KNOWN_ADDRESSES", "LOCAL", "PASSWORD_MIN_LENGTH",
    "WRONG", "THROTTLED", "client_key", "sign_in", "sign_out", "is_expired", "check_session", "session_minutes",
    "oidc_configured", "sign_in_oidc", "check_password", "set_password", "set_user_disabled", "unlock_user",
    "blocked_addresses", "unblock_address", "accounts", "address_row", "address_blocked_until",
    "count_address_failure", "write", "store_of",
]
