"""rxdb.web.EventSourceResponse: a watch as Server-Sent Events, driven as an ASGI server
drives it (tests/rxdb/web_peer.py), so each test decides when the client reads, stalls or
leaves, and checks that the watch's subscription is gone afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

import rxdb
from rxdb.web import EventSourceResponse, relay
from tests.conftest import WAIT, settle
from tests.rxdb.postgres_worker import SERVER, scratch_database
from tests.rxdb.web_peer import http_peer, served

ORDERS = "SELECT id, item FROM orders ORDER BY id"


@pytest.fixture
async def orders_db(db: rxdb.Database) -> rxdb.Database:
    await db.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)")
    return db


def subscribers(db: rxdb.Database, sql: str = ORDERS) -> int:
    return db.watch(sql).statistics().subscribers


class TestEvents:
    async def test_each_result_is_an_event_with_increasing_ids_and_named_columns(
        self, orders_db: rxdb.Database
    ) -> None:
        peer, scope = http_peer()
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            await peer.wait_for(lambda: len(peer.events()) == 2)
            await orders_db.execute("INSERT INTO orders(item) VALUES ('cake')")
            await peer.wait_for(lambda: len(peer.events()) == 3)
            assert subscribers(orders_db) == 1
        assert [event["id"] for event in peer.events()] == ["1", "2", "3"]
        assert peer.data() == [
            [],
            [{"id": 1, "item": "tea"}],
            [{"id": 1, "item": "tea"}, {"id": 2, "item": "cake"}],
        ]
        start = peer.sent[0]
        assert start["type"] == "http.response.start"
        headers = dict(start["headers"])
        assert headers[b"content-type"] == b"text/event-stream; charset=utf-8"
        assert headers[b"cache-control"] == b"no-cache"
        assert subscribers(orders_db) == 0

    async def test_event_name_and_retry_are_sent(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch(ORDERS), event="orders", retry=2500)
        async with served(response, peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
        assert peer.body().startswith("retry: 2500\n\n")
        assert peer.events()[-1] == {"id": "1", "event": "orders", "data": "[]"}

    async def test_ids_continue_after_the_last_event_id_of_a_reconnecting_browser(
        self, orders_db: rxdb.Database
    ) -> None:
        peer, scope = http_peer([(b"last-event-id", b"41")])
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
        assert peer.events()[0]["id"] == "42"

    async def test_keepalive_comments_while_nothing_changes(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch(ORDERS), keepalive=0.01)
        async with served(response, peer, scope):
            # The comments that matter come after the first event: under load the first run
            # can take longer than two keep-alive intervals.
            await peer.wait_for(
                lambda: (
                    len(peer.events()) == 1
                    and peer.body().rpartition("data: ")[2].count(": keep-alive\n\n") >= 2
                )
            )
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            await peer.wait_for(lambda: len(peer.events()) == 2)
        assert peer.data()[-1] == [{"id": 1, "item": "tea"}]
        assert subscribers(orders_db) == 0

    async def test_custom_encoder(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch(ORDERS), encode=lambda rows: str(len(rows)))
        async with served(response, peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
        assert peer.data() == [0]


class TestStreams:
    """What rxdb's streams emit besides row lists goes out as JSON objects too."""

    async def test_diffs(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch(ORDERS).diffs(key="id"))
        async with served(response, peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            await peer.wait_for(lambda: len(peer.events()) == 2)
        tea = {"id": 1, "item": "tea"}
        empty: dict[str, list[Any]] = {
            "rows": [],
            "inserted": [],
            "updated": [],
            "removed": [],
            "moved": [],
        }
        assert peer.data() == [empty, {**empty, "rows": [tea], "inserted": [tea]}]
        assert subscribers(orders_db) == 0

    async def test_typed_rows(self, orders_db: rxdb.Database) -> None:
        @dataclasses.dataclass
        class Order:
            id: int
            item: str

        await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch(ORDERS, row_type=Order))
        async with served(response, peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
        assert peer.data() == [[{"id": 1, "item": "tea"}]]

    async def test_states_with_their_error(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch("SELECT * FROM missing").states())
        async with served(response, peer, scope):
            await peer.wait_for(lambda: any(d["phase"] == "error" for d in peer.data()))
        state = next(d for d in peer.data() if d["phase"] == "error")
        assert state["error"]["error"] == "OperationalError"
        assert state["error"]["message"].startswith("no such table: missing")
        assert subscribers(orders_db, "SELECT * FROM missing") == 0


@pytest.mark.postgres
async def test_postgresql_results_with_numeric_and_timestamps() -> None:
    """The same response over PostgreSQL: its values JSON has no type for go out as text."""
    sql = "SELECT id, amount, at FROM prices ORDER BY id"
    async with scratch_database() as name, rxdb.open(f"{SERVER}/{name}") as db:
        await db.execute(
            "CREATE TABLE prices(id serial PRIMARY KEY, amount numeric(10, 2), at timestamptz)"
        )
        await db.execute("INSERT INTO prices(amount, at) VALUES (1.10, '2026-01-02 03:04:05+00')")
        peer, scope = http_peer()
        async with served(EventSourceResponse(db.watch(sql)), peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await db.execute("UPDATE prices SET amount = 2.50")
            await peer.wait_for(lambda: len(peer.events()) == 2)
        at = "2026-01-02T03:04:05+00:00"
        assert peer.data() == [
            [{"id": 1, "amount": "1.10", "at": at}],
            [{"id": 1, "amount": "2.50", "at": at}],
        ]
        assert db.watch(sql).statistics().subscribers == 0


class TestRelease:
    async def test_client_leaving_while_nothing_is_sent_releases_the_watch(
        self, orders_db: rxdb.Database
    ) -> None:
        """The plain StreamingResponse recipe only notices a closed tab at its next send,
        and a watch whose tables never change never sends: one subscription per tab."""
        peer, scope = http_peer()
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope) as task:
            await peer.wait_for(lambda: len(peer.events()) == 1)
            assert subscribers(orders_db) == 1
            peer.leave()
            async with asyncio.timeout(WAIT):
                await task
            assert subscribers(orders_db) == 0
        assert not peer.ended()  # nobody to send the end of the body to

    async def test_client_leaving_in_the_middle_of_a_send(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        peer.stall_at = 2  # the start, the first result, then a send that never completes
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope) as task:
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            async with asyncio.timeout(WAIT):
                await peer.stalled.wait()
            peer.leave()
            async with asyncio.timeout(WAIT):
                await task
        assert peer.stalled_send_cancelled
        assert subscribers(orders_db) == 0

    async def test_failed_send_ends_the_response_quietly(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        peer.fail_at = 2
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope) as task:
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            async with asyncio.timeout(WAIT):
                await task  # returns, raises nothing, though the client never left
            assert subscribers(orders_db) == 0

    async def test_client_gone_before_the_response_starts(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        peer.fail_at = 0
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope) as task:
            async with asyncio.timeout(WAIT):
                await task
        assert peer.sent == []
        assert subscribers(orders_db) == 0

    async def test_cancelled_by_the_server_releases_the_watch(
        self, orders_db: rxdb.Database
    ) -> None:
        """A server shutting down cancels the response (through an anyio cancel scope, as
        Starlette's test client does): the cancellation ends in the scope, and the
        subscription is released right after, without the response awaiting anything more
        while cancelled (see test_websocket's TestClient test for the race this avoids)."""
        peer, scope = http_peer()
        response: Any = EventSourceResponse(orders_db.watch(ORDERS))

        async def serve() -> None:
            await response(scope, peer.receive, peer.send)

        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            await peer.wait_for(lambda: len(peer.events()) == 1)
            group.cancel_scope.cancel()
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*relay._BACKGROUND)  # the release, started by the cancel
        assert subscribers(orders_db) == 0

    async def test_client_that_never_reads_gets_the_newest_result_not_a_backlog(
        self, orders_db: rxdb.Database
    ) -> None:
        peer, scope = http_peer()
        peer.stall_at = 2  # the client stops reading after the first result
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
            for number in range(30):
                await orders_db.execute("INSERT INTO orders(item) VALUES (?)", (f"item {number}",))
                await settle(orders_db)
            assert orders_db.watch(ORDERS).statistics().emissions >= 31
            peer.release()
            await peer.wait_for(lambda: len(peer.data()[-1]) == 30)
        # the first result, the one whose send stalled, then the newest: nothing in between
        assert len(peer.events()) == 3
        assert subscribers(orders_db) == 0


