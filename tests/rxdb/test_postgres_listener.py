"""The PostgreSQL listener (rxdb/engines/postgres/listener.py): one LISTEN connection per
process and database, callbacks on the joining loop, and recovery from every way a
connection dies: a terminated backend, a refused reconnect, a half-open socket (a TCP proxy
of the test's own that stops carrying bytes without closing anything).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from rxdb.engines.postgres import listener
from rxdb.engines.postgres.capture import channel_for, install_capture
from rxdb.errors import OperationalError
from rxdb.updates import TableUpdate, UpdateKind
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.postgres

WAIT = 10.0
ROOT = Path(__file__).resolve().parents[2]
# Checks often and gives up quickly: the half-open socket is found within a second.
FAST = listener.Tuning(
    check_interval=0.1, check_timeout=1.0, backoff_initial=0.01, backoff_max=0.05
)
Change = tuple[frozenset[TableUpdate], str | None, bool]


def insert(table: str) -> TableUpdate:
    return TableUpdate(f"public.{table}", UpdateKind.INSERT)


@dataclass
class Database:
    name: str
    dsn: str
    channel: str
    writer: asyncpg.Connection


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    """A scratch database with three tables, capture installed, and a plain writer."""
    async with scratch_database() as name:
        dsn = f"{SERVER}/{name}"
        writer = await asyncpg.connect(dsn)
        try:
            await writer.execute("CREATE TABLE items (x int); CREATE TABLE tags (x int)")
            await writer.execute("CREATE TABLE notes (x int)")
            await install_capture(writer, channel_for(name))
            yield Database(name, dsn, channel_for(name), writer)
        finally:
            await writer.close()


class Heard:
    """What a member heard; each callback also records the thread it ran on."""

    def __init__(self) -> None:
        self.changes: asyncio.Queue[Change] = asyncio.Queue()
        self.resets: asyncio.Queue[None] = asyncio.Queue()
        self.threads: set[int] = set()

    def change(self, updates: frozenset[TableUpdate], origin: str | None, everything: bool) -> None:
        self.threads.add(threading.get_ident())
        self.changes.put_nowait((updates, origin, everything))

    def reset(self) -> None:
        self.threads.add(threading.get_ident())
        self.resets.put_nowait(None)

    async def until(self, wanted: Callable[[Change], bool]) -> Change:
        """The first change (from now) that ``wanted`` accepts."""
        while not wanted(change := await asyncio.wait_for(self.changes.get(), WAIT)):
            pass
        return change

    async def updates(self, *expected: TableUpdate) -> frozenset[TableUpdate]:
        """Collect changes until ``expected`` all arrived (a commit's notifications may come
        in more than one call); return all that came."""
        seen: set[TableUpdate] = set()
        while not seen.issuperset(expected):
            updates, _, _ = await asyncio.wait_for(self.changes.get(), WAIT)
            seen.update(updates)
        return frozenset(seen)

    async def reset_seen(self) -> None:
        await asyncio.wait_for(self.resets.get(), WAIT)


def listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rxdb-postgres-listener"]


async def join(dsn: str, channel: str, heard: Heard, tuning: listener.Tuning | None = None) -> Any:
    return await listener.join(dsn, channel, heard.change, heard.reset, tuning=tuning)


class TestDelivery:
    async def test_join_delivers_commits_on_the_joining_loop(self, db: Database) -> None:
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard)
        try:
            await db.writer.execute("SELECT set_config('rxdb.origin', 'engine-1', false)")
            await db.writer.execute("INSERT INTO items VALUES (1)")
            assert await heard.until(lambda c: True) == (
                frozenset({insert("items")}),
                "engine-1",
                False,
            )
            assert heard.threads == {threading.get_ident()}
        finally:
            await membership.leave()

    async def test_a_commit_of_several_tables_reaches_the_member(self, db: Database) -> None:
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard)
        try:
            await db.writer.execute(
                "INSERT INTO items VALUES (1); INSERT INTO tags VALUES (1);"
                " INSERT INTO notes VALUES (1)"
            )
            expected = {insert("items"), insert("tags"), insert("notes")}
            assert await heard.updates(*expected) == expected
        finally:
            await membership.leave()

    async def test_a_malformed_notification_means_everything(self, db: Database) -> None:
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard)
        try:
            await db.writer.execute("SELECT pg_notify($1, 'not rxdb')", db.channel)
            assert await heard.until(lambda c: True) == (frozenset(), None, True)
            assert membership.statistics().malformed == 1
        finally:
            await membership.leave()

    async def test_a_schema_change_means_everything(self, db: Database) -> None:
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard)
        try:
            await db.writer.execute("ALTER TABLE notes RENAME TO memos")
            assert await heard.until(lambda c: True) == (frozenset(), None, True)
        finally:
            await membership.leave()


class TestSharing:
    async def test_joins_of_one_database_share_one_connection(self, db: Database) -> None:
        first, second = Heard(), Heard()
        one = await join(db.dsn, db.channel, first)
        two = await join(db.dsn, db.channel, second)
        try:
            assert one.statistics() == two.statistics()
            assert one.statistics().connects == 1
            count = await db.writer.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = $1 AND application_name = 'rxdb listener'",
                db.name,
            )
            assert count == 1
            await db.writer.execute("INSERT INTO items VALUES (1)")
            assert await first.updates(insert("items"))
            assert await second.updates(insert("items"))
            await one.leave()
            await one.leave()  # idempotent
            await db.writer.execute("INSERT INTO tags VALUES (1)")
            assert await second.updates(insert("tags"))
            assert first.changes.empty()
        finally:
            await one.leave()
            await two.leave()
        assert two.left
        assert listener_threads() == []

    async def test_each_member_hears_on_its_own_loop(self, db: Database) -> None:
        joined, done = threading.Event(), threading.Event()
        heard_there: list[Change] = []
        there: list[int] = []

        async def elsewhere() -> None:
            heard = Heard()
            membership = await join(db.dsn, db.channel, heard)
            joined.set()
            try:
                heard_there.append(await heard.until(lambda c: True))
                there.extend(heard.threads)
            finally:
                await membership.leave()
                done.set()

        here = Heard()
        membership = await join(db.dsn, db.channel, here)
        thread = threading.Thread(target=asyncio.run, args=(elsewhere(),))
        thread.start()
        try:
            assert await asyncio.to_thread(joined.wait, WAIT)
            await db.writer.execute("INSERT INTO items VALUES (1)")
            assert await here.updates(insert("items"))
            assert await asyncio.to_thread(done.wait, WAIT)
            assert heard_there == [(frozenset({insert("items")}), None, False)]
            assert there == [thread.ident]
            assert here.threads == {threading.get_ident()}
        finally:
            await asyncio.to_thread(thread.join, WAIT)
            await membership.leave()

    async def test_join_fails_clearly_when_the_server_cannot_be_reached(self, db: Database) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again at once: nobody listens there
        nowhere = f"postgresql://postgres@127.0.0.1:{port}/{db.name}"
        with pytest.raises(OperationalError, match="cannot listen"):
            await join(nowhere, db.channel, Heard())
        assert listener_threads() == []
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard)
        await membership.leave()

    async def test_listeners_in_two_processes_both_hear_a_third_connection(
        self, db: Database
    ) -> None:
        workers = [await Worker.start(db.dsn, db.channel) for _ in range(2)]
        try:
            pids = {(await worker.event("ready"))["pid"] for worker in workers}
            assert len(pids) == 2  # one connection each
            await db.writer.execute("INSERT INTO items VALUES (1)")
            for worker in workers:
                assert (await worker.event("change"))["tables"] == ["public.items:insert"]
        finally:
            for worker in workers:
                await worker.stop()


class Worker:
    """tests/rxdb/postgres_worker.py in a child process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, dsn: str, channel: str) -> Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.rxdb.postgres_worker",
            dsn,
            channel,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        return cls(process)

    async def event(self, name: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
            assert line, "the worker exited"
            event: dict[str, Any] = json.loads(line)
            if event["event"] == name:
                return event

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), WAIT)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode == 0


