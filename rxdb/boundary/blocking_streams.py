"""Observables of the loop's world that any thread may subscribe to or iterate."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb.boundary.loop_thread import LoopThread, refuse_running_loop
from rxdb.boundary.origin import CountedStream, Source
from rxdb.rows import Rows
from rxdb.watch.stream import WatchStatistics

__all__ = ("OnLoop", "SyncQueryStream", "WatchIterator")

T = TypeVar("T")


class OnLoop(Observable[T]):
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
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
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


class SyncQueryStream(OnLoop[Rows]):
    """What :meth:`SyncDatabase.watch` returns: an Observable of result lists (subscribe from
    any thread; callbacks run on the database's loop thread) and a blocking iterable."""

    def __init__(
        self, stream: CountedStream, runner: LoopThread, live: set[Callable[[], None]]
    ) -> None:
        super().__init__(stream, runner, live)
        self._stream = stream

    def __iter__(self) -> WatchIterator:
        return WatchIterator(self)

    def statistics(self) -> WatchStatistics:
        """The shared query's statistics: a snapshot read across threads, for tests and
        diagnostics, not for synchronisation."""
        return self._stream.statistics()


class _Slot:
    """The newest value not yet taken, kept apart from the iterator so the subscription never
    holds the iterator alive (leaving the ``for`` loop frees it, and the finalizer disposes)."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.value: Rows | None = None
        self.error: BaseException | None = None
        self.done = False

    def on_next(self, rows: Rows) -> None:
        with self.condition:
            self.value = rows
            self.condition.notify_all()

    def on_error(self, error: Exception) -> None:
        with self.condition:
            self.error, self.done = error, True
            self.condition.notify_all()

    def on_completed(self) -> None:
        with self.condition:
            self.done = True
            self.condition.notify_all()


class WatchIterator:
    """``for rows in db.watch(sql):`` — the newest result, never a backlog; blocks until there
    is one; ends when the database closes; raises the query's error.

    Leaving the loop (``break``, ``return``, an exception) releases the subscription when the
    iterator is dropped (at once on CPython); :meth:`close` releases it explicitly.
    """

    def __init__(self, stream: SyncQueryStream) -> None:
        refuse_running_loop("iterating a watch")
        self._slot = slot = _Slot()
        subscription = stream.subscribe(slot.on_next, slot.on_error, slot.on_completed)
        self._finalizer = weakref.finalize(self, subscription.dispose)
        self._finalizer.atexit = False

    def __iter__(self) -> WatchIterator:
        return self

    def __next__(self) -> Rows:
        slot = self._slot
        with slot.condition:
            slot.condition.wait_for(lambda: slot.value is not None or slot.done)
            if slot.value is not None:
                value, slot.value = slot.value, None
                return value
            error, slot.error = slot.error, None
        self._finalizer()
        if error is not None:
            raise error
        raise StopIteration

    def close(self) -> None:
        self._finalizer()
