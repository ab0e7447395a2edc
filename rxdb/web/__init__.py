"""rxdb where web apps live: watches as Server-Sent Events and WebSocket messages.

Needs Starlette (``pip install 'rxdb[web]'``, or FastAPI, which brings it); ``import rxdb``
never imports this package or Starlette. docs/web.md has the recipes.
"""

from __future__ import annotations

try:
    import starlette as _starlette  # noqa: F401  (only to say what is missing, once)
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        "rxdb.web needs Starlette: pip install 'rxdb[web]' (FastAPI brings it too)",
        name=missing.name,
    ) from missing

from rxdb.encoding import jsonable as jsonable
from rxdb.encoding import to_json as to_json
from rxdb.web.sse import EventSourceResponse as EventSourceResponse
from rxdb.web.websocket import send_stream as send_stream

__all__ = ("EventSourceResponse", "jsonable", "send_stream", "to_json")
