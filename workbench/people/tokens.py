"""Personal access tokens: how an API client proves who it is to the server.

A token is ``wbt_`` and 32 random bytes (URL-safe base64). It is shown once, when it is made;
the store keeps only its sha256, with its user, a label, an expiry and, optionally, the
operations it is limited to (a CI token that may log runs and register models, but not ask
for or decide promotions). A token never grants more than its user's role: the server checks
the role, from the store, on every call, and the token's list on top.

A missing, unknown, expired or revoked token, or one of a disabled user, is refused with
:class:`~workbench.errors.AuthenticationError` (the server's 401). Failed checks are counted
per client address with the password sign-ins' counter (:func:`workbench.people.auth.count_address_failure`),
so guessing tokens is blocked as guessing passwords is.

Examples
--------
>>> looks_like_token("wbt_" + "A" * 43)
True
>>> looks_like_token("Bearer abc")
False
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
import sqlalchemy as sa

from ..errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from ..operations import OPERATIONS, READ, operation
from ..store import schema
from ..store.audit import Event
from . import auth, users
from .context import Ctx

PREFIX = "wbt_"
_SHAPE = re.compile(r"wbt_[A-Za-z0-9_-]{43}")
#: Days a token lasts unless its maker says otherwise, and the longest allowed.
DEFAULT_DAYS, MAX_DAYS = 90, 366
#: ``last_used_at`` is written (and a ``token.use`` event with the client's address appended) at
#: most this often per token: every call would be a write.
USE_RESOLUTION = timedelta(hours=1)
_LABEL_MAX = 64


@dataclass(frozen=True)
class TokenUser:
    """Who a checked token acts for, as the store says now.

    Attributes
    ----------
    user, role : str
        The token's user and that user's current role.
    token_id : int
        The token's id (named by the audit events of the calls it makes).
    operations : tuple of str or None
        The operations the token is limited to; None for all its user's role may do.
    """

    user: str
    role: str
    token_id: int
    operations: tuple[str, ...] | None

    def allows(self, name: str) -> bool:
        """Whether the token itself may call operation ``name`` (the role is checked apart)."""
        return self.operations is None or name in self.operations


def digest(token: str) -> str:
    """The sha256 a token is kept under."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(text: str) -> bool:
    """Whether ``text`` has a token's shape (checked before any store read)."""
    return isinstance(text, str) and _SHAPE.fullmatch(text) is not None


def _check_operations(operations) -> list[str] | None:
    if operations is None:
        return None
    if isinstance(operations, str) or not all(isinstance(o, str) for o in operations):
        raise ValidationError("operations must be a list of operation names, e.g. ['start_run', 'register_model'].")
    unknown = sorted(set(operations) - OPERATIONS.keys())
    if unknown:
        raise ValidationError(f"Unknown operation(s) {unknown}: a token can be limited to operations of "
                              "workbench.operations.OPERATIONS.")
    if not operations:
        raise ValidationError("operations is empty: such a token could do nothing. Leave it out for no limit.")
    return sorted(set(operations))


def _owner(ctx: Ctx, user: str | None) -> str:
    """The user a token operation is about: the caller's own, or (admins) anyone's."""
    if ctx.user is None:
        raise PermissionDenied("Tokens need a signed-in user: pass user= to wb.connect() or sign in.")
    if user is None or user == ctx.user:
        return ctx.user
    ctx.require("manage_users")
    return user


