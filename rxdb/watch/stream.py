"""Query streams: what ``db.watch(sql)`` returns, and the shared execution behind it.

One :class:`SharedQuery` exists per (database, SQL, parameters, distinct) while anyone
subscribes; every subscriber of it sees the same runs. Re-runs follow the rule measured in
NOTES.md to be never stale and never backlogged: at most one run in flight, at most one
pending after it, however many commits arrive meanwhile.

Everything here runs on the database's event loop; the only doors in from other threads are
the bus and an engine's eager re-runs (``call_soon_threadsafe``, see
:class:`rxdb.engines.seam.EagerWatchSource`) and :meth:`SharedQuery.detach`, which hops the
same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb.bus import Subscription
from rxdb.rows import FrozenRows, Rows, release, same_rows
from rxdb.streams.iteration import QueryIterator
from rxdb.streams.statistics import WatchStatistics
from rxdb.updates import NotifyTablesUpdated
from rxdb.watch.incremental import Maintenance
from rxdb.watch.scheduler import Run
from rxdb.watch.states import WatchState

__all__ = (
    "ResultStream",
    "SharedQuery",
    "SharedRows",
    "SharedStream",
    "StateStream",
    "Subscribe",
    "WatchStatistics",
    "WatchStream",
)

LOG = logging.getLogger("rxdb.watch")

V = TypeVar("V")
T = TypeVar("T")
E = TypeVar("E")

Submit = Callable[[Callable[[Any], None]], Run]
ReadSet = Callable[[], Awaitable[frozenset[str] | None]]
Subscribe = Callable[
    [frozenset[str] | None, Callable[[NotifyTablesUpdated], None], Callable[[Any], None]],
    Subscription,
]
"""Subscribe to commits on ``tables``: ``notified(message)`` the usual way, or (where the
engine re-runs the query itself right after its commit) ``fresh(result or None)``."""


class SharedQuery(Generic[V]):
    """The single execution behind every subscriber of one watched query.

    Runs are handed to a :class:`rxdb.watch.scheduler.RunScheduler`; ``busy`` covers a run queued or
    in flight, ``pending`` a commit that arrived meanwhile. Reading the tables a query depends
    on (views expand from the schema) is the only step that needs a task of its own, at the
    start and after a schema change.

    Two kinds of subscriber share it: result observers and state observers
    (:class:`rxdb.watch.states.WatchState`); both keep it running, and at every step results
    go out before the state that refers to them. With ``recover``, a failed run (or a failed
    analysis) is a state, not the end: the watch stays subscribed, re-analyses on the next
    schema change, re-runs on the next commit it hears, and goes live again when a run works.
    How results compare and what subscribers get is :meth:`_compare`'s and
    :meth:`_latest_value`'s (one query here; a snapshot group in :mod:`rxdb.watch.group`).
    """

    def __init__(
        self,
        *,
        submit: Submit,
        read_set: ReadSet,
        subscribe: Subscribe,
        distinct: bool,
        loop: asyncio.AbstractEventLoop,
        on_idle: Callable[[SharedQuery[Any]], None],
        recover: bool = False,
    ) -> None:
        self._submit = submit
        self._read_set = read_set
        self._subscribe = subscribe
        self._distinct = distinct
        self._recover = recover
        self._loop = loop
        self._on_idle = on_idle
        self._observers: list[abc.ObserverBase[V]] = []
        self._state_observers: list[abc.ObserverBase[WatchState[V]]] = []
        self._state: WatchState[V] = WatchState("loading")
        self._busy = False
        self._pending = False
        self._reanalyze = True
        self._analysis: asyncio.Task[None] | None = None
        self._bus: Subscription | None = None
        self._runs = 0
        self._emissions = 0
        self._stopped = False
        self._run: Run | None = None  # the last run handed to the scheduler
        self._thread = threading.get_ident()

    def statistics(self) -> WatchStatistics:
        return WatchStatistics(
            len(self._observers) + len(self._state_observers),
            self._runs,
            self._emissions,
            self._busy,
            self._pending,
        )

    def attach(self, observer: abc.ObserverBase[V]) -> Callable[[], None]:
        """Add a subscriber; it gets the latest result at once if there is one."""
        self._observers.append(observer)
        latest = self._latest_value()
        if not self._started():
            self._kick()
        elif latest is not None:
            observer.on_next(latest)
        return lambda: self.detach(observer)

    def attach_states(self, observer: abc.ObserverBase[WatchState[V]]) -> Callable[[], None]:
        """Add a state subscriber; it gets the current state at once."""
        self._state_observers.append(observer)
        state = self._state
        if self._busy and not state.busy:  # an eager result being compared (see _fresh)
            state = self._state = WatchState("refreshing", state.value, state.error)
        observer.on_next(state)
        if not self._started():
            self._kick()
        return lambda: self.detach(observer)

    def _started(self) -> bool:
        """Whether anything runs the query yet (the first subscriber starts it)."""
        return self._busy or self._bus is not None or self._stopped

    def detach(self, observer: abc.ObserverBase[Any]) -> None:
        """Remove a subscriber; the last one to leave stops the query. Safe from any thread."""
        if threading.get_ident() != self._thread:
            # A closed loop runs nothing any more: then there is nothing to detach from.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.detach, observer)
            return
        for observers in (self._observers, self._state_observers):
            with contextlib.suppress(ValueError):
                observers.remove(observer)
                break
        else:
            return
        if not self._observers and not self._state_observers:
            self._stop()

    def complete(self) -> None:
        """End every subscription normally (the database is closing)."""
        observers, states = self._take_observers()
        for observer in observers:
            _safely(observer.on_completed)
        for state in states:
            _safely(state.on_completed)

    def _notified(self, message: NotifyTablesUpdated) -> None:
        if message.everything:
            self._reanalyze = True
        self._kick()

    def _fresh(self, result: object | None) -> None:
        """A commit this query depends on, with the query's result read right after it
        (``None``: not read). Taken as a run's result only when no run of its own is queued
        or in flight and no analysis is due; else (or without a result) the commit counts
        as :meth:`_notified` would count it: a run now, or a pending one."""
        if result is None or self._busy or self._reanalyze:
            self._kick()
            return
        if self._stopped:
            return
        self._busy = True
        if self._state_observers and self._state.phase != "loading":
            # Only for someone to see: without state observers the run's end replaces it
            # unseen, and :meth:`attach_states` makes it for one that comes meanwhile (a big
            # result is compared off the loop). Building it cost the emission several µs.
            self._set_state(WatchState("refreshing", self._state.value, self._state.error))
        # As :meth:`_finished` would, minus its checks: rows read by the engine, never an
        # error, and not stopped (above). Each frame costs several µs here, cold after a commit.
        self._runs += 1
        self._compare(result)

    def _kick(self) -> None:
        if self._stopped:
            return
        if self._busy:
            self._pending = True
            return
        self._busy = True
        if self._state.phase != "loading":
            self._set_state(WatchState("refreshing", self._state.value, self._state.error))
        # Pending means commits arrived while the last run was in flight: under a write
        # storm, so the re-run is paced by what that run cost (see rxdb.watch.scheduler).
        rerun, self._pending = self._pending, False
        if self._reanalyze:
            self._reanalyze = False
            # A fresh context: the analysis must not inherit a transaction from whoever
            # triggered it.
            self._analysis = self._loop.create_task(self._analyze(), context=contextvars.Context())
        elif rerun and self._run is not None:
            self._run = self._run.again()
        else:
            self._run = self._submit(self._finished)

    async def _analyze(self) -> None:
        try:
            tables = await self._read_set()
        except Exception as error:
            self._busy = False
            if self._recover and self._bus is None:
                # Nothing to retarget: hear the schema changes (``everything``) only, the
                # one kind of commit that can make the query analysable.
                self._bus = self._subscribe(frozenset(), self._notified, self._fresh)
            self._reanalyze = True
            self._fail(error)
            return
        finally:
            self._analysis = None
        if self._stopped:
            return
        # Subscribed before the query runs: a commit from now on marks a re-run as pending.
        if self._bus is None:
            self._bus = self._subscribe(tables, self._notified, self._fresh)
        else:
            self._bus.retarget(tables)
        self._run = self._submit(self._finished)

    def _finished(self, result: object) -> None:
        if self._stopped:
            return
        if isinstance(result, Exception):
            self._busy = False
            self._fail(result)
            return
        self._runs += 1
        self._compare(result)

    def _compare(self, result: Any) -> None:
        """Compare a run's result with the last one emitted, then :meth:`_settled`."""
        raise NotImplementedError

    def _latest_value(self) -> V | None:
        """What a late subscriber gets at once: the last result emitted, or ``None``."""
        raise NotImplementedError

    def _settled(self, value: V | None) -> None:
        """End a run: emit ``value`` unless ``None`` (equal to the last one), then go live."""
        self._busy = False
        if value is not None:
            self._emissions += 1
            for observer in list(self._observers):
                # :func:`_safely` inlined: one frame less on the road of every emission.
                try:
                    observer.on_next(value)
                except Exception:
                    LOG.exception(_SUBSCRIBER_RAISED)
        self._set_state(WatchState("live", self._state.value if value is None else value))
        if self._pending:
            self._kick()

    def _fail(self, error: Exception) -> None:
        self._set_state(WatchState("error", self._state.value, error))
        if self._recover:
            if self._pending:
                self._kick()
            return
        observers, states = self._take_observers()
        for observer in observers:
            _safely(observer.on_error, error)
        for state in states:
            _safely(state.on_completed)  # the error went out as a state

    def _set_state(self, state: WatchState[V]) -> None:
        current = self._state
        if state.phase == current.phase and state == current:  # a change of phase: no __eq__
            return
        self._state = state
        for observer in list(self._state_observers):
            _safely(observer.on_next, state)

    def _take_observers(
        self,
    ) -> tuple[list[abc.ObserverBase[V]], list[abc.ObserverBase[WatchState[V]]]]:
        observers, self._observers = self._observers, []
        states, self._state_observers = self._state_observers, []
        self._stop()
        return observers, states

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._bus is not None:
            self._bus.close()
        if self._analysis is not None and self._analysis is not asyncio.current_task():
            self._analysis.cancel()
        if self._run is not None:
            self._run.abandon()  # in flight, it would keep a reader busy for nobody
        self._on_idle(self)


