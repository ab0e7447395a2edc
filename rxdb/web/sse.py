"""A watch as a Server-Sent Events response, for Starlette and FastAPI.

``EventSourceResponse`` is a Starlette ``Response``, so a FastAPI endpoint can ``return``
it. Each result goes out as one event (``id:`` then ``data:`` with the result as JSON, rows
as objects keyed by column name); a comment line keeps an idle connection from being cut by
proxies; the subscription ends the moment the client goes away (``http.disconnect``, or a
send that fails), whether or not anything was being sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rxdb.encoding import to_json
from rxdb.errors import ProgrammingError
from rxdb.streams.pacing import check_interval
from rxdb.web.relay import Ending, Source, check_source, relay

__all__ = ("EventSourceResponse",)

LOG = logging.getLogger("rxdb.web")

_KEEPALIVE = b": keep-alive\n\n"


class EventSourceResponse(Response):
    """Stream ``source`` (``db.watch(...)`` or any rxdb stream) to a browser's ``EventSource``.

    Events carry increasing ids from 1 (from one past a reconnecting browser's
    ``Last-Event-ID``). A client that reads slowly or not at all never makes results queue
    up: a newer result replaces one not yet sent. If the stream fails (the query's table was
    dropped), one ``event: error`` whose data is ``{"error": <class name>, "message": ...}``
    goes out and the response ends; when the stream completes (the database closed), the
    response ends. A browser reconnects after an ended response unless the page calls
    ``source.close()``.

    Must be served on the event loop the watched database belongs to (the server's loop,
    where the lifespan of :mod:`rxdb.asgi` opens databases).

    :param source: the stream to send: an Observable or an async iterable.
    :param event: the event name (``event:`` line); None sends unnamed events, which the
        browser delivers to ``onmessage``.
    :param keepalive: seconds without an event after which a comment line is sent; None
        sends none.
    :param retry: milliseconds the browser should wait before reconnecting (``retry:``);
        None leaves the browser's default.
    :param encode: turns each value into the text of its ``data:`` line (one line: no
        line breaks); the default writes JSON with column names.
    :param headers: more response headers.
    :raises rxdb.ProgrammingError: for an argument of the wrong type or out of range, naming it.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        source: Source[Any],
        *,
        event: str | None = None,
        keepalive: float | None = 15.0,
        retry: int | None = None,
        encode: Callable[[Any], str] = to_json,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        check_source(source)
        if event is not None and (not isinstance(event, str) or not _one_line(event)):
            raise ProgrammingError(f"event must be a str without line breaks, not {event!r}")
        if keepalive is not None:
            keepalive = check_interval(keepalive, "keepalive")
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry <= 0
        ):
            raise ProgrammingError(
                f"retry must be a positive int (milliseconds) or None, not {retry!r}"
            )
        if not callable(encode):
            raise ProgrammingError(f"encode must be callable, not {type(encode).__name__}")
        self.source = source
        self.event = event
        self.keepalive = keepalive
        self.retry = retry
        self.encode = encode
        self.status_code = status_code
        self.background = None
        # no-cache: a cached event stream is a dead one; X-Accel-Buffering: nginx would
        # otherwise hold events back until its buffer fills.
        self.init_headers(
            {"cache-control": "no-cache", "x-accel-buffering": "no", **(headers or {})}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        next_id = _last_event_id(scope) + 1

        async def body(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        async def deliver(value: Any) -> None:
            nonlocal next_id
            data = self.encode(value)
            if not _one_line(data):
                raise ProgrammingError("encode must return one line of text (no line breaks)")
            await body(self._event(next_id, self.event, data))
            next_id += 1

        async def idle() -> None:
            await send({"type": "http.response.body", "body": _KEEPALIVE, "more_body": True})

        async def failed(error: Exception) -> None:
            nonlocal next_id
            LOG.warning("a streamed watch failed; the client gets an error event", exc_info=error)
            data = to_json(error)
            await body(self._event(next_id, "error", data))
            next_id += 1

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            if self.retry is not None:
                await body(f"retry: {self.retry}\n\n")
        except OSError:  # the client left before the first byte: nothing was subscribed
            return
        ending = await relay(
            self.source,
            deliver,
            gone=gone,
            idle=idle if self.keepalive else None,
            idle_after=self.keepalive,
            failed=failed,
        )
        if ending is not Ending.GONE:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                return

    @staticmethod
    def _event(event_id: int, name: str | None, data: str) -> str:
        named = "" if name is None else f"event: {name}\n"
        return f"id: {event_id}\n{named}data: {data}\n\n"


def _one_line(text: str) -> bool:
    return "\n" not in text and "\r" not in text


def _last_event_id(scope: Scope) -> int:
    """The id a reconnecting browser saw last (0 if none): ids keep increasing across it."""
    for name, value in scope.get("headers", ()):
        if name == b"last-event-id":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else 0
    return 0
