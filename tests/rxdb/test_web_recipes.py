"""The recipes of docs/web.md, run as written: each Python block is executed and its app
served to a client (tests/rxdb/web_peer.py), so a recipe that stops working fails here."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT
from tests.rxdb.web_peer import Peer, http_peer, websocket_peer

DOC = Path(__file__).resolve().parents[2] / "docs" / "web.md"


def recipe(section: str) -> str:
    """The first Python block under the heading ``section``."""
    text = DOC.read_text(encoding="utf-8").split(f"\n## {section}\n", 1)[1]
    return text.split("```python\n", 1)[1].split("```", 1)[0]


async def serve_until(app: Any, peer: Peer, scope: dict[str, Any], rows: int) -> None:
    """Serve one client until it has seen a result of ``rows`` rows, then let it leave."""
    task = asyncio.create_task(app(scope, peer.receive, peer.send))
    try:
        data = peer.texts if scope["type"] == "websocket" else peer.data
        await peer.wait_for(lambda: any(len(result) == rows for result in data()))
    finally:
        peer.leave()
        async with asyncio.timeout(WAIT):
            await task


@pytest.mark.parametrize(
    ("section", "transport"),
    [
        ("FastAPI: Server-Sent Events", "sse"),
        ("Starlette: Server-Sent Events", "sse"),
        ("WebSocket (FastAPI or Starlette)", "ws"),
    ],
)
async def test_recipe_serves_live_rows(
    section: str, transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the recipes open "app.db"
    namespace: dict[str, Any] = {}
    exec(recipe("FastAPI: Server-Sent Events"), namespace)
    if section != "FastAPI: Server-Sent Events":
        exec(recipe(section), namespace)  # the WebSocket recipe adds a route to that app
    db: rxdb.Database = namespace["db"]
    app = namespace["app"]
    async with db:
        await db.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT, qty INTEGER)")
        await db.execute("INSERT INTO orders(item, qty) VALUES ('tea', 2)")
        if transport == "sse":
            peer, scope = http_peer(path="/orders/events")
        else:
            peer, scope = websocket_peer("/orders/socket")
        scope["app"] = app
        await serve_until(app, peer, scope, rows=1)
        expected = [{"id": 1, "item": "tea", "qty": 2}]
        assert (peer.texts() if transport == "ws" else peer.data()) == [expected]
        assert (
            db.watch("SELECT id, item, qty FROM orders ORDER BY id").statistics().subscribers == 0
        )
