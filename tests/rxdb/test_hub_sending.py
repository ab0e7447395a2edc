"""A hub connection that the committing thread writes to itself (rxdb.remote.hub.sending):
frames from any thread and from the loop never interleave, leave in order, survive a peer
that reads late, and a peer that never reads is dropped."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import pytest

from rxdb.remote.hub.sending import AnyThreadStream
from rxdb.remote.hub.tuning import hub_channel
from rxdb.remote.wire.channel import Channel
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
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
