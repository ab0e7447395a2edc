"""Re-runs on receipt (rxdb.engines.sqlite.receipt): a cheap watch re-runs on the thread that
publishes another connection's commit, and its rows reach the loop in one wake-up.

Another process's commits arrive on the hub thread; a second database on the same file in
this process publishes its commits on its own writer's thread, which is the same road
(another origin, another thread) without a second process. Most tests make every known
cost fit the budget (``generous``) so that the road a re-run takes does not depend on how
fast this machine ran the watch's first run.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.bus import Bus
from rxdb.engines.sqlite import receipt
from rxdb.engines.sqlite.readers import ReadCosts
from rxdb.engines.sqlite.receipt import ReceiptReads
from rxdb.rows import Rows
from rxdb.updates import NotifyTablesUpdated, TableUpdate
from tests.conftest import WAIT, settle, sqlite_engine
from tests.rxdb.test_eager_reruns import cost, reader_runs, watching
from tests.rxdb.test_processes import WRITER, run_script
from tests.rxdb.test_watch import COUNT, make_t


@pytest.fixture
def generous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receipt, "BUDGET", 10.0)


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[rxdb.Database]:
    """A file database that hears other connections' commits only on the bus (no poller)."""
    async with rxdb.open(db_path, foreign_poll=None) as database:
        yield database


@pytest.fixture
async def other(db_path: Path, db: rxdb.Database) -> AsyncIterator[rxdb.Database]:
    """A second database on ``db``'s file: its commits reach ``db``'s watches from its own
    writer's thread, under its own origin."""
    async with rxdb.open(db_path, foreign_poll=None) as database:
        yield database


