"""Server mode: one process owns a database and serves it to clients in other processes.

This is Drift's isolate server for Python processes. It exists for databases that other
processes cannot open themselves -- ``:memory:``, or a file they have no access to -- and for
holding transactions on behalf of clients. Every client operation runs on the served
:class:`rxdb.Database` itself, so commits by local code, by the server's own code and by any
client all travel the same bus, and every watch (local or remote) refreshes on all of them.

A client's transaction block is served by one task on the database's loop (a
:class:`~rxdb.sync.blocks.ThreadBlock`, as for threads and other loops); the client names it
by a block id in each statement. When a connection ends for any reason -- a deliberate close,
a crash, a malformed frame, :meth:`Server.shutdown_all` -- its open blocks are rolled back at
once and its watches disposed, so a dead client leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import itertools
import logging
import os
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from reactivex import abc

from rxdb.errors import ClosedError, ProgrammingError, RxdbError
from rxdb.remote.frames import (
    DEFAULT_MAX_PAYLOAD,
    HANDSHAKE_MAX_PAYLOAD,
    FrameDecoder,
    ProtocolError,
    encode_frame,
)
from rxdb.remote.hub import socket_directory
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
    UnsupportedVersionError,
    Welcome,
    decode_message,
    encode_message,
    error_to_wire,
    new_token,
    tokens_match,
)
from rxdb.sync.blocks import ThreadBlock, closing, inside, opening
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

if TYPE_CHECKING:
    from rxdb.database import Database
    from rxdb.remote.client import RemoteDatabase

__all__ = ("Server", "ServerHandle", "serve", "served_handle")

LOG = logging.getLogger("rxdb.remote")

HANDSHAKE_TIMEOUT: Final = 10.0
"""Seconds a new connection has to say hello; a silent stranger must not hold a slot."""
MAX_BUFFERED: Final = 64 * 1024 * 1024
"""Bytes queued for one client before it is dropped as too slow (its watches would otherwise
make the server buffer without bound)."""
SHUTDOWN_GRACE: Final = 5.0
"""Seconds :meth:`Server.shutdown_all` lets running statements finish before cancelling them."""
_READ_CHUNK: Final = 256 * 1024
_SUN_PATH_MAX: Final = 107

# Databases being served from this process, so that compute_with_database(db, ...) can reach
# a served :memory: database through its server. Weak: serving never keeps a database alive.
_SERVED: weakref.WeakKeyDictionary[Database, Server] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ServerHandle:
    """How to reach a server: picklable, JSON-able, and all a client needs.

    :ivar kind: ``"unix"`` or ``"tcp"``.
    :ivar address: the socket path, or ``"host:port"``.
    :ivar token: the hex token the server demands, or ``None`` (Unix sockets rely on the
        owner-only directory instead).
    :ivar name: the name the server is registered under, if any.
    """

    kind: Literal["unix", "tcp"]
    address: str
    token: str | None = None
    name: str | None = None

    async def connect(self) -> RemoteDatabase:
        """Connect to the server from any process; the result is bound to the running loop.

        Gives up after ``rxdb.remote.client.CONNECT_TIMEOUT`` seconds; wrap it in
        ``asyncio.timeout`` for a shorter wait.
        """
        from rxdb.remote.client import connect

        return await connect(self)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ServerHandle:
        """Rebuild a handle from :meth:`to_json`'s output, checking every field's type."""
        if not isinstance(data, dict):
            raise ValueError("a server handle must be a JSON object")
        kind, address = data.get("kind"), data.get("address")
        token, name = data.get("token"), data.get("name")
        if kind not in ("unix", "tcp") or not isinstance(address, str):
            raise ValueError(f"not a server handle: {data!r}")
        if token is not None and not isinstance(token, str):
            raise ValueError("a server handle's token must be a string")
        if name is not None and not isinstance(name, str):
            raise ValueError("a server handle's name must be a string")
        return cls(kind, address, token, name)


def served_handle(db: Database) -> ServerHandle | None:
    """The handle of the server serving ``db`` from this process, if one does."""
    server = _SERVED.get(db)
    return None if server is None or server.closed else server.handle


async def serve(
    db: Database,
    *,
    path: str | None = None,
    host: str | None = None,
    port: int = 0,
    token: str | bytes | None = None,
    name: str | None = None,
    allow_remote: bool = False,
) -> Server:
    """Serve the open database ``db`` from this process, on its event loop.

    :param path: the Unix socket to listen on; by default a fresh one in rxdb's owner-only
        runtime directory (the hub's directory rule).
    :param host: listen on TCP instead, on this host (``"127.0.0.1"``, ``"::1"``,
        ``"localhost"``); a token is then always required (one is generated if not given).
    :param port: the TCP port; 0 picks a free one (read it from ``server.handle``).
    :param token: the token clients must present (hex string or bytes). Optional on a Unix
        socket, whose directory already keeps other users out.
    :param name: register the server under this name (see :mod:`rxdb.remote.names`) so that
        processes that did not start it can find it; unregistered on shutdown.
    :param allow_remote: permit a non-loopback ``host``. Traffic is not encrypted: only on a
        network you trust, and never without the token.
    :raises ValueError: for a non-loopback host without ``allow_remote``.
    """
    await db.connect()
    secret = token.hex() if isinstance(token, bytes) else token
    if secret is not None:
        bytes.fromhex(secret)  # fail here, not at the first client
    server: Server
    if host is not None:
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"refusing to serve on the non-loopback host {host!r}: pass allow_remote=True "
                "if you really mean to expose the database to the network (use a token)"
            )
        if secret is None:
            secret = new_token().hex()
        server = Server(db, secret)
        listener = await asyncio.start_server(server._accept, host, port)
        bound = listener.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        address = f"{shown}:{bound[1]}"
        server._listening(listener, ServerHandle("tcp", address, secret, name), None)
    else:
        if path is None:
            path = os.path.join(
                socket_directory(), f"server-{os.getpid()}-{uuid.uuid4().hex[:12]}.sock"
            )
        if len(os.fsencode(path)) > _SUN_PATH_MAX:
            raise ValueError(f"the socket path {path!r} is too long for a Unix socket")
        server = Server(db, secret)
        listener = await asyncio.start_unix_server(server._accept, path)
        os.chmod(path, 0o600)
        server._listening(listener, ServerHandle("unix", path, secret, name), path)
    if name is not None:
        from rxdb.remote import names

        try:
            names.register(name, server.handle)
        except BaseException:
            await server.shutdown_all()
            raise
        server._registered = name
    _SERVED[db] = server
    return server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Server:
    """A database served from this process. Made by :func:`serve`.

    :ivar handle: what clients connect with (:class:`ServerHandle`).
    """

    def __init__(self, db: Database, token: str | None) -> None:
        self.db = db
        self._token = None if token is None else bytes.fromhex(token)
        self._listener: asyncio.AbstractServer | None = None
        self._socket_path: str | None = None
        self._sessions: set[_Session] = set()
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._registered: str | None = None
        self._closed = False
        self._labels = itertools.count(1)
        self.epoch = uuid.uuid4().hex[:16]
        self.handle: ServerHandle

    def _listening(
        self, listener: asyncio.AbstractServer, handle: ServerHandle, path: str | None
    ) -> None:
        self._listener = listener
        self.handle = handle
        self._socket_path = path

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connections(self) -> int:
        """Clients connected now (handshake done or not)."""
        return len(self._sessions)

    def __repr__(self) -> str:
        return f"<rxdb.remote.Server {self.handle.kind}:{self.handle.address}>"

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown_all()

    async def shutdown_all(self) -> None:
        """Disconnect every client and stop serving. Idempotent.

        Clients' pending calls fail with :class:`rxdb.ClosedError` (they are told the server
        is shutting down), their watches end with that error, their transactions are rolled
        back, the socket file and the name registration are removed. The database itself
        stays open: it belongs to whoever opened it.
        """
        if self._closed:
            return
        self._closed = True
        if _SERVED.get(self.db) is self:
            del _SERVED[self.db]
        if self._listener is not None:
            self._listener.close()
        await asyncio.gather(
            *(s.close("the server is shutting down", goodbye=True) for s in list(self._sessions))
        )
        tasks = list(self._session_tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._socket_path)
        if self._registered is not None:
            from rxdb.remote import names

            names.unregister(self._registered, pid=os.getpid())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._closed:
            writer.close()
            return
        session = _Session(self, reader, writer, f"#{next(self._labels)}")
        self._sessions.add(session)
        self._session_tasks.add(task)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self._session_tasks.discard(task)


@dataclass
class _Held:
    """One client's open transaction block and how many levels (savepoints) deep it is."""

    block: ThreadBlock
    depth: int


