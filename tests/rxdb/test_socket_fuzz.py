"""A bounded fuzz of the two sockets rxdb listens on -- a database server's and a hub's --
in the suite: a few hundred hostile connections (random bytes, mutated valid frames, huge
declared lengths, wrong shapes, truncated frames; before and after a valid hello), then the
host must still serve a well-behaved peer, and a watcher must converge to the right result.

The cases come from a seeded generator, so a failure replays exactly; every connection ends
(the fuzzer half-closes it and reads to the end), so nothing is left to time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import struct
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest

import rxdb
from rxdb.remote import hub
from rxdb.remote.runtime import socket_directory
from rxdb.remote.server import serve
from rxdb.remote.wire.frames import encode_frame
from rxdb.remote.wire.messages import (
    PROTOCOL_VERSION,
    Goodbye,
    Hello,
    Message,
    Notify,
    Ping,
    Request,
    Welcome,
    encode_message,
)
from rxdb.remote.wire.operations import Begin, Execute, FetchAll, TableUpdates, Unsubscribe, Watch
from rxdb.updates import NotifyTablesUpdated, TableUpdate
from tests.conftest import WAIT, Recorder, sqlite_engine
from tests.rxdb.raw_peer import raw_peer

CASES = 300
AT_ONCE = 16
COUNT = "SELECT count(*) FROM t"


def _samples(role: str, key: str) -> list[Message]:
    notify = NotifyTablesUpdated(key, "fuzz", 1, frozenset({TableUpdate("t")}))
    return [
        Hello(None, role, 1, "fuzz"),
        Welcome(1, "fuzz", key),
        Ping(1),
        Goodbye("bye"),
        Notify(notify, "fuzz"),
        Request(1, Execute("INSERT INTO t VALUES (?)", [1], None)),
        Request(2, FetchAll(COUNT, [], None)),
        Request(3, Watch(1, COUNT, [], True, False, False)),
        Request(4, TableUpdates(2, ["t"], None)),
        Request(5, Unsubscribe(1)),
        Request(6, Begin("immediate", None)),
    ]


def _shape(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-shaped value: the right container, the wrong contents."""
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([0, 1, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63)])
    if pick == 2:
        return rng.choice(["request", "hello", "notify", "execute", "", "x" * 300])
    if pick == 3:
        return rng.randbytes(rng.randrange(12))
    if pick == 4:
        return rng.random()
    if pick == 5:
        return msgpack.ExtType(rng.randrange(128), rng.randbytes(rng.randrange(8)))
    if pick == 6:
        return {rng.choice(["a", "b", 1, b"k"]): _shape(rng, depth + 1) for _ in range(3)}
    return [_shape(rng, depth + 1) for _ in range(rng.randrange(6))]


