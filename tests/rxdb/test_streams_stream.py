"""rxdb.streams.stream: streams that stay streams (``async for``, ``statistics()``) through
``pipe``, ``throttle``, ``diffs`` and ``row_type``, with one conversion per result."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import reactivex
from reactivex import operators as ops
from reactivex.scheduler.eventloop import AsyncIOScheduler

import rxdb
from tests.conftest import Recorder, subscribed


async def test_rows_are_converted_once_per_result_for_every_subscriber(
    memdb: rxdb.Database,
) -> None:
    await memdb.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x INTEGER)")
    await memdb.execute("INSERT INTO t(x) VALUES (1), (2)")
    made: list[dict[str, Any]] = []

    def make(**columns: Any) -> dict[str, Any]:
        made.append(columns)
        return columns

    stream = memdb.watch("SELECT id, x FROM t ORDER BY id", row_type=make)
    plain = memdb.watch("SELECT id, x FROM t ORDER BY id")
    first: Recorder[Any] = Recorder()
    second: Recorder[Any] = Recorder()
    rows: Recorder[Any] = Recorder()
    with subscribed(stream, first), subscribed(plain, rows):
        await first.wait_count(1)
        with subscribed(stream, second):  # a late subscriber: the latest, not a new run
            await second.wait_count(1)
            assert len(made) == 2
            assert second.values[0] is first.values[0]
            await memdb.execute("INSERT INTO t(x) VALUES (3)")
            await first.wait_count(2)
            await second.wait_count(2)
            await rows.wait_count(2)
            assert len(made) == 5  # 2 rows, then 3: once each, not once per subscriber
            # Converting did not split the shared execution: one query, three subscribers.
            assert len(memdb._watches.queries) == 1
            assert plain.statistics().subscribers == 2  # the stream's one, and plain's
            assert stream.statistics() == plain.statistics()
    assert stream.statistics().subscribers == 0


async def test_a_piped_stream_is_iterable_and_reports_the_watch(memdb: rxdb.Database) -> None:
    def first(rows: list[rxdb.Row]) -> int:
        return int(rows[0][0])

    stream = memdb.watch("SELECT 2").pipe(ops.map(first), ops.map(str))
    async for value in stream:
        assert value == "2"
        assert stream.statistics().subscribers == 1
        break
    assert stream.statistics().subscribers == 0


async def test_debounce_with_the_loops_scheduler_delivers_on_the_loop(
    memdb: rxdb.Database,
) -> None:
    await memdb.execute("CREATE TABLE t(x INTEGER)")
    loop = asyncio.get_running_loop()
    threads: list[int] = []
    stream = memdb.watch_value("SELECT count(*) FROM t").pipe(
        ops.debounce(0.01, scheduler=AsyncIOScheduler(loop)),
        ops.do_action(lambda _: threads.append(threading.get_ident())),
    )
    seen: Recorder[Any] = Recorder()
    with subscribed(stream, seen):
        await seen.wait_value(0)
        await memdb.execute("INSERT INTO t(x) VALUES (1)")
        await seen.wait_value(1)
    assert set(threads) == {threading.get_ident()}


async def test_a_failing_subscriber_does_not_stop_the_others(memdb: rxdb.Database) -> None:
    stream = memdb.watch("SELECT 1 AS id", row_type=dict)
    seen: Recorder[Any] = Recorder()

    def fail(_: Any) -> None:
        raise RuntimeError("a subscriber's bug")

    with subscribed(stream, reactivex.Observer(fail)), subscribed(stream, seen):
        await seen.wait_value([{"id": 1}])


def test_blocking_streams_iterate_and_keep_diffs_and_pipe(tmp_path: Path) -> None:
    with rxdb.open_sync(tmp_path / "sync.db") as db:
        db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x INTEGER)")
        db.execute("INSERT INTO t(x) VALUES (1)")
        assert db.fetch_value("SELECT count(*) FROM t") == 1
        assert db.fetch_all("SELECT id, x FROM t", row_type=dict) == [{"id": 1, "x": 1}]
        diffs = db.watch("SELECT id, x FROM t", throttle=0.01).diffs()
        for diff in diffs:
            assert diff.inserted == ((1, 1),)
            break
        for value in db.watch_value("SELECT max(x) FROM t"):
            assert value == 1
            break
        for doubled in db.watch("SELECT x FROM t").pipe(ops.map(lambda rows: rows[0].x * 2)):
            assert doubled == 2
            break
        for row in db.watch_one("SELECT x FROM t WHERE x > 5"):
            assert row is None
            break
        assert diffs.statistics().subscribers == 0


async def test_states_are_the_watchs_through_row_type_and_throttle(memdb: rxdb.Database) -> None:
    stream = memdb.watch("SELECT 1 AS id", row_type=dict, throttle=0.01)
    states: Recorder[Any] = Recorder()
    results: Recorder[Any] = Recorder()
    with subscribed(stream.states(), states), subscribed(stream, results):
        await states.wait_for(lambda r: bool(r.values) and r.values[-1].phase == "live")
        await results.wait_count(1)
    assert states.values[-1].value == [{"id": 1}]  # as the row_type, as the results are
    assert states.values[-1].value is results.values[-1]  # converted once, not again
    assert stream.statistics().subscribers == 0


async def test_a_big_result_is_converted_off_the_loop_and_delivered_on_it(
    memdb: rxdb.Database,
) -> None:
    count = 10_000  # OFF_LOOP_ROWS
    sql = f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {count})"
    sql += " SELECT x FROM c"
    threads: set[int] = set()

    def make(*, x: int) -> int:
        threads.add(threading.get_ident())
        return x

    loop_thread = threading.get_ident()
    fetched = await memdb.fetch_all(sql, row_type=make)
    assert fetched[-1] == count
    assert threads
    assert loop_thread not in threads
    threads.clear()
    delivered: list[int] = []
    async for values in memdb.watch(sql, row_type=make):
        delivered.append(threading.get_ident())
        assert len(values) == count
        break
    assert threads
    assert loop_thread not in threads
    assert delivered == [loop_thread]
