"""The in-process table-update bus.

Writers publish from whatever thread commits (usually a connection's worker thread);
subscribers live on event loops. A message crosses to a loop through exactly one door,
``loop.call_soon_threadsafe``, once per loop and message however many subscribers that loop
holds, so a commit costs one wake-up per interested loop plus O(interested subscribers).
Subscriptions are indexed by database and table (and column, for a read set that knows its
columns), so uninterested subscribers cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from rxdb.updates import NotifyTablesUpdated, UpdateKind, columns_read

__all__ = ("Bus", "BusStatistics", "Membership", "Subscription", "Transport", "default_bus")

LOG = logging.getLogger("rxdb.bus")

Callback = Callable[[NotifyTablesUpdated], None]


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """A snapshot for tests and diagnostics."""

    subscriptions: int
    published: int
    deliveries: int


class Subscription:
    """One subscriber's interest in one database. Close it to stop deliveries.

    ``tables`` of ``None`` means every table; an empty set means none, so only messages that
    say "anything may have changed" arrive. The callback runs on ``loop``'s thread and
    never sees a message published after :meth:`close` returned on that thread.
    """

    __slots__ = ("_bus", "callback", "closed", "database", "kinds", "loop", "tables", "wanted")

    def __init__(
        self,
        bus: Bus,
        database: str,
        tables: frozenset[str] | None,
        kinds: frozenset[UpdateKind] | None,
        callback: Callback,
        loop: asyncio.AbstractEventLoop,
        wanted: Callable[[NotifyTablesUpdated], bool] | None = None,
    ) -> None:
        self._bus = bus
        self.database = database
        self.tables = tables
        self.kinds = kinds
        self.callback = callback
        self.loop = loop
        self.wanted = wanted
        # An attribute, not a property: read on the road from every commit to its emission,
        # where Python frames add up, cold. Set by :meth:`close`, or (without the bus's lock)
        # by a hub link abandoned in a forked child.
        self.closed = False

    def retarget(self, tables: Iterable[str] | None) -> None:
        """Change the tables of interest (e.g. after a schema change redefined a view)."""
        self._bus._reindex(self, _read_set(tables))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self)

    def __repr__(self) -> str:
        tables = "all" if self.tables is None else sorted(self.tables)
        return f"<Subscription {self.database} tables={tables}>"


class _DatabaseIndex:
    """Subscriptions of one database: all of them (for "anything may have changed"), those
    that want every table, and the rest by table; of those, the ones that read known columns
    of a table (:class:`~rxdb.updates.Reads`) also by column, so that an ``UPDATE`` of other
    columns passes them by at the cost of one lookup per updated column."""

    __slots__ = ("all", "by_column", "by_table", "every_table", "whole")

    def __init__(self) -> None:
        self.all: set[Subscription] = set()
        self.every_table: set[Subscription] = set()
        self.by_table: dict[str, set[Subscription]] = {}
        # by_table[t] split: whole[t] may read any column of t, by_column[t][c] reads c.
        self.whole: dict[str, set[Subscription]] = {}
        self.by_column: dict[str, dict[str, set[Subscription]]] = {}

    def add(self, sub: Subscription) -> None:
        self.all.add(sub)
        if sub.tables is None:
            self.every_table.add(sub)
            return
        for table in sub.tables:
            self.by_table.setdefault(table, set()).add(sub)
            columns = columns_read(sub.tables, table)
            if columns is None:
                self.whole.setdefault(table, set()).add(sub)
                continue
            readers = self.by_column.setdefault(table, {})
            for column in columns:
                readers.setdefault(column, set()).add(sub)

    def discard(self, sub: Subscription) -> None:
        self.all.discard(sub)
        if sub.tables is None:
            self.every_table.discard(sub)
            return
        for table in sub.tables:
            _discard(self.by_table, table, sub)
            columns = columns_read(sub.tables, table)
            if columns is None:
                _discard(self.whole, table, sub)
                continue
            readers = self.by_column.get(table)
            if readers is not None:
                for column in columns:
                    _discard(readers, column, sub)
                if not readers:
                    del self.by_column[table]

    def interested(self, message: NotifyTablesUpdated) -> set[Subscription]:
        if message.everything:
            return set(self.all)
        found = set(self.every_table)
        for update in message.updates:
            table = update.table
            columns = update.columns
            if columns is None or update.kind is not UpdateKind.UPDATE:
                subs = self.by_table.get(table)
                if subs:
                    found.update(subs)
                continue
            subs = self.whole.get(table)
            if subs:
                found.update(subs)
            readers = self.by_column.get(table)
            if readers:
                for column in columns:
                    subs = readers.get(column)
                    if subs:
                        found.update(subs)
        return found


def _read_set(tables: Iterable[str] | None) -> frozenset[str] | None:
    # A frozenset is kept as it is: a Reads keeps its columns.
    return tables if tables is None or isinstance(tables, frozenset) else frozenset(tables)


def _discard(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> None:
    subs = index.get(key)
    if subs is not None:
        subs.discard(sub)
        if not subs:
            del index[key]


class Bus:
    """Thread-safe publish; delivery on each subscriber's own loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._databases: dict[str, _DatabaseIndex] = {}
        self._published = 0
        self._deliveries = 0

    def subscribe(
        self,
        database: str,
        callback: Callback,
        *,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        wanted: Callable[[NotifyTablesUpdated], bool] | None = None,
    ) -> Subscription:
        """Call ``callback(message)`` on ``loop`` for each message that may affect ``tables``.

        :param tables: a :class:`~rxdb.updates.Reads` also skips updates of columns it does
            not read; any other set hears every change to its tables.

        :param loop: where the callback runs; defaults to the running loop.
        :param wanted: asked on the *publishing* thread, before anything is scheduled:
            ``False`` skips the delivery, and the wake-up of ``loop`` with it. Must be cheap
            and safe from any thread.
        :raises RuntimeError: if no loop is given and none is running in this thread.
        """
        sub = Subscription(
            self,
            database,
            _read_set(tables),
            None if kinds is None else frozenset(kinds),
            callback,
            loop or asyncio.get_running_loop(),
            wanted,
        )
        with self._lock:
            self._databases.setdefault(database, _DatabaseIndex()).add(sub)
        return sub

    def publish(self, message: NotifyTablesUpdated) -> None:
        """Hand ``message`` to every interested subscriber. Safe from any thread."""
        with self._lock:
            index = self._databases.get(message.database)
            self._published += 1
            if index is None:
                return
            interested = index.interested(message)
            self._deliveries += len(interested)
        if not interested:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
        for sub in interested:
            if sub.wanted is None or sub.wanted(message):
                by_loop.setdefault(sub.loop, []).append(sub)
        for loop, subs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver_all, subs, message)
            except RuntimeError:
                # The loop is closed: its subscribers can never run again.
                LOG.debug("dropping %d subscribers of a closed event loop", len(subs))
                for sub in subs:
                    sub.close()

    def statistics(self) -> BusStatistics:
        with self._lock:
            count = sum(len(index.all) for index in self._databases.values())
            return BusStatistics(count, self._published, self._deliveries)

    def _reindex(self, sub: Subscription, tables: frozenset[str] | None) -> None:
        with self._lock:
            index = self._databases.get(sub.database)
            if index is None or sub.closed:
                return
            index.discard(sub)
            sub.tables = tables
            index.add(sub)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            index = self._databases.get(sub.database)
            if index is None:
                return
            index.discard(sub)
            if not index.all:
                del self._databases[sub.database]


