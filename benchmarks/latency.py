"""#1, #1b, #2: how soon a watch sees a commit, against one raw aiosqlite round trip.

The commit instant comes from :class:`CommitClock` (instrumentation on ``SQLiteEngine._publish``,
which the writer thread calls right after the outermost COMMIT). Every write is followed, in
the same iteration, by one raw ``execute_fetchall`` of the watched query on a plain aiosqlite
connection: the baseline is measured interleaved with the figure, never in another phase.

The floor of #1 (``1.f``) is the same path built from raw aiosqlite, also interleaved: a
write on one connection's thread stamps its commit and wakes the loop
(``call_soon_threadsafe``), which starts a task that runs the watched query with
``execute_fetchall`` on a second connection. It costs what any library on this stack pays
(a loop wake-up, then a reader round trip), and none of rxdb's work.

The raw baselines write to a second file with the same table (``RAW_FILE``): a raw write to
the watched file is a foreign commit to rxdb, which then re-runs the watch (every watch of
the file, as for any foreign writer); that re-run, caused by the baseline, was often still in
flight when the next measured commit came, and the measured emission waited behind it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

import rxdb

from ._common import (
    CommitClock,
    Figure,
    LoopThread,
    Results,
    Sizes,
    ValueWaiter,
    clock,
    idle,
    last_cpu,
    median,
    one_cpu,
    percentile,
    raw_connection,
    sqlite_engine,
    summary,
    workdir,
)

QUERY = "SELECT v FROM counter WHERE id = 1"
UPDATE = "UPDATE counter SET v = ? WHERE id = 1"
RAW_WRITE = "UPDATE counter SET v = ? WHERE id = 2"
RAW_FILE = "latency-raw-writes.db"
"""Where the raw baselines write (see the module's docstring)."""
MS = 1e3


SCHEMA = (
    "CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
    "INSERT INTO counter VALUES (1, -1), (2, -1)",
)


async def _prepare(db: rxdb.Database) -> None:
    for statement in SCHEMA:
        await db.execute(statement)


@asynccontextmanager
async def _raw_writer(tmp: str) -> AsyncIterator[aiosqlite.Connection]:
    """A raw connection to a file of its own with the same table, for the raw writes."""
    async with raw_connection(os.path.join(tmp, RAW_FILE)) as conn:
        if not await conn.execute_fetchall("SELECT 1 FROM sqlite_schema"):
            for statement in SCHEMA:
                await conn.execute(statement)
        yield conn


async def _floor(writer: aiosqlite.Connection, reader: aiosqlite.Connection, value: int) -> float:
    """Commit -> result, raw aiosqlite: the writer's thread stamps its commit and wakes the
    loop, whose new task reads the watched query on ``reader``. Seconds."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    keep: list[Any] = []

    async def read() -> None:
        await reader.execute_fetchall(QUERY)
        done.set_result(clock())

    def kick() -> None:
        keep.append(loop.create_task(read()))

    def write_and_signal() -> float:
        writer._conn.execute(RAW_WRITE, (value,))
        committed = clock()
        loop.call_soon_threadsafe(kick)
        return committed

    committed: float = await writer._execute(write_and_signal)  # type: ignore[no-untyped-call]
    return await done - committed


async def _floor_on_writer(writer: aiosqlite.Connection, value: int) -> float:
    """Commit -> result, raw aiosqlite, by the road rxdb's eager re-runs take: the writer's
    thread stamps its commit, reads the query on its own connection, and hands the rows to
    the loop in one ``call_soon_threadsafe``. Seconds."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()

    def arrived(rows: list[Any]) -> None:
        done.set_result(clock())

    def write_read_and_signal() -> float:
        conn = writer._conn
        conn.execute(RAW_WRITE, (value,))
        committed = clock()
        loop.call_soon_threadsafe(arrived, conn.execute(QUERY).fetchall())
        return committed

    committed: float = await writer._execute(write_read_and_signal)  # type: ignore[no-untyped-call]
    return await done - committed


def _thread_of(conn: aiosqlite.Connection) -> int | None:
    """The native id of ``conn``'s worker thread (aiosqlite keeps it private)."""
    thread = getattr(conn, "_thread", None)
    return thread.native_id if isinstance(thread, threading.Thread) else None


def _with_loop(thread: int | None, loop_cpu: int | None) -> float | None:
    """1.0 if ``thread`` last ran on the loop's CPU, 0.0 if elsewhere, ``None`` if unknown."""
    cpu = None if thread is None else last_cpu(thread)
    return None if cpu is None or loop_cpu is None else float(cpu == loop_cpu)


async def _writer_done(db: rxdb.Database) -> None:
    """Wait until the writer's thread has done what it does after a write's result is on its
    way (the foreign-write poller's state reading, and the loop's look it may nudge): the
    baselines that follow are measured with rxdb at rest, not beside that work."""
    await db.execute("SELECT 1")  # the writer's thread takes it after that work: FIFO


async def _measure(
    sizes: Sizes,
    db: rxdb.Database,
    raw: aiosqlite.Connection,
    stream: rxdb.QueryStream,
    waiter: ValueWaiter,
    commits: CommitClock,
    first: int,
    raw_writer: aiosqlite.Connection,
    floor: bool = False,
) -> dict[str, list[float]]:
    """One write -> emission measurement per iteration, each followed by the baselines: a raw
    round trip of the watched query on ``raw``, a raw autocommit write on ``raw_writer`` (a
    file of its own) — the floor of "write start -> emission" on this stack — and, with
    ``floor``, the floor of commit -> emission (see the module).

    Where Linux tells, each iteration also notes whether rxdb's writer thread and the round
    trip's thread ran on the loop's CPU (``writer_with_loop``, ``raw_with_loop``: 1.0 or
    0.0), read from ``/proc`` once each has run, outside the timed spans: for 1.p."""
    out: dict[str, list[float]] = {
        "emit": [], "start_emit": [], "rt": [], "raw_write": [], "floor": [],
        "floor_on_writer": [], "writer_with_loop": [], "raw_with_loop": [],
    }  # fmt: skip
    writer = sqlite_engine(db)._writer
    writer_thread = None if writer is None else _thread_of(writer.worker._conn)
    raw_thread = _thread_of(raw)
    for n in range(sizes.warmup + sizes.latency_samples):
        i = first + n
        arrival = waiter.expect(i)
        start = clock()
        await db.execute(UPDATE, (i,))
        emitted = await arrival
        committed = commits.last
        loop_cpu = last_cpu(threading.get_native_id())
        writer_placed = _with_loop(writer_thread, loop_cpu)
        await idle(stream)
        await _writer_done(db)
        t0 = clock()
        await raw.execute_fetchall(QUERY)
        t1 = clock()
        raw_placed = _with_loop(raw_thread, last_cpu(threading.get_native_id()))
        await raw_writer.execute(RAW_WRITE, (i,))
        t2 = clock()
        floored = await _floor(raw_writer, raw, i) if floor else None
        on_writer = await _floor_on_writer(raw_writer, i) if floor else None
        if n >= sizes.warmup:
            out["emit"].append((emitted - committed) * MS)
            out["start_emit"].append((emitted - start) * MS)
            out["rt"].append((t1 - t0) * MS)
            out["raw_write"].append((t2 - t1) * MS)
            if floored is not None and on_writer is not None:
                out["floor"].append(floored * MS)
                out["floor_on_writer"].append(on_writer * MS)
            if writer_placed is not None and raw_placed is not None:
                out["writer_with_loop"].append(writer_placed)
                out["raw_with_loop"].append(raw_placed)
    return out


async def run(sizes: Sizes, results: Results) -> None:
    total = sizes.warmup + sizes.latency_samples
    with workdir() as tmp:
        path = os.path.join(tmp, "latency.db")
        async with (
            rxdb.open(path, synchronous="full") as db,
            raw_connection(path) as raw,
            _raw_writer(tmp) as raw_writer,
        ):
            async with _watched(db) as (stream, waiter, commits):
                full = await _measure(
                    sizes, db, raw, stream, waiter, commits, 0, raw_writer, floor=True
                )
                # The same with synchronous=NORMAL on both writers (WAL: no fsync per commit).
                await db.execute("PRAGMA synchronous = NORMAL")
                await raw_writer.execute("PRAGMA synchronous = NORMAL")
                normal = await _measure(sizes, db, raw, stream, waiter, commits, total, raw_writer)
                await db.execute("PRAGMA synchronous = FULL")
                await raw_writer.execute("PRAGMA synchronous = FULL")
            thread_emit, thread_start_emit = await _other_thread(sizes, db, path, 2 * total)
        no_hub = await _variant(sizes, tmp, "nohub", share_across_processes=False)
        held = await _on_one_cpu(sizes, tmp)

    emit, start_emit, round_trip = full["emit"], full["start_emit"], full["rt"]
    rt_median = median(round_trip)
    floor_1 = median(full["floor"])
    floor_1b = median([w + r for w, r in zip(full["raw_write"], round_trip, strict=True)])
    params = {
        "samples": sizes.latency_samples,
        "warmup": sizes.warmup,
        "query": QUERY,
        "write": UPDATE,
        "files": "one WAL file in a temporary directory (the raw writes: a second file, "
        "RAW_FILE), synchronous=FULL on both writers "
        "(SQLite's default; rxdb's is NORMAL, asked for FULL here: 1b.n is both at NORMAL)",
        "commit instant": "CommitClock: SQLiteEngine._publish wrapped on the instance",
    }
    e = summary(emit)
    results.add(
        Figure(
            "1", "commit -> emission, trivial query", e["median"], "ms",
            rt_median, "raw aiosqlite execute_fetchall round trip",
            e["median"] / rt_median, "median <= 2x round trip; p99 <= 2 ms",
            params=params,
            extra={"rxdb": e, "round_trip": summary(round_trip),
                   "floor (1.f)": summary(full["floor"]),
                   "rxdb / floor": e["median"] / floor_1},
        )
    ).judge(e["median"] <= 2 * rt_median and e["p99"] <= 2.0)  # fmt: skip
    results.add(
        Figure(
            "1.f", "floor of #1: the same path in raw aiosqlite (commit, loop wake-up, read)",
            floor_1, "ms", rt_median, "raw round trip", floor_1 / rt_median, "(floor, no bar)",
            params={**params, "floor": "writer thread: UPDATE row 2, stamp, "
                    "call_soon_threadsafe -> task -> execute_fetchall(query) on the round "
                    "trip's connection"},
            extra={"floor": summary(full["floor"])},
        )
    )  # fmt: skip
    floor_e = median(full["floor_on_writer"])
    results.add(
        Figure(
            "1.fe", "floor of #1 by the eager road: commit, read on the writer, one wake-up",
            floor_e, "ms", rt_median, "raw round trip", floor_e / rt_median, "(floor, no bar)",
            params={**params, "floor": "writer thread: UPDATE row 2, stamp, the query on the "
                    "same connection, call_soon_threadsafe(rows) -> loop"},
            extra={"floor": summary(full["floor_on_writer"])},
        )
    )  # fmt: skip
    h, h_rt = summary(no_hub["emit"]), median(no_hub["rt"])
    results.add(
        Figure(
            "1.nh", "#1 with share_across_processes=False (no hub link in this process)",
            h["median"], "ms", h_rt, "raw round trip (same phase)", h["median"] / h_rt,
            "(diagnostic, no bar)",
            params={**params, "files": "a second WAL file, synchronous=FULL, opened alone"},
            extra={"rxdb": h, "round_trip": summary(no_hub["rt"])},
        )
    )  # fmt: skip
    if held is not None:
        o, o_rt = summary(held["emit"]), median(held["rt"])
        results.add(
            Figure(
                "1.1", "#1 with every thread held to one CPU (diagnostic)", o["median"], "ms",
                o_rt, "raw round trip (same phase, same CPU)", o["median"] / o_rt,
                "(diagnostic, no bar)",
                params={**params, "files": "a third WAL file, synchronous=FULL",
                        "cpu": "os.sched_setaffinity on every thread of the process, those "
                        "started meanwhile inheriting it; put back afterwards"},
                extra={"rxdb": o, "round_trip": summary(held["rt"])},
            )
        )  # fmt: skip
    placed = _by_placement(full)
    if placed is not None:
        results.add(placed)
    s = summary(start_emit)
    results.add(
        Figure(
            "1b", "write start -> emission (await db.execute(update) .. watch emits)",
            s["median"], "ms", rt_median, "raw aiosqlite execute_fetchall round trip",
            s["median"] / rt_median, "median <= 3x round trip (litewriter ~0.27 ms)",
            params=params,
            extra={"rxdb": s, "round_trip": summary(round_trip),
                   "floor: raw autocommit write + raw round trip (ms)": floor_1b,
                   "raw write (ms)": summary(full["raw_write"])},
        )
    ).judge(s["median"] <= 3 * rt_median)  # fmt: skip
    results.add(
        Figure(
            "1b.f", "floor of #1b: raw aiosqlite write (autocommit, FULL) + raw round trip",
            floor_1b, "ms", rt_median, "raw round trip", floor_1b / rt_median,
            "(floor, no bar)", params=params,
        )
    )  # fmt: skip
    n_rt = median(normal["rt"])
    n_s = summary(normal["start_emit"])
    n_floor = median([w + r for w, r in zip(normal["raw_write"], normal["rt"], strict=True)])
    results.add(
        Figure(
            "1b.n", "#1b with synchronous=NORMAL on both sides (no fsync per WAL commit)",
            n_s["median"], "ms", n_rt, "raw round trip (same phase)", n_s["median"] / n_rt,
            "median <= 3x round trip", params={**params, "files": "synchronous=NORMAL"},
            extra={"rxdb": n_s, "commit -> emission": summary(normal["emit"]),
                   "floor: raw write + raw round trip (ms)": n_floor,
                   "raw write (ms)": summary(normal["raw_write"])},
        )
    ).judge(n_s["median"] <= 3 * n_rt)  # fmt: skip
    t = summary(thread_emit)
    results.add(
        Figure(
            "2", "commit -> emission, writer in another thread (own loop, own Database)",
            t["median"], "ms", rt_median, "raw aiosqlite round trip (for scale)",
            t["median"] / rt_median, "median <= 1 ms",
            params={**params, "writer": "thread with its own loop and rxdb.open(same path)"},
            extra={"rxdb": t, "write_start_to_emission": summary(thread_start_emit)},
        )
    ).judge(t["median"] <= 1.0)  # fmt: skip
    results.series["latency"] = {
        "#1 commit -> emission": emit,
        "#1b write start -> emission": start_emit,
        "#1b, synchronous=NORMAL": normal["start_emit"],
        "#2 other thread: commit -> emission": thread_emit,
        "raw aiosqlite round trip": round_trip,
    }
    results.series["latency_p99"] = {"#1": percentile(emit, 99)}


PLACEMENTS = {
    (1.0, 1.0): "both on the loop's CPU",
    (0.0, 0.0): "both on another CPU than the loop's",
    (0.0, 1.0): "rxdb's writer on another CPU, the round trip's thread on the loop's",
    (1.0, 0.0): "rxdb's writer on the loop's CPU, the round trip's thread on another",
}
"""The four ways #1's two threads can sit, each beside the loop's CPU or not (1.p)."""


def _by_placement(full: dict[str, list[float]]) -> Figure | None:
    """1.p: #1 over the iterations where rxdb's writer and the round trip's thread sat alike
    beside the loop (both on its CPU, or both not), and each of the four ways apart: on two
    vCPUs a wake-up across CPUs costs more than the whole path on one, so an iteration whose
    two threads sat differently compares the scheduler's placements, not the two roads.
    ``None`` where the placements are not known (not Linux)."""
    emit, rt = full["emit"], full["rt"]
    writer, raw = full["writer_with_loop"], full["raw_with_loop"]
    if not emit or len(writer) != len(emit):
        return None
    ways: dict[str, dict[str, float]] = {}
    for key, label in PLACEMENTS.items():
        chosen = [i for i, way in enumerate(zip(writer, raw, strict=True)) if way == key]
        if chosen:
            ours, raws = median([emit[i] for i in chosen]), median([rt[i] for i in chosen])
            ways[label] = {"samples": len(chosen), "rxdb (ms)": ours,
                           "round trip (ms)": raws, "ratio": ours / raws}  # fmt: skip
    alike = [i for i in range(len(emit)) if writer[i] == raw[i]]
    mine = median([emit[i] for i in alike]) if alike else None
    theirs = median([rt[i] for i in alike]) if alike else None
    return Figure(
        "1.p", "#1 where rxdb's writer and the round trip's thread sat alike (diagnostic)",
        mine, "ms", theirs, "raw round trip, the same iterations",
        None if mine is None or theirs is None else mine / theirs, "(diagnostic, no bar)",
        params={"placement": "each thread's CPU read from /proc/self/task/<id>/stat once it "
                "has run, against the loop's CPU at the emission (at the round trip's end)",
                "alike": f"{len(alike)} of {len(emit)} iterations"},
        extra={"ways": ways},
    )  # fmt: skip


async def _other_thread(
    sizes: Sizes, db: rxdb.Database, path: str, total: int
) -> tuple[list[float], list[float]]:
    """#2: the main loop watches ``db``; a thread with its own loop writes through its own
    Database on the same file. Both share the process-wide bus."""
    thread = LoopThread()
    try:
        writer = await thread.submit(_open(path))
        try:
            commits = CommitClock(writer)
            waiter = ValueWaiter()
            stream = db.watch(QUERY)
            subscription = stream.subscribe(waiter)
            try:
                await waiter.expect(total - 1)
                emit, start_emit = [], []
                for i in range(sizes.warmup + sizes.latency_samples):
                    value = total + i
                    arrival = waiter.expect(value)
                    start = clock()
                    await thread.submit(writer.execute(UPDATE, (value,)))
                    emitted = await arrival
                    await idle(stream)
                    if i >= sizes.warmup:
                        emit.append((emitted - commits.last) * MS)
                        start_emit.append((emitted - start) * MS)
                return emit, start_emit
            finally:
                subscription.dispose()
        finally:
            await thread.submit(writer.close())
    finally:
        thread.close()


async def _open(path: str) -> rxdb.Database:
    return await rxdb.open(path, synchronous="full")


async def _variant(sizes: Sizes, tmp: str, name: str, **options: Any) -> dict[str, list[float]]:
    """#1 again, on a database file of its own opened with ``options``, its baseline measured
    in the same phase: 1.nh (``share_across_processes=False``: what the hub costs the commit
    -> emission path when no other process is there), and 1.1 (held to one CPU by the
    caller)."""
    path = os.path.join(tmp, f"latency-{name}.db")
    async with (
        rxdb.open(path, synchronous="full", **options) as db,
        raw_connection(path) as raw,
        _raw_writer(tmp) as raw_writer,
        _watched(db) as (stream, waiter, commits),
    ):
        return await _measure(sizes, db, raw, stream, waiter, commits, 0, raw_writer)


async def _on_one_cpu(sizes: Sizes, tmp: str) -> dict[str, list[float]] | None:
    """#1 with every thread of this process held to one CPU, those the database and the raw
    connections start included (they inherit this thread's): rxdb's road without the
    scheduler's placement of its threads, which moves #1 and its baseline on small VMs
    (docs/benchmarks.md, tenth pass). ``None`` where threads cannot be pinned."""
    with one_cpu() as pinned:
        return await _variant(sizes, tmp, "one-cpu") if pinned else None


@asynccontextmanager
async def _watched(
    db: rxdb.Database,
) -> AsyncIterator[tuple[rxdb.QueryStream, ValueWaiter, CommitClock]]:
    """The measured set-up: the table, a commit clock, and a watch that has emitted."""
    await _prepare(db)
    commits = CommitClock(db)
    waiter = ValueWaiter()
    stream = db.watch(QUERY)
    subscription = stream.subscribe(waiter)
    try:
        await waiter.expect(-1)
        yield stream, waiter, commits
    finally:
        subscription.dispose()
