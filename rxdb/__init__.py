"""rxdb: reactive SQL queries over SQLite.

Layers, bottom up (each imports only those below it):
``updates`` (what a commit changed) -> ``bus`` (in-process delivery onto event loops) ->
``engine`` (SQLite on aiosqlite: write capture, writer, readers, transactions) ->
``watch`` (shared, coalesced query streams) -> ``database`` (the façade users hold) ->
``sync`` (a blocking façade on a loop thread), ``asgi`` (lifespan for web apps), ``bridge`` /
``handles`` (one database used from other loops) and ``remote`` (the cross-process hub,
the database server and its client, over one wire protocol).
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
from rxdb.remote.client import ConnectionLostError as ConnectionLostError
from rxdb.remote.client import Reconnect as Reconnect
from rxdb.remote.client import RemoteDatabase as RemoteDatabase
from rxdb.remote.client import RemoteReadSession as RemoteReadSession
from rxdb.remote.client import connect_named as connect_named
from rxdb.remote.compute import compute_with_database as compute_with_database
from rxdb.remote.server import Server as Server
from rxdb.remote.server import ServerHandle as ServerHandle
from rxdb.remote.server import serve as serve
from rxdb.remote.spawn import SpawnedServer as SpawnedServer
from rxdb.remote.spawn import spawn as spawn
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
    "ConnectionLostError",
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
    "Reconnect",
    "ReentrancyError",
    "RemoteDatabase",
    "RemoteReadSession",
    "Row",
    "RxdbError",
    "Server",
    "ServerHandle",
    "SpawnedServer",
    "SyncDatabase",
    "TableUpdate",
    "TransactionAbortedError",
    "UpdateKind",
    "WatchStatistics",
    "WrongLoopError",
    "compute_with_database",
    "connect_named",
    "open",
    "open_sync",
    "serve",
    "spawn",
)

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("rxdb."):
        _obj.__module__ = "rxdb"
del _name, _obj
