"""An eager result's states (rxdb.watch.stream.SharedQuery._fresh): the ``refreshing``
state is built only for someone who sees it.

A watch whose rows the writer read right after its commit (rxdb.engines.sqlite.eager) ends
its run in the call that hands it the rows: with no state observer, a ``refreshing`` state
would be replaced before anyone could see it, and building it cost the road from the commit
to the emission several µs. A state observer that comes while such a result is still being
compared (off the loop, for a big one) must still see ``refreshing``, then ``live``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import rxdb
import rxdb.watch.stream as stream_module
from rxdb.engines.sqlite import eager
from rxdb.rows import FrozenRows, Rows
from rxdb.watch.states import WatchState
from tests.conftest import WAIT, Recorder, settle, subscribed
from tests.rxdb.test_watch import COUNT, make_t


@pytest.fixture
def generous(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every known cost fits the budget: the writer takes every re-run (the eager road)."""
    monkeypatch.setattr(eager, "BUDGET", 10.0)


def fresh_results(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What each watch is handed by the eager road from now on (``None``: not read)."""
    real = stream_module.SharedQuery._fresh
    handed: list[object] = []

    def spy(self: stream_module.SharedQuery[Any], result: object | None) -> None:
        handed.append(result)
        real(self, result)

    monkeypatch.setattr(stream_module.SharedQuery, "_fresh", spy)
    return handed


class TestNoStateObserver:
    async def test_an_eager_result_builds_no_refreshing_state(
        self, any_db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)
        rec: Recorder[Any] = Recorder()
        with subscribed(any_db.watch(COUNT), rec):
            await rec.wait_count(1)
            await settle(any_db)
            built: list[str] = []

            def counted(phase: Any, *args: Any) -> WatchState[Any]:
                built.append(phase)
                return WatchState(phase, *args)

            monkeypatch.setattr(stream_module, "WatchState", counted)
            handed = fresh_results(monkeypatch)
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            await rec.wait_value([(1,)])
            assert handed == [[(1,)]]  # the eager road, not a reader's run
            assert built == ["live"]
            shared = next(iter(any_db._watches.queries.values()))
            assert shared._state == WatchState("live", [(1,)])


class TestAStateObserverComingLate:
    async def test_it_sees_refreshing_while_an_eager_result_is_compared(
        self, db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(db)
        monkeypatch.setattr(stream_module, "_OFF_LOOP_ROWS", 0)  # every compare off the loop
        rec: Recorder[Any] = Recorder()
        watch = db.watch(COUNT)
        with subscribed(watch, rec):
            await rec.wait_count(1)
            await settle(db)
            comparing, go_on = threading.Event(), threading.Event()
            real = stream_module._prepare

            def held(result: Rows, latest: FrozenRows | None) -> FrozenRows | None:
                comparing.set()
                go_on.wait(WAIT)
                return real(result, latest)

            monkeypatch.setattr(stream_module, "_prepare", held)
            handed = fresh_results(monkeypatch)
            await db.execute("INSERT INTO t(x) VALUES (1)")
            assert await asyncio.to_thread(comparing.wait, WAIT)
            assert handed == [[(1,)]]
            states: Recorder[Any] = Recorder()
            try:
                with subscribed(watch.states(), states):
                    await states.wait_count(1)
                    assert states.values[0] == WatchState("refreshing", [(0,)])
                    go_on.set()
                    await states.wait_count(2)
                    assert states.values[1] == WatchState("live", [(1,)])
                    assert rec.values[-1] == [(1,)]
            finally:
                go_on.set()