@operation(READ, writes=True, checked_inside=True)
def create_token(ctx: Ctx, name: str, *, user: str | None = None, expires_days: int = DEFAULT_DAYS,
                 operations: list[str] | None = None) -> dict:
    """Make a personal access token for the API; the token itself is in the result only.

    Anyone signed in makes their own; an admin may make one for another user. Audited as
    ``token.create`` (id, user, label, expiry and limits; never the token).

    Parameters
    ----------
    name : str
        A label to know it by ("ci", "laptop"), at most 64 characters.
    user : str, optional
        Whose token: default the caller's own; another user's needs ``manage_users``.
    expires_days : int, default 90
        Days until it stops working, 1 to 366.
    operations : list of str, optional
        Limit it to these operations (names of :data:`workbench.operations.OPERATIONS`).

    Returns
    -------
    dict
        ``id``, ``token`` (``wbt_...``: shown this once), ``user``, ``name``, ``expires_at``, ``operations``.

    Raises
    ------
    PermissionDenied
        Without a user, or for another user's token without ``manage_users``.
    ValidationError
        For an empty or over-long label, days outside 1-366, or an unknown operation.
    NotFoundError
        For an unknown user.
    """
    owner = _owner(ctx, user)
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > _LABEL_MAX:
        raise ValidationError(f"A token needs a name (a label to know it by) of 1 to {_LABEL_MAX} characters.")
    if isinstance(expires_days, bool) or not isinstance(expires_days, int) or not 1 <= expires_days <= MAX_DAYS:
        raise ValidationError(f"expires_days must be a whole number of days from 1 to {MAX_DAYS}, not {expires_days!r}.")
    limits = _check_operations(operations)
    token = PREFIX + secrets.token_urlsafe(32)
    now = schema.utcnow()
    expires = now + timedelta(days=expires_days)
    t = schema.ApiToken.__table__

    def op(conn):
        row = users.get(conn, owner)
        if row["disabled"]:
            raise ValidationError(f"User {owner!r} is disabled: enable the account before making it a token.")
        token_id = conn.execute(sa.insert(t).values(
            sha256=digest(token), user_name=owner, name=name.strip(), operations=limits, created_by=ctx.user,
            created_at=now, expires_at=expires).returning(t.c.id)).scalar_one()
        return token_id, [Event(ctx.user, ctx.role, "token.create", "user", owner,
                                {"token_id": token_id, "name": name.strip(), "expires_at": expires,
                                 "operations": limits})]

    token_id = ctx.call(op)
    return {"id": token_id, "token": token, "user": owner, "name": name.strip(), "expires_at": expires,
            "operations": limits}


@operation(READ, writes=False, checked_inside=True)
def tokens(ctx: Ctx, user: str | None = None, *, all_users: bool = False) -> pl.DataFrame:
    """The caller's tokens (an admin: ``user``'s, or with ``all_users`` everyone's), newest first.

    Parameters
    ----------
    user : str, optional
        Whose tokens; another user's need ``manage_users``.
    all_users : bool, default False
        Every user's tokens (``manage_users``).

    Returns
    -------
    polars.DataFrame
        ``id``, ``user``, ``name``, ``operations`` (JSON text, or null for no limit), ``created_by``,
        ``created_at``, ``expires_at``, ``last_used_at``, ``revoked_at``, ``revoked_by`` and
        ``status`` (active, expired or revoked). Never the token or its hash.
    """
    if all_users:
        ctx.require("manage_users")
        where, params = "", []
    else:
        where, params = "where user_name = ?", [_owner(ctx, user)]
    return ctx.read(
        "select id, user_name as \"user\", name, cast(operations as varchar) as operations, created_by, created_at, "
        "expires_at, last_used_at, revoked_at, revoked_by, case when revoked_at is not null then 'revoked' "
        f"when expires_at <= ? then 'expired' else 'active' end as status from api_tokens {where} "
        "order by created_at desc, id desc", [schema.utcnow(), *params])


@operation(READ, writes=True, checked_inside=True)
def revoke_token(ctx: Ctx, token_id: int) -> None:
    """Revoke a token at once: one's own, or (admins) anyone's. Audited as ``token.revoke``.

    Raises
    ------
    PermissionDenied
        For another user's token without ``manage_users``.
    NotFoundError
        For an unknown id (or, to a non-admin, another user's). Revoking a revoked token
        again changes nothing and records nothing.
    """
    if isinstance(token_id, bool) or not isinstance(token_id, int):
        raise ValidationError(f"token_id must be a whole number, not {token_id!r}.")
    if ctx.user is None:
        raise PermissionDenied("Tokens need a signed-in user.")
    t = schema.ApiToken.__table__
    admin = ctx.allowed("manage_users")

    def row_of(conn):
        row = conn.execute(sa.select(t.c.user_name, t.c.name, t.c.revoked_at).where(t.c.id == token_id)).first()
        if row is None or (row.user_name != ctx.user and not admin):
            raise NotFoundError(f"No token {token_id} of yours." if not admin else f"No token {token_id}.")
        return row

    if ctx.snapshot(row_of).revoked_at is not None:
        return  # revoked already: nothing changes, nothing is recorded

    def op(conn):
        row = row_of(conn)
        if row.revoked_at is not None:
            raise ConflictError(f"Token {token_id} was revoked a moment ago by someone else.")
        now = schema.utcnow()
        conn.execute(sa.update(t).where(t.c.id == token_id).values(revoked_at=now, revoked_by=ctx.user))
        return None, [Event(ctx.user, ctx.role, "token.revoke", "user", row.user_name,
                            {"token_id": token_id, "name": row.name, "before": {"revoked_at": None},
                             "after": {"revoked_at": now}})]

    ctx.call(op)


