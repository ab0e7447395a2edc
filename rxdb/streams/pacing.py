"""Pacing a stream for a UI: :func:`throttled` (first value at once, then at most one per
interval, the last one always delivered).

A UI repainting on every commit of a write burst either stalls or floods; dropping the values
in between is what it wants, as long as it never misses the final state. The timer runs on
the asyncio loop the subscription is made on (``loop.call_at``), so values are delivered
there, never on a reactivex scheduler thread.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Final, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from rxdb.errors import ProgrammingError, WrongLoopError

__all__ = ("check_interval", "throttled")

V = TypeVar("V")


class _Nothing:
    pass


_NOTHING: Final = _Nothing()


def check_interval(seconds: object, name: str = "throttle") -> float:
    """Return ``seconds`` as a float, or raise :class:`rxdb.ProgrammingError` naming ``name``
    unless it is a finite positive real number (a bool is not one)."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ProgrammingError(f"{name} is a number of seconds (an int or float), not {seconds!r}")
    interval = float(seconds)
    if not math.isfinite(interval) or interval <= 0:
        raise ProgrammingError(
            f"{name} must be a finite number of seconds above 0, not {seconds!r}"
        )
    return interval


def throttled(source: Observable[V], interval: float) -> Observable[V]:
    """``source`` with at most one value per ``interval`` seconds per subscriber: the first at
    once, then the newest value when the interval has passed; a value held back when the
    source completes or fails is delivered first. ``interval`` is checked already."""

    def subscribe(
        observer: abc.ObserverBase[V], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise WrongLoopError(
                "a throttled stream is subscribed to on its database's event loop"
            ) from None
        state = _Throttle(loop, interval, observer)
        inner = source.subscribe(state.on_next, state.on_error, state.on_completed)
        return CompositeDisposable(inner, Disposable(state.stop))

    return Observable(subscribe)


class _Throttle:
    """One subscriber's pacing: when it last got a value, the value held back, the timer."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float, observer: abc.ObserverBase[Any]
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._observer = observer
        self._last = -math.inf  # loop time of the last delivery
        self._held: Any = _NOTHING
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False

    def on_next(self, value: Any) -> None:
        if self._stopped:
            return
        if self._timer is None and self._loop.time() - self._last >= self._interval:
            self._deliver(value)
            return
        self._held = value
        if self._timer is None:
            self._timer = self._loop.call_at(self._last + self._interval, self._due)

    def on_error(self, error: Exception) -> None:
        self._flush()
        if not self._stopped:
            self.stop()
            self._observer.on_error(error)

    def on_completed(self) -> None:
        self._flush()
        if not self._stopped:
            self.stop()
            self._observer.on_completed()

    def stop(self) -> None:
        self._stopped = True
        self._held = _NOTHING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not isinstance(self._held, _Nothing) and not self._stopped:
            value, self._held = self._held, _NOTHING
            self._deliver(value)

    def _deliver(self, value: Any) -> None:
        self._last = self._loop.time()
        self._observer.on_next(value)