class Proxy:
    """A TCP proxy to the server. ``stall()`` stops the connections it carries now: bytes
    stop flowing both ways and neither end sees a close (a half-open socket, as a dead NAT
    entry or a pulled cable leaves it). While ``refusing`` is set, new connections are
    closed at once."""

    def __init__(self) -> None:
        self.refusing = False
        self.refused = 0
        self.refused_twice = asyncio.Event()
        self._gates: list[asyncio.Event] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def stall(self) -> None:
        for gate in self._gates:
            gate.clear()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.append(client_w)
        if self.refusing:
            self.refused += 1
            if self.refused >= 2:
                self.refused_twice.set()
            client_w.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 5432)
        self._writers.append(server_w)
        gate = asyncio.Event()
        gate.set()
        self._gates.append(gate)
        await asyncio.gather(
            self._pump(client_r, server_w, gate), self._pump(server_r, client_w, gate)
        )

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                await gate.wait()
                writer.write(data)
                await writer.drain()
        await gate.wait()  # a stalled connection does not pass its close on either
        writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    proxying = Proxy()
    await proxying.start()
    yield proxying
    await proxying.close()


def through(proxy: Proxy, db: Database) -> str:
    assert proxy._server is not None
    port = proxy._server.sockets[0].getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/{db.name}"


