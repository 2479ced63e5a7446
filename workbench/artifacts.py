"""Content-addressed files: stored once under their sha256, checked on every read.

Files live in ``<artifact root>/<sha[:2]>/<sha>``; the store keeps names and digests.
Reading a file whose bytes no longer match its digest raises IntegrityError, so a swapped
or corrupted model file is never unpickled.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .errors import IntegrityError, NotFoundError, ValidationError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def path_for(root: Path, digest: str) -> Path:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValidationError(f"Not a sha256 digest: {digest!r}")
    return root / digest[:2] / digest


def _place(root: Path, digest: str, write) -> Path:
    target = path_for(root, digest)
    if target.exists():
        return target  # same content already stored
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, target)  # atomic: readers never see half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def put_bytes(root: Path, data: bytes) -> tuple[str, int]:
    digest = sha256_bytes(data)
    _place(root, digest, lambda fh: fh.write(data))
    return digest, len(data)


def put_file(root: Path, source: Path) -> tuple[str, int]:
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
    """The file's bytes, after checking they still hash to ``digest``."""
    path = path_for(root, digest)
    if not path.exists():
        raise NotFoundError(f"File {digest[:12]}... is missing from the artifact folder {root}.")
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if actual != digest:
        raise IntegrityError(
            f"File {path} does not match its recorded digest (expected {digest[:12]}..., "
            f"found {actual[:12]}...): it was changed or replaced; refusing to use it."
        )
    return data
