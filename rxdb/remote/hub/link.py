"""One process's link to the others for one database: the election, the hub's side, the
member's side, and the resync when a message may have been lost.

:mod:`rxdb.remote.hub` explains the design and is the way in (:func:`~rxdb.remote.hub.join`
counts the joins and hands out :class:`~rxdb.remote.hub.Membership` handles); this module
is the machinery behind one handle, split off so that each stays readable. Everything here
runs on the process's hub thread (see :mod:`rxdb.remote.hub`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import itertools
import logging
import os
import random
import socket
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from rxdb.bus import Bus, Subscription
from rxdb.remote.wire.frames import HANDSHAKE_MAX_PAYLOAD, ProtocolError, encode_frame
from rxdb.remote.wire.messages import (
    Goodbye,
    Hello,
    Message,
    Notify,
    Ping,
    Pong,
    Refused,
    Welcome,
    decode_message,
    encode_message,
)
from rxdb.remote.wire.stream import FramedStream
from rxdb.updates import NotifyTablesUpdated

__all__ = ("TUNING", "Link", "Role", "Tuning")

LOG = logging.getLogger("rxdb.remote.hub")

Role = Literal["hub", "member"]

_MEMBER_ROLE = "member"
_READ_CHUNK = 64 * 1024
_REMEMBERED_ORIGINS = 4096


@dataclass(slots=True)
class Tuning:
    """Timings and limits of every link in this process (mutable, for tests and tuning)."""

    ping_interval: float = 5.0
    """Seconds between a member's pings; a hub answers each with a pong."""
    peer_timeout: float = 15.0
    """Seconds of silence after which a peer (either side) is taken for dead."""
    handshake_timeout: float = 5.0
    """Seconds a new connection has to complete Hello/Welcome."""
    join_timeout: float = 2.0
    """Seconds :func:`join` waits for the first connection before returning anyway (the link
    keeps trying in the background and resyncs when it gets through)."""
    backoff_min: float = 0.005
    backoff_max: float = 0.25
    max_payload: int = 1 << 20
    """Largest Notify accepted after the handshake (a commit naming ~30 000 tables fits)."""
    max_buffered: int = 8 << 20
    """Bytes queued for one peer before it is dropped as too slow (it resyncs on return)."""


TUNING = Tuning()


# ---------------------------------------------------------------------------------------
# One connection


class _Connection(FramedStream):
    """A peer of a hub, or a member's link to its hub."""

    __slots__ = ()

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str
    ) -> None:
        super().__init__(
            reader,
            writer,
            label,
            HANDSHAKE_MAX_PAYLOAD,
            read_chunk=_READ_CHUNK,
            log=LOG,
            too_slow="dropping the connection %s: it reads too slowly (%d bytes queued); it "
            "will resync when it reconnects",
        )

    def send(self, message: Message) -> None:
        self.relay(encode_frame(encode_message(message)))

    def relay(self, frame: bytes) -> bool:
        """Queue ``frame`` (see :meth:`FramedStream.send_frame`) under ``TUNING``'s limit."""
        return self.send_frame(frame, TUNING.max_buffered)


def _frame(message: Message) -> bytes:
    return encode_frame(encode_message(message))


# ---------------------------------------------------------------------------------------
# The link of one process to the others, for one database


class _Hosting:
    """What a link holds while it is the hub: the lock, the listening server, the peers."""

    def __init__(self, lock_fd: int) -> None:
        self.lock_fd = lock_fd
        self.server: asyncio.Server | None = None
        self.peers: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def fds(self) -> list[int]:
        fds = [] if self.server is None else [int(s.fileno()) for s in self.server.sockets]
        return fds + [peer.fileno() for peer in self.peers]


