"""Server mode: a database served to clients over the rxdb protocol, in-process and across
real processes (spawned servers, killed clients, raw sockets sending garbage)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import signal
import socket
import sqlite3
import struct
import sys
import uuid
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.api import AsyncDatabase, AsyncReadSession, Handle, RowsStream
from rxdb.bus import Transport
from rxdb.engines.sqlite import SQLiteEngine
from rxdb.engines.sqlite.writer import Writer
from rxdb.errors import ConnectionLostError, NameNotFoundError, ServerRefusedError
from rxdb.remote import hub, names
from rxdb.remote.client import Reconnect, RemoteDatabase, RemoteReadSession
from rxdb.remote.handle import ServerHandle
from rxdb.remote.processes.compute import compute_with_database
from rxdb.remote.processes.spawn import spawn
from rxdb.remote.runtime import socket_directory
from rxdb.remote.server import Server, serve
from rxdb.remote.wire.channel import Channel, Keepalive
from rxdb.remote.wire.frames import encode_frame
from rxdb.remote.wire.messages import (
    Message,
    Pong,
    Request,
    encode_message,
)
from rxdb.remote.wire.operations import Backup, End, FetchAll, OpenRead, Operation
from rxdb.updates import TableUpdate, UpdateKind
from tests.conftest import WAIT, Recorder
from tests.rxdb import server_worker

COUNT = "SELECT count(*) FROM t"
ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def serving(path: str | Path) -> AsyncIterator[tuple[rxdb.Database, Server]]:
    """A database with table t, served from this process; shut down and closed after."""
    async with rxdb.open(path) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
        server = await serve(db)
        try:
            yield db, server
        finally:
            await server.shutdown_all()


@pytest.fixture
async def served() -> AsyncIterator[tuple[rxdb.Database, Server]]:
    async with serving(":memory:") as pair:
        yield pair


@pytest.fixture
async def client(served: tuple[rxdb.Database, Server]) -> AsyncIterator[RemoteDatabase]:
    remote = await served[1].handle.connect()
    yield remote
    await remote.close()


async def child(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rxdb.server_worker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )


# -- the contract, in-process ----------------------------------------------------------------


async def test_statements_and_values_round_trip_exactly(client: RemoteDatabase) -> None:
    result = await client.execute("INSERT INTO t(x) VALUES (?)", [b"\x00\xffblob"])
    assert (result.rowcount, result.last_insert_rowid) == (1, 1)
    values = [None, 2**63 - 1, -(2**63), -0.0, 1.5, "text"]
    assert await client.execute_many("INSERT INTO t(x) VALUES (?)", [(v,) for v in values]) == 6
    await client.execute_script("INSERT INTO t(x) VALUES (42); INSERT INTO t(x) VALUES (43);")
    rows = await client.fetch_all("SELECT x FROM t ORDER BY id")
    assert rows == [(b"\x00\xffblob",), *[(v,) for v in values], (42,), (43,)]
    assert rows[0]["x"] == b"\x00\xffblob"
    assert str(rows[4][0]) == "-0.0"
    named = await client.fetch_one("SELECT x FROM t WHERE x = :v", {"v": 42})
    assert named == (42,)
    assert await client.fetch_one("SELECT x FROM t WHERE x = 'nope'") is None


async def test_errors_come_back_as_the_same_rxdb_errors(client: RemoteDatabase) -> None:
    await client.execute("INSERT INTO t(x) VALUES (1)")
    with pytest.raises(rxdb.IntegrityError) as caught:
        await client.execute("INSERT INTO t(x) VALUES (1)")
    assert caught.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
    assert caught.value.sqlite_errorcode == 2067
    with pytest.raises(rxdb.OperationalError):
        await client.fetch_all("SELECT * FROM missing")
    with pytest.raises(rxdb.ProgrammingError):
        await client.execute("SELECT 1; SELECT 2")
    with pytest.raises(rxdb.ProgrammingError):  # cannot even be sent
        await client.execute("SELECT ?", [object()])
    assert await client.fetch_all(COUNT) == [(1,)]  # still usable


async def test_foreign_write_tracking_over_the_wire(
    served_file: tuple[rxdb.Database, Server],
) -> None:
    db, server = served_file
    journal = "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'rxdb_journal%'"
    async with await server.handle.connect() as remote:
        await remote.track_foreign_writes()
        assert await db.fetch_one(journal) == (4,)  # the table and t's three triggers
        await remote.untrack_foreign_writes()
        assert await db.fetch_one(journal) == (0,)


async def test_transaction_statements_on_their_own_are_refused(client: RemoteDatabase) -> None:
    """A BEGIN would end with its request; the client is told to use transaction()."""
    for statement in ("BEGIN", "COMMIT", "SAVEPOINT s", "ROLLBACK"):
        with pytest.raises(rxdb.ProgrammingError, match=r"db\.transaction\(\)"):
            await client.execute(statement)
    async with client.transaction():
        await client.execute("SAVEPOINT inner")  # inside a block: the block's own business
        await client.execute("INSERT INTO t(x) VALUES (5)")
        await client.execute("RELEASE inner")
    assert await client.fetch_all(COUNT) == [(1,)]


async def test_transactions_commit_roll_back_and_nest(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, _ = served

    async def insert_then_fail(value: int, error: Exception) -> None:
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (?)", [value])
            raise error

    async with client.transaction():
        await client.execute("INSERT INTO t(x) VALUES (1)")
        assert await client.fetch_all(COUNT) == [(1,)]  # sees its own write
        with pytest.raises(ValueError, match="savepoint"):  # only the savepoint is undone
            await insert_then_fail(2, ValueError("savepoint"))
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (3)")
    assert await db.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (3,)]

    with pytest.raises(KeyError, match="outermost"):
        await insert_then_fail(4, KeyError("outermost"))
    assert await db.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (3,)]

    async def insert_twice(value: int) -> None:
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (5)")
            await client.execute("INSERT INTO t(x) VALUES (?)", [value])

    # a failed statement inside keeps the block usable until the caller decides
    with pytest.raises(rxdb.IntegrityError):
        await insert_twice(1)
    assert await db.fetch_all(COUNT) == [(2,)]


async def test_a_transaction_belongs_to_its_task(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, server = served
    inside = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (1)")
            inside.set()
            await release.wait()
            raise_it = True
            if raise_it:
                raise RuntimeError("undo")

    task = asyncio.create_task(holder())
    await inside.wait()
    session = next(iter(server._sessions))
    earlier = set(session.tasks)
    # another task of the same client is outside the block: it waits for the write lock
    other = asyncio.create_task(client.execute("INSERT INTO t(x) VALUES (2)"))
    # once the server has its request, it must wait there for the block to end (had it
    # wrongly landed inside the block, it would be rolled back with it: see the end)
    async with asyncio.timeout(WAIT):
        await server.wait_until(lambda: bool(session.tasks - earlier))
    assert writer_of(db).lock.locked()
    assert not other.done()
    release.set()
    with pytest.raises(RuntimeError):
        await task
    await other
    assert await db.fetch_all("SELECT x FROM t") == [(2,)]


async def test_watch_refreshes_on_writes_by_client_server_and_second_client(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, server = served
    seen: Recorder[Any] = Recorder()
    subscription = client.watch(COUNT).subscribe(seen)
    await seen.wait_value([(0,)])
    await client.execute("INSERT INTO t(x) VALUES (1)")
    await seen.wait_value([(1,)])
    await db.execute("INSERT INTO t(x) VALUES (2)")  # the server's own code
    await seen.wait_value([(2,)])
    async with await server.handle.connect() as second:
        await second.execute("INSERT INTO t(x) VALUES (3)")
        await seen.wait_value([(3,)])
        iterator = second.watch(COUNT).__aiter__()
        assert await asyncio.wait_for(iterator.__anext__(), WAIT) == [(3,)]
        await client.execute("INSERT INTO t(x) VALUES (4)")
        assert await asyncio.wait_for(iterator.__anext__(), WAIT) == [(4,)]
        await iterator.aclose()
    subscription.dispose()
    # unsubscribing tells the server: its session drops the watch
    session = next(iter(server._sessions))
    async with asyncio.timeout(WAIT):
        await server.wait_until(lambda: not session.subscriptions)
    assert seen.errors == []


async def test_a_failing_watch_delivers_the_error(client: RemoteDatabase) -> None:
    seen: Recorder[Any] = Recorder()
    client.watch("SELECT * FROM missing").subscribe(seen)
    await seen.wait_for(lambda r: bool(r.errors))
    assert isinstance(seen.errors[0], rxdb.OperationalError)


async def test_table_updates_and_notify_updates(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, _ = served
    updates: Recorder[Any] = Recorder()
    client.table_updates(["t"], [UpdateKind.INSERT]).subscribe(updates)
    watched: Recorder[Any] = Recorder()
    db.watch(COUNT, distinct=False).subscribe(watched)
    await watched.wait_count(1)
    # make sure the server has subscribed before writing: one round trip after the request
    await client.fetch_all("SELECT 1")
    await client.execute("INSERT INTO t(x) VALUES (1)")
    await updates.wait_count(1)
    message = updates.values[0]
    assert message.database == db.key
    assert TableUpdate("t", UpdateKind.INSERT) in message.updates
    await client.notify_updates("t")  # a watch on the server re-runs
    await watched.wait_count(3)
    await client.notify_updates()
    await watched.wait_count(4)


async def test_close_completes_watches_and_later_calls_raise(
    served: tuple[rxdb.Database, Server],
) -> None:
    db, server = served
    remote = await server.handle.connect()
    seen: Recorder[Any] = Recorder()
    remote.watch(COUNT).subscribe(seen)
    await seen.wait_count(1)
    await remote.close()
    await remote.close()  # idempotent
    assert seen.completed
    with pytest.raises(rxdb.ClosedError):
        await remote.fetch_all(COUNT)
    with pytest.raises(rxdb.ClosedError):
        remote.watch(COUNT)
    assert await db.fetch_all(COUNT) == [(0,)]


async def test_closing_inside_a_transaction_rolls_it_back(
    served: tuple[rxdb.Database, Server],
) -> None:
    db, server = served
    remote = await server.handle.connect()

    async def close_inside() -> None:
        async with remote.transaction():
            await remote.execute("INSERT INTO t(x) VALUES (1)")
            await remote.close()

    with pytest.raises(rxdb.ClosedError):
        await close_inside()
    await db.execute("INSERT INTO t(x) VALUES (2)")  # the write lock is free again
    assert await db.fetch_all("SELECT x FROM t") == [(2,)]


async def test_the_socket_is_owner_only(served: tuple[rxdb.Database, Server]) -> None:
    handle = served[1].handle
    assert handle.kind == "unix"
    assert os.stat(handle.address).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(handle.address)).st_mode & 0o777 == 0o700


# -- hostile peers ------------------------------------------------------------------------------


def _raw(handle: ServerHandle) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(handle.address)
    return sock


async def _closed_by_server(sock: socket.socket) -> None:
    def drain() -> None:
        sock.settimeout(WAIT)
        while sock.recv(65536):
            pass

    await asyncio.to_thread(drain)
    sock.close()


async def test_garbage_and_oversized_frames_close_only_that_connection(
    served: tuple[rxdb.Database, Server],
    client: RemoteDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, server = served
    seen: Recorder[Any] = Recorder()
    client.watch(COUNT).subscribe(seen)
    await seen.wait_count(1)
    caplog.set_level(logging.WARNING, logger="rxdb.remote")

    garbage = _raw(server.handle)
    garbage.sendall(b"GET / HTTP/1.1\r\n\r\n")
    await _closed_by_server(garbage)

    oversized = _raw(server.handle)  # 1 MiB declared before the handshake (limit 64 KiB)
    oversized.sendall(b"RXD\x01" + struct.pack(">I", 1 << 20) + b"x" * 100)
    await _closed_by_server(oversized)

    unauthenticated = _raw(server.handle)  # a well-formed request before any hello
    unauthenticated.sendall(encode_frame(encode_message(Request(1, FetchAll(COUNT, [], None)))))
    await _closed_by_server(unauthenticated)

    bad_msgpack = _raw(server.handle)
    bad_msgpack.sendall(encode_frame(b"\xc1\xc1\xc1"))
    await _closed_by_server(bad_msgpack)

    reasons = " ".join(r.getMessage() for r in caplog.records)
    assert "not an rxdb frame" in reasons
    assert "over the limit" in reasons
    assert "expected hello" in reasons
    assert "malformed msgpack" in reasons
    # the established client never noticed
    await client.execute("INSERT INTO t(x) VALUES (1)")
    await seen.wait_value([(1,)])
    assert seen.errors == []
    assert not seen.completed


async def test_tcp_requires_the_right_token_on_loopback() -> None:
    async with rxdb.open(":memory:") as db:
        with pytest.raises(rxdb.ProgrammingError, match="non-loopback"):
            await serve(db, host="0.0.0.0")
        server = await serve(db, host="127.0.0.1")
        try:
            handle = server.handle
            assert handle.kind == "tcp"
            assert handle.token
            with pytest.raises(ServerRefusedError, match="token"):
                await ServerHandle("tcp", handle.address, "00" * 32).connect()
            with pytest.raises(ServerRefusedError):
                await ServerHandle("tcp", handle.address, None).connect()
            async with await handle.connect() as remote:
                assert await remote.fetch_all("SELECT 1 + 1") == [(2,)]
        finally:
            await server.shutdown_all()


async def test_shutdown_all_fails_pending_calls_and_ends_watches(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, server = served
    seen: Recorder[Any] = Recorder()
    client.watch(COUNT).subscribe(seen)
    await seen.wait_count(1)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def local_holder() -> None:
        async with db.transaction():
            entered.set()
            await release.wait()

    holder = asyncio.create_task(local_holder())
    await entered.wait()
    pending = asyncio.create_task(client.execute("INSERT INTO t(x) VALUES (1)"))
    session = next(iter(server._sessions))
    async with asyncio.timeout(WAIT):  # the insert has reached the server and waits there
        await server.wait_until(lambda: bool(session.tasks))
    stopping = asyncio.create_task(server.shutdown_all())
    with pytest.raises(rxdb.ClosedError, match="connection to the rxdb server lost"):
        await pending
    await seen.wait_for(lambda r: bool(r.errors))
    assert isinstance(seen.errors[0], rxdb.ClosedError)
    release.set()
    await holder
    await stopping
    assert not Path(server.handle.address).exists()  # noqa: ASYNC240 -- one stat, no I/O wait
    with pytest.raises(rxdb.ClosedError):
        await client.fetch_all("SELECT 1")
    with pytest.raises(ConnectionLostError):
        await server.handle.connect()


# -- real processes -----------------------------------------------------------------------------


async def test_client_killed_mid_transaction_leaves_no_trace(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, server = served
    process = await child("hold", json.dumps(server.handle.to_json()))
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), WAIT) == b"inside\n"
    # the killed client holds the write lock: this write waits for the rollback
    write = asyncio.create_task(client.execute("INSERT INTO t(x) VALUES ('after')"))
    os.kill(process.pid, signal.SIGKILL)
    await process.wait()
    await asyncio.wait_for(write, WAIT)
    assert await db.fetch_all("SELECT x FROM t") == [("after",)]
    assert await client.fetch_all("SELECT x FROM t") == [("after",)]
    async with asyncio.timeout(WAIT):
        await server.wait_until(lambda: server.connections == 1)


async def test_spawned_memory_database_is_shared_by_two_clients() -> None:
    server = await spawn(":memory:")
    try:
        first = await server.handle.connect()
        second = await server.handle.connect()
        try:
            assert first.server_pid == server.pid != os.getpid()
            await first.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
            seen: Recorder[Any] = Recorder()
            second.watch(COUNT).subscribe(seen)
            await seen.wait_value([(0,)])
            await first.execute("INSERT INTO t(x) VALUES (1)")
            await seen.wait_value([(1,)])
            async with second.transaction():
                await second.execute("INSERT INTO t(x) VALUES (2)")
            assert await first.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
            # shutdown_all: pending work fails, the child is gone
            seen_end: Recorder[Any] = Recorder()
            first.watch(COUNT).subscribe(seen_end)
            await seen_end.wait_count(1)
        finally:
            await server.shutdown_all()
        await seen_end.wait_for(lambda r: bool(r.errors))
        assert isinstance(seen_end.errors[0], rxdb.ClosedError)
        with pytest.raises(rxdb.ClosedError):
            await first.fetch_all(COUNT)
        assert server._process.returncode == 0
        await first.close()
        await second.close()
    finally:
        await server.shutdown_all()


async def test_spawn_with_a_factory_and_compute_against_it() -> None:
    server = await spawn(server_worker.make_memory_database)
    async with server, await server.handle.connect() as remote:
        seen: Recorder[Any] = Recorder()
        remote.watch(COUNT).subscribe(seen)
        await seen.wait_value([(0,)])
        result = await compute_with_database(server, server_worker.insert_and_count, 10, 3)
        assert result["total"] == 3
        assert result["blob"] == b"\x00\xff"
        assert result["last"] == (12,)
        assert result["last"]["x"] == 12
        await seen.wait_value([(3,)])
    with pytest.raises(rxdb.ProgrammingError, match="module-level"):
        await spawn(lambda: None)


async def test_compute_with_a_file_database(db_path: Path) -> None:
    async with rxdb.open(db_path) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
        seen: Recorder[Any] = Recorder()
        db.watch(COUNT).subscribe(seen)
        await seen.wait_value([(0,)])
        result = await compute_with_database(db, server_worker.insert_and_count, 1, 5)
        assert result["total"] == 5
        await seen.wait_value([(5,)])  # the worker's commit reached this process's watch
        with pytest.raises(rxdb.IntegrityError):
            await compute_with_database(db, server_worker.fail_with_integrity_error)

        async def local(db: Any) -> None:
            pass

        with pytest.raises(rxdb.ProgrammingError, match="module-level"):
            await compute_with_database(db, local)
    async with rxdb.open(":memory:") as memory:
        with pytest.raises(rxdb.ProgrammingError, match="serve it first"):
            await compute_with_database(memory, server_worker.insert_and_count, 1, 1)


async def test_a_separate_process_finds_the_server_by_name(
    tmp_path: Path,
) -> None:
    name = f"test-{os.getpid()}-{id(tmp_path)}"
    async with rxdb.open(":memory:") as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        await db.execute("INSERT INTO t(x) VALUES ('found')")
        server = await serve(db, name=name)
        try:
            assert names.lookup(name) == server.handle
            process = await child("lookup", name)
            out, _ = await asyncio.wait_for(process.communicate(), WAIT * 2)
            assert json.loads(out) == [["found"]]
            with pytest.raises(rxdb.NameTakenError, match="taken by a live rxdb server"):
                names.register(name, server.handle, pid=os.getppid())
        finally:
            await server.shutdown_all()
        with pytest.raises(NameNotFoundError):
            names.lookup(name)
        # a stale entry (dead process) is ignored and removed
        dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await dead.wait()
        names.register(name, server.handle, pid=dead.pid)
        with pytest.raises(LookupError, match="gone"):
            names.lookup(name)
        with pytest.raises(NameNotFoundError, match="no rxdb server"):
            names.lookup(name)


# -- read blocks, interrupt, backup ---------------------------------------------------------

ENDLESS = server_worker.ENDLESS
STARTED_ENDLESS = (
    "WITH RECURSIVE c(n) AS (SELECT started() UNION ALL SELECT n + 1 FROM c "
    "WHERE n < 1000000000) SELECT count(*) FROM c"
)


@pytest.fixture(params=["file", "memory"])
async def served_any(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[rxdb.Database, Server]]:
    """A served database of each kind: a file (WAL: writer and readers) and ``:memory:``
    (one connection for everything)."""
    path = tmp_path / "served.db" if request.param == "file" else ":memory:"
    async with serving(path) as pair:
        yield pair


@pytest.fixture
async def served_file(tmp_path: Path) -> AsyncIterator[tuple[rxdb.Database, Server]]:
    async with serving(tmp_path / "served.db") as pair:
        yield pair


def detached(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """A task that does not inherit the caller's transaction or read blocks."""
    return asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


