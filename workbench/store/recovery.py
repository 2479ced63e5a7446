"""`workbench recover`: go on from a store whose write-ahead log is damaged, on purpose and on record.

Opening such a store is refused (:class:`~workbench.store.headmark.DamagedLogError`), because
DuckDB would replay what it can of the log and then delete it. Accepting the loss keeps a copy
of the damaged log beside the store first, opens the store, and appends a ``store.recover``
event saying how many committed events were lost; the head mark then follows the chain again.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from datetime import datetime, timezone

from ..errors import StoreError
from . import audit, headmark
from .connection import Store, is_postgres, resolve_store, store_path
from .writer import Writer


def accept_log_loss(location=None) -> dict:
    """Open the store past its damaged log, on record.

    Parameters
    ----------
    location : str, path or None
        The DuckDB store; default ``$WORKBENCH_STORE``.

    Returns
    -------
    dict
        ``store``, ``expected_seq`` (the last committed event, per the head mark),
        ``found_seq`` (where the chain ends now) and ``kept_log`` (the copy of the damaged log,
        or None when the store had no log).

    Raises
    ------
    StoreError
        For a PostgreSQL store, or a store that cannot be opened even without its log.
    """
    loc = resolve_store(location)
    if is_postgres(loc):
        raise StoreError("A PostgreSQL store has no write-ahead log of workbench's to recover: PostgreSQL keeps its own.")
    path = store_path(loc).resolve()
    wal, kept = headmark.log_of(path), None
    if wal.exists():  # a copy: DuckDB replays what it can of the original, then removes it
        kept = wal.with_name(f"{wal.name}.damaged-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}")
        shutil.copyfile(wal, kept)
    mark = headmark.read(path)
    store, cut = _open_past(loc, wal)
    try:
        found = int(store.scalar("select seq from audit_head") or 0)
        expected = max(mark["seq"], found) if mark else found
        payload = {"expected_seq": expected, "found_seq": found, "lost_events": expected - found,
                   "kept_log": kept.name if kept else None, "log_cut_at": cut,
                   "kept_log_sha256": hashlib.sha256(kept.read_bytes()).hexdigest() if kept else None}
        Writer(store).call(lambda conn: (None, [audit.Event("workbench", "system", "store.recover", "store",
                                                            path.name, payload)]))
    finally:
        store.close()
    return {"store": str(path), "expected_seq": expected, "found_seq": found, "kept_log": str(kept) if kept else None}


_BAD_ENTRY = re.compile(r"entry at byte position (\d+)")


def _open_past(loc, wal):
    """Open the store, replaying what DuckDB can of its log.

    DuckDB stops quietly at an unreadable tail, but refuses the whole file when an entry's
    checksum fails. Then the log is cut where that entry starts, so the entries before it are
    still replayed; a log DuckDB refuses without naming a place is set aside whole. The damaged
    original has been copied beside the store before either.

    Returns
    -------
    tuple
        The opened :class:`Store` and the byte at which the log was cut (None when it was not;
        0 when it was set aside whole).
    """
    cut = None
    for _ in range(3):
        try:
            return Store(loc, accept_log_loss=True), cut  # opening replays the log
        except headmark.DamagedLogError as exc:
            m = _BAD_ENTRY.search(str(exc))
            at = int(m[1]) if m and cut is None else 0
            if at:
                with open(wal, "r+b") as f:
                    f.truncate(at)
            else:
                wal.unlink(missing_ok=True)
            cut = at
    raise StoreError(f"{store_path(loc)} cannot be opened even without its write-ahead log.")
