"""The head mark: the audit chain's head as of the last commit, kept beside a DuckDB file.

DuckDB replays its write-ahead log (``<store>.wal``) when a store is opened, and stops
silently at the first entry it cannot read: a truncated log, one replaced with other bytes
or one with a flipped byte loses its tail of committed writes without a word. Every commit
therefore also writes the chain's head (seq and hash) to ``<store>.head``, next to the file
and the log. What is in the store can then be compared with what was committed:

- when a store with a log is opened, the log is first replayed read-only (DuckDB then keeps
  the log file): a head behind the mark means the log is damaged, and the store is not
  opened read-write, so nothing is dropped (:class:`DamagedLogError`);
- ``audit verify`` checks that the chain reaches the mark, so a chain cut short (events
  deleted, a store file copied without its log) is found even when it is consistent.

The mark is written while this process holds the file's lock (right after its commit), so
processes taking turns on the file never write it out of order. It lags at worst (written
after the commit), never leads: a store at or ahead of its mark has lost nothing.

>>> import tempfile, pathlib
>>> db = pathlib.Path(tempfile.mkdtemp()) / "s.duckdb"
>>> write(db, 3, "ab" * 32); read(db)["seq"]
3
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ..errors import StoreError


class DamagedLogError(StoreError):
    """The store's write-ahead log cannot be replayed whole; the store was left as it was."""


def path_of(db: Path) -> Path:
    """The head mark's file beside the store file ``db``: ``<db>.head``."""
    return db.with_name(db.name + ".head")


def log_of(db: Path) -> Path:
    """DuckDB's write-ahead log beside the store file ``db``: ``<db>.wal``."""
    return db.with_name(db.name + ".wal")


def write(db: Path, seq: int, digest: str) -> None:
    """Record the head of the chain just committed (atomically: a reader sees the old or the new)."""
    target = path_of(db)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"seq": int(seq), "hash": digest, "pid": os.getpid(),
                               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}))
    os.replace(tmp, target)


def read(db: Path) -> dict | None:
    """The recorded head ({seq, hash, ...}), or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path_of(db).read_text())
        return {**data, "seq": int(data["seq"]), "hash": str(data["hash"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def behind(mark: dict | None, seq: int, digest_at_mark: str | None) -> str | None:
    """Why a chain whose head is ``seq`` (and whose event at the mark's seq has ``digest_at_mark``)
    has lost committed events, or None when it has not."""
    if mark is None:
        return None
    if seq < mark["seq"]:
        return (f"the chain ends at event {seq}, but event {mark['seq']} was committed "
                f"(recorded {mark.get('at', '?')}): {mark['seq'] - seq} committed event(s) are missing")
    if digest_at_mark is not None and digest_at_mark != mark["hash"]:
        return f"event {mark['seq']} is not the one that was committed (its hash differs from the recorded head)"
    return None


def damaged_log_message(db: Path, detail: str) -> str:
    """The message of a :class:`DamagedLogError`: what is wrong (``detail``) and the safe next steps."""
    wal = log_of(db)
    return (f"The write-ahead log of {db} ({wal.name}) is damaged: {detail}. Nothing has been changed, and the "
            f"store was not opened for writing, because that would drop what the log still holds. Keep both "
            f"files as they are. Safe next steps: restore the store from your last `workbench backup`; or look "
            f"at a copy (copy {db.name} and {wal.name} elsewhere and open the copy). To accept the loss and go "
            f"on, run `workbench recover --store {db}`: it keeps the damaged log beside the store under a new "
            f"name and records the loss in the audit trail.")
