"""What one client connection may hold on a server, and what one bad request may break:
over a limit, or malformed, a request fails alone and its connection carries on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rxdb
from rxdb.remote.server import Server, serve
from rxdb.remote.wire.errors import error_from_wire
from rxdb.remote.wire.messages import PROTOCOL_VERSION, Failure, Response
from tests.conftest import WAIT, Recorder
from tests.rxdb.raw_peer import RawPeer, raw_peer

# The start of a msgpack array of 4 (3) whose first item is this side's protocol version.
V4 = bytes((0x94, PROTOCOL_VERSION))
V3 = bytes((0x93, PROTOCOL_VERSION))

COUNT = "SELECT count(*) FROM t"


@pytest.fixture
async def db() -> AsyncIterator[rxdb.Database]:
    async with rxdb.open(":memory:") as database:
        await database.execute("CREATE TABLE t(x)")
        yield database


async def _serve(db: rxdb.Database, **limits: Any) -> Server:
    return await serve(db, **limits)


def _failed_with(answer: Response | Failure, cls: type[Exception], match: str) -> None:
    assert isinstance(answer, Failure), answer
    error = error_from_wire(answer.error)
    assert type(error) is cls, error
    assert match in str(error), error


@pytest.mark.parametrize("name", ["max_subscriptions", "max_requests"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10", None])
async def test_limits_are_positive_ints(db: rxdb.Database, name: str, value: Any) -> None:
    with pytest.raises(rxdb.ProgrammingError, match=name):
        await serve(db, **{name: value})


async def test_subscriptions_over_the_limit_fail_alone(db: rxdb.Database) -> None:
    async with await _serve(db, max_subscriptions=3) as server:
        remote = await server.handle.connect()
        try:
            watches = [Recorder[Any]() for _ in range(3)]
            subscriptions = [remote.watch(COUNT).subscribe(w) for w in watches[:2]]
            subscriptions.append(remote.table_updates().subscribe(watches[2]))
            for watch in watches[:2]:
                await watch.wait_count(1)
            session = next(iter(server._sessions))
            async with asyncio.timeout(WAIT):
                await server.wait_until(lambda: len(session.subscriptions) == 3)

            over = Recorder[Any]()
            remote.watch(COUNT).subscribe(over)
            await over.wait_for(lambda r: bool(r.errors))
            assert isinstance(over.errors[0], rxdb.LimitError)
            assert "max_subscriptions" in str(over.errors[0])

            # the connection carries on: the open watches still refresh
            await remote.execute("INSERT INTO t VALUES (1)")
            for watch in watches[:2]:
                await watch.wait_value([(1,)])
            # and ending one makes room for another
            subscriptions[0].dispose()
            again = Recorder[Any]()
            remote.watch(COUNT).subscribe(again)
            await again.wait_value([(1,)])
            assert again.errors == []
        finally:
            await remote.close()


@asynccontextmanager
async def writer_held(db: rxdb.Database) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Hold ``db``'s writer in another task's transaction; the function it gives (or the
    end of the block) lets go and waits for that task."""
    locked, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.transaction():
            locked.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await locked.wait()

    async def let_go() -> None:
        release.set()
        await holder

    try:
        yield let_go
    finally:
        await let_go()


async def test_requests_over_the_limit_fail_alone(db: rxdb.Database) -> None:
    async with await _serve(db, max_requests=2) as server, AsyncExitStack() as stack:
        remote = await server.handle.connect()
        try:
            let_go = await stack.enter_async_context(writer_held(db))
            writes = [
                asyncio.create_task(remote.execute("INSERT INTO t VALUES (?)", (i,)))
                for i in range(2)
            ]
            session = next(iter(server._sessions))
            async with asyncio.timeout(WAIT):
                await server.wait_until(lambda: len(session.tasks) == 2)

            with pytest.raises(rxdb.LimitError, match="max_requests"):
                await remote.fetch_all(COUNT)
            # what frees a client is still taken at the limit
            await remote.interrupt()

            await let_go()
            results = await asyncio.gather(*writes, return_exceptions=True)
            assert all(isinstance(r, rxdb.ExecuteResult | rxdb.InterruptError) for r in results), (
                results
            )
            assert await remote.fetch_all("SELECT 1") == [(1,)]
        finally:
            await remote.close()


