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
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb._types import Params
from rxdb.boundary.blocks import Enter, ThreadBlock, closing, inside, opening
from rxdb.errors import ClosedError, WrongLoopError
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from rxdb.watch.stream import QueryIterator, WatchStatistics

if TYPE_CHECKING:
    from rxdb._types import TransactionMode
    from rxdb.database import Database

__all__ = ("BridgedDatabase", "BridgedStream")

T = TypeVar("T")


class BridgedDatabase:
    """The async API of a :class:`rxdb.Database` that lives on another event loop.

    Bound to the loop that created it; :meth:`close` detaches this bridge only (the database
    stays open for its owner).
    """

    def __init__(self, origin: Database, origin_loop: asyncio.AbstractEventLoop) -> None:
        self._origin = origin
        self._origin_loop = origin_loop
        self._loop = asyncio.get_running_loop()
        self._blocks: contextvars.ContextVar[tuple[ThreadBlock, ...]] = contextvars.ContextVar(
            "rxdb_bridge_blocks", default=()
        )
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
        return f"<rxdb.BridgedDatabase {self.path!r}>"

    async def __aenter__(self) -> BridgedDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Detach this bridge (idempotent); the database itself stays open."""
        self._closed = True

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        return await self._call(lambda: self._origin.execute(sql, params))

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        rows = list(seq_of_params)  # read here: the iterable belongs to this thread
        return await self._call(lambda: self._origin.execute_many(sql, rows))

    async def execute_script(self, script: str) -> None:
        await self._call(lambda: self._origin.execute_script(script))

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        return await self._call(lambda: self._origin.fetch_all(sql, params))

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        return await self._call(lambda: self._origin.fetch_one(sql, params))

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        await self._call(lambda: self._origin.notify_updates(*updates))

    async def track_foreign_writes(self) -> None:
        await self._call(self._origin.track_foreign_writes)

    async def untrack_foreign_writes(self) -> None:
        await self._call(self._origin.untrack_foreign_writes)

    async def interrupt(self) -> None:
        self._origin.interrupt_threadsafe()

    def transaction(self, mode: TransactionMode = "immediate") -> Any:
        """As :meth:`rxdb.Database.transaction`, for this loop's task."""
        return self._block(lambda: self._origin.transaction(mode))

    @asynccontextmanager
    async def _block(self, enter: Enter) -> AsyncIterator[Any]:
        stack = self._blocks.get()
        block, begin = opening(stack, enter)
        value = await self._forward(begin)
        token = self._blocks.set((*stack, block))
        try:
            yield value
        except BaseException:
            self._blocks.reset(token)
            with contextlib.suppress(ClosedError):
                await self._forward(closing(block, failed=True))
            raise
        self._blocks.reset(token)
        await self._forward(closing(block, failed=False))

    def watch(self, sql: str, params: Params = (), *, distinct: bool = True) -> BridgedStream:
        """As :meth:`rxdb.Database.watch`; values are delivered on this loop."""
        self._check()
        return BridgedStream(
            lambda: self._origin.watch(sql, params, distinct=distinct),
            self._origin_loop,
            self._loop,
        )

    def table_updates(
        self, tables: Iterable[str] | None = None, kinds: Iterable[UpdateKind] | None = None
    ) -> Observable[NotifyTablesUpdated]:
        """As :meth:`rxdb.Database.table_updates`; messages are delivered on this loop."""
        self._check()
        wanted = None if tables is None else list(tables)
        wanted_kinds = None if kinds is None else list(kinds)
        return CrossLoop(
            lambda: self._origin.table_updates(wanted, wanted_kinds),
            self._origin_loop,
            self._loop,
        )

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


class CrossLoop(Observable[T]):
    """An Observable living on ``origin`` whose subscribers live on ``here``: subscribing
    and disposing hop to ``origin``; every event hops back to ``here``."""

    def __init__(
        self,
        make: Callable[[], Observable[T]],
        origin: asyncio.AbstractEventLoop,
        here: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__()
        self._make = make
        self._origin = origin
        self._here = here

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        here = self._here
        inner: list[abc.DisposableBase] = []
        disposed = [False]

        def deliver(callback: Callable[..., None], *args: Any) -> None:
            def run() -> None:
                if not disposed[0]:
                    callback(*args)

            with contextlib.suppress(RuntimeError):  # this loop has closed: nobody listens
                here.call_soon_threadsafe(run)

        def subscribe() -> None:
            if disposed[0]:
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

        def dispose() -> None:
            disposed[0] = True
            for subscription in inner:
                subscription.dispose()

        self._origin.call_soon_threadsafe(subscribe)

        def dispose_there() -> None:
            disposed[0] = True
            with contextlib.suppress(RuntimeError):
                self._origin.call_soon_threadsafe(dispose)

        return Disposable(dispose_there)


class BridgedStream(CrossLoop[Rows]):
    """What :meth:`BridgedDatabase.watch` returns: an Observable delivered on this loop, and
    an async iterable (newest result, no backlog)."""

    def __init__(
        self,
        make: Callable[[], Any],
        origin: asyncio.AbstractEventLoop,
        here: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(make, origin, here)
        self._stream = make()

    def __aiter__(self) -> QueryIterator:
        return QueryIterator(self)

    def statistics(self) -> WatchStatistics:
        """The shared query's statistics: a snapshot read across threads, for diagnostics."""
        stats: WatchStatistics = self._stream.statistics()
        return stats
