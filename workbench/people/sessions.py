"""Dashboard sessions that survive a page reload: a server-side row, an HttpOnly cookie.

Streamlit's widgets talk over a websocket, which cannot set a cookie. So, as Streamlit's own
``st.login`` does, a successful sign-in hands the browser to an HTTP route: the page makes a
session with a one-time code (:func:`issue`, valid :data:`CODE_SECONDS`), the browser goes to
``/api/session/open?code=...``, which trades the code for the session's secret
(:func:`redeem`), sets it as the ``wb_session`` cookie (HttpOnly, SameSite=Lax, Secure under
TLS) and sends the browser back. Every later script run finds the cookie and
:func:`resume`\\ s the session from the store: the account's role and enabled state are read
again each time. The store keeps only sha256 digests of codes and secrets. Sessions live in
the store, so several servers on one PostgreSQL database share them.

>>> COOKIE
'wb_session'
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..errors import AuthenticationError, ValidationError
from ..store import schema
from ..store.audit import Event
from . import auth

COOKIE = "wb_session"
CODE_SECONDS = 30
_T = schema.DashboardSession.__table__


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    """``value`` in UTC (``timezone.utc``: an HTTP cookie's expiry must say GMT), or None."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def issue(store, signed: auth.SignedIn, *, address: str | None = None) -> str:
    """Record the session of a sign-in that just succeeded; the one-time code that opens it.

    Parameters
    ----------
    store : str, path, Workspace or Store
        The store.
    signed : SignedIn
        What :func:`workbench.people.auth.sign_in` (or ``sign_in_oidc``) returned.
    address : str, optional
        The browser's address.

    Returns
    -------
    str
        The code to send the browser to ``/api/session/open`` with; it works once, for
        :data:`CODE_SECONDS` seconds.
    """
    if not isinstance(signed, auth.SignedIn):
        raise ValidationError(f"A session is issued for a SignedIn, not {type(signed).__name__}.")
    code = secrets.token_urlsafe(24)
    now = schema.utcnow()
    key = auth.client_key(address)

    def op(conn):
        sid = conn.execute(sa.insert(_T).values(
            user_name=signed.user, method=signed.method, address=key, signed_in_at=signed.signed_in_at,
            expires_at=signed.expires_at, code_sha256=_digest(code),
            code_expires_at=now + timedelta(seconds=CODE_SECONDS)).returning(_T.c.id)).scalar_one()
        return sid, [Event(signed.user, signed.role, "session.open", "user", signed.user,
                           {"session_id": sid, "method": signed.method, "address": key, "expires_at": signed.expires_at})]

    auth.write(store, op)
    return code


def redeem(store, code: str, *, now: datetime | None = None) -> tuple[str, datetime]:
    """Trade a one-time code for the session's secret (the cookie's value) and its expiry.

    Raises
    ------
    AuthenticationError
        For a code that is unknown, used already or older than :data:`CODE_SECONDS`.
    """
    now = now or schema.utcnow()
    if not isinstance(code, str) or not code:
        raise AuthenticationError("No sign-in code: sign in again.")
    secret = secrets.token_urlsafe(32)

    def op(conn):
        row = conn.execute(sa.select(_T).where(_T.c.code_sha256 == _digest(code))).mappings().first()
        if row is None or _aware(row["code_expires_at"]) < now:
            raise AuthenticationError("This sign-in link was used already or has expired: sign in again.")
        conn.execute(sa.update(_T).where(_T.c.id == row["id"]).values(
            code_sha256=None, code_expires_at=None, secret_sha256=_digest(secret)))
        return _aware(row["expires_at"]), [Event(row["user_name"], auth.ANONYMOUS, "session.cookie", "user",
                                                 row["user_name"], {"session_id": row["id"]})]

    expires = auth.write(store, op)
    return secret, expires


def resume(store, secret: str | None, *, now: datetime | None = None) -> auth.SignedIn | None:
    """The session a cookie holds, as a SignedIn with the account's role now; None (and the
    row removed) when there is none, it expired, or the account is disabled or gone."""
    if not secret or not isinstance(secret, str):
        return None
    now = now or schema.utcnow()
    users_t = schema.User.__table__
    with auth.store_of(store).connection() as conn:
        try:
            row = conn.execute(sa.select(_T, users_t.c.role, users_t.c.disabled).select_from(
                _T.outerjoin(users_t, users_t.c.name == _T.c.user_name)).where(
                _T.c.secret_sha256 == _digest(secret))).mappings().first()
        finally:
            conn.commit()
    if row is None:
        return None
    if _aware(row["expires_at"]) <= now or row["role"] is None or row["disabled"]:
        end(store, secret, reason="expired" if _aware(row["expires_at"]) <= now else "account disabled or removed")
        return None
    return auth.SignedIn(row["user_name"], row["role"], _aware(row["signed_in_at"]), _aware(row["expires_at"]),
                         row["method"])


def end(store, secret: str | None, *, reason: str = "signed out") -> None:
    """Remove the session a cookie holds (sign-out, expiry); nothing when there is none."""
    if not secret or not isinstance(secret, str):
        return

    def op(conn):
        row = conn.execute(sa.select(_T.c.id, _T.c.user_name).where(_T.c.secret_sha256 == _digest(secret))).first()
        if row is None:
            return None, [Event(auth.ANONYMOUS, auth.ANONYMOUS, "session.end", "user", auth.ANONYMOUS,
                                {"session_id": None, "reason": "no such session"})]
        conn.execute(sa.delete(_T).where(_T.c.id == row.id))
        return None, [Event(row.user_name, auth.ANONYMOUS, "session.end", "user", row.user_name,
                            {"session_id": row.id, "reason": reason})]

    auth.write(store, op)


def end_all(conn, user: str) -> int:
    """Remove every session of ``user`` inside the caller's write op (an account disabled); how many."""
    return conn.execute(sa.delete(_T).where(_T.c.user_name == user)).rowcount


__all__ = ["COOKIE", "CODE_SECONDS", "issue", "redeem", "resume", "end", "end_all"]
