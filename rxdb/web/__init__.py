"""rxdb where web apps live: watches as Server-Sent Events and WebSocket messages.

Needs Starlette (``pip install 'rxdb[web]'``, or FastAPI, which brings it); ``import rxdb``
never imports this package or Starlette. docs/web.md has the recipes.
"""

from __future__ import annotations

from rxdb.encoding import jsonable as jsonable
from rxdb.encoding import to_json as to_json
from rxdb.web.sse import EventSourceResponse as EventSourceResponse
from rxdb.web.websocket import send_stream as send_stream

__all__ = ("EventSourceResponse", "jsonable", "send_stream", "to_json")
