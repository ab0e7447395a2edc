"""A database opened on one event loop, used from another (``handle.connect()``).

Every operation runs on the database's own loop (``run_coroutine_threadsafe``) and is awaited
here (``wrap_future``); results and Observable events come back to *this* loop through
``call_soon_threadsafe``, the one door in. Transactions and read blocks keep the async API's
task ownership: a block is served on the database's loop by one task (as in the blocking
façade), and the statements this task — and tasks it starts — issue inside it go there.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb._types import Params, ProgressCallback, TransactionMode
from rxdb.api import AsyncReadSession, Queries
from rxdb.arguments import check_parameter_sets, check_sql, check_table_names, check_update_kinds
from rxdb.boundary.blocks import Enter, ThreadBlock, closing, inside, opening
from rxdb.boundary.origin import Origin, Source
from rxdb.errors import ClosedError, WrongLoopError
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.streams import AsyncFetches, AsyncWatches, QueryStream, Stream
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

__all__ = ("BridgedDatabase", "BridgedReadSession")

T = TypeVar("T")
Call = Callable[[Callable[[], Coroutine[Any, Any, Any]]], Coroutine[Any, Any, Any]]


class BridgedDatabase(AsyncFetches, AsyncWatches):
    """The async API of a database that lives on another event loop of this process.

    Bound to the loop that created it. :meth:`close` detaches this bridge only (the database
    stays open for its owner): it completes the watches made through it and rolls back its
    open blocks.

    :param origin: the database, used only on ``origin_loop``.
    :param origin_loop: the loop ``origin`` runs on.
    """

    def __init__(self, origin: Origin, origin_loop: asyncio.AbstractEventLoop) -> None:
        self._origin = origin
        self._origin_loop = origin_loop
        self._loop = asyncio.get_running_loop()
        self._blocks: contextvars.ContextVar[tuple[ThreadBlock, ...]] = contextvars.ContextVar(
            "rxdb_bridge_blocks", default=()
        )
        self._open_blocks: set[ThreadBlock] = set()  # outermost, of every task
        self._subscriptions: set[Callable[[], None]] = set()  # each completes one, here
        self._closed = False

    @property
    def path(self) -> str:
        return self._origin.path

    @property
    def key(self) -> str:
        return self._origin.key

    @property
    def closed(self) -> bool:
        return self._closed or self._origin.closed

    def __repr__(self) -> str:
        # The origin's own repr: it knows what not to show (a URL's password).
        return f"<rxdb.BridgedDatabase of {self._origin!r}>"

    async def __aenter__(self) -> BridgedDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Detach this bridge (idempotent): its watches complete, its open transaction and
        read blocks roll back, later calls raise :class:`rxdb.ClosedError`. The database
        itself stays open."""
        if self._closed:
            return
        self._closed = True
        for complete in list(self._subscriptions):
            complete()
        for block in list(self._open_blocks):
            with contextlib.suppress(RuntimeError):  # the origin's loop is gone: so is the block
                await self._forward(block.abort)

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        return await self._call(lambda: self._origin.execute(sql, params))

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        check_parameter_sets(seq_of_params, check_sql(sql))
        rows = list(seq_of_params)  # read here: the iterable belongs to this thread
        return await self._call(lambda: self._origin.execute_many(sql, rows))

    async def execute_script(self, script: str) -> None:
        await self._call(lambda: self._origin.execute_script(script))

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        return await self._call(lambda: self._origin.fetch_all(sql, params))

    async def _fetch_first(self, sql: str, params: Params) -> Row | None:
        return await self._call(lambda: self._origin.fetch_one(sql, params))

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        await self._call(lambda: self._origin.notify_updates(*updates))

    async def track_foreign_writes(self) -> None:
        await self._call(self._origin.track_foreign_writes)

    async def untrack_foreign_writes(self) -> None:
        await self._call(self._origin.untrack_foreign_writes)

    async def interrupt(self) -> None:
        """As :meth:`rxdb.Database.interrupt`: every statement running now, whoever runs it.
        Once this bridge is closed, nothing of it runs: nothing happens."""
        self.interrupt_threadsafe()

    def interrupt_threadsafe(self) -> None:
        """:meth:`interrupt` for any thread."""
        if not self.closed:
            self._origin.interrupt_threadsafe()

    async def backup(
        self,
        target: str | os.PathLike[str],
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        """As :meth:`rxdb.Database.backup`, into a file; ``progress`` is called on a worker
        thread."""
        await self._call(
            lambda: self._origin.backup(target, pages_per_step=pages_per_step, progress=progress)
        )

    def transaction(self, mode: TransactionMode = "immediate") -> AbstractAsyncContextManager[None]:
        """As :meth:`rxdb.Database.transaction`, for this loop's task (and tasks it starts)."""
        return self._block(lambda: self._origin.transaction(mode))

    def read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        """As :meth:`rxdb.Database.read`: one snapshot for the block, for this loop's task."""
        return self._read(lambda: self._origin.read())

    def unsafe_read(self) -> AbstractAsyncContextManager[AsyncReadSession]:
        """As :meth:`rxdb.Database.unsafe_read`."""
        return self._read(lambda: self._origin.unsafe_read())

    @asynccontextmanager
    async def _read(self, enter: Enter) -> AsyncIterator[AsyncReadSession]:
        async with self._block(enter) as session:
            yield BridgedReadSession(session, self._call)

    @asynccontextmanager
    async def _block(self, enter: Enter) -> AsyncIterator[Any]:
        self._check()
        stack = self._blocks.get()
        block, begin = opening(stack, enter)
        value = await self._forward(begin)
        if not stack:
            self._open_blocks.add(block)
        token = self._blocks.set((*stack, block))
        try:
            yield value
        except BaseException:
            self._blocks.reset(token)
            with contextlib.suppress(ClosedError):
                await self._forward(closing(block, failed=True))
            raise
        finally:
            if not stack:
                self._open_blocks.discard(block)
        self._blocks.reset(token)
        await self._forward(closing(block, failed=False))

    def _watch_rows(
        self, sql: str, params: Params, *, distinct: bool, recover: bool
    ) -> QueryStream[Row]:
        """The origin's watch, delivered on this loop (where ``row_type`` and ``throttle``
        are applied: the caller's types are made, and its timers run, here)."""
        self._check()
        stream = self._origin.watch(sql, params, distinct=distinct, recover=recover)
        return QueryStream(
            CrossLoop(lambda: stream, self),
            stream.statistics,
            lambda: CrossLoop(stream.states, self),  # in order with the results: one queue
        )

    def watch_many(
        self, queries: Queries, *, distinct: bool = True, recover: bool = False
    ) -> Stream[dict[str, Rows]]:
        """As :meth:`rxdb.Database.watch_many`; values and states are delivered on this
        loop."""
        self._check()
        group = self._origin.watch_many(queries, distinct=distinct, recover=recover)
        return Stream(
            CrossLoop(lambda: group, self), group.statistics, lambda: CrossLoop(group.states, self)
        )

    def table_updates(
        self, tables: Iterable[str] | None = None, kinds: Iterable[UpdateKind] | None = None
    ) -> Observable[NotifyTablesUpdated]:
        """As :meth:`rxdb.Database.table_updates`; messages are delivered on this loop."""
        self._check()
        wanted = None if tables is None else list(check_table_names(tables))
        wanted_kinds = None if kinds is None else list(check_update_kinds(kinds))
        return CrossLoop(lambda: self._origin.table_updates(wanted, wanted_kinds), self)

    async def _call(self, operation: Callable[[], Coroutine[Any, Any, T]]) -> T:
        self._check()
        return await self._forward(inside(self._blocks.get(), operation))

    async def _forward(self, operation: Callable[[], Coroutine[Any, Any, T]]) -> T:
        future = asyncio.run_coroutine_threadsafe(operation(), self._origin_loop)
        return await asyncio.wrap_future(future)

    def _check(self) -> None:
        if self.closed:
            raise ClosedError(f"{self!r} is closed; connect the handle again")
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                f"{self!r} belongs to another event loop; call handle.connect() on each loop"
            )


