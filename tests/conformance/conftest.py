"""The database shapes the conformance suite runs against, and what its tests share.

Every test of this package takes ``db`` (an :class:`rxdb.api.AsyncDatabase`) and runs once per
shape: ``Database(":memory:")``, ``Database(file)``, a ``BridgedDatabase`` (a file database
living on a loop thread of its own, used from the test's loop), a ``RemoteDatabase`` (a served
``:memory:`` database, through a client connection), ``SyncDatabase`` (the blocking shape, from
``rxdb.open_sync``, through :class:`AsyncOverBlocking`) and the blocking shape a handle gives
(``connect_sync``: over a database that another owner keeps open, on its loop), and a
PostgreSQL database (``postgres``: on the machine's server, one database for the run, each
test on an empty schema ``public``), also bridged (``postgres-bridged``) and blocking
(``postgres-sync``) as the file is. A failure names the shape in its test id.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

import rxdb
from rxdb.api import AsyncDatabase
from rxdb.boundary.loop_thread import LoopThread
from rxdb.updates import NotifyTablesUpdated, UpdateKind
from tests.conformance.async_over_blocking import AsyncOverBlocking
from tests.conformance.dialects import dialect
from tests.conftest import Recorder, subscribed
from tests.rxdb.postgres_worker import SERVER

T = TypeVar("T")


@dataclass(frozen=True)
class Shape:
    """One database shape under test.

    :ivar single_connection: the database has one connection for everything (``:memory:``),
        so a write from elsewhere waits for an open read block instead of committing under it.
    """

    name: str
    db: AsyncDatabase
    single_connection: bool


Opener = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Shape]]
"""Opens a shape, taking the fixtures it needs from the test's request."""
Place = Callable[[pytest.FixtureRequest], Awaitable[str | Path]]
"""Where a shape's database is (a file, a PostgreSQL URL), ready for the test."""


@asynccontextmanager
async def memory_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
    async with rxdb.open(":memory:") as db:
        yield Shape("memory", db, single_connection=True)


@asynccontextmanager
async def file_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
    async with rxdb.open(in_tmp_path(request)) as db:
        yield Shape("file", db, single_connection=False)