class Link:
    def __init__(
        self, key: str, bus: Bus, directory: str, path: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.key = key
        self.bus = bus
        self.directory = directory
        self.path = path
        self.lock_path = path + ".lock"
        self.loop = loop
        self.epoch = uuid.uuid4().hex[:16]
        self.origin = f"{os.getpid()}:hub-{uuid.uuid4().hex[:12]}"
        self.refs = 0
        # Replaced, never mutated: the loop's thread iterates it without the registry lock.
        self.origin_sources: tuple[Callable[[], Collection[str]], ...] = ()
        self.first_connection: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.late = False  # join stopped waiting: the first connection is a reconnect
        self.role: Role = "member"
        self.connected = False
        self.sent = 0
        self.received = 0
        self.resyncs = 0
        self.elections = 0
        self._resync_sequence = itertools.count(1)
        self._seen: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._hosting: _Hosting | None = None
        self._upstream: _Connection | None = None
        self._closing = False
        self._subscription: Subscription = bus.subscribe(
            key, self._local, loop=loop, wanted=self._forwards
        )
        self._supervisor: asyncio.Task[None] | None = None
        self.thread_ident: int | None = None
        loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        self.thread_ident = threading.get_ident()
        if not self._closing:
            self._supervisor = self.loop.create_task(self._run(), name=f"rxdb-hub {self.path}")

    # -- local side ------------------------------------------------------------------------

    def _forwards(self, message: NotifyTablesUpdated) -> bool:
        """Whether ``message`` is for the other processes: one of our databases wrote it and
        someone is connected to hear it. Asked on the publishing thread (see
        :meth:`rxdb.bus.Bus.subscribe`), so a process alone with its file never wakes the
        hub thread."""
        if message.origin == self.origin or self._closing:
            return False
        hosting = self._hosting
        if (hosting is None or not hosting.peers) and self._upstream is None:
            return False  # a peer that connects later resyncs on its own
        # Not ours: from another process (we published it), or from an unshared database.
        return any(message.origin in source() for source in self.origin_sources)

    def _local(self, message: NotifyTablesUpdated) -> None:
        """A message on this process's bus that :meth:`_forwards` let through."""
        if self._closing:
            return
        try:
            frame = _frame(Notify(message, self.epoch))
        except ProtocolError as error:
            LOG.warning("hub of %s: cannot send %r (%s); others resync", self.key, message, error)
            self._resync(f"a local message could not be sent: {error}", broadcast=True)
            return
        self._forward(frame, None)

    def _forward(self, frame: bytes, sender: _Connection | None) -> None:
        hosting = self._hosting
        if hosting is not None:
            for peer in hosting.peers:
                if peer is not sender and peer.relay(frame):
                    self.sent += 1
        elif self._upstream is not None and self._upstream.relay(frame):
            self.sent += 1

    def _resync(self, reason: str, *, broadcast: bool) -> None:
        """Tell every local watch of the database to re-run; with ``broadcast``, others too."""
        LOG.info("resync of %s: %s", self.key, reason)
        message = NotifyTablesUpdated(
            self.key, self.origin, next(self._resync_sequence), everything=True
        )
        self.resyncs += 1
        self.bus.publish(message)
        if broadcast:
            self._forward(_frame(Notify(message, self.epoch)), None)

    def _deliver(self, notify: Notify, connection: _Connection) -> None:
        """A Notify from another process: publish it here, resync if something was lost."""
        message = notify.message
        if message.database != self.key:
            raise ProtocolError(
                f"a Notify for database {message.database!r} arrived on the hub of {self.key!r}"
            )
        self.received += 1
        self.bus.publish(message)
        seen = self._seen.get(message.origin)
        if seen is None:
            last = message.sequence
            reason = None
        else:
            epoch, last = seen
            self._seen.move_to_end(message.origin)
            if epoch != notify.epoch:
                reason, last = f"origin {message.origin} has a new epoch", message.sequence
            elif message.sequence == last + 1 or message.everything:
                # A message that says "anything changed" covers whatever came before it.
                reason, last = None, max(last, message.sequence)
            elif message.sequence > last + 1:
                reason = f"origin {message.origin} skipped {last + 1}..{message.sequence - 1}"
                last = message.sequence
            else:
                reason = f"origin {message.origin} sent {message.sequence} after {last}"
        self._seen[message.origin] = (notify.epoch, last)
        if len(self._seen) > _REMEMBERED_ORIGINS:
            self._seen.popitem(last=False)
        if reason is not None:
            self._resync(reason, broadcast=False)

    # -- election and the connection's life -------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        connections = 0
        while not self._closing:
            try:
                outcome = await self._elect()
            except (OSError, ProtocolError) as error:
                LOG.warning("hub of %s: election failed: %s", self.key, error)
                outcome = None
            except Exception:
                LOG.exception("hub of %s: election failed", self.key)
                outcome = None
            if outcome is None:
                failures += 1
                if failures == 200:  # ~50 s: someone holds the lock but serves nobody
                    LOG.warning(
                        "hub of %s: no hub reachable at %s after %d attempts; retrying",
                        self.key,
                        self.path,
                        failures,
                    )
                delay = min(TUNING.backoff_max, TUNING.backoff_min * 2 ** min(failures, 16))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                continue
            failures = 0
            connections += 1
            self._seen.clear()
            self.connected = True
            if connections > 1 or self.late:
                self._resync("connected to the hub again", broadcast=True)
            if not self.first_connection.done():
                self.first_connection.set_result(None)
            if isinstance(outcome, _Hosting):
                await self._host(outcome)
            else:
                await self._follow(outcome)
            self.connected = False
            if not self._closing:
                self._resync("lost the hub", broadcast=False)

    async def _elect(self) -> _Hosting | _Connection | None:
        connection = await self._connect()
        if connection is not None:
            return connection
        return await self._try_to_host()

    async def _connect(self) -> _Connection | None:
        try:
            reader, writer = await asyncio.open_unix_connection(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        connection = _Connection(reader, writer, f"to the hub at {self.path}")
        try:
            uid = connection.peer_uid()
            if uid is not None and uid != os.geteuid():
                raise ProtocolError(f"the hub runs as uid {uid}, not {os.geteuid()}")
            connection.send(Hello(None, _MEMBER_ROLE, os.getpid(), self.epoch))
            reply = await connection.receive(TUNING.handshake_timeout)
            if reply is None:
                raise ConnectionResetError("the hub closed the connection during the handshake")
            if isinstance(reply, Refused):
                raise ProtocolError(f"the hub refused us: {reply.reason}")
            if not isinstance(reply, Welcome):
                raise ProtocolError(f"expected Welcome, got {type(reply).__name__}")
            if reply.database != self.key:
                raise ProtocolError(f"the hub serves {reply.database!r}, not {self.key!r}")
        except (OSError, ProtocolError, TimeoutError) as error:
            LOG.debug("hub of %s: handshake failed: %s", self.key, error)
            await connection.close()
            return None
        except BaseException:
            await connection.close()
            raise
        connection.decoder.max_payload = TUNING.max_payload
        return connection

    async def _try_to_host(self) -> _Hosting | None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        sock: socket.socket | None = None
        try:
            # Holding the lock, we are the only one who may bind: whatever file is there
            # belongs to a dead hub.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(self.path)
            os.chmod(self.path, 0o600)  # the directory is 0700 already; belt and braces
            sock.listen(128)
            hosting = _Hosting(fd)
            hosting.server = await asyncio.start_unix_server(
                functools.partial(self._accept, hosting), sock=sock
            )
        except BaseException:
            if sock is not None:
                sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(fd)
            raise
        self.elections += 1
        self._hosting = hosting
        self.role = "hub"
        LOG.info("this process (pid %d) is now the hub of %s", os.getpid(), self.key)
        return hosting

    async def _host(self, hosting: _Hosting) -> None:
        try:
            await asyncio.Future()  # until leave() cancels the supervisor
        finally:
            self._hosting = None
            self.role = "member"
            if hosting.server is not None:
                hosting.server.close()
            for peer in list(hosting.peers):
                with contextlib.suppress(Exception):
                    peer.send(Goodbye("the hub is leaving"))
                peer.writer.close()
            for task in list(hosting.tasks):
                task.cancel()  # _accept ends quietly: asyncio 3.11 logs a cancelled handler
            await asyncio.gather(*hosting.tasks, return_exceptions=True)
            # Unlink while still holding the lock: nobody else can have bound the path.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(hosting.lock_fd)

    async def _accept(
        self, hosting: _Hosting, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connection = _Connection(reader, writer, f"{self.path}#{id(writer):x}")
        if self._hosting is not hosting:
            await connection.close()
            return
        task = asyncio.current_task()
        assert task is not None
        hosting.tasks.add(task)
        try:
            await self._serve_peer(hosting, connection)
        except ProtocolError as error:
            LOG.warning("hub of %s: closing connection %s: %s", self.key, connection.label, error)
            with contextlib.suppress(Exception):
                connection.send(Refused(str(error)))
        except TimeoutError:
            LOG.warning(
                "hub of %s: closing connection %s: silent for too long", self.key, connection.label
            )
        except OSError as error:
            LOG.debug("hub of %s: connection %s failed: %s", self.key, connection.label, error)
        except Exception:
            LOG.exception("hub of %s: closing connection %s", self.key, connection.label)
        except asyncio.CancelledError:
            if self._hosting is hosting:
                raise
            # Cancelled by _host on the way out. Ending normally keeps asyncio's server
            # callback (3.11) from logging the cancellation as an error.
        finally:
            hosting.peers.discard(connection)
            hosting.tasks.discard(task)
            await connection.close()

    async def _serve_peer(self, hosting: _Hosting, connection: _Connection) -> None:
        uid = connection.peer_uid()
        if uid is not None and uid != os.geteuid():
            raise ProtocolError(f"peer runs as uid {uid}, not {os.geteuid()}")
        hello = await connection.receive(TUNING.handshake_timeout)
        if hello is None:
            return
        if not isinstance(hello, Hello) or hello.role != _MEMBER_ROLE:
            raise ProtocolError(f"expected Hello from a member, got {type(hello).__name__}")
        connection.label = f"of pid {hello.process_id}"
        connection.decoder.max_payload = TUNING.max_payload
        # Join the broadcast set before the Welcome: whatever is committed after the member
        # resyncs reaches it.
        hosting.peers.add(connection)
        connection.send(Welcome(os.getpid(), self.epoch, self.key))
        while True:
            payload = await connection.receive_payload(TUNING.peer_timeout)
            if payload is None:
                return
            message = decode_message(payload)
            if isinstance(message, Notify):
                self._deliver(message, connection)
                self._forward(encode_frame(payload), connection)
            elif isinstance(message, Ping):
                connection.send(Pong(message.nonce))
            elif isinstance(message, Pong):
                pass
            elif isinstance(message, Goodbye):
                return
            else:
                raise ProtocolError(f"unexpected {type(message).__name__} from a member")

    async def _follow(self, connection: _Connection) -> None:
        self._upstream = connection
        pinger = self.loop.create_task(self._ping(connection))
        try:
            while True:
                message = await connection.receive(TUNING.peer_timeout)
                if message is None:
                    LOG.info("hub of %s: the hub closed the connection", self.key)
                    return
                if isinstance(message, Notify):
                    self._deliver(message, connection)
                elif isinstance(message, Ping):
                    connection.send(Pong(message.nonce))
                elif isinstance(message, Pong):
                    pass
                elif isinstance(message, Goodbye):
                    LOG.info("hub of %s: the hub said goodbye: %s", self.key, message.reason)
                    return
                else:
                    raise ProtocolError(f"unexpected {type(message).__name__} from the hub")
        except ProtocolError as error:
            LOG.warning("hub of %s: closing the connection to the hub: %s", self.key, error)
        except TimeoutError:
            LOG.warning("hub of %s: the hub has been silent for too long", self.key)
        except OSError as error:
            LOG.info("hub of %s: connection to the hub failed: %s", self.key, error)
        except Exception:
            LOG.exception("hub of %s: closing the connection to the hub", self.key)
        finally:
            self._upstream = None
            pinger.cancel()
            if self._closing:
                with contextlib.suppress(Exception):
                    connection.send(Goodbye("leaving"))
            await connection.close()

    async def _ping(self, connection: _Connection) -> None:
        for nonce in itertools.count(1):
            await asyncio.sleep(TUNING.ping_interval)
            connection.send(Ping(nonce))

    def others_present(self) -> bool:
        hosting = self._hosting
        return self.refs > 1 or (self.connected and (hosting is None or bool(hosting.peers)))

    # -- end of life --------------------------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        self._subscription.close()
        supervisor = self._supervisor
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        if not self.first_connection.done():
            self.first_connection.cancel()

    def fds(self) -> list[int]:
        hosting = self._hosting
        fds = [] if hosting is None else hosting.fds()
        if self._upstream is not None:
            fds.append(self._upstream.fileno())
        return [fd for fd in fds if fd >= 0]

    def abandon(self) -> None:
        """Let go of the lock and sockets without the loop (it is closed, or we are a forked
        child): the descriptors are pointed at /dev/null, so the kernel drops the lock and
        the connections while the numbers stay valid for whoever closes them later."""
        self._closing = True
        self._subscription._closed = True  # no lock: it may be held by a thread of the parent
        hosting = self._hosting
        if hosting is not None:
            with contextlib.suppress(OSError):
                os.close(hosting.lock_fd)
        doomed = self.fds()
        if not doomed:
            return
        null = os.open(os.devnull, os.O_RDWR)
        try:
            for fd in doomed:
                with contextlib.suppress(OSError):
                    os.dup2(null, fd)
        finally:
            os.close(null)