class BridgedReadSession(AsyncFetches):
    """What a bridged ``read()`` block yields: the origin's session, used from this loop.
    Valid inside its block only (afterwards every call raises :class:`rxdb.ClosedError`)."""

    def __init__(self, session: AsyncReadSession, call: Call) -> None:
        self._session = session
        self._call = call  # runs an operation on the origin's loop, inside this task's block

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        rows: Rows = await self._call(lambda: self._session.fetch_all(sql, params))
        return rows

    async def _fetch_first(self, sql: str, params: Params) -> Row | None:
        row: Row | None = await self._call(lambda: self._session.fetch_one(sql, params))
        return row

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        result: ExecuteResult = await self._call(lambda: self._session.execute(sql, params))
        return result


class CrossLoop(Observable[T]):
    """An Observable living on the origin's loop whose subscribers live on the bridge's:
    subscribing and disposing hop to the origin; every event hops back. Closing the bridge
    completes every subscription."""

    def __init__(self, make: Callable[[], Source], bridge: BridgedDatabase) -> None:
        super().__init__()
        self._make = make
        self._bridge = bridge

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        bridge = self._bridge
        bridge._check()  # raised here, reactivex hands it to on_error
        here, origin = bridge._loop, bridge._origin_loop
        inner: list[abc.DisposableBase] = []
        disposed = False

        def deliver(callback: Callable[..., None], *args: Any) -> None:
            def run() -> None:
                if not disposed:
                    callback(*args)

            with contextlib.suppress(RuntimeError):  # this loop has closed: nobody listens
                here.call_soon_threadsafe(run)

        def subscribe() -> None:  # on the origin's loop
            if disposed:
                return
            try:
                inner.append(
                    self._make().subscribe(
                        lambda value: deliver(observer.on_next, value),
                        lambda error: deliver(observer.on_error, error),
                        lambda: deliver(observer.on_completed),
                    )
                )
            except Exception as error:  # e.g. the database closed meanwhile
                deliver(observer.on_error, error)

        def dispose_there() -> None:
            for subscription in inner:
                subscription.dispose()

        def dispose() -> None:  # here
            nonlocal disposed
            if disposed:
                return
            disposed = True
            bridge._subscriptions.discard(complete)
            with contextlib.suppress(RuntimeError):  # the origin's loop is gone
                origin.call_soon_threadsafe(dispose_there)

        def complete() -> None:  # here, as the bridge closes
            if not disposed:
                dispose()
                observer.on_completed()

        bridge._subscriptions.add(complete)
        origin.call_soon_threadsafe(subscribe)
        return Disposable(dispose)
