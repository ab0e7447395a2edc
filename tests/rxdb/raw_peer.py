"""A peer that speaks the wire by hand, for tests of what a server or hub does with bytes a
well-behaved client would never send."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import msgpack  # type: ignore[import-untyped]

from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD, encode_frame
from rxdb.remote.wire.messages import (
    PROTOCOL_VERSION,
    Failure,
    Hello,
    Message,
    Response,
    encode_message,
)
from rxdb.remote.wire.stream import FramedStream
from tests.conftest import WAIT


class RawPeer:
    """One connection to a Unix socket: raw bytes out, decoded messages in."""

    def __init__(self, stream: FramedStream) -> None:
        self.stream = stream

    def send_bytes(self, data: bytes) -> None:
        self.stream.writer.write(data)

    def send_payload(self, payload: bytes) -> None:
        self.send_bytes(encode_frame(payload))

    def send(self, message: Message) -> None:
        self.send_payload(encode_message(message))

    def hello(self, role: str = "client") -> None:
        self.send(Hello(None, role, os.getpid(), "raw"))

    def request(self, request_id: int, operation: Any) -> None:
        """A request whose operation is sent as given (``[tag, *fields]``, unchecked)."""
        self.send_payload(
            msgpack.packb([PROTOCOL_VERSION, "request", request_id, operation], use_bin_type=True)
        )

    async def receive(self) -> Message | None:
        """The next message, or ``None`` once the other side closed; a hang fails the test."""
        return await self.stream.receive(patience=WAIT)

    async def answer(self) -> Response | Failure:
        message = await self.receive()
        assert isinstance(message, Response | Failure), message
        return message

    async def wait_closed_by_peer(self) -> None:
        """Read to the end: the other side closes the connection (within WAIT s)."""
        async with asyncio.timeout(WAIT):
            with contextlib.suppress(ConnectionError):
                while await self.stream.reader.read(65536):
                    pass


@contextlib.asynccontextmanager
async def raw_peer(address: str) -> AsyncIterator[RawPeer]:
    reader, writer = await asyncio.open_unix_connection(address)
    stream = FramedStream(reader, writer, "raw", DEFAULT_MAX_PAYLOAD)
    try:
        yield RawPeer(stream)
    finally:
        await stream.close()
