"""The engine seam: what the façade (:mod:`rxdb.database`) and the watches (:mod:`rxdb.watch`)
need from an engine, written down as Protocols.

An engine runs statements and tells the bus what each commit wrote. SQLite
(:class:`rxdb.engines.sqlite.SQLiteEngine`) is the first; a PostgreSQL engine plugs in here
without touching ``watch/``, ``boundary/`` or ``remote/``: it implements
:class:`DatabaseEngine`, and :func:`rxdb.database.engine_for` picks it from the path.

What an engine owes its users, requirement by requirement:

- **Statements with their write sets.** ``execute``/``execute_many``/``execute_script`` run on
  the one writer; the tables they write (triggers and cascades included) are announced once,
  after the outermost commit, and never for a rollback.
- **A source of change messages.** Every commit the engine can see is published on ``bus``
  under ``key`` as one :class:`rxdb.NotifyTablesUpdated`: this process's own commits (with
  ``origin``), foreign ones (other programs on a SQLite file: its poller and trigger journal;
  every writer, for PostgreSQL's LISTEN/NOTIFY), and "anything may have changed"
  (``everything``) for schema changes, resyncs and whatever cannot be proven.
- **Cross-process transport.** An engine that needs one to reach other processes takes a
  :class:`rxdb.bus.Transport` when it is made (SQLite: the hub); one whose server carries
  notifications to every process (PostgreSQL) takes none.
- **Read sets** in the engine's dialect and with its schema facts (views, virtual tables),
  and **batched committed fetches** for watch re-runs, spread over ``parallelism`` readers.
- **Reads on a snapshot** (``read(isolated=True)``), **task-owned transactions** with nested
  savepoints, ``interrupt`` from any thread, ``backup``, and a two-step close
  (``refuse_new_work``, then ``close``).

Every ``async`` requirement runs on the loop that opened the engine. Errors are
:class:`rxdb.RxdbError` subclasses; after ``refuse_new_work`` every new call raises
:class:`rxdb.ClosedError`.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.bus import Bus, Subscription
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.updates import NotifyTablesUpdated, TableUpdate

if TYPE_CHECKING:
    from parser.maintainable import Maintainable
    from rxdb.api import AsyncReadSession

__all__ = ("DatabaseEngine", "EagerWatchSource", "WatchSource")


@runtime_checkable
class RowMaintenance(Protocol):
    """An engine that can tell watches which rows its own commits changed (SQLite's
    :mod:`rxdb.engines.sqlite.maintenance`): a watch it maintains patches its last result
    with each commit's :class:`rxdb.updates.RowPatch` instead of re-running."""

    def maintain(self, key: Hashable, sql: str, params: Params) -> Awaitable[Maintainable | None]:
        """Start sending patches for ``sql`` under ``key``; ``None`` if it cannot be
        maintained (then the watch re-runs as usual)."""
        ...

    def stop_maintaining(self, key: Hashable) -> None:
        """Undo :meth:`maintain`; safe to call more than once."""
        ...

    def maintenance_mark(self, table: str) -> tuple[int, int] | None:
        """(epoch, sequence) of ``table``'s last patch: a result read while it did not move
        can be patched with the next patch."""
        ...


class WatchSource(Protocol):
    """What :mod:`rxdb.watch` needs of an engine to keep watches fresh."""

    @property
    def key(self) -> str:
        """The database's identity on :attr:`bus` (a SQLite file's real path, say)."""
        ...

    @property
    def bus(self) -> Bus:
        """Where the engine publishes its change messages."""
        ...

    @property
    def parallelism(self) -> int:
        """How many watch runs may go at once (the readers)."""
        ...

    async def read_set(self, sql: str) -> frozenset[str] | None:
        """The tables a watch of ``sql`` depends on (``None``: all of them), resolved in the
        schema the watch runs against. Asked when a watch starts and after every
        ``everything`` message, never on a re-run.

        :raises rxdb.ProgrammingError: if ``sql`` is not a query.
        :raises rxdb.DatabaseError: (a subclass) if the engine cannot prepare it.
        """
        ...

    def fetch_many_committed(
        self, queries: Sequence[tuple[str, Params]], *, snapshot: bool = False
    ) -> Awaitable[Sequence[Rows | Exception]]:
        """Run several queries against committed data in one hop; each yields its rows or
        its error (one failing query does not stop the others, unless on a snapshot, where
        the queries after a failure may fail too). Cancelling it may interrupt the queries.

        :param snapshot: run them all on one read snapshot (``db.watch_many``: results that
            agree with each other), not each on the latest commit.
        """
        ...


