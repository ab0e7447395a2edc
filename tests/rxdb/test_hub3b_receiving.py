"""A hub connection's reader: frames handled in the socket's callback wake no task, frames
waited for still do."""

from __future__ import annotations

import asyncio

from rxdb.remote.hub.receiving import DirectReader
from rxdb.remote.wire.frames import FrameDecoder, encode_frame


def _reader() -> DirectReader:
    reader = DirectReader(asyncio.get_running_loop())
    reader.decoder = FrameDecoder()
    return reader


async def test_frames_handled_in_the_callback_wake_no_task() -> None:
    reader = _reader()
    waits = 0
    wait = reader._wait

    async def counted() -> None:
        nonlocal waits
        waits += 1
        await wait()

    reader._wait = counted  # type: ignore[method-assign]
    seen: list[bytes] = []
    task = asyncio.get_running_loop().create_task(reader.handle_each(seen.append))
    for _ in range(3):  # handle_each reaches its wait
        await asyncio.sleep(0)
    for payload in (b"one", b"two", b"three"):
        reader.feed_data(encode_frame(payload))
        for _ in range(3):  # a woken task would take its turn here
            await asyncio.sleep(0)
    assert seen == [b"one", b"two", b"three"]
    reader.feed_eof()
    await asyncio.wait_for(task, 5)
    assert waits == 1


async def test_a_frame_waited_for_wakes_its_reader() -> None:
    reader = _reader()
    frame = encode_frame(b"payload")
    waiting = asyncio.get_running_loop().create_task(reader.next_payload(5))
    await asyncio.sleep(0)
    reader.feed_data(frame[:5])  # a part: nothing to return yet
    reader.feed_data(frame[5:])
    assert await asyncio.wait_for(waiting, 5) == b"payload"


async def test_any_bytes_count_as_heard() -> None:
    reader = _reader()
    reader._heard -= 100  # as if silent for 100 s
    reader.feed_data(encode_frame(b"payload")[:3])  # not even a whole header
    assert reader.seconds_since_data() < 100
