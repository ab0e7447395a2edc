"""One process's link to the others for one database: the election, the member's side,
and the resync when a message may have been lost.

:mod:`rxdb.remote.hub` explains the design and is the way in (:func:`~rxdb.remote.hub.join`
counts the joins and hands out :class:`~rxdb.remote.hub.Membership` handles); this module is
the machinery behind one handle, and :mod:`rxdb.remote.hub.hosting` the hub's side of it.
Everything here runs on the process's hub thread (see :mod:`rxdb.remote.hub.membership`).
The connections and their messages are loaded with the first connection
(:mod:`rxdb.remote.hub.sending`): a process alone with its file never needs them.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from rxdb.bus import Bus, Subscription
from rxdb.errors import ProtocolError
from rxdb.remote.hub.hosting import Hosting, try_to_host
from rxdb.remote.hub.receiving import converse_directly, open_hub_connection
from rxdb.remote.hub.tuning import LOG, MEMBER_ROLE, TUNING, Role
from rxdb.remote.wire.peers import peer_uid, uid_refusal
from rxdb.updates import NotifyTablesUpdated

if TYPE_CHECKING:
    from rxdb.remote.wire.channel import Channel
    from rxdb.remote.wire.messages import Message, Notify

__all__ = ("Link",)

_REMEMBERED_ORIGINS = 4096


class Link:
    """This process's link for one database (one per bus and key): a member of the hub, or
    the hub itself."""

    def __init__(
        self, key: str, bus: Bus, directory: str, path: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.key = key
        self.bus = bus
        self.directory = directory
        self.path = path
        self.loop = loop
        self.epoch = os.urandom(8).hex()
        self.origin = f"{os.getpid()}:hub-{os.urandom(6).hex()}"
        self.refs = 0
        # Replaced, never mutated: the loop's thread iterates it without the registry lock.
        self.origin_sources: tuple[Callable[[], Collection[str]], ...] = ()
        self.first_connection: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.late = False  # join stopped waiting: the first connection is a reconnect
        self.role: Role = "member"
        self.connected = False
        self.sent = 0
        self._sent_lock = threading.Lock()
        self.received = 0
        self.resyncs = 0
        self.elections = 0
        self.coalesced = 0
        self._held: NotifyTablesUpdated | None = None  # a resync from others, due later
        self._delivering: NotifyTablesUpdated | None = None  # being published by deliver()
        self._quiet_until = float("-inf")  # no other resync is published before then
        self._resync_sequence = itertools.count(1)
        self._seen: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._hosting: Hosting | None = None
        self._upstream: Channel | None = None
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
        """Send ``message`` to the other processes if it is for them: one of our databases
        wrote it and someone is connected to hear it. Asked on the publishing thread (see
        :meth:`rxdb.bus.Bus.subscribe`), which sends it itself: the hub thread is not woken
        for it (a commit reaches the socket one thread wake-up sooner), nor at all while a
        process is alone with its file. ``True`` only when the hub thread must take over
        (:meth:`_local`: the message cannot be encoded).

        Another process's message, which :meth:`deliver` publishes here, is turned away by
        identity first: the hub thread asks this of it too, often after the message's watches
        have been handed their rows (:mod:`rxdb.engines.sqlite.receipt`), while their loop
        waits for the GIL."""
        if message is self._delivering or message.origin == self.origin or self._closing:
            return False
        hosting = self._hosting
        upstream = self._upstream
        peers = () if hosting is None else hosting.peers
        if not peers and upstream is None:
            return False  # a peer that connects later resyncs on its own
        # Not ours: from another process (we published it), or from an unshared database. A
        # loop, not any() over a generator: one Python frame fewer on the way to the socket.
        for source in self.origin_sources:
            if message.origin in source():
                break
        else:
            return False
        # Loaded with the connection to the peers above (see the module's docstring).
        from rxdb.remote.hub.sending import any_thread_stream, notify_frame

        try:
            frame = notify_frame(message, self.epoch)
        except ProtocolError:
            return True
        sent = 0
        for channel in peers if hosting is not None or upstream is None else (upstream,):
            stream = any_thread_stream(channel)
            if stream is not None and stream.send_from_any_thread(frame, channel.max_buffered):
                sent += 1
        self._count_sent(sent)
        return False

    def _count_sent(self, frames: int) -> None:
        with self._sent_lock:  # the hub thread and committing threads both send
            self.sent += frames

    def _local(self, message: NotifyTablesUpdated) -> None:
        """A message on this process's bus that :meth:`_forwards` could not encode."""
        if self._closing:
            return
        from rxdb.remote.hub.sending import notify_frame  # _forwards() loaded it

        try:
            frame = notify_frame(message, self.epoch)
        except ProtocolError as error:
            LOG.warning("hub of %s: cannot send %r (%s); others resync", self.key, message, error)
            self._resync(f"a local message could not be sent: {error}", broadcast=True)
            return
        self.forward(frame, None)

    def forward(self, frame: bytes, sender: Channel | None) -> None:
        """Send a Notify frame to the other processes: to every peer but ``sender`` (as the
        hub), or to the hub."""
        hosting = self._hosting
        if hosting is not None:
            self._count_sent(
                sum(peer is not sender and peer.send_frame(frame) for peer in hosting.peers)
            )
        elif self._upstream is not None and self._upstream.send_frame(frame):
            self._count_sent(1)

    def _resync(self, reason: str, *, broadcast: bool) -> None:
        """Tell every local watch of the database to re-run; with ``broadcast``, others too."""
        LOG.info("resync of %s: %s", self.key, reason)
        message = NotifyTablesUpdated(
            self.key, self.origin, next(self._resync_sequence), everything=True
        )
        self.resyncs += 1
        self._publish_here(message)
        if broadcast:
            from rxdb.remote.hub.sending import notify_frame  # see the module's docstring

            self.forward(notify_frame(message, self.epoch), None)

    def deliver(self, notify: Notify) -> None:
        """A Notify from another process: publish it here, resync if something was lost."""
        message = notify.message
        if message.database != self.key:
            raise ProtocolError(
                f"a Notify for database {message.database!r} arrived on the hub of {self.key!r}"
            )
        self.received += 1
        self._delivering = message
        try:
            self._publish_here(message)
        finally:
            self._delivering = None
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

    def _publish_here(self, message: NotifyTablesUpdated) -> None:
        """Publish on this process's bus another process's message or a resync of ours;
        resyncs (``everything=True``: every watch re-runs) at most once per
        ``TUNING.resync_interval``.

        A member flooding resyncs, or messages whose gaps make us resync, would otherwise
        re-run every watch of every process once per message. A resync that comes too soon
        is held, and replaced by any later one, until the interval is over; then the last is
        published. So a flood costs one run of each watch per interval, and its last message
        is never lost. A held message's claim of WAL counter values may come too late for
        the poller: that costs a run, no more.
        """
        if not message.everything:
            self.bus.publish(message)
            return
        if self._held is not None or self.loop.time() < self._quiet_until:
            if self._held is None:
                self.loop.call_at(self._quiet_until, self._release_held)
            self._held = message
            self.coalesced += 1
            return
        self._quiet_until = self.loop.time() + TUNING.resync_interval
        self.bus.publish(message)

    def _release_held(self) -> None:
        message, self._held = self._held, None
        if message is not None and not self._closing:
            self._quiet_until = self.loop.time() + TUNING.resync_interval
            self.bus.publish(message)

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
            if not isinstance(outcome, Hosting):
                # Before join() hears of the connection: a commit right after it must find
                # it. (After the resync above, whose broadcast a member does not send.)
                self._upstream = outcome
            if not self.first_connection.done():
                self.first_connection.set_result(None)
            if isinstance(outcome, Hosting):
                try:
                    await outcome.serve()
                finally:
                    self._hosting = None
                    self.role = "member"
            else:
                await self._follow(outcome)
            self.connected = False
            if not self._closing:
                self._resync("lost the hub", broadcast=False)

    async def _elect(self) -> Hosting | Channel | None:
        connection = await self._connect()
        if connection is not None:
            return connection
        hosting = await try_to_host(self)
        if hosting is not None:
            self.elections += 1
            self._hosting = hosting
            self.role = "hub"
        return hosting

    async def _connect(self) -> Channel | None:
        try:
            reader, writer = await open_hub_connection(self.path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        # Here, with the first connection, not at the top: see the module's docstring.
        from rxdb.remote.hub.sending import hub_channel
        from rxdb.remote.wire.messages import Hello, Refused, Welcome

        connection = hub_channel(reader, writer, f"to the hub at {self.path}")
        try:
            refusal = uid_refusal(peer_uid(connection.stream.writer), frozenset(), "hub")
            if refusal is not None:
                raise ProtocolError(refusal)
            connection.send(Hello(None, MEMBER_ROLE, os.getpid(), self.epoch))
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
            await connection.stream.close()
            return None
        except BaseException:
            await connection.stream.close()
            raise
        connection.stream.decoder.max_payload = TUNING.max_payload
        return connection

    async def _follow(self, connection: Channel) -> None:
        from rxdb.remote.wire.messages import Goodbye, Notify  # loaded by _connect()

        def handle(message: Message, payload: bytes) -> None:
            if not isinstance(message, Notify):
                raise ProtocolError(f"unexpected {type(message).__name__} from the hub")
            self.deliver(message)

        try:
            goodbye = await converse_directly(
                connection, handle, patience=TUNING.peer_timeout, ping_every=TUNING.ping_interval
            )
            if goodbye is None:
                LOG.info("hub of %s: the hub closed the connection", self.key)
            else:
                LOG.info("hub of %s: the hub said goodbye: %s", self.key, goodbye)
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
            if self._closing:
                with contextlib.suppress(Exception):
                    connection.send(Goodbye("leaving"))
            await connection.stream.close()

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
        upstream = self._upstream
        if upstream is not None:
            from rxdb.remote.hub.sending import any_thread_stream  # loaded by _connect()

            stream = any_thread_stream(upstream)
            fds.extend([upstream.stream.fileno()] if stream is None else stream.descriptors())
        return [fd for fd in fds if fd >= 0]

    def abandon(self) -> None:
        """Let go of the lock and sockets without the loop (it is closed, or we are a forked
        child): the descriptors are pointed at /dev/null, so the kernel drops the lock and
        the connections while the numbers stay valid for whoever closes them later."""
        self._closing = True
        self._subscription.closed = True  # no lock: it may be held by a thread of the parent
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
