"""Server mode: one process owns a database and serves it to clients in other processes.

This is Drift's isolate server for Python processes. It exists for databases that other
processes cannot open themselves -- ``:memory:``, or a file they have no access to -- and for
holding transactions on behalf of clients. Every client operation runs on the served
:class:`rxdb.Database` itself, so commits by local code, by the server's own code and by any
client all travel the same bus, and every watch (local or remote) refreshes on all of them.

A client's transaction block is served by one task on the database's loop (a
:class:`~rxdb.boundary.blocks.ThreadBlock`, as for threads and other loops); the client names it
by a block id in each statement. When a connection ends for any reason -- a deliberate close,
a crash, a malformed frame, :meth:`Server.shutdown_all` -- its open blocks are rolled back at
once and its watches disposed, so a dead client leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import os
import uuid
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from rxdb.remote.runtime import socket_directory

# The ``X as X`` imports re-export names that lived here before the split into server, session
# and values.
from rxdb.remote.server.session import HANDSHAKE_TIMEOUT as HANDSHAKE_TIMEOUT
from rxdb.remote.server.session import MAX_BUFFERED as MAX_BUFFERED
from rxdb.remote.server.session import SHUTDOWN_GRACE, Session
from rxdb.remote.wire.messages import new_token
from rxdb.remote.wire.values import notify_from_wire as notify_from_wire
from rxdb.remote.wire.values import notify_to_wire as notify_to_wire
from rxdb.remote.wire.values import update_from_wire as update_from_wire
from rxdb.remote.wire.values import update_to_wire as update_to_wire

if TYPE_CHECKING:
    from rxdb.database import Database
    from rxdb.remote.client import Reconnect, RemoteDatabase

__all__ = ("Server", "ServerHandle", "serve", "served_handle")

LOG = logging.getLogger("rxdb.remote")

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

    async def connect(self, *, reconnect: bool | Reconnect = False) -> RemoteDatabase:
        """Connect to the server from any process; the result is bound to the running loop.

        Gives up after ``rxdb.remote.client.CONNECT_TIMEOUT`` seconds; wrap it in
        ``asyncio.timeout`` for a shorter wait. With ``reconnect`` (``True``, or a
        :class:`~rxdb.remote.client.Reconnect` policy), a lost connection is re-established
        automatically; see :func:`rxdb.remote.client.connect`.
        """
        from rxdb.remote.client import connect

        return await connect(self, reconnect=reconnect)

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
    db.set_served(server.handle)
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
        self._sessions: set[Session] = set()
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._registered: str | None = None
        self._closed = False
        self._labels = itertools.count(1)
        self._changed = asyncio.Event()
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

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true; for diagnostics and tests, not for clients.

        The predicate is checked now and again after every change of the server's counted
        state: a connection accepted or ended, one of its requests started or finished, one
        of its subscriptions added or removed. It should read only that state
        (:attr:`connections`, a session's ``tasks`` and ``subscriptions``). It waits for as
        long as it takes: wrap it in ``asyncio.timeout``.
        """
        while not predicate():
            await self._changed.wait()

    def _state_changed(self) -> None:
        """Wake the waiters of :meth:`wait_until` (called on the loop by every change)."""
        self._changed.set()
        self._changed = asyncio.Event()

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
            self.db.set_served(None)
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
        session = Session(self, reader, writer, f"#{next(self._labels)}")
        self._sessions.add(session)
        self._session_tasks.add(task)
        self._state_changed()
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            self._session_tasks.discard(task)
            self._state_changed()
