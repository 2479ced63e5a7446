"""The server process's life: hold the store while it runs, let it go when it stops, and (with
``--scheduler``) export due reports and run pending retraining commands in between."""

from __future__ import annotations

import logging
import threading
from typing import Any, AsyncIterator, Callable

from ..store import served, shared

log = logging.getLogger("workbench.server")

#: Seconds without use after which a store lets its file go: never, in the server.
HOLD = 10.0 ** 9


def scheduler_loop(location: str, poll: float, stop: threading.Event) -> None:
    """Run due schedules and pending retraining commands every ``poll`` seconds until ``stop``.

    What ``workbench scheduler`` does, inside the server that holds the store. A failed round
    is logged and the next one runs: one bad schedule must not stop the others for good.
    """
    from ..workspace import operator_workspace

    ws = operator_workspace(location)
    while not stop.is_set():
        try:
            for outcome in ws.run_due_schedules() + ws.run_pending_commands():
                log.info("scheduler: %s", {k: v for k, v in outcome.items() if k != "output"})
        except Exception:  # noqa: BLE001 - logged with its traceback, in the server's log only
            log.exception("scheduler: this round failed; the next runs in %s s", poll)
        stop.wait(poll)


def _warm_run_index(store) -> None:
    from ..tracking import search

    try:
        search.run_index(store)
    except Exception as exc:  # noqa: BLE001 - only a head start (the store may be closing): searches build it
        log.warning("warming the run index failed (%s); the first search builds it", type(exc).__name__)


def lifespan_of(location: str, url: str, operator_secret: str | None = None,
                scheduler_poll: float | None = None) -> Callable[[Any], AsyncIterator[None]]:
    """The lifespan (an async generator function) of a server on the store at ``location``.

    On start: open the store, hold it (no lease ends) and, for a DuckDB file, claim it for
    ``url`` so other processes are refused at once (the claim carries ``operator_secret``, for
    the operator's CLI), and build the run index in the background (searches keep it current
    from then on); with ``scheduler_poll``, start the scheduler thread. On stop: stop the
    scheduler, commit what is queued, release the claim and close the store.
    """

    async def lifespan(app) -> AsyncIterator[None]:
        store, _ = shared.shared_store(location, lease_seconds=HOLD)
        if store.path is not None:
            served.claim(store.path, url, operator_secret)
        store.server_url = url
        # the run index a search needs, built now rather than by the first caller (a new
        # process would build it on its first search: ~0.6 s at 100k runs)
        threading.Thread(target=_warm_run_index, args=(store,), name="workbench-warm-index", daemon=True).start()
        stop = threading.Event()
        thread = None
        if scheduler_poll:
            thread = threading.Thread(target=scheduler_loop, args=(location, scheduler_poll, stop),
                                      name="workbench-scheduler", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=60)
            store.server_url = None
            try:
                shared.close(location)
            finally:
                if store.path is not None:
                    served.release(store.path)

    return lifespan


__all__ = ["HOLD", "lifespan_of", "scheduler_loop"]