class TestThePublishingThreadRunsCheapWatches:
    async def test_a_cheap_watch_has_emitted_when_the_other_write_returns(
        self,
        db: rxdb.Database,
        other: rxdb.Database,
        generous: None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await make_t(db)
        async with watching(db) as (stream, rec):
            batches = reader_runs(db, monkeypatch)
            await other.execute("INSERT INTO t(x) VALUES (1)")
            # Read on the other writer's thread, sent to this loop before that write's result.
            assert rec.values[-1] == [(1,)]
            await settle(db)
            assert batches == []
            assert stream.statistics().runs == 2

    async def test_another_process_commit_is_read_on_the_hub_thread(
        self,
        db_path: Path,
        db: rxdb.Database,
        generous: None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        async with watching(db, "SELECT x FROM t") as (_, rec):
            batches = reader_runs(db, monkeypatch)
            await run_script(WRITER, str(db_path))  # polling off: only the hub carries it
            await rec.wait_value([(42,)])
            await settle(db)
            assert batches == []

    async def test_a_watch_whose_last_run_was_slow_reruns_on_a_reader(
        self, db: rxdb.Database, other: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            cost(db, COUNT, 2 * receipt.BUDGET)
            batches = reader_runs(db, monkeypatch)
            await other.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert batches == [[COUNT]]

    async def test_one_message_pays_for_no_more_than_the_budget(
        self, db: rxdb.Database, other: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        second = "SELECT max(x) FROM t"
        async with watching(db) as (_, rec), watching(db, second) as (_, rec_second):
            for sql in (COUNT, second):  # each fits the budget, both together do not
                cost(db, sql, 0.6 * receipt.BUDGET)
            batches = reader_runs(db, monkeypatch)
            await other.execute("INSERT INTO t(x) VALUES (7)")
            await rec.wait_value([(1,)])
            await rec_second.wait_value([(7,)])
            assert len(batches) == 1
            assert len(batches[0]) == 1

    async def test_own_commits_are_left_to_the_writer(
        self, db: rxdb.Database, other: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            # Too dear for the writer's eager re-run, cheap enough for a re-run on receipt.
            cost(db, COUNT, 0.5 * receipt.BUDGET)
            batches = reader_runs(db, monkeypatch)
            await db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert batches == [[COUNT]]

    async def test_the_loop_never_reads(
        self, db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            batches = reader_runs(db, monkeypatch)
            engine = sqlite_engine(db)
            # Another origin's message, published on the watch's own loop: a reader runs it.
            touched = frozenset({TableUpdate("t")})
            engine.bus.publish(NotifyTablesUpdated(engine.key, "elsewhere", 1, touched))
            await settle(db)
            assert batches == [[COUNT]]
            assert rec.values == [[(0,)]]

    async def test_a_schema_change_is_analysed_again(
        self, db: rxdb.Database, other: rxdb.Database, generous: None
    ) -> None:
        await make_t(db)
        await db.execute("CREATE TABLE u(z)")
        await db.execute("CREATE VIEW v AS SELECT x FROM t")
        async with watching(db, "SELECT count(*) FROM v") as (_, rec):
            await other.execute("INSERT INTO u VALUES (1)")
            # One commit, whose message says "anything may have changed".
            async with other.transaction():
                await other.execute("DROP VIEW v")
                await other.execute("CREATE VIEW v AS SELECT z FROM u")
            await rec.wait_value([(1,)])
            await settle(db)
            # Heard only if the watch now reads u: the view's new table.
            await other.execute("INSERT INTO u VALUES (2)")
            await rec.wait_value([(2,)])

    async def test_closing_the_database_closes_the_connection(
        self, db_path: Path, other: rxdb.Database, generous: None
    ) -> None:
        async with rxdb.open(db_path, foreign_poll=None) as db:
            await make_t(db)
            async with watching(db) as (_, rec):
                await other.execute("INSERT INTO t(x) VALUES (1)")
                await rec.wait_value([(1,)])
            receipts = sqlite_engine(db).receipts
            assert receipts is not None
        await other.execute("INSERT INTO t(x) VALUES (2)")  # no watch left to re-run
        assert receipts._connection is None


class TestOrder:
    async def test_rows_read_before_another_message_are_not_taken(self, db_path: Path) -> None:
        """A message that goes the usual way after the rows were read may bring a run of a
        later state that lands first: the rows are dropped for a run of the watch's own."""
        async with rxdb.open(db_path) as db:
            await make_t(db)
        loop = asyncio.get_running_loop()
        bus = Bus()
        costs = ReadCosts()
        costs.record(COUNT, time.perf_counter())
        receipts = ReceiptReads(str(db_path), "here", costs)
        notified: list[NotifyTablesUpdated] = []
        fresh: list[Rows | None] = []
        done = asyncio.Event()

        def take(rows: Rows | None) -> None:
            fresh.append(rows)

        def hear(message: NotifyTablesUpdated) -> None:
            notified.append(message)
            done.set()

        sub = bus.subscribe("key", hear, tables=frozenset({"t"}), loop=loop)
        receipts.adopt(sub, COUNT, (), take)
        touched = frozenset({TableUpdate("t")})
        try:

            def publish_both() -> None:
                bus.publish(NotifyTablesUpdated("key", "there", 1, touched))  # read here
                bus.publish(NotifyTablesUpdated("key", "there", 2, everything=True))

            # Published by another thread while this loop waits: it runs the deliveries after.
            publisher = threading.Thread(target=publish_both)
            publisher.start()
            publisher.join(WAIT)
            await asyncio.wait_for(done.wait(), WAIT)
            assert fresh == [None]  # read, then dropped
            assert [m.sequence for m in notified] == [2]
        finally:
            sub.close()
            receipts.close()

    async def test_successive_messages_land_in_order(
        self, db: rxdb.Database, other: rxdb.Database, generous: None
    ) -> None:
        await make_t(db)
        async with watching(db) as (_, rec):
            for n in range(1, 6):
                await other.execute("INSERT INTO t(x) VALUES (?)", (n,))
            await rec.wait_value([(5,)])
            counts: list[Any] = [value[0][0] for value in rec.values]
            assert counts == sorted(counts)