class TestEndings:
    async def test_query_error_is_an_error_event_then_the_end(
        self, orders_db: rxdb.Database
    ) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch("SELECT * FROM missing"))
        async with served(response, peer, scope) as task:
            async with asyncio.timeout(WAIT):
                await task
        [event] = peer.events()
        assert event["event"] == "error"
        assert event["id"] == "1"
        [data] = peer.data()
        assert data["error"] == "OperationalError"
        assert data["message"].startswith("no such table: missing")
        assert peer.ended()
        assert subscribers(orders_db, "SELECT * FROM missing") == 0

    async def test_value_the_encoder_cannot_take_is_an_error_event(
        self, orders_db: rxdb.Database
    ) -> None:
        peer, scope = http_peer()
        response = EventSourceResponse(orders_db.watch(ORDERS), encode=lambda rows: "a\nb")
        async with served(response, peer, scope) as task:
            async with asyncio.timeout(WAIT):
                await task
        assert peer.data() == [
            {
                "error": "ProgrammingError",
                "message": "encode must return one line of text (no line breaks)",
            }
        ]
        assert subscribers(orders_db) == 0

    async def test_database_closing_ends_the_response(self, orders_db: rxdb.Database) -> None:
        peer, scope = http_peer()
        async with served(EventSourceResponse(orders_db.watch(ORDERS)), peer, scope) as task:
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await orders_db.close()
            async with asyncio.timeout(WAIT):
                await task
        assert peer.ended()

    async def test_async_iterable_source(self, orders_db: rxdb.Database) -> None:
        async def counts() -> AsyncIterator[int]:
            async for rows in orders_db.watch(ORDERS):
                yield len(rows)

        peer, scope = http_peer()
        async with served(EventSourceResponse(counts()), peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            await peer.wait_for(lambda: peer.data() == [0, 1])
        assert subscribers(orders_db) == 0


class TestFrameworks:
    async def test_a_fastapi_endpoint_returns_it(self, orders_db: rxdb.Database) -> None:
        app = FastAPI()

        @app.get("/events")
        async def events() -> EventSourceResponse:
            return EventSourceResponse(orders_db.watch(ORDERS))

        peer, scope = http_peer()
        scope["app"] = app
        async with served(app, peer, scope):
            await orders_db.execute("INSERT INTO orders(item) VALUES ('tea')")
            await peer.wait_for(lambda: peer.data()[-1:] == [[{"id": 1, "item": "tea"}]])
        assert subscribers(orders_db) == 0

    async def test_a_starlette_route_returns_it(self, orders_db: rxdb.Database) -> None:
        async def events(request: Request) -> EventSourceResponse:
            return EventSourceResponse(orders_db.watch(ORDERS))

        app = Starlette(routes=[Route("/events", events)])
        peer, scope = http_peer()
        async with served(app, peer, scope):
            await peer.wait_for(lambda: len(peer.events()) == 1)
        assert subscribers(orders_db) == 0


class TestArguments:
    @pytest.mark.parametrize("keepalive", [0, -1, math.inf, math.nan, "5", True])
    def test_keepalive_must_be_a_positive_number(self, keepalive: Any) -> None:
        with pytest.raises(
            rxdb.ProgrammingError, match=r"keepalive (is|must be) a.*number of seconds"
        ):
            EventSourceResponse(_empty(), keepalive=keepalive)

    @pytest.mark.parametrize("retry", [0, -5, 1.5, "1000"])
    def test_retry_must_be_a_positive_int(self, retry: Any) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="retry must be a positive int"):
            EventSourceResponse(_empty(), retry=retry)

    @pytest.mark.parametrize("event", ["a\nb", "a\rb", 3])
    def test_event_must_be_one_line_of_text(self, event: Any) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="event must be a str"):
            EventSourceResponse(_empty(), event=event)

    def test_source_must_be_a_stream(self) -> None:
        with pytest.raises(rxdb.ProgrammingError, match=r"source must be an rxdb stream.*list"):
            EventSourceResponse([])  # type: ignore[arg-type]

    def test_encode_must_be_callable(self) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="encode must be callable"):
            EventSourceResponse(_empty(), encode="json")  # type: ignore[arg-type]


async def _empty() -> AsyncIterator[Any]:
    return
    yield


def test_import_rxdb_does_not_import_starlette() -> None:
    code = "import sys, rxdb; rxdb.Database; rxdb.open; print('starlette' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True
    )
    assert done.stdout.strip() == "False"


def test_without_starlette_the_import_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "try:\n    import rxdb.web\n"
        "except ModuleNotFoundError as error:\n    print(error.name, '|', error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True
    )
    assert done.stdout.strip() == (
        "starlette | rxdb.web needs Starlette: pip install 'rxdb[web]' (FastAPI brings it too)"
    )