async def install_started(worker: Any, event: asyncio.Event) -> None:
    """A SQL function ``started()`` on one server connection that tells the test a statement
    runs there now (through rxdb's internal Worker)."""
    loop = asyncio.get_running_loop()

    def started() -> int:
        loop.call_soon_threadsafe(event.set)
        return 1

    await worker.call(worker.raw.create_function, "started", 0, started)


def writer_of(db: rxdb.Database) -> Writer:
    """The served database's writer (a SQLite engine's internals)."""
    engine = db._engine
    assert isinstance(engine, SQLiteEngine)
    writer = engine._writer
    assert writer is not None
    return writer


def blocks_of(server: Server) -> list[Any]:
    """The blocks every client holds on ``server`` now."""
    return [held for session in server._sessions for held in session.blocks.held.values()]


async def test_read_block_sees_one_snapshot(
    served_file: tuple[rxdb.Database, Server],
) -> None:
    db, server = served_file
    async with await server.handle.connect() as remote:
        await remote.execute("INSERT INTO t(x) VALUES (1)")
        async with remote.read() as r:
            assert r.isolated
            assert await r.fetch_one(COUNT) == (1,)
            await db.execute("INSERT INTO t(x) VALUES (2)")  # committed, yet invisible here
            assert await r.fetch_one(COUNT) == (1,)
            assert await remote.fetch_one(COUNT) == (1,)  # this task's statements: same
            assert (await r.execute(COUNT)).rows == [(1,)]
            assert await remote.fetch_all("SELECT x FROM t") == [(1,)]
        assert await remote.fetch_one(COUNT) == (2,)
        async with remote.unsafe_read() as r:
            assert not r.isolated
            await db.execute("INSERT INTO t(x) VALUES (3)")
            assert await r.fetch_one(COUNT) == (3,)  # each statement sees the latest commit


