"""The client side of server mode: the async database contract over one connection.

:class:`RemoteDatabase` has the shape of :class:`rxdb.Database`; every call becomes a
:class:`~rxdb.remote.messages.Request` with an id, answered by a ``Response`` or ``Failure``
that one reader task pairs with the waiting future. Watches are subscriptions the server
pushes ``Event`` messages for; they are delivered on the loop that connected.

Transactions are held on the server. Like the local API, a block belongs to the task that
opened it (and tasks it starts): a context variable carries the open block ids, and every
statement sends the innermost one so that the server runs it inside that block.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from rxdb._types import Params
from rxdb.errors import ClosedError, ProgrammingError, RxdbError, WrongLoopError
from rxdb.remote.frames import DEFAULT_MAX_PAYLOAD, ProtocolError, encode_frame
from rxdb.remote.messages import (
    Event,
    EventKind,
    Failure,
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    Refused,
    Request,
    Response,
    Welcome,
    encode_message,
    error_from_wire,
)
from rxdb.remote.server import ServerHandle
from rxdb.remote.streams import FramedStream
from rxdb.remote.values import notify_from_wire, update_to_wire
from rxdb.rows import ExecuteResult, Row
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from rxdb.watch import QueryIterator

if TYPE_CHECKING:
    from rxdb.engine import TransactionMode

__all__ = (
    "ConnectionLostError",
    "RemoteDatabase",
    "RemoteStream",
    "ServerRefusedError",
    "connect",
    "connect_named",
)

LOG = logging.getLogger("rxdb.remote")

Rows = list[Row]
CONNECT_TIMEOUT: Final = 10.0
"""Seconds to reach a server and finish the handshake before giving up (a dead server's
socket file may accept nothing; a hung one may never answer)."""


class ConnectionLostError(ClosedError, ConnectionError):
    """Raised for calls pending (or made) after the connection to the server ended: the
    server shut down, its process died, or the network failed. Whatever was not committed
    when it happened is rolled back on the server. Connect again to carry on."""


class ServerRefusedError(RxdbError, ConnectionRefusedError):
    """Raised by ``connect`` when the server refuses the handshake (a wrong or missing token,
    another protocol version)."""


async def connect(handle: ServerHandle) -> RemoteDatabase:
    """Connect to the server ``handle`` names; the database is bound to the running loop.

    :raises ConnectionLostError: if the server cannot be reached or hangs up.
    :raises ServerRefusedError: if it refuses this client.
    """
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if handle.kind == "unix":
                reader, writer = await asyncio.open_unix_connection(handle.address)
            else:
                host, _, port = handle.address.rpartition(":")
                reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError) as error:
        raise ConnectionLostError(
            f"cannot reach the rxdb server at {handle.address}: {error or 'timed out'}"
        ) from error
    database = RemoteDatabase(handle, reader, writer)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await database._handshake()
    except BaseException as error:
        await database._abandon()
        if isinstance(error, TimeoutError):
            raise ConnectionLostError(
                f"the rxdb server at {handle.address} did not answer the handshake"
            ) from error
        raise
    return database


async def connect_named(name: str) -> RemoteDatabase:
    """Connect to the server registered under ``name`` (see :mod:`rxdb.remote.names`).

    :raises LookupError: (``NameNotFoundError``) if no live server has that name.
    """
    from rxdb.remote.names import lookup

    return await connect(lookup(name))


@dataclass
class _Subscription:
    observer: abc.ObserverBase[Any]
    convert: Callable[[Any], Any]


class RemoteDatabase:
    """A database served by another process (or this one), used over one connection.

    Bound to the event loop that connected it. :meth:`close` closes the connection only;
    the database stays open on the server.
    """

    def __init__(
        self, handle: ServerHandle, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.handle = handle
        self._stream = FramedStream(
            reader, writer, f"to the rxdb server at {handle.address}", DEFAULT_MAX_PAYLOAD
        )
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[int, _Subscription] = {}
        self._blocks: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
            "rxdb_remote_blocks", default=()
        )
        self._reader_task: asyncio.Task[None] | None = None
        self._closed = False
        self._lost: ConnectionLostError | None = None
        self._goodbye: str | None = None
        self.path: str | None = None
        self.server_pid: int | None = None

    # -- connection -------------------------------------------------------------------------

    async def _handshake(self) -> None:
        token = None if self.handle.token is None else bytes.fromhex(self.handle.token)
        self._write(Hello(token, "client", os.getpid(), uuid.uuid4().hex[:16]))
        message = await self._stream.receive()
        if isinstance(message, Refused):
            raise ServerRefusedError(f"the rxdb server refused the connection: {message.reason}")
        if not isinstance(message, Welcome):
            raise ConnectionLostError(
                f"the rxdb server at {self.handle.address} hung up during the handshake"
            )
        self.path = message.database
        self.server_pid = message.process_id
        # A fresh context: the reader must not carry the connecting task's blocks.
        self._reader_task = self._loop.create_task(self._read(), context=contextvars.Context())

    async def _read(self) -> None:
        reason = "the server closed the connection"
        try:
            while True:
                message = await self._stream.receive()
                if message is None:
                    break
                self._dispatch(message)
        except ProtocolError as error:
            reason = f"the server sent a malformed message: {error}"
            LOG.warning("closing the connection to the rxdb server: %s", error)
        except (ConnectionError, OSError) as error:
            reason = f"connection failed: {error}"
        finally:
            if self._goodbye is not None:
                reason = self._goodbye
            self._connection_ended(
                ConnectionLostError(f"connection to the rxdb server lost ({reason})")
            )

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Response):
            future = self._pending.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message.result)
        elif isinstance(message, Failure):
            future = self._pending.pop(message.id, None)
            if future is not None and not future.done():
                future.set_exception(error_from_wire(message.error))
        elif isinstance(message, Event):
            self._event(message)
        elif isinstance(message, Ping):
            self._write(Pong(message.nonce))
        elif isinstance(message, Goodbye):
            self._goodbye = message.reason
        elif not isinstance(message, Pong):
            raise ProtocolError(f"a server may not send {type(message).__name__.lower()}")

    def _event(self, event: Event) -> None:
        sub = self._subscriptions.get(event.subscription_id)
        if sub is None:
            return  # disposed meanwhile
        if event.kind is EventKind.NEXT:
            try:
                value = sub.convert(event.value)
            except ProtocolError as error:
                del self._subscriptions[event.subscription_id]
                _safely(sub.observer.on_error, error)
                return
            _safely(sub.observer.on_next, value)
        elif event.kind is EventKind.ERROR:
            del self._subscriptions[event.subscription_id]
            assert event.error is not None
            _safely(sub.observer.on_error, error_from_wire(event.error))
        else:
            del self._subscriptions[event.subscription_id]
            _safely(sub.observer.on_completed)

    def _connection_ended(self, error: ConnectionLostError) -> None:
        """Fail everything in flight: the server has rolled back what was not committed."""
        if self._lost is None:
            self._lost = error
        self._stream.writer.close()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(self._lost)
        subscriptions, self._subscriptions = self._subscriptions, {}
        for sub in subscriptions.values():
            if self._closed:
                _safely(sub.observer.on_completed)
            else:
                _safely(sub.observer.on_error, self._lost)

    def _write(self, message: Message) -> None:
        try:
            payload = encode_message(message)
        except ProtocolError as error:
            raise ProgrammingError(f"cannot send this to the rxdb server: {error}") from error
        if len(payload) > DEFAULT_MAX_PAYLOAD:
            raise ProgrammingError(
                f"the request is {len(payload)} bytes, over the frame limit of "
                f"{DEFAULT_MAX_PAYLOAD}; send it in smaller parts"
            )
        self._stream.writer.write(encode_frame(payload))

    async def _abandon(self) -> None:
        self._closed = True
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        await self._stream.close()

    @property
    def closed(self) -> bool:
        return self._closed or self._lost is not None

    def __repr__(self) -> str:
        return f"<rxdb.RemoteDatabase {self.handle.kind}:{self.handle.address}>"

    async def __aenter__(self) -> RemoteDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent). Watches complete; calls still pending fail
        with :class:`rxdb.ClosedError`; an open transaction of this client is rolled back by
        the server. Afterwards every call raises :class:`rxdb.ClosedError`."""
        if self._closed:
            return
        self._closed = True
        if self._lost is None:
            with contextlib.suppress(Exception):
                self._write(Goodbye("the client is closing"))
        self._connection_ended(ConnectionLostError("this connection to the rxdb server is closed"))
        await self._abandon()

    # -- calls ------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._lost is not None and not self._closed:
            raise ConnectionLostError(str(self._lost))
        if self._closed:
            raise ClosedError(f"{self!r} is closed; connect the handle again")
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                f"{self!r} belongs to another event loop; connect the handle on each loop"
            )

    def _start(self, op: str, args: list[Any]) -> asyncio.Future[Any]:
        self._check()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._write(Request(request_id, op, args))
        self._pending[request_id] = future
        return future

    async def _call(self, op: str, args: list[Any]) -> Any:
        return await self._start(op, args)

    def _fire(self, op: str, args: list[Any]) -> None:
        """Send a request whose answer nobody waits for (its failure is only logged)."""
        try:
            future = self._start(op, args)
        except ClosedError:
            return
        future.add_done_callback(_ignore)

    def _block(self) -> int | None:
        stack = self._blocks.get()
        return stack[-1] if stack else None

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """As :meth:`rxdb.Database.execute`, on the server."""
        result: ExecuteResult = await self._call("execute", [sql, _params(params), self._block()])
        return result

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """As :meth:`rxdb.Database.execute_many`: one request for the whole batch."""
        rows = [_params(p) for p in seq_of_params]
        count: int = await self._call("execute_many", [sql, rows, self._block()])
        return count

    async def execute_script(self, script: str) -> None:
        await self._call("execute_script", [script, self._block()])

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = await self._call("fetch_all", [sql, _params(params), self._block()])
        return rows

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = await self._call("fetch_one", [sql, _params(params), self._block()])
        return row

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode = "immediate") -> AsyncIterator[None]:
        """As :meth:`rxdb.Database.transaction`, held on the server for this client.

        Statements of this task (and tasks it starts) inside the block run in it; a nested
        block is a savepoint; an exception rolls the block back. If this process dies inside
        the block, the server rolls it back as soon as the connection drops.
        """
        stack = self._blocks.get()
        future = self._start("begin", [mode, stack[-1] if stack else None])
        try:
            block: int = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The server may still open the block: end it as soon as it answers.
            def undo(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self._fire("end", [done.result(), True])

            future.add_done_callback(undo)
            raise
        token = self._blocks.set((*stack, block))
        try:
            yield
        except BaseException:
            self._blocks.reset(token)
            with contextlib.suppress(ClosedError):
                await self._call("end", [block, True])
            raise
        self._blocks.reset(token)
        await self._call("end", [block, False])

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        """As :meth:`rxdb.Database.notify_updates`: the server's watchers (and every other
        client's) hear of it."""
        wire = [
            update_to_wire(u if isinstance(u, TableUpdate) else TableUpdate(u)) for u in updates
        ]
        await self._call("notify_updates", [wire])

    # -- observation ------------------------------------------------------------------------

    def watch(self, sql: str, params: Params = (), *, distinct: bool = True) -> RemoteStream:
        """As :meth:`rxdb.Database.watch`: the query runs on the server, which pushes each
        new result; values are delivered on this client's loop. Disposing the subscription
        (or leaving ``async for``) tells the server to stop."""
        self._check()
        return RemoteStream(self, "watch", [sql, _params(params), distinct], list)

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        """As :meth:`rxdb.Database.table_updates`, delivered on this client's loop."""
        self._check()
        args = [
            None if tables is None else list(tables),
            None if kinds is None else [k.value for k in kinds],
        ]
        return RemoteStream(self, "table_updates", args, notify_from_wire)

    def _subscribe(
        self,
        op: str,
        args: list[Any],
        observer: abc.ObserverBase[Any],
        convert: Callable[[Any], Any],
    ) -> abc.DisposableBase:
        self._check()
        sub_id = next(self._ids)
        # Registered before the request goes out: the first event may follow at once.
        self._subscriptions[sub_id] = _Subscription(observer, convert)
        try:
            future = self._start(op, [sub_id, *args])
        except BaseException:
            del self._subscriptions[sub_id]
            raise

        def started(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if error is not None:
                sub = self._subscriptions.pop(sub_id, None)
                if sub is not None:
                    _safely(sub.observer.on_error, error)

        future.add_done_callback(started)

        def dispose() -> None:
            if self._subscriptions.pop(sub_id, None) is None:
                return
            if self._loop.is_closed():
                return
            if threading.get_ident() != self._thread:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._fire, "unsubscribe", [sub_id])
                return
            self._fire("unsubscribe", [sub_id])

        return Disposable(dispose)


class RemoteStream(Observable[Any]):
    """What :meth:`RemoteDatabase.watch` returns: an Observable delivered on the client's
    loop, and an async iterable (newest result, no backlog)."""

    def __init__(
        self, db: RemoteDatabase, op: str, args: list[Any], convert: Callable[[Any], Any]
    ) -> None:
        super().__init__()
        self._db = db
        self._op = op
        self._args = args
        self._convert = convert

    def _subscribe_core(
        self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return self._db._subscribe(self._op, self._args, observer, self._convert)

    def __aiter__(self) -> QueryIterator:
        return QueryIterator(self)


def _params(params: Any) -> Any:
    if isinstance(params, dict):
        return params
    if hasattr(params, "keys"):
        return dict(params)
    return list(params)


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        LOG.debug("an rxdb request nobody waited for failed: %s", future.exception())


def _safely(callback: Callable[..., Any], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        LOG.exception("a subscriber of a remote watch raised; other subscribers are unaffected")
