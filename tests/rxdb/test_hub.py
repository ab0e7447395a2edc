"""The cross-process hub, with real processes (tests/rxdb/hub_worker.py) and raw sockets."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rxdb.bus import Bus
from rxdb.remote import hub
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
from rxdb.remote.wire.messages import (
    Hello,
    Message,
    Notify,
    Ping,
    Pong,
    Refused,
    Welcome,
    decode_message,
    encode_message,
)
from rxdb.updates import NotifyTablesUpdated, TableUpdate

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0
KEY = "/virtual/test.db"
Event = dict[str, Any]


class Worker:
    """One child process running hub_worker; events arrive on a queue, read by a thread."""

    def __init__(self, directory: Path, key: str = KEY, db: Path | None = None) -> None:
        argv = [sys.executable, "-m", "tests.rxdb.hub_worker", key, str(directory)]
        if db is not None:
            argv += ["--db", str(db)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.history: list[Event] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready: Event = {}

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def expect(self, predicate: Callable[[Event], bool], what: str = "") -> Event:
        """Return the first event (from now on) that satisfies ``predicate``."""
        while True:
            try:
                event = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"pid {self.pid}: no {what or 'event'} in {WAIT}s") from None
            if event is None:
                raise AssertionError(f"pid {self.pid} exited while waiting for {what}")
            self.history.append(event)
            if predicate(event):
                return event

    def expect_event(self, name: str, **fields: Any) -> Event:
        return self.expect(
            lambda e: e["event"] == name and all(e.get(k) == v for k, v in fields.items()),
            f"{name} {fields}",
        )

    def wait_ready(self) -> Worker:
        self.ready = self.expect_event("ready")
        return self

    def stats(self) -> Event:
        self.send("stats")
        return self.expect_event("stats")

    def close(self) -> None:
        if self.proc.poll() is None:
            with _suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with _suppress(OSError):
                    stream.close()
        self._reader.join(timeout=WAIT)


class _suppress:
    def __init__(self, *errors: type[BaseException]) -> None:
        self.errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, self.errors)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "h"


@pytest.fixture
def spawn(directory: Path) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(**options: Any) -> Worker:
        options.setdefault("directory", directory)
        worker = Worker(**options)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.close()


def is_message(origin_of: Worker, table: str) -> Callable[[Event], bool]:
    origin = f"{origin_of.pid}:worker"
    return lambda e: e["event"] == "message" and e["origin"] == origin and e["tables"] == [table]


def is_resync(number: int | None = None) -> Callable[[Event], bool]:
    return lambda e: (
        e["event"] == "message"
        and e["resync"]
        and e["everything"]
        and (number is None or e["sequence"] == number)
    )


def start_group(spawn: Callable[..., Worker], count: int) -> list[Worker]:
    """The first worker becomes the hub; the others join it as members."""
    first = spawn().wait_ready()
    rest = [spawn() for _ in range(count - 1)]
    for worker in rest:
        worker.wait_ready()
    assert first.ready["stats"]["role"] == "hub"
    assert all(w.ready["stats"]["role"] == "member" for w in rest)
    return [first, *rest]


# ---------------------------------------------------------------------------------------
# Processes


def test_writes_in_one_process_reach_every_other(spawn: Callable[..., Worker]) -> None:
    a, b, c = start_group(spawn, 3)
    a.send("publish x")  # from the hub's process
    b.expect(is_message(a, "x"))
    c.expect(is_message(a, "x"))
    b.send("publish y")  # from a member, relayed by the hub
    a.expect(is_message(b, "y"))
    c.expect(is_message(b, "y"))
    stats = {w: w.stats() for w in (a, b, c)}
    # Nobody got its own messages back, nobody resynced.
    assert [stats[w]["received"] for w in (a, b, c)] == [1, 1, 2]
    assert [stats[w]["sent"] for w in (a, b, c)] == [3, 1, 0]  # the hub: 2 own + 1 relay
    assert all(stats[w]["resyncs"] == 0 and stats[w]["connected"] for w in (a, b, c))
    for w in (a, b, c):
        assert not any(e["event"] == "message" and e["resync"] for e in w.history)


def test_kill_9_of_the_hub_elects_a_new_one_and_survivors_converge(
    spawn: Callable[..., Worker],
) -> None:
    a, b, c = start_group(spawn, 3)
    b.send("pace 500 during 0.002")  # a steady stream for about a second
    c.expect(is_message(b, "during"))
    os.kill(a.pid, signal.SIGKILL)
    a.proc.wait()
    # Each survivor resyncs at once (hub lost), then again once it is connected again...
    for survivor in (b, c):
        survivor.expect(is_resync(1), "resync on losing the hub")
        survivor.expect(is_resync(2), "resync on reconnecting")
    # ... and the stream flows again, through the new hub.
    c.expect(is_message(b, "during"))
    b.expect_event("published", sequence=500)
    b.send("publish after-b")
    c.send("publish after-c")
    c.expect(is_message(b, "after-b"))
    b.expect(is_message(c, "after-c"))
    roles = sorted(w.stats()["role"] for w in (b, c))
    assert roles == ["hub", "member"]
    assert sum(w.stats()["elections"] for w in (b, c)) == 1


def test_a_forked_child_does_not_keep_the_hub_alive(spawn: Callable[..., Worker]) -> None:
    a, b = start_group(spawn, 2)
    a.send("fork 30")  # inherits the lock and the sockets, unless rxdb lets go of them
    child = a.expect_event("forked")["pid"]
    try:
        os.kill(a.pid, signal.SIGKILL)
        a.proc.wait()
        b.expect(is_resync(2), "resync after taking over")
        assert b.stats()["role"] == "hub"
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_gap_in_sequence_numbers_resyncs(spawn: Callable[..., Worker]) -> None:
    a, b = start_group(spawn, 2)
    a.send("publish t 1")
    b.expect(is_message(a, "t"))
    a.send("publish t 2")
    b.expect(is_message(a, "t"))
    a.send("publish t 5")
    event = b.expect(lambda e: e["event"] == "message" and e["origin"] == f"{a.pid}:worker")
    assert event["sequence"] == 5
    b.expect(is_resync(1), "resync after the gap")
    assert b.stats()["resyncs"] == 1


def test_databases_in_two_processes_refresh_each_others_watches(
    spawn: Callable[..., Worker], tmp_path: Path
) -> None:
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()
    # foreign_poll is off in the workers: only the hub can tell them about the other's writes.
    a = spawn(db=path).wait_ready()
    b = spawn(db=path).wait_ready()
    a.expect_event("rows", value=0)
    b.expect_event("rows", value=0)
    a.send("insert")
    b.expect_event("rows", value=1)
    b.send("insert")
    a.expect_event("rows", value=2)


def test_the_socket_is_released_after_the_last_leave(
    spawn: Callable[..., Worker], directory: Path
) -> None:
    a = spawn().wait_ready()
    a.send("join")
    joined = a.expect_event("joined")["stats"]
    assert joined["role"] == "hub"
    assert joined["elections"] == 1  # the same link, not a second election
    b = spawn().wait_ready()
    a.send("leave")
    assert a.expect_event("left")["remaining"] == 1
    a.send("publish still-here")
    b.expect(is_message(a, "still-here"))
    assert b.stats()["resyncs"] == 0
    a.send("leave")
    a.expect_event("left", remaining=0)
    # b takes over: the lock and the socket were released.
    b.expect(is_resync(2), "resync after taking over")
    stats = b.stats()
    assert (stats["role"], stats["elections"], stats["connected"]) == ("hub", 1, True)
    c = spawn().wait_ready()
    assert c.ready["stats"]["role"] == "member"
    c.send("publish to-new-hub")
    b.expect(is_message(c, "to-new-hub"))


def test_garbage_and_oversized_frames_close_only_that_connection(
    spawn: Callable[..., Worker], directory: Path
) -> None:
    a, b = start_group(spawn, 2)
    path = hub.socket_path(KEY, str(directory))
    hello = encode_frame(encode_message(Hello(None, "member", 1, "e")))
    attempts = {
        "garbage": b"GET / HTTP/1.1\r\n\r\n",
        "oversized before the handshake": b"RXD\x01" + (100 << 20).to_bytes(4, "big"),
        "oversized after the handshake": hello + b"RXD\x01" + (2 << 20).to_bytes(4, "big"),
        "not msgpack": encode_frame(b"\xc1\xc1\xc1"),
        "unexpected message": hello + encode_frame(encode_message(Welcome(1, "e", KEY))),
        "no hello": encode_frame(encode_message(Ping(1))),
        "another database": hello
        + encode_frame(encode_message(Notify(NotifyTablesUpdated("/other.db", "o", 1), "e"))),
    }
    for what, data in attempts.items():
        answer = exchange(path, data)
        assert answer is not None, f"{what}: the hub kept the connection open"
        replies = [decode_message(p) for p in FrameDecoder().feed(answer)]
        assert isinstance(replies[-1], Refused), what  # the reason, before the close
        a.expect(lambda e: e["event"] == "log" and "closing connection" in e["message"], what)
    logs = [e["message"] for e in a.history if e["event"] == "log"]
    assert any("not an rxdb frame" in m for m in logs)
    assert any("over the limit" in m for m in logs)
    # The hub and its members are unharmed.
    b.send("publish after-garbage")
    a.expect(is_message(b, "after-garbage"))
    assert b.stats()["resyncs"] == 0


def exists(path: str) -> bool:
    return os.path.exists(path)


def exchange(path: str, data: bytes) -> bytes | None:
    """Send ``data``, then read until the other side closes; None if it never does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(path)
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            return None
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------
# In this process: the hub hosted here, raw peers speaking the protocol


