"""The ``Database`` façade that users hold, the ways to open one, and its handle.

The façade checks arguments, keeps the lifecycle (connect once, close once, the loop it
belongs to) and delegates: statements, reads and transactions to the engine
(:class:`rxdb.engines.seam.DatabaseEngine`), watches to :class:`rxdb.watch.registry.WatchRegistry`.
It knows one engine by name only in :func:`engine_for`, which picks it from the path.

:class:`ConnectionHandle` and :func:`open_sync` live here rather than in modules of their
own because they open databases and databases hand out handles: apart, the modules would
import each other. With them the module is a little over 500 lines (the class is ~350).
"""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Generator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reactivex import Observable

from parser import fold_name
from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.arguments import (
    backup_path,
    check_backup,
    check_flags,
    check_parameter_sets,
    check_sql,
    check_table_names,
    check_text,
    check_update_kinds,
    check_watch,
    check_watch_many,
)
from rxdb.bus import Bus, Transport, default_bus
from rxdb.engines.seam import DatabaseEngine
from rxdb.engines.sqlite import SQLiteEngine, Synchronous
from rxdb.engines.sqlite.location import Location
from rxdb.engines.sqlite.workers import uninterrupted
from rxdb.errors import ClosedError, ProgrammingError, WrongLoopError
from rxdb.options import check_option_names, check_options
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.streams.fetches import AsyncFetches
from rxdb.streams.watches import AsyncWatches
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

if TYPE_CHECKING:
    from rxdb.api import AsyncDatabase, AsyncReadSession, BlockingDatabase, Handle, Queries
    from rxdb.boundary.blocking import SyncDatabase
    from rxdb.engines.postgres.dsn import Dsn
    from rxdb.streams.stream import QueryStream, Stream
    from rxdb.watch.registry import WatchRegistry

__all__ = ("ConnectionHandle", "Database", "engine_for", "open", "open_sync")