class TestRecovery:
    async def test_a_terminated_backend_is_replaced_and_everyone_reset(self, db: Database) -> None:
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard)
        try:
            before = membership.statistics()
            await db.writer.execute("SELECT pg_terminate_backend($1)", before.backend_pid)
            await heard.reset_seen()
            after = membership.statistics()
            assert after.connects == 2
            assert after.backend_pid not in (None, before.backend_pid)
            await db.writer.execute("INSERT INTO items VALUES (1)")
            assert await heard.updates(insert("items"))
        finally:
            await membership.leave()

    async def test_reconnects_with_backoff_while_the_server_refuses(
        self, db: Database, proxy: Proxy
    ) -> None:
        heard = Heard()
        membership = await join(through(proxy, db), db.channel, heard, FAST)
        try:
            proxy.refusing = True
            await db.writer.execute(
                "SELECT pg_terminate_backend($1)", membership.statistics().backend_pid
            )
            await asyncio.wait_for(proxy.refused_twice.wait(), WAIT)
            assert heard.resets.empty()
            assert not membership.statistics().connected
            proxy.refusing = False
            await heard.reset_seen()
            await db.writer.execute("INSERT INTO items VALUES (1)")
            assert await heard.updates(insert("items"))
        finally:
            await membership.leave()

    async def test_a_half_open_socket_is_found_by_the_periodic_check(
        self, db: Database, proxy: Proxy
    ) -> None:
        heard = Heard()
        membership = await join(through(proxy, db), db.channel, heard, FAST)
        try:
            stale = membership.statistics().backend_pid
            proxy.stall()
            await heard.reset_seen()
            assert membership.statistics().backend_pid != stale
            # The stale backend, still LISTENing on the server, was terminated.
            left = await db.writer.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", stale
            )
            assert left == 0
            await db.writer.execute("INSERT INTO items VALUES (1)")
            assert await heard.updates(insert("items"))
        finally:
            await membership.leave()

    async def test_others_ddl_is_seen_without_the_event_trigger(self, db: Database) -> None:
        await db.writer.execute("ALTER EVENT TRIGGER rxdb_capture_ddl DISABLE")
        heard = Heard()
        membership = await join(db.dsn, db.channel, heard, FAST)
        try:
            await db.writer.execute("CREATE TABLE fresh (x int)")
            assert await heard.until(lambda c: c[2]) == (frozenset(), None, True)
            assert membership.statistics().schema_changes == 1
            # The listener gave the new table its trigger before it said "everything".
            await db.writer.execute("INSERT INTO fresh VALUES (1)")
            assert await heard.updates(insert("fresh"))
        finally:
            await membership.leave()
