"""Length-prefixed frames: how one message is cut out of a byte stream.

A frame is an 8-byte header -- the magic ``b"RXD"``, the frame-layout version, and the
payload length as an unsigned 32-bit big-endian integer -- followed by that many payload
bytes. The header comes first so that a receiver can refuse an oversized frame before it
buffers a single byte of the body.
"""

from __future__ import annotations

import struct

from rxdb.errors import ProgrammingError, ProtocolError

__all__ = (
    "DEFAULT_MAX_PAYLOAD",
    "FRAME_VERSION",
    "HANDSHAKE_MAX_PAYLOAD",
    "HEADER_SIZE",
    "MAGIC",
    "FrameDecoder",
    "encode_frame",
)

MAGIC = b"RXD"
FRAME_VERSION = 1
HEADER_SIZE = 8
# 16 MiB carries a sizeable watch result in one frame; decoding multiplies a frame's size by
# up to ~75 in Python objects (an empty msgpack map is 1 byte, a dict ~72), so this is also
# the knob that bounds what one peer can make us allocate.
DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024
# Before a peer has shown its token it gets only this much: a Hello is tiny, and a stranger
# must not be able to make the server allocate more than a few MiB.
HANDSHAKE_MAX_PAYLOAD = 64 * 1024

_HEADER = struct.Struct(">3sBI")
_PREFIX = MAGIC + bytes((FRAME_VERSION,))
_LENGTH = struct.Struct(">I")


def encode_frame(payload: bytes) -> bytes:
    """Return ``payload`` with its frame header in front.

    :raises ProtocolError: if the payload is empty or longer than the header can declare.
    """
    if not payload:
        raise ProtocolError("a frame cannot be empty")
    if len(payload) > 0xFFFFFFFF:
        raise ProtocolError(f"payload of {len(payload)} bytes does not fit in one frame")
    return _HEADER.pack(MAGIC, FRAME_VERSION, len(payload)) + payload


class FrameDecoder:
    """Cut complete payloads out of a byte stream, fed in chunks as a socket delivers them.

    Chunks may split a frame anywhere and may hold several frames. After a
    :class:`ProtocolError` the decoder stays broken: the stream has lost its framing, so
    the only sound reaction is to close the connection.

    One decoder belongs to one connection and is not thread-safe.
    """

    __slots__ = ("_broken", "_buffer", "_expected", "max_payload")

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        """:raises rxdb.ProgrammingError: for a ``max_payload`` outside 1..2**32-1."""
        if type(max_payload) is not int or not 1 <= max_payload <= 0xFFFFFFFF:
            raise ProgrammingError(f"max_payload must be in 1..2**32-1, not {max_payload!r}")
        # Mutable on purpose: a server starts a connection at HANDSHAKE_MAX_PAYLOAD and
        # raises it once the peer has authenticated.
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._expected: int | None = None  # payload length of the frame being read
        self._broken: ProtocolError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a complete frame."""
        return len(self._buffer) + (0 if self._expected is None else HEADER_SIZE)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the next chunk of the stream; return the payloads it completed, in order.

        :raises ProtocolError: on a wrong magic or frame version, an empty frame, a declared
            length over ``max_payload``, or any use after such an error.
        """
        if self._broken is not None:
            raise ProtocolError(f"the stream is already broken: {self._broken}")
        try:
            return self._feed(data)
        except ProtocolError as error:
            self._broken = error
            self._buffer.clear()
            raise

    def _feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        buffer = self._buffer
        if (
            self._expected is None
            and not buffer
            and type(data) is bytes
            and len(data) > HEADER_SIZE
            and data.startswith(_PREFIX)
        ):
            # One whole frame in one chunk, nothing before it: the usual case of a hub
            # connection (a commit's Notify), cut out without copying it through the buffer.
            length = _LENGTH.unpack_from(data, len(_PREFIX))[0]
            if 0 < length <= self.max_payload and len(data) == HEADER_SIZE + length:
                return [data[HEADER_SIZE:]]
        buffer += data
        payloads: list[bytes] = []
        start = 0
        while True:
            available = len(buffer) - start
            if self._expected is None:
                if available < HEADER_SIZE:
                    # Refuse a bad magic as soon as its first byte arrives, instead of
                    # waiting for a header that garbage may never complete.
                    seen = bytes(buffer[start : start + min(available, len(_PREFIX))])
                    if not _PREFIX.startswith(seen):
                        raise _bad_prefix(seen)
                    break
                magic, version, length = _HEADER.unpack_from(buffer, start)
                if magic != MAGIC:
                    raise _bad_prefix(bytes(buffer[start : start + len(_PREFIX)]))
                if version != FRAME_VERSION:
                    raise ProtocolError(
                        f"frame version {version} is not supported (this side speaks "
                        f"{FRAME_VERSION})"
                    )
                if length == 0:
                    raise ProtocolError("a frame cannot be empty")
                if length > self.max_payload:
                    raise ProtocolError(
                        f"frame declares {length} bytes, over the limit of {self.max_payload}"
                    )
                self._expected = length
                start += HEADER_SIZE
                continue
            if available < self._expected:
                break
            end = start + self._expected
            payloads.append(bytes(buffer[start:end]))
            start = end
            self._expected = None
        del buffer[:start]
        return payloads


def _bad_prefix(seen: bytes) -> ProtocolError:
    if len(seen) > len(MAGIC) and seen.startswith(MAGIC):
        return ProtocolError(
            f"frame version {seen[len(MAGIC)]} is not supported (this side speaks {FRAME_VERSION})"
        )
    return ProtocolError(f"not an rxdb frame: starts with {seen!r}, expected {_PREFIX!r}")