@pytest.mark.parametrize("method", ["read", "unsafe_read"])
async def test_writes_inside_a_remote_read_block_raise_read_only(
    served_any: tuple[rxdb.Database, Server], method: str
) -> None:
    db, server = served_any
    async with await server.handle.connect() as remote:
        async with getattr(remote, method)() as r:
            with pytest.raises(rxdb.ReadOnlyError, match=r"db\.transaction"):
                await r.execute("INSERT INTO t(x) VALUES (9)")
            with pytest.raises(rxdb.ReadOnlyError, match=r"db\.transaction"):
                await remote.execute("INSERT INTO t(x) VALUES (9)")
            with pytest.raises(rxdb.OperationalError, match="no such table"):
                await r.fetch_all("SELECT * FROM missing")
            assert await r.fetch_one(COUNT) == (0,)  # still usable
        with pytest.raises(rxdb.ClosedError, match="ended"):
            await r.fetch_all("SELECT 1")
        await remote.execute("INSERT INTO t(x) VALUES (3)")  # writable again afterwards
        assert await db.fetch_all("SELECT x FROM t") == [(3,)]
        assert blocks_of(server) == []


async def test_remote_blocks_nest_as_local_ones_do(
    served_any: tuple[rxdb.Database, Server],
) -> None:
    _, server = served_any
    async with await server.handle.connect() as remote:
        async with remote.read() as r:
            with pytest.raises(rxdb.ReentrancyError, match=r"inside db\.read"):
                async with remote.read():
                    pass
            with pytest.raises(rxdb.ReentrancyError):
                async with remote.transaction():
                    pass
            assert await r.fetch_one("SELECT 1") == (1,)  # the outer block carries on
        async with remote.transaction():
            with pytest.raises(rxdb.ReentrancyError, match="fetch_all"):
                async with remote.read():
                    pass
            await remote.execute("INSERT INTO t(x) VALUES (1)")
            with pytest.raises(rxdb.ReentrancyError):
                await remote.backup("/nonexistent/never-written.db")
        assert await remote.fetch_all(COUNT) == [(1,)]
        assert blocks_of(server) == []


