"""One SQLite database as rxdb drives it: a tracked writer, readers, and read blocks.

A file database in WAL mode gets one writer and a pool of read-only readers; anything else
(``:memory:``, a file where WAL is refused) gets the writer alone, which then also serves
reads under the write lock. The API is the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Literal, cast

from parser import StatementKind, Unanalyzable, analyze
from rxdb._types import Params, ProgressCallback
from rxdb.engines.closing import CLOSE_GRACE
from rxdb.engines.ownership import transaction_outside_reads
from rxdb.engines.sqlite.capture import CommitCallback
from rxdb.engines.sqlite.connections import ReaderConnection, TrackedConnection
from rxdb.engines.sqlite.location import Location, locate, opening_error
from rxdb.engines.sqlite.readers import ReadCosts, ReaderPool
from rxdb.engines.sqlite.sessions import ReadSession, read_only_violation
from rxdb.engines.sqlite.walindex import CommitStamper, StateReadings, WalIndex
from rxdb.engines.sqlite.workers import Worker
from rxdb.engines.sqlite.writer import TransactionMode, Writer
from rxdb.errors import ClosedError, DatabaseError, ReentrancyError, WrongLoopError, from_sqlite
from rxdb.rows import ExecuteResult, Row

__all__ = ("WAL_SYNCHRONOUS", "Engine", "Synchronous", "TransactionMode")

Synchronous = Literal["off", "normal", "full", "extra"]
_SNAPSHOT_SQL = "BEGIN; SELECT 1 FROM sqlite_schema LIMIT 1;"

WAL_SYNCHRONOUS: Final[Synchronous] = "normal"
"""The writer's ``PRAGMA synchronous`` when none is given and the file is in WAL mode.

