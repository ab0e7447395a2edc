from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

import rxdb.batching
from rxdb.batching import RunScheduler
from tests.conftest import WAIT


class FakeReader:
    """Answers each query with its own text; records the batches; can be held."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def fetch_many(self, queries: Sequence[tuple[str, Any]]) -> list[Any]:
        self.batches.append([sql for sql, _ in queries])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered.set()
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return [ValueError(sql) if sql.startswith("bad") else [(sql,)] for sql, _ in queries]


async def run(scheduler: RunScheduler, sql: str) -> Any:
    """Submit one run and wait for what it is given."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    scheduler.submit(sql, (), future.set_result)
    return await asyncio.wait_for(future, WAIT)


async def test_runs_due_together_share_one_call() -> None:
    reader = FakeReader()
    scheduler = RunScheduler(reader.fetch_many, parallelism=1)
    results = await asyncio.gather(*(run(scheduler, f"q{i}") for i in range(5)))
    assert results == [[(f"q{i}",)] for i in range(5)]
    assert reader.batches == [[f"q{i}" for i in range(5)]]


async def test_runs_submitted_during_a_batch_form_the_next_batch() -> None:
    reader = FakeReader()
    reader.gate.clear()
    scheduler = RunScheduler(reader.fetch_many, parallelism=1, duty=0)
    first = asyncio.ensure_future(run(scheduler, "a"))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    later = [asyncio.ensure_future(run(scheduler, q)) for q in ("b", "c")]
    await asyncio.sleep(0)
    reader.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), WAIT)
    assert results == [[("a",)], [("b",)], [("c",)]]
    assert reader.batches == [["a"], ["b", "c"]]


async def test_a_run_submitted_as_the_last_batch_ends_is_not_stranded() -> None:
    reader = FakeReader()
    scheduler = RunScheduler(reader.fetch_many, parallelism=1, duty=0)
    for round_ in range(50):  # each run lands right after the previous drain finished
        assert await run(scheduler, f"q{round_}") == [(f"q{round_}",)]
    assert scheduler.busy is None


async def test_each_query_gets_its_own_error() -> None:
    reader = FakeReader()
    scheduler = RunScheduler(reader.fetch_many, parallelism=1)
    good, bad = await asyncio.gather(run(scheduler, "good"), run(scheduler, "bad"))
    assert good == [("good",)]
    assert isinstance(bad, ValueError)


async def test_a_failing_batch_fails_each_of_its_runs() -> None:
    async def broken(_: Sequence[tuple[str, Any]]) -> list[Any]:
        raise RuntimeError("database closed")

    scheduler = RunScheduler(broken, parallelism=1)
    outcomes = await asyncio.gather(run(scheduler, "a"), run(scheduler, "b"))
    assert [str(outcome) for outcome in outcomes] == ["database closed"] * 2


async def test_a_batch_is_split_across_readers() -> None:
    reader = FakeReader()
    reader.gate.clear()
    scheduler = RunScheduler(reader.fetch_many, parallelism=3)
    runs = [asyncio.ensure_future(run(scheduler, f"q{i}")) for i in range(7)]
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    await asyncio.sleep(0)
    reader.gate.set()
    assert await asyncio.gather(*runs) == [[(f"q{i}",)] for i in range(7)]
    assert reader.batches == [["q0", "q1", "q2"], ["q3", "q4", "q5"], ["q6"]]
    assert reader.most_in_flight == 3


async def test_a_raising_callback_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = FakeReader()
    scheduler = RunScheduler(reader.fetch_many, parallelism=1)

    def broken(_: Any) -> None:
        raise RuntimeError("watch bug")

    scheduler.submit("a", (), broken)
    assert await run(scheduler, "b") == [("b",)]
    assert "watch bug" in caplog.text


async def test_back_to_back_batches_are_paced_by_duty(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:  # asyncio.sleep, for everyone: record pauses
        if delay > 0:
            pauses.append(delay)
            now[0] += delay
        await real_sleep(0)

    monkeypatch.setattr(rxdb.batching.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(rxdb.batching.asyncio, "sleep", fake_sleep)
    reader = FakeReader()
    scheduler = RunScheduler(reader.fetch_many, parallelism=1, duty=2.0)

    async def slow_fetch(queries: Sequence[tuple[str, Any]]) -> list[Any]:
        now[0] += 0.010  # each batch "takes" 10 ms
        return await reader.fetch_many(queries)

    scheduler._fetch_many = slow_fetch
    reader.gate.clear()
    first = asyncio.ensure_future(run(scheduler, "a"))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    scheduler.submit("b", (), lambda _: None)  # due while "a" runs: the next batch
    reader.gate.set()
    await first
    drain = scheduler.busy
    if drain is not None:
        await asyncio.wait_for(drain, WAIT)
    assert pauses == [pytest.approx(0.020)]  # duty 2 x the 10 ms the first batch took
    assert reader.batches == [["a"], ["b"]]
