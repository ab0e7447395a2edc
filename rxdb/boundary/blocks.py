"""A thread's transaction and read blocks, served by one task on the database's loop.

Internal to :mod:`rxdb.boundary`: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rxdb.boundary.loop_thread import Operation
from rxdb.errors import ClosedError

__all__ = ("Enter", "Request", "ThreadBlock", "closing", "inside", "opening")

T = TypeVar("T")
Enter = Callable[[], AbstractAsyncContextManager[Any]]
"""Opens one level of a block: ``db.transaction(mode)``, ``db.read()``..."""


class _RolledBack(Exception):
    """Raised inside a block level to make the engine roll it back."""


@dataclass
class Request:
    kind: str  # "run" | "enter" | "exit"
    operation: Operation[Any] | None = None
    enter: Enter | None = None
    failed: bool = False
    future: asyncio.Future[Any] = field(init=False)


class ThreadBlock:
    """One thread's outermost block (a transaction or a read), served by one task on the loop.

    The engine tells what runs inside a transaction or read block by the *task's* context, and
    each blocking call is a task of its own; so the block gets a single task that holds
    ``async with database.transaction()`` (or ``read()``) open and runs each statement the
    owning thread sends it in its own context. A nested block is a nested ``async with`` in
    that same task, so the engine's own rules (savepoints, reentrancy errors) apply unchanged.
    """

    def __init__(self, enter: Enter) -> None:
        self._enter = enter
        self._queue: asyncio.Queue[Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._waiting: set[asyncio.Future[Any]] = set()  # what callers await, until settled

    async def begin(self) -> Any:
        """Open the outermost level; return what its ``async with`` yields."""
        loop = asyncio.get_running_loop()
        entered = self._awaited(loop.create_future())
        # A fresh context: the block's scope belongs to this task alone.
        self._task = loop.create_task(
            self._level(entered, self._enter), context=contextvars.Context()
        )
        self._task.add_done_callback(self._ended)
        return await entered

    async def ask(self, request: Request) -> Any:
        if self._task is not None and self._task.done():
            raise ClosedError("this block has ended: its database (or adapter) was closed")
        request.future = self._awaited(asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def abort(self) -> None:
        """Roll the whole block back now (its owner is going away); whatever its owner asks
        afterwards raises :class:`rxdb.ClosedError`."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _awaited(self, future: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._waiting.add(future)
        future.add_done_callback(self._waiting.discard)
        return future

    def _ended(self, task: asyncio.Task[None]) -> None:
        # Aborted (or its loop is shutting down): nobody may wait for an answer forever.
        for future in list(self._waiting):
            _settle(future, None, ClosedError("the block was rolled back: its owner closed"))

    async def _level(self, entered: asyncio.Future[Any], enter: Enter) -> None:
        end: Request | None = None
        try:
            async with enter() as value:
                _settle(entered, value)
                end = await self._serve()
                if end.failed:
                    raise _RolledBack
        except _RolledBack:
            pass
        except Exception as error:  # BEGIN/SAVEPOINT, or COMMIT/RELEASE, failed
            _settle(end.future if end is not None else entered, None, error)
            return
        if end is not None:
            _settle(end.future, None)

    async def _serve(self) -> Request:
        while True:
            request = await self._queue.get()
            if request.operation is not None:
                try:
                    result = await request.operation()
                except Exception as error:
                    _settle(request.future, None, error)
                else:
                    _settle(request.future, result)
            elif request.enter is not None:
                await self._level(request.future, request.enter)
            else:
                return request


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None = None) -> None:
    if future.done():  # the waiting caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# The block protocol as seen from the caller's side, whatever the caller waits with (a blocking
# thread, or another event loop): each helper returns the operation to run on the database's
# loop for one step. ``stack`` holds the caller's open blocks, innermost last.


def opening(stack: Sequence[ThreadBlock], enter: Enter) -> tuple[ThreadBlock, Operation[Any]]:
    """Open a block: a new outermost one, or a nested level of the innermost open block."""
    if stack:
        block = stack[-1]
        return block, lambda: block.ask(Request("enter", enter=enter))
    block = ThreadBlock(enter)
    return block, block.begin


def closing(block: ThreadBlock, *, failed: bool) -> Operation[Any]:
    """End the innermost level of ``block``: commit/release, or roll back when ``failed``."""
    return lambda: block.ask(Request("exit", failed=failed))


def inside(stack: Sequence[ThreadBlock], operation: Operation[T]) -> Operation[T]:
    """Route ``operation`` into the innermost open block, if any."""
    if not stack:
        return operation
    block = stack[-1]

    async def asked() -> T:
        result: T = await block.ask(Request("run", operation))
        return result

    return asked
