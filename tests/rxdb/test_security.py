"""Issue #15's security findings, each tried the way a hostile or careless user would.

Cross-user cases run the "other user" (uid 65534) as a subprocess under ``setpriv``, which
needs root; that user runs only the standard library (it may not be able to read this
interpreter or rxdb), speaking bytes the test encoded for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.bus import Bus
from rxdb.engines.sqlite.foreign import MAX_CLAIM_SPAN
from rxdb.errors import HubError, ProgrammingError, ServerRefusedError
from rxdb.remote import hub
from rxdb.remote.handle import ServerHandle
from rxdb.remote.hub import TUNING
from rxdb.remote.runtime import socket_directory
from rxdb.remote.server.server import Server
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
from rxdb.remote.wire.refusals import MAX_SHOWN, RefusalLog, shown
from rxdb.updates import NotifyTablesUpdated, TableUpdate
from tests.conftest import WAIT, Recorder, settle, sqlite_engine, subscribed

OTHER = 65534


# ---------------------------------------------------------------------------------------
# The other user


def _setpriv() -> str:
    if os.geteuid() != 0:
        pytest.skip("acting as another user needs root (CI runs as root)")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("acting as another user needs setpriv (util-linux)")
    return setpriv


def as_other(*command: str) -> list[str]:
    """``command`` run as uid 65534."""
    return [_setpriv(), f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups", *command]


def other_python() -> str:
    """An interpreter uid 65534 can run (this one may live where it cannot read)."""
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3")):
        if candidate is None:
            continue
        probe = subprocess.run(
            as_other(candidate, "-c", "pass"), capture_output=True, timeout=WAIT, check=False
        )
        if probe.returncode == 0:
            return candidate
    pytest.skip(f"no Python interpreter that uid {OTHER} can run")


def run_as_other(*command: str) -> None:
    done = subprocess.run(as_other(*command), capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory both users can reach (as /tmp is): world-writable, sticky."""
    directory = Path(tempfile.mkdtemp(prefix="rxdb-security-"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def frames(data: bytes) -> list[Message]:
    return [decode_message(payload) for payload in FrameDecoder().feed(data)]


# A client of the other user: says hello, prints (hex) whatever the server answers.
OTHER_CLIENT = textwrap.dedent(
    """
    import socket, sys
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(sys.argv[1])
    try:
        sock.sendall(bytes.fromhex(sys.argv[2]))
    except BrokenPipeError:
        pass  # refused before it could say a word: the answer is still there to read
    data = b""
    while len(data) < 8 or len(data) < 8 + int.from_bytes(data[4:8], "big"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    print(data.hex())
    """
)

# A server of the other user: welcomes whoever connects, holds on until stdin closes.
OTHER_SERVER = textwrap.dedent(
    """
    import os, socket, sys
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sys.argv[1])
    os.chmod(sys.argv[1], 0o666)
    sock.listen(4)
    print("ready", flush=True)
    sock.settimeout(10)
    try:
        peer, _ = sock.accept()
        peer.sendall(bytes.fromhex(sys.argv[2]))
        sys.stdin.read()
    except OSError:
        pass
    """
)


async def other_client_says_hello(path: str) -> list[Message]:
    hello = encode_frame(encode_message(Hello(None, "client", 1, "other")))
    process = await asyncio.create_subprocess_exec(
        *as_other(other_python(), "-c", OTHER_CLIENT, path, hello.hex()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    assert process.returncode == 0, err.decode()
    return frames(bytes.fromhex(out.decode().strip()))


@contextlib.asynccontextmanager
async def serving_shared(directory: Path, **options: Any) -> AsyncIterator[Server]:
    """A server on a socket another user can reach: made 0666, in a shared directory."""
    async with rxdb.open(":memory:") as db:
        await db.execute("CREATE TABLE secret(x)")
        server = await rxdb.serve(db, path=str(directory / "s.sock"), **options)
        try:
            os.chmod(server.handle.address, 0o666)  # the mistake
            yield server
        finally:
            await server.shutdown_all()


# ---------------------------------------------------------------------------------------
# The server checks the uid of every Unix connection


async def test_a_server_refuses_another_uid_even_on_a_world_writable_socket(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving_shared(shared_dir) as server:
        replies = await other_client_says_hello(server.handle.address)
        assert len(replies) == 1, replies
        assert isinstance(replies[0], Refused)
        assert f"uid {OTHER}" in replies[0].reason
        assert "allowed_uids=" in replies[0].reason
        assert server.connections == 0
    assert any(f"uid {OTHER}" in r.getMessage() for r in caplog.records)


async def test_allowed_uids_lets_the_listed_user_in(shared_dir: Path) -> None:
    async with serving_shared(shared_dir, allowed_uids=[OTHER]) as server:
        replies = await other_client_says_hello(server.handle.address)
        assert len(replies) == 1, replies
        assert isinstance(replies[0], Welcome)


async def test_allowed_uids_does_not_waive_the_token(shared_dir: Path) -> None:
    async with serving_shared(shared_dir, allowed_uids=[OTHER], token="ab" * 16) as server:
        replies = await other_client_says_hello(server.handle.address)
        assert isinstance(replies[0], Refused)
        assert "token" in replies[0].reason


async def test_the_same_uid_is_admitted_and_the_handle_names_it(tmp_path: Path) -> None:
    async with rxdb.open(":memory:") as db, await rxdb.serve(db) as server:
        assert server.handle.uid == os.geteuid()
        remote = await server.handle.connect()
        try:
            assert await remote.fetch_all("SELECT 1") == [(1,)]
        finally:
            await remote.close()


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"allowed_uids": "65534"}, "collection of uids"),
        ({"allowed_uids": [-1]}, "uids"),
        ({"allowed_uids": [True]}, "uids"),
        ({"allowed_uids": [OTHER], "host": "127.0.0.1"}, "Unix sockets only"),
    ],
)
async def test_bad_allowed_uids_are_refused(options: dict[str, Any], complaint: str) -> None:
    async with rxdb.open(":memory:") as db:
        with pytest.raises(ProgrammingError, match="allowed_uids") as caught:
            await rxdb.serve(db, **options)
        assert complaint in str(caught.value)


# ---------------------------------------------------------------------------------------
# The client checks the uid of the server it reaches


@contextlib.asynccontextmanager
async def other_users_server(path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    welcome = encode_frame(encode_message(Welcome(1, "e" * 16, "/fake.db")))
    process = await asyncio.create_subprocess_exec(
        *as_other(other_python(), "-c", OTHER_SERVER, str(path), welcome.hex()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), WAIT) == b"ready\n"
        yield process
    finally:
        assert process.stdin is not None
        process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def test_a_client_refuses_a_socket_another_user_put_in_place(shared_dir: Path) -> None:
    path = shared_dir / "server.sock"
    async with other_users_server(path):
        with pytest.raises(ServerRefusedError) as caught:
            await ServerHandle("unix", str(path)).connect()
    assert f"uid {OTHER}" in str(caught.value)
    assert str(path) in str(caught.value)


async def test_a_client_talks_to_the_uid_its_handle_names(shared_dir: Path) -> None:
    path = shared_dir / "server.sock"
    async with other_users_server(path):
        remote = await ServerHandle("unix", str(path), uid=OTHER).connect()
        await remote.close()


# ---------------------------------------------------------------------------------------
# The runtime directory cannot be taken by another user


@pytest.fixture
def no_runtime_dir(
    monkeypatch: pytest.MonkeyPatch, shared_dir: Path, tmp_path: Path
) -> tuple[Path, Path]:
    """No XDG_RUNTIME_DIR: the default is ``rxdb-{uid}`` in ``shared_dir`` (a /tmp)."""
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr("tempfile.tempdir", str(shared_dir))
    cache = shared_dir / "cache"  # short: a socket's path must fit in 107 bytes
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return shared_dir / f"rxdb-{os.geteuid()}", cache


@pytest.mark.parametrize("squat", ["directory", "symlink"])
async def test_another_user_cannot_deny_the_runtime_directory(
    no_runtime_dir: tuple[Path, Path], shared_dir: Path, tmp_path: Path, squat: str
) -> None:
    taken, cache = no_runtime_dir
    if squat == "directory":
        run_as_other("mkdir", "-m", "0777", str(taken))
    else:
        run_as_other("ln", "-s", str(tmp_path), str(taken))
    assert os.lstat(taken).st_uid == OTHER
    directory = socket_directory()
    assert directory.startswith(str(cache / "rxdb") + os.sep)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    # Another process of the user finds the same directory, whoever came first.
    env = {
        **os.environ,
        "TMPDIR": str(shared_dir),
        "XDG_CACHE_HOME": str(cache),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("XDG_RUNTIME_DIR", None)
    other_process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from rxdb.remote.runtime import *; print(socket_directory())",
        stdout=subprocess.PIPE,
        env=env,
    )
    out, _ = await asyncio.wait_for(other_process.communicate(), WAIT)
    assert out.decode().strip() == directory
    # And a default open, which joins the hub there, works.
    async with rxdb.open(tmp_path / "a.db") as db:
        await db.execute("CREATE TABLE t(x)")
        membership = sqlite_engine(db).membership
        assert isinstance(membership, hub.Membership)
        assert os.path.dirname(membership.path) == directory


async def test_an_unsafe_runtime_directory_of_ones_own_is_still_refused(
    no_runtime_dir: tuple[Path, Path],
) -> None:
    taken, _ = no_runtime_dir
    taken.mkdir(mode=0o755)
    taken.chmod(0o755)
    with pytest.raises(HubError, match="chmod 700"):
        socket_directory()


# ---------------------------------------------------------------------------------------
# A same-uid member's claims can cost runs, never skip one


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(lambda now: (now, (now + 1000) & 0xFFFFFFFF), id="the next 1000 commits"),
        pytest.param(lambda now: (now, (now + 1) & 0xFFFFFFFF), id="the next commit"),
        pytest.param(lambda now: (0, 0xFFFFFFFF), id="everything"),
        pytest.param(lambda now: ((now - 5) & 0xFFFFFFFF, (now + 5) & 0xFFFFFFFF), id="around"),
    ],
)
async def test_a_forged_claim_does_not_hide_a_plain_sqlite_commit(
    db_path: Path, forged: Any
) -> None:
    with contextlib.closing(sqlite3.connect(db_path)) as plain:
        # Another program, in WAL mode from the start: the poller's baseline has a counter.
        plain.execute("PRAGMA journal_mode=WAL")
        plain.execute("CREATE TABLE t(x)")
        plain.commit()
        async with rxdb.open(db_path, foreign_poll=0.005) as db:
            engine = sqlite_engine(db)
            poller = engine.poller
            assert poller is not None
            assert engine.wal_index is not None
            assert poller._seen is not None  # a claim can be believed from here on
            now = engine.wal_index.read()
            assert now is not None
            # What a buggy member sends: a claim of counter values it did not produce.
            claim = NotifyTablesUpdated(
                engine.key, "1:forger", 1, frozenset({TableUpdate("other")}), False, forged(now)
            )
            heard = asyncio.Event()
            listener = engine.bus.subscribe(engine.key, lambda message: heard.set())
            try:
                engine.bus.publish(claim)
                await asyncio.wait_for(heard.wait(), WAIT)
            finally:
                listener.close()
            recorder: Recorder[Any] = Recorder()
            with subscribed(db.watch("SELECT count(*) FROM t"), recorder):
                await recorder.wait_value([(0,)])
                plain.execute("INSERT INTO t VALUES (1)")
                plain.commit()
                await recorder.wait_value([(1,)])
            assert poller.foreign_commits >= 1


