"""A hub connection's incoming frames, handled as the socket delivers them.

asyncio's streams buffer what a socket delivers and wake the task waiting in ``read()``: one
more turn of the hub thread's loop for every message before it is even decoded. A hub
connection's :class:`DirectReader` is fed by the same protocol but cuts frames out at once;
in :func:`converse_directly` (the hub's conversation once the handshake is done) each
message is handled right there, in the protocol's callback. Before that, frames wait in the
reader for :meth:`DirectReader.next_payload` (the handshake, or a plain
:meth:`~rxdb.remote.wire.channel.Channel.converse`).

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Final, SupportsIndex

from rxdb.errors import ProtocolError

if TYPE_CHECKING:
    from rxdb.remote.wire.channel import Channel, Handler
    from rxdb.remote.wire.frames import FrameDecoder

__all__ = ("DirectReader", "converse_directly", "open_hub_connection", "start_hub_server")

_INBOX_LIMIT: Final = 64
"""Frames held for :meth:`DirectReader.next_payload` before the socket stops being read."""

Connected = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class DirectReader(asyncio.StreamReader):
    """Fed by asyncio's protocol like any :class:`asyncio.StreamReader`, it keeps frames, not
    bytes: decoded with ``decoder`` (the stream's, given by whoever builds the stream)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._hub_loop = loop
        self._hub_transport: asyncio.BaseTransport | None = None
        self.decoder: FrameDecoder | None = None
        self._inbox: deque[bytes] = deque()
        self._ended = False
        self._stopped = False  # a goodbye: what follows it is not read
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_payload: Callable[[bytes], None] | None = None
        self._paused = False
        self._heard = loop.time()

    # -- fed by the protocol ----------------------------------------------------------------

    def set_transport(self, transport: asyncio.BaseTransport) -> None:
        super().set_transport(transport)
        self._hub_transport = transport

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        if self._ended:
            return
        try:
            if self.decoder is None:
                raise ProtocolError("a hub connection's reader has no decoder")
            payloads = self.decoder.feed(data if isinstance(data, bytes) else bytes(data))
            for payload in payloads:
                if self._stopped:
                    break
                if self._on_payload is not None and not self._inbox:
                    self._on_payload(payload)
                else:
                    self._inbox.append(payload)
        except Exception as error:  # a broken frame, or the role refused a message
            self._end(error)
            return
        self._heard = self._hub_loop.time()
        if self._inbox:
            # Only next_payload waits for frames. A frame handled in the callback (every
            # Notify, in a conversation) wakes nobody, handle_each waiting for the end alone:
            # no task turn on the hub thread, which holds the GIL the watch's loop, just
            # woken for the re-run's rows, wants.
            if len(self._inbox) > _INBOX_LIMIT:
                self._pause(True)
            self._wake()

    def feed_eof(self) -> None:
        self._end(None)

    def set_exception(self, exc: BaseException) -> None:
        self._end(exc)

    # -- read by the stream -----------------------------------------------------------------

    async def next_payload(self, patience: float | None) -> bytes | None:
        """The next frame's payload, ``None`` at the end of the stream.

        :raises ProtocolError: for malformed bytes.
        :raises TimeoutError: after ``patience`` seconds without a frame.
        """
        async with asyncio.timeout(patience):
            while not self._inbox:
                if self._failure is not None:
                    raise self._failure
                if self._ended:
                    return None
                await self._wait()
        if len(self._inbox) <= _INBOX_LIMIT // 2:
            self._pause(False)
        return self._inbox.popleft()

    async def handle_each(self, on_payload: Callable[[bytes], None]) -> None:
        """Call ``on_payload`` with every frame, as it arrives, until the stream ends;
        raises what ended it (a malformed frame, whatever ``on_payload`` raised, a failed
        connection). Cancel it to stop."""
        while self._inbox and not self._stopped:
            on_payload(self._inbox.popleft())
        self._inbox.clear()  # what came after a goodbye
        self._pause(False)
        self._on_payload = on_payload
        try:
            while not self._ended:
                await self._wait()
        finally:
            self._on_payload = None
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        """End the stream here (a goodbye came): what follows is not read."""
        self._stopped = True
        self._end(None)

    def seconds_since_data(self) -> float:
        return self._hub_loop.time() - self._heard

    def heard_now(self) -> None:
        """Count silence from now (a conversation starts)."""
        self._heard = self._hub_loop.time()

    # -- inside -----------------------------------------------------------------------------

    def _end(self, failure: BaseException | None) -> None:
        if self._ended:
            return
        self._ended = True
        self._failure = failure
        self._wake()

    def _pause(self, paused: bool) -> None:
        transport = self._hub_transport
        if paused != self._paused and isinstance(transport, asyncio.ReadTransport):
            self._paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._hub_loop.create_future()
        await self._waiter


async def converse_directly(
    channel: Channel, handle: Handler, *, patience: float, ping_every: float | None = None
) -> str | None:
    """:meth:`Channel.converse <rxdb.remote.wire.channel.Channel.converse>` for a hub
    connection, with every message handled in the socket's callback: the same answers to
    pings, the same silence timeout and the same end at a goodbye. A hub never makes calls,
    so an answer to one is refused like any message its role does not take."""
    # Not at the top: a channel means the wire is loaded, and a process alone with its file
    # never loads it (rxdb.remote.hub.sending).
    from rxdb.remote.wire.messages import Goodbye, Ping, Pong, decode_message

    reader = channel.stream.reader
    if not isinstance(reader, DirectReader):
        return await channel.converse(handle, patience=patience, ping_every=ping_every)
    goodbye: list[str] = []

    def on_payload(payload: bytes) -> None:
        message = decode_message(payload)
        if isinstance(message, Ping):
            channel.send(Pong(message.nonce))
        elif isinstance(message, Goodbye):
            goodbye.append(message.reason)
            reader.stop()
        elif not isinstance(message, Pong):
            handle(message, payload)

    async def ping(interval: float) -> None:
        for nonce in itertools.count(1):
            await asyncio.sleep(interval)
            channel.send(Ping(nonce))

    loop = asyncio.get_running_loop()
    silent: asyncio.Future[None] = loop.create_future()
    timer: list[asyncio.TimerHandle] = []

    def check_silence() -> None:
        quiet = reader.seconds_since_data()
        if quiet < patience:
            timer[:] = [loop.call_later(patience - quiet, check_silence)]
        elif not silent.done():
            silent.set_exception(TimeoutError(f"no message for {patience} s"))

    reader.heard_now()
    check_silence()
    tasks: list[asyncio.Future[None]] = [loop.create_task(reader.handle_each(on_payload))]
    if ping_every is not None:
        tasks.append(loop.create_task(ping(ping_every)))
    try:
        done, _ = await asyncio.wait([*tasks, silent], return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            future.result()  # raises what ended the conversation
        return goodbye[0] if goodbye else None
    finally:
        for handle_ in timer:
            handle_.cancel()
        silent.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def open_hub_connection(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """:func:`asyncio.open_unix_connection` with a :class:`DirectReader`."""
    loop = asyncio.get_running_loop()
    reader = DirectReader(loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_unix_connection(lambda: protocol, path)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def start_hub_server(connected: Connected, sock: socket.socket) -> asyncio.Server:
    """:func:`asyncio.start_unix_server` on a bound, listening ``sock``, with a
    :class:`DirectReader` per connection."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        return asyncio.StreamReaderProtocol(DirectReader(loop), connected, loop=loop)

    return await loop.create_unix_server(factory, sock=sock)
