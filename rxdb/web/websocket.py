"""A watch over a WebSocket, for Starlette and FastAPI: each result is one JSON text message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from rxdb.encoding import to_json
from rxdb.errors import ProgrammingError
from rxdb.web.relay import Ending, Source, check_source, relay

__all__ = ("send_stream",)

# Close codes (RFC 6455): the stream ended normally; the server met an error.
_NORMAL, _SERVER_ERROR = 1000, 1011
_REASON_BYTES = 123  # the most a close frame's reason may hold


async def send_stream(
    websocket: WebSocket, source: Source[Any], *, encode: Callable[[Any], str] = to_json
) -> None:
    """Send each value of ``source`` as a text message until the client goes away.

    Accepts the connection if the endpoint has not. Returns when the client disconnects
    (the subscription is released then, also in the middle of a send), when the stream
    completes (the socket is closed with code 1000), or when it fails (closed with code 1011
    and the error's class and message as the close reason). A client that reads slowly never
    makes results queue up: a newer result replaces one not yet sent. Messages the client
    sends are read and ignored.

    :param source: ``db.watch(...)`` or any rxdb stream (an Observable or an async iterable).
    :param encode: turns each value into a message's text; the default writes JSON with
        column names (rows as objects).
    :raises rxdb.ProgrammingError: if ``source`` is not a stream or ``encode`` not callable.
    """
    check_source(source)
    if not callable(encode):
        raise ProgrammingError(f"encode must be callable, not {type(encode).__name__}")
    if websocket.client_state is WebSocketState.CONNECTING:
        await websocket.accept()

    async def deliver(value: Any) -> None:
        await websocket.send_text(encode(value))

    async def failed(error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}".encode()[:_REASON_BYTES]
        await websocket.close(_SERVER_ERROR, reason.decode(errors="ignore"))

    async def gone() -> None:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    ending = await relay(
        source, deliver, gone=gone, failed=failed, closed=(OSError, WebSocketDisconnect)
    )
    if ending is Ending.COMPLETED:
        try:
            await websocket.close(_NORMAL)
        except (OSError, WebSocketDisconnect):
            return
