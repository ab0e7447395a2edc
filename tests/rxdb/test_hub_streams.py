"""A hub connection's two directions. Sending (rxdb.remote.hub.sending), where the committing
thread writes itself: frames from any thread and from the loop never interleave, leave in
order, survive a peer that reads late, and a peer that never reads is dropped. Receiving
(rxdb.remote.hub.receiving), each message handled as it arrives: nothing that came before
the end is lost, nothing after a goodbye is read, pings are answered, broken frames and
silence end the conversation."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rxdb.errors import ProtocolError
from rxdb.remote.hub.receiving import converse_directly, start_hub_server
from rxdb.remote.hub.sending import AnyThreadStream, hub_channel
from rxdb.remote.wire.channel import Channel
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
from rxdb.remote.wire.messages import (
    Goodbye,
    Hello,
    Message,
    Ping,
    Pong,
    decode_message,
    encode_message,
)
from tests.conftest import WAIT

THREADS = 4
FRAMES = 300  # per sender: enough to fill a socket buffer when the peer does not read


@pytest.fixture
async def sender_and_peer() -> AsyncIterator[tuple[Channel, AnyThreadStream, socket.socket]]:
    """A hub channel on this loop, and the raw socket at the other end (blocking)."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    channel = hub_channel(reader, writer, "test")
    assert isinstance(channel.stream, AnyThreadStream)
    try:
        yield channel, channel.stream, theirs
    finally:
        await channel.stream.close()
        theirs.close()


