"""The cross-process notification hub: processes on one machine that open the same database
file see each other's commits, with no configuration.

Every process that joins a database (identified by ``key``, the file's real path) runs one
*link* for it. Links find each other through a Unix socket whose name derives from the key,
in a directory only the user can enter. One link is the *hub*: it listens on the socket and
relays each :class:`~rxdb.remote.messages.Notify` from one member to all the others. The
others are *members*: one connection each to the hub. The hub's own process takes part
through its local bus, like any member.

Who is the hub is decided by an exclusive ``flock`` on ``{socket}.lock``: whoever holds it
binds the socket; everyone else connects. The kernel drops the lock when its holder dies
(even by ``kill -9``), so a survivor takes over. Delivery is at most once; what makes that
safe is the *resync*: a message that says "anything may have changed" (``everything=True``),
published locally whenever a message may have been lost -- a gap in an origin's sequence
numbers, a new epoch, a lost or new connection to the hub.

Everything a link does runs on the event loop of the first :func:`join` for its key;
publishing onto the bus is thread-safe, so databases on other loops receive as well.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import itertools
import logging
import os
import random
import socket
import stat
import struct
import tempfile
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from rxdb.bus import Bus, Subscription
from rxdb.errors import RxdbError
from rxdb.remote.frames import HANDSHAKE_MAX_PAYLOAD, FrameDecoder, ProtocolError, encode_frame
from rxdb.remote.messages import (
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
from rxdb.updates import NotifyTablesUpdated

__all__ = (
    "TUNING",
    "HubError",
    "HubStatistics",
    "Membership",
    "Tuning",
    "join",
    "socket_directory",
    "socket_path",
)

LOG = logging.getLogger("rxdb.remote.hub")

Role = Literal["hub", "member"]

# A Unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS), NUL included.
_SUN_PATH_MAX = 103 if os.uname().sysname == "Darwin" else 107
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


class HubError(RxdbError, OSError):
    """Raised when the hub's socket directory is unusable: it cannot be created, it is not a
    directory, it belongs to another user, or others may enter it. Fix the directory (``chmod
    700``), pass another one, or turn cross-process sharing off."""


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """A snapshot of one link, for tests and diagnostics.

    :ivar role: ``"hub"`` while this process hosts the hub socket, else ``"member"``.
    :ivar connected: whether messages currently flow (a hub is always connected).
    :ivar sent: Notify frames written (a hub counts one per receiving peer).
    :ivar received: Notify frames received from other processes.
    :ivar resyncs: resync messages published on the local bus.
    :ivar elections: how many times this process won an election and became the hub.
    """

    role: Role
    connected: bool
    sent: int
    received: int
    resyncs: int
    elections: int


# ---------------------------------------------------------------------------------------
# Where the socket lives


def socket_directory(directory: str | None = None) -> str:
    """Return the directory for hub sockets, created with mode 0700 if missing.

    Default: ``$XDG_RUNTIME_DIR/rxdb`` if that variable names a directory of this user, else
    ``{tempfile.gettempdir()}/rxdb-{uid}``.

    :raises HubError: if the directory cannot be created, is not a directory (a symlink is
        refused), belongs to another user, or grants any permission to group or others.
    """
    if directory is None:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        if runtime and _usable_runtime_dir(runtime):
            path = os.path.join(runtime, "rxdb")
        else:
            path = os.path.join(tempfile.gettempdir(), f"rxdb-{os.geteuid()}")
    else:
        path = os.path.abspath(os.fspath(directory))
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    _ensure_private_directory(path)
    return path


def socket_path(key: str, directory: str) -> str:
    """Return the hub socket's path for database ``key`` in ``directory``.

    :raises HubError: if the path is too long for a Unix socket.
    """
    digest = hashlib.sha256(os.fsencode(key)).hexdigest()[:24]
    path = os.path.join(directory, f"{digest}.sock")
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise HubError(
            f"the hub socket path {path!r} is longer than the {_SUN_PATH_MAX} bytes a Unix "
            "socket allows; use a shorter directory"
        )
    return path


def _usable_runtime_dir(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (
        os.path.isabs(path)
        and stat.S_ISDIR(st.st_mode)
        and st.st_uid == os.geteuid()
        and os.access(path, os.W_OK | os.X_OK)
    )


def _ensure_private_directory(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise HubError(f"cannot create the hub directory {path!r}: {error}") from error
    else:
        # The umask may have taken bits away; owner-only rwx is what we need.
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError as error:
        raise HubError(f"cannot inspect the hub directory {path!r}: {error}") from error
    if not stat.S_ISDIR(st.st_mode):
        raise HubError(f"the hub directory {path!r} is not a directory (symlinks are refused)")
    if st.st_uid != os.geteuid():
        raise HubError(
            f"the hub directory {path!r} belongs to uid {st.st_uid}, not to this process's "
            f"uid {os.geteuid()}; remove it or use another directory"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise HubError(
            f"the hub directory {path!r} has mode {mode:04o}; others could reach its sockets. "
            f"Run `chmod 700 {path}` or use another directory"
        )
    if mode & 0o700 != 0o700:
        raise HubError(f"the hub directory {path!r} has mode {mode:04o}; it needs 0700")


# ---------------------------------------------------------------------------------------
# One connection


class _Connection:
    """Frames in and out of one stream; a peer of a hub, or a member's link to its hub."""

    __slots__ = ("_pending", "decoder", "label", "reader", "writer")

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.label = label
        self.decoder = FrameDecoder(HANDSHAKE_MAX_PAYLOAD)
        self._pending: deque[bytes] = deque()

    async def receive(self, patience: float) -> tuple[bytes, Message] | None:
        """Return the next payload and its message, or ``None`` at end of stream.

        :raises ProtocolError: on malformed bytes.
        :raises TimeoutError: if the peer sent nothing for ``patience`` seconds.
        """
        while not self._pending:
            async with asyncio.timeout(patience):
                data = await self.reader.read(_READ_CHUNK)
            if not data:
                return None
            self._pending.extend(self.decoder.feed(data))
        payload = self._pending.popleft()
        return payload, decode_message(payload)

    def send(self, message: Message) -> None:
        self.send_frame(encode_frame(encode_message(message)))

    def send_frame(self, frame: bytes) -> bool:
        transport = self.writer.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() + len(frame) > TUNING.max_buffered:
            LOG.warning(
                "dropping the connection %s: it reads too slowly (%d bytes queued); it will "
                "resync when it reconnects",
                self.label,
                transport.get_write_buffer_size(),
            )
            transport.abort()
            return False
        self.writer.write(frame)
        return True

    def fileno(self) -> int:
        sock = self.writer.get_extra_info("socket")
        return -1 if sock is None else int(sock.fileno())

    def peer_uid(self) -> int | None:
        """The peer's uid where the platform tells it cheaply (Linux), else ``None``."""
        option = getattr(socket, "SO_PEERCRED", None)
        sock = self.writer.get_extra_info("socket")
        if option is None or sock is None:
            return None
        try:
            raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        except OSError:
            return None
        _pid, uid, _gid = struct.unpack("3i", raw)
        return int(uid)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


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