class SharedRows(SharedQuery[Rows]):
    """The shared query of one ``db.watch(sql)``.

    With ``maintenance`` (:mod:`rxdb.watch.incremental`), a commit whose message carries a
    patch for this query that applies to the last result is handled by patching that
    result, without a run; every other commit runs the query as usual.
    """

    def __init__(
        self,
        *,
        maintenance: Maintenance | None = None,
        submit_sql: Callable[[str, Callable[[Any], None]], Run] | None = None,
        **kwargs: Any,
    ) -> None:
        if maintenance is not None and submit_sql is not None:
            read_set = kwargs["read_set"]
            kwargs["read_set"] = lambda: self._analysed(read_set)
            kwargs["submit"] = functools.partial(self._submit_maintained, maintenance, submit_sql)
        else:
            maintenance = None
        self._maintenance = maintenance
        super().__init__(**kwargs)
        self._latest: FrozenRows | None = None  # the result emitted last

    def _latest_value(self) -> Rows | None:
        return None if self._latest is None else self._latest.thaw()

    def statistics(self) -> WatchStatistics:
        found = super().statistics()
        if self._maintenance is None:
            return found
        return dataclasses.replace(found, patched=self._maintenance.patched)

    async def _analysed(self, read_set: ReadSet) -> frozenset[str] | None:
        tables = await read_set()
        if self._maintenance is not None and not self._stopped:
            await self._maintenance.start()
        return tables

    @staticmethod
    def _submit_maintained(
        maintenance: Maintenance,
        submit_sql: Callable[[str, Callable[[Any], None]], Run],
        done: Callable[[Any], None],
    ) -> Run:
        maintenance.run_starts()
        return submit_sql(maintenance.sql, maintenance.submitted(done))

    def _kick(self) -> None:
        if self._maintenance is not None and not self._busy:
            self._maintenance.run_starts()  # a paced re-run (Run.again) starts no later
        super()._kick()

    def _fresh(self, result: object | None) -> None:
        # Rows the engine read itself (an eager re-run of the query as written, without the
        # rowid tie-break): no base for a patch.
        if self._maintenance is not None:
            self._maintenance.forget()
        super()._fresh(result)

    def _notified(self, message: NotifyTablesUpdated) -> None:
        maintenance = self._maintenance
        latest = self._latest
        if maintenance is None or latest is None or self._busy or self._stopped:
            super()._notified(message)
            return
        patched = maintenance.apply(message)
        if patched is False:
            super()._notified(message)
            return
        # As a run would: refreshing, then live with the new result (or the same one).
        self._set_state(WatchState("refreshing", self._state.value, self._state.error))
        if patched is True:
            self._settled(None if self._distinct else latest.thaw())
            return
        self._latest = latest.over(patched)  # the maintained list itself: no copy
        self._settled(self._latest.thaw())  # the subscribers' copy, one per emission

    def _stop(self) -> None:
        if not self._stopped and self._maintenance is not None:
            self._maintenance.stop()
        super()._stop()

    def _compare(self, result: Rows) -> None:
        latest = self._latest if self._distinct else None
        if len(result) < _OFF_LOOP_ROWS:
            self._prepared_now(result, _prepare(result, latest))
            return
        # Comparing a big result (and freezing it, or freeing it when unchanged) holds the GIL
        # for tens of ms: a thread (the loop's default executor) does it a slice at a time,
        # and the loop stays free meanwhile; the run stays busy until it is done.
        try:
            future = self._loop.run_in_executor(None, _prepare, result, latest)
        except RuntimeError:  # the executor is shut down: the loop is closing
            self._prepared_now(result, _prepare(result, latest))
            return
        future.add_done_callback(lambda done: self._prepared(result, done))

    def _prepared(self, result: Rows, done: asyncio.Future[FrozenRows | None]) -> None:
        if self._stopped or done.cancelled():
            return
        error = done.exception()
        if error is not None:
            self._busy = False
            self._fail(error if isinstance(error, Exception) else RuntimeError(error))
            return
        self._prepared_now(result, done.result())

    def _prepared_now(self, result: Rows, frozen: FrozenRows | None) -> None:
        """Emit ``result`` unless ``frozen`` is ``None`` (equal to the last one).

        Every subscriber gets the same list (a copy each would cost a million-row list its
        time, memory and collector walks per subscriber); the watch compares with and hands
        late subscribers ``frozen``, so what a subscriber does to its list changes neither.
        """
        if frozen is not None:
            self._latest = frozen
        if self._maintenance is not None and self._latest is not None:
            self._maintenance.run_ended(self._latest.values)
        self._settled(None if frozen is None else result)