class Database(AsyncFetches, AsyncWatches):
    """A SQLite database whose committed changes refresh every :meth:`watch` of it.

    Construct it anywhere (nothing happens until :meth:`connect`, ``async with`` or
    :func:`rxdb.open`); after that, use it on the event loop that connected it.

    :param path: a file path, a ``file:`` URI (SQLite's syntax), ``":memory:"`` for a
        private in-memory database, or a ``postgresql://`` URL (``docs/postgres.md``). The
        ``path`` attribute keeps it as given, a URL's password included; the repr and rxdb's
        messages never show the password.
    :param readers: the most read-only connections to open for reads outside transactions
        (files in WAL mode only; ``:memory:`` uses one connection for everything).
    :param busy_timeout: seconds to wait for another process's lock before failing.
    :param foreign_keys: enforce foreign keys (SQLite's own default is off).
    :param synchronous: ``PRAGMA synchronous`` for the writer. ``None``: ``"normal"`` for a
        file in WAL mode (safe against corruption, survives any crash of the process, and
        several times cheaper per commit; the last commits before a power loss or an OS crash
        may be rolled back), SQLite's default (``"full"``) otherwise. ``"full"`` fsyncs every
        commit: durable across power loss too (docs/guarantees.md, "Durability").
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
        self._options: dict[str, Any] = {
            "readers": readers,
            "busy_timeout": busy_timeout,
            "foreign_keys": foreign_keys,
            "synchronous": synchronous,
            "foreign_poll": foreign_poll,
            "share_across_processes": share_across_processes,
            "track_foreign_writes": track_foreign_writes,
            "read_only": read_only,
        }  # what a handle needs to open the database anew (the bus is this process's)
        self.path, where = check_options(path, bus=bus, **self._options)
        self._engine = engine_for(self.path, where, self._options, bus or default_bus)
        # How messages and the repr name it: a PostgreSQL URL without its password.
        self._shown = self.path if isinstance(where, Location) else where.shown
        self.key = self._engine.key  # the identity on the bus: the file's real path, say
        self.origin = self._engine.origin  # of this database's commit messages
        self._registry: dict[str, WatchRegistry] = {}  # made by the first watch: _watches
        self._connected = False
        self._connecting: asyncio.Task[None] | None = None
        self._waiting = 0  # callers of connect() waiting for self._connecting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_ident: int | None = None
        self._served: Handle | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self) -> Database:
        """Open the connections. Idempotent; concurrent callers share one attempt.

        :raises ClosedError: if the database was closed.
        :raises rxdb.OperationalError: if the file cannot be opened.
        """
        if self._engine.closed:
            raise ClosedError(
                f"the database {self._shown!r} is closed; open a new one (rxdb.open) to use "
                "the file"
            )
        if self._connected:
            return self
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())
        attempt = self._connecting
        self._waiting += 1
        try:
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            if self._waiting == 1:
                # Nobody else waits for this open: finish it and close, so that a cancelled
                # open leaves no thread, connection or hub membership behind.
                await uninterrupted(self.close())
            raise
        except BaseException:
            if attempt.done() and self._connecting is attempt:
                self._connecting = None
            raise
        finally:
            self._waiting -= 1
        return self

    async def _connect(self) -> None:
        await self._engine.open()
        self._loop = asyncio.get_running_loop()
        self._thread_ident = threading.get_ident()
        self._connected = True

    async def close(self) -> None:
        """Complete every watch, wait for work in flight, and close the connections.

        Never waits for ever: work still running after a short grace (2 s, see
        ``docs/lifecycle.md``) is interrupted, and a transaction another task holds is rolled
        back. Idempotent. Afterwards every call raises :class:`rxdb.ClosedError`.
        """
        if self._connecting is not None and not self._connected:
            await asyncio.gather(self._connecting, return_exceptions=True)
        self._engine.refuse_new_work()  # from here on, every new call raises ClosedError
        registry = self._registry.get("watches")
        if registry is not None:
            registry.complete()
        await self._engine.close()

    @property
    def closed(self) -> bool:
        return self._engine.closed

    @property
    def _watches(self) -> WatchRegistry:
        """The registry of this database's watches, made on first use: the watch machinery
        (shared queries, their scheduler, maintenance) is imported then, so a program that
        never watches (a script, a background writer) never loads it."""
        registry = self._registry.get("watches")
        if registry is None:
            from rxdb.watch.registry import WatchRegistry

            made = WatchRegistry(self._engine, ready=self.connect, loop=self._subscription_loop)
            # Threads may race here (the blocking façade watches from its caller's thread):
            # dict.setdefault is atomic, so all of them get the one stored first.
            registry = self._registry.setdefault("watches", made)
        return registry

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
        return f"<rxdb.Database {self._shown!r}>"

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

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        """Run a query (a reader outside transactions; the writer, with the transaction's
        own writes visible, inside one); ``fetch_all``, ``fetch_one`` and ``fetch_value``
        (with their ``row_type=``) are :class:`rxdb.streams.AsyncFetches`'."""
        check_sql(sql)
        engine = self._engine if self._connected else await self._ready()
        return await engine.fetch_all(sql, params)

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

    def read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        """``async with db.read() as r:`` — every statement through ``r`` (or through ``db``
        by this task) inside the block sees one snapshot: commits made meanwhile stay
        invisible until the block ends. Writes inside raise :class:`rxdb.ReadOnlyError`.

        :raises rxdb.ReentrancyError: inside another ``read`` or a transaction.
        """
        return self._read(isolated=True)

    def unsafe_read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        """Like :meth:`read` without the snapshot: each statement sees the latest commit, so
        two of them may disagree. Cheaper on a file database (no read transaction)."""
        return self._read(isolated=False)

    @asynccontextmanager
    async def _read(self, *, isolated: bool) -> AsyncIterator[AsyncReadSession]:
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

    def interrupt_writer(self) -> None:
        """Abort the statement running on the writer only, leaving reads alone (a server
        stops one client's transaction this way). Safe from any thread."""
        self._engine.interrupt_writer()

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
            target._engine.announce(frozenset(), everything=True)
        else:
            await engine.backup(
                backup_path(target), pages_per_step=pages_per_step, progress=progress
            )

    async def serializable_connection(self) -> Handle:
        """A picklable handle to this database: ``await handle.connect()`` on another event
        loop (or ``handle.connect_sync()`` in a plain thread) gives a database that shares
        this one's engine and bus (see :class:`ConnectionHandle`). While this database is served
        (:func:`rxdb.serve`), the server's handle, which any process can connect."""
        await self._ready()
        if self._served is not None:
            return self._served
        token = os.urandom(16).hex()
        with _LIVE_LOCK:
            for stale in [t for t, ref in _LIVE.items() if ref() is None]:
                del _LIVE[stale]
            _LIVE[token] = weakref.ref(self)
        options = tuple(sorted(self._options.items()))
        return ConnectionHandle(self.path, self.key, options, token, os.getpid())

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

    def _watch_rows(
        self, sql: str, params: Params, *, distinct: bool, recover: bool
    ) -> QueryStream[Row]:
        """The watch behind ``watch``, ``watch_one`` and ``watch_value``
        (:class:`rxdb.streams.AsyncWatches`): subscribing connects the database if needed;
        ``states()`` of what they return is this watch's."""
        check_watch(sql, params)
        return self._watches.watch(sql, params, distinct=distinct, recover=recover)

    def watch_many(
        self,
        queries: Queries,
        *,
        distinct: bool = True,
        recover: bool = False,
    ) -> Stream[dict[str, Rows]]:
        """Observe several queries as one consistent group: each emission is a dict of their
        results by name, all read from ONE snapshot, so they never disagree (a list and its
        total). The group re-runs, as a whole, after every commit to a table any of them
        reads.

        :param queries: ``{name: sql}`` or ``{name: (sql, params)}``.
        :param distinct: emit only when some member's result changed; with ``False``, every
            re-run is emitted.
        :param recover: as for :meth:`watch` (a member failing fails the group's run).
        :raises rxdb.ProgrammingError: at once, for ``queries`` that is not a non-empty
            mapping of names to queries, or a query :meth:`watch` would refuse.
        """
        checked = check_watch_many(queries)
        check_flags(distinct=distinct, recover=recover)
        return self._watches.watch_many(checked, distinct=distinct, recover=recover)

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        """An Observable of :class:`NotifyTablesUpdated`, one per commit that touched any of
        ``tables`` (all tables if ``None``) in one of ``kinds``. Subscribe on the database's
        loop; messages are delivered there."""
        wanted = None if tables is None else frozenset(map(fold_name, check_table_names(tables)))
        return self._watches.table_updates(
            wanted, None if kinds is None else check_update_kinds(kinds)
        )

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
        await (await self._ready()).track_foreign_writes()

    async def untrack_foreign_writes(self) -> None:
        """Remove the journal and its triggers from the file (for every rxdb using it)."""
        await (await self._ready()).untrack_foreign_writes()

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        """Tell watchers about changes rxdb could not see (made by another library on this
        file, say). With no arguments: anything may have changed, every watch re-runs."""
        check_table_names(updates, TableUpdate)
        engine = await self._ready()
        self._subscription_loop()  # closed, or another loop's: refuse as every call does
        table_updates = frozenset(
            u if isinstance(u, TableUpdate) else TableUpdate(fold_name(u)) for u in updates
        )
        engine.announce(table_updates, everything=not table_updates)

    # -- internals --------------------------------------------------------------------------

    async def _ready(self) -> DatabaseEngine:
        if not self._connected:
            await self.connect()
        return self._engine

    def _subscription_loop(self) -> asyncio.AbstractEventLoop:
        """The loop a new subscription will be served on: the running one, which must be the
        database's own."""
        if self._engine.closed:
            raise ClosedError(
                f"the database {self._shown!r} is closed; open a new one (rxdb.open) to use "
                "the file"
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise WrongLoopError(
                "subscribe on the event loop the database runs on; no loop runs in this thread"
            ) from None
        if self._loop is not None and loop is not self._loop:
            raise WrongLoopError(
                f"the database {self._shown!r} belongs to another event loop; subscribe there"
            )
        return loop


def open(path: str | os.PathLike[str], **options: Any) -> Database:
    """Open a database: ``db = await rxdb.open(path)`` or ``async with rxdb.open(path) as db``.

    Options are those of :class:`Database`.

    :raises rxdb.ProgrammingError: for an unknown or wrong option.
    """
    check_option_names(options, "rxdb.open")
    return Database(path, **options)


def open_sync(path: str | os.PathLike[str], **options: Any) -> SyncDatabase:
    """Open a database for blocking use: ``db = rxdb.open_sync(path)`` or ``with ... as db:``.

    The database runs on an event loop in a thread of its own (see
    :class:`rxdb.SyncDatabase`). Options are those of :class:`Database`.

    :raises rxdb.WrongLoopError: if this thread runs an event loop (use ``await rxdb.open``).
    :raises rxdb.ProgrammingError: for an unknown or wrong option.
    :raises rxdb.OperationalError: if the file cannot be opened.
    """
    from rxdb.boundary.blocking import SyncDatabase
    from rxdb.boundary.loop_thread import LoopThread, refuse_running_loop

    refuse_running_loop("open_sync")
    database = open(path, **options)  # wrong options fail before a thread starts
    runner = LoopThread(f"rxdb-sync {database.path}")
    try:
        runner.run(database.connect)
    except BaseException:
        runner.stop()
        raise
    return SyncDatabase(database, runner)


def engine_for(
    path: str, where: Location | Dsn, options: dict[str, Any], bus: Bus
) -> DatabaseEngine:
    """Make the engine for ``path``: the one place that knows engines by name.

    A ``postgresql://`` URL (``where`` is its :class:`Dsn`) gets the PostgreSQL engine, whose
    server carries notifications to every process; anything else is a SQLite database (a
    file, a ``file:`` URI, ``:memory:``), and a SQLite file shared across processes reaches
    the other processes through the hub (a :class:`rxdb.bus.Transport`).

    :raises rxdb.ProgrammingError: for a PostgreSQL URL without the ``rxdb[postgres]`` extra.
    """
    if not isinstance(where, Location):  # a PostgreSQL URL's Dsn
        try:
            from rxdb.engines.postgres.engine import PostgresEngine
        except ImportError as error:
            raise ProgrammingError(
                f"{where.shown} needs asyncpg: pip install 'rxdb[postgres]' ({error})"
            ) from error
        return PostgresEngine(
            path,
            dsn=where,
            bus=bus,
            readers=options["readers"],
            busy_timeout=options["busy_timeout"],
            read_only=options["read_only"],
            track_foreign_writes=options["track_foreign_writes"],
        )
    transport: Transport | None = None
    if not where.memory and options["share_across_processes"]:
        import rxdb.remote.hub as hub

        transport = hub
    return SQLiteEngine(
        path,
        location=where,
        bus=bus,
        transport=transport,
        readers=options["readers"],
        busy_timeout=options["busy_timeout"],
        foreign_keys=options["foreign_keys"],
        synchronous=options["synchronous"],
        foreign_poll=options["foreign_poll"],
        track_foreign_writes=options["track_foreign_writes"],
    )


# Databases that handed out a handle, by token: weak, so a handle never keeps one alive.
_LIVE: dict[str, weakref.ref[Database]] = {}
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class ConnectionHandle:
    """A picklable reference to an open database (``await db.serializable_connection()``).

    In this process, ``await handle.connect()`` on another event loop gives a database that
    shares the original's engine and bus (a :class:`rxdb.BridgedDatabase`; on the original's
    own loop, the original itself), and ``handle.connect_sync()`` in a plain thread gives the
    blocking façade over it. Once the original is closed, or in another process, a handle to
    a file opens the file anew (its commits still reach the other databases through the bus
    and, across processes, through polling); a handle to ``:memory:`` cannot, since that
    database lives only in its process. Its ``path`` is the database's as given (a
    PostgreSQL URL with its password, if it has one; the repr leaves the password out).
    """

    path: str
    key: str
    options: tuple[tuple[str, Any], ...]
    token: str
    pid: int

    def __repr__(self) -> str:
        # A PostgreSQL URL may hold the password: shown without it, as Database shows it.
        from rxdb.engines.postgres.dsn import is_postgres_url, parse_dsn  # rare: not at import

        shown = parse_dsn(self.path).shown if is_postgres_url(self.path) else self.path
        return f"<rxdb.ConnectionHandle {shown!r} pid={self.pid}>"

    async def connect(self) -> AsyncDatabase:
        """A database bound to the running loop that shares the original's engine and bus.

        :raises rxdb.ClosedError: for a ``:memory:`` database that is closed or lives in
            another process.
        """
        origin = self._origin()
        if origin is not None:
            loop, _ = origin._home()
            if loop is asyncio.get_running_loop():
                return origin
            from rxdb.boundary.bridge import BridgedDatabase

            return BridgedDatabase(origin, loop)
        return await Database(self._reopenable(), **dict(self.options))

    def connect_sync(self) -> BlockingDatabase:
        """The blocking façade (:func:`open_sync`) over the same database, for a thread
        without an event loop."""
        from rxdb.boundary.blocking import SyncDatabase
        from rxdb.boundary.loop_thread import BorrowedLoop, refuse_running_loop

        refuse_running_loop("connect_sync")
        origin = self._origin()
        if origin is not None:
            loop, thread_ident = origin._home()
            return SyncDatabase(origin, BorrowedLoop(loop, thread_ident))
        return open_sync(self._reopenable(), **dict(self.options))

    def _origin(self) -> Database | None:
        if self.pid != os.getpid():
            return None
        with _LIVE_LOCK:
            ref = _LIVE.get(self.token)
        database = ref() if ref is not None else None
        if database is None or database.closed:
            return None
        return database

    def _reopenable(self) -> str:
        if self.path in (":memory:", ""):
            raise ClosedError(
                "this handle's in-memory database is closed or lives in another process; an "
                "in-memory database is reachable only while its owner keeps it open"
            )
        return self.path
