"""The blocking shape (:class:`rxdb.SyncDatabase`) seen through :class:`rxdb.api.AsyncDatabase`,
so that the conformance suite's async test bodies run on it unchanged.

Each blocking call runs in a worker thread while the test's loop waits. The blocking façade
keeps a thread's transaction and read blocks per *thread*, and the async API keeps them per
*task*, so the adapter maps one onto the other: every task context gets a thread of its own (a
task started with a copied context shares its parent's thread, and so its blocks, as async
tasks share theirs; a task started with a fresh context gets a new one, like another thread of
a blocking program). Observable events, delivered by the façade on its loop thread, hop back
to the test's loop through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.api import (
    AsyncReadSession,
    BlockingDatabase,
    BlockingReadSession,
    BlockingResultsStream,
    BlockingRowsStream,
    BlockingValueStream,
    Queries,
)
from rxdb.rows import ExecuteResult, Rows
from rxdb.streams import Key, QueryIterator, RowDiff, WatchStatistics
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from rxdb.watch.states import WatchState

__all__ = ("AsyncOverBlocking",)

T = TypeVar("T")


class AsyncOverBlocking:
    """A :class:`rxdb.api.BlockingDatabase` driven from async code, one thread per task."""

    def __init__(self, database: BlockingDatabase) -> None:
        self._database = database
        self._loop = asyncio.get_running_loop()
        self._thread: contextvars.ContextVar[ThreadPoolExecutor | None] = contextvars.ContextVar(
            "conformance_thread", default=None
        )
        self._threads: list[ThreadPoolExecutor] = []

    async def _run(self, call: Callable[[], T]) -> T:
        thread = self._thread.get()
        if thread is None:
            # Set in the calling task's own context: its later calls find the same thread.
            thread = ThreadPoolExecutor(1, thread_name_prefix="conformance-blocking")
            self._threads.append(thread)
            self._thread.set(thread)
        return await self._loop.run_in_executor(thread, call)

    async def release_threads(self) -> None:
        """Stop the worker threads (after :meth:`close`: none is busy then)."""
        threads, self._threads = self._threads, []
        for thread in threads:
            await asyncio.to_thread(thread.shutdown)

    @property
    def blocking(self) -> BlockingDatabase:
        """The blocking database underneath."""
        return self._database

    @property
    def path(self) -> str:
        return self._database.path

    @property
    def closed(self) -> bool:
        return self._database.closed

    async def close(self) -> None:
        await self._run(self._database.close)

    async def __aenter__(self) -> AsyncOverBlocking:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        return await self._run(lambda: self._database.execute(sql, params))

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        return await self._run(lambda: self._database.execute_many(sql, seq_of_params))

    async def execute_script(self, script: str) -> None:
        await self._run(lambda: self._database.execute_script(script))

    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        return await self._run(lambda: self._database.fetch_all(sql, params, row_type=row_type))

    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        return await self._run(lambda: self._database.fetch_one(sql, params, row_type=row_type))

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        return await self._run(lambda: self._database.fetch_value(sql, params))

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        await self._run(lambda: self._database.notify_updates(*updates))

    async def interrupt(self) -> None:
        await self._run(self._database.interrupt)

    def interrupt_threadsafe(self) -> None:
        self._database.interrupt()

    async def backup(
        self,
        target: str | os.PathLike[str],
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        await self._run(
            lambda: self._database.backup(target, pages_per_step=pages_per_step, progress=progress)
        )

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractAsyncContextManager[None]:
        return self._block(lambda: self._database.transaction(mode))

    def read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        return self._read(self._database.read)

    def unsafe_read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        return self._read(self._database.unsafe_read)

    @asynccontextmanager
    async def _read(
        self, enter: Callable[[], contextlib.AbstractContextManager[BlockingReadSession]]
    ) -> AsyncIterator[AsyncReadSession]:
        async with self._block(enter) as session:
            yield _ReadSession(session, self._run)

    @asynccontextmanager
    async def _block(self, enter: Callable[[], contextlib.AbstractContextManager[T]]) -> Any:
        manager = enter()
        value = await self._run(manager.__enter__)
        try:
            yield value
        except BaseException as error:
            leave = functools.partial(manager.__exit__, type(error), error, error.__traceback__)
            if not await self._run(leave):
                raise
        else:
            await self._run(lambda: manager.__exit__(None, None, None))

    def watch(
        self,
        sql: str,
        params: Params = (),
        *,
        distinct: bool = True,
        recover: bool = False,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> Any:
        stream = self._database.watch(
            sql, params, distinct=distinct, recover=recover, row_type=row_type, throttle=throttle
        )
        return _Stream(stream, self._loop)

    def watch_many(
        self, queries: Queries, *, distinct: bool = True, recover: bool = False
    ) -> _Group:
        return _Group(
            self._database.watch_many(queries, distinct=distinct, recover=recover), self._loop
        )

    def watch_one(
        self,
        sql: str,
        params: Params = (),
        *,
        row_type: Callable[..., Any] | None = None,
        throttle: float | None = None,
    ) -> Any:
        stream = self._database.watch_one(sql, params, row_type=row_type, throttle=throttle)
        return _Values(stream, self._loop)

    def watch_value(self, sql: str, params: Params = (), *, throttle: float | None = None) -> Any:
        return _Values(self._database.watch_value(sql, params, throttle=throttle), self._loop)

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        return _Hop(self._database.table_updates(tables, kinds), self._loop)


class _ReadSession:
    def __init__(
        self, session: BlockingReadSession, run: Callable[[Callable[[], Any]], Any]
    ) -> None:
        self._session = session
        self._run = run

    async def fetch_all(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        return await self._run(lambda: self._session.fetch_all(sql, params, row_type=row_type))

    async def fetch_one(
        self, sql: str, params: Params = (), *, row_type: Callable[..., Any] | None = None
    ) -> Any:
        return await self._run(lambda: self._session.fetch_one(sql, params, row_type=row_type))

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        return await self._run(lambda: self._session.fetch_value(sql, params))

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        result: ExecuteResult = await self._run(lambda: self._session.execute(sql, params))
        return result


class _Subscribable(Protocol):
    def subscribe(
        self,
        on_next: Any = None,
        on_error: Any = None,
        on_completed: Any = None,
        *,
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase: ...


class _Hop(Observable[T]):
    """An Observable whose events, made on another thread, are delivered on ``loop``."""

    def __init__(self, inner: _Subscribable, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        disposed = False

        def hop(callback: Callable[..., None], *args: Any) -> None:
            def deliver() -> None:
                if not disposed:
                    callback(*args)

            with contextlib.suppress(RuntimeError):  # the test's loop has closed
                self._loop.call_soon_threadsafe(deliver)

        inner = self._inner.subscribe(
            lambda value: hop(observer.on_next, value),
            lambda error: hop(observer.on_error, error),
            lambda: hop(observer.on_completed),
        )

        def dispose() -> None:
            nonlocal disposed
            disposed = True
            inner.dispose()

        return Disposable(dispose)


class _Values(_Hop[T]):
    """A blocking shape's value stream, delivered on the test's loop."""

    def __init__(self, inner: BlockingValueStream[T], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(inner, loop)
        self._stream = inner

    def __aiter__(self) -> QueryIterator[T]:
        return QueryIterator(self)

    def statistics(self) -> WatchStatistics:
        return self._stream.statistics()

    def pipe(self, *operators: Callable[[Any], Any]) -> _Values[Any]:  # type: ignore[override]
        return _Values(self._stream.pipe(*operators), self._loop)


class _Stream(_Values[list[Any]]):
    """A blocking shape's watch; its ``throttle`` and ``diffs`` are the blocking shape's."""

    def __init__(self, inner: BlockingRowsStream[Any], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(inner, loop)
        self._rows = inner

    def throttle(self, seconds: float) -> _Stream:
        return _Stream(self._rows.throttle(seconds), self._loop)

    def diffs(self, key: Key = "id") -> _Values[RowDiff[Any]]:
        return _Values(self._rows.diffs(key), self._loop)

    def states(self) -> _Values[WatchState[Any]]:
        return _Values(self._rows.states(), self._loop)


class _Group(_Values[dict[str, Rows]]):
    """A blocking shape's group (``watch_many``)."""

    def __init__(self, inner: BlockingResultsStream, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(inner, loop)
        self._group = inner

    def states(self) -> _Values[WatchState[Any]]:
        return _Values(self._group.states(), self._loop)
