"""The channel: one conversation's requests, answers and keepalive, as both the client, the
server's sessions and the hub's links use it (over a socket pair, no server)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

import rxdb
from rxdb.remote.wire.channel import Channel
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD
from rxdb.remote.wire.messages import Goodbye, Message, Ping, Pong, Request, Response
from rxdb.remote.wire.operations import Execute, Interrupt
from rxdb.remote.wire.stream import FramedStream
from tests.conftest import WAIT

Pair = tuple[Channel, Channel]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    """Two channels, each the other's peer."""
    left, right = socket.socketpair()
    channels = []
    for name, sock in (("left", left), ("right", right)):
        reader, writer = await asyncio.open_connection(sock=sock)
        channels.append(Channel(FramedStream(reader, writer, name, DEFAULT_MAX_PAYLOAD)))
    yield channels[0], channels[1]
    for channel in channels:
        await channel.stream.close()


class Inbox:
    """A role's handler: keeps what the channel hands it, and says when something came."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived = asyncio.Event()

    def __call__(self, message: Message, payload: bytes) -> None:
        self.messages.append(message)
        self.arrived.set()

    async def next(self) -> Message:
        async with asyncio.timeout(WAIT):
            while not self.messages:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages.pop(0)


def conversing(channel: Channel, inbox: Inbox, patience: float = WAIT) -> asyncio.Task[str | None]:
    return asyncio.create_task(channel.converse(inbox, patience=patience))


async def test_a_ping_is_answered_with_a_pong_of_the_same_nonce(pair: Pair) -> None:
    left, right = pair
    inbox = Inbox()
    talking = conversing(right, inbox)
    left.send(Ping(41))
    assert await left.receive(WAIT) == Pong(41)
    assert inbox.messages == []  # the role never sees keepalive traffic
    left.send(Goodbye("done"))
    assert await talking == "done"


async def test_a_goodbye_or_the_end_of_the_stream_ends_the_conversation(pair: Pair) -> None:
    left, right = pair
    talking = conversing(right, Inbox())
    await left.stream.close()
    assert await asyncio.wait_for(talking, WAIT) is None


async def test_a_silent_peer_is_given_up(pair: Pair) -> None:
    _, right = pair
    with pytest.raises(TimeoutError):
        await right.converse(Inbox(), patience=0.05)


async def test_a_call_is_settled_by_its_answer_or_its_failure(pair: Pair) -> None:
    client, server = pair
    requests = Inbox()
    serving = conversing(server, requests)
    answers = conversing(client, Inbox())
    insert = Execute("INSERT INTO t VALUES (1)", [], None)
    first = client.call(Interrupt())
    second = client.call(insert)
    one = await requests.next()
    two = await requests.next()
    assert isinstance(one, Request)
    assert isinstance(two, Request)
    assert (one.operation, two.operation) == (Interrupt(), insert)
    server.fail(two.id, rxdb.IntegrityError("UNIQUE constraint failed", sqlite_errorcode=2067))
    server.answer(one.id, [1, "a"])
    assert await asyncio.wait_for(first, WAIT) == [1, "a"]
    with pytest.raises(rxdb.IntegrityError, match="UNIQUE") as caught:
        await asyncio.wait_for(second, WAIT)
    assert caught.value.sqlite_errorcode == 2067
    client.send(Goodbye("done"))
    assert await serving == "done"
    answers.cancel()


async def test_a_result_that_cannot_travel_fails_its_call_not_the_connection(pair: Pair) -> None:
    client, server = pair
    requests = Inbox()
    serving = conversing(server, requests)
    answers = conversing(client, Inbox())
    call = client.call(Interrupt())
    request = await requests.next()
    assert isinstance(request, Request)
    server.answer(request.id, [object()])
    with pytest.raises(rxdb.ProtocolError, match="cannot send a value of type object"):
        await asyncio.wait_for(call, WAIT)
    again = client.call(Interrupt())
    request = await requests.next()
    assert isinstance(request, Request)
    server.answer(request.id, None)
    assert await asyncio.wait_for(again, WAIT) is None
    client.send(Goodbye("done"))
    await serving
    answers.cancel()


async def test_a_request_that_cannot_travel_is_a_programming_error(pair: Pair) -> None:
    client, _ = pair
    with pytest.raises(rxdb.ProgrammingError, match="cannot send"):
        client.call(Execute("SELECT ?", [object()], None))


async def test_an_answer_to_a_call_never_made_is_a_protocol_error(pair: Pair) -> None:
    client, server = pair
    server.send(Response(1, None))
    with pytest.raises(rxdb.ProtocolError, match="never sent"):
        await client.converse(Inbox(), patience=WAIT)


async def test_calls_still_waiting_fail_when_the_connection_is_gone(pair: Pair) -> None:
    client, _ = pair
    call = client.call(Interrupt())
    client.fail_calls(rxdb.ConnectionLostError("gone"))
    with pytest.raises(rxdb.ConnectionLostError, match="gone"):
        await call
