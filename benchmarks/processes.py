"""#3: commit -> emission when the writer is another process, through the hub, against a raw
Unix-socket round trip between two processes.

The watching process (this one) opens the file first, so it hosts the hub; the writer is a
child process (``python -m benchmarks._writer``) that joins as a member. Both open the file
with ``foreign_poll=None``: with ``PRAGMA data_version`` polling off, the hub is the only
path by which the writer's commits can reach the watch. The writer stamps each commit in
``SQLiteEngine._publish`` (:class:`CommitClock`), this process stamps each emission
(:class:`ValueWaiter`), both with ``CLOCK_MONOTONIC``, which is one clock for every process
of the machine. Commits are ``process_gap`` apart (an idle writer, as in real use).

The floor 3.f is the same road built from raw parts: a child (``python -m benchmarks._writer
... SOCKET``) commits with plain :mod:`sqlite3` and writes a byte to a Unix socket right after
each commit; here a thread blocked on that socket reads the query on its own :mod:`sqlite3`
connection and hands the value to the loop with one ``call_soon_threadsafe``. It stamps the
same instants the same way. #3 and 3.f alternate, :data:`ROUNDS` rounds each (their samples
split between them, each round after its own warm-up), so that both see the same machine.

The baseline, in the same run just before: a child echo server (``python -m
benchmarks._echo``, plain blocking sockets) and, in this process, an asyncio-streams client
on the same event loop kind that receives the hub's messages, sending a 90-byte message and
reading it back, once every ``process_gap``. A plain blocking-socket client is reported
beside it, for the cost of asyncio on the client side.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import os
import socket
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import rxdb
from rxdb.remote.hub import Membership

from ._common import (
    PRAGMAS,
    Figure,
    Results,
    Sizes,
    ValueWaiter,
    monotonic,
    sqlite_engine,
    summary,
    workdir,
)

MS = 1e3
QUERY = "SELECT v FROM counter WHERE id = 1"
MESSAGE = bytes(range(90))  # about one Notify frame of a single-table commit
ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.asynccontextmanager
async def _child(*args: str) -> Any:
    """A ``python -m benchmarks.<module>`` child, reaped whatever happens (killed if it is
    still running when the block ends)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, cwd=ROOT, env=_environment(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.communicate()


async def _ready(proc: asyncio.subprocess.Process, what: str) -> str:
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    if not line.startswith("ready"):
        _, err = await proc.communicate()
        raise RuntimeError(f"{what} did not start: {line!r} {err.decode()[-2000:]}")
    return line


async def _finish(proc: asyncio.subprocess.Process, what: str, limit: float) -> str:
    out, err = await asyncio.wait_for(proc.communicate(), limit)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited with {proc.returncode}: {err.decode()[-2000:]}")
    return out.decode()


async def _echo(sizes: Sizes, tmp: str) -> dict[str, list[float]]:
    """Round trips (ms) to an echo server in another process: asyncio streams, then plain
    blocking sockets; warm-up excluded."""
    path = os.path.join(tmp, "echo.sock")
    total = sizes.warmup + sizes.process_samples
    out: dict[str, list[float]] = {"asyncio": [], "socket": []}
    async with _child("benchmarks._echo", path, "2") as proc:
        await _ready(proc, "the echo server")
        reader, writer = await asyncio.open_unix_connection(path)
        try:
            for n in range(total):
                await asyncio.sleep(sizes.process_gap)
                t0 = monotonic()
                writer.write(MESSAGE)
                await reader.readexactly(len(MESSAGE))
                t1 = monotonic()
                if n >= sizes.warmup:
                    out["asyncio"].append((t1 - t0) * MS)
        finally:
            writer.close()
            await writer.wait_closed()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            for n in range(total):
                await asyncio.sleep(sizes.process_gap)
                t0 = monotonic()
                sock.sendall(MESSAGE)
                got = 0
                while got < len(MESSAGE):
                    got += len(sock.recv(len(MESSAGE) - got))
                t1 = monotonic()
                if n >= sizes.warmup:
                    out["socket"].append((t1 - t0) * MS)
        await _finish(proc, "the echo server", 10)
    return out


async def _hub(
    sizes: Sizes, tmp: str, round_: int = 0, samples: int | None = None
) -> dict[str, Any]:
    """Commit -> emission (ms) with the writer in a child process: ``samples`` of them
    (``sizes.process_samples`` unless told) after the warm-up."""
    samples = sizes.process_samples if samples is None else samples
    path = os.path.join(tmp, f"processes-{round_}.db")
    total = sizes.warmup + samples
    lock = ""
    try:
        async with rxdb.open(path, foreign_poll=None) as db:
            lock = _lock_file(db.key)
            await db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER)")
            await db.execute("INSERT INTO counter VALUES (1, -1)")
            waiter = ValueWaiter(monotonic)
            subscription = db.watch(QUERY).subscribe(waiter)
            try:
                await waiter.expect(-1)
                args = ("benchmarks._writer", path, str(total), repr(sizes.process_gap))
                async with _child(*args) as proc:
                    role = (await _ready(proc, "the writer")).split()[1]
                    text = await _finish(proc, "the writer", 30 + total * sizes.process_gap)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.expect(total - 1), 2.0)
            finally:
                subscription.dispose()
            membership = sqlite_engine(db).membership
            stats = membership.statistics() if isinstance(membership, Membership) else None
    finally:
        # rxdb never removes the election lock (by design); this file's key is ours alone and
        # both processes have left, so it goes with the temporary directory.
        if lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
    emit, start_emit, coalesced = _latencies(_written(text), waiter.seen, sizes.warmup)
    return {
        "emit": emit,
        "start_emit": start_emit,
        "coalesced": coalesced,
        "missed": samples - len(emit),
        "writer role": role,
        "watcher": stats,
    }