class _Abort(Exception):
    """Ends a connection for a reason worth logging at warning level."""


class _Session:
    """One client connection: its handshake, requests, open blocks and subscriptions."""

    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        label: str,
    ) -> None:
        self.server = server
        self.db = server.db
        self.reader = reader
        self.writer = writer
        self.label = label
        self.decoder = FrameDecoder(HANDSHAKE_MAX_PAYLOAD)
        self.pending: deque[bytes] = deque()
        self.blocks: dict[int, _Held] = {}
        self.block_ids = itertools.count(1)
        self.subscriptions: dict[int, abc.DisposableBase] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.closing: asyncio.Future[None] | None = None

    # -- the connection ---------------------------------------------------------------------

    async def run(self) -> None:
        reason = "the client disconnected"
        try:
            if await self._handshake():
                self.decoder.max_payload = DEFAULT_MAX_PAYLOAD
                while not self.closed:
                    message = await self._receive()
                    if message is None:
                        break
                    self._dispatch(message)
        except ProtocolError as error:
            reason = f"protocol error: {error}"
            LOG.warning("closing rxdb client connection %s: %s", self.label, error)
        except _Abort as error:
            reason = str(error)
            LOG.warning("closing rxdb client connection %s: %s", self.label, error)
        except (ConnectionError, OSError) as error:
            reason = f"connection failed: {error}"
            LOG.info("rxdb client connection %s failed: %s", self.label, error)
        except TimeoutError:
            reason = "no hello in time"
            LOG.warning(
                "closing rxdb client connection %s: no hello within %s s",
                self.label,
                HANDSHAKE_TIMEOUT,
            )
        finally:
            await self.close(reason)

    async def _receive(self) -> Message | None:
        while not self.pending:
            data = await self.reader.read(_READ_CHUNK)
            if not data:
                return None
            self.pending.extend(self.decoder.feed(data))
        return decode_message(self.pending.popleft())

    async def _handshake(self) -> bool:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                message = await self._receive()
        except UnsupportedVersionError as error:
            self._send(Refused(str(error)))
            raise
        if message is None:
            return False
        if not isinstance(message, Hello):
            raise _Abort(f"expected hello, got {type(message).__name__.lower()}")
        expected = self.server._token
        if expected is not None and not tokens_match(expected, message.token):
            self._send(Refused("wrong or missing token"))
            raise _Abort("wrong or missing token")
        self._send(Welcome(os.getpid(), self.server.epoch, self.db.path))
        LOG.debug("rxdb client %s connected (pid %d)", self.label, message.process_id)
        return True

    def _send(self, message: Message) -> None:
        if self.closed and not isinstance(message, Goodbye | Refused):
            return
        transport = self.writer.transport
        if transport.is_closing():
            return
        frame = encode_frame(encode_message(message))
        if transport.get_write_buffer_size() + len(frame) > MAX_BUFFERED:
            LOG.warning(
                "dropping rxdb client connection %s: it reads too slowly (%d bytes queued)",
                self.label,
                transport.get_write_buffer_size(),
            )
            transport.abort()
            return
        self.writer.write(frame)

    def _send_checked(self, message: Response | Event) -> None:
        """Send a result or event; one that cannot be encoded or is too large becomes an
        error for that request or subscription, never a broken connection."""
        try:
            payload = encode_message(message)
            if len(payload) > DEFAULT_MAX_PAYLOAD:
                raise ProtocolError(
                    f"the result is {len(payload)} bytes, over the frame limit of "
                    f"{DEFAULT_MAX_PAYLOAD}; fetch it in smaller parts"
                )
        except ProtocolError as error:
            if isinstance(message, Response):
                self._send(Failure(message.id, error_to_wire(error)))
            else:
                self._send(
                    Event(message.subscription_id, EventKind.ERROR, None, error_to_wire(error))
                )
                self._drop_subscription(message.subscription_id)
            return
        self._send(message)

    async def close(self, reason: str, *, goodbye: bool = False) -> None:
        """End the connection: roll back its blocks, dispose its watches. Idempotent; a
        second caller waits for the first to finish."""
        if self.closing is not None:
            await asyncio.shield(self.closing)
            return
        self.closing = asyncio.get_running_loop().create_future()
        try:
            if goodbye:
                with contextlib.suppress(Exception):
                    self._send(Goodbye(reason))
            self.closed = True
            self.writer.close()
            for subscription in list(self.subscriptions.values()):
                with contextlib.suppress(Exception):
                    subscription.dispose()
            self.subscriptions.clear()
            held, self.blocks = list(self.blocks.values()), {}
            for one in held:
                await _roll_back(one)
            if held:
                LOG.info(
                    "rolled back %d open transaction(s) of rxdb client %s: %s",
                    len(held),
                    self.label,
                    reason,
                )
            if goodbye and self.tasks:
                # Statements still running belong to a client that is going away.
                _, late = await asyncio.wait(list(self.tasks), timeout=SHUTDOWN_GRACE)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        finally:
            self.closing.set_result(None)

    # -- requests ---------------------------------------------------------------------------

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Request):
            # A fresh context: nothing of the reader task's scope leaks into the statement.
            task = asyncio.get_running_loop().create_task(
                self._answer(message), context=contextvars.Context()
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        elif isinstance(message, Ping):
            self._send(Pong(message.nonce))
        elif isinstance(message, Goodbye):
            LOG.debug("rxdb client %s says goodbye: %s", self.label, message.reason)
        elif isinstance(message, Pong):
            pass
        else:
            raise _Abort(f"a client may not send {type(message).__name__.lower()}")

    async def _answer(self, request: Request) -> None:
        try:
            handler = _OPS.get(request.op)
            if handler is None:
                raise ProgrammingError(f"unknown operation {request.op!r}")
            args = request.args
            if not isinstance(args, list):
                raise ProgrammingError(f"{request.op!r} takes an array of arguments")
            result = await handler(self, args)
        except Exception as error:
            self._send(Failure(request.id, error_to_wire(error)))
        else:
            self._send_checked(Response(request.id, result))

    def _in_block(
        self, block_id: Any, operation: Callable[[], Coroutine[Any, Any, Any]]
    ) -> Callable[[], Coroutine[Any, Any, Any]]:
        if block_id is None:
            return operation
        held = self.blocks.get(_int(block_id, "block"))
        if held is None:
            raise ProgrammingError(
                f"no open transaction {block_id} on this connection (it ended or was rolled back)"
            )
        return inside([held.block], operation)

    async def op_execute(self, args: list[Any]) -> Any:
        sql, params, block = _unpack(args, 3, "execute")
        sql, params = _str(sql, "sql"), _params(params)
        return await self._in_block(block, lambda: self.db.execute(sql, params))()

    async def op_execute_many(self, args: list[Any]) -> Any:
        sql, seq, block = _unpack(args, 3, "execute_many")
        sql = _str(sql, "sql")
        if not isinstance(seq, list):
            raise ProgrammingError("execute_many takes a list of parameter sets")
        rows = [_params(p) for p in seq]
        return await self._in_block(block, lambda: self.db.execute_many(sql, rows))()

    async def op_execute_script(self, args: list[Any]) -> Any:
        script, block = _unpack(args, 2, "execute_script")
        script = _str(script, "script")
        return await self._in_block(block, lambda: self.db.execute_script(script))()

    async def op_fetch_all(self, args: list[Any]) -> Any:
        sql, params, block = _unpack(args, 3, "fetch_all")
        sql, params = _str(sql, "sql"), _params(params)
        return await self._in_block(block, lambda: self.db.fetch_all(sql, params))()

    async def op_fetch_one(self, args: list[Any]) -> Any:
        sql, params, block = _unpack(args, 3, "fetch_one")
        sql, params = _str(sql, "sql"), _params(params)
        return await self._in_block(block, lambda: self.db.fetch_one(sql, params))()

    async def op_begin(self, args: list[Any]) -> Any:
        mode, parent = _unpack(args, 2, "begin")
        if mode not in ("deferred", "immediate", "exclusive"):
            raise ProgrammingError(f"unknown transaction mode {mode!r}")
        db = self.db
        if parent is None:
            held = None
            stack: list[ThreadBlock] = []
        else:
            held = self.blocks.get(_int(parent, "block"))
            if held is None:
                raise ProgrammingError(f"no open transaction {parent} on this connection")
            stack = [held.block]
        block, begin = opening(stack, lambda: db.transaction(mode))
        if held is not None:
            held.depth += 1  # counted before the await: a close meanwhile must undo it too
            try:
                await begin()
            except BaseException:
                held.depth -= 1
                raise
            return parent
        await begin()
        fresh = _Held(block, 1)
        if self.closed:  # the client went away while waiting for the lock
            await _roll_back(fresh)
            raise ClosedError("the connection closed while the transaction began")
        block_id = next(self.block_ids)
        self.blocks[block_id] = fresh
        return block_id

    async def op_end(self, args: list[Any]) -> Any:
        block_id, failed = _unpack(args, 2, "end")
        block_id = _int(block_id, "block")
        if type(failed) is not bool:
            raise ProgrammingError("end takes a bool 'failed'")
        held = self.blocks.get(block_id)
        if held is None:
            raise ProgrammingError(f"no open transaction {block_id} on this connection")
        held.depth -= 1
        if held.depth == 0:
            del self.blocks[block_id]
        await closing(held.block, failed=failed)()
        return None

    async def op_watch(self, args: list[Any]) -> Any:
        sub_id, sql, params, distinct = _unpack(args, 4, "watch")
        sub_id = self._new_subscription_id(sub_id)
        stream = self.db.watch(_str(sql, "sql"), _params(params), distinct=distinct is not False)
        self._subscribe(sub_id, stream, list)
        return None

    async def op_table_updates(self, args: list[Any]) -> Any:
        sub_id, tables, kinds = _unpack(args, 3, "table_updates")
        sub_id = self._new_subscription_id(sub_id)
        wanted = None if tables is None else [_str(t, "table") for t in _list(tables, "tables")]
        wanted_kinds = None
        if kinds is not None:
            try:
                wanted_kinds = [UpdateKind(k) for k in _list(kinds, "kinds")]
            except ValueError as error:
                raise ProgrammingError(f"unknown update kind: {error}") from None
        self._subscribe(sub_id, self.db.table_updates(wanted, wanted_kinds), notify_to_wire)
        return None

    async def op_unsubscribe(self, args: list[Any]) -> Any:
        (sub_id,) = _unpack(args, 1, "unsubscribe")
        self._drop_subscription(_int(sub_id, "subscription"))
        return None

    async def op_notify_updates(self, args: list[Any]) -> Any:
        (updates,) = _unpack(args, 1, "notify_updates")
        await self.db.notify_updates(*(update_from_wire(u) for u in _list(updates, "updates")))
        return None

    def _new_subscription_id(self, value: Any) -> int:
        sub_id = _int(value, "subscription")
        if sub_id in self.subscriptions:
            raise ProgrammingError(f"subscription {sub_id} already exists on this connection")
        return sub_id

    def _subscribe(self, sub_id: int, stream: Any, convert: Callable[[Any], Any]) -> None:
        def on_next(value: Any) -> None:
            if sub_id in self.subscriptions:
                self._send_checked(Event(sub_id, EventKind.NEXT, convert(value)))

        def on_error(error: Exception) -> None:
            if self.subscriptions.pop(sub_id, None) is not None:
                self._send(Event(sub_id, EventKind.ERROR, None, error_to_wire(error)))

        def on_completed() -> None:
            if self.subscriptions.pop(sub_id, None) is not None:
                self._send(Event(sub_id, EventKind.COMPLETE))

        # Registered first: the first value may be delivered during subscribe().
        self.subscriptions[sub_id] = _Pending()
        try:
            disposable = stream.subscribe(on_next, on_error, on_completed)
        except BaseException:
            self.subscriptions.pop(sub_id, None)
            raise
        if sub_id in self.subscriptions and not self.closed:
            self.subscriptions[sub_id] = disposable
        else:
            disposable.dispose()

    def _drop_subscription(self, sub_id: int) -> None:
        subscription = self.subscriptions.pop(sub_id, None)
        if subscription is not None:
            subscription.dispose()


class _Pending(abc.DisposableBase):
    """Stands in for a subscription while ``subscribe()`` runs."""

    def dispose(self) -> None:
        pass


async def _roll_back(held: _Held) -> None:
    """Undo every open level of a client's block, innermost first (the outermost rollback
    undoes the whole transaction and ends the block's task)."""
    depth, held.depth = held.depth, 0
    for _ in range(depth):
        try:
            await closing(held.block, failed=True)()
        except Exception:
            LOG.exception("rolling back a client's transaction failed")


_OPS: Final[dict[str, Callable[[_Session, list[Any]], Coroutine[Any, Any, Any]]]] = {
    "execute": _Session.op_execute,
    "execute_many": _Session.op_execute_many,
    "execute_script": _Session.op_execute_script,
    "fetch_all": _Session.op_fetch_all,
    "fetch_one": _Session.op_fetch_one,
    "begin": _Session.op_begin,
    "end": _Session.op_end,
    "watch": _Session.op_watch,
    "table_updates": _Session.op_table_updates,
    "unsubscribe": _Session.op_unsubscribe,
    "notify_updates": _Session.op_notify_updates,
}


# -- argument checks (a request is well-formed msgpack; its arguments may still be wrong) --


def _unpack(args: list[Any], count: int, op: str) -> list[Any]:
    if len(args) != count:
        raise ProgrammingError(f"{op!r} takes {count} arguments, got {len(args)}")
    return args


def _str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise ProgrammingError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise ProgrammingError(f"{what} id must be an integer, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProgrammingError(f"{what} must be an array")
    return value


def _params(value: Any) -> Any:
    if not isinstance(value, list | tuple | dict):
        raise ProgrammingError("parameters must be an array or a map")
    return value


# -- table updates on the wire (shared with the client) ----------------------------------


def notify_to_wire(message: NotifyTablesUpdated) -> dict[str, Any]:
    """A :class:`NotifyTablesUpdated` as an event value (the protocol's value tree)."""
    return {
        "database": message.database,
        "origin": message.origin,
        "sequence": message.sequence,
        "everything": message.everything,
        "updates": [update_to_wire(u) for u in message.updates],
    }


def notify_from_wire(value: Any) -> NotifyTablesUpdated:
    """Rebuild what :func:`notify_to_wire` sent.

    :raises ProtocolError: if the value is not such a message.
    """
    try:
        return NotifyTablesUpdated(
            database=value["database"],
            origin=value["origin"],
            sequence=value["sequence"],
            updates=frozenset(update_from_wire(u) for u in value["updates"]),
            everything=bool(value["everything"]),
        )
    except (KeyError, TypeError, ValueError, RxdbError) as error:
        raise ProtocolError(f"not a table-updates event: {error}") from None


def update_to_wire(update: TableUpdate) -> list[Any]:
    return [update.table, None if update.kind is None else update.kind.value]


def update_from_wire(value: Any) -> TableUpdate:
    if not isinstance(value, list) or len(value) != 2 or type(value[0]) is not str:
        raise ProgrammingError("a table update must be [table, kind or null]")
    table, kind = value
    try:
        return TableUpdate(table, None if kind is None else UpdateKind(kind))
    except ValueError:
        raise ProgrammingError(f"unknown update kind {kind!r}") from None
