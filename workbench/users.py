"""Local accounts: names, roles and salted argon2 password hashes."""

from __future__ import annotations

import re

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from .audit import Event
from .errors import NotFoundError, ValidationError
from .roles import check_role
from .store import schema

_hasher = PasswordHasher()
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"User name {name!r} is not valid: use 1-64 letters, digits, '_', '.', '@' or '-'."
        )
    return name


def get(conn, name: str):
    t = schema.User.__table__
    row = conn.execute(sa.select(t).where(t.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(f"No user named {name!r}. Add one with: workbench users add {name} --role ROLE")
    return row


def add(conn, actor: str, actor_role: str, name: str, role: str, password: str | None):
    """Write op: a new account. The event records name and role, never the password."""
    check_name(name)
    check_role(role)
    t = schema.User.__table__
    if conn.execute(sa.select(t.c.id).where(t.c.name == name)).first() is not None:
        raise ValidationError(f"User {name!r} already exists.")
    conn.execute(sa.insert(t).values(name=name, role=role, password_hash=hash_password(password) if password else None,
                                     created_at=schema.utcnow()))
    return name, [Event(actor, actor_role, "user.add", "user", name, {"role": role, "password_set": bool(password)})]
