"""The contract as types: ``mypy --strict`` accepts this module only if every shape conforms.

Each ``*_conforms`` function hands a shape's class (or what its methods return) to the
protocol it must satisfy; a missing method or a different signature is a type error here,
in CI, before any test runs. The tests below check the same at run time
(``runtime_checkable``: the names exist) on live objects of every shape.
A known gap carries a ``type: ignore`` naming it: mypy reports the ignore as unused once the
shape conforms, so the gap cannot be fixed silently and the note left behind.
"""

from __future__ import annotations

import rxdb
from rxdb.api import (
    AsyncDatabase,
    AsyncReadSession,
    BlockingDatabase,
    BlockingReadSession,
    BlockingRowsStream,
    DatabaseReader,
    DatabaseWriter,
    Handle,
    RowsStream,
)
from tests.conformance.async_over_blocking import AsyncOverBlocking
from tests.conformance.conftest import Shape


def database_conforms(db: rxdb.Database) -> AsyncDatabase:
    return db


def bridged_conforms(db: rxdb.BridgedDatabase) -> AsyncDatabase:
    return db


def remote_conforms(db: rxdb.RemoteDatabase) -> AsyncDatabase:
    return db


def sync_conforms(db: rxdb.SyncDatabase) -> BlockingDatabase:
    return db


def readers_and_writers(db: AsyncDatabase) -> tuple[DatabaseReader, DatabaseWriter]:
    return db, db


def sessions_conform(
    db: rxdb.ReadSession, remote: rxdb.RemoteReadSession, blocking: rxdb.SyncReadSession
) -> tuple[AsyncReadSession, AsyncReadSession, BlockingReadSession]:
    return db, remote, blocking


def streams_conform(
    db: rxdb.Database, bridged: rxdb.BridgedDatabase, remote: rxdb.RemoteDatabase
) -> tuple[RowsStream, RowsStream, RowsStream]:
    return db.watch("SELECT 1"), bridged.watch("SELECT 1"), remote.watch("SELECT 1")


def blocking_stream_conforms(db: rxdb.SyncDatabase) -> BlockingRowsStream:
    return db.watch("SELECT 1")


def handles_conform(local: rxdb.ConnectionHandle, served: rxdb.ServerHandle) -> list[Handle]:
    return [local, served]


async def test_each_shape_has_every_requirement(shape: Shape) -> None:
    if isinstance(shape.db, AsyncOverBlocking):  # what rxdb handed out is underneath
        assert isinstance(shape.db.blocking, BlockingDatabase)
        assert isinstance(shape.db.blocking.watch("SELECT 1"), BlockingRowsStream)
    else:
        assert isinstance(shape.db, AsyncDatabase)
    assert isinstance(shape.db.watch("SELECT 1"), RowsStream)
    async with shape.db.read() as session:
        assert isinstance(session, AsyncReadSession)
