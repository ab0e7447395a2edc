"""rxdb.asgi inside a real Starlette app, driven by Starlette's TestClient.

``with TestClient(app)`` runs the lifespan and the requests on an event loop in a portal
thread: the databases, built before that loop exists, bind to it on startup — as they bind to
the server's loop in production.
"""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

with warnings.catch_warnings():
    # Starlette >= 1.10 asks for httpx2 and warns when its TestClient falls back on httpx,
    # which the test extra installs; the fallback works the same.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

import rxdb
from rxdb.asgi import LifespanMiddleware, lifespan


def make_routes(db: rxdb.Database) -> list[Route]:
    """Routes of an app whose ``db`` would be a module-level global in real code."""

    async def add(request: Request) -> Response:
        await db.execute("INSERT INTO notes(text) VALUES (?)", (request.query_params["text"],))
        return PlainTextResponse("ok")

    async def notes(request: Request) -> Response:
        rows = await db.fetch_all("SELECT text FROM notes ORDER BY id")
        return JSONResponse([row["text"] for row in rows])

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            # One value, then the stream ends: a bounded SSE response.
            async for rows in db.watch("SELECT count(*) FROM notes"):
                yield f"data: {json.dumps(rows[0][0])}\n\n"
                break

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def subscribers(request: Request) -> Response:
        stats = db.watch("SELECT count(*) FROM notes").statistics()
        return JSONResponse(stats.subscribers)

    return [
        Route("/add", add, methods=["POST"]),
        Route("/notes", notes),
        Route("/events", events),
        Route("/subscribers", subscribers),
    ]


async def create_notes(db: rxdb.Database) -> None:
    async with rxdb.open(db.path) as setup:
        await setup.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT)")


@pytest.fixture
def notes_db(tmp_path: Path) -> rxdb.Database:
    db = rxdb.Database(tmp_path / "notes.db")  # built with no loop, as at import time
    asyncio.run(create_notes(db))
    return db


class TestLifespan:
    def test_startup_connects_and_shutdown_closes(self, notes_db: rxdb.Database) -> None:
        before = set(threading.enumerate())
        app = Starlette(routes=make_routes(notes_db), lifespan=lifespan(notes_db))
        with TestClient(app) as client:
            assert client.post("/add", params={"text": "hello"}).text == "ok"
            assert client.get("/notes").json() == ["hello"]
        assert notes_db.closed
        assert set(threading.enumerate()) - before == set()

    def test_sse_route_reads_one_watched_value_after_a_write(self, notes_db: rxdb.Database) -> None:
        app = Starlette(routes=make_routes(notes_db), lifespan=lifespan(notes_db))
        with TestClient(app) as client:
            client.post("/add", params={"text": "a"})
            client.post("/add", params={"text": "b"})
            with client.stream("GET", "/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                assert list(response.iter_lines()) == ["data: 2", ""]
            assert client.get("/subscribers").json() == 0  # break released the watch
        assert notes_db.closed

    def test_named_databases_are_in_request_state(
        self, notes_db: rxdb.Database, tmp_path: Path
    ) -> None:
        cache = rxdb.Database(":memory:")

        async def which(request: Request) -> Response:
            main: rxdb.Database = request.state.main
            row = await request.state.cache.fetch_one("SELECT 41 + 1")
            return JSONResponse([main is notes_db, row[0] if row else None])

        app = Starlette(
            routes=[Route("/which", which)], lifespan=lifespan(main=notes_db, cache=cache)
        )
        with TestClient(app) as client:
            assert client.get("/which").json() == [True, 42]
        assert notes_db.closed
        assert cache.closed

    def test_failing_database_fails_startup_and_closes_the_others(
        self, notes_db: rxdb.Database, tmp_path: Path
    ) -> None:
        before = set(threading.enumerate())
        broken = rxdb.Database(tmp_path / "no" / "such" / "dir" / "x.db")
        later = rxdb.Database(tmp_path / "later.db")
        app = Starlette(lifespan=lifespan(notes_db, broken, later))
        with pytest.raises(rxdb.OperationalError, match="unable to open"), TestClient(app):
            pass
        assert notes_db.closed  # connected first, then closed by the failure
        assert not later.closed  # never connected: nothing to close
        assert set(threading.enumerate()) - before == set()

    def test_failing_close_still_closes_the_others(
        self, notes_db: rxdb.Database, tmp_path: Path
    ) -> None:
        class Failing(rxdb.Database):
            async def close(self) -> None:
                await super().close()
                raise RuntimeError("close failed")

        first, last = rxdb.Database(tmp_path / "first.db"), Failing(tmp_path / "last.db")
        app = Starlette(lifespan=lifespan(first, notes_db, last))
        with pytest.raises(RuntimeError, match="close failed"), TestClient(app):
            pass
        assert [first.closed, notes_db.closed, last.closed] == [True, True, True]


class TestLifespanMiddleware:
    def test_bare_asgi_app(self, notes_db: rxdb.Database) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                raise ValueError(f"this app only speaks http, not {scope['type']}")
            row = await notes_db.fetch_one("SELECT count(*) FROM notes")
            body = json.dumps(row[0] if row else None).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        with TestClient(LifespanMiddleware(app, notes_db)) as client:
            assert client.get("/").json() == 0
        assert notes_db.closed

    def test_failing_database_fails_startup(self, tmp_path: Path) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError("never reached")

        broken = rxdb.Database(tmp_path / "no" / "such" / "dir" / "x.db")
        with pytest.raises(rxdb.OperationalError), TestClient(LifespanMiddleware(app, broken)):
            pass
