"""The SQLite engine behind the seam (:class:`rxdb.engines.seam.DatabaseEngine`).

:class:`SQLiteEngine` is the connections (:class:`~rxdb.engines.sqlite.engine.Engine`: the
tracked writer, the readers, read blocks, transactions) plus everything that turns commits
into messages on the bus: this process's commits as the writer captures them, other
programs' commits as the poller (:mod:`~rxdb.engines.sqlite.foreign`) and the trigger journal
(:mod:`~rxdb.engines.sqlite.journal`) find them, other rxdb processes' through the
transport (the hub) it is given, and the schema-change hook that makes read sets
(:mod:`~rxdb.engines.sqlite.read_sets`) and the journal's triggers follow DDL.

It extends the connections instead of wrapping them so that every statement keeps its one
call from the façade to the writer or a reader (no forwarding coroutine on the hot path).

Internal: not covered by rxdb's versioning. Knows nothing of Rx, watches or the façade.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import os
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING

from rxdb._types import Params, ProgressCallback
from rxdb.bus import Bus, Callback, Membership, Subscription, Transport
from rxdb.engines.seam import DatabaseEngine, EagerWatchSource
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.engines.sqlite.eager import EagerReads, Fresh
from rxdb.engines.sqlite.engine import Engine, Synchronous
from rxdb.engines.sqlite.foreign import ForeignWritePoller
from rxdb.engines.sqlite.journal import JOURNAL_TABLE, ForeignJournal
from rxdb.engines.sqlite.location import Location
from rxdb.engines.sqlite.receipt import ReceiptReads
from rxdb.engines.sqlite.wal_watch import FileWatch
from rxdb.errors import ProgrammingError
from rxdb.updates import NotifyTablesUpdated, RowPatch, TableUpdate

if TYPE_CHECKING:  # loaded with the first maintained watch (see _maintain)
    from parser.maintainable import Maintainable
    from rxdb.engines.sqlite.maintenance import Mark, RowFeed

__all__ = ("SQLiteEngine",)

LOG = logging.getLogger("rxdb")

_table_of = operator.attrgetter("table")


class SQLiteEngine(Engine):
    """One SQLite database (a file, or ``:memory:``) as an engine of rxdb.

    :param bus: where commit messages go (and where the schema-change hook listens).
    :param transport: carries this file's messages to other processes (the hub), or ``None``.
    :param foreign_poll: seconds between checks for other programs' commits; ``None``: none.
    :param track_foreign_writes: ``True`` installs the trigger journal at :meth:`open`;
        ``None`` uses it if the file has one; ``False`` never reads it.
    """

    def __init__(
        self,
        path: str,
        *,
        location: Location,
        bus: Bus,
        transport: Transport | None,
        readers: int,
        busy_timeout: float,
        foreign_keys: bool,
        synchronous: Synchronous | None,
        foreign_poll: float | None,
        track_foreign_writes: bool | None,
    ) -> None:
        super().__init__(
            path,
            on_commit=self._committed,
            readers=readers,
            busy_timeout=busy_timeout,
            foreign_keys=foreign_keys,
            synchronous=synchronous,
            location=location,
        )
        self.key = location.file or f"memory:{os.urandom(16).hex()}"
        self.origin = f"{os.getpid()}:{os.urandom(6).hex()}"
        self.bus = bus
        self.parallelism = 1 if self.memory else readers
        self._transport = transport
        self._foreign_poll = foreign_poll
        self._track = track_foreign_writes
        self._sequence = itertools.count(1)
        self._foreign_sequence = itertools.count(1)
        self._read_sets: ReadSets | None = None  # see read_sets
        self.eager = EagerReads(bus, self.key, self.costs)
        self.receipts: ReceiptReads | None = None  # WAL mode only (set at open)
        self.poller: ForeignWritePoller | None = None
        self.journal: ForeignJournal | None = None
        self.membership: Membership | None = None
        self._schema_watch: Subscription | None = None
        self._claims: Subscription | None = None
        self._feed: RowFeed | None = None  # created on the writer's thread when first needed

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the connections, then the change sources: the schema-change hook, the
        poller (its baseline before anyone reads), the hub. A failure after the connections
        opened closes everything again."""
        await super().open()
        worker = self._check().worker
        self.eager.attach(worker)
        if self._readers is not None:  # WAL: other connections see the writer's commits
            worker.raw.reads_target = self.location.target
            self.receipts = ReceiptReads(self.location.target, self.origin, self.costs)
        try:
            await self._start_changes()
        except BaseException:
            await self.close()
            raise

    async def _start_changes(self) -> None:
        bus = self.bus
        self._schema_watch = bus.subscribe(
            self.key, self._schema_may_have_changed, tables=frozenset()
        )
        interval = self._foreign_poll
        wal_index = self.wal_index
        if not self.memory and interval is not None:
            poller = self.poller = ForeignWritePoller(
                self.commit_state,
                (lambda: None) if wal_index is None else wal_index.read,
                self._foreign_commit,
                interval,
                self._watch_files,
                self.writer_busy,
            )
            # Only stamped commits carry a claim: the others must not wake the loop for it.
            self._claims = bus.subscribe(
                self.key,
                lambda m: None if m.wal_changes is None else poller.claim(m.wal_changes),
                wanted=lambda m: m.wal_changes is not None,
            )
            self.journal = ForeignJournal(self, self._track)
            await poller.start()
        if not self.memory and self._transport is not None:
            membership = self.membership = await self._transport.join(
                self.key, bus, local_origins=lambda: (self.origin,)
            )
            # Other rxdb writers' pollers can skip our commits only if we claim them.
            self.stamp_commits(membership.others_present)
            if self.poller is not None:
                self.poller.claims_expected = membership.others_present
        if self._track:
            await self.track_foreign_writes()

    def _watch_files(self, on_change: Callable[[], None]) -> FileWatch | None:
        """Be told of writes to the file, and to its ``-wal`` file in WAL mode (where every
        commit goes), instead of polling for other programs' commits."""
        file = self.location.file or self.path
        paths = [file] if self.wal_index is None else [file, f"{file}-wal"]
        watch = FileWatch.start(paths, on_change)
        poller = self.poller
        if watch is not None and poller is not None:
            # Our own commits' events then cost no hop, and no look before the commit is over.
            self.remember_commit_states(poller.nudge, lambda: poller.wants_nudge)
        return watch

    def refuse_new_work(self) -> None:
        super().refuse_new_work()
        self.eager.refuse()

    async def close(self) -> None:
        self.refuse_new_work()
        if self.receipts is not None:
            self.receipts.close()
        if self._schema_watch is not None:
            self._schema_watch.close()
        if self.poller is not None:
            await self.poller.stop()
        if self.journal is not None:
            await self.journal.stop()
        if self._claims is not None:
            self._claims.close()
        await super().close()
        # Last: commits still in flight above were announced to the other processes.
        if self.membership is not None:
            await self.membership.leave()

    # -- change messages --------------------------------------------------------------------

    def _committed(
        self,
        updates: frozenset[TableUpdate],
        everything: bool,
        wal_changes: tuple[int, int] | None,
    ) -> None:
        # Called on the writer's worker thread, right after the outermost commit.
        if JOURNAL_TABLE in map(_table_of, updates):  # no generator: see NotifyTablesUpdated
            updates = frozenset(u for u in updates if u.table != JOURNAL_TABLE)
        feed = self._feed
        patches = None if feed is None else feed.take(everything)
        # A partial, not a lambda: no Python frame of its own on the road to every emission.
        self.eager.publish(
            functools.partial(
                self._publish,
                updates,
                everything=everything,
                wal_changes=wal_changes,
                patches=patches,
            )
        )

    def announce(self, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        self._publish(updates, everything=everything)

    def _publish(
        self,
        updates: frozenset[TableUpdate],
        *,
        everything: bool,
        wal_changes: tuple[int, int] | None = None,
        patches: Mapping[Hashable, RowPatch] | None = None,
    ) -> None:
        self.bus.publish(
            NotifyTablesUpdated(
                self.key,
                self.origin,
                next(self._sequence),
                updates,
                everything,
                wal_changes,
                patches,
            )
        )

    async def _foreign_commit(self) -> None:
        updates = None
        if self.journal is not None:
            try:
                updates = await self.journal.changes()
            except Exception:
                LOG.warning("reading the foreign-write journal failed", exc_info=True)
        if updates is None or updates:
            # Under an origin of its own: the hub forwards only what this process wrote,
            # and every other process sees the foreign commit with its own poller.
            self.bus.publish(
                NotifyTablesUpdated(
                    self.key,
                    f"{self.origin}/foreign",
                    next(self._foreign_sequence),
                    updates or frozenset(),
                    everything=updates is None,
                )
            )

    @property
    def read_sets(self) -> ReadSets:
        """What watches read, made on the first watch's analysis: with it the parser's
        catalog and read-set resolution load, which a program that never watches never
        needs."""
        read_sets = self._read_sets
        if read_sets is None:
            from rxdb.engines.sqlite.read_sets import ReadSets

            read_sets = self._read_sets = ReadSets(self.fetch_committed, self.probe_reads)
        return read_sets

    def _schema_may_have_changed(self, message: NotifyTablesUpdated) -> None:
        if self._read_sets is not None:
            self._read_sets.schema_may_have_changed()
        if message.origin == self.origin and self.journal is not None:
            self.journal.reconcile_soon()  # our own DDL: new tables need their triggers

    # -- what watches and the façade ask ----------------------------------------------------

    async def read_set(self, sql: str) -> frozenset[str] | None:
        return await self.read_sets.read_set(sql)

    def subscribe_query(
        self,
        sql: str,
        params: Params,
        tables: frozenset[str] | None,
        notified: Callback,
        fresh: Fresh,
    ) -> Subscription:
        sub = self.eager.subscribe(sql, params, tables, notified, fresh)
        receipts = self.receipts
        return sub if receipts is None else receipts.adopt(sub, sql, params, fresh)

    # -- maintained queries (rxdb.engines.sqlite.maintenance) -------------------------------

    async def maintain(self, key: Hashable, sql: str, params: Params) -> Maintainable | None:
        """Send this process's commits to ``sql``'s rows with their messages, as patches
        under ``key``, if ``sql`` can be maintained row by row; else ``None``."""
        worker = self._check().worker
        return await worker.call(self._maintain, worker.raw, key, sql, params)

    def _maintain(
        self, connection: TrackedConnection, key: Hashable, sql: str, params: Params
    ) -> Maintainable | None:
        if self._feed is None:
            # Here, not at the top: a program that never watches (or whose watches are
            # never maintained) does not load the maintenance machinery and its parser.
            from rxdb.engines.sqlite.maintenance import RowFeed

            self._feed = RowFeed(connection, self.wal_index)
        return self._feed.start(key, sql, params)

    def stop_maintaining(self, key: Hashable) -> None:
        """Undo :meth:`maintain` (from the loop; the writer does it in its own time)."""
        feed, writer = self._feed, self._writer
        if feed is not None and writer is not None:
            writer.worker.post(feed.stop, key)

    def maintenance_mark(self, table: str) -> Mark | None:
        """Where ``table``'s patches are (see :class:`RowFeed`); safe from any thread."""
        feed = self._feed
        return None if feed is None else feed.mark(table)

    async def backup(
        self,
        target: str | Engine | DatabaseEngine,
        *,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> None:
        if not isinstance(target, str | Engine):
            raise ProgrammingError(
                f"a SQLite database backs up into a file or another SQLite database, not {target!r}"
            )
        await super().backup(target, pages_per_step=pages_per_step, progress=progress)

    async def track_foreign_writes(self) -> None:
        if self.journal is None:
            raise ProgrammingError(
                "track_foreign_writes needs a file database with foreign_poll enabled"
            )
        await self.journal.install()

    async def untrack_foreign_writes(self) -> None:
        if self.journal is not None:
            await self.journal.uninstall()


if TYPE_CHECKING:
    from rxdb.engines.sqlite.read_sets import ReadSets

    _conforms: type[DatabaseEngine] = SQLiteEngine  # the seam, checked by mypy
    _eager: type[EagerWatchSource] = SQLiteEngine
