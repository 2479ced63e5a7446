"""Content-addressed files: stored once under their sha256, checked on every read.

Files live in ``<artifact root>/<sha[:2]>/<sha>``; the store keeps names and digests.
Reading a file whose bytes no longer match its digest raises IntegrityError, so a swapped
or corrupted model file is never unpickled.

With an artifact key configured (:mod:`workbench.store.keys`) files are written encrypted with
AES-256-GCM; the digest stays that of the plaintext, so content addressing and dedup are
unchanged. The format is chunked (STREAM: 1 MiB chunks, a counter and a last-chunk flag in
each nonce), so any length works and truncation, reordering or a swapped file is detected;
each chunk's associated data binds the header and the digest, so an encrypted file moved to
another file's address does not decrypt. Files written in the clear stay readable; ``workbench
artifacts encrypt`` rewrites them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError, KeyUnavailableError, NotFoundError, ValidationError
from . import keys

MAGIC = b"WBENC1\n\x00"  # 8 bytes; a pickle, Parquet or HTML file never starts with them
CHUNK = 1 << 20
TAG = 16
_HEADER = len(MAGIC) + 8 + 7  # magic, key id, nonce prefix


def sha256_bytes(data: bytes) -> str:
    """The sha256 of ``data`` as 64 lowercase hex digits."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes as 64 lowercase hex digits, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_for(root: Path, digest: str) -> Path:
    """Where the file with content ``digest`` lives under ``root``: ``<root>/<digest[:2]>/<digest>``.

    Parameters
    ----------
    root : Path
        The artifact folder.
    digest : str
        A sha256 as 64 lowercase hex digits.

    Returns
    -------
    Path
        The path, whether or not a file is there.

    Raises
    ------
    ValidationError
        If ``digest`` is not 64 lowercase hex digits (so it can never name a path outside ``root``).
    """
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValidationError(f"Not a sha256 digest: {digest!r}")
    return root / digest[:2] / digest


