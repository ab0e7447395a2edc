"""The eager road's length (issue #14, row #1): between a commit and its emission each Python
frame costs several µs (cold, right after the commit's fsync), so the frames taken out of it
must stay out. What the road does is tests/rxdb/test_eager_reruns.py's to prove; here, only
that it does it without the frames it no longer needs."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Hashable
from typing import Any, cast

import pytest

import rxdb
from parser.maintainable import Maintainable
from rxdb._types import Params
from rxdb.engines.sqlite import eager
from rxdb.watch.incremental import Maintenance
from tests.conftest import sqlite_engine
from tests.rxdb.test_eager_reruns import watching
from tests.rxdb.test_watch import make_t


@pytest.fixture
def generous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eager, "BUDGET", 10.0)


def callers() -> list[str]:
    """The qualified names of the frames that called the caller, innermost first."""
    names = []
    frame = sys._getframe(2)
    while frame is not None:
        names.append(frame.f_code.co_qualname)
        frame = frame.f_back  # type: ignore[assignment]
    return names


class TestTheEagerRoad:
    async def test_an_eager_result_goes_from_fresh_to_its_subscribers_directly(
        self, any_db: rxdb.Database, generous: None
    ) -> None:
        await make_t(any_db)
        async with watching(any_db) as (stream, rec):
            stacks: list[list[str]] = []
            subscription = stream.subscribe(on_next=lambda _rows: stacks.append(callers()))
            try:
                stacks.clear()  # the latest result, given at once
                await any_db.execute("INSERT INTO t(x) VALUES (1)")
                assert rec.values[-1] == [(1,)]
            finally:
                subscription.dispose()
        [stack] = stacks
        road = stack[: stack.index("_deliver") + 1]  # eager's: it took the eager road
        assert "SharedQuery._fresh" in road
        assert "SharedQuery._finished" not in road
        assert "_safely" not in road

    async def test_the_writer_publishes_and_claims_without_frames_of_their_own(
        self, any_db: rxdb.Database, generous: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await make_t(any_db)
        engine = sqlite_engine(any_db)
        seen: dict[str, str] = {}
        publish, costs = engine._publish, engine.costs

        def published(*args: Any, **kwargs: Any) -> None:
            seen["publish"] = callers()[0]
            publish(*args, **kwargs)

        class Costs:
            def seconds(self, sql: str) -> float | None:
                seen["cost"] = sys._getframe(1).f_code.co_qualname
                return costs.seconds(sql)

            def record(self, sql: str, started: float) -> None:
                costs.record(sql, started)

        async with watching(any_db) as (_stream, rec):
            monkeypatch.setattr(engine, "_publish", published)
            monkeypatch.setattr(engine.eager, "_costs", Costs())
            await any_db.execute("INSERT INTO t(x) VALUES (1)")
            assert rec.values[-1] == [(1,)]
        # The commit's publish is a partial, called from EagerReads.publish itself; the bus
        # asks EagerReads.wanted straight (a partial again), which asks for the cost.
        assert seen == {"publish": "EagerReads.publish", "cost": "EagerReads.wanted"}


class _Marks:
    """A maintaining engine that counts the marks it is asked for."""

    def __init__(self) -> None:
        self.asked = 0

    def maintain(self, key: Hashable, sql: str, params: Params) -> Awaitable[Maintainable | None]:
        raise NotImplementedError

    def stop_maintaining(self, key: Hashable) -> None:
        raise NotImplementedError

    def maintenance_mark(self, table: str) -> tuple[int, int] | None:
        self.asked += 1
        return (1, 1)


class _Shape:
    table = "t"


def test_a_result_after_forget_asks_the_engine_for_no_mark() -> None:
    """An eager result (:meth:`Maintenance.forget` first) is no base for patches whatever
    the mark: :meth:`Maintenance.run_ended` does not ask the engine for it."""
    engine = _Marks()
    maintenance = Maintenance(engine, "SELECT x FROM t", ())
    maintenance.shape = cast("Maintainable", _Shape())
    maintenance.forget()
    maintenance.run_ended([(1,)])
    assert engine.asked == 0
