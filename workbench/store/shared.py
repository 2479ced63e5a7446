"""One :class:`Store` and one :class:`Writer` per store per process, shared by every workspace.

A DuckDB file may be open once per process, and group commit needs one writer per store, so
every opener (workspaces, sign-in, the CLI) takes them from here. Modules that must act when a
store is first opened in a process (tracking reaps runs whose process died) register with
:func:`on_first_open`.
"""

from __future__ import annotations

import threading
from typing import Callable

from .connection import Store, resolve_store, store_key
from .writer import Writer

_stores: dict[str, tuple[Store, Writer]] = {}
_lock = threading.Lock()
_first_open: list[Callable[[Store, Writer], None]] = []


def on_first_open(callback: Callable[[Store, Writer], None]) -> Callable[[Store, Writer], None]:
    """Call ``callback(store, writer)`` whenever a store is opened for the first time in this process."""
    _first_open.append(callback)
    return callback


def shared_store(location=None, **settings) -> tuple[Store, Writer]:
    """The process's Store and Writer for ``location`` (opened on first use).

    Parameters
    ----------
    location : str, path or None
        A DuckDB file or PostgreSQL URL; default ``$WORKBENCH_STORE``.
    **settings
        ``lease_seconds``, ``lock_timeout``: applied to the shared store when given.

    Returns
    -------
    tuple
        ``(Store, Writer)``.
    """
    key = store_key(resolve_store(location))
    with _lock:
        hit = _stores.get(key)
        if hit is not None and not hit[0].closed:
            # One lease per file per process, so explicit settings apply to the shared store.
            for name, value in settings.items():
                if value is not None:
                    setattr(hit[0], name, float(value))
            return hit
        store = Store(location, **settings)
        writer = Writer(store)
        _stores[key] = (store, writer)
    for callback in _first_open:
        callback(store, writer)
    return store, writer


def close(location) -> None:
    """Commit what is queued for ``location``, close its shared Store and forget it, so the file
    is free and the next open starts afresh (tests and benchmarks use this between steps).

    A failed queued write is raised after the store is closed.
    """
    with _lock:
        hit = _stores.pop(store_key(resolve_store(location)), None)
    if hit is not None:
        store, writer = hit
        try:
            writer.flush()
        finally:
            store.close()


def close_all() -> None:
    """:func:`close` every store this process has open (a folder removable, a database droppable)."""
    with _lock:
        keys = list(_stores)
    for key in keys:
        close(key)
