"""The contract as types: ``mypy --strict`` accepts this module only if every shape conforms.

Each ``*_conforms`` function hands a shape's class (or what its methods return) to the
protocol it must satisfy; a missing method or a different signature is a type error here,
in CI, before any test runs. The tests below check the same at run time
(``runtime_checkable``: the names exist) on live objects of every shape.
A known gap carries a ``type: ignore`` naming it: mypy reports the ignore as unused once the
shape conforms, so the gap cannot be fixed silently and the note left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, assert_type

import rxdb
from rxdb.api import (
    AsyncDatabase,
    AsyncReadSession,
    BlockingDatabase,
    BlockingReadSession,
    BlockingResultsStream,
    BlockingRowsStream,
    BlockingValueStream,
    DatabaseReader,
    DatabaseWriter,
    Handle,
    ResultsStream,
    RowsStream,
    ValueStream,
)
from rxdb.watch.states import WatchState
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


def value_streams_conform(
    db: rxdb.Database, blocking: rxdb.SyncDatabase
) -> tuple[ValueStream[Any], RowsStream, BlockingValueStream[Any], BlockingRowsStream]:
    return (
        db.watch("SELECT 1").diffs(),
        db.watch("SELECT 1").throttle(0.1),
        blocking.watch_value("SELECT 1"),
        blocking.watch("SELECT 1").throttle(0.1),
    )


@dataclass
class Order:
    id: int


class Pair(NamedTuple):
    a: int
    b: int


async def row_types_are_inferred(
    db: rxdb.Database,
    contract: AsyncDatabase,
    session: AsyncReadSession,
    blocking: BlockingDatabase,
) -> None:
    """``row_type`` decides the element type a type checker sees, on every shape (no
    ``reveal_type``: ``assert_type`` fails the check when the inferred type differs)."""
    assert_type(db.watch("SELECT 1"), rxdb.QueryStream[rxdb.Row])
    assert_type(db.watch("SELECT 1", row_type=Order), rxdb.QueryStream[Order])
    assert_type(db.watch("SELECT 1", row_type=dict), rxdb.QueryStream[dict[str, Any]])
    async for orders in db.watch("SELECT 1", row_type=Order):
        assert_type(orders, list[Order])
    async for rows in contract.watch("SELECT 1"):
        assert_type(rows, list[rxdb.Row])
    async for pairs in contract.watch("SELECT 1", row_type=Pair).throttle(0.5):
        assert_type(pairs, list[Pair])
    async for diff in contract.watch("SELECT 1", row_type=Order).diffs():
        assert_type(diff, rxdb.RowDiff[Order])
    assert_type(await db.fetch_all("SELECT 1", row_type=Order), list[Order])
    assert_type(await contract.fetch_one("SELECT 1", row_type=Order), Order | None)
    assert_type(await contract.fetch_one("SELECT 1"), rxdb.Row | None)
    assert_type(await session.fetch_all("SELECT 1", row_type=dict), list[dict[str, Any]])
    assert_type(db.watch_one("SELECT 1", row_type=Order), rxdb.Stream[Order | None])
    assert_type(blocking.fetch_all("SELECT 1", row_type=Pair), list[Pair])
    for blocking_rows in blocking.watch("SELECT 1", row_type=Order):
        assert_type(blocking_rows, list[Order])
    for one in blocking.watch_one("SELECT 1"):
        assert_type(one, rxdb.Row | None)


def groups_conform(
    db: rxdb.Database, bridged: rxdb.BridgedDatabase, remote: rxdb.RemoteDatabase
) -> tuple[ResultsStream, ResultsStream, ResultsStream]:
    group = {"a": "SELECT 1"}
    return db.watch_many(group), bridged.watch_many(group), remote.watch_many(group)


def states_conform(
    db: rxdb.Database, bridged: rxdb.BridgedDatabase, remote: rxdb.RemoteDatabase
) -> tuple[ValueStream[WatchState[Any]], ...]:
    return (
        db.watch("SELECT 1").states(),
        bridged.watch_many({"a": "SELECT 1"}).states(),
        remote.watch("SELECT 1").states(),
    )


def blocking_groups_and_states_conform(
    db: rxdb.SyncDatabase,
) -> tuple[BlockingResultsStream, BlockingValueStream[WatchState[Any]]]:
    return db.watch_many({"a": "SELECT 1"}), db.watch("SELECT 1").states()


def handles_conform(local: rxdb.ConnectionHandle, served: rxdb.ServerHandle) -> list[Handle]:
    return [local, served]


async def test_each_shape_has_every_requirement(shape: Shape) -> None:
    if isinstance(shape.db, AsyncOverBlocking):  # what rxdb handed out is underneath
        assert isinstance(shape.db.blocking, BlockingDatabase)
        assert isinstance(shape.db.blocking.watch("SELECT 1"), BlockingRowsStream)
    else:
        assert isinstance(shape.db, AsyncDatabase)
    assert isinstance(shape.db.watch("SELECT 1"), RowsStream)
    assert isinstance(shape.db.watch_many({"a": "SELECT 1"}), ResultsStream)
    async with shape.db.read() as session:
        assert isinstance(session, AsyncReadSession)