def is_encrypted(path: Path) -> bool:
    """Whether the file at ``path`` was written encrypted (starts with :data:`MAGIC`)."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


class _Sealer:
    """A file-like writer that encrypts what it is given, a chunk at a time."""

    def __init__(self, fh, key: bytes, digest: str) -> None:
        self._fh, self._aead, self._buf, self._n = fh, AESGCM(key), bytearray(), 0
        self._prefix = secrets.token_bytes(7)
        header = MAGIC + keys.key_id(key) + self._prefix
        self._aad = header + digest.encode()
        fh.write(header)

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) > CHUNK:  # strictly more: the last chunk is sealed by close()
            self._seal(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]

    def close(self) -> None:
        self._seal(bytes(self._buf), last=True)

    def _seal(self, chunk: bytes, last: bool) -> None:
        self._fh.write(self._aead.encrypt(_nonce(self._prefix, self._n, last), chunk, self._aad))
        self._n += 1


def _nonce(prefix: bytes, n: int, last: bool) -> bytes:
    if n >= 1 << 32:
        raise ValidationError("File too large to encrypt (over 4 PiB).")
    return prefix + n.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _open_sealed(path: Path, data: bytes, digest: str) -> bytes:
    key = keys.artifact_key()
    file_key_id = data[len(MAGIC):len(MAGIC) + 8]
    if key is None:
        raise KeyUnavailableError(f"File {path} is encrypted; set WORKBENCH_ARTIFACT_KEY or "
                                  "WORKBENCH_ARTIFACT_KEY_FILE to the artifact key to read it.")
    if keys.key_id(key) != file_key_id:
        raise KeyUnavailableError(f"File {path} was encrypted with another key (key id {file_key_id.hex()}); "
                                  f"the configured artifact key has id {keys.key_id(key).hex()}.")
    aead, prefix = AESGCM(key), data[len(MAGIC) + 8:_HEADER]
    aad = data[:_HEADER] + digest.encode()
    out, pos, n = bytearray(), _HEADER, 0
    try:
        while True:
            end = pos + CHUNK + TAG
            last = end >= len(data)
            out += aead.decrypt(_nonce(prefix, n, last), data[pos:end], aad)
            if last:
                return bytes(out)
            pos, n = end, n + 1
    except InvalidTag:
        raise IntegrityError(f"File {path} does not decrypt to the content recorded for it ({digest[:12]}...): it "
                             "was changed, truncated or swapped for another file; refusing to use it.") from None


def _place(root: Path, digest: str, write) -> Path:
    target = path_for(root, digest)
    key = keys.artifact_key()
    if target.exists() and (key is None or is_encrypted(target)):
        return target  # same content already stored (a file in the clear is sealed when a key is set)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            if key is None:
                write(fh)
            else:
                sealer = _Sealer(fh, key, digest)
                write(sealer)
                sealer.close()
        os.replace(tmp, target)  # atomic: readers never see half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def put_bytes(root: Path, data: bytes) -> tuple[str, int]:
    """Store ``data`` under ``root`` by its sha256, encrypted when an artifact key is configured.

    Content already stored is not written again (a file kept in the clear is rewritten
    encrypted once a key is configured). The file appears atomically.

    Parameters
    ----------
    root : Path
        The artifact folder.
    data : bytes
        The content.

    Returns
    -------
    tuple
        ``(digest, size)``: the sha256 of ``data`` and its length in bytes.
    """
    digest = sha256_bytes(data)
    _place(root, digest, lambda fh: fh.write(data))
    return digest, len(data)


def put_file(root: Path, source: Path) -> tuple[str, int]:
    """Copy the file ``source`` under ``root`` by its sha256, as :func:`put_bytes` stores bytes.

    Parameters
    ----------
    root : Path
        The artifact folder.
    source : Path
        The file to copy; it is read in 1 MiB blocks, never whole.

    Returns
    -------
    tuple
        ``(digest, size)``: the sha256 of the file's content and its size in bytes.

    Raises
    ------
    NotFoundError
        If ``source`` does not exist or is not a regular file.
    """
    source = Path(source)
    if not source.is_file():
        raise NotFoundError(f"Artifact {source} does not exist or is not a file.")
    digest = sha256_file(source)

    def copy(fh):
        with open(source, "rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                fh.write(chunk)

    _place(root, digest, copy)
    return digest, source.stat().st_size


def get_bytes(root: Path, digest: str) -> bytes:
    """The file's bytes, after checking they still hash to ``digest``.

    An encrypted file is decrypted first, with the configured artifact key.

    Parameters
    ----------
    root : Path
        The artifact folder.
    digest : str
        The sha256 the store recorded for the file.

    Returns
    -------
    bytes
        The content (the plaintext, for an encrypted file).

    Raises
    ------
    NotFoundError
        If no file for ``digest`` is in ``root``.
    IntegrityError
        If the content does not hash to ``digest``, or an encrypted file fails to decrypt
        (changed, truncated, or moved from another file's address).
    KeyUnavailableError
        If the file is encrypted and no key, or another key, is configured.
    ValidationError
        If ``digest`` is not a sha256 digest.
    """
    path = path_for(root, digest)
    if not path.exists():
        raise NotFoundError(f"File {digest[:12]}... is missing from the artifact folder {root}.")
    data = path.read_bytes()
    if data[:len(MAGIC)] == MAGIC:
        data = _open_sealed(path, data, digest)
    actual = sha256_bytes(data)
    if actual != digest:
        raise IntegrityError(
            f"File {path} does not match its recorded digest (expected {digest[:12]}..., "
            f"found {actual[:12]}...): it was changed or replaced; refusing to use it."
        )
    return data


def encrypt_in_place(root: Path) -> tuple[int, int]:
    """Seal every file of ``root`` still in the clear, after checking its digest.

    Files whose names are not 64 characters long (temporary or stray files) are skipped.

    Parameters
    ----------
    root : Path
        The artifact folder.

    Returns
    -------
    tuple
        ``(sealed, already)``: how many files were encrypted now, and how many were already.

    Raises
    ------
    KeyUnavailableError
        If no artifact key is configured.
    IntegrityError
        If a file in the clear no longer matches its name; files sealed before it stay sealed.
    """
    if keys.artifact_key() is None:
        raise KeyUnavailableError("No artifact key is configured: set WORKBENCH_ARTIFACT_KEY or "
                                  "WORKBENCH_ARTIFACT_KEY_FILE first.")
    sealed = already = 0
    for path in sorted(Path(root).glob("??/*")):
        if len(path.name) != 64:  # a temporary or stray file, not content
            continue
        if is_encrypted(path):
            already += 1
            continue
        data = get_bytes(root, path.name)  # refuses a file that no longer matches its name
        _place(root, path.name, lambda fh: fh.write(data))
        sealed += 1
    return sealed, already
