"""Transaction and read blocks a client holds on its server, and the read session of one.

Like the local API, a block belongs to the task that opened it (and the tasks it starts): a
context variable carries the open blocks, and every statement sends the innermost one's id
so that the server runs it inside that block. A block remembers the connection (its
*generation*) it was opened on: after a reconnection its id means nothing to the server (or
someone else's block), so its statements and its end raise
:class:`rxdb.ConnectionLostError` instead of being sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from rxdb._types import Params
from rxdb.arguments import check_sql
from rxdb.errors import ClosedError, ConnectionLostError
from rxdb.remote.client.answers import block_id, rows, wire_params
from rxdb.remote.client.connection import Connection
from rxdb.remote.wire.operations import End, FetchAll, Operation
from rxdb.rows import ExecuteResult, Rows
from rxdb.streams import AsyncFetches

__all__ = ("Block", "Blocks", "RemoteReadSession")


@dataclass(frozen=True, slots=True)
class Block:
    """An open block as the client knows it: the server's id for it, in one connection."""

    id: int
    generation: int
    kind: Literal["transaction", "read"]


class Blocks:
    """The blocks one client holds, per task."""

    def __init__(self, connection: Connection, shape: object) -> None:
        self.connection = connection
        self.shape = shape  # what errors name
        self._stack: contextvars.ContextVar[tuple[Block, ...]] = contextvars.ContextVar(
            "rxdb_remote_blocks", default=()
        )

    def current(self) -> int | None:
        """The id of this task's innermost block, or ``None`` outside blocks.

        :raises rxdb.ConnectionLostError: if that block was lost with its connection.
        """
        stack = self._stack.get()
        return self.live(stack[-1]) if stack else None

    def live(self, block: Block) -> int:
        """The id of ``block``, which must belong to the current connection."""
        if block.generation != self.connection.generation:
            raise ConnectionLostError(
                f"the connection to the rxdb server was lost inside this {block.kind} block, "
                "which the server rolled back; leave the block"
            )
        return block.id

    @asynccontextmanager
    async def hold(
        self, kind: Literal["transaction", "read"], opening: Callable[[int | None], Operation]
    ) -> AsyncIterator[Block]:
        """Open a block (or a nested level of this task's block) on the server; end it on
        exit, rolled back if the body raised. ``opening(parent)`` makes the request."""
        connection = self.connection
        if connection.lost is not None:
            await connection.ready(self.shape)
        generation = connection.generation
        future = connection.start(opening(self.current()), self.shape)
        try:
            opened = block_id(await asyncio.shield(future))
        except asyncio.CancelledError:
            # The server may still open the block: end it as soon as it answers (on the same
            # connection only: another connection's block of that id is someone else's).
            def undo(done: asyncio.Future[Any]) -> None:
                ok = not done.cancelled() and done.exception() is None
                if ok and type(done.result()) is int and generation == connection.generation:
                    connection.fire(End(done.result(), True), self.shape)

            future.add_done_callback(undo)
            raise
        block = Block(opened, generation, kind)
        token = self._stack.set((*self._stack.get(), block))
        try:
            yield block
        except BaseException:
            self._stack.reset(token)
            if block.generation == connection.generation:
                with contextlib.suppress(ClosedError):
                    await connection.start(End(block.id, True), self.shape)
            raise
        self._stack.reset(token)
        await connection.start(End(self.live(block), False), self.shape)


class RemoteReadSession(AsyncFetches):
    """What ``async with remote.read() as r`` hands out: statements in the read block held
    on the server (the counterpart of :class:`rxdb.ReadSession`, an
    :class:`rxdb.api.AsyncReadSession`). Valid only inside its block; afterwards every call
    raises :class:`rxdb.ClosedError`."""

    def __init__(self, blocks: Blocks, block: Block, *, isolated: bool) -> None:
        self._blocks = blocks
        self._block = block
        self.isolated = isolated
        self._open = True

    def end(self) -> None:
        self._open = False

    def _id(self) -> int:
        if not self._open:
            raise ClosedError("this read session ended with its 'async with db.read()' block")
        return self._blocks.live(self._block)

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        operation = FetchAll(check_sql(sql), wire_params(params), self._id())
        return rows(await self._blocks.connection.start(operation, self._blocks.shape))

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Run one statement that reads (a query, a read-only PRAGMA)."""
        return ExecuteResult(-1, None, await self._fetch_rows(sql, params))
