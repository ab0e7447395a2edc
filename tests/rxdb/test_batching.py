from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from rxdb.batching import RunBatcher
from tests.conftest import WAIT


class FakeReader:
    """Answers each query with its own text; records the batches; can be held."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.second = asyncio.Event()

    async def fetch_many(self, queries: Sequence[tuple[str, Any]]) -> list[Any]:
        self.batches.append([sql for sql, _ in queries])
        self.entered.set()
        if len(self.batches) == 2:
            self.second.set()
        await self.gate.wait()
        return [ValueError(sql) if sql.startswith("bad") else [(sql,)] for sql, _ in queries]


async def test_runs_due_together_share_one_call() -> None:
    reader = FakeReader()
    batcher = RunBatcher(reader.fetch_many, max_in_flight=1)
    results = await asyncio.gather(*(batcher.fetch(f"q{i}", ()) for i in range(5)))
    assert results == [[(f"q{i}",)] for i in range(5)]
    assert reader.batches == [[f"q{i}" for i in range(5)]]


async def test_runs_queued_during_a_batch_form_the_next_batch() -> None:
    reader = FakeReader()
    reader.gate.clear()
    batcher = RunBatcher(reader.fetch_many, max_in_flight=1)
    first = asyncio.ensure_future(batcher.fetch("a", ()))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    later = [asyncio.ensure_future(batcher.fetch(q, ())) for q in ("b", "c")]
    await asyncio.sleep(0)
    reader.gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), WAIT) == [
        [("a",)],
        [("b",)],
        [("c",)],
    ]
    assert reader.batches == [["a"], ["b", "c"]]


async def test_a_run_queued_as_the_last_batch_ends_is_not_stranded() -> None:
    reader = FakeReader()
    batcher = RunBatcher(reader.fetch_many, max_in_flight=1)
    for round_ in range(50):  # each fetch lands right after the previous drain finished
        assert await asyncio.wait_for(batcher.fetch(f"q{round_}", ()), WAIT) == [(f"q{round_}",)]


async def test_each_query_gets_its_own_error() -> None:
    reader = FakeReader()
    batcher = RunBatcher(reader.fetch_many, max_in_flight=2)
    good = asyncio.ensure_future(batcher.fetch("good", ()))
    with pytest.raises(ValueError, match="bad"):
        await batcher.fetch("bad", ())
    assert await good == [("good",)]


async def test_a_failing_batch_fails_each_of_its_runs() -> None:
    async def broken(_: Sequence[tuple[str, Any]]) -> list[Any]:
        raise RuntimeError("database closed")

    batcher = RunBatcher(broken, max_in_flight=1)
    outcomes = await asyncio.gather(
        batcher.fetch("a", ()), batcher.fetch("b", ()), return_exceptions=True
    )
    assert [str(outcome) for outcome in outcomes] == ["database closed"] * 2


async def test_cancelled_runs_are_skipped() -> None:
    reader = FakeReader()
    reader.gate.clear()
    batcher = RunBatcher(reader.fetch_many, max_in_flight=1)
    first = asyncio.ensure_future(batcher.fetch("a", ()))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    dropped = asyncio.ensure_future(batcher.fetch("dropped", ()))
    kept = asyncio.ensure_future(batcher.fetch("kept", ()))
    await asyncio.sleep(0)
    dropped.cancel()
    reader.gate.set()
    assert await asyncio.wait_for(kept, WAIT) == [("kept",)]
    await first
    assert reader.batches == [["a"], ["kept"]]


async def test_batches_run_in_parallel_up_to_the_limit() -> None:
    reader = FakeReader()
    reader.gate.clear()
    batcher = RunBatcher(reader.fetch_many, max_in_flight=2)
    first = asyncio.ensure_future(batcher.fetch("a", ()))
    await asyncio.wait_for(reader.entered.wait(), WAIT)
    second = asyncio.ensure_future(batcher.fetch("b", ()))
    # The second batch starts although the first is held.
    await asyncio.wait_for(reader.second.wait(), WAIT)
    third = asyncio.ensure_future(batcher.fetch("c", ()))
    await asyncio.sleep(0)
    assert reader.batches == [["a"], ["b"]]  # the limit: "c" waits for a drain to come back
    reader.gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, second, third), WAIT) == [
        [("a",)],
        [("b",)],
        [("c",)],
    ]
