from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from rxdb.watch.scheduler import Run, RunScheduler
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
        self.cancelled = 0

    async def fetch_many(self, queries: Sequence[tuple[str, Any]]) -> list[Any]:
        self.batches.append([sql for sql, _ in queries])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.entered.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
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


async def test_runs_due_while_a_batch_runs_go_out_at_once_together() -> None:
    reader = FakeReader()
    reader.gate.clear()
    scheduler = RunScheduler(reader.fetch_many, parallelism=2)
    first = asyncio.ensure_future(run(scheduler, "a"))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    later = [asyncio.ensure_future(run(scheduler, q)) for q in ("b", "c")]
    await _until(lambda: reader.in_flight == 2)
    assert reader.batches == [["a"], ["b", "c"]]  # "a" is still held
    reader.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, *later), WAIT)
    assert results == [[("a",)], [("b",)], [("c",)]]


async def test_a_batch_is_split_over_the_free_readers_only() -> None:
    reader = FakeReader()
    reader.gate.clear()
    scheduler = RunScheduler(reader.fetch_many, parallelism=3)
    held = asyncio.ensure_future(run(scheduler, "slow"))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    runs = [asyncio.ensure_future(run(scheduler, f"q{i}")) for i in range(4)]
    await _until(lambda: reader.in_flight == 3)
    assert reader.batches == [["slow"], ["q0", "q1"], ["q2", "q3"]]  # 2 readers were free
    reader.gate.set()
    assert await asyncio.gather(held, *runs) == [[("slow",)]] + [[(f"q{i}",)] for i in range(4)]


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition()`` holds (the scheduler's tasks take a few steps)."""
    async with asyncio.timeout(WAIT):
        while True:
            if condition():
                return
            await asyncio.sleep(0)


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


class FakeClock:
    """``time.monotonic`` and ``asyncio.sleep`` for rxdb.watch.scheduler: each fetch "takes" 10 ms,
    and a pause is recorded and lasts until the test ends it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, reader: FakeReader) -> None:
        self.now = 100.0
        self.pauses: list[float] = []
        self.pause_over = asyncio.Event()
        self._reader = reader
        self._real_sleep = asyncio.sleep
        monkeypatch.setattr(time, "monotonic", lambda: self.now)
        monkeypatch.setattr(asyncio, "sleep", self._sleep)

    async def _sleep(self, delay: float) -> None:  # asyncio.sleep, for everyone
        if delay <= 0:
            await self._real_sleep(0)
            return
        self.pauses.append(delay)
        await self.pause_over.wait()
        self.now += delay

    async def fetch_many(self, queries: Sequence[tuple[str, Any]]) -> list[Any]:
        self.now += 0.010
        return await self._reader.fetch_many(queries)


async def _first_run(scheduler: RunScheduler, sql: str) -> tuple[Run, Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    handle = scheduler.submit(sql, (), future.set_result)
    return handle, await asyncio.wait_for(future, WAIT)


async def _again(handle: Run) -> Any:
    """Re-run ``handle`` (its done callback is kept): wait for the re-run's result."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    handle.done = future.set_result
    handle.again()
    return await asyncio.wait_for(future, WAIT)


class TestPacing:
    async def test_a_rerun_waits_duty_times_its_own_run(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reader = FakeReader()
        clock = FakeClock(monkeypatch, reader)
        scheduler = RunScheduler(clock.fetch_many, parallelism=1, duty=2.0)
        handle, _ = await _first_run(scheduler, "a")
        assert clock.pauses == []  # a run after a quiet moment starts at once
        rerun = asyncio.ensure_future(_again(handle))
        await _until(lambda: bool(clock.pauses))
        assert clock.pauses == [pytest.approx(0.020)]  # duty 2 x the 10 ms "a" took
        assert reader.batches == [["a"]]
        clock.pause_over.set()
        assert await rerun == [("a",)]
        assert reader.batches == [["a"], ["a"]]

    async def test_other_runs_go_out_while_a_rerun_waits(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reader = FakeReader()
        clock = FakeClock(monkeypatch, reader)
        scheduler = RunScheduler(clock.fetch_many, parallelism=1, duty=2.0)
        handle, _ = await _first_run(scheduler, "slow")
        rerun = asyncio.ensure_future(_again(handle))
        await _until(lambda: bool(clock.pauses))
        assert await run(scheduler, "other") == [("other",)]  # not behind the pause
        clock.pause_over.set()
        await rerun
        assert reader.batches == [["slow"], ["other"], ["slow"]]
        assert len(clock.pauses) == 1

    async def test_reruns_of_one_hop_wait_once_and_go_out_together(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reader = FakeReader()
        clock = FakeClock(monkeypatch, reader)
        scheduler = RunScheduler(clock.fetch_many, parallelism=1, duty=2.0)
        futures = [asyncio.get_running_loop().create_future() for _ in range(2)]
        handles = [scheduler.submit(f"q{i}", (), f.set_result) for i, f in enumerate(futures)]
        await asyncio.wait_for(asyncio.gather(*futures), WAIT)
        reruns = [asyncio.ensure_future(_again(handle)) for handle in handles]
        await _until(lambda: bool(clock.pauses))
        clock.pause_over.set()
        await asyncio.gather(*reruns)
        assert clock.pauses == [pytest.approx(0.020)]
        assert reader.batches == [["q0", "q1"], ["q0", "q1"]]

    async def test_reruns_of_a_batch_split_over_readers_wait_for_the_whole_batch(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Hops paced one by one would drift apart and keep the readers busy together."""
        reader = FakeReader()
        clock = FakeClock(monkeypatch, reader)
        scheduler = RunScheduler(clock.fetch_many, parallelism=2, duty=2.0)
        futures = [asyncio.get_running_loop().create_future() for _ in range(2)]
        handles = [scheduler.submit(f"q{i}", (), f.set_result) for i, f in enumerate(futures)]
        await asyncio.wait_for(asyncio.gather(*futures), WAIT)
        assert reader.batches == [["q0"], ["q1"]]  # two hops, 10 ms each, one after the other
        reruns = [asyncio.ensure_future(_again(handle)) for handle in handles]
        await _until(lambda: bool(clock.pauses))
        clock.pause_over.set()
        await asyncio.gather(*reruns)
        assert clock.pauses == [pytest.approx(0.040)]  # one pause: 2 x the batch's 20 ms
        assert reader.batches == [["q0"], ["q1"], ["q0"], ["q1"]]

    async def test_a_rerun_after_its_pause_has_passed_starts_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        reader = FakeReader()
        clock = FakeClock(monkeypatch, reader)
        scheduler = RunScheduler(clock.fetch_many, parallelism=1, duty=2.0)
        handle, _ = await _first_run(scheduler, "a")
        clock.now += 0.021  # the 20 ms pause it earned has passed
        assert await _again(handle) == [("a",)]
        assert clock.pauses == []


class TestAbandon:
    async def test_a_run_abandoned_before_it_goes_out_is_dropped(self) -> None:
        reader = FakeReader()
        scheduler = RunScheduler(reader.fetch_many, parallelism=1)
        taken: list[Any] = []
        scheduler.submit("dropped", (), taken.append).abandon()
        assert await run(scheduler, "kept") == [("kept",)]
        assert reader.batches == [["kept"]]
        assert taken == []

    async def test_a_hop_is_cancelled_once_every_run_in_it_is_abandoned(self) -> None:
        reader = FakeReader()
        reader.gate.clear()
        scheduler = RunScheduler(reader.fetch_many, parallelism=1)
        taken: list[Any] = []
        first, second = (scheduler.submit(q, (), taken.append) for q in ("a", "b"))
        await asyncio.wait_for(reader.entered.wait(), WAIT)
        first.abandon()
        await asyncio.sleep(0)
        assert reader.cancelled == 0  # "b" still wants its result
        second.abandon()
        await _until(lambda: scheduler.busy is None)
        assert reader.cancelled == 1
        assert taken == []

    async def test_an_abandoned_run_gets_no_result_and_its_hop_mates_do(self) -> None:
        reader = FakeReader()
        reader.gate.clear()
        scheduler = RunScheduler(reader.fetch_many, parallelism=1)
        taken: list[Any] = []
        kept: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        abandoned = scheduler.submit("a", (), taken.append)
        scheduler.submit("b", (), kept.set_result)  # due together: one hop
        await asyncio.wait_for(reader.entered.wait(), WAIT)
        abandoned.abandon()
        reader.gate.set()
        assert await asyncio.wait_for(kept, WAIT) == [("b",)]
        assert reader.batches == [["a", "b"]]
        assert reader.cancelled == 0
        assert taken == []