async def on_loop(home: LoopThread, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` on ``home``'s loop; wait for it here."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work(), home.loop))


def bridged_over(name: str, place: Place) -> Opener:
    """The shape ``name``: the database at ``place`` on a loop thread of its own, used from
    the test's loop through a ``BridgedDatabase``."""

    @asynccontextmanager
    async def bridged_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
        where = await place(request)
        home = LoopThread("conformance-origin")
        try:
            origin = rxdb.Database(where)
            await on_loop(home, origin.connect)
            try:
                handle = await on_loop(home, origin.serializable_connection)
                db = await handle.connect()
                assert isinstance(db, rxdb.BridgedDatabase)
                try:
                    yield Shape(name, db, single_connection=False)
                finally:
                    await db.close()
            finally:
                await on_loop(home, origin.close)
        finally:
            await asyncio.to_thread(home.stop)

    return bridged_database


@asynccontextmanager
async def remote_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
    async with rxdb.open(":memory:") as origin:
        server = await rxdb.serve(origin)
        try:
            db = await server.handle.connect()
            try:
                yield Shape("remote", db, single_connection=True)
            finally:
                await db.close()
        finally:
            await server.shutdown_all()


def blocking_over(name: str, place: Place) -> Opener:
    """The shape ``name``: ``open_sync`` of the database at ``place``, through
    :class:`AsyncOverBlocking`."""

    @asynccontextmanager
    async def blocking_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
        blocking = await asyncio.to_thread(rxdb.open_sync, await place(request))
        db = AsyncOverBlocking(blocking)
        try:
            yield Shape(name, db, single_connection=False)
        finally:
            await db.close()
            await db.release_threads()

    return blocking_database


@asynccontextmanager
async def borrowed_blocking_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
    async with rxdb.open(in_tmp_path(request)) as origin:
        handle = await origin.serializable_connection()
        db = AsyncOverBlocking(await asyncio.to_thread(handle.connect_sync))
        try:
            yield Shape("connect_sync", db, single_connection=False)
        finally:
            await db.close()
            await db.release_threads()


@asynccontextmanager
async def postgres_database(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
    async with rxdb.open(await postgres_url(request)) as db:
        yield Shape("postgres", db, single_connection=False)


async def tmp_file(request: pytest.FixtureRequest) -> Path:
    return in_tmp_path(request)


async def postgres_url(request: pytest.FixtureRequest) -> str:
    """The URL of the run's PostgreSQL database (:func:`postgres_home`), its schema
    ``public`` emptied for this test."""
    url = f"{SERVER}/{request.getfixturevalue('postgres_home')}"
    await empty_schema_public(url)
    return url


def in_tmp_path(request: pytest.FixtureRequest) -> Path:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return tmp_path / "conformance.db"


@pytest.fixture(scope="session")
def postgres_home() -> Iterator[str]:
    """The database the postgres shape runs in, one for the whole run: making, dropping and
    instrumenting a database per test more than doubled the shape's time (measured: 81 tests
    in 12-14 s against 5-6 s). Each test starts on an empty schema ``public``
    (:func:`empty_schema_public`); rxdb's capture, installed by the first test, stays."""
    name = f"rxdb_conformance_{uuid.uuid4().hex}"
    on_server(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        on_server(f"DROP DATABASE {name} WITH (FORCE)")


def on_server(sql: str) -> None:
    """Run ``sql`` in the server's maintenance database, on a thread of its own: the fixture
    is first asked for by a shape's opener, on the test's running loop."""

    async def run() -> None:
        conn = await asyncpg.connect(f"{SERVER}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


async def empty_schema_public(url: str) -> None:
    """Drop every table, view and sequence of the schema ``public`` (before the test's
    database opens: its listener hears none of it). A connection an earlier test left
    behind is ended first, so that it holds no lock and no transaction over this test."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


SHAPES: dict[str, Opener] = {
    "memory": memory_database,
    "file": file_database,
    "bridged": bridged_over("bridged", tmp_file),
    "remote": remote_database,
    "sync": blocking_over("sync", tmp_file),
    "connect_sync": borrowed_blocking_database,
    "postgres": postgres_database,
    "postgres-bridged": bridged_over("postgres-bridged", postgres_url),
    "postgres-sync": blocking_over("postgres-sync", postgres_url),
}


MARKS: dict[str, list[pytest.MarkDecorator]] = {
    name: [pytest.mark.postgres] for name in SHAPES if name.startswith("postgres")
}
"""Each shape's marks (``-m "not postgres"`` leaves the machine's server alone)."""


def shape_param(name: str, *values: object, marks: Iterable[Any] = ()) -> Any:
    """A parameter of the ``shape`` fixture (then ``values``), with the shape's marks."""
    return pytest.param(name, *values, marks=[*MARKS.get(name, []), *marks])


@pytest.fixture(params=[shape_param(name) for name in SHAPES])
async def shape(request: pytest.FixtureRequest) -> AsyncIterator[Shape]:
    async with SHAPES[request.param](request) as opened:
        yield opened


@pytest.fixture
def db(shape: Shape) -> AsyncDatabase:
    """The shape's database, typed as the contract: tests use nothing else of it."""
    return shape.db


def detached(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task outside the caller's transaction and read blocks (a fresh context): for the
    blocking shape, another thread."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def make_t(db: AsyncDatabase) -> None:
    """Table ``t`` with one row, ``x = 1``: an auto-numbered ``id`` and an integer ``x``.
    Returns once the messages of its commits have arrived (:func:`caught_up`)."""
    await db.execute(f"CREATE TABLE t(id {dialect(db).key}, x INTEGER)")
    await db.execute("INSERT INTO t(x) VALUES (1)")
    await caught_up(db)


async def caught_up(db: AsyncDatabase) -> None:
    """Wait until the message of every commit so far has arrived (:func:`marker_commit`),
    so that a subscription made next hears only what comes after."""
    heard: Recorder[NotifyTablesUpdated] = Recorder()
    with subscribed(db.table_updates(["t"], [UpdateKind.UPDATE]), heard):
        await marker_commit(db, heard)


async def marker_commit(
    db: AsyncDatabase, heard: Recorder[NotifyTablesUpdated]
) -> list[NotifyTablesUpdated]:
    """Commit a marker (an update of a row of ``t`` that changes no value) and wait until
    ``heard``, subscribed to the messages of ``t``, has its message; return what it heard,
    the marker's message last.

    A message may arrive after the statement that committed returns (on PostgreSQL it comes
    back through the server), but messages arrive in their commits' order: once the
    marker's has, every earlier one has.
    """
    await db.execute("UPDATE t SET x = x WHERE id = (SELECT min(id) FROM t)")
    marker = dialect(db).updates("t", UpdateKind.UPDATE, "x")
    await heard.wait_for(lambda seen: any(marker <= m.updates for m in seen.values))
    return list(heard.values)


def gaps(**reasons: str) -> pytest.MarkDecorator:
    """Run a test on every shape, those named (``remote="why"``) as known gaps in the
    contract: a strict xfail, so that the test fails once the shape conforms, until the mark
    is removed."""
    return pytest.mark.parametrize(
        "shape",
        [
            shape_param(name, marks=[pytest.mark.xfail(strict=True, reason=reasons[name])])
            if name in reasons
            else shape_param(name)
            for name in SHAPES
        ],
        indirect=True,
    )
