"""A blocking façade for threads and synchronous frameworks (Flask, Django views, scripts).

``db = rxdb.open_sync(path)`` gives the operations of :class:`rxdb.Database` as blocking calls,
run on an event loop in a thread the :class:`SyncDatabase` owns.
"""

from __future__ import annotations

from rxdb.sync.database import SyncDatabase as SyncDatabase
from rxdb.sync.database import SyncReadSession as SyncReadSession
from rxdb.sync.database import open_sync as open_sync
from rxdb.sync.streams import SyncQueryStream as SyncQueryStream
from rxdb.sync.streams import WatchIterator as WatchIterator

__all__ = ("SyncDatabase", "SyncQueryStream", "SyncReadSession", "WatchIterator", "open_sync")