In WAL mode NORMAL syncs the log at checkpoints, not at each commit: a commit survives any
crash of the process (it is in the WAL file, which the OS writes out), only the last commits
before a power loss or an OS crash may be rolled back, and the file is never corrupted. FULL
makes every commit wait for an fsync, which costs more than everything else a commit does
(docs/benchmarks.md, rows 1b.f and 1b.n). SQLite's own default (FULL) stays for any other
journal mode, where NORMAL can corrupt the file on a power loss, and ``synchronous="full"``
asks for it (docs/guarantees.md, "Durability")."""


class Engine:
    """Open with :meth:`open`; every method must be awaited on the loop that opened it."""

    def __init__(
        self,
        path: str,
        *,
        on_commit: CommitCallback,
        readers: int,
        busy_timeout: float,
        foreign_keys: bool,
        synchronous: Synchronous | None = None,
        location: Location | None = None,
    ) -> None:
        self.path = path
        self.location = location or locate(path)
        self.memory = self.location.memory
        self.read_only = self.location.read_only
        self._on_commit = on_commit
        self._reader_count = readers
        self._busy_timeout = busy_timeout
        self._pragmas = [f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}"]
        if synchronous is not None:
            self._pragmas.append(f"PRAGMA synchronous = {synchronous.upper()}")
        self._synchronous = synchronous
        self._writer: Writer | None = None
        self._readers: ReaderPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_scope: contextvars.ContextVar[ReadSession | None] = contextvars.ContextVar(
            "rxdb_read_scope", default=None
        )
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self.wal_index: WalIndex | None = None
        """The file's commit counter, when the database is in WAL mode and it can be read."""
        self._readings = StateReadings(None)  # see commit_state
        self.costs = ReadCosts()
        """What each query text took when last run, on a reader or (eagerly) on the writer."""

    async def open(self) -> None:
        """Open the writer (on a read-only database, a read-only connection in its place)
        and switch a writable file to WAL mode.

        :raises rxdb.DatabaseError: if SQLite cannot open the file (or it is no database).
        """
        self._loop = asyncio.get_running_loop()
        factory = functools.partial(TrackedConnection, on_commit=self._on_commit)
        try:
            worker = await Worker.open(
                self.location.target,
                factory,
                isolation_level=None,
                timeout=self._busy_timeout,
                check_same_thread=False,  # in_transaction and interrupt() from the loop
                uri=True,
            )
        except sqlite3.Error as error:
            raise opening_error(error, self.path, self.location) from error
        writer = Writer(worker, lambda: self._closed)
        try:
            for pragma in self._pragmas:
                await writer.raw(pragma)
            if not self.memory:
                # A read-only database keeps the journal mode it has (setting one writes).
                pragma = "PRAGMA journal_mode" + ("" if self.read_only else " = WAL")
                mode = await worker.call(worker.raw.fetch, pragma, ())
                if mode[0][0].lower() == "wal":
                    if self._synchronous is None and not self.read_only:
                        await writer.raw(f"PRAGMA synchronous = {WAL_SYNCHRONOUS.upper()}")
                    self._readers = ReaderPool(self._open_reader, self._reader_count, self.costs)
                    self.wal_index = WalIndex(self.location.file or self.path)
                    self._readings = StateReadings(self.wal_index)
        except BaseException as error:
            await self._abandon_open(worker)
            cause = error.__cause__ if isinstance(error, DatabaseError) else error
            if isinstance(cause, sqlite3.Error):
                raise opening_error(cause, self.path, self.location) from cause
            raise
        self._writer = writer

    async def _abandon_open(self, worker: Worker[TrackedConnection]) -> None:
        await worker.close()
        if self.wal_index is not None:
            self.wal_index.release()
            self.wal_index = None

    async def _open_reader(self) -> Worker[ReaderConnection]:
        reader = await Worker.open(
            self.location.target,
            ReaderConnection,
            isolation_level=None,
            timeout=self._busy_timeout,
            uri=True,
        )
        try:
            await reader.call(reader.raw.fetch, "PRAGMA query_only = ON", ())
        except BaseException:
            await reader.close()
            raise
        return reader

    @property
    def closed(self) -> bool:
        return self._closed

    # -- statements -------------------------------------------------------------------------

    # Not coroutine functions: the awaitable returned is the writer's own (one coroutine
    # less to resume on the road from every write to its result).
    def execute(self, sql: str, params: Params) -> Coroutine[Any, Any, ExecuteResult]:
        return self._write(sql).run(sql, TrackedConnection.run, sql, params)

    def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> Coroutine[Any, Any, int]:
        return self._write(sql).run(sql, TrackedConnection.run_many, sql, seq_of_params)

    def execute_script(self, script: str) -> Coroutine[Any, Any, None]:
        return self._write(script).run(script, TrackedConnection.run_script, script)

    def fetch_all(self, sql: str, params: Params) -> Awaitable[list[Row]]:
        """Run a query: on a reader outside a transaction, on the writer inside one (so it sees
        the transaction's own writes). A statement that is not a plain query goes to the writer.

        Not a coroutine function: the checks run at the call, and the awaitable returned is
        the read itself (one coroutine less on the hot path of every read).
        """
        writer = self._check()
        session = self._read_scope.get()
        if session is not None:
            return session.fetch_all(sql, params)
        if writer.in_scope() or not _is_query(sql):
            return self._write(sql).run(sql, TrackedConnection.fetch, sql, params)
        return self._fetch_committed(writer, sql, params)

    async def fetch_committed(self, sql: str, params: Params) -> list[Row]:
        """Run a query against committed data only, whatever the caller's transaction."""
        return await self._fetch_committed(self._check(), sql, params)

    async def _fetch_committed(self, writer: Writer, sql: str, params: Params) -> list[Row]:
        pool = self._readers
        try:
            if pool is None:
                async with writer.lock:
                    return await writer.worker.call(writer.worker.raw.fetch, sql, params)
            costs = self.costs
            cheap = costs.cheap(sql)
            reader = pool.take(cheap) or await pool.borrow(cheap)
            try:
                # Worker.call inlined (its rule on cancellation included): one coroutine less.
                future = reader.start(costs.fetch, reader.raw, sql, params)
                try:
                    rows = await future
                except asyncio.CancelledError:
                    await pool.abandon(reader)  # nobody waits for it: interrupted if alone
                    raise
            finally:
                pool.give_back(reader, cheap)
            return rows
        except sqlite3.Error as error:
            raise from_sqlite(error, sql) from error

    async def fetch_many_committed(
        self, queries: Sequence[tuple[str, Params]], *, snapshot: bool = False
    ) -> list[list[Row] | DatabaseError]:
        """Run several queries in one hop against committed data; each yields its rows or
        its error (a failing query does not stop the others). With ``snapshot``, a reader
        runs them in one read transaction; the writer (``:memory:``) holds its lock, so no
        commit comes between them anyway."""
        writer = self._check()
        pool = self._readers
        record = self.costs.record
        if pool is not None:
            reader = pool.take() or await pool.borrow()
            try:
                future = reader.start(reader.raw.fetch_many, queries, snapshot, record)
                try:
                    results = await future
                except asyncio.CancelledError:
                    await pool.abandon(reader)  # e.g. every watch in it lost its subscribers
                    raise
            finally:
                pool.give_back(reader)
        else:
            async with writer.lock:
                results = await writer.worker.call(
                    writer.worker.raw.fetch_many, queries, False, record
                )
        translated = cast("list[Any]", results)  # a fresh list: errors are replaced in place
        for index, result in enumerate(translated):
            if isinstance(result, sqlite3.Error):
                translated[index] = from_sqlite(result, queries[index][0])
        return translated

    async def probe_reads(self, sql: str) -> list[tuple[str | None, str, str]]:
        """The ``(schema, table, column)`` reads SQLite's authorizer reports of ``sql``, as the
        connection that runs watches prepares it (a reader; the writer when there is only
        one), without running it. One hop; a cross-check of the parser, not on any re-run.

        :raises rxdb.DatabaseError: if SQLite cannot prepare ``sql`` there.
        """
        writer = self._check()
        pool = self._readers
        try:
            if pool is None:
                async with writer.lock:
                    raw = writer.worker.raw
                    # Put the writer's write capture back afterwards.
                    return await writer.worker.call(raw.probe_reads, sql, raw._capture.authorize)
            reader = pool.take() or await pool.borrow()
            try:
                return await reader.call(reader.raw.probe_reads, sql)
            finally:
                pool.give_back(reader)
        except sqlite3.Error as error:
            translated = from_sqlite(error, sql)
            if pool is not None and str(error).startswith(("no such table", "unknown database")):
                translated.args = (f"{error}; {_READERS_SEE_THE_FILE}",)
            raise translated from error

    def _write(self, sql: str) -> Writer:
        writer = self._check()
        if self._read_scope.get() is not None:
            raise read_only_violation(sql)
        return writer

    def stamp_commits(self, enabled: Callable[[], bool]) -> None:
        """Claim commit counter values for each commit while ``enabled()`` (see
        :class:`~rxdb.engines.sqlite.walindex.CommitStamper`); nothing without a readable
        wal-index."""
        writer = self._check()
        if self.wal_index is not None:
            writer.worker.raw.stamper = CommitStamper(self.wal_index, enabled)

    def remember_commit_states(
        self, committed: Callable[[], None], wanted: Callable[[], bool]
    ) -> None:
        """From now on let the writer read, after a call that committed, the state
        :meth:`commit_state` will be asked for (see
        :class:`~rxdb.engines.sqlite.walindex.StateReadings`), then call ``committed`` on the
        loop if ``wanted()``; and let :meth:`commit_state` answer ``None`` rather than wait
        while the writer works.

        The reading waits until the call's result is on its way to the loop
        (:attr:`Worker.after_report`): taken right after the commit, it and the loop's
        wake-up for ``committed`` came before the result and a watch's emission riding with
        it (~30-40 µs of #1's commit -> emission, instrumented on the writer's thread).
        Inside a transaction (a call left one open after its commit) it waits for a call that
        ends outside one: the transaction's snapshot would not show other connections'
        commits in ``data_version``, while the counter does."""
        writer = self._check()
        readings = self._readings
        readings.after_commits = True
        loop = asyncio.get_running_loop()
        connection = writer.worker.raw
        due = False

        def after_commit(_: TrackedConnection) -> None:
            nonlocal due
            due = True

        def after_report() -> None:
            nonlocal due
            if not due or connection.in_transaction:
                return
            due = False
            readings.after_commit(connection)
            if wanted():
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                    loop.call_soon_threadsafe(committed)

        connection.after_commit = after_commit
        writer.worker.after_report = after_report

    def writer_busy(self) -> bool:
        """Whether a write or a transaction holds the writer now."""
        writer = self._writer
        return writer is not None and writer.lock.locked()

    async def commit_state(self) -> tuple[int, int | None] | None:
        """The writer's ``PRAGMA data_version`` (it changes only for other connections'
        commits) and the commit counter value it covers (see
        :func:`~rxdb.engines.sqlite.walindex.commit_state`), asked in line for the writer's
        lock, on its thread, unless a reading it took earlier will do; ``None`` for
        ``:memory:``, and while the writer works if :meth:`remember_commit_states` (it then
        reads one after its next commit)."""
        writer = self._check()
        if self.memory:
            return None
        readings = self._readings
        state = readings.fresh()
        if state is not None:
            return state
        if readings.after_commits and writer.lock.locked():
            readings.wanted = True
            return None
        async with writer.lock:
            state = readings.fresh()  # the commit we waited for may have read it
            if state is None:
                await writer.worker.call(readings.take, writer.worker.raw)
                state = readings.fresh()
            return state

    # -- read blocks ------------------------------------------------------------------------

    @asynccontextmanager
    async def read(self, *, isolated: bool) -> AsyncIterator[ReadSession]:
        """Reserve one connection for a block of reads; with ``isolated``, all of them see
        the snapshot taken when the block began."""
        writer = self._check()
        if self._read_scope.get() is not None:
            raise ReentrancyError("db.read() inside db.read(): use the outer block's session")
        if writer.in_scope():
            raise ReentrancyError(
                "db.read() inside a transaction would not see the transaction's own writes; "
                "read with db.fetch_all() inside the transaction instead"
            )
        if self._readers is None:
            # One connection: holding the write lock is what isolates the block.
            async with writer.lock:
                await writer.raw("PRAGMA query_only = ON")
                try:
                    async with self._session(writer.worker, isolated) as session:
                        yield session
                finally:
                    await writer.raw("PRAGMA query_only = OFF")
            return
        reader = await self._readers.reserve()
        try:
            if isolated:
                # A read inside BEGIN pins the WAL snapshot until COMMIT.
                await _call(reader, reader.raw.executescript, _SNAPSHOT_SQL)
            try:
                async with self._session(reader, isolated) as session:
                    yield session
            finally:
                if isolated:
                    await _call(reader, reader.raw.execute, "COMMIT")
        finally:
            self._readers.release(reader)

    @asynccontextmanager
    async def _session(
        self, worker: Worker[ReaderConnection], isolated: bool
    ) -> AsyncIterator[ReadSession]:
        session = ReadSession(worker, isolated=isolated)
        token = self._read_scope.set(session)
        try:
            yield session
        finally:
            session.end()
            self._read_scope.reset(token)

    # -- transactions -----------------------------------------------------------------------

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractAsyncContextManager[None]:
        return transaction_outside_reads(self._check(), self._read_scope.get() is not None, mode)

    # -- interrupt and backup ---------------------------------------------------------------

    def interrupt(self) -> None:
        """Abort the statements running now on every connection. Safe from any thread."""
        self.interrupt_writer()
        for reader in self._readers.readers if self._readers is not None else ():
            reader.interrupt()

    def interrupt_writer(self) -> None:
        """Abort the statement running now on the writer only. Safe from any thread."""
        if self._writer is not None:
            self._writer.worker.interrupt()

    async def backup(
        self,
        target: str | Engine,
        *,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> None:
        """Copy this database into a file path or another engine, from one snapshot."""
        writer = self._check()
        if self._read_scope.get() is not None or writer.in_scope():
            raise ReentrancyError("back up outside read blocks and transactions")
        if isinstance(target, Engine):
            target_writer = target._check()
            async with target_writer.lock:
                await self._backup_into(target_writer.worker.raw, pages_per_step, progress)
            return
        try:
            destination = sqlite3.connect(target)
        except sqlite3.Error as error:
            raise from_sqlite(error, None, f"cannot open the backup target {target!r}") from error
        try:
            await self._backup_into(destination, pages_per_step, progress)
        finally:
            destination.close()

    async def _backup_into(
        self,
        destination: sqlite3.Connection,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> None:
        from rxdb.engines.sqlite.backup import copy_database  # loaded by the first backup

        writer = self._check()
        try:
            if self._readers is None:
                async with writer.lock:
                    await copy_database(
                        writer.worker, destination, pages_per_step=pages_per_step, progress=progress
                    )
                return
            async with self.read(isolated=True) as session:
                await copy_database(
                    session.worker, destination, pages_per_step=pages_per_step, progress=progress
                )
        except sqlite3.Error as error:
            raise from_sqlite(error, None, "backup failed") from error

    # -- lifecycle --------------------------------------------------------------------------

    def _check(self) -> Writer:
        if self._closed or self._writer is None:
            raise ClosedError(
                f"the database {self.path!r} is closed; open a new one (rxdb.open) to use the file"
            )
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                f"the database {self.path!r} belongs to another event loop; open one "
                "rxdb.Database per event loop (they share notifications), or use "
                "rxdb.open_sync() from threads without a loop"
            )
        return self._writer

    def refuse_new_work(self) -> None:
        """Make every new call raise :class:`rxdb.ClosedError` (work in flight goes on)."""
        self._closed = True

    async def close(self) -> None:
        """Wait for the running transaction (if another task holds one) and reads in flight,
        for :data:`~rxdb.engines.closing.CLOSE_GRACE` at most (then interrupt them), then
        close every connection. Idempotent."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            writer = self._writer
            if writer is not None:
                if writer.in_scope():
                    await writer.rollback_quietly()
                else:
                    await writer.owner.acquire_for_close(CLOSE_GRACE, writer.worker.interrupt)
            if self._readers is not None:
                await self._readers.close(CLOSE_GRACE)
            if writer is not None:
                await writer.worker.close()
        finally:
            if self.wal_index is not None:
                self.wal_index.release()  # after the connections: see rxdb.engines.sqlite.walindex
            self._closing.set_result(None)


_READERS_SEE_THE_FILE = (
    "watches and reads outside a transaction run on separate read-only connections, which "
    "see only what the database file holds: TEMP tables and views, and databases ATTACHed "
    "with db.execute(), exist on the writer connection alone. Create the object in the file "
    "(without TEMP), or open the attached file as a Database of its own"
)


def _is_query(sql: str) -> bool:
    known = _IS_QUERY.get(sql)
    if known is None:
        try:
            known = analyze(sql).kind is StatementKind.QUERY
        except Unanalyzable:
            known = False
        if len(_IS_QUERY) >= _IS_QUERY_SIZE:
            _IS_QUERY.clear()
        _IS_QUERY[sql] = known
    return known


# Whether a text is a plain query, asked on every fetch_all: one dictionary lookup instead
# of the analyser's cache (which is keyed by text and views). Bounded; cleared when full.
_IS_QUERY: dict[str, bool] = {}
_IS_QUERY_SIZE = 4096


async def _call(worker: Worker[ReaderConnection], fn: Any, sql: str) -> None:
    try:
        await worker.call(fn, sql)
    except sqlite3.Error as error:
        raise from_sqlite(error, sql) from error