async def _floor(sizes: Sizes, tmp: str, round_: int, samples: int) -> dict[str, Any]:
    """3.f: commit -> value on the loop (ms) by #3's road built from raw parts."""
    path = os.path.join(tmp, f"floor-{round_}.db")
    address = os.path.join(tmp, f"floor-{round_}.sock")
    total = sizes.warmup + samples
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for pragma in PRAGMAS:
            db.execute(pragma)
        db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER)")
        db.execute("INSERT INTO counter VALUES (1, -1)")
    loop = asyncio.get_running_loop()
    seen: dict[Any, float] = {}

    def arrived(value: Any) -> None:
        seen.setdefault(value, monotonic())

    def watch(server: socket.socket) -> None:
        # Blocked on the socket; each byte (or several, bunched) means "a commit".
        conn, _ = server.accept()
        with conn, contextlib.closing(sqlite3.connect(path, isolation_level=None)) as reader:
            while conn.recv(64):
                ((value,),) = reader.execute(QUERY).fetchall()
                loop.call_soon_threadsafe(arrived, value)

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(address)
        server.listen(1)
        server.settimeout(30)
        thread = threading.Thread(target=watch, args=(server,), name="3.f watcher", daemon=True)
        thread.start()
        args = ("benchmarks._writer", path, str(total), repr(sizes.process_gap), address)
        async with _child(*args) as proc:
            await _ready(proc, "the raw writer")
            text = await _finish(proc, "the raw writer", 30 + total * sizes.process_gap)
        await loop.run_in_executor(None, thread.join, 10.0)
    await asyncio.sleep(0)  # the last values the thread handed over
    emit, _, _ = _latencies(_written(text), seen, sizes.warmup)
    return {"emit": emit, "missed": samples - len(emit)}


def _written(text: str) -> dict[int, tuple[float, float]]:
    """A writer's report: value -> (start, commit) instants."""
    lines = [line.split() for line in text.splitlines()]
    return {int(v): (float(s), float(c)) for v, s, c in lines}


def _latencies(
    written: dict[int, tuple[float, float]], seen: dict[Any, float], warmup: int
) -> tuple[list[float], list[float], int]:
    """Commit -> emission and write start -> emission (ms) of each commit after ``warmup``,
    and how many of them were coalesced.

    A commit whose value never shows alone (the watch coalesced it with a later one, as it
    should when commits bunch up) is seen with the first later value that does show."""
    emit, start_emit, coalesced = [], [], 0
    shown = sorted(v for v in seen if isinstance(v, int))
    for value, (start, committed) in written.items():
        later = shown[bisect.bisect_left(shown, value) :]
        if value < warmup or not later:
            continue
        coalesced += later[0] != value
        emit.append((seen[later[0]] - committed) * MS)
        start_emit.append((seen[later[0]] - start) * MS)
    return emit, start_emit, coalesced


