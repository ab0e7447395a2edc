"""rxdb.streams.pacing: the first value at once, at most one per interval, the last always."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from reactivex import Subject

import rxdb
from rxdb.streams.pacing import check_interval, throttled
from tests.conftest import Recorder, subscribed


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, True, "0.2", None, 1j], ids=repr)
def test_a_bad_interval_is_refused_naming_the_argument(seconds: Any) -> None:
    with pytest.raises(rxdb.ProgrammingError, match="throttle"):
        check_interval(seconds)


def test_a_good_interval_is_a_float() -> None:
    assert check_interval(1) == 1.0
    assert check_interval(0.25) == 0.25


async def test_the_first_value_goes_at_once_and_the_newest_of_a_burst_follows() -> None:
    source: Subject[int] = Subject()
    seen: Recorder[int] = Recorder()
    with subscribed(throttled(source, 0.05), seen):
        source.on_next(1)
        assert seen.values == [1]  # at once, not on a timer
        for value in range(2, 10):
            source.on_next(value)
        assert seen.values == [1]  # held back within the interval
        await seen.wait_count(2)
        assert seen.values == [1, 9]  # only the newest of the burst


async def test_values_are_delivered_on_the_subscribing_loop() -> None:
    source: Subject[int] = Subject()
    seen: Recorder[int] = Recorder()
    threads: list[int] = []
    with (
        subscribed(throttled(source, 0.01), seen),
        subscribed(throttled(source, 0.01), lambda _: threads.append(threading.get_ident())),
    ):
        source.on_next(1)
        source.on_next(2)
        await seen.wait_count(2)
    assert set(threads) == {threading.get_ident()}


async def test_a_held_value_arrives_before_completion_and_before_an_error() -> None:
    for end in ("completed", "error"):
        source: Subject[int] = Subject()
        seen: Recorder[int] = Recorder()
        with subscribed(throttled(source, 30), seen):
            source.on_next(1)
            source.on_next(2)  # held: 30 s to go
            if end == "completed":
                source.on_completed()
            else:
                source.on_error(rxdb.OperationalError("gone"))
            assert seen.values == [1, 2]
            assert seen.completed or seen.errors


async def test_disposing_cancels_the_timer_and_drops_what_was_held() -> None:
    source: Subject[int] = Subject()
    seen: Recorder[int] = Recorder()
    subscription = throttled(source, 0.01).subscribe(seen)
    source.on_next(1)
    source.on_next(2)  # held, its timer due first
    subscription.dispose()
    assert not source.observers
    # A later subscription's timer is due later: once it has fired, so had the first.
    later: Subject[int] = Subject()
    witness: Recorder[int] = Recorder()
    with subscribed(throttled(later, 0.01), witness):
        later.on_next(1)
        later.on_next(2)
        await witness.wait_count(2)
    assert seen.values == [1]


def test_subscribing_off_a_loop_is_an_error() -> None:
    seen: list[BaseException] = []
    throttled(Subject[int](), 1).subscribe(on_error=seen.append)
    assert isinstance(seen[0], rxdb.WrongLoopError)