async def test_read_blocks_of_a_closed_client_raise(served: tuple[rxdb.Database, Server]) -> None:
    _, server = served
    remote = await server.handle.connect()
    await remote.close()
    with pytest.raises(rxdb.ClosedError):
        async with remote.read():
            pass
    with pytest.raises(rxdb.ClosedError):
        await remote.backup("/tmp/never.db")
    await remote.interrupt()  # as locally: nothing runs, nothing happens
    remote.interrupt_threadsafe()


async def test_closing_inside_a_read_block_gives_the_reader_back(tmp_path: Path) -> None:
    async with rxdb.open(tmp_path / "one-reader.db", readers=1) as db:
        server = await serve(db)
        try:
            remote = await server.handle.connect()

            async def close_inside() -> None:
                async with remote.read() as r:
                    await r.fetch_all("SELECT 1")
                    await remote.close()

            with pytest.raises(rxdb.ClosedError):
                await close_inside()
            async with asyncio.timeout(WAIT), db.read() as mine:  # the one reader is free
                assert await mine.fetch_one("SELECT 1") == (1,)
        finally:
            await server.shutdown_all()


@pytest.mark.parametrize("command", ["hold-read", "spin-read", "spin-transaction"])
async def test_client_killed_inside_a_block_releases_what_it_held(
    tmp_path: Path, command: str
) -> None:
    # One reader: while the killed client holds it, no other read block can begin.
    async with rxdb.open(tmp_path / "one-reader.db", readers=1) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
        server = await serve(db)
        try:
            process = await child(command, json.dumps(server.handle.to_json()))
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), WAIT) == b"inside\n"
            if command.startswith("spin"):  # the endless query has reached the server
                async with asyncio.timeout(WAIT):
                    await server.wait_until(lambda: any(h.running for h in blocks_of(server)))
            if command == "spin-transaction":
                waiting = asyncio.create_task(db.execute("INSERT INTO t(x) VALUES (1)"))
            else:
                waiting = asyncio.create_task(_read_count(db))
            await asyncio.sleep(0)
            assert not waiting.done()
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            # the server interrupts what still runs in the block, then ends the block
            await asyncio.wait_for(waiting, WAIT)
            async with asyncio.timeout(WAIT):
                await server.wait_until(lambda: server.connections == 0)
            assert blocks_of(server) == []
        finally:
            await server.shutdown_all()