def _lock_file(key: str) -> str:
    from rxdb.remote import hub

    return hub.socket_path(key, hub.socket_directory()) + ".lock"


async def run(sizes: Sizes, results: Results) -> None:
    hubs: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    with workdir() as tmp:
        echo = await _echo(sizes, tmp)
        for round_ in range(ROUNDS):
            samples = sizes.process_samples // ROUNDS + (round_ < sizes.process_samples % ROUNDS)
            floors.append(await _floor(sizes, tmp, round_, samples))
            hubs.append(await _hub(sizes, tmp, round_, samples))
    hub: dict[str, Any] = {
        key: [*itertools.chain.from_iterable(h[key] for h in hubs)]
        for key in ("emit", "start_emit")
    }
    hub.update({key: sum(h[key] for h in hubs) for key in ("coalesced", "missed")})
    hub.update({key: hubs[-1][key] for key in ("writer role", "watcher")})
    floor = [*itertools.chain.from_iterable(f["emit"] for f in floors)]
    floor_missed = sum(f["missed"] for f in floors)
    e = summary(hub["emit"])
    f = summary(floor)
    rt = summary(echo["asyncio"])
    watcher = hub["watcher"]
    params = {
        "samples": sizes.process_samples,
        "warmup": sizes.warmup,
        "gap": f"{sizes.process_gap * MS:.0f} ms between commits (and between echo trips)",
        "query": QUERY,
        "writer": "child process: python -m benchmarks._writer, rxdb.open(path, "
        "foreign_poll=None), one UPDATE per commit",
        "watcher": "this process, rxdb.open(path, foreign_poll=None): only the hub carries "
        "the change",
        "roles": f"watcher {watcher.role if watcher else '?'}, writer {hub['writer role']}",
        "clock": "CLOCK_MONOTONIC in both processes; commit = SQLiteEngine._publish in the writer",
        "baseline": "90-byte echo to a child process (plain blocking server); client on this "
        "loop with asyncio streams",
        "coalesced (seen with a later commit's emission)": hub["coalesced"],
        "missed (never seen)": hub["missed"],
        "rounds": f"{ROUNDS}, alternating with 3.f's, each after its own warm-up",
    }
    results.add(
        Figure(
            "3", "commit -> emission, writer in another process (hub)", e["median"], "ms",
            rt["median"], "raw Unix-socket round trip, asyncio client",
            e["median"] / rt["median"], "median <= 0.5 ms, p99 <= 2 ms (issue #14)", params=params,
            extra={"rxdb": e, "round_trip": rt,
                   "round_trip, blocking-socket client": summary(echo["socket"]),
                   "write_start_to_emission": summary(hub["start_emit"])},
        )
    ).judge(hub["missed"] == 0 and e["median"] <= 0.5 and e["p99"] <= 2.0)  # fmt: skip
    floor_params = {
        "floor": "child: plain sqlite3 UPDATE (autocommit, synchronous=NORMAL), stamp, send "
        "1 byte on a Unix socket; here: a thread blocked in recv runs the query on its own "
        "sqlite3 connection, call_soon_threadsafe; the loop stamps",
        "rounds": f"{ROUNDS}, alternating with #3's, each after its own warm-up",
        "missed (never seen)": floor_missed,
    }
    results.add(
        Figure(
            "3.f", "floor of #3: raw commit, a byte on a socket, read on a thread, one wake-up",
            f["median"], "ms", rt["median"], "raw Unix-socket round trip, asyncio client",
            f["median"] / rt["median"], "(floor, no bar)", params=floor_params,
            extra={"floor": f},
        )
    ).judge(None)  # fmt: skip
    results.series["processes"] = {
        "#3 other process: commit -> emission": hub["emit"],
        "3.f floor: commit -> value on the loop": floor,
        "raw Unix-socket round trip": echo["asyncio"],
    }