def payload(sender: int, n: int) -> bytes:
    return f"{sender}:{n}:".encode() + bytes(500)  # 500 bytes of padding: fills buffers


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` payloads from the blocking socket ``sock`` (fails on a malformed frame)."""
    sock.settimeout(WAIT)
    decoder = FrameDecoder(1 << 20)
    frames: list[bytes] = []
    while len(frames) < count:
        data = sock.recv(1 << 16)
        assert data, f"the stream ended after {len(frames)} of {count} frames"
        frames.extend(decoder.feed(data))
    return frames


def assert_in_order(frames: list[bytes], senders: int) -> None:
    seen: dict[int, int] = {}
    for frame in frames:
        sender, n, padding = frame.split(b":")
        assert padding == bytes(500)  # intact: no other frame's bytes inside
        assert int(n) == seen.get(int(sender), -1) + 1  # each sender's frames in order
        seen[int(sender)] = int(n)
    assert seen == dict.fromkeys(range(senders), FRAMES - 1)


async def test_frames_from_threads_and_the_loop_arrive_whole_and_in_order(
    sender_and_peer: tuple[Channel, AnyThreadStream, socket.socket],
) -> None:
    channel, stream, peer = sender_and_peer
    start = threading.Barrier(THREADS)

    def send_from_thread(sender: int) -> None:
        start.wait(WAIT)
        for n in range(FRAMES):
            assert stream.send_from_any_thread(encode_frame(payload(sender, n)), None)

    async def send_from_loop() -> None:
        for n in range(FRAMES):
            assert channel.send_frame(encode_frame(payload(THREADS, n)))
            await asyncio.sleep(0)

    # The peer reads only once everything is sent: most frames queue behind a full buffer.
    senders = [asyncio.to_thread(send_from_thread, i) for i in range(THREADS)]
    await asyncio.gather(send_from_loop(), *senders)
    frames = await asyncio.to_thread(read_frames, peer, (THREADS + 1) * FRAMES)
    assert_in_order(frames, THREADS + 1)


async def test_a_peer_that_never_reads_is_dropped(
    sender_and_peer: tuple[Channel, AnyThreadStream, socket.socket],
) -> None:
    _, stream, _ = sender_and_peer
    frame = encode_frame(bytes(4096))

    def flood() -> None:
        for _ in range(10_000):  # 40 MB: far over a socket buffer plus 64 KiB
            if not stream.send_from_any_thread(frame, 64 * 1024):
                return
        raise AssertionError("64 KiB of queue never refused a frame")

    await asyncio.to_thread(flood)
    # The drop was handed to the loop before the thread's end was: it has run by now.
    assert stream.is_closing()
    assert stream.descriptors() == []  # both descriptors let go of
    assert not stream.send_from_any_thread(frame, None)


async def test_a_closed_stream_sends_nothing_and_keeps_no_descriptor(
    sender_and_peer: tuple[Channel, AnyThreadStream, socket.socket],
) -> None:
    channel, stream, peer = sender_and_peer
    assert len(stream.descriptors()) == 2  # asyncio's and the duplicate
    await stream.close()
    assert stream.descriptors() == []
    assert not stream.send_from_any_thread(encode_frame(b"x"), None)
    assert not channel.send_frame(encode_frame(b"x"))
    peer.settimeout(WAIT)
    assert peer.recv(16) == b""  # the peer sees the end: no duplicate keeps it open


# -- receiving: each message handled as the socket delivers it (rxdb.remote.hub.receiving) --


def hello_message(n: int) -> Hello:
    return Hello(None, "member", n, "epoch")


def hello(n: int) -> bytes:
    return encode_frame(encode_message(hello_message(n)))


class Conversation:
    """The hub side of one connection: the handshake's first message read as a handshake
    reads it, then :func:`converse_directly`; a raw blocking socket plays the peer."""

    def __init__(self) -> None:
        self.first: Message | None = None
        self.handled: list[Message] = []
        self.outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.channels: list[Channel] = []

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = hub_channel(reader, writer, "peer")
        self.channels.append(channel)
        try:
            self.first = await channel.receive(WAIT)
            result = await converse_directly(
                channel, lambda m, _: self.handled.append(m), patience=self.patience
            )
        except Exception as error:
            self.outcome.set_exception(error)
        else:
            self.outcome.set_result(result)
        finally:
            await channel.stream.close()

    patience = WAIT


@contextlib.asynccontextmanager
async def conversation(
    tmp_path: Path, patience: float = WAIT
) -> AsyncIterator[tuple[Conversation, socket.socket]]:
    path = str(tmp_path / "hub.sock")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen(1)
    talk = Conversation()
    talk.patience = patience
    server = await start_hub_server(talk.connected, listening)
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        peer.settimeout(WAIT)
        await asyncio.to_thread(peer.connect, path)
        yield talk, peer
    finally:
        peer.close()
        server.close()
        await server.wait_closed()


async def test_what_came_with_the_handshake_is_handled_in_order_up_to_a_goodbye(
    tmp_path: Path,
) -> None:
    async with conversation(tmp_path) as (talk, peer):
        # One write: the handshake's message, three more, a goodbye, and one after it.
        goodbye = encode_frame(encode_message(Goodbye("done")))
        peer.sendall(b"".join([hello(0), hello(1), hello(2), hello(3), goodbye, hello(4)]))
        assert await asyncio.wait_for(talk.outcome, WAIT) == "done"
    assert talk.first == hello_message(0)
    assert talk.handled == [hello_message(1), hello_message(2), hello_message(3)]


async def test_what_came_before_the_end_of_the_stream_is_handled(tmp_path: Path) -> None:
    async with conversation(tmp_path) as (talk, peer):
        peer.sendall(hello(0) + hello(1))
        peer.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(talk.outcome, WAIT) is None
    assert talk.handled == [hello_message(1)]


async def test_a_ping_is_answered_and_a_broken_frame_ends_the_conversation(
    tmp_path: Path,
) -> None:
    async with conversation(tmp_path) as (talk, peer):
        peer.sendall(hello(0) + encode_frame(encode_message(Ping(7))))
        (pong,) = await asyncio.to_thread(read_frames, peer, 1)
        assert decode_message(pong) == Pong(7)
        peer.sendall(b"garbage")
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(talk.outcome, WAIT)


async def test_a_silent_peer_times_out(tmp_path: Path) -> None:
    async with conversation(tmp_path, patience=0.2) as (talk, peer):
        peer.sendall(hello(0))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(talk.outcome, WAIT)