class RawPeer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: str) -> RawPeer:
        reader, writer = await asyncio.open_unix_connection(path)
        peer = cls(reader, writer)
        peer.send(Hello(None, "member", os.getpid(), "raw"))
        assert isinstance(await peer.receive(), Welcome)
        return peer

    def send(self, message: Message) -> None:
        self.writer.write(encode_frame(encode_message(message)))

    async def receive(self) -> Message | None:
        async with asyncio.timeout(WAIT):
            try:
                header = await self.reader.readexactly(8)
            except asyncio.IncompleteReadError:
                return None
            payload = await self.reader.readexactly(int.from_bytes(header[4:], "big"))
        return decode_message(payload)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def notify(origin: str, sequence: int, epoch: str = "e1", everything: bool = False) -> Notify:
    updates = frozenset() if everything else frozenset({TableUpdate("t")})
    return Notify(NotifyTablesUpdated(KEY, origin, sequence, updates, everything), epoch)


@pytest.mark.parametrize(
    ("sends", "resyncs"),
    [
        pytest.param([(1, "e1", False), (2, "e1", False), (3, "e1", False)], 0, id="in-order"),
        pytest.param([(4, "e1", False), (5, "e1", False)], 0, id="joined-late"),
        pytest.param([(1, "e1", False), (2, "e1", False), (5, "e1", False)], 1, id="gap"),
        pytest.param([(1, "e1", False), (3, "e1", False), (2, "e1", False)], 2, id="reorder"),
        pytest.param([(1, "e1", False), (2, "e1", False), (2, "e1", False)], 1, id="duplicate"),
        pytest.param([(1, "e1", False), (2, "e2", False)], 1, id="new-epoch"),
        pytest.param([(1, "e1", False), (7, "e1", True), (8, "e1", False)], 0, id="everything"),
    ],
)
async def test_sequence_anomalies_resync(
    directory: Path,
    sends: list[tuple[int, str, bool]],
    resyncs: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub.TUNING, "resync_interval", 0.0)  # one message per resync here
    bus = Bus()
    membership = await hub.join(KEY, bus, local_origins=frozenset, directory=str(directory))
    seen: asyncio.Queue[NotifyTablesUpdated] = asyncio.Queue()
    subscription = bus.subscribe(KEY, seen.put_nowait)
    peer = await RawPeer.connect(membership.path)
    try:
        for sequence, epoch, everything in sends:
            peer.send(notify("writer", sequence, epoch, everything))
        peer.send(notify("sentinel", 1))  # everything before it has been handled
        got = []
        while (message := await asyncio.wait_for(seen.get(), WAIT)).origin != "sentinel":
            got.append(message)
        assert [m.sequence for m in got if m.origin == "writer"] == [s for s, _, _ in sends]
        assert sum(m.origin == membership.origin for m in got) == resyncs
        assert membership.statistics().resyncs == resyncs
    finally:
        subscription.close()
        await peer.close()
        await membership.leave()


