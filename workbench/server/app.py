"""The server process's life: hold the store while it runs, let it go when it stops."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable

from ..store import served, shared

#: Seconds without use after which a store lets its file go: never, in the server.
HOLD = 10.0 ** 9


def lifespan_of(location: str, url: str) -> Callable[[Any], AsyncIterator[None]]:
    """The lifespan (an async generator function) of a server on the store at ``location``.

    On start: open the store, hold it (no lease ends) and, for a DuckDB file, claim it for
    ``url`` so other processes are refused at once. On stop: commit what is queued, release the
    claim and close the store.
    """

    async def lifespan(app) -> AsyncIterator[None]:
        store, _ = shared.shared_store(location, lease_seconds=HOLD)
        if store.path is not None:
            served.claim(store.path, url)
        try:
            yield
        finally:
            try:
                shared.close(location)
            finally:
                if store.path is not None:
                    served.release(store.path)

    return lifespan


__all__ = ["HOLD", "lifespan_of"]
