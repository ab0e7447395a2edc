"""Big results: a watch over many rows stays correct, and keeps its work off the event loop
and out of the garbage collector's way (issue #10)."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

import rxdb
import rxdb.rows
import rxdb.watch.stream
from tests.conftest import Recorder, settle, subscribed

ROWS = 20_000  # above the size whose comparison leaves the loop thread
QUERY = "SELECT id, name, score FROM big ORDER BY id"
RERUN = f"{QUERY} LIMIT -1"  # the same rows, a shape rxdb re-runs rather than patches


async def make_big(db: rxdb.Database, rows: int = ROWS) -> None:
    await db.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, name TEXT, score REAL)")
    await db.execute_many(
        "INSERT INTO big VALUES (?, ?, ?)", [(i, f"n{i}", i * 0.5) for i in range(rows)]
    )


def tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


class TestBigResultsAndTheCollector:
    async def test_a_big_watch_result_is_not_left_for_the_collector_to_walk(
        self, db: rxdb.Database
    ) -> None:
        await make_big(db)
        stream = db.watch(QUERY)
        rec: Recorder[Any] = Recorder()
        before = tracked_objects()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            await settle(db)
            grown = tracked_objects() - before
        assert len(rec.values[0]) == ROWS
        assert grown < 1000, f"{grown} more objects for the collector to walk"

    async def test_a_big_fetch_is_not_left_for_the_collector_to_walk(
        self, any_db: rxdb.Database
    ) -> None:
        await make_big(any_db)
        before = tracked_objects()
        rows = await any_db.fetch_all(QUERY)
        grown = tracked_objects() - before
        assert len(rows) == ROWS
        assert rows[-1].name == f"n{ROWS - 1}"
        assert grown < 1000, f"{grown} more objects for the collector to walk"

    async def test_a_big_watch_result_comes_with_its_rows_untracked_already(
        self, any_db: rxdb.Database
    ) -> None:
        # Rows built past the young collections wait for the next full one, which then
        # walks the whole result at once (rxdb.rows' docstring).
        await make_big(any_db)
        stream = any_db.watch(RERUN)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            tracked = sum(map(gc.is_tracked, list.__iter__(rec.values[0])))
        assert len(rec.values[0]) == ROWS
        assert tracked < ROWS // 10, f"{tracked} of {ROWS} rows left for a collection to see"


class TestBigWatchEmissions:
    async def test_a_change_in_the_last_row_of_a_big_result_is_emitted(
        self, any_db: rxdb.Database
    ) -> None:
        await make_big(any_db)
        stream = any_db.watch(QUERY)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            await any_db.execute("UPDATE big SET score = -1 WHERE id = ?", (ROWS - 1,))
            await rec.wait_count(2)
            assert rec.values[1][-1] == (ROWS - 1, f"n{ROWS - 1}", -1.0)
            assert rec.values[1][-1].score == -1.0
            assert rec.values[0][-1].score != -1.0

    async def test_an_unchanged_big_result_is_not_emitted_again(
        self, any_db: rxdb.Database
    ) -> None:
        await make_big(any_db)
        stream = any_db.watch(RERUN)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            await any_db.execute("UPDATE big SET score = score WHERE id = ?", (ROWS - 1,))
            await settle(any_db)
            assert stream.statistics().runs == 2
            assert stream.statistics().emissions == 1
            await any_db.execute("UPDATE big SET name = 'changed' WHERE id = 0")
            await rec.wait_count(2)  # and the run after an unchanged one still emits
            assert rec.values[1][0].name == "changed"

    async def test_a_big_result_is_compared_off_the_loop_thread(
        self, db: rxdb.Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: list[int] = []
        compare = rxdb.rows.same_rows

        def spy(new: Any, old: Any) -> bool:
            threads.append(threading.get_ident())
            return compare(new, old)

        monkeypatch.setattr(rxdb.watch.stream, "same_rows", spy)
        await make_big(db)
        stream = db.watch(RERUN)
        rec: Recorder[Any] = Recorder()
        with subscribed(stream, rec):
            await rec.wait_count(1)
            await db.execute("UPDATE big SET score = score WHERE id = 1")
            await settle(db)
            await db.execute("UPDATE big SET score = -1 WHERE id = 1")
            await rec.wait_count(2)
        assert len(threads) == 2
        assert threading.get_ident() not in threads

    async def test_subscribers_of_a_watch_share_one_list_per_emission(
        self, db: rxdb.Database
    ) -> None:
        await make_big(db)
        stream = db.watch(QUERY)
        first: Recorder[Any] = Recorder()
        second: Recorder[Any] = Recorder()
        with subscribed(stream, first), subscribed(stream, second):
            await second.wait_count(1)
            await db.execute("UPDATE big SET score = -1 WHERE id = 1")
            await second.wait_count(2)
        assert first.values[1] is second.values[1]

    async def test_what_a_subscriber_does_to_its_list_changes_no_later_emission(
        self, db: rxdb.Database
    ) -> None:
        await make_big(db)
        stream = db.watch(QUERY)
        sizes: list[int] = []

        def clear_it(rows: list[Any]) -> None:  # a subscriber that empties what it gets
            sizes.append(len(rows))
            rows.clear()

        with subscribed(stream, clear_it):
            await settle(db)
            await db.execute("UPDATE big SET score = score WHERE id = 1")  # no change
            await settle(db)
            assert stream.statistics().emissions == 1
            late: Recorder[Any] = Recorder()
            with subscribed(stream, late):
                await late.wait_count(1)
                await db.execute("UPDATE big SET score = -1 WHERE id = 1")
                await late.wait_count(2)
        assert sizes == [ROWS, ROWS]  # the first result, then the changed one: both whole
        assert len(late.values[0]) == ROWS