def _deliver_all(subs: list[Subscription], message: NotifyTablesUpdated) -> None:
    # On the subscribers' loop; one call per subscriber on the hot path of every commit.
    for sub in subs:
        # The index already matched tables and columns; only a kind filter is left to check.
        if sub.closed or (sub.kinds is not None and not message.affects(sub.tables, sub.kinds)):
            continue
        try:
            sub.callback(message)
        except Exception:
            LOG.exception("table-update subscriber %r failed; others are unaffected", sub)


default_bus = Bus()
"""The process-wide bus: every database opened in this process publishes here."""


class Membership(Protocol):
    """One database's place on a :class:`Transport`: held while the database is open."""

    def others_present(self) -> bool:
        """Whether another process shares the database now (its commits are claimed)."""
        ...

    async def leave(self) -> None:
        """Stop sharing (idempotent); the last member of a process closes the link."""
        ...


class Transport(Protocol):
    """The seam through which a bus reaches other processes: the hub for SQLite files,
    a server's own notifications for engines that have them (PostgreSQL's LISTEN/NOTIFY).

    A transport carries, for one database ``key``, the messages whose origin is in
    ``local_origins()`` to the other processes, and publishes theirs on ``bus`` unchanged.
    A gap or a reconnect is published as an ``everything`` message (every watch re-runs).
    """

    async def join(
        self, key: str, bus: Bus, *, local_origins: Callable[[], Collection[str]]
    ) -> Membership:
        """Start sharing ``key``; returns once connected (or, late, still trying).

        :raises rxdb.RxdbError: (a subclass) if the transport cannot be used at all.
        """
        ...
