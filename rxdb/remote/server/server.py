"""Server mode: one process owns a database and serves it to clients in other processes.

This is Drift's isolate server for Python processes. It exists for databases that other
processes cannot open themselves -- ``:memory:``, or a file they have no access to -- and for
holding transactions on behalf of clients. Every client operation runs on the served
database itself, so commits by local code, by the server's own code and by any client all
travel the same bus, and every watch (local or remote) refreshes on all of them.

The server is written against the contract (:class:`rxdb.api.AsyncDatabase`), so any
database shape can be served; :mod:`rxdb.remote.server.served` lists what else it uses when
a database offers it. Each accepted connection is a :class:`~rxdb.remote.server.session.Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from typing import Final

from rxdb.api import AsyncDatabase
from rxdb.errors import ProgrammingError
from rxdb.remote.handle import ServerHandle
from rxdb.remote.names import register, unregister
from rxdb.remote.runtime import socket_directory
from rxdb.remote.server.limits import DEFAULT_CONNECTION_LIMITS, ConnectionLimits
from rxdb.remote.server.served import KnowsItIsServed, Opens
from rxdb.remote.server.session import SHUTDOWN_GRACE, Session
from rxdb.remote.wire.endpoint import is_loopback, token_bytes
from rxdb.remote.wire.frames import encode_frame
from rxdb.remote.wire.messages import Refused, encode_message, new_token, tokens_match
from rxdb.remote.wire.peers import allowed_uid_set, peer_uid, uid_refusal
from rxdb.remote.wire.refusals import RefusalLog

__all__ = ("Server", "serve")

LOG = logging.getLogger("rxdb.remote")

_SUN_PATH_MAX: Final = 107


async def serve(
    db: AsyncDatabase,
    *,
    path: str | None = None,
    host: str | None = None,
    port: int = 0,
    token: str | bytes | None = None,
    name: str | None = None,
    allow_remote: bool = False,
    max_subscriptions: int = DEFAULT_CONNECTION_LIMITS.max_subscriptions,
    max_requests: int = DEFAULT_CONNECTION_LIMITS.max_requests,
    allowed_uids: Iterable[int] | None = None,
) -> Server:
    """Serve the database ``db`` from this process, on its event loop (opening it first if
    it is not open yet).

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
    :param max_subscriptions: watches, table updates and backup progress one client
        connection may have open at once; one more fails with :class:`rxdb.LimitError`.
    :param max_requests: requests one client connection may have running at once (sent,
        not answered yet); one more fails with :class:`rxdb.LimitError`.
    :param allowed_uids: on a Unix socket, the uids of other users who may connect besides
        this process's own and root's (every connection's uid is checked, see
        docs/security.md); their processes still need the token, if there is one, and a way
        through the socket's permissions, which stay owner-only. Not for TCP, where no
        peer uid is known.
    :raises rxdb.ProgrammingError: for a non-loopback host without ``allow_remote``, a token
        that is not hex, a socket path too long for a Unix socket, a bad name, a limit that
        is not a positive int, or ``allowed_uids`` that is not a collection of uids (or
        given for TCP).
    :raises FileExistsError: if a live server already has ``name``.
    """
    limits = ConnectionLimits(max_subscriptions, max_requests)
    uids = allowed_uid_set(allowed_uids)
    if uids and host is not None:
        raise ProgrammingError(
            "allowed_uids applies to Unix sockets only: a TCP client's uid is unknown (the "
            "token admits it)"
        )
    if isinstance(db, Opens):
        await db.connect()
    secret = token.hex() if isinstance(token, bytes) else token
    if secret is not None:
        token_bytes(secret)  # fail here, not at the first client
    if host is not None:
        if not allow_remote and not is_loopback(host):
            raise ProgrammingError(
                f"refusing to serve on the non-loopback host {host!r}: pass allow_remote=True "
                "if you really mean to expose the database to the network (use a token)"
            )
        if secret is None:
            secret = new_token().hex()
        server = Server(db, secret, limits)
        listener = await asyncio.start_server(server._accept, host, port)
        bound = listener.sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        server._listening(listener, ServerHandle("tcp", f"{shown}:{bound[1]}", secret, name))
    else:
        if path is None:
            path = os.path.join(
                socket_directory(), f"server-{os.getpid()}-{uuid.uuid4().hex[:12]}.sock"
            )
        if len(os.fsencode(path)) > _SUN_PATH_MAX:
            raise ProgrammingError(f"the socket path {path!r} is too long for a Unix socket")
        server = Server(db, secret, limits, allowed_uids=uids, check_uids=True)
        listener = await asyncio.start_unix_server(server._accept, path)
        os.chmod(path, 0o600)
        handle = ServerHandle("unix", path, secret, name, os.geteuid())
        server._listening(listener, handle, socket=path)
    if name is not None:
        try:
            register(name, server.handle)
        except BaseException:
            await server.shutdown_all()
            raise
        server._registered = name
    if isinstance(db, KnowsItIsServed):
        db.set_served(server.handle)
    return server


class Server:
    """A database served from this process. Made by :func:`serve`.

    :ivar handle: what clients connect with (:class:`~rxdb.remote.handle.ServerHandle`).
    """

    def __init__(
        self,
        db: AsyncDatabase,
        token: str | None,
        limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
        *,
        allowed_uids: frozenset[int] = frozenset(),
        check_uids: bool = False,
    ) -> None:
        self._db = db
        self._limits = limits
        self._allowed_uids = allowed_uids
        self._check_uids = check_uids
        self._refusals = RefusalLog(LOG)
        self._token = None if token is None else token_bytes(token)
        self._listener: asyncio.AbstractServer | None = None
        self._socket_path: str | None = None
        self._sessions: set[Session] = set()
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._registered: str | None = None
        self._closed = False
        self._labels = itertools.count(1)
        self._changed = asyncio.Event()
        self._epoch = uuid.uuid4().hex[:16]
        self.handle: ServerHandle

    def _listening(
        self, listener: asyncio.AbstractServer, handle: ServerHandle, socket: str | None = None
    ) -> None:
        self._listener = listener
        self.handle = handle
        self._socket_path = socket

    @property
    def db(self) -> AsyncDatabase:
        """The database served."""
        return self._db

    @property
    def epoch(self) -> str:
        """This server's run: a client that sees another epoch knows it was restarted."""
        return self._epoch

    @property
    def limits(self) -> ConnectionLimits:
        """What each client connection may hold at once."""
        return self._limits

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connections(self) -> int:
        """Clients connected now (handshake done or not)."""
        return len(self._sessions)

    def admits(self, token: bytes | None) -> bool:
        return self._token is None or tokens_match(self._token, token)

    def refused(self, what: str, reason: str) -> None:
        self._refusals.warn(what, reason)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` is true; for diagnostics and tests, not for clients.

        The predicate is checked now and again after every change of the server's counted
        state: a connection accepted or ended, one of its requests started or finished, one
        of its subscriptions or blocks added or removed. It should read only that state
        (:attr:`connections`, a session's ``tasks``, ``subscriptions`` and ``blocks``). It
        waits for as long as it takes: wrap it in ``asyncio.timeout``.
        """
        while not predicate():
            await self._changed.wait()

    def state_changed(self) -> None:
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
        if isinstance(self._db, KnowsItIsServed):
            self._db.set_served(None)
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
            unregister(self._registered, pid=os.getpid())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()
            return
        if self._check_uids:
            refusal = uid_refusal(
                peer_uid(writer),
                self._allowed_uids,
                "client",
                " (the server's owner can admit it with rxdb.serve(..., allowed_uids=[uid]))",
            )
            if refusal is not None:
                # Before reading a byte: nothing a stranger sends is parsed.
                self.refused("refused an rxdb client connection", refusal)
                writer.write(encode_frame(encode_message(Refused(refusal))))
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
        task = asyncio.current_task()
        session = Session(self, reader, writer, f"#{next(self._labels)}")
        self._sessions.add(session)
        if task is not None:
            self._session_tasks.add(task)
        self.state_changed()
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            if task is not None:
                self._session_tasks.discard(task)
            self.state_changed()