class _Link:
    def __init__(self, key: str, bus: Bus, directory: str, path: str) -> None:
        self.key = key
        self.bus = bus
        self.directory = directory
        self.path = path
        self.lock_path = path + ".lock"
        self.loop = asyncio.get_running_loop()
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
        self._subscription: Subscription = bus.subscribe(key, self._local, loop=self.loop)
        self._supervisor = self.loop.create_task(self._run(), name=f"rxdb-hub {path}")

    # -- local side ------------------------------------------------------------------------

    def _local(self, message: NotifyTablesUpdated) -> None:
        """A message on this process's bus: forward it if one of our databases wrote it."""
        if message.origin == self.origin or self._closing:
            return
        for source in self.origin_sources:
            if message.origin in source():
                break
        else:
            return  # from another process (we published it) or from an unshared database
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
                if peer is not sender and peer.send_frame(frame):
                    self.sent += 1
        elif self._upstream is not None and self._upstream.send_frame(frame):
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
            got = await connection.receive(TUNING.handshake_timeout)
            if got is None:
                raise ConnectionResetError("the hub closed the connection during the handshake")
            reply = got[1]
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
        got = await connection.receive(TUNING.handshake_timeout)
        if got is None:
            return
        hello = got[1]
        if not isinstance(hello, Hello) or hello.role != _MEMBER_ROLE:
            raise ProtocolError(f"expected Hello from a member, got {type(hello).__name__}")
        connection.label = f"of pid {hello.process_id}"
        connection.decoder.max_payload = TUNING.max_payload
        # Join the broadcast set before the Welcome: whatever is committed after the member
        # resyncs reaches it.
        hosting.peers.add(connection)
        connection.send(Welcome(os.getpid(), self.epoch, self.key))
        while True:
            got = await connection.receive(TUNING.peer_timeout)
            if got is None:
                return
            payload, message = got
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
                got = await connection.receive(TUNING.peer_timeout)
                if got is None:
                    LOG.info("hub of %s: the hub closed the connection", self.key)
                    return
                message = got[1]
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

    # -- end of life --------------------------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        self._subscription.close()
        self._supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._supervisor
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