async def test_a_claim_of_more_than_one_transaction_is_ignored(db_path: Path) -> None:
    async with rxdb.open(db_path, foreign_poll=60) as db:
        engine = sqlite_engine(db)
        poller = engine.poller
        assert poller is not None
        assert engine.wal_index is not None
        await db.execute("CREATE TABLE t(x)")
        for _ in range(MAX_CLAIM_SPAN + 1):
            await db.execute("INSERT INTO t VALUES (1)")
        now = engine.wal_index.read()
        assert now is not None
        poller.claim(((now - MAX_CLAIM_SPAN - 1) & 0xFFFFFFFF, now))  # values that exist
        assert not poller._claimed
        poller.claim(((now - 1) & 0xFFFFFFFF, now))  # one that can be true
        assert poller._claimed == {now}


# ---------------------------------------------------------------------------------------
# A flood of resyncs costs a bounded number of runs, and its last one is delivered


class Flooder:
    """A member of the hub speaking raw frames: what a buggy same-uid process can send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.pending: list[bytes] = []

    @classmethod
    async def join(cls, path: str) -> Flooder:
        reader, writer = await asyncio.open_unix_connection(path)
        flooder = cls(reader, writer)
        flooder.send(Hello(None, "member", 1, "flood"))
        assert isinstance(await flooder.receive(), Welcome)
        return flooder

    def send(self, message: Message) -> None:
        self.writer.write(encode_frame(encode_message(message)))

    async def receive(self) -> Message:
        async with asyncio.timeout(WAIT):
            while not self.pending:
                data = await self.reader.read(65536)
                assert data, "the hub closed the connection"
                self.pending.extend(self.decoder.feed(data))
        return decode_message(self.pending.pop(0))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.mark.parametrize(
    "resync",
    [
        pytest.param(True, id="resyncs sent"),
        # Messages of a table nobody watches, each after a gap: each makes this process resync.
        pytest.param(False, id="resyncs caused by gaps"),
    ],
)
async def test_a_flood_of_resyncs_costs_few_runs_and_the_last_is_delivered(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, resync: bool
) -> None:
    # Long enough that no interval ends during the flood, however loaded the machine.
    monkeypatch.setattr(TUNING, "resync_interval", 3.0)
    flood = 100
    async with rxdb.open(db_path, foreign_poll=None) as db:
        await db.execute("CREATE TABLE t(x)")
        membership = sqlite_engine(db).membership
        assert isinstance(membership, hub.Membership)
        stream = db.watch("SELECT count(*) FROM t", distinct=False)
        recorder: Recorder[Any] = Recorder()
        flooder = await Flooder.join(membership.path)
        try:
            with subscribed(stream, recorder):
                await recorder.wait_count(1)
                for sequence in range(1, flood + 1):
                    if sequence == flood:  # changed behind everyone's back: only a resync shows it
                        with contextlib.closing(sqlite3.connect(db_path)) as plain:
                            plain.execute("INSERT INTO t VALUES (1)")
                            plain.commit()
                    message = NotifyTablesUpdated(
                        membership.key,
                        "1:flooder",
                        sequence if resync else 2 * sequence,
                        frozenset() if resync else frozenset({TableUpdate("unwatched")}),
                        everything=resync,
                    )
                    flooder.send(Notify(message, "flood"))
                    flooder.send(Ping(sequence))  # answered once the Notify was handled
                    assert await flooder.receive() == Pong(sequence)
                    if sequence < flood:
                        await settle(db)  # every run the message caused has been made
                        runs_during_flood = stream.statistics().runs
                await recorder.wait_value([(1,)])  # the last resync was not lost
            # Before: one run per resync (99 here). Now: the first, then one per interval (two
            # runs in all here, unless a loaded machine stretched the flood over intervals).
            assert runs_during_flood <= 10, runs_during_flood
            assert membership.statistics().coalesced >= flood - 10
        finally:
            await flooder.close()


# ---------------------------------------------------------------------------------------
# Refused connections: a bounded number of log lines, the peer's words escaped and cut


async def test_a_flood_of_bad_connections_logs_a_few_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="rxdb.remote")
    garbage = b"RXD\x01" + (10).to_bytes(4, "big") + b"\x92\x01\xd9\xff" + b"\x1b[31mA" * 60
    async with rxdb.open(":memory:") as db, await rxdb.serve(db) as server:
        for _ in range(40):
            sock = socket.socket(socket.AF_UNIX)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, server.handle.address)
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            writer.write(b"GET / " + garbage + b"x" * 300 + b"\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), WAIT) is not None
            writer.close()
            await writer.wait_closed()
        await server.wait_until(lambda: server.connections == 0)
    lines = [r.getMessage() for r in caplog.records if r.name == "rxdb.remote"]
    assert 1 <= len(lines) <= 10, lines  # before: 40
    for line in lines:
        assert "\x1b" not in line
        assert "\n" not in line
        assert len(line) < MAX_SHOWN + 200


def test_the_refusal_log_counts_what_it_does_not_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="test.refusals")
    now = [0.0]
    refusals = RefusalLog(
        logging.getLogger("test.refusals"), burst=3, window=10.0, clock=lambda: now[0]
    )
    for number in range(25):
        refusals.warn(f"connection #{number}", "bad\nbytes")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"connection #{n}: bad\\nbytes" for n in range(3)]
    now[0] = 10.5  # the next window: first the count, then the new refusal
    refusals.warn("connection #25", "late")
    assert caplog.records[3].getMessage().startswith("22 more connection(s) refused")
    assert caplog.records[4].getMessage() == "connection #25: late"
    refusals.flush()
    assert len(caplog.records) == 5  # nothing more was counted


async def test_the_count_is_logged_when_the_window_ends_even_if_no_refusal_follows() -> None:
    counted = asyncio.Event()

    class Watcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "more connection(s) refused" in record.getMessage():
                counted.set()

    log = logging.getLogger("test.refusals.timer")
    watcher = Watcher()
    log.addHandler(watcher)
    try:
        refusals = RefusalLog(log, burst=1, window=0.05)
        for number in range(5):
            refusals.warn(f"connection #{number}", "bad")
        await asyncio.wait_for(counted.wait(), WAIT)  # the window's timer said it
    finally:
        log.removeHandler(watcher)


def test_shown_escapes_and_cuts() -> None:
    assert shown("a\x1b[2Jb\r\n") == "a\\x1b[2Jb\\r\\n"
    long = shown("x" * 1000)
    assert long.startswith("x" * MAX_SHOWN)
    assert long.endswith("(840 more characters)")


async def test_the_hub_refuses_another_uid(shared_dir: Path) -> None:
    """The hub's check, with the shared rule (its own uid and root only)."""
    directory = shared_dir / "hub"
    membership = await hub.join("/k.db", Bus(), local_origins=frozenset, directory=str(directory))
    try:
        directory.chmod(0o755)
        os.chmod(membership.path, 0o666)  # a mistake, as above
        hello = encode_frame(encode_message(Hello(None, "member", 1, "other")))
        process = await asyncio.create_subprocess_exec(
            *as_other(other_python(), "-c", OTHER_CLIENT, membership.path, hello.hex()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), WAIT)
        assert process.returncode == 0, err.decode()
        replies = frames(bytes.fromhex(out.decode().strip()))
        assert isinstance(replies[-1], Refused)
        assert f"uid {OTHER}" in replies[-1].reason
    finally:
        directory.chmod(0o700)
        await membership.leave()
