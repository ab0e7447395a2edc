"""A blocking façade for threads and synchronous frameworks (Flask, Django views, scripts).

A :class:`SyncDatabase` drives an async database (the contract's
:class:`rxdb.api.AsyncDatabase`, see :mod:`rxdb.boundary.origin`) on the event loop it runs
on: a loop thread of its own (:func:`rxdb.open_sync`) or another owner's
(``handle.connect_sync()``). Each blocking method runs the matching coroutine there and
waits. Everything crosses the thread boundary through the loop's thread-safe doors
(``run_coroutine_threadsafe``, ``call_soon_threadsafe``), as the house rules demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import Any, TypeVar, overload

from reactivex import Observable

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.api import AsyncReadSession, Queries
from rxdb.boundary.blocking_streams import (
    OnLoop,
    SyncGroupStream,
    SyncQueryStream,
    SyncStream,
    on_loop,
)
from rxdb.boundary.blocks import Enter, ThreadBlock, closing, inside, opening
from rxdb.boundary.loop_thread import LoopThread, Operation, refuse_running_loop
from rxdb.boundary.origin import Origin
from rxdb.errors import ClosedError
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.shutdown import at_thread_shutdown
from rxdb.streams import BlockingFetches
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

__all__ = ("SyncDatabase", "SyncReadSession")

T = TypeVar("T")


class SyncDatabase(BlockingFetches):
    """The blocking twin of :class:`rxdb.Database`: same method names, same errors.

    Any thread may call it except one that runs an event loop — including the loop thread
    itself, where Observable callbacks run: a blocking call there would stall or deadlock that
    loop, so it raises :class:`rxdb.WrongLoopError` instead.
    """

    def __init__(self, database: Origin, runner: LoopThread) -> None:
        self._database = database
        self._runner = runner
        self._local = threading.local()  # .stack: this thread's open transaction blocks
        self._open_blocks: set[ThreadBlock] = set()  # the outermost ones, of every thread
        self._subscriptions: set[Callable[[], None]] = set()  # see OnLoop; on the loop thread
        self._close_lock = threading.Lock()
        self._closed = False
        _OPEN.add(self)

    @property
    def database(self) -> Origin:
        """The asyncio database underneath; use it only on :attr:`loop`."""
        return self._database

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the database runs on, in this object's own thread."""
        return self._runner.loop

    @property
    def path(self) -> str:
        return self._database.path

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        # The database's own repr: it knows what not to show (a URL's password).
        return f"<rxdb.SyncDatabase of {self._database!r}>"

    def __enter__(self) -> SyncDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (waiting for work in flight, as the async ``close`` does) and join
        the loop thread. Idempotent; afterwards every call raises :class:`rxdb.ClosedError`.
        It rolls back the open transaction and read blocks of every thread using it, and
        completes the watches and ``table_updates`` subscriptions made through it (a ``for``
        loop over a watch ends). A façade made by ``handle.connect_sync()`` only detaches: the
        database stays open for its owner (and its writer free of this façade's blocks)."""
        refuse_running_loop("close")
        with self._close_lock:
            if self._closed:
                return
            try:
                for block in list(self._open_blocks):
                    with contextlib.suppress(ClosedError):  # it ended meanwhile
                        self._runner.run(block.abort)
                self._runner.call(self._complete_subscriptions)
                if self._runner.owned:
                    self._runner.run(self._database.close)
            finally:
                self._closed = True
                self._runner.stop()
                _OPEN.discard(self)

    def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        return self._call(lambda: self._database.execute(sql, params))

    def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        return self._call(lambda: self._database.execute_many(sql, seq_of_params))

    def execute_script(self, script: str) -> None:
        self._call(lambda: self._database.execute_script(script))

    def _fetch_rows(self, sql: str, params: Params) -> Rows:
        return self._call(lambda: self._database.fetch_all(sql, params))

    def _fetch_first(self, sql: str, params: Params) -> Row | None:
        return self._call(lambda: self._database.fetch_one(sql, params))

    def notify_updates(self, *updates: str | TableUpdate) -> None:
        self._call(lambda: self._database.notify_updates(*updates))

    def track_foreign_writes(self) -> None:
        """See :meth:`rxdb.Database.track_foreign_writes`."""
        self._call(self._database.track_foreign_writes)

    def untrack_foreign_writes(self) -> None:
        """See :meth:`rxdb.Database.untrack_foreign_writes`."""
        self._call(self._database.untrack_foreign_writes)

    def transaction(self, mode: TransactionMode = "immediate") -> ContextManager[None]:
        """``with db.transaction():`` — this thread's statements inside the block run in one
        transaction, committed at the end or rolled back on an exception; other threads'
        statements wait for it. A nested block is a savepoint. Threads started inside the
        block do not join it (unlike tasks in the async API): they wait like any other."""
        return self._block(lambda: self._database.transaction(mode))

    def read(self) -> ContextManager[SyncReadSession]:
        """``with db.read() as r:`` — the blocking twin of :meth:`rxdb.Database.read`: one
        snapshot for the block; this thread's ``db.fetch_all`` inside it sees it too."""
        return self._read(lambda: self._database.read())

    def unsafe_read(self) -> ContextManager[SyncReadSession]:
        """The blocking twin of :meth:`rxdb.Database.unsafe_read`."""
        return self._read(lambda: self._database.unsafe_read())

    @contextlib.contextmanager
    def _read(self, enter: Enter) -> Iterator[SyncReadSession]:
        with self._block(enter) as session:
            yield SyncReadSession(session, self._call)

    def interrupt(self) -> None:
        """Abort the statements running now; safe from any thread (see
        :meth:`rxdb.Database.interrupt`). Once closed, nothing of this façade runs: nothing
        happens (a detached one must not interrupt its owner's statements)."""
        if not self._closed:
            self._database.interrupt_threadsafe()

    def backup(
        self,
        target: str | os.PathLike[str] | SyncDatabase,
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        """The blocking twin of :meth:`rxdb.Database.backup`. A ``SyncDatabase`` target must
        not be this one."""
        if isinstance(target, SyncDatabase):
            # Each façade owns its own loop, so the copy is made into the target's file.
            self.backup(target.path, pages_per_step=pages_per_step, progress=progress)
            target.notify_updates()
            return
        self._call(
            lambda: self._database.backup(target, pages_per_step=pages_per_step, progress=progress)
        )

    @contextlib.contextmanager
    def _block(self, enter: Enter) -> Iterator[Any]:
        stack: list[ThreadBlock] = self._local.__dict__.setdefault("stack", [])
        block, begin = opening(stack, enter)
        value = self._runner.run(begin)
        outermost = not stack
        if outermost:
            self._open_blocks.add(block)
        stack.append(block)
        try:
            yield value
        except BaseException:
            stack.pop()
            # The body's exception is what the caller must see; if the database was closed
            # meanwhile, close already rolled back.
            with contextlib.suppress(ClosedError):
                self._runner.run(closing(block, failed=True))
            raise
        else:
            stack.pop()
            self._runner.run(closing(block, failed=False))
        finally:
            if outermost:
                self._open_blocks.discard(block)

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
    ) -> SyncQueryStream[Row]: ...
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
    ) -> SyncQueryStream[dict[str, Any]]: ...
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
    ) -> SyncQueryStream[T]: ...
    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> SyncQueryStream[Any]:
        """Observe a query: an Observable (callbacks run on the loop thread) that a plain
        ``for rows in db.watch(sql):`` also iterates, newest result first. The options are
        :meth:`rxdb.Database.watch`'s, applied on the loop thread."""
        self._check_open()
        stream = self._database.watch(
            sql, params, distinct=distinct, recover=recover, row_type=row_type, throttle=throttle
        )
        return SyncQueryStream(stream, self._runner, self._subscriptions)

    def watch_many(
        self, queries: Queries, *, distinct: bool = True, recover: bool = False
    ) -> SyncGroupStream:
        """As :meth:`rxdb.Database.watch_many`, observed or iterated from any thread."""
        self._check_open()
        group = self._database.watch_many(queries, distinct=distinct, recover=recover)
        return SyncGroupStream(group, self._runner, self._subscriptions)

    @overload
    def watch_one(
        self, sql: str, params: Params = (), *, row_type: None = None, throttle: float | None = None
    ) -> SyncStream[Row | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: type[dict[Any, Any]],
        throttle: float | None = None,
    ) -> SyncStream[dict[str, Any] | None]: ...
    @overload
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., T],
        throttle: float | None = None,
    ) -> SyncStream[T | None]: ...
    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> SyncStream[Any]:
        """As :meth:`rxdb.Database.watch_one`: the first row of each result, or ``None``."""
        self._check_open()
        stream = self._database.watch_one(sql, params, row_type=row_type, throttle=throttle)
        return on_loop(stream, self._runner, self._subscriptions)

    def watch_value(
        self, sql: str, params: Params = (), *, throttle: float | None = None
    ) -> SyncStream[Any]:
        """As :meth:`rxdb.Database.watch_value`: the first column of the first row."""
        self._check_open()
        stream = self._database.watch_value(sql, params, throttle=throttle)
        return on_loop(stream, self._runner, self._subscriptions)

    def table_updates(
        self, tables: Iterable[str] | None = None, kinds: Iterable[UpdateKind] | None = None
    ) -> Observable[NotifyTablesUpdated]:
        """An Observable of :class:`rxdb.NotifyTablesUpdated`; callbacks run on the loop thread."""
        self._check_open()
        return OnLoop(
            self._database.table_updates(tables, kinds), self._runner, self._subscriptions
        )

    def _complete_subscriptions(self) -> None:
        for complete in list(self._subscriptions):
            complete()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(
                f"{self!r} is closed; open a new one (rxdb.open_sync, or handle.connect_sync())"
            )

    def _call(self, operation: Operation[T]) -> T:
        return self._runner.run(inside(self._local.__dict__.get("stack", []), operation))


_OPEN: weakref.WeakSet[SyncDatabase] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for database in list(_OPEN):
        with contextlib.suppress(Exception):
            database.close()


# Before the interpreter joins non-daemon threads (the loop thread would hang the exit), and
# before the engine's own hook, which would close the connections under a running loop. The
# hook holds databases weakly.
at_thread_shutdown(_close_all_at_exit)


class SyncReadSession(BlockingFetches):
    """The blocking twin of :class:`rxdb.ReadSession`, valid inside its ``with`` block."""

    def __init__(self, session: AsyncReadSession, call: Callable[[Operation[Any]], Any]) -> None:
        self._session = session
        self._call = call

    def _fetch_rows(self, sql: str, params: Params) -> Rows:
        rows: Rows = self._call(lambda: self._session.fetch_all(sql, params))
        return rows

    def _fetch_first(self, sql: str, params: Params) -> Row | None:
        row: Row | None = self._call(lambda: self._session.fetch_one(sql, params))
        return row

    def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        result: ExecuteResult = self._call(lambda: self._session.execute(sql, params))
        return result
