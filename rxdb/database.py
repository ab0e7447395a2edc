"""The ``Database`` façade that users hold.

It joins the engine (statements, transactions), the bus (commit messages) and the watch
machinery (shared query streams). It is bound to the event loop that connects it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from parser import fold_name
from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.api import Handle
from rxdb.arguments import (
    backup_path,
    check_backup,
    check_parameter_sets,
    check_sql,
    check_table_names,
    check_text,
    check_watch,
)
from rxdb.bus import Bus, Subscription, default_bus
from rxdb.engines.sqlite import Engine, Synchronous
from rxdb.engines.sqlite.foreign import ForeignWritePoller
from rxdb.engines.sqlite.journal import JOURNAL_TABLE, ForeignJournal
from rxdb.engines.sqlite.read_sets import ReadSets
from rxdb.engines.sqlite.sessions import ReadSession
from rxdb.errors import ClosedError, ProgrammingError, WrongLoopError
from rxdb.handles import handle_for
from rxdb.options import check_option_names, check_options
from rxdb.rows import ExecuteResult, Row
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from rxdb.watch.scheduler import RunScheduler
from rxdb.watch.stream import QueryStream, SharedQuery, params_key

if TYPE_CHECKING:
    from rxdb.remote.hub import Membership

__all__ = ("Database", "open")

LOG = logging.getLogger("rxdb")


class Database:
    """A SQLite database whose committed changes refresh every :meth:`watch` of it.

    Construct it anywhere (nothing happens until :meth:`connect`, ``async with`` or
    :func:`rxdb.open`); after that, use it on the event loop that connected it.

    :param path: a file path, a ``file:`` URI (SQLite's syntax), or ``":memory:"`` for a
        private in-memory database.
    :param readers: the most read-only connections to open for reads outside transactions
        (files in WAL mode only; ``:memory:`` uses one connection for everything).
    :param busy_timeout: seconds to wait for another process's lock before failing.
    :param foreign_keys: enforce foreign keys (SQLite's own default is off).
    :param synchronous: ``PRAGMA synchronous`` for the writer; ``None`` keeps SQLite's default
        (``"full"``: every commit is fsynced). In WAL mode ``"normal"`` is safe against
        corruption and makes commits several times cheaper, but the last commits before a
        power loss (not a crash of the process) may be rolled back.
    :param foreign_poll: seconds between checks for commits made by other programs on the
        file (``PRAGMA data_version`` on the writer); such a commit re-runs every watch, or
        only the affected ones with :meth:`track_foreign_writes`. ``None`` turns the check
        off (then announce such changes with :meth:`notify_updates`).
    :param track_foreign_writes: ``True`` installs the trigger journal at connect (see
        :meth:`track_foreign_writes`); ``None`` uses it if the file has one; ``False``
        never reads it.
    :param share_across_processes: exchange commit messages with other processes that open
        the same file, through a local hub on an owner-only Unix socket (see
        ``docs/processes.md``); ``False`` keeps them in this process.
    :param read_only: open every connection read-only (``mode=ro``), for a file this process
        may not write: reads and watches work (other programs' commits refresh them), writes
        raise :class:`rxdb.ReadOnlyError`, and the file's journal mode is left as it is. A
        ``file:`` URI with ``mode=ro`` or ``immutable=1`` is read-only too.
    :param bus: the bus commits travel on; the process-wide one unless testing.
    :raises rxdb.ProgrammingError: for an option of the wrong type or out of range.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readers: int = 4,
        busy_timeout: float = 5.0,
        foreign_keys: bool = True,
        synchronous: Synchronous | None = None,
        foreign_poll: float | None = 0.05,
        share_across_processes: bool = True,
        track_foreign_writes: bool | None = None,
        read_only: bool = False,
        bus: Bus | None = None,
    ) -> None:
        self.path, location = check_options(
            path,
            readers=readers,
            busy_timeout=busy_timeout,
            foreign_keys=foreign_keys,
            synchronous=synchronous,
            foreign_poll=foreign_poll,
            share_across_processes=share_across_processes,
            track_foreign_writes=track_foreign_writes,
            read_only=read_only,
            bus=bus,
        )
        self._options: dict[str, Any] = {
            "readers": readers,
            "busy_timeout": busy_timeout,
            "foreign_keys": foreign_keys,
            "synchronous": synchronous,
            "foreign_poll": foreign_poll,
            "share_across_processes": share_across_processes,
            "track_foreign_writes": track_foreign_writes,
            "read_only": read_only,
        }
        self._engine = Engine(
            self.path,
            on_commit=self._committed,
            readers=readers,
            busy_timeout=busy_timeout,
            foreign_keys=foreign_keys,
            synchronous=synchronous,
            location=location,
        )
        self.key = location.file or f"memory:{uuid.uuid4().hex}"
        self.origin = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._bus = bus or default_bus
        self._sequence = itertools.count(1)
        self._foreign_sequence = itertools.count(1)
        self._queries: dict[Hashable, SharedQuery] = {}
        self._read_sets = ReadSets(self._fetch_committed, self._engine.probe_reads)
        self._schema_watch: Subscription | None = None
        self._connected = False
        self._connecting: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_ident: int | None = None
        self._options_readers = 1 if self._engine.memory else readers
        self._scheduler: RunScheduler | None = None
        self._poller: ForeignWritePoller | None = None
        self._claims: Subscription | None = None
        self._journal: ForeignJournal | None = None
        self._membership: Membership | None = None
        self._served: Handle | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self) -> Database:
        """Open the connections. Idempotent; concurrent callers share one attempt.

        :raises ClosedError: if the database was closed.
        :raises rxdb.OperationalError: if the file cannot be opened.
        """
        if self._engine.closed:
            raise ClosedError(f"the database {self.path!r} is closed; create a new Database")
        if self._connected:
            return self
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        try:
            await asyncio.shield(self._connecting)
        except BaseException:
            if self._connecting.done():
                self._connecting = None
            raise
        return self

    async def _connect(self) -> None:
        await self._engine.open()
        self._loop = asyncio.get_running_loop()
        self._thread_ident = threading.get_ident()
        self._schema_watch = self._bus.subscribe(
            self.key, self._schema_may_have_changed, tables=frozenset()
        )
        interval = self._options["foreign_poll"]
        wal_index = self._engine.wal_index
        if not self._engine.memory and interval is not None:
            poller = self._poller = ForeignWritePoller(
                self._engine.commit_state,
                (lambda: None) if wal_index is None else wal_index.read,
                self._foreign_commit,
                interval,
            )
            self._claims = self._bus.subscribe(
                self.key, lambda m: None if m.wal_changes is None else poller.claim(m.wal_changes)
            )
            self._journal = ForeignJournal(self, self._options["track_foreign_writes"])
            await poller.start()
        if not self._engine.memory and self._options["share_across_processes"]:
            from rxdb.remote import hub

            membership = self._membership = await hub.join(
                self.key, self._bus, local_origins=lambda: (self.origin,)
            )
            # Other rxdb writers' pollers can skip our commits only if we claim them.
            self._engine.stamp_commits(membership.others_present)
            if self._poller is not None:
                self._poller.claims_expected = membership.others_present
        self._connected = True
        if self._options["track_foreign_writes"]:
            try:
                await self.track_foreign_writes()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Complete every watch, wait for work in flight, and close the connections.

        Idempotent. Afterwards every call raises :class:`rxdb.ClosedError`.
        """
        if self._connecting is not None and not self._connected:
            await asyncio.gather(self._connecting, return_exceptions=True)
        self._engine.refuse_new_work()  # from here on, every new call raises ClosedError
        for query in list(self._queries.values()):
            query.complete()
        if self._schema_watch is not None:
            self._schema_watch.close()
        if self._poller is not None:
            await self._poller.stop()
        if self._journal is not None:
            await self._journal.stop()
        if self._claims is not None:
            self._claims.close()
        await self._engine.close()
        # Last: commits still in flight above were announced to the other processes.
        if self._membership is not None:
            await self._membership.leave()

    @property
    def closed(self) -> bool:
        return self._engine.closed

    def __await__(self) -> Generator[Any, None, Database]:
        """``await db`` connects it (what makes ``await rxdb.open(path)`` work)."""
        return self.connect().__await__()

    async def __aenter__(self) -> Database:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __del__(self) -> None:
        # getattr: a Database whose options were refused never got its attributes.
        if getattr(self, "_connected", False) and not self._engine.closed:
            warnings.warn(
                f"{self!r} was never closed: use 'async with rxdb.open(...)' or 'await db.close()'",
                ResourceWarning,
                stacklevel=1,
            )

    def __repr__(self) -> str:
        return f"<rxdb.Database {self.path!r}>"

    # -- statements -------------------------------------------------------------------------

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Run one statement on the writer.

        :raises rxdb.DatabaseError: (a subclass with SQLite's code) if SQLite refuses it.
        :raises rxdb.ProgrammingError: for several statements, none, or wrong parameters.
        """
        check_sql(sql)
        engine = self._engine if self._connected else await self._ready()
        return await engine.execute(sql, params)

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """Run one statement once per parameter set; return the rows changed in all."""
        check_parameter_sets(seq_of_params, check_sql(sql))
        engine = self._engine if self._connected else await self._ready()
        return await engine.execute_many(sql, seq_of_params)

    async def execute_script(self, script: str) -> None:
        """Run several statements in order. Inside a transaction block they join it."""
        check_text(script)
        await (await self._ready()).execute_script(script)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return every row (a reader outside transactions; the writer,
        with the transaction's own writes visible, inside one)."""
        check_sql(sql)
        engine = self._engine if self._connected else await self._ready()
        return await engine.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or ``None``."""
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode = "immediate") -> AsyncIterator[None]:
        """``async with db.transaction():`` — statements of this task (and tasks it starts)
        inside the block run in one transaction, committed at the end or rolled back on an
        exception. Other tasks' writes wait. A nested block is a savepoint: an exception
        inside it undoes only that block. Watchers hear of the changes once, after the
        outermost commit.

        :param mode: ``"deferred"``, ``"immediate"`` (default: take the write lock at once,
            so the transaction never fails half-way on a lock upgrade) or ``"exclusive"``.
        """
        engine = await self._ready()
        async with engine.transaction(mode):
            yield

    def read(self) -> AbstractAsyncContextManager[ReadSession]:
        """``async with db.read() as r:`` — every statement through ``r`` (or through ``db``
        by this task) inside the block sees one snapshot: commits made meanwhile stay
        invisible until the block ends. Writes inside raise :class:`rxdb.ReadOnlyError`.

        :raises rxdb.ReentrancyError: inside another ``read`` or a transaction.
        """
        return self._read(isolated=True)

    def unsafe_read(self) -> AbstractAsyncContextManager[ReadSession]:
        """Like :meth:`read` without the snapshot: each statement sees the latest commit, so
        two of them may disagree. Cheaper on a file database (no read transaction)."""
        return self._read(isolated=False)

    @asynccontextmanager
    async def _read(self, *, isolated: bool) -> AsyncIterator[ReadSession]:
        engine = await self._ready()
        async with engine.read(isolated=isolated) as session:
            yield session

    async def interrupt(self) -> None:
        """Abort every statement running now, on the writer and the readers.

        The interrupted statement raises :class:`rxdb.InterruptError`; inside a transaction
        block the transaction is rolled back and the block's further statements raise
        :class:`rxdb.TransactionAbortedError`. With nothing running, nothing happens.
        """
        self.interrupt_threadsafe()

    def interrupt_threadsafe(self) -> None:
        """:meth:`interrupt` for any thread (e.g. a UI thread's "Cancel" button)."""
        self._engine.interrupt()

    async def backup(
        self,
        target: str | os.PathLike[str] | Database,
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Copy this database, as of one snapshot, into a file or another open database.

        Writes may continue meanwhile (file databases; ``:memory:`` waits for its one
        connection). ``progress`` is called on a worker thread after each step with a
        :class:`BackupProgress`; raising from it aborts the backup (the exception propagates).
        A target database's watches all re-run afterwards.
        """
        check_backup(pages_per_step, progress)
        engine = await self._ready()
        if isinstance(target, Database):
            await engine.backup(
                await target._ready(), pages_per_step=pages_per_step, progress=progress
            )
            target._publish(frozenset(), everything=True)
        else:
            await engine.backup(
                backup_path(target), pages_per_step=pages_per_step, progress=progress
            )

    async def serializable_connection(self) -> Handle:
        """A picklable handle to this database: ``await handle.connect()`` on another event
        loop (or ``handle.connect_sync()`` in a plain thread) gives a database that shares
        this one's engine and bus (see :mod:`rxdb.handles`). While this database is served
        (:func:`rxdb.serve`), the server's handle, which any process can connect."""
        await self._ready()
        served = self._served
        return served if served is not None else handle_for(self, self._options)

    def set_served(self, handle: Handle | None) -> None:
        """Record the handle of the server serving this database (``None``: no longer
        served), so that :meth:`serializable_connection` hands it out. Called by
        :func:`rxdb.serve` and the server's shutdown, so the database never asks above it."""
        self._served = handle

    def _home(self) -> tuple[asyncio.AbstractEventLoop, int]:
        """The loop this database runs on, and that loop's thread."""
        if self._loop is None or self._thread_ident is None:
            raise ClosedError(f"{self!r} is not connected")
        return self._loop, self._thread_ident

    # -- observation ------------------------------------------------------------------------

    def watch(self, sql: str, params: Params = (), *, distinct: bool = True) -> QueryStream:
        """Observe a query: its result now, then after every commit to a table it reads.

        :param distinct: emit only results that differ from the last one emitted; with
            ``False``, every re-run is emitted.
        :returns: a reactivex Observable of lists of rows, also usable with ``async for``.
            Subscribing connects the database if needed; subscribe on its event loop.
        :raises rxdb.ProgrammingError: at once, for SQL that holds no statement or parameters
            SQLite cannot take (errors of the query itself come through the stream).
        """
        check_watch(sql, params)
        key = (sql, params_key(params), distinct)

        def acquire() -> SharedQuery:
            loop = self._subscription_loop()
            shared = self._queries.get(key)
            if shared is None:
                shared = SharedQuery(
                    submit=lambda done: self._run_scheduler().submit(sql, params, done),
                    read_set=lambda: self._read_sets.read_set(sql),
                    subscribe=self._subscribe_tables,
                    distinct=distinct,
                    loop=loop,
                    on_idle=lambda done: self._forget(key, done),
                )
                self._queries[key] = shared
            return shared

        return QueryStream(acquire, lambda: self._queries.get(key))

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        """An Observable of :class:`NotifyTablesUpdated`, one per commit that touched any of
        ``tables`` (all tables if ``None``) in one of ``kinds``. Subscribe on the database's
        loop; messages are delivered there."""
        wanted = None if tables is None else frozenset(map(fold_name, check_table_names(tables)))
        wanted_kinds = None if kinds is None else frozenset(kinds)

        def subscribe(
            observer: abc.ObserverBase[NotifyTablesUpdated],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            sub = self._bus.subscribe(
                self.key,
                observer.on_next,
                tables=wanted,
                kinds=wanted_kinds,
                loop=self._subscription_loop(),
            )
            return Disposable(sub.close)

        return Observable(subscribe)

    async def track_foreign_writes(self) -> None:
        """Journal which tables other programs write, so that their commits re-run only
        the watches of those tables (without it, every watch re-runs).

        Installs, in the file, a small table ``rxdb_journal`` and ``AFTER`` triggers on
        every table; they fire for every writer (rxdb too), at the cost of one upsert per
        written row. Every rxdb database on the file then uses the journal and keeps the
        triggers in step with schema changes. Idempotent.

        :raises rxdb.ProgrammingError: for ``:memory:`` or with ``foreign_poll=None``
            (there is no foreign writer to see).
        """
        await self._ready()
        if self._journal is None:
            raise ProgrammingError(
                "track_foreign_writes needs a file database with foreign_poll enabled"
            )
        await self._journal.install()

    async def untrack_foreign_writes(self) -> None:
        """Remove the journal and its triggers from the file (for every rxdb using it)."""
        await self._ready()
        if self._journal is not None:
            await self._journal.uninstall()

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        """Tell watchers about changes rxdb could not see (made by another library on this
        file, say). With no arguments: anything may have changed, every watch re-runs."""
        check_table_names(updates, TableUpdate)
        await self._ready()
        table_updates = frozenset(
            u if isinstance(u, TableUpdate) else TableUpdate(fold_name(u)) for u in updates
        )
        self._publish(table_updates, everything=not table_updates)

    # -- internals --------------------------------------------------------------------------

    async def _ready(self) -> Engine:
        if not self._connected:
            await self.connect()
        return self._engine

    def _subscription_loop(self) -> asyncio.AbstractEventLoop:
        """The loop a new subscription will be served on: the running one, which must be the
        database's own."""
        if self._engine.closed:
            raise ClosedError(f"the database {self.path!r} is closed; open it again to watch")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise WrongLoopError(
                "subscribe on the event loop the database runs on; no loop runs in this thread"
            ) from None
        if self._loop is not None and loop is not self._loop:
            raise WrongLoopError(
                f"the database {self.path!r} belongs to another event loop; subscribe there"
            )
        return loop

    def _committed(
        self,
        updates: frozenset[TableUpdate],
        everything: bool,
        wal_changes: tuple[int, int] | None,
    ) -> None:
        # Called on the writer's worker thread, right after the outermost commit.
        if any(update.table == JOURNAL_TABLE for update in updates):
            updates = frozenset(u for u in updates if u.table != JOURNAL_TABLE)
        self._publish(updates, everything=everything, wal_changes=wal_changes)

    def _publish(
        self,
        updates: frozenset[TableUpdate],
        *,
        everything: bool,
        wal_changes: tuple[int, int] | None = None,
    ) -> None:
        self._bus.publish(
            NotifyTablesUpdated(
                self.key, self.origin, next(self._sequence), updates, everything, wal_changes
            )
        )

    def _subscribe_tables(
        self,
        tables: frozenset[str] | None,
        callback: Callable[[NotifyTablesUpdated], None],
    ) -> Subscription:
        return self._bus.subscribe(self.key, callback, tables=tables)

    async def _foreign_commit(self) -> None:
        updates = None
        if self._journal is not None:
            try:
                updates = await self._journal.changes()
            except Exception:
                LOG.warning("reading the foreign-write journal failed", exc_info=True)
        if updates is None or updates:
            # Under an origin of its own: the hub forwards only what this process wrote,
            # and every other process sees the foreign commit with its own poller.
            self._bus.publish(
                NotifyTablesUpdated(
                    self.key,
                    f"{self.origin}/foreign",
                    next(self._foreign_sequence),
                    updates or frozenset(),
                    everything=updates is None,
                )
            )

    def _schema_may_have_changed(self, message: NotifyTablesUpdated) -> None:
        self._read_sets.schema_may_have_changed()
        if message.origin == self.origin and self._journal is not None:
            self._journal.reconcile_soon()  # our own DDL: new tables need their triggers

    def _forget(self, key: Hashable, query: SharedQuery) -> None:
        if self._queries.get(key) is query:
            del self._queries[key]

    def _run_scheduler(self) -> RunScheduler:
        if self._scheduler is None:
            self._scheduler = RunScheduler(
                lambda queries: self._fetch_many_committed(queries),
                parallelism=self._options_readers,
            )
        return self._scheduler

    async def _fetch_many_committed(
        self, queries: Sequence[tuple[str, Params]]
    ) -> Sequence[list[Row] | Exception]:
        engine = self._engine if self._connected else await self._ready()
        return await engine.fetch_many_committed(queries)

    async def _fetch_committed(self, sql: str, params: Params) -> list[Row]:
        engine = self._engine if self._connected else await self._ready()
        return await engine.fetch_committed(sql, params)


def open(path: str | os.PathLike[str], **options: Any) -> Database:
    """Open a database: ``db = await rxdb.open(path)`` or ``async with rxdb.open(path) as db``.

    Options are those of :class:`Database`.

    :raises rxdb.ProgrammingError: for an unknown or wrong option.
    """
    check_option_names(options, "rxdb.open")
    return Database(path, **options)
