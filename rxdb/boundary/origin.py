"""What the boundary adapters need of the database they adapt, as a Protocol.

The adapters (another loop's bridge, the blocking façade) are written against the contract,
:class:`rxdb.api.AsyncDatabase`, and never import the concrete database: the few extras of
the local engine they pass through to their users are named here, and what only the caller
knows (the database's loop and thread) comes in through their constructors.

Internal to :mod:`rxdb.boundary`: not covered by rxdb's versioning.
"""

from __future__ import annotations

from typing import Protocol

from rxdb.api import AsyncDatabase, Subscribable

__all__ = ("Origin", "Source")


Source = Subscribable
"""Anything to subscribe to: an Observable, a watch (:class:`rxdb.api.RowsStream`)."""


class Origin(AsyncDatabase, Protocol):
    """A database of this process, on its own loop, that an adapter makes usable elsewhere."""

    @property
    def key(self) -> str:
        """The database's identity on the bus."""
        ...

    async def track_foreign_writes(self) -> None: ...

    async def untrack_foreign_writes(self) -> None: ...
