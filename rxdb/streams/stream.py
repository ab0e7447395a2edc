"""The streams every async shape's ``watch`` returns: :class:`Stream` and :class:`QueryStream`.

A reactivex Observable loses what made the watch usable once an operator is applied: ``async
for`` and ``statistics()``. These keep both: ``pipe``, ``throttle`` and ``diffs`` return a
stream again, subscribed to on the same loop, iterated the same way (newest value first),
and reporting the statistics of the watch underneath.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Generic, overload

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable
from typing_extensions import TypeVar

from rxdb.errors import ProgrammingError
from rxdb.rows import Row
from rxdb.streams.conversion import OFF_LOOP_ROWS, RowConverter, converter_for
from rxdb.streams.diffs import Differ, Key, RowDiff, key_function
from rxdb.streams.iteration import QueryIterator
from rxdb.streams.pacing import check_interval, throttled
from rxdb.streams.statistics import WatchStatistics

__all__ = ("DiffStream", "QueryStream", "Stream", "first_rows", "first_values", "shaped")

LOG = logging.getLogger("rxdb.watch")

V = TypeVar("V")
T = TypeVar("T", default=Row)
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")

Operator = Callable[[Observable[A]], Observable[B]]


class Stream(Observable[V]):
    """An Observable of one watch's values that is also an async iterable (the newest value,
    never a backlog) and stays one through ``pipe`` and ``throttle``.

    Subscribe, and iterate, on the database's event loop; values are delivered there.

    :param source: where the values come from.
    :param statistics: the watch's statistics; without it, the stream counts its own
        subscribers (and reports nothing else).
    :param states: the watch's state stream (:class:`rxdb.WatchState`), where the shape
        has one.
    """

    def __init__(
        self,
        source: Observable[V],
        statistics: Callable[[], WatchStatistics] | None = None,
        states: Callable[[], Observable[Any]] | None = None,
    ) -> None:
        super().__init__()
        self._source = source
        self._statistics = statistics
        self._states = states
        self._subscribers = 0

    def _subscribe_core(
        self, observer: abc.ObserverBase[V], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        inner = self._source.subscribe(observer, scheduler=scheduler)
        if self._statistics is not None:
            return inner
        self._subscribers += 1
        left = False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                self._subscribers -= 1
                inner.dispose()

        return Disposable(leave)

    def __aiter__(self) -> QueryIterator[V]:
        return QueryIterator(self)

    def statistics(self) -> WatchStatistics:
        """Statistics of the watch behind this stream (zeros when nobody subscribes)."""
        if self._statistics is None:
            return WatchStatistics(subscribers=self._subscribers)
        return self._statistics()

    # rxdb's pipe takes operators (functions of an Observable to an Observable), where
    # reactivex's takes any function: a stream of the result is what it promises instead.
    @overload  # type: ignore[override]
    def pipe(self) -> Stream[V]: ...
    @overload
    def pipe(self, op1: Operator[V, A], /) -> Stream[A]: ...
    @overload
    def pipe(self, op1: Operator[V, A], op2: Operator[A, B], /) -> Stream[B]: ...
    @overload
    def pipe(
        self, op1: Operator[V, A], op2: Operator[A, B], op3: Operator[B, C], /
    ) -> Stream[C]: ...
    @overload
    def pipe(
        self,
        op1: Operator[V, A],
        op2: Operator[A, B],
        op3: Operator[B, C],
        op4: Operator[C, D],
        /,
    ) -> Stream[D]: ...
    @overload
    def pipe(self, *operators: Callable[[Any], Any]) -> Stream[Any]: ...
    def pipe(self, *operators: Callable[[Any], Any]) -> Stream[Any]:
        """Apply reactivex operators, left to right; the result is a stream again (``async
        for`` works on it). Operators that keep time (``ops.debounce``...) deliver on a
        reactivex thread unless given ``AsyncIOScheduler(loop)``: see docs/guide.md."""
        return self._derive(reactivex.compose(*operators)(self) if operators else self)

    def throttle(self, seconds: float) -> Stream[V]:
        """The first value at once, then at most one per ``seconds`` (the newest), and the last
        one always. Timed on the subscribing loop.

        :raises rxdb.ProgrammingError: unless ``seconds`` is a finite number above 0.
        """
        return self._derive(throttled(self, check_interval(seconds)))

    def states(self) -> Stream[Any]:
        """The stream of the watch's :class:`rxdb.WatchState` (loading, live, refreshing,
        error) beside its values; its ``value`` is the watch's latest result, as ``row_type``
        if the watch has one (states are not throttled).

        :raises rxdb.ProgrammingError: on a stream without a watch's states underneath (a
            stream of states itself).
        """
        if self._states is None:
            raise ProgrammingError(
                "states() is not available on this stream: it is not a watch's (a stream of "
                "states has no states of its own)"
            )
        return Stream(self._states(), self.statistics)

    def _derive(self, source: Observable[A]) -> Stream[A]:
        return Stream(source, self.statistics, self._states)


class QueryStream(Stream[list[T]], Generic[T]):
    """What ``watch`` returns on the async shapes: a :class:`Stream` of results, each a list
    of rows (:class:`rxdb.Row` unless the watch was given a ``row_type``).

    Subscribing starts (or joins) the shared query; the first value is the current result.
    The subscribers of one query receive the same list object at each emission: copy it
    before changing it.
    """

    def throttle(self, seconds: float) -> QueryStream[T]:
        """As :meth:`Stream.throttle`, still a stream of results (``diffs`` applies)."""
        return QueryStream(throttled(self, check_interval(seconds)), self.statistics, self._states)

    def diffs(self, key: Key = "id") -> DiffStream[T]:
        """A stream of :class:`rxdb.RowDiff`: what each result changed, rows matched by
        ``key`` (a column name, or a function of a row to a hashable key). The first value
        lists every row as inserted. A result with two rows of one key ends the stream with
        :class:`rxdb.DuplicateKeyError`.

        :raises rxdb.ProgrammingError: at once, for a key that is neither a name nor a
            function; a column name no row has arrives as ``on_error``.
        """
        key_function(key)
        return DiffStream(self, key)


class DiffStream(Stream[RowDiff[T]], Generic[T]):
    """What ``diffs`` returns. A subscriber gets one diff per result. ``async for`` hands
    the loop body the newest state like every stream, and never loses a change doing so:
    each diff it yields is made, when the body asks, against the result of the diff it
    yielded before, so results the body was too busy for fold into the next diff.
    ``throttle`` paces the results underneath, then diffs them (pacing diffs themselves
    would drop some); operators of ``pipe`` see every diff, their stream iterates newest
    first.
    """

    def __init__(self, results: QueryStream[T], key: Key) -> None:
        from reactivex import operators as ops  # see first_values: not loaded at open

        def per_subscriber(_: abc.SchedulerBase) -> Observable[RowDiff[T]]:
            diff: Differ[T] = Differ(key)
            return ops.map(diff)(results)  # each subscriber's diffs start from nothing

        super().__init__(reactivex.defer(per_subscriber), results.statistics, results._states)
        self._results = results
        self._key = key

    def __aiter__(self) -> QueryIterator[RowDiff[T]]:
        differ: Differ[T] = Differ(self._key)
        return QueryIterator(self._results, differ)

    def throttle(self, seconds: float) -> DiffStream[T]:
        """As :meth:`Stream.throttle`, applied to the results before they are diffed."""
        return DiffStream(self._results.throttle(seconds), self._key)


@overload
def shaped(
    stream: QueryStream[Row], row_type: None, throttle: float | None
) -> QueryStream[Row]: ...
@overload
def shaped(
    stream: QueryStream[Row], row_type: Callable[..., A], throttle: float | None
) -> QueryStream[A]: ...
def shaped(
    stream: QueryStream[Row], row_type: Callable[..., Any] | None, throttle: float | None
) -> QueryStream[Any]:
    """``stream`` with the ``row_type`` and ``throttle`` options of ``watch`` applied, each
    checked here (at the call). Paced first: a result the pacing drops is never converted;
    converted once per result for every subscriber of the returned stream."""
    converter = None if row_type is None else converter_for(row_type)
    paced = stream if throttle is None else stream.throttle(throttle)
    if converter is None:
        return paced
    converted = _Converted(paced, converter)
    states = stream._states
    if states is None:
        return QueryStream(converted, stream.statistics)
    from reactivex import operators as ops  # see first_values: not loaded at open

    def converted_states() -> Observable[Any]:
        return ops.map(converted.state)(states())

    return QueryStream(converted, stream.statistics, converted_states)


@overload
def first_rows(
    stream: QueryStream[Row], row_type: None, throttle: float | None
) -> Stream[Row | None]: ...
@overload
def first_rows(
    stream: QueryStream[Row], row_type: Callable[..., A], throttle: float | None
) -> Stream[A | None]: ...
def first_rows(
    stream: QueryStream[Row], row_type: Callable[..., Any] | None, throttle: float | None
) -> Stream[Any]:
    """What ``watch_one`` returns: each result's first row (or ``None``), converted to
    ``row_type``, emitted when it changes (other rows changing emit nothing)."""
    converter = None if row_type is None else converter_for(row_type)
    from reactivex import operators as ops  # see first_values: not loaded at open

    paced = stream if throttle is None else stream.throttle(throttle)
    first = paced.pipe(ops.map(_first), ops.distinct_until_changed())
    return first if converter is None else first.pipe(ops.map(converter.one))


def first_values(stream: QueryStream[Row], throttle: float | None) -> Stream[Any]:
    """What ``watch_value`` returns: the first column of each result's first row (``None``
    for no row), emitted when it changes."""
    # reactivex's operators (~300 functions) load when a stream first needs one, once per
    # stream built (not per result): a program that opens and queries never pays for them.
    from reactivex import operators as ops

    paced = stream if throttle is None else stream.throttle(throttle)
    return paced.pipe(ops.map(_first_value), ops.distinct_until_changed())


def _first(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


def _first_value(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None


class _Converted(Observable[list[A]]):
    """``source``'s results converted once each for all subscribers: one subscription to
    ``source`` while anyone subscribes; a late subscriber gets the latest converted result.
    A result that does not fit ends every subscription with :class:`rxdb.RowTypeError`.

    A big result is converted on a thread (the loop's default executor), as the watch
    compares one: ~1 µs a row would hold the loop for 100 ms at 100,000 rows. Results are
    delivered in order; one overtaken by a newer result's conversion is dropped (the newest
    wins, as everywhere in a watch).
    """

    def __init__(self, source: Observable[list[Row]], converter: RowConverter[A]) -> None:
        super().__init__()
        self._source = source
        self._converter = converter
        self._observers: list[abc.ObserverBase[list[A]]] = []
        self._subscription: abc.DisposableBase | None = None
        self._latest: list[A] | None = None
        self._latest_rows: list[Row] | None = None  # what _latest was converted from
        self._requested = 0  # results received from source, in order
        self._delivered = 0  # the number of the last one delivered
        self._connection = (
            0  # one per subscription to source: a conversion of an old one is dropped
        )

    def _subscribe_core(
        self, observer: abc.ObserverBase[list[A]], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        self._observers.append(observer)
        if len(self._observers) == 1:
            self._latest = None
            subscription = self._source.subscribe(self._next, self._error, self._completed)
            if observer in self._observers:
                self._subscription = subscription
            else:  # it ended while subscribing (a closed database)
                subscription.dispose()
        elif self._latest is not None:
            observer.on_next(self._latest)
        return Disposable(lambda: self._leave(observer))

    def _next(self, rows: list[Row]) -> None:
        self._requested += 1
        ticket, connection = self._requested, self._connection
        if len(rows) >= OFF_LOOP_ROWS:
            try:
                future = asyncio.get_running_loop().run_in_executor(
                    None, self._converter.rows, rows
                )
            except RuntimeError:  # no loop, or its executor is shut down (it is closing)
                pass
            else:
                future.add_done_callback(
                    lambda done: self._finished(ticket, connection, rows, done)
                )
                return
        try:
            converted = self._converter.rows(rows)
        except Exception as error:
            self._error(error)
            return
        self._deliver(ticket, rows, converted)

    def _finished(
        self, ticket: int, connection: int, rows: list[Row], done: asyncio.Future[list[A]]
    ) -> None:
        if connection != self._connection or ticket < self._delivered or done.cancelled():
            return
        error = done.exception()
        if error is not None:
            self._error(error if isinstance(error, Exception) else RuntimeError(error))
            return
        self._deliver(ticket, rows, done.result())

    def _deliver(self, ticket: int, rows: list[Row], converted: list[A]) -> None:
        if ticket < self._delivered:
            return  # a newer result went out already
        self._delivered = ticket
        self._latest, self._latest_rows = converted, rows
        for observer in list(self._observers):
            try:
                observer.on_next(converted)
            except Exception:
                LOG.exception("a watch subscriber raised; other subscribers are unaffected")

    def state(self, state: Any) -> Any:
        """A :class:`rxdb.WatchState` of the watch underneath with its value converted: the
        result delivered already when it is that one (states follow their result), else
        converted here.

        :raises rxdb.RowTypeError: when the columns do not fit.
        """
        rows = getattr(state, "value", None)
        if rows is None:
            return state
        value = self._latest if rows is self._latest_rows else self._converter.rows(rows)
        return dataclasses.replace(state, value=value)

    def _error(self, error: Exception) -> None:
        for observer in self._end():
            observer.on_error(error)

    def _completed(self) -> None:
        for observer in self._end():
            observer.on_completed()

    def _end(self) -> list[abc.ObserverBase[list[A]]]:
        observers, self._observers = self._observers, []
        self._stop()
        return observers

    def _leave(self, observer: abc.ObserverBase[list[A]]) -> None:
        if observer in self._observers:
            self._observers.remove(observer)
            if not self._observers:
                self._stop()

    def _stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        self._latest = self._latest_rows = None
        self._connection += 1
        if subscription is not None:
            subscription.dispose()
