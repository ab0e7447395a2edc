"""A live order board: a FastAPI page that shows new orders and their total as they commit.

Three writers, one file: a background task of this server adds an order every second or so,
the page's button adds one through an endpoint, and ``writer.py`` (a plain ``sqlite3``
program, no rxdb) adds orders from another process. Every commit reaches the browser over
Server-Sent Events (``rxdb.web.EventSourceResponse``), or over WebSockets with ``?via=ws``
(``rxdb.web.send_stream``); closing the tab releases its watches (see ``/stats``).

Run it (needs ``pip install 'rxdb[examples]'``)::

    python examples/web/app.py --db orders.db          # then open http://127.0.0.1:8000/
    python examples/web/writer.py orders.db --count 5  # in another terminal
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

import rxdb
from rxdb.asgi import lifespan
from rxdb.web import EventSourceResponse, send_stream

PAGE = Path(__file__).with_name("index.html")

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    item TEXT NOT NULL,
    qty INTEGER NOT NULL,
    price REAL NOT NULL,
    source TEXT NOT NULL,  -- who wrote it: worker, page or sqlite3
    created REAL NOT NULL  -- time.time() at the write, so the page can show the delay
)
"""

# The watched queries: the newest orders, and the total over all of them.
QUERIES = {
    "orders": "SELECT id, item, qty, price, source, created FROM orders ORDER BY id DESC LIMIT 15",
    "total": "SELECT count(*) AS orders, coalesce(sum(qty * price), 0) AS total FROM orders",
}

Watched = Literal["orders", "total"]

ITEMS = ("tea", "cake", "scone", "coffee", "jam")


def create_app(path: str, worker_every: float | None = 1.0) -> FastAPI:
    """The app over the database file ``path``; the worker writes every ``worker_every``
    seconds (None: no worker)."""
    db = rxdb.Database(path)  # opened by the lifespan, on the server's loop
    opened = lifespan(db)

    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with opened(app):
            await db.execute(SCHEMA)
            worker = None if worker_every is None else asyncio.create_task(work(worker_every))
            try:
                yield
            finally:
                if worker is not None:
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker

    async def work(every: float) -> None:
        for number in itertools.count(1):
            await add_order(f"{random.choice(ITEMS)} #{number}", "worker")
            await asyncio.sleep(every)  # the pace of the demo's work, not a wait for anything

    async def add_order(item: str, source: str) -> None:
        await db.execute(
            "INSERT INTO orders (item, qty, price, source, created) VALUES (?, ?, ?, ?, ?)",
            (item, random.randint(1, 3), random.choice((2.5, 3.0, 4.25)), source, time.time()),
        )

    app = FastAPI(lifespan=run)

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/events/{name}")
    async def events(name: Watched) -> EventSourceResponse:
        return EventSourceResponse(db.watch(QUERIES[name]), retry=1000)

    @app.websocket("/ws/{name}")
    async def socket(websocket: WebSocket, name: Watched) -> None:
        await send_stream(websocket, db.watch(QUERIES[name]))

    @app.post("/orders")
    async def order() -> None:
        await add_order(random.choice(ITEMS), "page")

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        """How many clients watch each query now (0 once every tab is closed)."""
        return {name: db.watch(sql).statistics().subscribers for name, sql in QUERIES.items()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="orders.db", help="the SQLite file (made if missing)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--worker-every", type=float, default=1.0, help="seconds between orders")
    arguments = parser.parse_args()
    app = create_app(arguments.db, arguments.worker_every)
    uvicorn.run(app, host="127.0.0.1", port=arguments.port)


if __name__ == "__main__":
    main()