@runtime_checkable
class EagerWatchSource(Protocol):
    """An engine that can re-run a watch's query itself right after one of its own commits,
    sparing the re-run's trip to a reader (SQLite's writer: :mod:`rxdb.engines.sqlite.eager`).
    Optional: a watch of any other engine subscribes to :attr:`WatchSource.bus` directly."""

    def subscribe_query(
        self,
        sql: str,
        params: Params,
        tables: frozenset[str] | None,
        notified: Callable[[NotifyTablesUpdated], None],
        fresh: Callable[[Rows | None], None],
    ) -> Subscription:
        """Subscribe, on the running loop, a watch of ``sql`` reading ``tables``:
        ``notified(message)`` for the commits it must re-run for the usual way, and
        ``fresh(rows)`` for a commit whose re-run the engine took, with the rows read right
        after it (a committed state at least as new as that commit), or ``None`` if it could
        not read them after all (run the query the usual way)."""
        ...


class DatabaseEngine(WatchSource, Protocol):
    """What the :class:`rxdb.Database` façade needs of an engine."""

    @property
    def origin(self) -> str:
        """The origin of this process's commit messages (unique per engine object)."""
        ...

    @property
    def closed(self) -> bool:
        """Whether :meth:`refuse_new_work` (or :meth:`close`) was called."""
        ...

    async def open(self) -> None:
        """Open the connections and start the change source (and the transport, if any):
        from its return on, every commit reaches the bus.

        :raises rxdb.DatabaseError: (a subclass) if the database cannot be opened; whatever
            was opened is closed again.
        """
        ...

    def execute(self, sql: str, params: Params) -> Awaitable[ExecuteResult]:
        """Run one statement on the writer (in this task's transaction, if one is open)."""
        ...

    def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> Awaitable[int]:
        """Run one statement per parameter set, atomically; the rows changed in all."""
        ...

    def execute_script(self, script: str) -> Awaitable[None]:
        """Run several statements in order."""
        ...

    def fetch_all(self, sql: str, params: Params) -> Awaitable[list[Row]]:
        """Every row of a query: committed data, or inside this task's transaction or read
        block, what that block sees."""
        ...

    def read(self, *, isolated: bool) -> AbstractAsyncContextManager[AsyncReadSession]:
        """A block of reads on one connection; with ``isolated``, on one snapshot.

        :raises rxdb.ReentrancyError: inside another read block or a transaction.
        """
        ...

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractAsyncContextManager[None]:
        """This task's transaction (a savepoint when nested); statements of the task and the
        tasks it starts join it.

        :raises rxdb.ReentrancyError: inside a read block.
        """
        ...

    def interrupt(self) -> None:
        """Abort the statements running now. Safe from any thread."""
        ...

    def interrupt_writer(self) -> None:
        """Abort the statement running now on the writer only, leaving reads alone (a
        server stops one client's transaction this way). Safe from any thread."""
        ...

    def backup(
        self,
        target: str | DatabaseEngine,
        *,
        pages_per_step: int,
        progress: ProgressCallback | None,
    ) -> Awaitable[None]:
        """Copy the database, as of one snapshot, into a file (a path already checked) or
        another engine's database.

        :raises rxdb.ProgrammingError: for an engine this one cannot copy into.
        :raises rxdb.ReentrancyError: inside a read block or a transaction.
        """
        ...

    def announce(self, updates: frozenset[TableUpdate], *, everything: bool) -> None:
        """Publish a change made behind the engine's back (``notify_updates``, a backup
        restored into it) under this process's origin."""
        ...

    async def track_foreign_writes(self) -> None:
        """Make other programs' commits say which tables they wrote (SQLite: the trigger
        journal). An engine that always knows makes this a no-op.

        :raises rxdb.ProgrammingError: where foreign writers cannot be tracked.
        """
        ...

    async def untrack_foreign_writes(self) -> None:
        """Undo :meth:`track_foreign_writes` (for every process using the database)."""
        ...

    def refuse_new_work(self) -> None:
        """Make every new call raise :class:`rxdb.ClosedError`; work in flight goes on."""
        ...

    async def close(self) -> None:
        """Stop the change source, wait for work in flight, close every connection, then
        leave the transport. Idempotent."""
        ...
