"""One client as an ASGI server presents it to an app: a ``receive`` that reports the client
leaving when the test says so, and a ``send`` that records, stalls or fails on request.

Driving the app's ASGI callable directly (rather than through an HTTP client, which buffers a
whole response before handing it over) lets a test watch an endless stream event by event,
and decide exactly when the client stops reading or goes away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.conftest import WAIT

Message = dict[str, Any]


class Peer:
    """The client's side of one ASGI connection.

    :param incoming: what ``receive`` hands out first (the request, a WebSocket connect).
    :param leaving: the message ``receive`` returns once :meth:`leave` was called.
    """

    def __init__(self, incoming: list[Message], leaving: Message) -> None:
        self.sent: list[Message] = []
        self.stall_at: int | None = None  # the send with this index waits for release()
        self.fail_at: int | None = None  # the send with this index raises OSError
        self.stalled = asyncio.Event()
        self.stalled_send_cancelled = False
        self._release = asyncio.Event()
        self._incoming = list(incoming)
        self._leaving = leaving
        self._left = asyncio.Event()
        self._changed = asyncio.Event()

    async def receive(self) -> Message:
        if self._incoming:
            return self._incoming.pop(0)
        await self._left.wait()
        return self._leaving

    async def send(self, message: Message) -> None:
        index = len(self.sent)
        if index == self.fail_at:
            raise OSError("connection reset by peer")
        if index == self.stall_at:
            self.stalled.set()
            try:
                await self._release.wait()
            except asyncio.CancelledError:
                self.stalled_send_cancelled = True
                raise
        self.sent.append(message)
        self._changed.set()

    def release(self) -> None:
        """Let the stalled send through (the client reads again)."""
        self.stall_at = None
        self._release.set()

    def leave(self) -> None:
        """The client goes away (a closed tab)."""
        self._left.set()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    # HTTP (Server-Sent Events)

    def body(self) -> str:
        return "".join(m["body"].decode() for m in self.sent if m["type"] == "http.response.body")

    def events(self) -> list[dict[str, str]]:
        """The complete events so far (blocks with data), each as its fields."""
        events = []
        for block in self.body().split("\n\n")[:-1]:
            fields = {}
            for line in block.split("\n"):
                if line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value
            if "data" in fields:
                events.append(fields)
        return events

    def data(self) -> list[Any]:
        """The JSON data of every complete event so far."""
        return [json.loads(event["data"]) for event in self.events()]

    def ended(self) -> bool:
        return any(
            m["type"] == "http.response.body" and not m.get("more_body", False) for m in self.sent
        )

    # WebSocket

    def texts(self) -> list[Any]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]


def http_peer(
    headers: list[tuple[bytes, bytes]] | None = None, path: str = "/events"
) -> tuple[Peer, Message]:
    """A GET request's client and its scope."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}
    return Peer([request], {"type": "http.disconnect"}), scope


def websocket_peer(path: str = "/ws") -> tuple[Peer, Message]:
    """A WebSocket client and its scope."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    return Peer(
        [{"type": "websocket.connect"}], {"type": "websocket.disconnect", "code": 1001}
    ), scope


@asynccontextmanager
async def served(app: Any, peer: Peer, scope: Message) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``app`` for one client; at the end the client leaves and the app must return."""
    task = asyncio.create_task(app(scope, peer.receive, peer.send))
    try:
        yield task
    finally:
        peer.leave()
        async with asyncio.timeout(WAIT):
            await task
