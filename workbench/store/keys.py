"""Secret keys: where they come from. Never from the store, never into it.

Two keys, each from an environment variable holding the key or one naming a key file:

- ``WORKBENCH_ARTIFACT_KEY`` / ``WORKBENCH_ARTIFACT_KEY_FILE``: encrypts artifact files
  (model files, SHAP values, prediction logs) with AES-256-GCM. Optional: without it
  artifacts are written in the clear, as before.
- ``WORKBENCH_PSEUDONYM_KEY`` / ``WORKBENCH_PSEUDONYM_KEY_FILE``: keys the HMAC-SHA256
  tokens that replace identifying values. Always needed once such values arrive; when
  neither is set, a key file is made once at ``~/.config/workbench/pseudonym.key`` (mode
  0600) so tokens stay stable across sessions on this machine. Teams share one key file.

A key is 32 bytes written as 64 hex digits or as base64 (``workbench keys new`` prints one).

>>> parse_key("00" * 32, "example") == bytes(32)
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path

from ..errors import ValidationError

KEY_BYTES = 32
log = logging.getLogger(__name__)


def new_key() -> str:
    """A fresh random key as 64 hex digits."""
    return secrets.token_hex(KEY_BYTES)


def parse_key(text: str, what: str) -> bytes:
    """32 key bytes from hex or base64 text; the message names ``what``, never the value.

    Parameters
    ----------
    text : str
        The key as 64 hex digits, standard base64 or URL-safe base64; surrounding whitespace
        is ignored.
    what : str
        What holds the key (e.g. ``"$WORKBENCH_ARTIFACT_KEY"``), for the error message.

    Returns
    -------
    bytes
        The 32 key bytes.

    Raises
    ------
    ValidationError
        If ``text`` does not decode to exactly 32 bytes.
    """
    text = text.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True),
                   lambda t: base64.urlsafe_b64decode(t.encode())):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise ValidationError(f"{what} is not a 32-byte key written as 64 hex digits or base64 "
                          "(make one with `workbench keys new`).")


def key_id(key: bytes) -> bytes:
    """8 bytes that name a key without revealing it (stored in encrypted file headers)."""
    return hashlib.sha256(b"workbench key id\x00" + key).digest()[:8]


def _from_env(name: str) -> bytes | None:
    value = os.environ.get(name)
    if value:
        return parse_key(value, f"${name}")
    file = os.environ.get(f"{name}_FILE")
    if file:
        path = Path(file).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValidationError(f"${name}_FILE names {path}, which cannot be read ({exc.strerror}).") from None
        return parse_key(text, f"The key file {path}")
    return None


def artifact_key() -> bytes | None:
    """The artifact encryption key, or None when artifacts are kept in the clear.

    Read on every call from ``$WORKBENCH_ARTIFACT_KEY``, else the file named by
    ``$WORKBENCH_ARTIFACT_KEY_FILE``.

    Raises
    ------
    ValidationError
        If the variable does not hold a key, or the key file cannot be read or does not.
    """
    return _from_env("WORKBENCH_ARTIFACT_KEY")


DEFAULT_PSEUDONYM_KEY_FILE = Path("~/.config/workbench/pseudonym.key")


def pseudonym_key() -> bytes:
    """The pseudonymisation key; made once in the user's config folder when none is set.

    From ``$WORKBENCH_PSEUDONYM_KEY``, else the file named by ``$WORKBENCH_PSEUDONYM_KEY_FILE``,
    else :data:`DEFAULT_PSEUDONYM_KEY_FILE`, which is created (mode 0600, with a logged warning)
    when it does not exist yet.

    Raises
    ------
    ValidationError
        If the variable or a key file does not hold a key, or a named key file cannot be read.
    """
    key = _from_env("WORKBENCH_PSEUDONYM_KEY")
    if key is not None:
        return key
    path = DEFAULT_PSEUDONYM_KEY_FILE.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key() + "\n")
        try:
            os.link(tmp, path)  # atomic and exclusive: of two processes, one key wins, whole
            log.warning("Made a pseudonymisation key at %s: back it up, and share it (not the store) with "
                        "everyone who logs to the same store, so tokens match.", path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return parse_key(path.read_text(), f"The key file {path}")