_OFF_LOOP_ROWS = 10_000
"""Results this long are compared on a thread: above ~1 ms of work on the loop."""


def _prepare(result: Rows, latest: FrozenRows | None) -> FrozenRows | None:
    """Return ``None`` if ``result`` equals ``latest`` (and empty a long ``result``, this
    run's own list, which nobody else holds: here, off the loop, is where its rows are best
    freed), else ``result`` frozen."""
    if len(result) <= _FEW_ROWS:
        # Frozen first, then compared as one tuple: same_rows' slicing (its iterators, and
        # a release) cost an emission ~5 µs on the loop, cold after a commit's wake-up.
        frozen = FrozenRows(result)
        # tuple(): a maintained result is kept in a list (a tuple is returned as it is).
        return None if latest is not None and frozen.values == tuple(latest.values) else frozen
    if latest is not None and same_rows(result, latest):
        release(result)
        return None
    return FrozenRows(result)


_FEW_ROWS = 64
"""Results this short are compared whole: freezing them costs less than comparing by slices."""


_SUBSCRIBER_RAISED = "a watch subscriber raised; other subscribers are unaffected"


def _safely(callback: Callable[..., Any], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        LOG.exception(_SUBSCRIBER_RAISED)


class WatchStream(Observable[E]):
    """An Observable over one shared query, and an async iterable of its newest event.

    Subscribing starts (or joins) the shared query. Subscribe on the database's event loop;
    events are delivered there.
    """

    def __init__(
        self,
        acquire: Callable[[], SharedQuery[Any]],
        peek: Callable[[], SharedQuery[Any] | None],
    ) -> None:
        super().__init__()
        self._acquire = acquire
        self._peek = peek

    def _attach(
        self, shared: SharedQuery[Any], observer: abc.ObserverBase[E]
    ) -> Callable[[], None]:
        raise NotImplementedError

    def _subscribe_core(
        self, observer: abc.ObserverBase[E], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return Disposable(self._attach(self._acquire(), observer))

    def __aiter__(self) -> QueryIterator[E]:
        return QueryIterator(self)

    def statistics(self) -> WatchStatistics:
        """Statistics of the shared query behind this stream (zeros when nobody subscribes)."""
        shared = self._peek()
        return WatchStatistics() if shared is None else shared.statistics()


class ResultStream(WatchStream[V]):
    """A stream of a shared query's results, with :meth:`states` beside it."""

    def _attach(
        self, shared: SharedQuery[Any], observer: abc.ObserverBase[V]
    ) -> Callable[[], None]:
        return cast("SharedQuery[V]", shared).attach(observer)

    def states(self) -> StateStream[V]:
        """The stream of this watch's :class:`rxdb.WatchState`: the current one at once, then
        one per change of phase. It shares this watch's runs (it adds none) and keeps the
        watch running as a subscriber of its own; each ``live`` state comes after the result
        it carries. ``async for`` over it yields the newest state."""
        return StateStream(self._acquire, self._peek)


class StateStream(WatchStream[WatchState[V]]):
    """What ``stream.states()`` returns (see :meth:`ResultStream.states`)."""

    def _attach(
        self, shared: SharedQuery[Any], observer: abc.ObserverBase[WatchState[V]]
    ) -> Callable[[], None]:
        return cast("SharedQuery[V]", shared).attach_states(observer)


class SharedStream(ResultStream[Rows]):
    """The results of one watched query, as rows: what :class:`rxdb.QueryStream` (the stream
    ``db.watch(sql)`` returns, :mod:`rxdb.streams`) subscribes to.

    Subscribing starts (or joins) the shared query; the first value is the current result.
    Subscribe on the database's event loop; values are delivered there. The subscribers of
    one query receive the same list object at each emission: copy it before changing it.
    """


def params_key(params: Any) -> Hashable:
    """A hashable key for statement parameters, or a unique object if they are not hashable
    (then that watch shares its execution with nobody)."""
    try:
        if hasattr(params, "keys"):
            key: Hashable = ("named", tuple(sorted(params.items())))
        else:
            key = ("positional", tuple(params))
        hash(key)
        return key
    except TypeError:
        return object()