async def test_relays_between_peers_answers_pings_and_forwards_only_local_origins(
    directory: Path,
) -> None:
    bus = Bus()
    membership = await hub.join(KEY, bus, local_origins=lambda: {"mine"}, directory=str(directory))
    first, second = await RawPeer.connect(membership.path), await RawPeer.connect(membership.path)
    try:
        first.send(Ping(42))
        assert await first.receive() == Pong(42)
        first.send(notify("peer", 1))
        relayed = await second.receive()
        assert isinstance(relayed, Notify)
        assert relayed.message == NotifyTablesUpdated(KEY, "peer", 1, frozenset({TableUpdate("t")}))
        assert relayed.epoch == "e1"
        bus.publish(NotifyTablesUpdated(KEY, "not-shared", 1, everything=True))
        bus.publish(NotifyTablesUpdated(KEY, "mine", 1, frozenset({TableUpdate("u")})))
        for peer in (first, second):
            message = await peer.receive()
            assert isinstance(message, Notify)
            assert message.message.origin == "mine"
        stats = membership.statistics()
        assert (stats.role, stats.sent, stats.received) == ("hub", 3, 1)
    finally:
        await first.close()
        await second.close()
        await membership.leave()


async def test_the_hub_relays_a_notify_before_it_publishes_it_here(directory: Path) -> None:
    """Publishing here may re-run watches on the hub thread (rxdb.engines.sqlite.receipt):
    the other members must not wait for them."""
    bus = Bus()
    membership = await hub.join(KEY, bus, local_origins=frozenset, directory=str(directory))
    first, second = await RawPeer.connect(membership.path), await RawPeer.connect(membership.path)
    relayed = threading.Event()

    def held(message: NotifyTablesUpdated) -> bool:
        relayed.wait(WAIT)  # the hub thread, publishing: held until the relay has arrived
        return True

    heard: asyncio.Queue[NotifyTablesUpdated] = asyncio.Queue()
    subscription = bus.subscribe(KEY, heard.put_nowait, wanted=held)
    try:
        first.send(notify("peer", 1))
        assert isinstance(await second.receive(), Notify)
        relayed.set()
        assert (await asyncio.wait_for(heard.get(), WAIT)).origin == "peer"
    finally:
        relayed.set()
        subscription.close()
        await first.close()
        await second.close()
        await membership.leave()


