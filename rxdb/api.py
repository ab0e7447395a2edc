"""The contract every database shape keeps, written as ``typing.Protocol``s.

rxdb hands out one database in several shapes: :class:`rxdb.Database` on the loop that
opened it, :class:`rxdb.BridgedDatabase` on another loop of the same process,
:class:`rxdb.RemoteDatabase` in another process, and :class:`rxdb.SyncDatabase` for threads
without a loop. They keep one contract so that code written against it runs on any of them,
and ``tests/conformance`` runs one suite against every shape, so a missing method or a
different behaviour fails a test before it reaches a user.

The split follows GRDB's ``DatabaseReader``/``DatabaseWriter``: code that only reads (a
view model, a report) asks for a :class:`DatabaseReader`; code that writes asks for a
:class:`DatabaseWriter`; :class:`AsyncDatabase` is both, plus the lifecycle.

Threads and loops: an async shape is bound to the event loop that made (or connected) it;
every ``async`` requirement and every subscription must be made on that loop, and anything
else raises :class:`rxdb.WrongLoopError`. Only the methods named ``*_threadsafe`` may be
called from any thread. A blocking shape may be called from any thread that runs no event
loop (on one that does, it raises :class:`rxdb.WrongLoopError` rather than block the loop).

Errors: every error a requirement raises is an :class:`rxdb.RxdbError`. After ``close()``,
every requirement raises :class:`rxdb.ClosedError`, except ``close`` (idempotent) and the
interrupts (nothing runs any more, so they do nothing: a "Cancel" racing a close is no error).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, overload, runtime_checkable

from reactivex import Observable, abc
from typing_extensions import TypeVar

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

if TYPE_CHECKING:
    from rxdb.streams.diffs import Key, RowDiff
    from rxdb.streams.statistics import WatchStatistics
    from rxdb.watch.states import WatchState

__all__ = (
    "AsyncDatabase",
    "AsyncReadSession",
    "BlockingDatabase",
    "BlockingReadSession",
    "BlockingResultsStream",
    "BlockingRowsStream",
    "BlockingValueStream",
    "DatabaseReader",
    "DatabaseWriter",
    "Handle",
    "Queries",
    "ResultsStream",
    "RowsStream",
    "Subscribable",
    "ValueStream",
)

Queries = Mapping[str, str | tuple[str, Params]]
"""What ``watch_many`` takes: ``{name: sql}`` or ``{name: (sql, params)}``."""

T = TypeVar("T")
V_co = TypeVar("V_co", covariant=True)
R = TypeVar("R", default=Row)  # invariant: results are lists


@runtime_checkable
class Subscribable(Protocol):
    """Anything a reactivex observer can subscribe to: an Observable, a watch."""

    def subscribe(
        self,
        on_next: Any = None,
        on_error: Any = None,
        on_completed: Any = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase: ...


@runtime_checkable
class ValueStream(Subscribable, Protocol[V_co]):
    """A stream of a watch's values (what ``watch_one``, ``watch_value``, ``diffs`` and
    ``pipe`` return on an async shape): an Observable that is also an async iterator of the
    newest value, on the database's loop."""

    def __aiter__(self) -> AsyncIterator[V_co]: ...

    def statistics(self) -> WatchStatistics:
        """The statistics of the watch underneath (``subscribers`` counts what is attached
        now)."""
        ...

    def pipe(self, *operators: Callable[[Any], Any]) -> ValueStream[Any]:
        """Apply reactivex operators; the result is a stream again (``async for`` works)."""
        ...


@runtime_checkable
class RowsStream(ValueStream[list[R]], Protocol[R]):
    """What ``watch`` returns: a reactivex Observable of results (a list of rows each) that
    is also an async iterator. Subscribing starts the watch; the first value is the result
    now, then one after every commit that may change it (equal results are skipped unless
    the watch was made with ``distinct=False``). Errors of the query itself (a dropped
    table, say) arrive as ``on_error``.

    Subscribe, and iterate, on the database's loop (else :class:`rxdb.WrongLoopError`).
    """

    def throttle(self, seconds: float) -> RowsStream[R]:
        """The first result at once, then at most one per ``seconds``, the last always."""
        ...

    def diffs(self, key: Key = "id") -> ValueStream[RowDiff[R]]:
        """What each result changed (:class:`rxdb.RowDiff`), rows matched by ``key``."""
        ...

    def states(self) -> ValueStream[WatchState[Any]]:
        """The watch's :class:`rxdb.WatchState` stream beside its results: the current
        state at once, then one per change of phase, each ``live`` after the result it
        carries; it shares the watch's runs."""
        ...


