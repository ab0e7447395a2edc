"""rxdb: reactive SQL queries over SQLite.

``import rxdb`` loads only the errors and the value types; every other public name is
imported on first use (PEP 562), so a script that never serves or spawns pays nothing for
the cross-process machinery. ``docs/architecture.md`` draws the rooms and their layering.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rxdb.errors import BusyError as BusyError
from rxdb.errors import ClosedError as ClosedError
from rxdb.errors import ConnectionLostError as ConnectionLostError
from rxdb.errors import DatabaseError as DatabaseError
from rxdb.errors import DuplicateKeyError as DuplicateKeyError
from rxdb.errors import HubError as HubError
from rxdb.errors import IntegrityError as IntegrityError
from rxdb.errors import InterruptError as InterruptError
from rxdb.errors import LimitError as LimitError
from rxdb.errors import NameNotFoundError as NameNotFoundError
from rxdb.errors import NameTakenError as NameTakenError
from rxdb.errors import OperationalError as OperationalError
from rxdb.errors import ProgrammingError as ProgrammingError
from rxdb.errors import ProtocolError as ProtocolError
from rxdb.errors import ReadOnlyError as ReadOnlyError
from rxdb.errors import ReentrancyError as ReentrancyError
from rxdb.errors import RemoteError as RemoteError
from rxdb.errors import RowTypeError as RowTypeError
from rxdb.errors import RxdbError as RxdbError
from rxdb.errors import ServerRefusedError as ServerRefusedError
from rxdb.errors import SpawnError as SpawnError
from rxdb.errors import TransactionAbortedError as TransactionAbortedError
from rxdb.errors import WrongLoopError as WrongLoopError
from rxdb.rows import ExecuteResult as ExecuteResult
from rxdb.rows import Row as Row
from rxdb.rows import Rows as Rows
from rxdb.updates import NotifyTablesUpdated as NotifyTablesUpdated
from rxdb.updates import TableUpdate as TableUpdate
from rxdb.updates import UpdateKind as UpdateKind

if TYPE_CHECKING:
    from rxdb._types import BackupProgress as BackupProgress
    from rxdb.boundary.blocking import SyncDatabase as SyncDatabase
    from rxdb.boundary.blocking import SyncReadSession as SyncReadSession
    from rxdb.boundary.blocking_streams import SyncDiffStream as SyncDiffStream
    from rxdb.boundary.blocking_streams import SyncQueryStream as SyncQueryStream
    from rxdb.boundary.blocking_streams import SyncStream as SyncStream
    from rxdb.boundary.blocking_streams import WatchIterator as WatchIterator
    from rxdb.boundary.bridge import BridgedDatabase as BridgedDatabase
    from rxdb.database import ConnectionHandle as ConnectionHandle
    from rxdb.database import Database as Database
    from rxdb.database import open as open
    from rxdb.database import open_sync as open_sync
    from rxdb.engines.sqlite.sessions import ReadSession as ReadSession
    from rxdb.remote.client.blocks import RemoteReadSession as RemoteReadSession
    from rxdb.remote.client.connection import Reconnect as Reconnect
    from rxdb.remote.client.database import RemoteDatabase as RemoteDatabase
    from rxdb.remote.handle import ServerHandle as ServerHandle
    from rxdb.remote.names import connect_named as connect_named
    from rxdb.remote.processes.compute import compute_with_database as compute_with_database
    from rxdb.remote.processes.spawn import SpawnedServer as SpawnedServer
    from rxdb.remote.processes.spawn import spawn as spawn
    from rxdb.remote.server.server import Server as Server
    from rxdb.remote.server.server import serve as serve
    from rxdb.streams import DiffStream as DiffStream
    from rxdb.streams import QueryStream as QueryStream
    from rxdb.streams import RowDiff as RowDiff
    from rxdb.streams import Stream as Stream
    from rxdb.streams import WatchStatistics as WatchStatistics
    from rxdb.watch.group import GroupStream as GroupStream
    from rxdb.watch.states import WatchState as WatchState
    from rxdb.watch.stream import StateStream as StateStream

__version__ = "0.1.0"

# Where each name that is imported on first use lives.
_LAZY: dict[str, str] = {
    "BackupProgress": "rxdb._types",
    "BridgedDatabase": "rxdb.boundary.bridge",
    "ConnectionHandle": "rxdb.database",
    "Database": "rxdb.database",
    "GroupStream": "rxdb.watch.group",
    "DiffStream": "rxdb.streams",
    "QueryStream": "rxdb.streams",
    "ReadSession": "rxdb.engines.sqlite.sessions",
    "Reconnect": "rxdb.remote.client.connection",
    "RemoteDatabase": "rxdb.remote.client.database",
    "RemoteReadSession": "rxdb.remote.client.blocks",
    "Server": "rxdb.remote.server.server",
    "RowDiff": "rxdb.streams",
    "ServerHandle": "rxdb.remote.handle",
    "SpawnedServer": "rxdb.remote.processes.spawn",
    "Stream": "rxdb.streams",
    "SyncDatabase": "rxdb.boundary.blocking",
    "SyncDiffStream": "rxdb.boundary.blocking_streams",
    "SyncQueryStream": "rxdb.boundary.blocking_streams",
    "StateStream": "rxdb.watch.stream",
    "SyncStream": "rxdb.boundary.blocking_streams",
    "SyncReadSession": "rxdb.boundary.blocking",
    "WatchIterator": "rxdb.boundary.blocking_streams",
    "WatchState": "rxdb.watch.states",
    "WatchStatistics": "rxdb.streams",
    "compute_with_database": "rxdb.remote.processes.compute",
    "connect_named": "rxdb.remote.names",
    "open": "rxdb.database",
    "open_sync": "rxdb.database",
    "serve": "rxdb.remote.server.server",
    "spawn": "rxdb.remote.processes.spawn",
}

__all__ = (
    "BackupProgress",
    "BridgedDatabase",
    "BusyError",
    "ClosedError",
    "ConnectionHandle",
    "ConnectionLostError",
    "Database",
    "DatabaseError",
    "DiffStream",
    "DuplicateKeyError",
    "ExecuteResult",
    "GroupStream",
    "HubError",
    "IntegrityError",
    "InterruptError",
    "LimitError",
    "NameNotFoundError",
    "NameTakenError",
    "NotifyTablesUpdated",
    "OperationalError",
    "ProgrammingError",
    "ProtocolError",
    "QueryStream",
    "ReadOnlyError",
    "ReadSession",
    "Reconnect",
    "ReentrancyError",
    "RemoteDatabase",
    "RemoteError",
    "RemoteReadSession",
    "Row",
    "RowDiff",
    "RowTypeError",
    "Rows",
    "RxdbError",
    "Server",
    "ServerHandle",
    "ServerRefusedError",
    "SpawnError",
    "SpawnedServer",
    "StateStream",
    "Stream",
    "SyncDatabase",
    "SyncDiffStream",
    "SyncQueryStream",
    "SyncReadSession",
    "SyncStream",
    "TableUpdate",
    "TransactionAbortedError",
    "UpdateKind",
    "WatchIterator",
    "WatchState",
    "WatchStatistics",
    "WrongLoopError",
    "compute_with_database",
    "connect_named",
    "open",
    "open_sync",
    "serve",
    "spawn",
)


def _claim(obj: object) -> None:
    """Report ``rxdb`` as the home of a public class or function (reprs, docs, pickles)."""
    if getattr(obj, "__module__", "").startswith("rxdb.") and hasattr(obj, "__qualname__"):
        obj.__module__ = "rxdb"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rxdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    _claim(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


for _name in __all__:
    if _name not in _LAZY:
        _claim(globals()[_name])
del _name