async def test_pipelined_requests_over_the_limit_are_failed_not_queued(
    db: rxdb.Database,
) -> None:
    """A peer that pipelines requests without reading gets failures past the limit, and the
    server never runs more than the limit at once."""
    async with (
        await _serve(db, max_requests=5) as server,
        raw_peer(server.handle.address) as peer,
        AsyncExitStack() as stack,
    ):
        peer.hello()
        assert (await peer.receive()) is not None  # welcome
        let_go = await stack.enter_async_context(writer_held(db))
        for request_id in range(1, 101):
            peer.request(request_id, ["execute", "INSERT INTO t VALUES (1)", [], None])
        failures: list[Failure] = []
        async with asyncio.timeout(WAIT):
            while len(failures) < 95:
                answer = await peer.answer()
                assert isinstance(answer, Failure)
                failures.append(answer)
        for failure in failures:
            _failed_with(failure, rxdb.LimitError, "max_requests")
        session = next(iter(server._sessions))
        assert len(session.tasks) == 5
        await let_go()
        answers = [await peer.answer() for _ in range(5)]
        assert all(isinstance(a, Response) for a in answers)
        assert await db.fetch_one(COUNT) == (5,)


@pytest.mark.parametrize(
    "operation",
    [
        ["execute", "SELECT ?", [2**63], None],  # an integer over SQLite's 64 bits
        ["execute", "SELECT ?", [2**64 - 1], None],
        ["execute", "SELECT :a", {"a": 2**63}, None],
        ["execute_many", "SELECT ?", [[1], [2**63]], None],
        ["fetch_all", "SELECT 1", [], 2**63],  # a block id over 64 bits
        ["watch", 2**63, "SELECT 1", [], True, False, False],
        ["backup", "/tmp/x.db", 2**63, None, None],
        ["read", "yes", None],  # isolated is not a bool
        ["read", True],  # a field missing
        ["interrupt", 1],  # a field too many
        ["backup", 7, 1, None, None],  # the target is not text
        ["backup", "/tmp/x.db", True, None, None],  # pages_per_step a bool
        ["backup", "/tmp/x.db", 2**40, None, None],  # not a C int
        ["execute", "SELECT ?", [[1]], None],  # a parameter that is not a SQL value
        ["execute", "SELECT :a", {1: 2}, None],  # a map key that is not text
        ["teleport"],
        "execute",
    ],
    ids=repr,
)
async def test_a_malformed_request_fails_alone(db: rxdb.Database, operation: Any) -> None:
    async with await _serve(db) as server:
        remote = await server.handle.connect()
        watch = Recorder[Any]()
        remote.watch(COUNT).subscribe(watch)
        await watch.wait_count(1)
        try:
            async with raw_peer(server.handle.address) as peer:
                await _malformed_then_well_formed(peer, operation)
            await remote.execute("INSERT INTO t VALUES (1)")
            await watch.wait_value([(1,)])  # another client never noticed
            assert watch.errors == []
        finally:
            await remote.close()


async def _malformed_then_well_formed(peer: RawPeer, operation: Any) -> None:
    peer.hello()
    assert (await peer.receive()) is not None  # welcome
    peer.request(1, operation)
    answer = await peer.answer()
    assert answer.id == 1
    _failed_with(answer, rxdb.ProgrammingError, "malformed request")
    peer.request(2, ["fetch_all", "SELECT 1", [], None])
    answer = await peer.answer()
    assert isinstance(answer, Response)
    assert answer.id == 2
    assert answer.result == [(1,)]


@pytest.mark.parametrize(
    "payload",
    [
        # text that is not UTF-8, as the SQL
        V4 + b"\xa7request\x01\x94\xa7execute\xa1\xff\x90\xc0",
        # an extension value (a row) whose body is not an array
        V4 + b"\xa7request\x01\x94\xa7execute\xa1x\x91\xd4\x01\x01\xc0",
        # an extension code nobody knows
        V4 + b"\xa7request\x01\x94\xa7execute\xa1x\x91\xd4\x63\x01\xc0",
    ],
    ids=["not-utf8", "bad-row", "unknown-ext"],
)
async def test_values_msgpack_refuses_fail_only_their_request(
    db: rxdb.Database, payload: bytes
) -> None:
    async with await _serve(db) as server, raw_peer(server.handle.address) as peer:
        peer.hello()
        assert (await peer.receive()) is not None
        peer.send_payload(payload)
        answer = await peer.answer()
        assert answer.id == 1
        _failed_with(answer, rxdb.ProgrammingError, "malformed request")
        peer.request(2, ["fetch_one", "SELECT 2", [], None])
        answer = await peer.answer()
        assert isinstance(answer, Response)
        assert answer.result == (2,)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1\xc1",  # not msgpack
        V4 + b"\xa7request\xcf\x80\x00\x00\x00\x00\x00\x00\x00\x90",  # an id over 63 bits
        V3 + b"\xa7request\x01",  # no operation at all
    ],
    ids=["garbage", "id-over-63-bits", "no-operation"],
)
async def test_a_request_without_a_usable_id_still_closes_its_connection(
    db: rxdb.Database, payload: bytes
) -> None:
    """Nothing could answer it: the peer is out of step and is let go."""
    async with await _serve(db) as server, raw_peer(server.handle.address) as peer:
        peer.hello()
        assert (await peer.receive()) is not None
        peer.send_payload(payload)
        await peer.wait_closed_by_peer()


