"""#11: the polling alternative (re-run the query every N ms) against an rxdb watch, and #4:
a plain ``sqlite3`` writer that is not rxdb, seen by a watch, told by inotify (4) against its
floor (an inotify wake-up straight to a raw read), and with inotify forced off (4p: polling
``PRAGMA data_version`` every 50 ms) against a 100 ms polling loop; 4cpu is the idle CPU of
the two.

Every mode runs for the same wall time with the same writes (one every ``interval`` s, with
seeded jitter so polls do not phase-lock with writes). CPU is ``time.process_time()`` of the
whole process over the period, shown next to a "writes only" mode so the cost of watching
(or polling) is the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from typing import Any
from unittest import mock

import rxdb
from rxdb.engines.sqlite.wal_watch import FileWatch

from ._common import (
    CommitClock,
    Figure,
    Results,
    Sizes,
    ValueWaiter,
    clock,
    median,
    raw_connection,
    sqlite_engine,
    summary,
    workdir,
)

MS = 1e3
QUERY = "SELECT v FROM counter WHERE id = 1"
UPDATE = "UPDATE counter SET v = ? WHERE id = 1"


def _gaps(sizes: Sizes, seed: int) -> list[float]:
    rng = random.Random(seed)
    count = max(2, int(sizes.poll_seconds / sizes.poll_write_interval))
    return [sizes.poll_write_interval * rng.uniform(0.7, 1.3) for _ in range(count)]


async def _poller(path: str, every: float, seen: dict[int, float], stop: asyncio.Event) -> None:
    async with raw_connection(path) as conn:
        while not stop.is_set():
            rows = await conn.execute_fetchall(QUERY)
            value = next(iter(rows))[0]
            seen.setdefault(value, clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


async def _mode(
    sizes: Sizes, db: rxdb.Database, path: str, mode: str, base: int, commits: CommitClock
) -> dict[str, Any]:
    """Run one mode for the period; return latencies (ms) and CPU (% of one core)."""
    seen: dict[int, float] = {}
    stop = asyncio.Event()
    poller = subscription = None
    waiter = ValueWaiter()
    if mode == "watch":
        subscription = db.watch(QUERY).subscribe(waiter)
        await waiter.expect(base - 1)
    elif mode.startswith("poll"):
        every = int(mode.split()[1]) / MS
        poller = asyncio.create_task(_poller(path, every, seen, stop))
        await asyncio.sleep(0.05)
    committed: dict[int, float] = {}
    gaps = _gaps(sizes, base)
    cpu0, wall0 = time.process_time(), clock()
    try:
        for i, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            await db.execute(UPDATE, (base + i,))
            committed[base + i] = commits.last
        await asyncio.sleep(sizes.poll_write_interval)  # let the last write be seen
        cpu = (time.process_time() - cpu0) / (clock() - wall0) * 100
    finally:
        stop.set()
        if poller is not None:
            await poller
        if subscription is not None:
            subscription.dispose()
    if mode == "watch":
        seen = waiter.seen
    latencies = [(seen[v] - t) * MS for v, t in committed.items() if v in seen]
    return {"latency": latencies, "missed": len(committed) - len(latencies), "cpu": cpu}


def _foreign_writer(sizes: Sizes, path: str, base: int, committed: dict[int, float]) -> None:
    """What another program does: its own plain sqlite3 connection (SQLite's defaults: WAL
    as the file says, synchronous=FULL), one commit per write."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        for i, gap in enumerate(_gaps(sizes, base)):
            time.sleep(gap)
            conn.execute(UPDATE, (base + i,))
            committed[base + i] = clock()
        time.sleep(sizes.poll_write_interval)
    finally:
        conn.close()


def _latencies(committed: dict[int, float], seen: dict[int, float]) -> list[float]:
    return [(seen[v] - t) * MS for v, t in committed.items() if v in seen]


