"""The client side of server mode: the async database contract over one connection.

:class:`RemoteDatabase` has the shape of :class:`rxdb.Database`; every call becomes a
:class:`~rxdb.remote.wire.messages.Request` with an id, answered by a ``Response`` or ``Failure``
that one reader task pairs with the waiting future. Watches are subscriptions the server
pushes ``Event`` messages for; they are delivered on the loop that connected.

Transaction and read blocks are held on the server. Like the local API, a block belongs to
the task that opened it (and tasks it starts): a context variable carries the open blocks,
and every statement sends the innermost one's id so that the server runs it inside that block.

With :class:`Reconnect`, a lost connection is re-established in the background: every
connection has a *generation*, and a block remembers the generation it was opened in, so a
block of a lost connection fails instead of sending its id to a new connection (where the
server may have given the same id to nobody, or to another block). Watches outlive the
connection: they are subscribed again on the new one, whose first result they re-emit.
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
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from reactivex import Observable, Observer, abc
from reactivex.disposable import Disposable

from rxdb._types import BackupProgress, Params, ProgressCallback
from rxdb.errors import ClosedError, ProgrammingError, RxdbError, WrongLoopError
from rxdb.errors import ConnectionLostError as ConnectionLostError
from rxdb.errors import ServerRefusedError as ServerRefusedError
from rxdb.remote.server import ServerHandle
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD, ProtocolError, encode_frame
from rxdb.remote.wire.messages import (
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
from rxdb.remote.wire.stream import KEEPALIVE, FramedStream
from rxdb.remote.wire.values import notify_from_wire, update_to_wire
from rxdb.rows import ExecuteResult, Row
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from rxdb.watch.stream import QueryIterator

if TYPE_CHECKING:
    from rxdb._types import TransactionMode

__all__ = (
    "ConnectionLostError",
    "Reconnect",
    "RemoteDatabase",
    "RemoteReadSession",
    "RemoteStream",
    "ServerRefusedError",
    "connect",
    "connect_named",
)

LOG = logging.getLogger("rxdb.remote")

CONNECT_TIMEOUT: Final = 10.0
"""Seconds to reach a server and finish the handshake before giving up (a dead server's
socket file may accept nothing; a hung one may never answer)."""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """How a client reconnects after losing its server: ``connect(handle, reconnect=True)``
    uses the defaults, ``reconnect=Reconnect(...)`` others.

    The first attempt is made at once, then after ``first_delay`` seconds, doubling up to
    ``max_delay``. A handle with a ``name`` is looked up again on every attempt, so a named
    server restarted at a new address (and with a new token) is found.

    :ivar first_delay: seconds between the first two attempts.
    :ivar max_delay: the longest pause between two attempts.
    :ivar call_wait: seconds a call made while disconnected waits for the connection to come
        back before it raises :class:`ConnectionLostError`.
    :ivar give_up_after: seconds without a connection after which the client stops trying:
        watches end with :class:`ConnectionLostError` and calls raise it. ``None`` (the
        default) keeps trying until :meth:`RemoteDatabase.close`.
    """

    first_delay: float = 0.05
    max_delay: float = 2.0
    call_wait: float = 10.0
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError("Reconnect needs 0 < first_delay <= max_delay")
        if self.call_wait < 0 or (self.give_up_after is not None and self.give_up_after < 0):
            raise ValueError("Reconnect's call_wait and give_up_after cannot be negative")


async def connect(handle: ServerHandle, *, reconnect: bool | Reconnect = False) -> RemoteDatabase:
    """Connect to the server ``handle`` names; the database is bound to the running loop.

    :param reconnect: re-establish the connection automatically if it is lost (``True``
        for the default :class:`Reconnect` policy). The first connection must succeed.
    :raises ConnectionLostError: if the server cannot be reached or hangs up.
    :raises ServerRefusedError: if it refuses this client.
    """
    if reconnect is True:
        policy: Reconnect | None = Reconnect()
    elif reconnect is False:
        policy = None
    elif isinstance(reconnect, Reconnect):
        policy = reconnect
    else:
        raise TypeError(f"reconnect must be a bool or a Reconnect, not {reconnect!r}")
    stream, welcome = await _establish(handle)
    return RemoteDatabase(handle, stream, welcome, policy)


async def connect_named(name: str, *, reconnect: bool | Reconnect = False) -> RemoteDatabase:
    """Connect to the server registered under ``name`` (see :mod:`rxdb.remote.names`).
    With ``reconnect``, every attempt looks the name up again.

    :raises LookupError: (``NameNotFoundError``) if no live server has that name.
    """
    from rxdb.remote.names import lookup

    return await connect(lookup(name), reconnect=reconnect)


async def _establish(handle: ServerHandle) -> tuple[FramedStream, Welcome]:
    """Open a connection to ``handle`` and say hello; return it and the server's welcome."""
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
    stream = FramedStream(
        reader, writer, f"to the rxdb server at {handle.address}", DEFAULT_MAX_PAYLOAD
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            welcome = await _handshake(stream, handle)
    except BaseException as error:
        await stream.close()
        if isinstance(error, TimeoutError | OSError) and not isinstance(error, RxdbError):
            raise ConnectionLostError(
                f"the rxdb server at {handle.address} did not answer the handshake: "
                f"{error or 'timed out'}"
            ) from error
        raise
    return stream, welcome


async def _handshake(stream: FramedStream, handle: ServerHandle) -> Welcome:
    token = None if handle.token is None else bytes.fromhex(handle.token)
    hello = Hello(token, "client", os.getpid(), uuid.uuid4().hex[:16])
    stream.writer.write(encode_frame(encode_message(hello)))
    message = await stream.receive()
    if isinstance(message, Refused):
        raise ServerRefusedError(f"the rxdb server refused the connection: {message.reason}")
    if not isinstance(message, Welcome):
        raise ConnectionLostError(
            f"the rxdb server at {handle.address} hung up during the handshake"
        )
    return message


@dataclass
class _Subscription:
    observer: abc.ObserverBase[Any]
    convert: Callable[[Any], Any]
    op: str | None  # the request that subscribes again after a reconnect; None: never
    args: list[Any]


@dataclass(frozen=True, slots=True)
class _Block:
    """An open block as the client knows it: the server's id for it, in one connection."""

    id: int
    generation: int
    kind: str  # "transaction" or "read"


class RemoteDatabase:
    """A database served by another process (or this one), used over one connection.

    Bound to the event loop that connected it. :meth:`close` closes the connection only;
    the database stays open on the server. Made by :func:`connect`.
    """

    def __init__(
        self,
        handle: ServerHandle,
        stream: FramedStream,
        welcome: Welcome,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.handle = handle
        self._policy = reconnect
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[int, _Subscription] = {}
        self._blocks: contextvars.ContextVar[tuple[_Block, ...]] = contextvars.ContextVar(
            "rxdb_remote_blocks", default=()
        )
        self._stream = stream
        self._generation = 0
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self._lost: ConnectionLostError | None = None
        self._goodbye: str | None = None
        self._changed = asyncio.Event()
        self.path: str | None = None
        self.server_pid: int | None = None
        self._attach(stream, welcome)

    # -- connection -------------------------------------------------------------------------

    def _attach(self, stream: FramedStream, welcome: Welcome) -> None:
        """Make ``stream`` (whose handshake is done) this client's connection."""
        self._stream = stream
        self._goodbye = None
        self._lost = None
        self.path = welcome.database
        self.server_pid = welcome.process_id
        # A fresh context: the reader must not carry the connecting task's blocks.
        self._reader_task = self._loop.create_task(
            self._read(stream, self._generation), context=contextvars.Context()
        )

    async def _read(self, stream: FramedStream, generation: int) -> None:
        reason = "the server closed the connection"
        pinger = self._loop.create_task(self._ping(generation))
        try:
            while True:
                message = await stream.receive(KEEPALIVE.timeout)
                if message is None:
                    break
                self._dispatch(message)
        except TimeoutError:
            reason = f"the server has been silent for {KEEPALIVE.timeout:g} s"
            LOG.warning("closing the connection to the rxdb server: %s", reason)
        except ProtocolError as error:
            reason = f"the server sent a malformed message: {error}"
            LOG.warning("closing the connection to the rxdb server: %s", error)
        except (ConnectionError, OSError) as error:
            reason = f"connection failed: {error}"
        finally:
            pinger.cancel()
            if self._goodbye is not None and generation == self._generation:
                reason = self._goodbye
            self._connection_ended(
                generation, ConnectionLostError(f"connection to the rxdb server lost ({reason})")
            )

    async def _ping(self, generation: int) -> None:
        """Keep the server (and ourselves) sure that the other side is alive."""
        for nonce in itertools.count(1):
            await asyncio.sleep(KEEPALIVE.interval)
            if generation != self._generation or self._closed:
                return
            self._write(Ping(nonce))

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

    def _drop_connection(self, error: ConnectionLostError) -> None:
        """Leave the current connection: a new generation begins (blocks of the old one are
        dead), and the calls in flight fail with ``error``: the server rolls back what was
        not committed, and whether a statement in flight ran is unknown."""
        self._generation += 1
        self._lost = error
        self._stream.writer.close()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _connection_ended(self, generation: int, error: ConnectionLostError) -> None:
        if generation != self._generation or self._closed:
            return  # an earlier connection, or close() has dealt with it
        self._drop_connection(error)
        if self._policy is None:
            self._end_subscriptions(error)
        else:
            # Watches outlive the connection; a backup's progress belongs to its failed call.
            for sub_id, sub in list(self._subscriptions.items()):
                if sub.op is None:
                    del self._subscriptions[sub_id]
            LOG.info("%s; reconnecting", error)
            self._reconnecting = self._loop.create_task(
                self._reconnect(self._policy), context=contextvars.Context()
            )
        self._state_changed()

    def _end_subscriptions(self, error: ConnectionLostError | None) -> None:
        """End every subscription: with ``error``, or completed (``None``: a close)."""
        subscriptions, self._subscriptions = self._subscriptions, {}
        for sub in subscriptions.values():
            if error is None:
                _safely(sub.observer.on_completed)
            else:
                _safely(sub.observer.on_error, error)

    async def _reconnect(self, policy: Reconnect) -> None:
        """Connect again with backoff; then subscribe every watch again."""
        started = self._loop.time()
        delay = policy.first_delay
        while True:
            try:
                handle = self._target()
                stream, welcome = await _establish(handle)
                break
            except Exception as error:  # unreachable, refused, no such name (yet)
                last: BaseException = error
            waited = self._loop.time() - started
            if policy.give_up_after is not None and waited + delay > policy.give_up_after:
                self._give_up(policy, last)
                return
            await asyncio.sleep(delay)  # backoff before the next attempt
            delay = min(delay * 2, policy.max_delay)
        if self._closed:  # close() ran while the handshake finished
            await stream.close()
            return
        self.handle = handle
        self._reconnecting = None
        self._attach(stream, welcome)
        LOG.info("reconnected to the rxdb server at %s", handle.address)
        for sub_id, sub in list(self._subscriptions.items()):
            self._send_subscribe(sub_id, sub)
        self._state_changed()

    def _target(self) -> ServerHandle:
        """Where to reconnect: a named server is looked up again (it may have restarted at
        another address, with another token)."""
        if self.handle.name is None:
            return self.handle
        from rxdb.remote.names import lookup

        return lookup(self.handle.name)

    def _give_up(self, policy: Reconnect, last: BaseException) -> None:
        self._reconnecting = None
        self._lost = ConnectionLostError(
            f"connection to the rxdb server lost; no reconnection within "
            f"{policy.give_up_after} s (last attempt: {last})"
        )
        LOG.warning("%s", self._lost)
        self._end_subscriptions(self._lost)
        self._state_changed()

    def _state_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

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

    @property
    def closed(self) -> bool:
        """Closed, or disconnected for good (reconnection off, or given up)."""
        return self._closed or (self._lost is not None and self._reconnecting is None)

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (``False`` while reconnecting)."""
        return not self._closed and self._lost is None

    async def wait_connected(self) -> None:
        """Return once the connection is up: at once if it is, else when a reconnection
        succeeds. Waits as long as that takes: wrap it in ``asyncio.timeout``.

        :raises ConnectionLostError: if the connection is lost for good (no reconnection, or
            it gave up).
        :raises rxdb.ClosedError: after :meth:`close`.
        """
        while True:
            if self._closed:
                raise ClosedError(f"{self!r} is closed; connect the handle again")
            if self._lost is None:
                return
            if self._reconnecting is None:
                raise ConnectionLostError(str(self._lost))
            await self._changed.wait()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true, checked now and after every change of the
        connection's state (lost, reconnected, given up, closed); for diagnostics and tests.
        Wrap it in ``asyncio.timeout``."""
        while not predicate():
            await self._changed.wait()

    def __repr__(self) -> str:
        return f"<rxdb.RemoteDatabase {self.handle.kind}:{self.handle.address}>"

    async def __aenter__(self) -> RemoteDatabase:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection (idempotent), and stop reconnecting. Watches complete; calls
        still pending fail with :class:`rxdb.ClosedError`; an open transaction or read block
        of this client is rolled back by the server. Afterwards every call raises
        :class:`rxdb.ClosedError`."""
        if self._closed:
            return
        if self._lost is None:
            with contextlib.suppress(Exception):
                self._write(Goodbye("the client is closing"))
            self._drop_connection(
                ConnectionLostError("this connection to the rxdb server is closed")
            )
        self._closed = True
        self._end_subscriptions(None)
        self._state_changed()
        tasks = [t for t in (self._reconnecting, self._reader_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reconnecting = None
        await self._stream.close()

    # -- calls ------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise ClosedError(f"{self!r} is closed; connect the handle again")
        if self._lost is not None and self._reconnecting is None:
            raise ConnectionLostError(str(self._lost))
        if asyncio.get_running_loop() is not self._loop:
            raise WrongLoopError(
                f"{self!r} belongs to another event loop; connect the handle on each loop"
            )

    async def _ready(self) -> None:
        """Wait (at most the policy's ``call_wait``) for a lost connection to come back."""
        self._check()
        if self._lost is None or self._policy is None:
            return
        try:
            async with asyncio.timeout(self._policy.call_wait):
                await self.wait_connected()
        except TimeoutError:
            raise ConnectionLostError(
                f"{self._lost}; not reconnected within {self._policy.call_wait} s"
            ) from None

    def _start(self, op: str, args: list[Any]) -> asyncio.Future[Any]:
        """Send a request now; its answer will settle the returned future."""
        self._check()
        if self._lost is not None:
            raise ConnectionLostError(str(self._lost))
        request_id = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
        self._write(Request(request_id, op, args))
        self._pending[request_id] = future
        return future

    async def _call(self, op: str, args: list[Any]) -> Any:
        if self._lost is not None:
            await self._ready()
        return await self._start(op, args)

    async def _call_in_block(self, op: str, args: list[Any]) -> Any:
        """A call that runs in the calling task's innermost block (its id is the last
        argument), chosen after any wait for a reconnection."""
        if self._lost is not None:
            await self._ready()
        return await self._start(op, [*args, self._block()])

    def _fire(self, op: str, args: list[Any]) -> None:
        """Send a request whose answer nobody waits for (its failure is only logged)."""
        try:
            future = self._start(op, args)
        except ClosedError:
            return
        future.add_done_callback(_ignore)

    def _block(self) -> int | None:
        stack = self._blocks.get()
        return self._live(stack[-1]) if stack else None

    def _live(self, block: _Block) -> int:
        """The id of ``block``, which must belong to the current connection."""
        if block.generation != self._generation:
            raise ConnectionLostError(
                f"the connection to the rxdb server was lost inside this {block.kind} block, "
                "which the server rolled back; leave the block"
            )
        return block.id

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """As :meth:`rxdb.Database.execute`, on the server."""
        result: ExecuteResult = await self._call_in_block("execute", [sql, _params(params)])
        return result

    async def execute_many(self, sql: str, seq_of_params: Iterable[Params]) -> int:
        """As :meth:`rxdb.Database.execute_many`: one request for the whole batch."""
        rows = [_params(p) for p in seq_of_params]
        count: int = await self._call_in_block("execute_many", [sql, rows])
        return count

    async def execute_script(self, script: str) -> None:
        await self._call_in_block("execute_script", [script])

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = await self._call_in_block("fetch_all", [sql, _params(params)])
        return rows

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        row: Row | None = await self._call_in_block("fetch_one", [sql, _params(params)])
        return row

    @asynccontextmanager
    async def transaction(self, mode: TransactionMode = "immediate") -> AsyncIterator[None]:
        """As :meth:`rxdb.Database.transaction`, held on the server for this client.

        Statements of this task (and tasks it starts) inside the block run in it; a nested
        block is a savepoint; an exception rolls the block back. If this process dies inside
        the block, the server rolls it back as soon as the connection drops. If the
        connection is lost inside the block, its statements and its end raise
        :class:`ConnectionLostError` (the server rolled it back), even once reconnected.
        """
        async with self._held_block("transaction", "begin", [mode]):
            yield

    def read(self) -> AbstractAsyncContextManager[RemoteReadSession]:
        """As :meth:`rxdb.Database.read`: ``async with remote.read() as r:`` reserves one
        connection on the server for this client; every statement through ``r`` (or through
        this database by this task) inside the block sees one snapshot. Writes inside raise
        :class:`rxdb.ReadOnlyError`. The server gives the connection back when the block
        ends, or at once if this client disconnects or dies inside it.

        :raises rxdb.ReentrancyError: inside another ``read`` or a transaction.
        """
        return self._read_block(isolated=True)

    def unsafe_read(self) -> AbstractAsyncContextManager[RemoteReadSession]:
        """As :meth:`rxdb.Database.unsafe_read`: :meth:`read` without the snapshot."""
        return self._read_block(isolated=False)

    @asynccontextmanager
    async def _read_block(self, *, isolated: bool) -> AsyncIterator[RemoteReadSession]:
        async with self._held_block("read", "read", [isolated]) as block:
            session = RemoteReadSession(self, block, isolated=isolated)
            try:
                yield session
            finally:
                session._open = False

    @asynccontextmanager
    async def _held_block(self, kind: str, op: str, args: list[Any]) -> AsyncIterator[_Block]:
        """Open a block (or a nested level) on the server for this task, end it on exit."""
        if self._lost is not None:
            await self._ready()
        stack = self._blocks.get()
        generation = self._generation
        future = self._start(op, [*args, self._live(stack[-1]) if stack else None])
        try:
            block_id: int = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The server may still open the block: end it as soon as it answers (on the same
            # connection only: another connection's block of that id is someone else's).
            def undo(done: asyncio.Future[Any]) -> None:
                ok = not done.cancelled() and done.exception() is None
                if ok and generation == self._generation:
                    self._fire("end", [done.result(), True])

            future.add_done_callback(undo)
            raise
        block = _Block(block_id, generation, kind)
        token = self._blocks.set((*stack, block))
        try:
            yield block
        except BaseException:
            self._blocks.reset(token)
            if block.generation == self._generation:
                with contextlib.suppress(ClosedError):
                    await self._start("end", [block.id, True])
            raise
        self._blocks.reset(token)
        await self._start("end", [self._live(block), False])

    async def interrupt(self) -> None:
        """Interrupt this client's statements running on the server now: the interrupted
        statement raises :class:`rxdb.InterruptError`; inside a transaction block the
        transaction is rolled back and the block's further statements raise
        :class:`rxdb.TransactionAbortedError`; a backup of this client stops. With nothing
        running, nothing happens; nor when closed or disconnected (nothing of this client
        then runs there).

        What else it touches depends on where the statement runs (see ``docs/server.md``):
        nothing else for statements in read and transaction blocks; the shared writer for a
        write outside blocks; every connection (as :meth:`rxdb.Database.interrupt`) for a
        query outside blocks. The request overtakes the calls in flight: it is answered as
        soon as the server has interrupted.
        """
        if self._closed or self._lost is not None:
            return
        await self._start("interrupt", [])

    def interrupt_threadsafe(self) -> None:
        """:meth:`interrupt` for any thread (e.g. a UI thread's "Cancel" button); the
        request is sent from the client's loop, and nobody waits for its answer."""

        def send() -> None:
            if not self._closed and self._lost is None:
                self._fire("interrupt", [])

        if threading.get_ident() == self._thread:
            send()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
            self._loop.call_soon_threadsafe(send)

    async def backup(
        self,
        target: str | os.PathLike[str],
        *,
        pages_per_step: int = 256,
        progress: ProgressCallback | None = None,
    ) -> None:
        """As :meth:`rxdb.Database.backup`, into a file **on the server's machine**:
        ``target`` must be an absolute path there (the server's working directory is not
        this process's). Writes may continue meanwhile.

        ``progress`` is called on this client's loop with a :class:`rxdb.BackupProgress`
        after each step the server reports. Raising from it stops the backup at the
        server's next step, and ``backup`` raises that exception (the file may be complete
        if the server finished first). :meth:`interrupt` stops it too
        (:class:`rxdb.InterruptError`).

        :raises TypeError: for a target that is not a path (an open database cannot be
            sent to the server).
        :raises rxdb.ProgrammingError: for a relative path.
        :raises rxdb.ReentrancyError: inside a read or transaction block.
        """
        if not isinstance(target, str | os.PathLike):
            raise TypeError(
                "a remote backup writes into a file on the server's machine: pass its "
                f"absolute path, not {type(target).__name__}"
            )
        path = os.fspath(target)
        if not isinstance(path, str):
            raise TypeError("a backup target must be a text path, not bytes")
        self._check()
        progress_id: int | None = None
        raised: list[Exception] = []
        if progress is not None:
            progress_id = next(self._ids)
            reported = progress
            stop_id = progress_id

            def on_next(value: Any) -> None:
                try:
                    reported(_backup_progress(value))
                except Exception as error:
                    raised.append(error)
                    if self._subscriptions.pop(stop_id, None) is not None:
                        self._fire("unsubscribe", [stop_id])

            self._subscriptions[progress_id] = _Subscription(Observer(on_next), _same, None, [])
        try:
            await self._call_in_block("backup", [path, pages_per_step, progress_id])
        except Exception:
            if raised:
                raise raised[0] from None
            raise
        finally:
            if progress_id is not None:
                self._subscriptions.pop(progress_id, None)
        if raised:
            raise raised[0]

    async def notify_updates(self, *updates: str | TableUpdate) -> None:
        """As :meth:`rxdb.Database.notify_updates`: the server's watchers (and every other
        client's) hear of it."""
        wire = [
            update_to_wire(u if isinstance(u, TableUpdate) else TableUpdate(u)) for u in updates
        ]
        await self._call("notify_updates", [wire])

    async def track_foreign_writes(self) -> None:
        """As :meth:`rxdb.Database.track_foreign_writes`, on the server's database."""
        await self._call("track_foreign_writes", [])

    async def untrack_foreign_writes(self) -> None:
        """As :meth:`rxdb.Database.untrack_foreign_writes`, on the server's database."""
        await self._call("untrack_foreign_writes", [])

    # -- observation ------------------------------------------------------------------------

    def watch(self, sql: str, params: Params = (), *, distinct: bool = True) -> RemoteStream:
        """As :meth:`rxdb.Database.watch`: the query runs on the server, which pushes each
        new result; values are delivered on this client's loop. Disposing the subscription
        (or leaving ``async for``) tells the server to stop. With reconnection, the watch
        survives a lost connection: it is subscribed again, and re-emits the current result
        once the connection is back (a value equal to the last one included)."""
        self._check()
        return RemoteStream(self, "watch", [sql, _params(params), distinct], list)

    def table_updates(
        self,
        tables: Iterable[str] | None = None,
        kinds: Iterable[UpdateKind] | None = None,
    ) -> Observable[NotifyTablesUpdated]:
        """As :meth:`rxdb.Database.table_updates`, delivered on this client's loop. With
        reconnection it survives a lost connection, but commits made while disconnected are
        not reported."""
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
        sub = _Subscription(observer, convert, op, args)
        # Registered before the request goes out: the first event may follow at once.
        self._subscriptions[sub_id] = sub
        if self._lost is None:
            try:
                self._send_subscribe(sub_id, sub, raising=True)
            except BaseException:
                del self._subscriptions[sub_id]
                raise
        # else: reconnecting; subscribed when the connection is back

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

    def _send_subscribe(self, sub_id: int, sub: _Subscription, *, raising: bool = False) -> None:
        """Ask the server for subscription ``sub_id``; a refusal ends it with the error."""
        if sub.op is None:
            return
        try:
            future = self._start(sub.op, [sub_id, *sub.args])
        except Exception as error:
            if raising:
                raise
            if self._subscriptions.pop(sub_id, None) is not None:
                _safely(sub.observer.on_error, error)
            return

        def started(done: asyncio.Future[Any]) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                return
            if isinstance(error, ConnectionLostError) and not self.closed:
                return  # reconnecting: subscribed again on the next connection
            if self._subscriptions.get(sub_id) is sub:
                del self._subscriptions[sub_id]
                _safely(sub.observer.on_error, error)

        future.add_done_callback(started)


class RemoteReadSession:
    """What ``async with remote.read() as r`` hands out: statements in the read block held
    on the server (the counterpart of :class:`rxdb.ReadSession`). Valid only inside its
    block; afterwards every call raises :class:`rxdb.ClosedError`."""

    def __init__(self, db: RemoteDatabase, block: _Block, *, isolated: bool) -> None:
        self._db = db
        self._block = block
        self.isolated = isolated
        self._open = True

    def _id(self) -> int:
        if not self._open:
            raise ClosedError("this read session ended with its 'async with db.read()' block")
        return self._db._live(self._block)

    async def fetch_all(self, sql: str, params: Params = ()) -> list[Row]:
        rows: list[Row] = await self._db._start("fetch_all", [sql, _params(params), self._id()])
        return rows

    async def fetch_one(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Run one statement that reads (a query, a read-only PRAGMA)."""
        return ExecuteResult(-1, None, await self.fetch_all(sql, params))


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


def _same(value: Any) -> Any:
    return value


def _backup_progress(value: Any) -> BackupProgress:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(type(v) is int and v >= 0 for v in value)
    ):
        raise ProtocolError(f"a backup progress must be [remaining, total], not {value!r}")
    return BackupProgress(value[0], value[1])


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        LOG.debug("an rxdb request nobody waited for failed: %s", future.exception())


def _safely(callback: Callable[..., Any], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        LOG.exception("a subscriber of a remote watch raised; other subscribers are unaffected")