async def test_a_database_whose_name_is_not_utf8_is_served(tmp_path: Path) -> None:
    """Before: its path could not be sent in the handshake, so every client was refused."""
    path = os.path.join(tmp_path, os.fsdecode(b"caf\xe9.db"))  # Latin-1, not UTF-8
    async with rxdb.open(path) as db, await serve(db) as server:
        remote = await server.handle.connect()
        try:
            assert await remote.fetch_all("SELECT 1") == [(1,)]
            assert remote.path == path.encode("utf-8", "backslashreplace").decode()
        finally:
            await remote.close()


_TEXT = st.text(max_size=12) | st.sampled_from(
    [COUNT, "SELECT ?", "SELECT :a", "INSERT INTO t VALUES (?)", "BEGIN", "", ";", "SELECT"]
)
_SCALAR = (
    st.none()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=4)
)
_PARAMS = st.lists(_SCALAR, max_size=3) | st.dictionaries(st.text(max_size=2), _SCALAR, max_size=2)
_ID = st.integers(0, 4) | st.integers(0, 2**64 - 1)
_BLOCK = st.none() | _ID
_REQUESTS = st.one_of(
    st.tuples(st.sampled_from(["execute", "fetch_all", "fetch_one"]), _TEXT, _PARAMS, _BLOCK),
    st.tuples(st.just("execute_many"), _TEXT, st.lists(_PARAMS, max_size=3), _BLOCK),
    st.tuples(st.just("execute_script"), _TEXT, _BLOCK),
    st.tuples(st.just("watch"), _ID, _TEXT, _PARAMS, st.booleans() | st.none()),
    st.tuples(
        st.just("table_updates"),
        _ID,
        st.none() | st.lists(st.text(max_size=3), max_size=2),
        st.none() | st.lists(st.sampled_from(["insert", "update", "delete", "x"]), max_size=2),
    ),
    st.tuples(st.just("unsubscribe"), _ID),
    st.tuples(st.just("end"), _ID, st.booleans()),
    st.tuples(st.just("notify_updates"), st.lists(st.tuples(st.text(max_size=3), st.none()))),
    st.tuples(st.just("interrupt")),
).map(list)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(_REQUESTS, min_size=1, max_size=4))
def test_any_request_is_answered_with_a_result_or_an_rxdb_error(requests: list[Any]) -> None:
    """Whatever a raw peer asks, each request is answered -- by a result, or by a failure
    that is an rxdb error by class, never a raw exception of the server's -- and the
    connection carries on. (Not asked: backups
    and computes, which touch the file system, and blocks, in which a later request rightly
    waits for the lock the block holds.)"""

    async def exchange() -> None:
        async with rxdb.open(":memory:") as db:
            await db.execute("CREATE TABLE t(x)")
            async with await serve(db) as server, raw_peer(server.handle.address) as peer:
                peer.hello()
                assert (await peer.receive()) is not None
                for request_id, operation in enumerate(requests, 1):
                    peer.request(request_id, operation)
                answered: set[int] = set()
                async with asyncio.timeout(WAIT):
                    while len(answered) < len(requests):
                        message = await peer.receive()
                        assert message is not None, "the server closed the connection"
                        if isinstance(message, Failure):
                            assert message.error.error_type != "RemoteError"
                            assert isinstance(error_from_wire(message.error), rxdb.RxdbError)
                            assert "." not in message.error.error_type, message.error
                        if isinstance(message, Response | Failure):
                            answered.add(message.id)
                peer.request(99, ["fetch_one", "SELECT 7", [], None])
                async with asyncio.timeout(WAIT):
                    while not isinstance(message := await peer.receive(), Response):
                        assert message is not None
                assert message.result == (7,)

    asyncio.run(exchange())
