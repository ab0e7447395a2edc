"""A hub connection that the thread which committed may write to itself.

A commit is published on the writer's thread; handing its Notify to the hub thread to send
costs a wake-up of that thread (~0.1 ms, more on a busy machine) before the frame even
leaves. :meth:`AnyThreadStream.send_from_any_thread` writes the frame to the socket right
there instead, when nothing is waiting to be sent before it, and otherwise queues it for the
hub thread, behind what waits. Every write to the connection, from any thread, takes one
lock, so frames never interleave and leave in the order they were sent.

This module makes every hub connection (:func:`hub_channel`) and encodes every Notify frame
(:func:`notify_frame`), and it is the first of the hub's modules to need the wire (msgpack
and the messages: ~10 ms to load). The others import it, and the messages, only once there
is a connection: a process alone with its file never loads them (:mod:`rxdb.remote.hub`).

The direct write goes to a duplicate of the socket's descriptor, owned by this stream and
closed under the same lock: a descriptor the event loop closed, and the system handed to
some other file, is never written to. The loop's own writes stay asyncio's; a direct write
happens only while asyncio's write buffer is empty, which it cannot stop being without the
lock (the loop only flushes a buffer that is not empty).

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any, Final

from rxdb.remote.hub.receiving import DirectReader
from rxdb.remote.hub.tuning import LOG, TUNING
from rxdb.remote.wire.channel import Channel
from rxdb.remote.wire.frames import HANDSHAKE_MAX_PAYLOAD, encode_frame
from rxdb.remote.wire.messages import encode_notify
from rxdb.remote.wire.stream import FramedStream
from rxdb.updates import NotifyTablesUpdated

__all__ = ("AnyThreadStream", "any_thread_stream", "hub_channel", "notify_frame")

_READ_CHUNK: Final = 64 * 1024


class AnyThreadStream(FramedStream):
    """A :class:`FramedStream` whose frames may be sent from any thread; made on its loop."""

    __slots__ = ("_fd", "_lock", "_loop", "_queue")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._queue: list[bytes] = []  # for the loop to write, in order, before anything else
        sock = self.writer.get_extra_info("socket")
        self._fd = -1 if sock is None else os.dup(sock.fileno())
        if isinstance(self.reader, DirectReader):
            self.reader.decoder = self.decoder

    async def receive_payload(self, patience: float | None = None) -> bytes | None:
        if isinstance(self.reader, DirectReader):
            return await self.reader.next_payload(patience)
        return await super().receive_payload(patience)

    def send_frame(self, frame: bytes, max_buffered: int | None = None) -> bool:
        """On the loop's thread: queue ``frame`` behind whatever waits (see
        :meth:`FramedStream.send_frame`)."""
        with self._lock:
            self._flush_locked()
            sent = super().send_frame(frame, max_buffered)
            if self.writer.transport.is_closing():
                self._release_locked()
            return sent

    def send_from_any_thread(self, frame: bytes, max_buffered: int | None) -> bool:
        """Send ``frame`` now if nothing waits before it, else hand it to the loop; ``False``
        if the connection is closing (or is dropped now, having ``max_buffered`` bytes
        waiting already). Safe from any thread."""
        transport = self.writer.transport
        with self._lock:
            if self._fd < 0 or transport.is_closing():
                return False
            if not self._queue and transport.get_write_buffer_size() == 0:
                try:
                    written = os.write(self._fd, frame)
                except BlockingIOError:
                    written = 0
                except OSError:
                    return False  # the connection failed: its reader hears it and ends it
                if written == len(frame):
                    return True
                frame = frame[written:]
            waiting = transport.get_write_buffer_size() + sum(map(len, self._queue))
            if max_buffered is not None and waiting + len(frame) > max_buffered:
                self._schedule(self._drop, waiting)
                return False
            self._queue.append(frame)
            # The first frame queued asks the loop to flush; later ones ride along.
            return len(self._queue) > 1 or self._schedule(self._flush)

    def descriptors(self) -> list[int]:
        """The socket's descriptors: asyncio's and this stream's duplicate (what a forked child
        must let go of)."""
        return [fd for fd in (self.fileno(), self._fd) if fd >= 0]

    async def close(self) -> None:
        with self._lock:
            self._release_locked()
        await super().close()

    # -- on the loop -----------------------------------------------------------------------

    def _schedule(self, callback: Any, *args: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody will ever send this
            self._queue.clear()
            return False
        return True

    def _flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        queue, self._queue = self._queue, []
        transport = self.writer.transport
        for frame in queue:
            if transport.is_closing():
                return
            self.writer.write(frame)

    def _drop(self, waiting: int) -> None:
        self._log.warning(self._too_slow, self.label, waiting)
        with self._lock:
            self._queue.clear()
            self.writer.transport.abort()
            self._release_locked()

    def _release_locked(self) -> None:
        fd, self._fd = self._fd, -1
        self._queue.clear()
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def any_thread_stream(channel: Channel) -> AnyThreadStream | None:
    """``channel``'s stream if it is one any thread may send on (every hub connection's)."""
    stream = channel.stream
    return stream if isinstance(stream, AnyThreadStream) else None


def hub_channel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, label: str) -> Channel:
    """A connection between a hub and a member (either end), before its handshake; any
    thread may send on it (:class:`AnyThreadStream`). Call on the hub thread."""
    stream = AnyThreadStream(
        reader,
        writer,
        label,
        HANDSHAKE_MAX_PAYLOAD,
        read_chunk=_READ_CHUNK,
        log=LOG,
        too_slow="dropping the connection %s: it reads too slowly (%d bytes queued); it "
        "will resync when it reconnects",
    )
    return Channel(stream, max_buffered=TUNING.max_buffered)


def notify_frame(message: NotifyTablesUpdated, epoch: str) -> bytes:
    """``message`` as a Notify frame of a link whose epoch is ``epoch``.

    :raises rxdb.ProtocolError: if it cannot be encoded.
    """
    return encode_frame(encode_notify(message, epoch))
