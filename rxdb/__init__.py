"""rxdb: reactive SQL queries over SQLite.

Layers, bottom up (each imports only those below it):
``updates`` (what a commit changed) -> ``bus`` (in-process delivery onto event loops) ->
``engine`` (SQLite on aiosqlite: write capture, writer, readers, transactions) ->
``watch`` (shared, coalesced query streams) -> ``database`` (the façade users hold) ->
``sync`` (a blocking façade on a loop thread) and ``asgi`` (lifespan for web apps).
``parser`` (a sibling package) tells which tables a query reads.
"""

from __future__ import annotations

from rxdb.bridge import BridgedDatabase as BridgedDatabase
from rxdb.bus import Bus as Bus
from rxdb.database import Database as Database
from rxdb.database import open as open
from rxdb.engine.backup import BackupProgress as BackupProgress
from rxdb.engine.sessions import ReadSession as ReadSession
from rxdb.errors import BusyError as BusyError
from rxdb.errors import ClosedError as ClosedError
from rxdb.errors import DatabaseError as DatabaseError
from rxdb.errors import IntegrityError as IntegrityError
from rxdb.errors import InterruptError as InterruptError
from rxdb.errors import OperationalError as OperationalError
from rxdb.errors import ProgrammingError as ProgrammingError
from rxdb.errors import ReadOnlyError as ReadOnlyError
from rxdb.errors import ReentrancyError as ReentrancyError
from rxdb.errors import RxdbError as RxdbError
from rxdb.errors import TransactionAbortedError as TransactionAbortedError
from rxdb.errors import WrongLoopError as WrongLoopError
from rxdb.handles import ConnectionHandle as ConnectionHandle
from rxdb.rows import ExecuteResult as ExecuteResult
from rxdb.rows import Row as Row
from rxdb.sync import SyncDatabase as SyncDatabase
from rxdb.sync import open_sync as open_sync
from rxdb.updates import NotifyTablesUpdated as NotifyTablesUpdated
from rxdb.updates import TableUpdate as TableUpdate
from rxdb.updates import UpdateKind as UpdateKind
from rxdb.watch import QueryStream as QueryStream
from rxdb.watch import WatchStatistics as WatchStatistics

__version__ = "0.1.0"

__all__ = (
    "BackupProgress",
    "BridgedDatabase",
    "Bus",
    "BusyError",
    "ClosedError",
    "ConnectionHandle",
    "Database",
    "DatabaseError",
    "ExecuteResult",
    "IntegrityError",
    "InterruptError",
    "NotifyTablesUpdated",
    "OperationalError",
    "ProgrammingError",
    "QueryStream",
    "ReadOnlyError",
    "ReadSession",
    "ReentrancyError",
    "Row",
    "RxdbError",
    "SyncDatabase",
    "TableUpdate",
    "TransactionAbortedError",
    "UpdateKind",
    "WatchStatistics",
    "WrongLoopError",
    "open",
    "open_sync",
)

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("rxdb."):
        _obj.__module__ = "rxdb"
del _name, _obj