def check(store, writer, token: str, *, address: str | None = None, now: datetime | None = None) -> TokenUser:
    """Who ``token`` acts for, from the store now; refuse it otherwise.

    Parameters
    ----------
    store : Store
        The store the server holds.
    writer : Writer
        Its writer: a refusal is counted against the client's address, a use marks ``last_used_at``.
    token : str
        What the client sent after ``Bearer``.
    address : str, optional
        The client's IP address (failures are counted per :func:`workbench.people.auth.client_key`).
    now : datetime, optional
        Stands in for the clock, for tests.

    Returns
    -------
    TokenUser

    Raises
    ------
    AuthenticationError
        For an address blocked after failed checks, a token that is malformed, unknown,
        expired or revoked, or whose user is disabled or gone; each says which.
    """
    now = now or schema.utcnow()
    key = auth.client_key(address)
    t = schema.ApiToken.__table__
    with store.connection() as conn:  # one query a call: the token, its user now, the address's block
        try:
            found = conn.execute(_CHECK, {"sha": digest(token) if looks_like_token(token) else "", "key": key}
                                 ).mappings().first()
        finally:
            conn.commit()
    row = found if found is not None and found["id"] is not None else None
    blocked = _aware(found["blocked_until"]) if found is not None else None
    blocked = blocked if blocked is not None and blocked > now else None
    if blocked is not None:
        raise AuthenticationError(f"Too many failed token checks from your address: blocked until {blocked:%H:%M} UTC.")
    problem = None
    if row is None or not hmac.compare_digest(row["sha256"], digest(token)):
        problem = "The token is not valid (unknown, mistyped or cut short)."
    elif row["revoked_at"] is not None:
        problem = f"Token {row['id']} ({row['name']}) was revoked; make a new one on the Tokens page."
    elif _aware(row["expires_at"]) <= now:
        problem = f"Token {row['id']} ({row['name']}) expired on {_aware(row['expires_at']):%Y-%m-%d}; make a new one."
    elif row["role"] is None:
        problem = f"The token's user {row['user_name']!r} no longer exists."
    elif row["disabled"]:
        problem = f"User {row['user_name']!r} is disabled: their tokens stop working."
    if problem is not None:
        def refused(conn):
            _, events = auth.count_address_failure(conn, key, now, auth.ANONYMOUS)
            who = row["user_name"] if row is not None else auth.ANONYMOUS
            return None, [Event(who, auth.ANONYMOUS, "token.refused", "address", key,
                                {"token_id": row["id"] if row is not None else None, "reason": problem}), *events]

        writer.call(refused)
        raise AuthenticationError(problem)
    last = _aware(row["last_used_at"])
    if last is None or now - last >= USE_RESOLUTION:
        def used(conn):
            conn.execute(sa.update(t).where(t.c.id == row["id"]).values(last_used_at=now))
            return None, [Event(row["user_name"], row["role"], "token.use", "user", row["user_name"],
                                {"token_id": row["id"], "address": key, "last_used_at": last})]

        writer.call(used)
    ops = row["operations"]
    return TokenUser(row["user_name"], row["role"], row["id"], tuple(ops) if ops is not None else None)


#: The token (if any) with its user's role and state, and the client address's block (if any).
_CHECK = sa.text(
    "select t.id, t.sha256, t.user_name, t.name, t.operations, t.expires_at, t.last_used_at, t.revoked_at, "
    "u.role, u.disabled, a.blocked_until from (select 1 as one) x "
    "left join api_tokens t on t.sha256 = :sha left join users u on u.name = t.user_name "
    "left join sign_in_addresses a on a.address = :key").columns(operations=schema.JSON)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=schema.utcnow().tzinfo)


__all__ = ["PREFIX", "DEFAULT_DAYS", "MAX_DAYS", "TokenUser", "digest", "looks_like_token", "create_token", "tokens",
           "revoke_token", "check"]