@runtime_checkable
class ResultsStream(ValueStream[dict[str, Rows]], Protocol):
    """What ``watch_many`` returns: as :class:`RowsStream`, each value a dict of the group's
    results by name, all read from one snapshot."""

    def states(self) -> ValueStream[WatchState[Any]]: ...


@runtime_checkable
class BlockingValueStream(Subscribable, Protocol[V_co]):
    """:class:`ValueStream` for a blocking shape: any thread may subscribe (callbacks run
    on the database's loop thread); a plain ``for`` iterates it."""

    def __iter__(self) -> Iterator[V_co]: ...

    def statistics(self) -> WatchStatistics: ...

    def pipe(self, *operators: Callable[[Any], Any]) -> BlockingValueStream[Any]: ...


@runtime_checkable
class BlockingRowsStream(BlockingValueStream[list[R]], Protocol[R]):
    """What a blocking shape's ``watch`` returns: an Observable any thread may subscribe
    to (callbacks run on the database's loop thread), iterable with a plain ``for``."""

    def throttle(self, seconds: float) -> BlockingRowsStream[R]: ...

    def diffs(self, key: Key = "id") -> BlockingValueStream[RowDiff[R]]: ...

    def states(self) -> BlockingValueStream[WatchState[Any]]: ...


@runtime_checkable
class BlockingResultsStream(BlockingValueStream[dict[str, Rows]], Protocol):
    """What a blocking shape's ``watch_many`` returns."""

    def states(self) -> BlockingValueStream[WatchState[Any]]: ...


@runtime_checkable
class AsyncReadSession(Protocol):
    """The statements of one ``read()`` (one snapshot) or ``unsafe_read()`` block.

    Valid only inside its block, by the task that opened it; afterwards every call raises
    :class:`rxdb.ClosedError`. ``execute`` of a write raises :class:`rxdb.ReadOnlyError`.
    """

    @overload
    async def fetch_all(self, sql: str, params: Params = (), *, row_type: None = None) -> Rows: ...
    @overload
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> list[dict[str, Any]]: ...
    @overload
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> list[T]: ...
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> list[Any]: ...

    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: None = None
    ) -> Row | None: ...
    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> dict[str, Any] | None: ...
    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> T | None: ...
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any: ...

    async def fetch_value(self, sql: str, params: Params = ()) -> Any: ...

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult: ...