def fuzz_cases(seed: int, role: str, key: str) -> list[bytes]:
    """``CASES`` byte strings a hostile peer might send, each on a connection of its own."""
    rng = random.Random(seed)
    samples = [encode_frame(encode_message(m)) for m in _samples(role, key)]
    hello = samples[0]
    cases: list[bytes] = []
    for index in range(CASES):
        kind = index % 6
        if kind == 0:  # random bytes, sometimes with the magic in front
            body = rng.randbytes(rng.randrange(1, 200))
            data = (b"RXD\x01" + body) if rng.random() < 0.5 else body
        elif kind == 1:  # a valid frame with bytes flipped
            flipped = bytearray(rng.choice(samples))
            for _ in range(rng.randrange(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            data = bytes(flipped)
        elif kind == 2:  # a header declaring a huge (or zero) length, and a little body
            length = rng.choice([0, 1 << 16, (1 << 24) + 1, 2**32 - 1, rng.randrange(2**32)])
            data = b"RXD\x01" + struct.pack(">I", length) + rng.randbytes(rng.randrange(16))
        elif kind == 3:  # a well-formed frame of the wrong shape
            fields = [PROTOCOL_VERSION, rng.choice(["request", "hello", "notify", "event"])]
            fields += [_shape(rng) for _ in range(rng.randrange(5))]
            data = encode_frame(msgpack.packb(fields, use_bin_type=True))
        elif kind == 4:  # a valid frame cut short
            frame = rng.choice(samples)
            data = frame[: rng.randrange(1, len(frame))]
        else:  # a well-formed request or notify with fields of the wrong type
            sample = rng.choice(samples[4:])
            data = _with_a_field_swapped(rng, sample)
        if rng.random() < 0.5:
            data = hello + data  # past the handshake
        cases.append(data)
    return cases


def _with_a_field_swapped(rng: random.Random, frame: bytes) -> bytes:
    fields = msgpack.unpackb(frame[8:], raw=False, strict_map_key=False)
    where = rng.randrange(2, len(fields))
    fields[where] = _shape(rng)
    return encode_frame(msgpack.packb(fields, use_bin_type=True))


async def _hostile(address: str, data: bytes) -> None:
    """Send ``data``, half-close, and read until the host closes (it must, within WAIT)."""
    with contextlib.suppress(ConnectionError):
        async with raw_peer(address) as peer:
            peer.send_bytes(data)
            with contextlib.suppress(ConnectionError):
                await peer.stream.writer.drain()
                peer.stream.writer.write_eof()
            await peer.wait_closed_by_peer()


async def _fuzz(address: str, cases: list[bytes]) -> None:
    for start in range(0, len(cases), AT_ONCE):
        await asyncio.gather(*(_hostile(address, c) for c in cases[start : start + AT_ONCE]))


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    """The hosts logged their reasons, never an unexpected exception."""
    crashes = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert crashes == [], [r.getMessage() for r in crashes]


async def test_a_server_survives_fuzzed_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with rxdb.open(tmp_path / "fuzz.db") as db:
        await db.execute("CREATE TABLE t(x)")
        async with await serve(db) as server:
            remote = await server.handle.connect()
            try:
                watch: Recorder[Any] = Recorder()
                remote.watch(COUNT).subscribe(watch)
                await watch.wait_count(1)

                await _fuzz(server.handle.address, fuzz_cases(15, "client", db.path))

                async with asyncio.timeout(WAIT):
                    await server.wait_until(lambda: server.connections == 1)
                # the well-behaved client and its watch never noticed
                await remote.execute("INSERT INTO t VALUES (100)")
                expected = await db.fetch_one(COUNT)
                await watch.wait_value([expected])
                assert watch.errors == []
                assert not watch.completed
                # and a new one is served as ever
                async with raw_peer(server.handle.address) as peer:
                    peer.hello()
                    assert isinstance(await peer.receive(), Welcome)
                    peer.request(1, ["fetch_one", COUNT, [], None])
                    answer = await peer.answer()
                    assert getattr(answer, "result", None) == expected
            finally:
                await remote.close()
    _no_tracebacks(caplog)


async def test_a_hub_survives_fuzzed_connections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "fuzz.db"
    async with rxdb.open(path, foreign_poll=None) as db:  # only the hub tells of others
        await db.execute("CREATE TABLE t(x)")
        address = hub.socket_path(db.key, socket_directory())
        watch: Recorder[Any] = Recorder()
        subscription = db.watch(COUNT).subscribe(watch)
        try:
            await watch.wait_value([(0,)])
            membership = sqlite_engine(db).membership
            assert isinstance(membership, hub.Membership)
            assert membership.statistics().role == "hub"  # this process joined first

            await _fuzz(address, fuzz_cases(15, "member", db.key))

            # a well-behaved member is still welcomed, told of this process's commits...
            async with raw_peer(address) as member:
                member.hello("member")
                assert isinstance(await member.receive(), Welcome)
                await db.execute("INSERT INTO t VALUES (1)")
                notify = await _next_notify(member)
                assert notify.message.database == db.key
                # ...and what it announces reaches the watches here
                with sqlite3.connect(path) as other:  # a commit rxdb did not make
                    other.execute("INSERT INTO t VALUES (2)")
                other.close()
                member.send(Notify(_announce(db.key), "fuzz-epoch"))
                await watch.wait_value([(2,)])
            assert watch.errors == []
        finally:
            subscription.dispose()
    _no_tracebacks(caplog)


def _announce(key: str) -> NotifyTablesUpdated:
    return NotifyTablesUpdated(key, "fuzz-member", 1, frozenset({TableUpdate("t")}))


async def _next_notify(member: Any) -> Notify:
    async with asyncio.timeout(WAIT):
        while True:
            message = await member.receive()
            assert message is not None, "the hub closed a well-behaved member's connection"
            if isinstance(message, Notify):
                return message


def test_the_cases_cover_every_kind_of_hostility() -> None:
    """The generator is not quietly degenerate: hello-first and not, every kind present."""
    cases = fuzz_cases(15, "client", "/db")
    hello = encode_frame(encode_message(Hello(None, "client", 1, "fuzz")))
    assert len(cases) == CASES
    assert 0.3 < sum(c.startswith(hello) for c in cases) / CASES < 0.7
    assert len(set(cases)) > CASES * 0.9
