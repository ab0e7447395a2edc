"""What a server needs of the database it serves.

The contract, :class:`rxdb.api.AsyncDatabase`, is enough to serve any database shape: the
server is written against it, so another engine is served unchanged. A database may offer
more, and the server uses it when it does:

- :class:`Opens`: ``connect()``, so that a database made but not opened yet can be served;
- :class:`KnowsItIsServed`: ``set_served(handle)``, so that its
  ``serializable_connection()`` hands out the server's handle while it is served;
- :class:`TracksForeignWrites`: the SQLite engine's trigger journal, reachable by clients;
- :class:`InterruptsWriter` and, on read sessions, :class:`InterruptsItself`: aborting one
  connection's statement, so that a client's ``interrupt()`` stops its own work and no one
  else's. Without them the server interrupts the whole database, which also stops others.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from rxdb.api import Handle

__all__ = (
    "InterruptsItself",
    "InterruptsWriter",
    "KnowsItIsServed",
    "Opens",
    "TracksForeignWrites",
)


@runtime_checkable
class Opens(Protocol):
    async def connect(self) -> Any:
        """Open the database (idempotent)."""
        ...


@runtime_checkable
class KnowsItIsServed(Protocol):
    def set_served(self, handle: Handle | None) -> None:
        """Record the handle of the server serving the database (``None``: no longer)."""
        ...


@runtime_checkable
class TracksForeignWrites(Protocol):
    async def track_foreign_writes(self) -> None: ...

    async def untrack_foreign_writes(self) -> None: ...


@runtime_checkable
class InterruptsWriter(Protocol):
    def interrupt_writer(self) -> None:
        """Abort the statement running on the writer connection only. Any thread."""
        ...


@runtime_checkable
class InterruptsItself(Protocol):
    def interrupt(self) -> None:
        """Abort the statement this read session runs now, on its own connection. Any
        thread; nothing happens once the session has ended."""
        ...
