"""Observables of the loop's world that any thread may subscribe to or iterate."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, overload

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from typing_extensions import TypeVar

from rxdb.api import ResultsStream, RowsStream, ValueStream
from rxdb.boundary.loop_thread import LoopThread, refuse_running_loop
from rxdb.boundary.origin import Source
from rxdb.rows import Row, Rows
from rxdb.streams import Key, RowDiff, WatchStatistics
from rxdb.streams.diffs import Differ
from rxdb.streams.iteration import taken
from rxdb.watch.states import WatchState

__all__ = (
    "OnLoop",
    "SyncDiffStream",
    "SyncGroupStream",
    "SyncQueryStream",
    "SyncStream",
    "WatchIterator",
    "on_loop",
)

T = TypeVar("T", default=Row)
V = TypeVar("V")
S = TypeVar("S")


class OnLoop(Observable[V]):
    """An Observable of the loop's world that any thread may subscribe to: the subscription is
    made on the loop thread (``subscribe`` returns once it is, unless the calling thread runs
    a loop of its own); callbacks run on the loop thread; disposing hops there too.

    :param live: the façade's open subscriptions, each as the function that completes it
        (called on the loop thread as the façade closes); kept on the loop thread only.
    """

    def __init__(self, inner: Source, runner: LoopThread, live: set[Callable[[], None]]) -> None:
        super().__init__()
        self._inner = inner
        self._runner = runner
        self._live = live

    def _subscribe_core(
        self, observer: abc.ObserverBase[V], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        inner, state, live = self._inner, _Subscription(), self._live

        def subscribe() -> None:
            if not state.disposed:
                live.add(complete)
                try:
                    state.inner = inner.subscribe(observer)
                except Exception as error:  # e.g. ClosedError: the database closed meanwhile
                    observer.on_error(error)

        def dispose() -> None:
            state.disposed = True
            live.discard(complete)
            if state.inner is not None:
                state.inner.dispose()

        def complete() -> None:
            if not state.disposed:
                dispose()
                observer.on_completed()

        self._runner.call(subscribe)
        return Disposable(lambda: self._runner.call(dispose, quiet=True))


@dataclass
class _Subscription:
    inner: abc.DisposableBase | None = None
    disposed: bool = False


class SyncStream(Observable[V]):
    """A watch's values for blocking code (what ``watch_one``, ``watch_value``, ``diffs`` and
    ``pipe`` return on :class:`rxdb.SyncDatabase`): an Observable (subscribe from any thread;
    callbacks run on the database's loop thread) and a blocking iterable, newest value
    first."""

    def __init__(self, source: Observable[V], statistics: Callable[[], WatchStatistics]) -> None:
        super().__init__()
        self._source = source
        self._statistics = statistics

    def _subscribe_core(
        self, observer: abc.ObserverBase[V], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self._source.subscribe(observer, scheduler=scheduler)

    def __iter__(self) -> WatchIterator[V]:
        return WatchIterator(self)

    def statistics(self) -> WatchStatistics:
        """The shared query's statistics: a snapshot read across threads, for tests and
        diagnostics, not for synchronisation."""
        return self._statistics()

    def pipe(self, *operators: Callable[[Any], Any]) -> SyncStream[Any]:  # type: ignore[override]
        """Apply reactivex operators (functions of an Observable to an Observable); the
        result is a stream again, iterable with ``for``."""
        return SyncStream(
            reactivex.compose(*operators)(self) if operators else self, self._statistics
        )


class SyncQueryStream(SyncStream[list[T]]):
    """What :meth:`SyncDatabase.watch` returns: an Observable of result lists (subscribe from
    any thread; callbacks run on the database's loop thread) and a blocking iterable.

    :param stream: the watch on the database's loop; ``throttle`` and ``diffs`` are its own,
        run there.
    """

    def __init__(
        self, stream: RowsStream[T], runner: LoopThread, live: set[Callable[[], None]]
    ) -> None:
        super().__init__(OnLoop(stream, runner, live), stream.statistics)
        self._stream = stream
        self._runner = runner
        self._live = live

    def throttle(self, seconds: float) -> SyncQueryStream[T]:
        """The first result at once, then at most one per ``seconds`` (the newest), the last
        one always; timed on the database's loop.

        :raises rxdb.ProgrammingError: unless ``seconds`` is a finite number above 0.
        """
        return SyncQueryStream(self._stream.throttle(seconds), self._runner, self._live)

    def diffs(self, key: Key = "id") -> SyncDiffStream[T]:
        """What each result changed (:class:`rxdb.RowDiff`), rows matched by ``key``: as
        :meth:`rxdb.QueryStream.diffs`."""
        return SyncDiffStream(self, key)

    def states(self) -> SyncStream[WatchState[Any]]:
        """The watch's states (:meth:`rxdb.QueryStream.states`); callbacks run on the loop
        thread, in order with the results'."""
        return on_loop(self._stream.states(), self._runner, self._live)


class SyncDiffStream(SyncStream[RowDiff[T]]):
    """What :meth:`SyncQueryStream.diffs` returns: as :class:`rxdb.DiffStream`, a plain
    ``for`` never loses a change (each diff is made, when the body asks, against the result
    it saw last)."""

    def __init__(self, results: SyncQueryStream[T], key: Key) -> None:
        diffs = results._stream.diffs(key)
        super().__init__(OnLoop(diffs, results._runner, results._live), diffs.statistics)
        self._results = results
        self._key = key

    def __iter__(self) -> WatchIterator[RowDiff[T]]:
        differ: Differ[T] = Differ(self._key)
        return WatchIterator(self._results, differ)


class SyncGroupStream(SyncStream[dict[str, Rows]]):
    """What :meth:`SyncDatabase.watch_many` returns: dicts of results by name, one snapshot
    each, for blocking code."""

    def __init__(
        self, stream: ResultsStream, runner: LoopThread, live: set[Callable[[], None]]
    ) -> None:
        super().__init__(OnLoop(stream, runner, live), stream.statistics)
        self._stream = stream
        self._runner = runner
        self._live = live

    def states(self) -> SyncStream[WatchState[Any]]:
        """As :meth:`SyncQueryStream.states`."""
        return on_loop(self._stream.states(), self._runner, self._live)


def on_loop(
    stream: ValueStream[V], runner: LoopThread, live: set[Callable[[], None]]
) -> SyncStream[V]:
    """``stream`` (of the database's loop) for blocking code."""
    return SyncStream(OnLoop(stream, runner, live), stream.statistics)


class _Slot:
    """The newest value not yet taken, kept apart from the iterator so the subscription never
    holds the iterator alive (leaving the ``for`` loop frees it, and the finalizer disposes)."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.value: Any = _NOTHING
        self.error: BaseException | None = None
        self.done = False

    def on_next(self, value: Any) -> None:
        with self.condition:
            self.value = value
            self.condition.notify_all()

    def on_error(self, error: Exception) -> None:
        with self.condition:
            self.error, self.done = error, True
            self.condition.notify_all()

    def on_completed(self) -> None:
        with self.condition:
            self.done = True
            self.condition.notify_all()


class WatchIterator(Generic[V]):
    """``for rows in db.watch(sql):`` — the newest value, never a backlog; blocks until there
    is one; ends when the database closes; raises the query's error.

    Leaving the loop (``break``, ``return``, an exception) releases the subscription when the
    iterator is dropped (at once on CPython); :meth:`close` releases it explicitly.
    """

    @overload
    def __init__(self: WatchIterator[V], stream: Observable[V]) -> None: ...
    @overload
    def __init__(self: WatchIterator[V], stream: Observable[S], take: Callable[[S], V]) -> None: ...
    def __init__(self, stream: Observable[Any], take: Callable[[Any], V] | None = None) -> None:
        # ``take``: as rxdb.streams.QueryIterator's, the value made from the newest one when
        # the body asks for it.
        refuse_running_loop("iterating a watch")
        self._take = take
        self._slot = slot = _Slot()
        subscription = stream.subscribe(slot.on_next, slot.on_error, slot.on_completed)
        self._finalizer = weakref.finalize(self, subscription.dispose)
        self._finalizer.atexit = False

    def __iter__(self) -> WatchIterator[V]:
        return self

    def __next__(self) -> V:
        slot = self._slot
        with slot.condition:
            slot.condition.wait_for(lambda: slot.value is not _NOTHING or slot.done)
            if slot.value is not _NOTHING:
                value: Any = slot.value
                slot.value = _NOTHING
            else:
                value = _NOTHING
                error, slot.error = slot.error, None
        if value is not _NOTHING:
            return taken(self._take, value, self._finalizer)
        self._finalizer()
        if error is not None:
            raise error
        raise StopIteration

    def close(self) -> None:
        self._finalizer()


_NOTHING: Final = object()