@runtime_checkable
class DatabaseReader(Protocol):
    """What code that only reads needs: queries, snapshots, watches.

    :raises rxdb.ProgrammingError: (every query method) for text that holds no statement or
        several, or parameters that do not fit it.
    :raises rxdb.DatabaseError: (a subclass) when the database refuses a statement.
    """

    @property
    def path(self) -> str:
        """Where the database lives, as given when it was opened."""
        ...

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (on this shape or, for the adapters, the origin)."""
        ...

    @overload
    async def fetch_all(self, sql: str, params: Params = (), *, row_type: None = None) -> Rows: ...
    @overload
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> list[dict[str, Any]]: ...
    @overload
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> list[T]: ...
    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> list[Any]:
        """Every row of a query, as of the latest commit (or, inside this task's transaction
        or read block, as of that block); each as ``row_type`` if given (a dataclass,
        NamedTuple, TypedDict, pydantic model, msgspec Struct, ``dict``, or any callable
        taking the columns as keyword arguments).

        :raises rxdb.RowTypeError: when the columns do not fit ``row_type``.
        """
        ...

    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: None = None
    ) -> Row | None: ...
    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> dict[str, Any] | None: ...
    @overload
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> T | None: ...
    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        """The first row of a query (as ``row_type`` if given), or ``None``."""
        ...

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row of a query, or ``None`` (no row)."""
        ...

    def read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        """``async with db.read() as r:``: every statement inside sees one snapshot.

        :raises rxdb.ReentrancyError: inside another block of this task.
        """
        ...

    def unsafe_read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        """Like :meth:`read`, each statement seeing the latest commit (no snapshot)."""
        ...

    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: None = None,
        throttle: float | None = None,
    ) -> RowsStream[Row]: ...
    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> RowsStream[dict[str, Any]]: ...
    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> RowsStream[T]: ...
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> RowsStream[Any]:
        """The query's result now, then again after every commit to a table it reads.

        :param row_type: rows as this type (as :meth:`fetch_all`), converted once per
            result; rows that do not fit end the stream with :class:`rxdb.RowTypeError`.
        :param throttle: seconds: the first result at once, then at most one per interval,
            the last one always.
        :raises rxdb.ProgrammingError: at once, for text that holds no statement, for
            parameters no database takes (not a sequence or mapping, an integer out of
            range), a ``row_type`` that is not callable or a ``throttle`` that is not a
            positive number; other errors of the query arrive as ``on_error``.
        """
        ...

    @overload
    def watch_one(
        self, sql: str, params: Params = (), *, row_type: None = None, throttle: float | None = None
    ) -> ValueStream[Row | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> ValueStream[dict[str, Any] | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> ValueStream[T | None]: ...
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> ValueStream[Any]:
        """As :meth:`watch`, each value the first row (``None`` for none), emitted when it
        changes."""
        ...

    def watch_value(
        self, sql: str, params: Params = (), *, throttle: float | None = None
    ) -> ValueStream[Any]:
        """As :meth:`watch`, each value the first column of the first row (``None`` for no
        row), emitted when it changes."""
        ...

    def watch_many(
        self, queries: Queries, *, distinct: bool = True, recover: bool = False
    ) -> ResultsStream:
        """Several queries as one consistent group: their results by name, all read from one
        snapshot, again after every commit to a table any of them reads (``recover`` as for
        :meth:`watch`).

        :raises rxdb.ProgrammingError: at once, for ``queries`` that is not a non-empty
            mapping of str names to what :meth:`watch` takes.
        """
        ...

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        """One message per commit that touched ``tables`` (all if ``None``) in ``kinds``."""
        ...


@runtime_checkable
class DatabaseWriter(Protocol):
    """What code that writes needs: statements, transactions, announcements, cancelling.

    Writes are serialized: one transaction at a time, on one writer. Watchers hear of a
    transaction once, after its outermost commit, and never of a rolled-back one. A
    commit's message may arrive after the statement that committed returns (on PostgreSQL it
    comes back through the server), but messages arrive in their commits' order.
    """

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Run one statement (inside this task's transaction if one is open).

        :returns: the rows it changed (``rowcount``, -1 for a statement that changes no
            rows), the rows it returned, and ``last_insert_rowid``: the rowid of the row an
            insert made, or ``None`` where the engine has no rowid (PostgreSQL: use
            ``RETURNING``).
        :raises rxdb.ProgrammingError: for several statements, none, or wrong parameters.
        :raises rxdb.DatabaseError: (a subclass) when the database refuses it.
        """
        ...

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """Run one statement per parameter set; the number of rows changed in all.

        Watchers hear of it once. Outside a transaction SQLite commits each set on its own,
        so a failing set leaves the earlier ones in place (and a read meanwhile may see some
        of them): wrap it in :meth:`transaction` for one atomic change. (PostgreSQL runs
        them in one transaction of their own: all or nothing.)
        """
        ...

    async def execute_script(self, script: str) -> None:
        """Run several statements in order (inside this task's transaction if one is open).

        Outside a transaction SQLite commits each statement on its own, so a failing one
        leaves the earlier ones in place; PostgreSQL runs the script in one implicit
        transaction (unless it holds its own ``BEGIN``/``COMMIT``): all or nothing.
        """
        ...

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractAsyncContextManager[None]:
        """``async with db.transaction():``: this task's statements inside commit together
        at the end or roll back on an exception. Nested blocks are savepoints.

        :raises rxdb.ReentrancyError: inside a ``read()`` block.
        :raises rxdb.TransactionAbortedError: for statements after an interrupt rolled the
            transaction back.
        """
        ...

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        """Announce changes rxdb could not see; with no arguments, anything may have changed.

        :raises rxdb.ProgrammingError: for an update that is not a table name or
            :class:`rxdb.TableUpdate`.
        """
        ...

    async def interrupt(self) -> None:
        """Abort the statements running now; each raises :class:`rxdb.InterruptError`.
        With nothing running (or once closed), nothing happens: a later statement is not
        affected."""
        ...

    def interrupt_threadsafe(self) -> None:
        """:meth:`interrupt` for any thread (a UI thread's "Cancel" button, a signal
        handler's thread): it returns without waiting for the interrupt to land."""
        ...

    async def backup(
        self,
        target: str | os.PathLike[str],
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Copy the database, as of one snapshot, into the file ``target``: a database
        file on SQLite (``pages_per_step`` pages at a time), a ``pg_dump`` SQL script on
        PostgreSQL (restore it with ``psql -f``; ``pages_per_step`` means nothing there).
        ``progress`` is called as it goes, the last time with ``remaining == 0``.

        :raises rxdb.ProgrammingError: for a bad ``pages_per_step`` or ``progress``.
        """
        ...


@runtime_checkable
class AsyncDatabase(DatabaseReader, DatabaseWriter, Protocol):
    """A whole database for async code: reads, writes, watches and the lifecycle."""

    async def close(self) -> None:
        """Complete every watch and ``table_updates`` subscription made through this shape
        (by the time it returns), and release it. Idempotent.

        A shape that adapts a database owned elsewhere (another loop's, a server's) detaches
        only: the database stays open for its owner.
        """
        ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class BlockingReadSession(Protocol):
    """:class:`AsyncReadSession` for threads without a loop."""

    @overload
    def fetch_all(self, sql: str, params: Params = (), *, row_type: None = None) -> Rows: ...
    @overload
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> list[dict[str, Any]]: ...
    @overload
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> list[T]: ...
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> list[Any]: ...

    @overload
    def fetch_one(self, sql: str, params: Params = (), *, row_type: None = None) -> Row | None: ...
    @overload
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> dict[str, Any] | None: ...
    @overload
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> T | None: ...
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any: ...

    def fetch_value(self, sql: str, params: Params = ()) -> Any: ...

    def execute(self, sql: str, params: Params = ()) -> ExecuteResult: ...


@runtime_checkable
class BlockingDatabase(Protocol):
    """:class:`AsyncDatabase` as blocking calls, for threads without an event loop (scripts,
    Flask or Django views, a desktop app's worker threads). Same errors, same guarantees."""

    @property
    def path(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def execute(self, sql: str, params: Params = ()) -> ExecuteResult: ...

    def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int: ...

    def execute_script(self, script: str) -> None: ...

    @overload
    def fetch_all(self, sql: str, params: Params = (), *, row_type: None = None) -> Rows: ...
    @overload
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> list[dict[str, Any]]: ...
    @overload
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> list[T]: ...
    def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> list[Any]: ...

    @overload
    def fetch_one(self, sql: str, params: Params = (), *, row_type: None = None) -> Row | None: ...
    @overload
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: type[dict[Any, Any]]
    ) -> dict[str, Any] | None: ...
    @overload
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., T]
    ) -> T | None: ...
    def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any: ...

    def fetch_value(self, sql: str, params: Params = ()) -> Any: ...

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractContextManager[None]: ...

    def read(self) -> AbstractContextManager[BlockingReadSession]: ...

    def unsafe_read(self) -> AbstractContextManager[BlockingReadSession]: ...

    def notify_updates(self, *updates: str | TableUpdate) -> None: ...

    def interrupt(self) -> None:
        """Abort the statements running now; safe from any thread, loop or not."""
        ...

    def backup(
        self,
        target: str | os.PathLike[str],
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None: ...

    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: None = None,
        throttle: float | None = None,
    ) -> BlockingRowsStream[Row]: ...
    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> BlockingRowsStream[dict[str, Any]]: ...
    @overload
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> BlockingRowsStream[T]: ...
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> BlockingRowsStream[Any]: ...

    @overload
    def watch_one(
        self, sql: str, params: Params = (), *, row_type: None = None, throttle: float | None = None
    ) -> BlockingValueStream[Row | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> BlockingValueStream[dict[str, Any] | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> BlockingValueStream[T | None]: ...
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> BlockingValueStream[Any]: ...

    def watch_value(
        self, sql: str, params: Params = (), *, throttle: float | None = None
    ) -> BlockingValueStream[Any]: ...

    def watch_many(
        self, queries: Queries, *, distinct: bool = True, recover: bool = False
    ) -> BlockingResultsStream: ...

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc_info: object) -> None: ...


@runtime_checkable
class Handle(Protocol):
    """A picklable reference to a database (``await db.serializable_connection()``): connect
    it on another loop, thread or process to get a shape of the same database."""

    async def connect(self) -> AsyncDatabase:
        """A shape bound to the running loop.

        :raises rxdb.ClosedError: when the database it names is gone for good (a closed
            ``:memory:`` database, a server that no longer runs).
        """
        ...

    def connect_sync(self) -> BlockingDatabase:
        """A blocking shape, for a thread that runs no loop.

        :raises rxdb.WrongLoopError: on a thread that runs an event loop.
        """
        ...
