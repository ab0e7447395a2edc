"""A server's handle: an endpoint that connects.

``server.handle`` (or ``rxdb.remote.names.lookup(name)``) is a small picklable value. Any
process of the user connects it: ``await handle.connect()`` gives a
:class:`~rxdb.remote.client.RemoteDatabase` on the running loop, ``handle.connect_sync()`` a
blocking database for a thread without one. A handle with a name finds its server again by
that name, which is how a client reconnects to a server restarted elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from rxdb.boundary.blocking import SyncDatabase
from rxdb.boundary.loop_thread import LoopThread, refuse_running_loop
from rxdb.errors import NameNotFoundError, ProgrammingError
from rxdb.remote.client.connection import Reconnect
from rxdb.remote.client.database import RemoteDatabase, connect
from rxdb.remote.runtime import read_entry
from rxdb.remote.wire.endpoint import Endpoint

__all__ = ("ServerHandle",)


@dataclass(frozen=True, slots=True)
class ServerHandle(Endpoint):
    """How to reach a server: picklable, JSON-able, and all a client needs (an
    :class:`rxdb.api.Handle`).

    :ivar kind: ``"unix"`` or ``"tcp"``.
    :ivar address: the socket path, or ``"host:port"``.
    :ivar token: the hex token the server demands, or ``None`` (Unix sockets rely on the
        owner-only directory instead).
    :ivar name: the name the server is registered under, if any.
    :ivar uid: the uid the server runs as (a Unix socket's client talks to it, besides its
        own and root's), or ``None``.
    :raises rxdb.ProgrammingError: (when made) for a field of the wrong type or form.
    """

    async def connect(self, *, reconnect: bool | Reconnect = False) -> RemoteDatabase:
        """Connect to the server from any process; the result is bound to the running loop.

        Gives up after ``rxdb.remote.client.connection.CONNECT_TIMEOUT`` seconds; wrap it in
        ``asyncio.timeout`` for a shorter wait. With ``reconnect`` (``True``, or a
        :class:`~rxdb.Reconnect` policy), a lost connection is re-established automatically;
        see :func:`rxdb.remote.client.connect`.

        :raises rxdb.ConnectionLostError: if the server cannot be reached or hangs up.
        :raises rxdb.ServerRefusedError: if it refuses this client.
        """
        return await connect(self, reconnect=reconnect)

    def connect_sync(self) -> SyncDatabase:
        """A blocking database for a thread without an event loop: a connection made on a
        loop thread of its own, which ``close()`` ends (the server's database stays open).

        :raises rxdb.WrongLoopError: on a thread that runs an event loop.
        :raises rxdb.ConnectionLostError: if the server cannot be reached or hangs up.
        """
        refuse_running_loop("connect_sync")
        runner = LoopThread(f"rxdb-remote {self.address}")
        try:
            remote = runner.run(self.connect)
        except BaseException:
            runner.stop()
            raise
        # Until boundary's SyncDatabase takes any rxdb.api.AsyncDatabase: it asks for an
        # Origin (a key on this process's bus, watches with statistics), which a remote
        # database is not; the blocking calls it makes are all in the contract.
        return SyncDatabase(remote, runner)  # type: ignore[arg-type]

    def located(self) -> ServerHandle:
        """This handle, or for a named one, the handle its name is registered with now.

        :raises rxdb.NameNotFoundError: if no live server has the name.
        """
        return self if self.name is None else ServerHandle.named(self.name)

    @classmethod
    def named(cls, name: str, *, directory: str | None = None) -> ServerHandle:
        """The handle of the live server registered under ``name``.

        :raises rxdb.NameNotFoundError: if there is none, or its process is dead (the stale
            entry is removed).
        """
        entry = read_entry(name, directory=directory)
        try:
            return cls.from_json(entry)
        except ProgrammingError as error:
            raise NameNotFoundError(f"the entry of {name!r} is not a server's: {error}") from None
