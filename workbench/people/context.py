"""The context every operation acts in: who acts, and on which store.

A :class:`Ctx` is made by whoever has established the actor: :func:`workbench.connect` (file
mode: the user named), the dashboard (the signed-in user) and, with the server, a request's
token. Service functions take it first and never take the actor from anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl

from ..store.connection import Store
from ..store.writer import Writer
from . import roles


@dataclass(frozen=True)
class Ctx:
    """Who acts (``user``, ``role``) on which store, and how to read and write it.

    Attributes
    ----------
    store : Store
        The store, leased as connections are needed.
    writer : Writer
        The store's one write path in this process.
    user, role : str or None
        The actor; None for a workspace that may only read.
    before_read : callable, optional
        Run before every read, so the actor reads their own buffered writes (the workspace
        submits its open runs' values).
    token_id : int, optional
        The API token a server call came with; its id joins the payload of every event written.
    waits_own_writes : bool
        Every write of this actor is waited for where it is made (a server's caller: each
        request its own actor), so a read need not wait for the writer's whole queue, which
        holds other callers' writes, and no error of theirs reaches this one.
    """

    store: Store
    writer: Writer
    user: str | None
    role: str | None
    before_read: Callable[[], None] | None = field(default=None, repr=False)
    #: The API token the caller proved itself with (the server), named in every event it writes.
    token_id: int | None = None
    waits_own_writes: bool = False

    def require(self, action: str) -> None:
        """Raise :class:`~workbench.errors.PermissionDenied` unless the actor may do ``action``."""
        roles.require(self.user, self.role, action)

    def allowed(self, action: str) -> bool:
        """Whether the actor may do ``action`` (without raising)."""
        return self.user is not None and self.role is not None and roles.allowed(self.role, action)

    def call(self, op: Callable[..., Any]) -> Any:
        """Commit a write op (``op(conn) -> (result, events)``) and return its result."""
        if self.token_id is None:
            return self.writer.call(op)

        def through_token(conn):  # the audit trail names the token each API write came with
            result, events = op(conn)
            for event in events:
                event.payload.setdefault("token_id", self.token_id)
            return result, events

        return self.writer.call(through_token)

    def read(self, sql: str, params: list | None = None) -> pl.DataFrame:
        """A query's rows as a polars frame, after this actor's own writes."""
        self.sync()
        return self.store.read(sql, params)

    def snapshot(self, fn: Callable[..., Any]) -> Any:
        """``fn(conn)`` for reads that need more than one query, all seeing the same moment."""
        self.sync()
        with self.store.snapshot() as conn:
            return fn(conn)

    def sync(self) -> None:
        """Wait for this actor's buffered writes, so reads see them."""
        if self.before_read is not None:
            self.before_read()
        if not self.waits_own_writes:
            self.writer.flush()
