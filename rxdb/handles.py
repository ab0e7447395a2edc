"""Handles: a database you can hand to another thread (or pickle), and connect there.

``handle = await db.serializable_connection()`` is a small picklable value. In this process,
``await handle.connect()`` on another event loop gives a database that shares ``db``'s engine
and bus (a :class:`rxdb.boundary.bridge.BridgedDatabase`; on ``db``'s own loop, ``db`` itself), and
``handle.connect_sync()`` in a plain thread gives the blocking façade over it. Once ``db`` is
closed, or in another process, a handle to a file opens the file anew (its commits still
reach the other databases through the bus and, across processes, through polling); a handle to
``:memory:`` cannot, since that database lives only in its process.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rxdb.api import AsyncDatabase, BlockingDatabase
from rxdb.errors import ClosedError

if TYPE_CHECKING:
    from rxdb.database import Database

__all__ = ("ConnectionHandle", "handle_for")

# Databases that handed out a handle, by token: weak, so a handle never keeps one alive.
_LIVE: dict[str, weakref.ref[Database]] = {}
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ConnectionHandle:
    """A picklable reference to an open database. Connect it on any loop or thread."""

    path: str
    key: str
    options: tuple[tuple[str, Any], ...]
    token: str
    pid: int

    async def connect(self) -> AsyncDatabase:
        """A database bound to the running loop that shares the original's engine and bus.

        :raises rxdb.ClosedError: for a ``:memory:`` database that is closed or lives in
            another process.
        """
        origin = self._origin()
        if origin is not None:
            loop, _ = origin._home()
            if loop is asyncio.get_running_loop():
                return origin
            from rxdb.boundary.bridge import BridgedDatabase

            return BridgedDatabase(origin, loop)  # type: ignore[return-value]  # until it conforms (read, backup)
        from rxdb.database import Database

        return await Database(self._reopenable(), **dict(self.options))

    def connect_sync(self) -> BlockingDatabase:
        """The blocking façade (:func:`rxdb.open_sync`) over the same database, for a thread
        without an event loop."""
        from rxdb.boundary.blocking import SyncDatabase, open_sync
        from rxdb.boundary.loop_thread import BorrowedLoop, refuse_running_loop

        refuse_running_loop("connect_sync")
        origin = self._origin()
        if origin is not None:
            loop, thread_ident = origin._home()
            return SyncDatabase(origin, BorrowedLoop(loop, thread_ident))
        return open_sync(self._reopenable(), **dict(self.options))

    def _origin(self) -> Database | None:
        if self.pid != os.getpid():
            return None
        with _LIVE_LOCK:
            ref = _LIVE.get(self.token)
        database = ref() if ref is not None else None
        if database is None or database.closed:
            return None
        return database

    def _reopenable(self) -> str:
        if self.path in (":memory:", ""):
            raise ClosedError(
                "this handle's in-memory database is closed or lives in another process; an "
                "in-memory database is reachable only while its owner keeps it open"
            )
        return self.path


def handle_for(database: Database, options: dict[str, Any]) -> ConnectionHandle:
    """Register ``database`` (weakly) and describe it as a handle."""
    token = uuid.uuid4().hex
    with _LIVE_LOCK:
        for stale in [t for t, ref in _LIVE.items() if ref() is None]:
            del _LIVE[stale]
        _LIVE[token] = weakref.ref(database)
    return ConnectionHandle(
        database.path, database.key, tuple(sorted(options.items())), token, os.getpid()
    )
