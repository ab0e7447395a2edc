"""rxdb.web.send_stream: a watch over a WebSocket, each result one JSON text message; the
subscription ends with the connection (tests/rxdb/web_peer.py plays the client)."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

import rxdb
from rxdb.asgi import lifespan
from rxdb.web import send_stream
from tests.conftest import WAIT, settle
from tests.rxdb.web_peer import Message, Peer, served, websocket_peer

with warnings.catch_warnings():
    # Starlette >= 1.10 asks for httpx2 and warns when its TestClient falls back on httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

ORDERS = "SELECT id, item FROM orders ORDER BY id"


@pytest.fixture
async def orders_db(db: rxdb.Database) -> rxdb.Database:
    await db.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)")
    return db


def app_for(db: rxdb.Database, sql: str = ORDERS) -> Starlette:
    async def orders(websocket: WebSocket) -> None:
        await send_stream(websocket, db.watch(sql))

    return Starlette(routes=[WebSocketRoute("/ws", orders)])


def subscribers(db: rxdb.Database, sql: str = ORDERS) -> int:
    return db.watch(sql).statistics().subscribers


def closes(peer: Peer) -> list[Message]:
    return [m for m in peer.sent if m["type"] == "websocket.close"]


async def test_each_result_is_a_json_message_with_named_columns(
    orders_db: rxdb.Database,
) -> None:
    peer, scope = websocket_peer()
    async with served(app_for(orders_db), peer, scope):
        await peer.wait_for(lambda: len(peer.texts()) == 1)
        await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
        await peer.wait_for(lambda: len(peer.texts()) == 2)
        assert subscribers(orders_db) == 1
    assert peer.sent[0]["type"] == "websocket.accept"
    assert peer.texts() == [[], [{"id": 1, "item": "tea"}]]
    assert subscribers(orders_db) == 0


async def test_client_leaving_while_nothing_is_sent_releases_the_watch(
    orders_db: rxdb.Database,
) -> None:
    peer, scope = websocket_peer()
    async with served(app_for(orders_db), peer, scope) as task:
        await peer.wait_for(lambda: len(peer.texts()) == 1)
        peer.leave()
        async with asyncio.timeout(WAIT):
            await task
        assert subscribers(orders_db) == 0
    assert closes(peer) == []


async def test_client_leaving_in_the_middle_of_a_send(orders_db: rxdb.Database) -> None:
    peer, scope = websocket_peer()
    peer.stall_at = 2  # accept, the first result, then a send that never completes
    async with served(app_for(orders_db), peer, scope):
        await peer.wait_for(lambda: len(peer.texts()) == 1)
        await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
        async with asyncio.timeout(WAIT):
            await peer.stalled.wait()
    assert peer.stalled_send_cancelled
    assert subscribers(orders_db) == 0


async def test_failed_send_ends_quietly(orders_db: rxdb.Database) -> None:
    peer, scope = websocket_peer()
    peer.fail_at = 2
    async with served(app_for(orders_db), peer, scope) as task:
        await peer.wait_for(lambda: len(peer.texts()) == 1)
        await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
        async with asyncio.timeout(WAIT):
            await task
        assert subscribers(orders_db) == 0


async def test_client_that_never_reads_gets_the_newest_result_not_a_backlog(
    orders_db: rxdb.Database,
) -> None:
    peer, scope = websocket_peer()
    peer.stall_at = 2
    async with served(app_for(orders_db), peer, scope):
        await peer.wait_for(lambda: len(peer.texts()) == 1)
        await orders_db.execute("INSERT INTO orders(item) VALUES ('first')")
        async with asyncio.timeout(WAIT):
            await peer.stalled.wait()
        for number in range(20):
            await orders_db.execute("INSERT INTO orders(item) VALUES (?)", (f"item {number}",))
            await settle(orders_db)
        assert orders_db.watch(ORDERS).statistics().emissions >= 22
        peer.release()
        await peer.wait_for(lambda: len(peer.texts()[-1]) == 21)
    # the first result, the one whose send stalled, then the newest: nothing in between
    assert len(peer.texts()) == 3
    assert subscribers(orders_db) == 0


async def test_messages_from_the_client_are_ignored(orders_db: rxdb.Database) -> None:
    peer, scope = websocket_peer()
    peer._incoming.append({"type": "websocket.receive", "text": "hello"})
    async with served(app_for(orders_db), peer, scope):
        await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
        await peer.wait_for(lambda: peer.texts()[-1:] == [[{"id": 1, "item": "tea"}]])
    assert subscribers(orders_db) == 0


async def test_query_error_closes_with_1011_and_the_error(orders_db: rxdb.Database) -> None:
    sql = "SELECT * FROM missing"
    peer, scope = websocket_peer()
    async with served(app_for(orders_db, sql), peer, scope) as task:
        async with asyncio.timeout(WAIT):
            await task
    [close] = closes(peer)
    assert close["code"] == 1011
    assert close["reason"].startswith("OperationalError: no such table: missing")
    assert len(close["reason"].encode()) <= 123
    assert subscribers(orders_db, sql) == 0


async def test_database_closing_closes_with_1000(orders_db: rxdb.Database) -> None:
    peer, scope = websocket_peer()
    async with served(app_for(orders_db), peer, scope) as task:
        await peer.wait_for(lambda: len(peer.texts()) == 1)
        await orders_db.close()
        async with asyncio.timeout(WAIT):
            await task
    assert [close["code"] for close in closes(peer)] == [1000]


async def test_a_fastapi_websocket_endpoint(orders_db: rxdb.Database) -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def orders(websocket: WebSocket) -> None:
        await websocket.accept()  # accepted already: send_stream leaves it
        await send_stream(websocket, orders_db.watch(ORDERS))

    peer, scope = websocket_peer()
    scope["app"] = app
    async with served(app, peer, scope):
        await peer.wait_for(lambda: len(peer.texts()) == 1)
    assert [m["type"] for m in peer.sent].count("websocket.accept") == 1
    assert subscribers(orders_db) == 0


def test_starlette_test_client_closing_the_socket_releases_the_watch(tmp_path: Path) -> None:
    db = rxdb.Database(tmp_path / "orders.db")

    async def subscriber_count(request: Request) -> JSONResponse:
        return JSONResponse(subscribers(db))

    async def orders(websocket: WebSocket) -> None:
        await send_stream(websocket, db.watch(ORDERS))

    async def create(request: Request) -> JSONResponse:
        await db.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)")
        await db.execute("INSERT INTO orders(item) VALUES ('tea')")
        return JSONResponse(None)

    routes = [
        Route("/create", create, methods=["POST"]),
        Route("/subscribers", subscriber_count),
        WebSocketRoute("/ws", orders),
    ]
    with TestClient(Starlette(routes=routes, lifespan=lifespan(db))) as client:
        client.post("/create")
        with client.websocket_connect("/ws") as websocket:
            assert websocket.receive_json() == [{"id": 1, "item": "tea"}]
            assert client.get("/subscribers").json() == 1
        # TestClient's close is handed to the app; the app's task ends with the close.
        assert client.get("/subscribers").json() == 0
    assert db.closed


def test_source_must_be_a_stream() -> None:
    async def run() -> None:
        with pytest.raises(rxdb.ProgrammingError, match="source must be an rxdb stream"):
            await send_stream(None, 42)  # type: ignore[arg-type]

    asyncio.run(run())