async def _read_count(db: rxdb.Database) -> Any:
    async with db.read() as r:
        return await r.fetch_one(COUNT)


async def test_interrupt_aborts_the_clients_transaction(
    served_any: tuple[rxdb.Database, Server],
) -> None:
    db, server = served_any
    running = asyncio.Event()
    await install_started(writer_of(db).worker, running)
    async with await server.handle.connect() as remote:

        async def interrupt_when_running() -> None:
            await running.wait()
            await remote.interrupt()

        async def interrupted_block() -> None:
            async with remote.transaction():
                await remote.execute("INSERT INTO t(x) VALUES ('kept?')")
                with pytest.raises(rxdb.InterruptError):
                    await remote.fetch_all(STARTED_ENDLESS)
                with pytest.raises(rxdb.TransactionAbortedError, match="leave the transaction"):
                    await remote.execute("INSERT INTO t(x) VALUES ('after')")

        async def block_swallowing_the_interrupt() -> None:
            async with remote.transaction():
                with contextlib.suppress(rxdb.InterruptError):
                    await remote.fetch_all(STARTED_ENDLESS)

        interrupter = asyncio.create_task(interrupt_when_running())
        with pytest.raises(rxdb.TransactionAbortedError):
            await interrupted_block()
        await asyncio.wait_for(interrupter, WAIT)
        assert await db.fetch_all("SELECT x FROM t") == []  # nothing of the block
        # a block whose statements swallowed the interrupt still fails at its end
        running.clear()
        interrupter = asyncio.create_task(interrupt_when_running())
        with pytest.raises(rxdb.TransactionAbortedError):
            await block_swallowing_the_interrupt()
        await asyncio.wait_for(interrupter, WAIT)
        await remote.execute("INSERT INTO t(x) VALUES (2)")  # later work is unaffected
        assert await db.fetch_all("SELECT x FROM t") == [(2,)]


async def test_interrupt_stops_this_clients_read_block_only(
    served_file: tuple[rxdb.Database, Server],
) -> None:
    db, server = served_file
    first = await server.handle.connect()
    second = await server.handle.connect()
    try:
        async with first.read() as mine, second.read() as theirs:
            started = {}
            for held in blocks_of(server):
                event = started[id(held)] = asyncio.Event()
                await install_started(held.read.worker, event)
            query = asyncio.create_task(mine.fetch_all(STARTED_ENDLESS))
            other = asyncio.create_task(theirs.fetch_all(STARTED_ENDLESS))
            async with asyncio.timeout(WAIT):
                for event in started.values():
                    await event.wait()
            await first.interrupt()
            with pytest.raises(rxdb.InterruptError):
                await asyncio.wait_for(query, WAIT)
            # the other client's query on its own connection, and plain reads, run on (from
            # a task outside this task's blocks)
            await detached(second.fetch_all("SELECT 1"))
            assert await db.fetch_one("SELECT 1") == (1,)
            assert not other.done()
            assert await mine.fetch_one(COUNT) == (0,)  # the interrupted block is usable
            await second.interrupt()
            with pytest.raises(rxdb.InterruptError):
                await asyncio.wait_for(other, WAIT)
    finally:
        await first.close()
        await second.close()


