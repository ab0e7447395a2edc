"""The watches of one database: :class:`WatchRegistry`.

It holds one :class:`~rxdb.watch.stream.SharedQuery` per (SQL, parameters, distinct, recover)
while anyone subscribes (and one per snapshot group of ``watch_many``), and wires each to the
engine directly: its read set comes from the engine's analysis, its bus subscription is made
with that read set, and its runs go through one :class:`~rxdb.watch.scheduler.RunScheduler`
to the engine's batched committed fetch (a group's: on one snapshot). A commit reaches a
re-run through the bus, the shared query and the scheduler, or, for a single watch of an
engine that can re-run it right after its own commit
(:class:`~rxdb.engines.seam.EagerWatchSource`), with the rows already read. It also serves
``table_updates``: the engine's change messages themselves, as an Observable.

Knows the engine through :class:`rxdb.engines.seam.WatchSource`; never the façade.
Everything here runs on the database's event loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb._types import Params
from rxdb.bus import Subscription
from rxdb.engines.seam import EagerWatchSource, RowMaintenance, WatchSource
from rxdb.rows import Row, Rows
from rxdb.streams import QueryStream, Stream
from rxdb.updates import NotifyTablesUpdated, UpdateKind, union_reads
from rxdb.watch.group import GroupStream, SharedGroup
from rxdb.watch.incremental import Maintenance
from rxdb.watch.scheduler import RunScheduler
from rxdb.watch.stream import SharedQuery, SharedRows, SharedStream, Subscribe, params_key

__all__ = ("WatchRegistry",)


class WatchRegistry:
    """The shared queries of one database.

    :param engine: where read sets, runs and change messages come from.
    :param ready: opens the database if it is not open yet (a watch may be subscribed
        before it is); awaited before each analysis.
    :param loop: the loop a new subscription is served on; raises if the caller is on
        another loop or the database is closed.
    """

    def __init__(
        self,
        engine: WatchSource,
        *,
        ready: Callable[[], Awaitable[object]],
        loop: Callable[[], asyncio.AbstractEventLoop],
    ) -> None:
        self._engine = engine
        self._ready = ready
        self._loop = loop
        self.queries: dict[Hashable, SharedQuery[Any]] = {}
        """The shared queries subscribed now, for tests and diagnostics."""
        # table_updates subscriptions alive now, each with how to complete it on close.
        self._update_feeds: dict[Subscription, Callable[[], None]] = {}
        self.scheduler = RunScheduler(
            engine.fetch_many_committed,
            parallelism=engine.parallelism,
            fetch_snapshot=functools.partial(engine.fetch_many_committed, snapshot=True),
        )

    def watch(self, sql: str, params: Params, *, distinct: bool, recover: bool) -> QueryStream[Row]:
        """The stream of ``sql``'s results; subscribers of one key share one execution."""
        key = (sql, params_key(params), distinct, recover)

        engine = self._engine
        subscribe: Subscribe = self._subscribe
        if isinstance(engine, EagerWatchSource):
            subscribe = functools.partial(engine.subscribe_query, sql, params)

        def acquire() -> SharedQuery[Any]:
            return self._acquire(
                key,
                lambda **common: SharedRows(
                    submit=functools.partial(self.scheduler.submit, sql, params),
                    read_set=functools.partial(self._read_set, (sql,)),
                    subscribe=subscribe,
                    maintenance=(
                        Maintenance(engine, sql, params)
                        if isinstance(engine, RowMaintenance)
                        else None
                    ),
                    submit_sql=lambda text, done: self.scheduler.submit(text, params, done),
                    **common,
                ),
                distinct=distinct,
                recover=recover,
            )

        shared = SharedStream(acquire, functools.partial(self.queries.get, key))
        return QueryStream(shared, shared.statistics, shared.states)

    def watch_many(
        self, queries: dict[str, tuple[str, Params]], *, distinct: bool, recover: bool
    ) -> Stream[dict[str, Rows]]:
        """The stream of the results of ``queries``, all run on one snapshot, by name."""
        names = tuple(queries)
        members = tuple(queries[name] for name in names)
        key = (
            "group",
            tuple((name, sql, params_key(params)) for name, (sql, params) in queries.items()),
            distinct,
            recover,
        )

        def acquire() -> SharedQuery[Any]:
            return self._acquire(
                key,
                lambda **common: SharedGroup(
                    names,
                    subscribe=self._subscribe,
                    submit=functools.partial(self.scheduler.submit_snapshot, members),
                    read_set=functools.partial(self._read_set, tuple(sql for sql, _ in members)),
                    **common,
                ),
                distinct=distinct,
                recover=recover,
            )

        group = GroupStream(acquire, functools.partial(self.queries.get, key))
        return Stream(group, group.statistics, group.states)

    def _acquire(
        self,
        key: Hashable,
        make: Callable[..., SharedQuery[Any]],
        *,
        distinct: bool,
        recover: bool,
    ) -> SharedQuery[Any]:
        loop = self._loop()
        shared = self.queries.get(key)
        if shared is None:
            shared = self.queries[key] = make(
                distinct=distinct,
                recover=recover,
                loop=loop,
                on_idle=functools.partial(self._forget, key),
            )
        return shared

    def table_updates(
        self, tables: frozenset[str] | None, kinds: frozenset[UpdateKind] | None
    ) -> Observable[NotifyTablesUpdated]:
        """The engine's change messages that touch ``tables`` (all if ``None``) in one of
        ``kinds`` (any if ``None``), delivered on the loop each subscription is made on."""

        def subscribe(
            observer: abc.ObserverBase[NotifyTablesUpdated],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            engine = self._engine
            sub = engine.bus.subscribe(
                engine.key, observer.on_next, tables=tables, kinds=kinds, loop=self._loop()
            )
            self._update_feeds[sub] = observer.on_completed

            def dispose() -> None:
                self._update_feeds.pop(sub, None)
                sub.close()

            return Disposable(dispose)

        return Observable(subscribe)

    def complete(self) -> None:
        """End every subscription normally (the database is closing): watches and
        ``table_updates`` alike, so no subscriber waits for a message that cannot come."""
        for query in list(self.queries.values()):
            query.complete()
        feeds, self._update_feeds = self._update_feeds, {}
        for sub, completed in feeds.items():
            sub.close()
            completed()

    async def _read_set(self, texts: tuple[str, ...]) -> frozenset[str] | None:
        """The tables ``texts`` read together (``None``: every table), with the columns
        all of them know (a :class:`~rxdb.updates.Reads`; see :func:`union_reads`)."""
        await self._ready()
        reads: list[frozenset[str]] = []
        for sql in texts:
            read = await self._engine.read_set(sql)
            if read is None:
                return None
            reads.append(read)
        return reads[0] if len(reads) == 1 else union_reads(reads)

    def _subscribe(
        self,
        tables: frozenset[str] | None,
        callback: Callable[[NotifyTablesUpdated], None],
        _fresh: Callable[[Any], None],
    ) -> Subscription:
        """The usual subscription: the engine never re-runs the query itself."""
        engine = self._engine
        return engine.bus.subscribe(engine.key, callback, tables=tables)

    def _forget(self, key: Hashable, query: SharedQuery[Any]) -> None:
        if self.queries.get(key) is query:
            del self.queries[key]
