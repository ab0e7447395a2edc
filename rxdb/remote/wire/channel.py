"""One conversation over a framed stream: the request/response and keepalive layer that the
client, the server's sessions and the hub's links all use.

A side sends with :meth:`Channel.send` and receives in :meth:`Channel.converse`, one loop that
does what every role needs alike: answer a ping with a pong, ping the peer itself if asked
to, give the peer up after ``timeout`` seconds of silence (a half-open connection -- a cable
pulled, a host gone -- never reports an error: silence is the only sign), stop at a goodbye,
and settle the calls this side made (:meth:`Channel.call`) when their answers come. Every
other message goes to the role's own handler, which raises :class:`~rxdb.errors.ProtocolError`
for a message its role does not take.

A channel belongs to one event loop and one connection; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from rxdb.errors import ProgrammingError, ProtocolError
from rxdb.remote.wire.errors import error_from_wire, error_to_wire
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD, encode_frame
from rxdb.remote.wire.messages import (
    Failure,
    Goodbye,
    Message,
    Ping,
    Pong,
    Request,
    Response,
    decode_message,
    encode_message,
)
from rxdb.remote.wire.stream import FramedStream

if TYPE_CHECKING:
    from rxdb.remote.wire.operations import Operation

__all__ = ("KEEPALIVE", "Channel", "Handler", "Keepalive", "checked_payload")

Handler = Callable[[Message, bytes], None]
"""What a role does with a message the channel does not handle itself (it also gets the
payload, which a hub relays as it came)."""


@dataclass(slots=True)
class Keepalive:
    """How a side tells a dead peer from a quiet one (mutable, for tests): the side that
    pings sends one every ``interval`` seconds, the other answers, and either gives the peer
    up after ``timeout`` seconds without a message."""

    interval: float = 10.0
    timeout: float = 30.0


KEEPALIVE: Final = Keepalive()
"""Server mode's figures: the client pings, the server answers; either side gives up after
30 s of silence (the server then rolls the client's blocks back; the client fails its calls
and, if asked to, reconnects). The hub has its own (:data:`rxdb.remote.hub.TUNING`)."""


def checked_payload(message: Message, what: str = "message") -> bytes:
    """``message`` encoded, no bigger than a peer accepts.

    :raises ProtocolError: if it cannot be encoded or is over the frame limit.
    """
    payload = encode_message(message)
    if len(payload) > DEFAULT_MAX_PAYLOAD:
        raise ProtocolError(
            f"the {what} is {len(payload)} bytes, over the frame limit of "
            f"{DEFAULT_MAX_PAYLOAD}; {'send' if what == 'request' else 'fetch'} it in "
            "smaller parts"
        )
    return payload


class Channel:
    """Messages in and out of one connection, and the answers this side waits for.

    :param max_buffered: drop the peer once this many bytes wait to be sent to it (a peer
        that does not read must not make us buffer without bound); ``None``: no limit.
    """

    __slots__ = ("_calls", "_ids", "_issued", "max_buffered", "stream")

    def __init__(self, stream: FramedStream, *, max_buffered: int | None = None) -> None:
        self.stream = stream
        self.max_buffered = max_buffered
        self._ids = itertools.count(1)
        self._issued = 0
        self._calls: dict[int, asyncio.Future[Any]] = {}

    # -- out ------------------------------------------------------------------------------

    def send(self, message: Message) -> bool:
        """Queue ``message``; ``False`` if the connection is closing (or the peer was just
        dropped as too slow).

        :raises ProtocolError: if it cannot be encoded.
        """
        return self.send_frame(encode_frame(encode_message(message)))

    def send_frame(self, frame: bytes) -> bool:
        """Queue a frame as it is (a hub relays what it received)."""
        return self.stream.send_frame(frame, self.max_buffered)

    def call(self, operation: Operation) -> asyncio.Future[Any]:
        """Ask the peer to run ``operation``; the future settles with its answer (the
        result, or the error it raised, rebuilt as the same rxdb error).

        :raises rxdb.ProgrammingError: if it cannot be sent: a value that cannot travel, or
            a request over the frame limit.
        """
        request_id = next(self._ids)
        try:
            payload = checked_payload(Request(request_id, operation), "request")
        except ProtocolError as error:
            raise ProgrammingError(f"cannot send this to the rxdb server: {error}") from error
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._issued = request_id
        self._calls[request_id] = future
        self.send_frame(encode_frame(payload))
        return future

    def answer(self, request_id: int, result: Any) -> None:
        """Answer a request; a result that cannot travel, or is too big, becomes its failure
        (never a broken connection)."""
        try:
            payload = checked_payload(Response(request_id, result), "result")
        except ProtocolError as error:
            self.fail(request_id, error)
            return
        self.send_frame(encode_frame(payload))

    def fail(self, request_id: int, error: BaseException) -> None:
        """Answer a request with the error it raised."""
        self.send(Failure(request_id, error_to_wire(error)))

    def fail_calls(self, error: Exception) -> None:
        """Fail every call still waiting for its answer (the connection is gone: whether the
        peer ran it is unknown)."""
        calls, self._calls = self._calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(error)

    # -- in -------------------------------------------------------------------------------

    async def receive(self, patience: float | None = None) -> Message | None:
        """The next message, or ``None`` at the end of the stream (for handshakes, before
        :meth:`converse`).

        :raises ProtocolError: for malformed bytes.
        :raises TimeoutError: after ``patience`` seconds without one.
        """
        return await self.stream.receive(patience)

    async def converse(
        self, handle: Handler, *, patience: float, ping_every: float | None = None
    ) -> str | None:
        """Receive until the conversation ends; return the peer's goodbye reason, or
        ``None`` when the stream ended without one.

        :param handle: called with every message that is not a ping, pong, goodbye or an
            answer to one of this side's calls.
        :param patience: seconds of silence after which the peer is taken for dead.
        :param ping_every: ping the peer this often (the side that keeps the other alive).
        :raises TimeoutError: when the peer was silent for ``patience`` seconds.
        :raises ProtocolError: for a malformed message, an answer to a call never made, or
            whatever ``handle`` refuses.
        :raises OSError: when the connection fails.
        """
        pinger = None
        if ping_every is not None:
            pinger = asyncio.get_running_loop().create_task(self._ping(ping_every))
        try:
            while True:
                payload = await self.stream.receive_payload(patience)
                if payload is None:
                    return None
                message = decode_message(payload)
                if isinstance(message, Ping):
                    self.send(Pong(message.nonce))
                elif isinstance(message, Response | Failure):
                    self._settle(message)
                elif isinstance(message, Goodbye):
                    return message.reason
                elif not isinstance(message, Pong):
                    handle(message, payload)
        finally:
            if pinger is not None:
                pinger.cancel()

    def _settle(self, answer: Response | Failure) -> None:
        if not 0 < answer.id <= self._issued:
            raise ProtocolError(f"an answer to request {answer.id}, which was never sent")
        future = self._calls.pop(answer.id, None)
        if future is None or future.done():
            return  # answered already, or its caller gave up
        if isinstance(answer, Response):
            future.set_result(answer.result)
        else:
            future.set_exception(error_from_wire(answer.error))

    async def _ping(self, interval: float) -> None:
        for nonce in itertools.count(1):
            await asyncio.sleep(interval)
            self.send(Ping(nonce))
