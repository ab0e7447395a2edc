"""Server mode: a database served to clients over the rxdb protocol, in-process and across
real processes (spawned servers, killed clients, raw sockets sending garbage)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.remote import names
from rxdb.remote.client import ConnectionLostError, RemoteDatabase, ServerRefusedError
from rxdb.remote.compute import compute_with_database
from rxdb.remote.frames import encode_frame
from rxdb.remote.server import Server, ServerHandle, serve
from rxdb.remote.spawn import spawn
from rxdb.updates import TableUpdate, UpdateKind
from tests.conftest import WAIT, Recorder
from tests.rxdb import server_worker

COUNT = "SELECT count(*) FROM t"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[rxdb.Database, Server]]:
    async with rxdb.open(":memory:") as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x UNIQUE)")
        server = await serve(db)
        try:
            yield db, server
        finally:
            await server.shutdown_all()


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


async def test_transactions_commit_roll_back_and_nest(
    served: tuple[rxdb.Database, Server], client: RemoteDatabase
) -> None:
    db, _ = served
    async with client.transaction():
        await client.execute("INSERT INTO t(x) VALUES (1)")
        assert await client.fetch_all(COUNT) == [(1,)]  # sees its own write
        with pytest.raises(ValueError):
            async with client.transaction():  # a savepoint: only it is undone
                await client.execute("INSERT INTO t(x) VALUES (2)")
                raise ValueError
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (3)")
    assert await db.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (3,)]

    with pytest.raises(KeyError):
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (4)")
            raise KeyError
    assert await db.fetch_all("SELECT x FROM t ORDER BY x") == [(1,), (3,)]

    # a failed statement inside keeps the block usable until the caller decides
    with pytest.raises(rxdb.IntegrityError):
        async with client.transaction():
            await client.execute("INSERT INTO t(x) VALUES (5)")
            await client.execute("INSERT INTO t(x) VALUES (1)")
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
    writer = db._engine._writer
    assert writer is not None
    assert writer.lock.locked()
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
    with pytest.raises(rxdb.ClosedError):
        async with remote.transaction():
            await remote.execute("INSERT INTO t(x) VALUES (1)")
            await remote.close()
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
    from rxdb.remote.messages import Request, encode_message

    unauthenticated.sendall(
        encode_frame(encode_message(Request(1, "fetch_all", [COUNT, [], None])))
    )
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
    assert seen.errors == [] and not seen.completed


async def test_tcp_requires_the_right_token_on_loopback() -> None:
    async with rxdb.open(":memory:") as db:
        with pytest.raises(ValueError, match="non-loopback"):
            await serve(db, host="0.0.0.0")
        server = await serve(db, host="127.0.0.1")
        try:
            handle = server.handle
            assert handle.kind == "tcp" and handle.token
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
    assert not os.path.exists(server.handle.address)
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
    async with await spawn(server_worker.make_memory_database) as server:
        async with await server.handle.connect() as remote:
            seen: Recorder[Any] = Recorder()
            remote.watch(COUNT).subscribe(seen)
            await seen.wait_value([(0,)])
            result = await compute_with_database(server, server_worker.insert_and_count, 10, 3)
            assert result["total"] == 3 and result["blob"] == b"\x00\xff"
            assert result["last"] == (12,) and result["last"]["x"] == 12
            await seen.wait_value([(3,)])
    with pytest.raises(TypeError, match="module-level"):
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

        with pytest.raises(TypeError, match="module-level"):
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
            with pytest.raises(FileExistsError):
                names.register(name, server.handle, pid=os.getppid())
        finally:
            await server.shutdown_all()
        with pytest.raises(names.NameNotFoundError):
            names.lookup(name)
        # a stale entry (dead process) is ignored and removed
        dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await dead.wait()
        names.register(name, server.handle, pid=dead.pid)
        with pytest.raises(LookupError, match="gone"):
            names.lookup(name)
        with pytest.raises(names.NameNotFoundError, match="no rxdb server"):
            names.lookup(name)