# ---------------------------------------------------------------------------------------
# The public face


class Membership:
    """One :func:`join` of one database: a handle on this process's link for it."""

    __slots__ = ("_left", "_link", "_origins")

    def __init__(self, link: _Link, origins: Callable[[], Collection[str]]) -> None:
        self._link = link
        self._origins = origins
        self._left = False

    @property
    def key(self) -> str:
        return self._link.key

    @property
    def path(self) -> str:
        """The hub socket's path."""
        return self._link.path

    @property
    def origin(self) -> str:
        """The origin of this process's resync messages (``everything=True``) on the bus."""
        return self._link.origin

    @property
    def left(self) -> bool:
        return self._left

    def statistics(self) -> HubStatistics:
        link = self._link
        return HubStatistics(
            role=link.role,
            connected=link.connected,
            sent=link.sent,
            received=link.received,
            resyncs=link.resyncs,
            elections=link.elections,
        )

    async def leave(self) -> None:
        """Stop sharing through this handle; the last one of a link closes it. Idempotent."""
        if self._left:
            return
        self._left = True
        link = self._link
        with _REGISTRY_LOCK:
            link.refs -= 1
            sources = list(link.origin_sources)
            with contextlib.suppress(ValueError):
                sources.remove(self._origins)
            link.origin_sources = tuple(sources)
            last = link.refs == 0
            if last and _REGISTRY.get((link.path, id(link.bus))) is link:
                del _REGISTRY[(link.path, id(link.bus))]
        if not last:
            return
        if link.loop.is_closed():
            link.abandon()
            return
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is link.loop:
            await link.close()
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(link.close(), link.loop))

    def __repr__(self) -> str:
        stats = self.statistics()
        state = "left" if self._left else f"{stats.role}, connected={stats.connected}"
        return f"<Membership {self.key!r} {state}>"


_REGISTRY: dict[tuple[str, int], _Link] = {}
_REGISTRY_LOCK = threading.Lock()


async def join(
    key: str,
    bus: Bus,
    *,
    local_origins: Callable[[], Collection[str]],
    directory: str | None = None,
) -> Membership:
    """Share the table updates of database ``key`` on ``bus`` with other processes.

    Messages on ``bus`` for ``key`` whose origin is in ``local_origins()`` go to the other
    processes; theirs are published on ``bus`` unchanged. Joins are counted per process,
    ``bus`` and key: a second join returns a handle on the same link, and the last
    :meth:`Membership.leave` closes it. Returns once connected (or after
    ``TUNING.join_timeout``, still trying in the background).

    :param key: the database identity (its file's real path).
    :param local_origins: the origins of this process's databases that share ``key``.
    :param directory: where the hub socket lives; see :func:`socket_directory`.
    :raises HubError: if the socket directory is unusable.
    """
    path = socket_path(key, socket_directory(directory))
    with _REGISTRY_LOCK:
        link = _REGISTRY.get((path, id(bus)))
        if link is not None and link.loop.is_closed():
            link.abandon()
            link = None
        if link is None:
            link = _Link(key, bus, os.path.dirname(path), path)
            _REGISTRY[(path, id(bus))] = link
        link.refs += 1
        link.origin_sources = (*link.origin_sources, local_origins)
    membership = Membership(link, local_origins)
    try:
        await asyncio.wait_for(
            asyncio.shield(asyncio.wrap_future(link.first_connection)), TUNING.join_timeout
        )
    except TimeoutError:
        link.late = True
        LOG.warning("hub of %s: not connected yet; watches resync once it is", key)
    except BaseException:
        await membership.leave()
        raise
    return membership


def _after_fork_in_child() -> None:
    # A forked child must not keep the parent's lock or sockets alive: the survivors could
    # never elect a new hub, nor see the parent's connections close.
    links = list(_REGISTRY.values())
    _REGISTRY.clear()
    global _REGISTRY_LOCK
    _REGISTRY_LOCK = threading.Lock()
    for link in links:
        link.abandon()


os.register_at_fork(after_in_child=_after_fork_in_child)
