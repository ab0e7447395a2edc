"""The hub's side of a link: win the election, listen, greet members, relay their Notify.

Whoever holds an exclusive ``flock`` on ``{socket}.lock`` binds the socket; everyone else
connects to it (see :mod:`rxdb.remote.hub`). Holding the lock, the hub is the only process
that may bind, so whatever file is at the socket's path belongs to a dead hub.

The connections and their messages are loaded with the first member that connects
(:mod:`rxdb.remote.hub.sending`): a hub nobody joins never needs them.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from typing import TYPE_CHECKING, Protocol

from rxdb.errors import ProtocolError
from rxdb.remote.hub.receiving import converse_directly, start_hub_server
from rxdb.remote.hub.tuning import LOG, MEMBER_ROLE, TUNING
from rxdb.remote.wire.frames import encode_frame
from rxdb.remote.wire.peers import peer_uid, uid_refusal
from rxdb.remote.wire.refusals import RefusalLog

if TYPE_CHECKING:
    from rxdb.remote.wire.channel import Channel
    from rxdb.remote.wire.messages import Message, Notify

__all__ = ("Hosting", "Relay", "try_to_host")


class Relay(Protocol):
    """What the hub's side needs of its link."""

    key: str
    path: str
    epoch: str

    def deliver(self, notify: Notify) -> None:
        """Publish another process's Notify here (resyncing if something was lost)."""
        ...

    def forward(self, frame: bytes, sender: Channel | None) -> None:
        """Send a Notify frame to every peer but ``sender``."""
        ...


class Hosting:
    """What a link holds while it is the hub: the lock, the listening server, the peers."""

    def __init__(self, relay: Relay, lock_fd: int) -> None:
        self.relay = relay
        self.lock_fd = lock_fd
        self.server: asyncio.Server | None = None
        # Replaced, never mutated: a committing thread reads it to send without the loop.
        self.peers: frozenset[Channel] = frozenset()
        self.tasks: set[asyncio.Task[None]] = set()
        self.hosting = True
        self.refusals = RefusalLog(LOG)

    def fds(self) -> list[int]:
        fds = [] if self.server is None else [int(s.fileno()) for s in self.server.sockets]
        if self.peers:
            from rxdb.remote.hub.sending import any_thread_stream  # loaded: see the module

            for peer in self.peers:
                stream = any_thread_stream(peer)
                fds.extend([peer.stream.fileno()] if stream is None else stream.descriptors())
        return fds

    async def serve(self) -> None:
        """Host until cancelled (the link leaves), then let go of peers, socket and lock."""
        try:
            await asyncio.Future()
        finally:
            self.hosting = False
            if self.server is not None:
                self.server.close()
            if self.peers:
                from rxdb.remote.wire.messages import Goodbye  # loaded: see the module

                for peer in list(self.peers):
                    with contextlib.suppress(Exception):
                        peer.send(Goodbye("the hub is leaving"))
                    peer.stream.writer.close()
            for task in list(self.tasks):
                task.cancel()  # accept() ends quietly: asyncio 3.11 logs a cancelled handler
            await asyncio.gather(*self.tasks, return_exceptions=True)
            # Unlink while still holding the lock: nobody else can have bound the path.
            with contextlib.suppress(OSError):
                os.unlink(self.relay.path)
            os.close(self.lock_fd)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Here, not at the top: see the module's docstring.
        from rxdb.remote.hub.sending import hub_channel
        from rxdb.remote.wire.messages import Refused

        channel = hub_channel(reader, writer, f"{self.relay.path}#{id(writer):x}")
        key = self.relay.key
        if not self.hosting:
            await channel.stream.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self._serve_peer(channel)
        except ProtocolError as error:
            self.refusals.warn(
                f"hub of {key}: closing connection {channel.stream.label}", str(error)
            )
            with contextlib.suppress(Exception):
                channel.send(Refused(str(error)))
        except TimeoutError:
            self.refusals.warn(
                f"hub of {key}: closing connection {channel.stream.label}", "silent for too long"
            )
        except OSError as error:
            LOG.debug("hub of %s: connection %s failed: %s", key, channel.stream.label, error)
        except Exception:
            LOG.exception("hub of %s: closing connection %s", key, channel.stream.label)
        except asyncio.CancelledError:
            if self.hosting:
                raise
            # Cancelled by serve() on the way out. Ending normally keeps asyncio's server
            # callback (3.11) from logging the cancellation as an error.
        finally:
            self.peers = self.peers - {channel}
            if task is not None:
                self.tasks.discard(task)
            await channel.stream.close()

    async def _serve_peer(self, channel: Channel) -> None:
        from rxdb.remote.wire.messages import Hello, Notify, Welcome  # loaded by accept()

        refusal = uid_refusal(peer_uid(channel.stream.writer), frozenset(), "member")
        if refusal is not None:
            raise ProtocolError(refusal)
        hello = await channel.receive(TUNING.handshake_timeout)
        if hello is None:
            return
        if not isinstance(hello, Hello) or hello.role != MEMBER_ROLE:
            raise ProtocolError(f"expected Hello from a member, got {type(hello).__name__}")
        channel.stream.label = f"of pid {hello.process_id}"
        channel.stream.decoder.max_payload = TUNING.max_payload
        # Join the broadcast set before the Welcome: whatever is committed after the member
        # resyncs reaches it.
        self.peers = self.peers | {channel}
        channel.send(Welcome(os.getpid(), self.relay.epoch, self.relay.key))

        def handle(message: Message, payload: bytes) -> None:
            if not isinstance(message, Notify):
                raise ProtocolError(f"unexpected {type(message).__name__} from a member")
            database = message.message.database
            if database != self.relay.key:  # refused before it reaches anyone
                raise ProtocolError(f"a Notify for {database!r} on the hub of {self.relay.key!r}")
            # The other members first: publishing here may re-run watches on this thread
            # (rxdb.engines.sqlite.receipt) before it returns.
            if len(self.peers) > 1:
                self.relay.forward(encode_frame(payload), channel)
            self.relay.deliver(message)

        await converse_directly(channel, handle, patience=TUNING.peer_timeout)


async def try_to_host(relay: Relay) -> Hosting | None:
    """Take the lock and listen on the socket; ``None`` if another process holds the lock."""
    lock_path = relay.path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
        with contextlib.suppress(FileNotFoundError):
            os.unlink(relay.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(relay.path)
        os.chmod(relay.path, 0o600)  # the directory is 0700 already; belt and braces
        sock.listen(128)
        hosting = Hosting(relay, fd)
        hosting.server = await start_hub_server(hosting.accept, sock)
    except BaseException:
        if sock is not None:
            sock.close()
        with contextlib.suppress(OSError):
            os.unlink(relay.path)
        os.close(fd)
        raise
    LOG.info("this process (pid %d) is now the hub of %s", os.getpid(), relay.key)
    return hosting