async def test_a_silent_peer_is_dropped(
    directory: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hub.TUNING, "peer_timeout", 0.2)
    membership = await hub.join(KEY, Bus(), local_origins=frozenset, directory=str(directory))
    peer = await RawPeer.connect(membership.path)
    try:
        assert await peer.receive() is None  # closed by the hub
        assert "silent for too long" in caplog.text
    finally:
        await peer.close()
        await membership.leave()


async def test_joins_are_counted_and_share_one_link(directory: Path) -> None:
    bus = Bus()
    first = await hub.join(KEY, bus, local_origins=frozenset, directory=str(directory))
    second = await hub.join(KEY, bus, local_origins=frozenset, directory=str(directory))
    other_bus = await hub.join(KEY, Bus(), local_origins=frozenset, directory=str(directory))
    try:
        assert first.origin == second.origin
        assert first.statistics().role == "hub"
        assert other_bus.statistics().role == "member"  # another bus: another link
        await first.leave()
        await first.leave()  # idempotent
        assert exists(first.path)
        assert other_bus.statistics().connected
    finally:
        await second.leave()
        await other_bus.leave()
    assert not exists(first.path)


async def test_permissions_of_the_directory_and_the_socket(directory: Path) -> None:
    membership = await hub.join(KEY, Bus(), local_origins=frozenset, directory=str(directory))
    try:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(membership.path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(membership.path + ".lock").st_mode) == 0o600
        assert os.path.dirname(membership.path) == str(directory)
    finally:
        await membership.leave()


@pytest.mark.parametrize("problem", ["group-readable", "not-a-directory", "symlink", "owner"])
async def test_an_unsafe_directory_is_refused(tmp_path: Path, problem: str) -> None:
    bad = tmp_path / "bad"
    if problem == "group-readable":
        bad.mkdir(mode=0o755)
        bad.chmod(0o755)
    elif problem == "not-a-directory":
        bad.write_text("")
    elif problem == "symlink":
        (tmp_path / "real").mkdir(mode=0o700)
        bad.symlink_to(tmp_path / "real")
    else:
        if os.geteuid() != 0:
            pytest.skip("changing a directory's owner needs root")
        bad.mkdir(mode=0o700)
        os.chown(bad, 65534, 65534)
    with pytest.raises(hub.HubError) as caught:
        await hub.join(KEY, Bus(), local_origins=frozenset, directory=str(bad))
    assert isinstance(caught.value, OSError)
    assert str(bad) in str(caught.value)


def test_default_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert hub.socket_directory() == str(runtime / "rxdb")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert hub.socket_directory() == str(tmp_path / f"rxdb-{os.geteuid()}")
    path = hub.socket_path(KEY, str(runtime))
    assert path == hub.socket_path(KEY, str(runtime))
    assert path != hub.socket_path(KEY + "x", str(runtime))
    with pytest.raises(hub.HubError, match="longer than"):
        hub.socket_path(KEY, "/" + "d" * 120)
