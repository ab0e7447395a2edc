"""Open and close databases with an ASGI application.

A :class:`~rxdb.Database` is usually built at import time, before any event loop exists; the
server's loop only appears when the application starts. The lifespan is the one place that
runs on that loop before the first request and after the last one, so that is where the
databases connect (and bind to the loop) and where they close.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeAlias, overload

from rxdb.database import Database

__all__ = ("LifespanMiddleware", "lifespan")

_Scope: TypeAlias = MutableMapping[str, Any]
_Message: TypeAlias = MutableMapping[str, Any]
_Receive: TypeAlias = Callable[[], Awaitable[_Message]]
_Send: TypeAlias = Callable[[_Message], Awaitable[None]]
_ASGIApp: TypeAlias = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


@overload
def lifespan(*databases: Database) -> Callable[[object], AbstractAsyncContextManager[None]]: ...


@overload
def lifespan(
    *databases: Database, **named: Database
) -> Callable[[object], AbstractAsyncContextManager[dict[str, Database]]]: ...


def lifespan(
    *databases: Database, **named: Database
) -> Callable[[object], AbstractAsyncContextManager[dict[str, Database] | None]]:
    """Make a lifespan for ``Starlette(lifespan=...)`` / ``FastAPI(lifespan=...)``.

    On startup every database connects, in order; if one fails, those already connected are
    closed and the error propagates, so the server refuses to start rather than serve with a
    missing database. On shutdown all of them close, in reverse order; a failing close does not
    stop the others, and its error is raised once all have been tried.

    With keyword arguments, the lifespan yields them as the lifespan state, so a handler
    reaches them as ``request.state.<name>``.

    :param databases: databases to open and close (positional ones are not put in the state).
    :param named: databases to open and close and also expose by name in the state.
    """
    everything = _unique([*databases, *named.values()])
    state = dict(named) if named else None

    @asynccontextmanager
    async def run(app: object) -> AsyncIterator[dict[str, Database] | None]:
        async with _opened(everything):
            yield state

    return run


@asynccontextmanager
async def _opened(databases: list[Database]) -> AsyncIterator[None]:
    """Connect ``databases`` in order for the duration of the block, then close them all."""
    # The exit stack gives both promises at once: a failed connect unwinds only the databases
    # already connected, and every close runs even if an earlier one raised.
    async with AsyncExitStack() as stack:
        for database in databases:
            await database.connect()
            stack.push_async_callback(database.close)
        yield


class LifespanMiddleware:
    """Answer the ASGI ``lifespan`` scope by opening and closing databases.

    For frameworks without a lifespan parameter (a bare ASGI app, Django's ``ASGIHandler``).
    The wrapped application never sees the ``lifespan`` scope: an application with startup
    hooks of its own should use :func:`lifespan` instead. Named databases are put into the
    server's lifespan state (``scope["state"]``) when the server provides one.
    """

    def __init__(self, app: _ASGIApp, *databases: Database, **named: Database) -> None:
        self.app = app
        self._databases = _unique([*databases, *named.values()])
        self._named = named

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await receive()  # lifespan.startup
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(_opened(self._databases))
        except Exception as error:
            await send({"type": "lifespan.startup.failed", "message": repr(error)})
            raise
        if self._named and isinstance(scope.get("state"), MutableMapping):
            scope["state"].update(self._named)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await stack.aclose()
        except Exception as error:
            await send({"type": "lifespan.shutdown.failed", "message": repr(error)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


def _unique(databases: list[Database]) -> list[Database]:
    # The same database passed twice (positionally and by name) connects and closes once.
    unique: dict[int, Database] = {}
    for database in databases:
        unique.setdefault(id(database), database)
    return list(unique.values())
