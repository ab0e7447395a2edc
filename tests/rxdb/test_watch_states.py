"""``stream.states()`` and ``watch(..., recover=True)`` on SQLite (file, ``:memory:``) and
PostgreSQL: the phases a UI shows, their order against the results, and a watch that
survives its table being dropped and made again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb import WatchState
from tests.conftest import WAIT, Recorder, subscribed
from tests.rxdb.watch_shapes import KINDS, Timeline, is_postgres, open_kind

ROWS = "SELECT id FROM t ORDER BY id"


@pytest.fixture(params=KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[rxdb.Database]:
    async for database in open_kind(request.param, tmp_path):
        await database.execute("CREATE TABLE t(id integer PRIMARY KEY)")
        await database.execute("INSERT INTO t(id) VALUES (1)")
        yield database


def phases(timeline: Recorder[tuple[str, Any]]) -> list[str]:
    return [value.phase for kind, value in timeline.values if kind == "state"]


def last_state(timeline: Recorder[tuple[str, Any]]) -> WatchState[Any] | None:
    states = [value for kind, value in timeline.values if kind == "state"]
    return states[-1] if states else None


def live_with(rows: list[tuple[int, ...]]) -> Any:
    def holds(timeline: Recorder[tuple[str, Any]]) -> bool:
        state = last_state(timeline)
        return state is not None and state.phase == "live" and state.value == rows

    return holds


async def test_states_go_loading_live_refreshing_live_after_their_values(
    db: rxdb.Database,
) -> None:
    stream = db.watch(ROWS)
    timeline: Recorder[tuple[str, Any]] = Recorder()
    with (
        subscribed(stream.states(), Timeline("state", timeline)),
        subscribed(stream, Timeline("value", timeline)),
    ):
        await timeline.wait_for(live_with([(1,)]))
        await db.execute("INSERT INTO t(id) VALUES (2)")
        await timeline.wait_for(live_with([(1,), (2,)]))
        assert phases(timeline) == ["loading", "live", "refreshing", "live"]
        # Every live state comes after the value it carries, and carries that very list.
        latest: Any = None
        for kind, value in timeline.values:
            if kind == "value":
                latest = value
            elif value.phase == "live":
                assert value.value is latest
                assert value.error is None
                assert not value.busy


async def test_a_rerun_with_an_equal_result_still_ends_refreshing(db: rxdb.Database) -> None:
    stream = db.watch("SELECT count(*) FROM t")
    timeline: Recorder[tuple[str, Any]] = Recorder()
    with (
        subscribed(stream, Timeline("value", timeline)),
        subscribed(stream.states(), Timeline("state", timeline)),
    ):
        await timeline.wait_for(live_with([(1,)]))
        await db.execute("UPDATE t SET id = 5")  # the count does not change
        await timeline.wait_for(lambda t: phases(t)[-2:] == ["refreshing", "live"])
        assert [v for k, v in timeline.values if k == "value"] == [[(1,)]]


async def test_states_share_the_runs_and_release_the_watch(db: rxdb.Database) -> None:
    stream = db.watch(ROWS)
    values: Recorder[Any] = Recorder()
    states: Recorder[WatchState[Any]] = Recorder()
    with subscribed(stream, values):
        await values.wait_count(1)
        with subscribed(stream.states(), states):
            # A late state subscriber gets the current state at once, with the value.
            assert states.values[0].phase == "live"
            assert states.values[0].value == [(1,)]
            assert stream.statistics().subscribers == 2
            await db.execute("INSERT INTO t(id) VALUES (2)")
            await states.wait_for(
                lambda r: r.values[-1].phase == "live" and r.values[-1].value == [(1,), (2,)]
            )
            statistics = stream.statistics()
            # One watch, two results (on SQLite the second is patched, not run): states
            # added none.
            assert statistics.runs + statistics.patched == 2
    assert stream.statistics().subscribers == 0


async def test_a_states_subscriber_alone_starts_the_watch(db: rxdb.Database) -> None:
    stream = db.watch(ROWS)
    states: Recorder[WatchState[Any]] = Recorder()
    with subscribed(stream.states(), states):
        await states.wait_for(lambda r: r.values[-1].phase == "live")
        assert [s.phase for s in states.values] == ["loading", "live"]
        assert states.values[-1].value == [(1,)]
    assert stream.statistics() == rxdb.WatchStatistics(subscribers=0)


async def test_without_recover_a_failure_ends_both_streams(db: rxdb.Database) -> None:
    stream = db.watch("SELECT * FROM missing")
    values: Recorder[Any] = Recorder()
    states: Recorder[WatchState[Any]] = Recorder()
    with subscribed(stream, values), subscribed(stream.states(), states):
        await values.wait_for(lambda r: bool(r.errors))
        await states.wait_for(lambda r: r.completed)
        assert isinstance(values.errors[0], rxdb.DatabaseError)
        assert states.values[-1].phase == "error"
        assert states.values[-1].error is values.errors[0]
        assert stream.statistics().subscribers == 0


async def test_recover_survives_a_dropped_table_on_one_subscription(db: rxdb.Database) -> None:
    stream = db.watch(ROWS, recover=True)
    timeline: Recorder[tuple[str, Any]] = Recorder()
    with (
        subscribed(stream, Timeline("value", timeline)),
        subscribed(stream.states(), Timeline("state", timeline)),
    ):
        await timeline.wait_for(live_with([(1,)]))
        await db.execute("DROP TABLE t")
        await timeline.wait_for(lambda t: phases(t)[-1] == "error")
        failed = last_state(timeline)
        assert failed is not None
        assert isinstance(failed.error, rxdb.DatabaseError)
        assert failed.value == [(1,)]  # the last result stays for the UI to show
        await db.execute("CREATE TABLE t(id integer PRIMARY KEY)")
        await db.execute("INSERT INTO t(id) VALUES (7)")
        await timeline.wait_for(live_with([(7,)]))
        assert stream.statistics().subscribers == 2
        values = [v for k, v in timeline.values if k == "value"]
        assert values[0] == [(1,)]
        assert values[-1] == [(7,)]
        assert all(isinstance(v, list) for v in values)  # no error on the value stream
        assert "completed" not in [v for _, v in timeline.values]
    assert stream.statistics().subscribers == 0


async def test_recover_from_a_table_missing_at_the_start(db: rxdb.Database) -> None:
    stream = db.watch("SELECT v FROM later", recover=True)
    values: Recorder[Any] = Recorder()
    states: Recorder[WatchState[Any]] = Recorder()
    with subscribed(stream, values), subscribed(stream.states(), states):
        await states.wait_for(lambda r: r.values[-1].phase == "error")
        assert values.values == []
        assert values.errors == []
        await db.execute("CREATE TABLE later(v integer)")
        await values.wait_value([])
        await db.execute("INSERT INTO later(v) VALUES (3)")
        await values.wait_value([(3,)])
        assert states.values[-1].phase == "live"
        assert states.values[-1].error is None
        assert states.values[0].phase == "loading"


async def test_recover_retries_on_a_plain_commit(db: rxdb.Database) -> None:
    # A run error that data alone causes and a plain write to a table it reads cures.
    if is_postgres(db):
        await db.execute("CREATE TABLE j(v text)")
        query = "SELECT v::int FROM j"
    else:
        await db.execute("CREATE TABLE j(v)")
        query = "SELECT json_extract(v, '$') FROM j"
    await db.execute("INSERT INTO j(v) VALUES ('{oops')")
    stream = db.watch(query, recover=True)
    values: Recorder[Any] = Recorder()
    states: Recorder[WatchState[Any]] = Recorder()
    with subscribed(stream, values), subscribed(stream.states(), states):
        await states.wait_for(lambda r: r.values[-1].phase == "error")
        await db.execute("UPDATE j SET v = '4'")
        await values.wait_count(1)
        assert values.values[0] == [(4,)]
        await states.wait_for(lambda r: r.values[-1].phase == "live")
        seen = [s.phase for s in states.values]
        assert seen[:2] == ["loading", "error"]
        assert "refreshing" in seen[2:]
        # While the retry runs, the error stays known (a UI keeps its banner).
        retry = next(s for s in states.values[2:] if s.phase == "refreshing")
        assert isinstance(retry.error, rxdb.DatabaseError)


async def test_states_complete_when_the_database_closes(tmp_path: Path) -> None:
    async with rxdb.open(tmp_path / "c.db") as database:
        await database.execute("CREATE TABLE t(id integer)")
        states: Recorder[WatchState[Any]] = Recorder()
        subscription = database.watch("SELECT * FROM t").states().subscribe(states)
        await states.wait_for(lambda r: r.values[-1].phase == "live")
    await states.wait_for(lambda r: r.completed)
    subscription.dispose()


async def test_async_for_over_states_yields_the_newest(db: rxdb.Database) -> None:
    stream = db.watch(ROWS)
    async with asyncio.timeout(WAIT):
        async for state in stream.states():
            if state.phase == "live":
                assert state.value == [(1,)]
                break
    assert stream.statistics().subscribers == 0


async def test_a_stream_of_states_has_no_states_of_its_own(db: rxdb.Database) -> None:
    with pytest.raises(rxdb.ProgrammingError, match="states has no states"):
        db.watch(ROWS).states().states()