async def _foreign_watch(sizes: Sizes, path: str, told: bool, base: int) -> dict[str, Any]:
    """#4: a plain sqlite3 writer thread; a watch of a database of its own sees it, told by
    the file watch (inotify) or, with it forced off, by polling every 50 ms (the default
    ``foreign_poll``). Idle CPU is measured first: the watch open, nobody writing."""
    with contextlib.ExitStack() as stack:
        if not told:  # what a platform without inotify gets
            stack.enter_context(mock.patch.object(FileWatch, "start", return_value=None))
        async with rxdb.open(path) as db:
            poller = sqlite_engine(db).poller
            assert poller is not None
            assert poller.watching == told, "told by inotify needs Linux and a local file"
            waiter = ValueWaiter()
            subscription = db.watch(QUERY).subscribe(waiter)
            try:
                await db.execute(UPDATE, (base - 1,))
                await waiter.expect(base - 1)
                cpu0, wall0 = time.process_time(), clock()
                await asyncio.sleep(sizes.poll_seconds)  # idle: polls or the safety net only
                idle_cpu = (time.process_time() - cpu0) / (clock() - wall0) * 100
                committed: dict[int, float] = {}
                await asyncio.to_thread(_foreign_writer, sizes, path, base, committed)
            finally:
                subscription.dispose()
    latencies = _latencies(committed, waiter.seen)
    return {"latency": latencies, "missed": len(committed) - len(latencies), "idle_cpu": idle_cpu}


async def _floor(sizes: Sizes, path: str, base: int) -> list[float]:
    """The floor of #4: an inotify wake-up (the same descriptor, no rxdb above it) straight to
    a read of the query on a plain sqlite3 connection, on the loop. A write event comes
    before the commit is visible (SQLite syncs, then publishes it), so the reader reads again
    every 0.1 ms after an event until the new value is there."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    seen: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    last = conn.execute(QUERY).fetchone()[0]
    chasing = False

    def read(tries: int) -> None:
        nonlocal last, chasing
        value = conn.execute(QUERY).fetchone()[0]
        if value != last:
            last, chasing = value, False
            seen.setdefault(value, clock())
        elif tries:
            loop.call_later(0.0001, read, tries - 1)
        else:
            chasing = False

    def told() -> None:
        nonlocal chasing
        if not chasing:
            chasing = True
            read(10_000)

    watch = FileWatch.start([path, f"{path}-wal"], told)
    assert watch is not None, "no inotify here: no floor"
    try:
        committed: dict[int, float] = {}
        await asyncio.to_thread(_foreign_writer, sizes, path, base, committed)
    finally:
        watch.close()
        conn.close()
    return _latencies(committed, seen)


async def _own_writes(path: str, told: bool, count: int, gap: float) -> float:
    """CPU of the whole process per write of rxdb's own (no watch open), told by inotify or
    polling: what being told of one's own commits costs."""
    with contextlib.ExitStack() as stack:
        if not told:
            stack.enter_context(mock.patch.object(FileWatch, "start", return_value=None))
        async with rxdb.open(path) as db:
            await db.execute(UPDATE, (0,))
            await asyncio.sleep(0.05)
            cpu0 = time.process_time()
            for value in range(count):
                if gap:
                    await asyncio.sleep(gap)
                await db.execute(UPDATE, (value,))
            await asyncio.sleep(0.05)  # the looks after the last write
            return (time.process_time() - cpu0) / count * 1e6


async def _polled_baseline(sizes: Sizes, path: str, base: int) -> dict[str, Any]:
    """What an application without rxdb does: its own loop polling the query every 100 ms."""
    seen: dict[int, float] = {}
    stop = asyncio.Event()
    committed: dict[int, float] = {}
    poller = asyncio.create_task(_poller(path, 0.1, seen, stop))
    cpu0, wall0 = time.process_time(), clock()
    await asyncio.to_thread(_foreign_writer, sizes, path, base, committed)
    cpu = (time.process_time() - cpu0) / (clock() - wall0) * 100
    stop.set()
    await poller
    return {"latency": _latencies(committed, seen), "cpu": cpu}


