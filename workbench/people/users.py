"""Local accounts: names, roles, salted argon2 password hashes and the password policy.

The policy (:func:`check_password`) lives here, beside the one write op that creates an
account, so every entry point applies it: ``Workspace.add_user``, ``workbench users add``,
the Users page, the demo, and `Workspace.set_password`.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import NotFoundError, ValidationError
from ..store import schema
from ..store.audit import Event
from .roles import check_role

_hasher = PasswordHasher()
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

#: The password policy (:func:`check_password`): at least this many characters ...
PASSWORD_MIN_LENGTH = 10
#: ... and not one of these, nor one of them with trailing digits, ``!`` or ``.``: they top
#: breach lists and are refused whatever their length, as NIST SP 800-63B asks.
COMMON_PASSWORDS = frozenset({
    "password", "passw0rd", "p@ssw0rd", "p@ssword", "qwerty", "qwertyuiop", "qwertyuiop[]", "asdfghjkl",
    "zxcvbnm", "1q2w3e4r5t", "1q2w3e4r5t6y", "1qaz2wsx3edc", "qazwsxedc", "iloveyou", "letmein", "welcome",
    "admin", "administrator", "changeme", "trustno1", "abcdefghij", "abcdefghijk", "abc", "monkey", "dragon",
    "football", "baseball", "sunshine", "princess", "superman", "starwars", "whatever", "workbench",
    "passwordpassword", "secret", "default", "master", "login"})


def check_password(password: str) -> str:
    """The password policy, for every password set anywhere; returns the password.

    At least :data:`PASSWORD_MIN_LENGTH` characters, at least 4 different ones, and not a
    commonly used password. Length is what makes a password hard to guess; rules about
    character classes mostly produce ``Password1!``.

    Parameters
    ----------
    password : str
        The password as typed.

    Raises
    ------
    ValidationError
        Naming the rule it breaks (the message never repeats the password).

    Examples
    --------
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


def hash_password(password: str) -> str:
    """A salted argon2 hash of ``password``, in PHC string form (slow on purpose).

    The policy is not checked here: call :func:`check_password` first.
    """
    return _hasher.hash(password)


def needs_rehash(password_hash: str) -> bool:
    """Whether ``password_hash`` was made with other argon2 parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; False for no hash or a malformed one."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):  # a mismatch, or a hash argon2 cannot verify with
        return False


def check_name(name: str) -> str:
    """``name`` unchanged, if it can be a user name: 1-64 letters, digits, ``_``, ``.``, ``@`` or ``-``.

    Raises
    ------
    ValidationError
        If it cannot (or is not a str).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"User name {name!r} is not valid: use 1-64 letters, digits, '_', '.', '@' or '-'."
        )
    return name


def get(conn, name: str):
    """The users row of ``name``, as a mapping (every column, the password hash included).

    Raises
    ------
    NotFoundError
        If there is no such user.
    """
    t = schema.User.__table__
    row = conn.execute(sa.select(t).where(t.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError(f"No user named {name!r}. Add one with: workbench users add {name} --role ROLE")
    return row


def add(conn, actor: str, actor_role: str, name: str, role: str, password: str | None):
    """Write op: a new account. The event records name and role, never the password.

    ``password`` None makes an account without one (it cannot sign in to the dashboard until
    an admin sets one); any string must pass :func:`check_password`, the empty one included.

    Returns
    -------
    tuple
        ``(name, events)``, for the writer.

    Raises
    ------
    ValidationError
        A bad name, role or password, or a name already taken; nothing is written.
    """
    check_name(name)
    check_role(role)
    if password is not None:
        check_password(password)
    t = schema.User.__table__
    if conn.execute(sa.select(t.c.id).where(t.c.name == name)).first() is not None:
        raise ValidationError(f"User {name!r} already exists.")
    conn.execute(sa.insert(t).values(name=name, role=role, password_hash=None if password is None else hash_password(password),
                                     created_at=schema.utcnow()))
    return name, [Event(actor, actor_role, "user.add", "user", name, {"role": role, "password_set": password is not None})]
