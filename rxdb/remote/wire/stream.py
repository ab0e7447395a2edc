"""One framed-message connection over asyncio streams.

The hub's links, the database server's sessions and the client all speak the same way over
a socket: cut payloads out of the byte stream with a
:class:`~rxdb.remote.wire.frames.FrameDecoder`, decode each into a message, write frames
back, and drop a peer that reads too slowly rather than buffer for it without bound.
:class:`FramedStream` is that part; :class:`~rxdb.remote.wire.channel.Channel` builds the
conversation (keepalive, requests and their answers) on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Final

from rxdb.remote.wire.frames import FrameDecoder
from rxdb.remote.wire.messages import Message, decode_message

__all__ = ("READ_CHUNK", "FramedStream")

READ_CHUNK: Final = 256 * 1024
"""Bytes asked of the socket per read, unless a connection says otherwise."""

_LOG = logging.getLogger("rxdb.remote")
_TOO_SLOW = "dropping the connection %s: it reads too slowly (%d bytes queued)"


class FramedStream:
    """Frames in and out of one stream connection.

    :ivar label: names the peer in log messages (mutable: a handshake may tell more).
    :ivar decoder: its ``max_payload`` may be raised once the peer has authenticated.
    """

    __slots__ = (
        "_log",
        "_pending",
        "_read_chunk",
        "_too_slow",
        "decoder",
        "label",
        "reader",
        "writer",
    )

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        label: str,
        max_payload: int,
        *,
        read_chunk: int = READ_CHUNK,
        log: logging.Logger = _LOG,
        too_slow: str = _TOO_SLOW,
    ) -> None:
        """:param too_slow: the warning logged when a peer is dropped for reading too
        slowly, a %-format taking the label and the bytes queued."""
        self.reader = reader
        self.writer = writer
        self.label = label
        self.decoder = FrameDecoder(max_payload)
        self._pending: deque[bytes] = deque()
        self._read_chunk = read_chunk
        self._log = log
        self._too_slow = too_slow

    async def receive_payload(self, patience: float | None = None) -> bytes | None:
        """Return the next frame's payload, or ``None`` at end of stream.

        :raises ProtocolError: on malformed bytes.
        :raises TimeoutError: if ``patience`` is given and the peer sent nothing for that
            many seconds.
        """
        while not self._pending:
            if patience is None:
                data = await self.reader.read(self._read_chunk)
            else:
                async with asyncio.timeout(patience):
                    data = await self.reader.read(self._read_chunk)
            if not data:
                return None
            self._pending.extend(self.decoder.feed(data))
        return self._pending.popleft()

    async def receive(self, patience: float | None = None) -> Message | None:
        """Return the next message, or ``None`` at end of stream; raises as
        :meth:`receive_payload` and :func:`~rxdb.remote.wire.messages.decode_message` do."""
        payload = await self.receive_payload(patience)
        return None if payload is None else decode_message(payload)

    def is_closing(self) -> bool:
        return self.writer.transport.is_closing()

    def send_frame(self, frame: bytes, max_buffered: int | None = None) -> bool:
        """Queue ``frame`` unless the connection is closing; return whether it was queued.

        A peer that already has ``max_buffered`` bytes waiting is dropped (the connection is
        aborted and a warning logged) instead.
        """
        transport = self.writer.transport
        if transport.is_closing():
            return False
        if (
            max_buffered is not None
            and transport.get_write_buffer_size() + len(frame) > max_buffered
        ):
            self._log.warning(self._too_slow, self.label, transport.get_write_buffer_size())
            transport.abort()
            return False
        self.writer.write(frame)
        return True

    def fileno(self) -> int:
        sock = self.writer.get_extra_info("socket")
        return -1 if sock is None else int(sock.fileno())

    async def wait_closed(self) -> None:
        """Wait until the stream has closed; whatever went wrong on the way is ignored."""
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def close(self) -> None:
        self.writer.close()
        await self.wait_closed()