async def run(sizes: Sizes, results: Results) -> None:
    with workdir() as tmp:
        path = os.path.join(tmp, "polling.db")
        async with rxdb.open(path) as db:
            await db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER)")
            await db.execute("INSERT INTO counter VALUES (1, -1)")
            commits = CommitClock(db)
            modes: dict[str, dict[str, Any]] = {}
            base = 0
            for mode in ("writes only", "watch", "poll 10", "poll 100"):
                await db.execute(UPDATE, (base - 1,))
                modes[mode] = await _mode(sizes, db, path, mode, base, commits)
                base += 10_000
        # #4 on databases of their own, nothing else open on the file.
        told = await _foreign_watch(sizes, path, True, 2 * 10**9)
        polled = await _foreign_watch(sizes, path, False, 3 * 10**9)
        floor = await _floor(sizes, path, 4 * 10**9)
        baseline = await _polled_baseline(sizes, path, 5 * 10**9)
        own: dict[tuple[bool, float], list[float]] = {}
        count = max(20, int(sizes.poll_seconds * 100))
        for _ in range(3):  # interleaved rounds
            for told_mode in (False, True):
                for gap in (0.0, 0.002):
                    cpu = await _own_writes(path, told_mode, count, gap)
                    own.setdefault((told_mode, gap), []).append(cpu)

    params = {
        "period": f"{sizes.poll_seconds} s per mode",
        "writes": f"one UPDATE every {sizes.poll_write_interval * MS:.0f} ms ±30 % (seeded)",
        "poller": "its own raw aiosqlite connection, execute_fetchall then sleep N ms",
        "cpu": "time.process_time() of the whole process / wall time, % of one core",
        "cpu, writes only": round(modes["writes only"]["cpu"], 2),
    }
    watch = modes["watch"]
    w_lat = median(watch["latency"])
    for n in (10, 100):
        poll = modes[f"poll {n}"]
        p_lat = median(poll["latency"])
        results.add(
            Figure(
                f"11.{n}", f"commit -> new result seen: watch vs polling every {n} ms", w_lat,
                "ms", p_lat, f"poll every {n} ms", w_lat / p_lat, "report side by side",
                params=params,
                extra={"watch": summary(watch["latency"]), "poll": summary(poll["latency"])},
            )
        )  # fmt: skip
        results.add(
            Figure(
                f"11.{n}cpu", f"CPU over the period: watch vs polling every {n} ms",
                watch["cpu"], "% core", poll["cpu"], f"poll every {n} ms",
                watch["cpu"] / poll["cpu"] if poll["cpu"] else None, "report side by side",
                params=params,
            )
        )  # fmt: skip
    f_told, f_polled = summary(told["latency"]), summary(polled["latency"])
    f_floor, f_base = summary(floor), summary(baseline["latency"])
    foreign_params = {
        **params,
        "writer": "a thread with its own plain sqlite3 connection (synchronous=FULL)",
        "idle cpu": "the watch open, nobody writing, over the period",
        "floor": "inotify event -> sqlite3 read on the loop, again every 0.1 ms until new",
    }
    met = told["missed"] == 0 and f_told["median"] <= 5 and told["idle_cpu"] <= 0.5
    results.add(
        Figure(
            "4", "writer is plain sqlite3 (not rxdb): commit -> watch emits, told by inotify",
            f_told["median"], "ms", f_floor["median"], "inotify wake-up -> raw sqlite3 read",
            f_told["median"] / f_floor["median"] if f_floor["median"] else None,
            "median <= 5 ms at idle CPU <= 0.5 %", status="pass" if met else "miss",
            params={
                **foreign_params,
                "idle cpu % (told)": round(told["idle_cpu"], 3),
                "missed": told["missed"],
            },
            extra={"told": f_told, "floor": f_floor},
        )
    )  # fmt: skip
    results.add(
        Figure(
            "4p", "the same without inotify: polling every 50 ms (foreign_poll)",
            f_polled["median"], "ms", f_base["median"],
            "poll the query every 100 ms (plain sqlite3 writer thread)",
            f_polled["median"] / f_base["median"] if f_base["median"] else None,
            "report side by side",
            params={
                **foreign_params,
                "idle cpu % (polled)": round(polled["idle_cpu"], 3),
                "baseline cpu %": round(baseline["cpu"], 2),
                "missed": polled["missed"],
            },
            extra={"polled": f_polled, "poll 100 ms": f_base},
        )
    )  # fmt: skip
    for gap, label in ((0.0, "back to back"), (0.002, "one every 2 ms")):
        on, off = median(own[(True, gap)]), median(own[(False, gap)])
        results.add(
            Figure(
                f"4w{'b' if gap == 0 else 's'}",
                f"rxdb's own writes ({label}): CPU per write, told by inotify vs polling",
                on, "µs", off, "the same writes, polling (no file watch)", on / off,
                "report side by side",
                params={"writes": f"{count} UPDATEs per round, 3 rounds, median",
                        "cpu": "time.process_time() of the whole process / writes"},
                extra={"told": own[(True, gap)], "polled": own[(False, gap)]},
            )
        )  # fmt: skip
    results.add(
        Figure(
            "4cpu", "idle CPU, watch open: told by inotify vs polling every 50 ms",
            told["idle_cpu"], "% core", polled["idle_cpu"], "polling every 50 ms",
            told["idle_cpu"] / polled["idle_cpu"] if polled["idle_cpu"] else None,
            "report side by side", params=foreign_params,
        )
    )  # fmt: skip
