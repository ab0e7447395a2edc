"""The PostgreSQL engine behind the seam (:class:`rxdb.engines.seam.DatabaseEngine`).

:class:`PostgresEngine` keeps SQLite's contract on asyncpg: one writer connection (writes
serialized, task-owned transactions, savepoints: :mod:`~rxdb.engines.postgres.writer`), a
pool of read-only readers for plain reads, watch re-runs and ``read()`` blocks
(:mod:`~rxdb.engines.postgres.readers`, :mod:`~rxdb.engines.postgres.sessions`), SQLite's
``?`` and ``:name`` placeholders (:mod:`~rxdb.engines.postgres.params`), ``interrupt`` from
any thread, and ``backup`` through ``pg_dump`` (:mod:`~rxdb.engines.postgres.backup`).

Change messages come from :mod:`~rxdb.engines.postgres.changes`: the capture triggers and
the process's LISTEN connection tell of every writer's commits, this engine's included (or,
where rxdb may not install triggers, the engine announces its own commits). Read sets come
from :mod:`parser.postgres` through :mod:`~rxdb.engines.postgres.read_sets`, with the
catalog read again after every schema change.

Internal: not covered by rxdb's versioning. Knows nothing of Rx, watches or the façade.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.bus import Bus, Subscription
from rxdb.engines.closing import CLOSE_GRACE
from rxdb.engines.ownership import transaction_outside_reads
from rxdb.engines.postgres.backup import dump
from rxdb.engines.postgres.changes import Changes
from rxdb.engines.postgres.connections import (
    Connection,
    Running,
    changed_rows,
    connect,
    control,
    never_sent,
    run,
    run_script,
)
from rxdb.engines.postgres.dsn import Dsn
from rxdb.engines.postgres.params import bind
from rxdb.engines.postgres.read_sets import ReadSets
from rxdb.engines.postgres.readers import ReaderPool
from rxdb.engines.postgres.sessions import (
    BEGIN_SNAPSHOT,
    END_SNAPSHOT,
    ReadSession,
    read_only_violation,
)
from rxdb.engines.postgres.writer import Writer
from rxdb.engines.seam import DatabaseEngine
from rxdb.errors import (
    ClosedError,
    DatabaseError,
    ProgrammingError,
    ReadOnlyError,
    ReentrancyError,
    WrongLoopError,
)
from rxdb.rows import ExecuteResult, Row
from rxdb.updates import TableUpdate

__all__ = ("PostgresEngine",)

LOG = logging.getLogger("rxdb.engine")

# The first word of a statement that only reads: sent to a reader. Anything else goes to the
# writer; a "query" that writes all the same (a data-modifying WITH, a function that writes)
# fails on the read-only reader before it changes anything and is sent to the writer.
_QUERY_WORDS = frozenset({"select", "values", "table", "with", "show", "explain"})
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/|\()*([A-Za-z]+)", re.DOTALL)
_KNOWN_SIZE = 4096


class PostgresEngine:
    """One PostgreSQL database as an engine of rxdb.

    :param path: the URL as the user gave it.
    :param dsn: the URL taken apart.
    :param bus: where commit messages go.
    :param readers: the most reader connections (and so watch runs at once).
    :param busy_timeout: seconds a statement waits for a lock (``lock_timeout``) before
        :class:`rxdb.BusyError`; a URL's own ``lock_timeout`` wins.
    :param read_only: every connection refuses writes (``default_transaction_read_only``).
    :param track_foreign_writes: whether to install the capture triggers at :meth:`open`
        (``None``: where rxdb may; see :mod:`~rxdb.engines.postgres.changes`).
    """

    def __init__(
        self,
        path: str,
        *,
        dsn: Dsn,
        bus: Bus,
        readers: int,
        busy_timeout: float,
        read_only: bool,
        track_foreign_writes: bool | None,
    ) -> None:
        self.path = path
        self.dsn = dsn
        self.key = dsn.key
        self.origin = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.bus = bus
        self.parallelism = readers
        self.read_only = read_only
        settings = {
            "application_name": "rxdb",
            # 0 would mean "wait forever"; SQLite's busy_timeout=0 means "do not wait".
            "lock_timeout": str(max(1, round(busy_timeout * 1000))),
            # Who wrote a commit, for the capture triggers' notifications.
            "rxdb.origin": self.origin,
        }
        read_only_setting = {"default_transaction_read_only": "on"}
        self._writer_settings = {**settings, **(read_only_setting if read_only else {})}
        self._reader_settings = {**settings, **read_only_setting}
        self._reading = Running()  # statements on the readers
        self._writing = Running()  # statements on the writer
        self._writer: Writer | None = None
        self._readers = ReaderPool(self._open_reader, readers)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_scope: contextvars.ContextVar[ReadSession | None] = contextvars.ContextVar(
            "rxdb_pg_read_scope", default=None
        )
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self.changes = Changes(
            dsn=dsn, key=self.key, origin=self.origin, bus=bus, install=track_foreign_writes
        )
        self.read_sets = ReadSets(lambda sql: self._fetch_committed(sql, ()))
        self._schema_watch: Subscription | None = None
        self._queries: dict[str, bool] = {}  # text -> whether a reader may run it

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> None:
        """Open the writer connection (readers open on demand), then the change source: from
        its return on, every commit reaches the bus.

        :raises rxdb.OperationalError: if the server cannot be reached or refuses the
            connection (the message names the server and database, never the password).
        """
        loop = asyncio.get_running_loop()
        writer = Writer(self._open_writer, lambda: self._closed, self.changes)
        conn = await writer.open()
        try:
            await self.changes.start(conn)
        except BaseException:
            await writer.close()
            raise
        # Messages for every table ("anything may have changed": schema changes, resyncs)
        # make read sets resolve again, in the catalog as it is then.
        self._schema_watch = self.bus.subscribe(
            self.key, lambda _: self._schema_may_have_changed(), tables=frozenset()
        )
        self._loop = loop
        self._reading.bind(loop)
        self._writing.bind(loop)
        self._writer = writer

    def _schema_may_have_changed(self) -> None:
        self.read_sets.schema_may_have_changed()
        self.changes.schema_may_have_changed()

    async def _open_writer(self) -> Connection:
        return await connect(self.dsn, self._writer_settings)

    async def _open_reader(self) -> Connection:
        return await connect(self.dsn, self._reader_settings)

    def refuse_new_work(self) -> None:
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
        if self._schema_watch is not None:
            self._schema_watch.close()
        try:
            writer = self._writer
            if writer is not None:
                if writer.in_scope():
                    await writer.rollback_quietly()
                else:
                    await writer.owner.acquire_for_close(CLOSE_GRACE, self._writing.interrupt)
            await self._readers.close(CLOSE_GRACE, self._reading.interrupt)
            if writer is not None:
                await writer.close()
            await self.changes.stop()
        finally:
            self._closing.set_result(None)

    def _check(self) -> Writer:
        if self._closed or self._writer is None:
            raise ClosedError(
                f"the database {self.dsn.shown!r} is closed; open a new one (rxdb.open) to use it"
            )
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                f"the database {self.dsn.shown!r} belongs to another event loop; open one "
                "rxdb.Database per event loop (they share notifications), or use "
                "rxdb.open_sync() from threads without a loop"
            )
        return self._writer

    def _write(self, sql: str) -> Writer:
        writer = self._check()
        if self._read_scope.get() is not None:
            raise read_only_violation(sql)
        return writer

    # -- statements -------------------------------------------------------------------------

    def execute(self, sql: str, params: Params) -> Awaitable[ExecuteResult]:
        return self._write(sql).run(functools.partial(self._execute_on, sql, params))

    def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> Awaitable[int]:
        return self._write(sql).run(functools.partial(self._execute_many_on, sql, seq_of_params))

    def execute_script(self, script: str) -> Awaitable[None]:
        return self._write(script).run(functools.partial(self._script_on, script))

    def fetch_all(self, sql: str, params: Params) -> Awaitable[list[Row]]:
        """Run a query: on a reader outside a transaction, on the writer inside one (so it
        sees the transaction's own writes); a statement that is not a plain query goes to
        the writer."""
        writer = self._check()
        session = self._read_scope.get()
        if session is not None:
            return session.fetch_all(sql, params)
        if writer.in_scope() or not self._reads_only(sql):
            return self._write(sql).run(functools.partial(self._fetch_on, sql, params))
        return self._fetch_committed(sql, params)

    async def _execute_on(self, sql: str, params: Params, conn: Connection) -> ExecuteResult:
        text, args = bind(sql, params)
        await self.changes.before_statement(conn, text)
        rows, status = await run(conn, text, args, self._writing, source=sql)
        await self.changes.after_statement(conn, status)
        return ExecuteResult(changed_rows(status), None, rows)

    async def _fetch_on(self, sql: str, params: Params, conn: Connection) -> list[Row]:
        text, args = bind(sql, params)
        await self.changes.before_statement(conn, text)
        rows, status = await run(conn, text, args, self._writing, source=sql)
        await self.changes.after_statement(conn, status)
        return rows

    async def _script_on(self, script: str, conn: Connection) -> None:
        await self.changes.before_statement(conn, script)
        await run_script(conn, script, self._writing)
        await self.changes.after_statement(conn, None)

    async def _execute_many_on(
        self, sql: str, seq_of_params: Iterable[Params], conn: Connection
    ) -> int:
        # Atomic on its own (a transaction of its own outside the caller's), as the
        # contract asks; inside the caller's transaction a failure fails that transaction.
        own = not conn.is_in_transaction()
        if own:
            await control(conn, "BEGIN")
        changed = 0
        try:
            for params in seq_of_params:
                text, args = bind(sql, params)
                await self.changes.before_statement(conn, text)
                _, status = await run(conn, text, args, self._writing, source=sql)
                changed += max(changed_rows(status), 0)
                await self.changes.after_statement(conn, status)
        except BaseException:
            if own and not conn.is_closed() and conn.is_in_transaction():
                await control(conn, "ROLLBACK")
            raise
        if own:
            await control(conn, "COMMIT")
        return changed

    async def _fetch_committed(self, sql: str, params: Params) -> list[Row]:
        text, args = bind(sql, params)
        try:
            rows, _ = await self._readers.run(
                lambda conn: run(conn, text, args, self._reading, source=sql)
            )
            return rows
        except ReadOnlyError:
            if self.read_only:
                raise
        # It writes after all: remember, and send it (and its next runs) to the writer.
        self._remember(sql, reads_only=False)
        return await self._write(sql).run(functools.partial(self._fetch_on, sql, params))

    async def fetch_many_committed(
        self, queries: Sequence[tuple[str, Params]], *, snapshot: bool = False
    ) -> list[list[Row] | DatabaseError]:
        """Run several queries on one reader against committed data; each yields its rows or
        its error (a failing query does not stop the others). With ``snapshot``, in one
        REPEATABLE READ transaction; a failure there aborts it, so the whole group yields
        its first error."""
        self._check()

        async def run_all(conn: Connection) -> list[list[Row] | DatabaseError]:
            if not snapshot:
                return await run_each(conn)
            await _begin_snapshot(conn)
            try:
                results = await run_each(conn)
            finally:
                await _end_snapshot(conn)
            failed = next((r for r in results if isinstance(r, DatabaseError)), None)
            return results if failed is None else [failed] * len(results)

        async def run_each(conn: Connection) -> list[list[Row] | DatabaseError]:
            results: list[list[Row] | DatabaseError] = []
            for sql, params in queries:
                try:
                    text, args = bind(sql, params)
                    rows, _ = await run(conn, text, args, self._reading, source=sql)
                except DatabaseError as error:
                    if never_sent(error):
                        raise  # the reader was lost while idle: the pool tries a new one
                    results.append(error)
                else:
                    results.append(rows)
            return results

        return await self._readers.run(run_all)

    def _reads_only(self, sql: str) -> bool:
        known = self._queries.get(sql)
        if known is None:
            first = _FIRST_WORD.match(sql)
            known = first is not None and first.group(1).lower() in _QUERY_WORDS
            self._remember(sql, reads_only=known)
        return known

    def _remember(self, sql: str, *, reads_only: bool) -> None:
        if len(self._queries) >= _KNOWN_SIZE:
            self._queries.clear()
        self._queries[sql] = reads_only

    # -- read blocks and transactions -------------------------------------------------------

    @asynccontextmanager
    async def read(self, *, isolated: bool) -> AsyncIterator[ReadSession]:
        """Reserve one reader for a block of reads; with ``isolated``, all of them see the
        snapshot taken when the block began (REPEATABLE READ, READ ONLY)."""
        writer = self._check()
        if self._read_scope.get() is not None:
            raise ReentrancyError("db.read() inside db.read(): use the outer block's session")
        if writer.in_scope():
            raise ReentrancyError(
                "db.read() inside a transaction would not see the transaction's own writes; "
                "read with db.fetch_all() inside the transaction instead"
            )
        readers = self._readers
        conn = await (readers.acquire_begun(_begin_snapshot) if isolated else readers.acquire())
        try:
            session = ReadSession(conn, isolated=isolated, running=self._reading)
            token = self._read_scope.set(session)
            try:
                yield session
            finally:
                session.end()
                self._read_scope.reset(token)
                if isolated and not conn.is_closed():
                    await _end_snapshot(conn)
        finally:
            self._readers.release(conn)

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractAsyncContextManager[None]:
        return transaction_outside_reads(self._check(), self._read_scope.get() is not None, mode)

    # -- interrupt and backup ---------------------------------------------------------------

    def interrupt(self) -> None:
        """Abort the statements running now on every connection. Safe from any thread."""
        if not self._closed:
            self._writing.interrupt()
            self._reading.interrupt()

    def interrupt_writer(self) -> None:
        """Abort the statement running now on the writer only. Safe from any thread."""
        if not self._closed:
            self._writing.interrupt()

    async def backup(
        self,
        target: str | DatabaseEngine,
        *,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> None:
        """Dump the database, as of one snapshot, into the file ``target`` (``pg_dump``;
        ``pages_per_step`` means nothing here)."""
        writer = self._check()
        if self._read_scope.get() is not None or writer.in_scope():
            raise ReentrancyError("back up outside read blocks and transactions")
        if not isinstance(target, str):
            raise ProgrammingError(
                "a PostgreSQL database backs up into a file (a pg_dump script), not into "
                f"another database ({target!r})"
            )
        async with self._readers.reader() as conn:
            await dump(conn, self.dsn, target, progress)

    # -- change messages --------------------------------------------------------------------

    def announce(self, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        self.changes.announce(updates, everything=everything)

    async def read_set(self, sql: str) -> frozenset[str] | None:
        self._check()
        return await self.read_sets.read_set(sql)

    async def track_foreign_writes(self) -> None:
        """Install the capture triggers (as :meth:`open` does; idempotent): every writer's
        commits, other programs' included, then say which tables they wrote."""
        await self._write("track_foreign_writes").run(self.changes.install)

    async def untrack_foreign_writes(self) -> None:
        """Remove the capture triggers from the database, for every process using it: each
        rxdb engine announces its own commits from then on, and other programs' commits go
        unseen (until one of them installs the triggers again)."""
        await self._write("untrack_foreign_writes").run(self.changes.uninstall)


async def _begin_snapshot(conn: Connection) -> None:
    await control(conn, BEGIN_SNAPSHOT)


async def _end_snapshot(conn: Connection) -> None:
    try:
        await control(conn, END_SNAPSHOT)
    except DatabaseError:
        # The reader's state is unknown now: drop it rather than hand it to the next read.
        LOG.warning("ending a read block's transaction failed; closing its connection")
        conn.terminate()


if TYPE_CHECKING:
    _conforms: type[DatabaseEngine] = PostgresEngine  # the seam, checked by mypy