async def test_interrupt_of_a_query_outside_blocks(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, _ = served
    running = asyncio.Event()
    await install_started(writer_of(db).worker, running)  # :memory: reads run on the writer
    query = asyncio.create_task(client.fetch_all(STARTED_ENDLESS))
    await asyncio.wait_for(running.wait(), WAIT)
    # from another thread, as a UI's "Cancel" button would
    await asyncio.to_thread(client.interrupt_threadsafe)
    with pytest.raises(rxdb.InterruptError):
        await asyncio.wait_for(query, WAIT)
    await client.interrupt()  # nothing running: nothing happens, later work is unaffected
    async with client.transaction():
        await client.execute("INSERT INTO t(x) VALUES (1)")
    assert await client.fetch_all(COUNT) == [(1,)]


async def test_backup_copies_the_served_database(
    served_any: tuple[rxdb.Database, Server], tmp_path: Path
) -> None:
    db, server = served_any
    async with await server.handle.connect() as remote:
        await remote.execute_many(
            "INSERT INTO t(x) VALUES (?)", [(f"row {i} " + "x" * 300,) for i in range(300)]
        )
        target = tmp_path / "copy.db"
        seen: list[rxdb.BackupProgress] = []
        await remote.backup(target, pages_per_step=4, progress=seen.append)
        copy = sqlite3.connect(target)
        try:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            copied = copy.execute("SELECT id, x FROM t ORDER BY id").fetchall()
        finally:
            copy.close()
        assert copied == [tuple(r) for r in await db.fetch_all("SELECT id, x FROM t ORDER BY id")]
        assert len(seen) > 1
        assert seen[-1].remaining == 0
        assert [p.completed for p in seen] == sorted(p.completed for p in seen)
        await remote.backup(str(tmp_path / "whole.db"), pages_per_step=-1)  # in one step
        assert (tmp_path / "whole.db").stat().st_size == target.stat().st_size


async def test_backup_errors_and_abort(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase, tmp_path: Path
) -> None:
    db, _ = served
    await client.execute_many(
        "INSERT INTO t(x) VALUES (?)", [(b"y" * 800 + bytes([i]),) for i in range(100)]
    )
    with pytest.raises(rxdb.ProgrammingError, match="absolute path"):
        await client.backup("relative.db")
    with pytest.raises(rxdb.ProgrammingError, match="server's machine"):
        await client.backup(db)  # type: ignore[arg-type]
    with pytest.raises(rxdb.ProgrammingError, match="32-bit"):
        await client.backup(tmp_path / "big.db", pages_per_step=2**40)
    with pytest.raises(rxdb.OperationalError):
        await client.backup(tmp_path / "missing-dir" / "copy.db")

    def abort(progress: rxdb.BackupProgress) -> None:
        if progress.completed >= 2:
            raise RuntimeError("cancel")

    with pytest.raises(RuntimeError, match="cancel"):
        await client.backup(tmp_path / "partial.db", pages_per_step=1, progress=abort)
    # the server forgot the progress subscription; the database is usable
    await client.execute("INSERT INTO t(x) VALUES (1)")
    assert await client.fetch_one(COUNT) == (101,)


async def test_interrupt_stops_a_backup_of_this_client(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase, tmp_path: Path
) -> None:
    db, server = served
    await client.execute_many(
        "INSERT INTO t(x) VALUES (?)", [(b"z" * 900 + bytes([i]),) for i in range(50)]
    )
    release = asyncio.Event()
    entered = asyncio.Event()

    async def local_holder() -> None:  # :memory: backs up under the write lock: it waits
        async with db.transaction():
            entered.set()
            await release.wait()

    holder = asyncio.create_task(local_holder())
    await entered.wait()
    backup = asyncio.create_task(client.backup(tmp_path / "stopped.db", pages_per_step=1))
    (session,) = server._sessions
    async with asyncio.timeout(WAIT):
        await server.wait_until(lambda: bool(session.operations.backups))
    await client.interrupt()
    release.set()
    await holder
    with pytest.raises(rxdb.InterruptError, match="stopped"):
        await asyncio.wait_for(backup, WAIT)
    await client.backup(tmp_path / "complete.db")  # the next one is not affected


async def test_operations_that_mean_nothing_here_fail_only_that_call(
    client: RemoteDatabase,
) -> None:
    meaningless: list[Operation] = [
        OpenRead(True, 99),  # no block 99 on this connection
        End(99, False),
        Backup("/tmp/x\x00.db", 1, None, None),  # never written
        Backup("relative.db", 1, None, None),
        Backup("/tmp/x.db", 1, None, 99),  # never written
    ]
    for operation in meaningless:
        with pytest.raises(rxdb.ProgrammingError):
            await client._call(operation)
    assert await client.fetch_all("SELECT 1") == [(1,)]


# -- reconnection ----------------------------------------------------------------------------

QUICK = Reconnect(first_delay=0.01, max_delay=0.05)


async def test_reconnect_after_a_transient_loss(served: tuple[rxdb.Database, Server]) -> None:
    db, server = served
    remote = await server.handle.connect(reconnect=QUICK)
    try:
        seen: Recorder[Any] = Recorder()
        remote.watch(COUNT).subscribe(seen)
        await seen.wait_value([(0,)])
        inside = asyncio.Event()
        go_on = asyncio.Event()

        async def in_transaction() -> None:
            async with remote.transaction():
                await remote.execute("INSERT INTO t(x) VALUES ('lost')")
                inside.set()
                await go_on.wait()
                with pytest.raises(ConnectionLostError, match="inside this transaction block"):
                    await remote.execute("INSERT INTO t(x) VALUES ('after')")
            # leaving the block normally must not pass for a commit

        async def in_read_block() -> None:
            async with remote.read() as r:
                inside.set()
                await go_on.wait()
                with pytest.raises(ConnectionLostError, match="inside this read block"):
                    await r.fetch_all(COUNT)

        transaction = asyncio.create_task(in_transaction())
        await inside.wait()
        inside.clear()
        (session,) = server._sessions
        # a call in flight: it waits on the server for the write lock the block holds
        in_flight = detached(remote.execute("INSERT INTO t(x) VALUES ('in flight')"))
        async with asyncio.timeout(WAIT):
            await server.wait_until(lambda: bool(session.tasks))
        session.channel.stream.writer.transport.abort()  # the socket breaks under the client
        with pytest.raises(ConnectionLostError, match="lost"):
            await asyncio.wait_for(in_flight, WAIT)
        # The server rolled the block back; the statement in flight, which the client can
        # no longer hear about, ran on. The watch, subscribed again, shows it.
        await seen.wait_value([(1,)])
        assert await db.fetch_all("SELECT x FROM t") == [("in flight",)]
        assert remote.connected
        go_on.set()
        with pytest.raises(ConnectionLostError, match="leave the block"):
            await asyncio.wait_for(transaction, WAIT)
        assert await db.fetch_all("SELECT x FROM t") == [("in flight",)]

        go_on.clear()
        reader = asyncio.create_task(in_read_block())
        await inside.wait()
        (session,) = server._sessions
        emitted = len(seen.values)
        session.channel.stream.writer.transport.abort()
        await seen.wait_count(emitted + 1)  # reconnected: the current result, again
        assert seen.values[-1] == [(1,)]
        go_on.set()
        with pytest.raises(ConnectionLostError, match="inside this read block"):
            await asyncio.wait_for(reader, WAIT)

        await remote.execute("INSERT INTO t(x) VALUES (2)")  # the new connection works
        await seen.wait_value([(2,)])
        assert seen.errors == []
    finally:
        await remote.close()


async def test_reconnect_to_a_server_restarted_at_the_same_address() -> None:
    async with rxdb.open(":memory:") as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
        path = os.path.join(socket_directory(), f"restart-{uuid.uuid4().hex[:8]}.sock")
        server = await serve(db, path=path)
        remote = await server.handle.connect(reconnect=QUICK)
        try:
            seen: Recorder[Any] = Recorder()
            remote.watch(COUNT).subscribe(seen)
            dropped: Recorder[Any] = Recorder()
            remote.watch("SELECT 1").subscribe(dropped).dispose()
            await seen.wait_value([(0,)])
            await server.shutdown_all()
            async with asyncio.timeout(WAIT):
                await remote.wait_until(lambda: not remote.connected)
            assert not remote.closed
            # made while disconnected: a call waits, a new watch is subscribed on reconnect
            call = asyncio.create_task(remote.fetch_all(COUNT))
            late: Recorder[Any] = Recorder()
            remote.watch("SELECT max(x) FROM t").subscribe(late)
            await db.execute("INSERT INTO t(x) VALUES (7)")  # committed while it is away
            assert not call.done()
            server = await serve(db, path=path)
            assert await asyncio.wait_for(call, WAIT) == [(1,)]
            await seen.wait_value([(1,)])  # the change made meanwhile arrives
            await late.wait_value([(7,)])
            (session,) = server._sessions
            assert len(session.subscriptions) == 2  # not the disposed one
            assert seen.errors == []
            assert late.errors == []
            assert dropped.values == []
        finally:
            await remote.close()
            await server.shutdown_all()


async def test_reconnect_to_a_respawned_named_server(tmp_path: Path) -> None:
    name = f"respawn-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "named.db"
    server = await spawn(path, name=name)
    try:
        remote = await rxdb.connect_named(
            name, reconnect=Reconnect(first_delay=0.02, max_delay=0.2)
        )
        try:
            await remote.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
            await remote.execute("INSERT INTO t(x) VALUES (1)")
            seen: Recorder[Any] = Recorder()
            remote.watch(COUNT).subscribe(seen)
            updates: Recorder[Any] = Recorder()
            remote.table_updates(["t"]).subscribe(updates)
            await seen.wait_value([(1,)])
            first_pid = remote.server_pid
            await server.shutdown_all()
            async with asyncio.timeout(WAIT):
                await remote.wait_until(lambda: not remote.connected)
            server = await spawn(path, name=name)  # another process, socket and name entry
            async with asyncio.timeout(WAIT):
                await remote.wait_connected()
            assert remote.server_pid == server.pid != first_pid
            await seen.wait_count(2)  # a UI showing the watch recovers
            assert seen.values[-1] == [(1,)]
            await remote.execute("INSERT INTO t(x) VALUES (2)")
            await seen.wait_value([(2,)])
            await updates.wait_count(1)
            assert seen.errors == []
            assert updates.errors == []
        finally:
            await remote.close()
    finally:
        await server.shutdown_all()


async def test_reconnection_gives_up_and_calls_wait_only_so_long() -> None:
    async with rxdb.open(":memory:") as db:
        server = await serve(db)
        policy = Reconnect(first_delay=0.01, max_delay=0.02, call_wait=0.05, give_up_after=0.5)
        remote = await server.handle.connect(reconnect=policy)
        try:
            seen: Recorder[Any] = Recorder()
            remote.watch("SELECT 1").subscribe(seen)
            await seen.wait_count(1)
            await server.shutdown_all()
            async with asyncio.timeout(WAIT):
                await remote.wait_until(lambda: not remote.connected)
            with pytest.raises(ConnectionLostError, match=r"not reconnected within 0\.05 s"):
                await remote.fetch_all("SELECT 1")
            await seen.wait_for(lambda r: bool(r.errors))  # given up: the watch ends
            assert isinstance(seen.errors[0], ConnectionLostError)
            assert "no reconnection within 0.5 s" in str(seen.errors[0])
            assert remote.closed
            with pytest.raises(ConnectionLostError):
                await remote.wait_connected()
            with pytest.raises(ConnectionLostError):
                await remote.fetch_all("SELECT 1")
            with pytest.raises(ConnectionLostError):
                remote.watch("SELECT 1")
        finally:
            await remote.close()


async def test_close_while_reconnecting_ends_everything() -> None:
    async with rxdb.open(":memory:") as db:
        server = await serve(db)
        remote = await server.handle.connect(reconnect=True)
        seen: Recorder[Any] = Recorder()
        remote.watch("SELECT 1").subscribe(seen)
        await seen.wait_count(1)
        await server.shutdown_all()
        async with asyncio.timeout(WAIT):
            await remote.wait_until(lambda: not remote.connected)
        call = asyncio.create_task(remote.fetch_all("SELECT 1"))
        waiter = asyncio.create_task(remote.wait_connected())
        await remote.close()
        with pytest.raises(rxdb.ClosedError):
            await asyncio.wait_for(call, WAIT)
        with pytest.raises(rxdb.ClosedError):
            await asyncio.wait_for(waiter, WAIT)
        assert seen.completed
        assert seen.errors == []
        assert not remote._connection.reconnecting


def test_reconnect_policy_is_checked() -> None:
    with pytest.raises(rxdb.ProgrammingError, match="first_delay"):
        Reconnect(first_delay=0)
    with pytest.raises(rxdb.ProgrammingError, match="negative"):
        Reconnect(call_wait=-1)


# -- keepalive ---------------------------------------------------------------------------------


def keepalive(monkeypatch: pytest.MonkeyPatch, side: str, interval: float, timeout: float) -> None:
    """Give one side (``"client"`` or ``"session"``, the server's) its own keepalive."""
    from rxdb.remote.client import connection
    from rxdb.remote.server import session

    module = connection if side == "client" else session
    monkeypatch.setattr(module, "KEEPALIVE", Keepalive(interval, timeout))


async def test_a_client_gone_silent_is_dropped_and_its_transaction_rolled_back(
    served: tuple[rxdb.Database, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-open connection (the client's host vanished) sends nothing, ever: the server
    gives the client up after the keepalive timeout instead of holding its lock forever."""
    db, server = served
    keepalive(monkeypatch, "client", 3600.0, 3600.0)  # never pings, never gives up itself
    keepalive(monkeypatch, "session", 3600.0, 0.5)
    remote = await server.handle.connect()

    async def wait_inside_a_transaction() -> None:
        async with remote.transaction():
            await remote.execute("INSERT INTO t(x) VALUES (1)")
            async with asyncio.timeout(WAIT):  # the server hangs up on us
                await remote.wait_until(lambda: not remote.connected)
            await remote.execute("INSERT INTO t(x) VALUES (3)")

    try:
        with pytest.raises(ConnectionLostError):
            await wait_inside_a_transaction()
    finally:
        await remote.close()
    await db.execute("INSERT INTO t(x) VALUES (2)")  # the write lock is free again
    assert await db.fetch_all("SELECT x FROM t") == [(2,)]


async def test_a_server_gone_silent_is_given_up(
    served: tuple[rxdb.Database, Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    keepalive(monkeypatch, "client", 0.05, 0.5)
    real = Channel.send

    def send(channel: Channel, message: Message) -> bool:
        if isinstance(message, Pong) and any(s.channel is channel for s in served[1]._sessions):
            return False  # a server that answers no ping
        return real(channel, message)

    monkeypatch.setattr(Channel, "send", send)
    remote = await served[1].handle.connect()
    try:
        async with asyncio.timeout(WAIT):
            await remote.wait_until(lambda: not remote.connected)
        with pytest.raises(ConnectionLostError, match="silent"):
            await remote.fetch_all("SELECT 1")
    finally:
        await remote.close()


# -- the contract, and errors at the entry points ----------------------------------------------


def _conforms(
    remote: RemoteDatabase, session: RemoteReadSession, handle: ServerHandle
) -> tuple[AsyncDatabase, AsyncReadSession, RowsStream, Handle, Transport]:
    """Never called: mypy --strict accepts this module only while each shape conforms."""
    return remote, session, remote.watch(COUNT), handle, hub


async def test_the_remote_shapes_conform_to_the_contract(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    assert isinstance(client, AsyncDatabase)
    assert isinstance(client.watch(COUNT), RowsStream)
    assert isinstance(served[1].handle, Handle)
    async with client.read() as session:
        assert isinstance(session, AsyncReadSession)


async def test_a_handle_connects_a_blocking_database_in_a_thread(
    served: tuple[rxdb.Database, Server],
) -> None:
    handle = served[1].handle

    def in_a_thread() -> list[Any]:
        with handle.connect_sync() as db:
            db.execute("INSERT INTO t(x) VALUES (?)", ["from a thread"])
            with db.transaction():
                db.execute("INSERT INTO t(x) VALUES (?)", ["in a transaction"])
            return [tuple(row) for row in db.fetch_all("SELECT x FROM t ORDER BY id")]

    assert await asyncio.to_thread(in_a_thread) == [("from a thread",), ("in a transaction",)]
    with pytest.raises(rxdb.WrongLoopError):
        handle.connect_sync()  # on this loop's thread: it would block the loop


async def test_bad_arguments_at_the_entry_points_are_programming_errors(
    served: tuple[rxdb.Database, Server], tmp_path: Path
) -> None:
    db, server = served
    malformed: list[tuple[Any, ...]] = [("tcp", "no-port"), ("udp", "/s"), ("unix", "/s", "x")]
    for fields in malformed:
        with pytest.raises(rxdb.ProgrammingError):
            ServerHandle(*fields)
    with pytest.raises(rxdb.ProgrammingError):
        ServerHandle.from_json({"kind": "unix"})
    with pytest.raises(rxdb.ProgrammingError, match="reconnect"):
        await server.handle.connect(reconnect="always")  # type: ignore[arg-type]
    with pytest.raises(rxdb.ProgrammingError, match="server name"):
        names.register("no/slashes", server.handle)
    with pytest.raises(rxdb.ProgrammingError, match="server name"):
        names.lookup("")
    with pytest.raises(rxdb.ProgrammingError, match="hex"):
        await serve(db, token="not hex")
    with pytest.raises(rxdb.ProgrammingError, match="too long"):
        await serve(db, path=str(tmp_path / ("s" * 120)))
    with pytest.raises(rxdb.ProgrammingError, match="async function"):
        await compute_with_database(server, server_worker.not_async)
    with pytest.raises(rxdb.ProgrammingError, match="module:qualname"):
        await compute_with_database(server, "no_colon")
    with pytest.raises(rxdb.ProgrammingError, match="cannot compute with"):
        await compute_with_database(object(), server_worker.insert_and_count)  # type: ignore[arg-type]
    with pytest.raises(rxdb.ProgrammingError, match="cannot be sent"):
        await compute_with_database(server, server_worker.insert_and_count, object())
    with pytest.raises(rxdb.ProgrammingError, match="JSON"):
        await spawn(":memory:", readers=object())
