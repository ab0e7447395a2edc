"""#8 (per-call overhead of ``fetch_all`` and ``execute`` over raw aiosqlite) and #10
(concurrent reads: rxdb's reader pool against one aiosqlite connection).

Also measures the floors a missed bar is explained by: one aiosqlite thread hop doing
nothing, and one raw ``execute_fetchall`` of ``SELECT 1``.

``8r.1`` repeats #8r with every thread of the process pinned to one CPU. On a VM, a thread
hop costs very different amounts depending on whether the woken worker thread sits on the
loop's vCPU or on another (an inter-processor interrupt), and rxdb's reader and the raw
connection each have a thread of their own, placed by the scheduler: unpinned, one run's
ratio says as much about placement as about rxdb. Pinned, both pay the same kind of hop.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Mapping

import aiosqlite

import rxdb

from ._common import (
    Figure,
    Results,
    Sizes,
    clock,
    median,
    one_cpu,
    raw_connection,
    summary,
    synchronous_setting,
    workdir,
)

US = 1e6
BLOCK = 25  # calls per operation before the next operation takes its turn
READ = "SELECT id, v FROM r WHERE id = ?"
WRITE = "INSERT INTO w (v) VALUES (?)"
HEAVY = "SELECT count(*), sum(v) FROM big WHERE v % 7 = ?"

Op = Callable[[int], Awaitable[object]]  # one measured call, given its index


async def _prepare(db: rxdb.Database, big_rows: int) -> None:
    async with db.transaction():
        await db.execute_script(
            "CREATE TABLE r (id INTEGER PRIMARY KEY, v INTEGER);"
            "CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER);"
            "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER);"
        )
        await db.execute_many("INSERT INTO r (v) VALUES (?)", [(i,) for i in range(100)])
        await db.execute_many("INSERT INTO big (v) VALUES (?)", [(i,) for i in range(big_rows)])


async def _per_call(calls: int, op: Op) -> list[float]:
    samples = []
    for i in range(calls):
        t0 = clock()
        await op(i)
        samples.append((clock() - t0) * US)
    return samples


async def _blocks(sizes: Sizes, ops: Mapping[str, Op], samples: dict[str, list[float]]) -> None:
    """Blocks of BLOCK calls of each operation, rotating: each block runs with its worker
    thread warm (steady state), and drift on a shared machine hits all alike."""
    names = list(ops)
    block = min(BLOCK, sizes.overhead_rounds * sizes.overhead_calls)
    for r in range(sizes.overhead_rounds * sizes.overhead_calls // block):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name] += await _per_call(block, ops[name])


async def _hop(conn: aiosqlite.Connection) -> None:
    # aiosqlite's private door to its worker thread: the floor under every call.
    await conn._execute(lambda: None)  # type: ignore[no-untyped-call]


async def run(sizes: Sizes, results: Results) -> None:
    with workdir() as tmp:
        path = os.path.join(tmp, "overhead.db")
        async with rxdb.open(path, synchronous="full") as db, raw_connection(path) as raw:
            await _prepare(db, 20_000 if sizes.name != "smoke" else 200)
            async with db.transaction():  # on the writer: readers keep SQLite's default
                sync_rxdb = int((await db.fetch_all("PRAGMA synchronous"))[0][0])
            sync_raw = await synchronous_setting(raw)
            ops = {
                "rxdb read": lambda i: db.fetch_all(READ, (i % 100 + 1,)),
                "raw read": lambda i: raw.execute_fetchall(READ, (i % 100 + 1,)),
                "rxdb write": lambda i: db.execute(WRITE, (i,)),
                "raw write": lambda i: raw.execute(WRITE, (i,)),
                "hop": lambda i: _hop(raw),
                "raw SELECT 1": lambda i: raw.execute_fetchall("SELECT 1"),
            }
            samples: dict[str, list[float]] = {name: [] for name in ops}
            for op in ops.values():  # warm-up, not recorded
                await _per_call(max(2, sizes.warmup // 3), op)
            await _blocks(sizes, ops, samples)
            reads = {name: ops[name] for name in ("rxdb read", "raw read", "hop")}
            pinned: dict[str, list[float]] = {name: [] for name in reads}
            with one_cpu() as could_pin:
                if could_pin:
                    for op in reads.values():
                        await _per_call(max(2, sizes.warmup // 3), op)
                    await _blocks(sizes, reads, pinned)
            concurrent = await _concurrent(sizes, db, raw)

    med = {name: median(s) for name, s in samples.items()}
    params = {
        "calls": f"{sizes.overhead_rounds * sizes.overhead_calls} per operation, "
        "in blocks of 25, order rotating",
        "read": READ,
        "write": WRITE,
        "raw": "aiosqlite.connect(path, isolation_level=None) (autocommit), "
        "PRAGMA journal_mode=WAL, foreign_keys=ON; "
        "writes are one `await conn.execute(...)` (commits by itself)",
        "synchronous": f"rxdb writer {sync_rxdb} (asked for FULL), raw {sync_raw} (2 = FULL, "
        "SQLite's default)",
    }
    floors = {
        "aiosqlite hop, no SQL (µs)": med["hop"],
        "raw execute_fetchall('SELECT 1') (µs)": med["raw SELECT 1"],
    }
    read_ratio = med["rxdb read"] / med["raw read"]
    results.add(
        Figure(
            "8r", "fetch_all overhead (point query, 1 row)", med["rxdb read"], "µs",
            med["raw read"], "raw aiosqlite execute_fetchall", read_ratio, "ratio <= 1.15",
            params=params,
            extra={"rxdb": summary(samples["rxdb read"]), "raw": summary(samples["raw read"]),
                   "floors": floors},
        )
    ).judge(read_ratio <= 1.15)  # fmt: skip
    if pinned["rxdb read"]:
        pin = {name: median(s) for name, s in pinned.items()}
        results.add(
            Figure(
                "8r.1", "#8r with every thread pinned to one CPU (thread placement ruled out)",
                pin["rxdb read"], "µs", pin["raw read"], "raw aiosqlite execute_fetchall, pinned",
                pin["rxdb read"] / pin["raw read"], "(diagnostic; 8r's bar: ratio <= 1.15)",
                params={**params, "pinned": "os.sched_setaffinity on every thread of the "
                        "process (Linux), restored afterwards"},
                extra={"rxdb": summary(pinned["rxdb read"]), "raw": summary(pinned["raw read"]),
                       "hop, pinned (µs)": pin["hop"],
                       "rxdb - raw (µs)": pin["rxdb read"] - pin["raw read"]},
            )
        )  # fmt: skip
    else:
        results.add(
            Figure("8r.1", "#8r pinned to one CPU (not measurable here: no affinity API)", None,
                   "µs", bar="(diagnostic)")
        )  # fmt: skip
    write_ratio = med["rxdb write"] / med["raw write"]
    results.add(
        Figure(
            "8w", "execute overhead (single-row INSERT, autocommit)", med["rxdb write"], "µs",
            med["raw write"], "raw aiosqlite execute (autocommit)", write_ratio, "ratio <= 1.3",
            params=params,
            extra={"rxdb": summary(samples["rxdb write"]), "raw": summary(samples["raw write"]),
                   "floors": floors},
        )
    ).judge(write_ratio <= 1.3)  # fmt: skip
    results.add(
        Figure(
            "hop",
            "floor: one aiosqlite thread hop doing nothing",
            med["hop"],
            "µs",
            med["raw SELECT 1"],
            "raw execute_fetchall('SELECT 1')",
            med["hop"] / med["raw SELECT 1"],
            "(floor, no bar)",
            params=params,
            extra={"hop": summary(samples["hop"]), "select1": summary(samples["raw SELECT 1"])},
        )
    )
    parallel = concurrent.pop("parallel")
    results.add(
        Figure(
            "10p", "machine floor: heavy query in 2 plain sqlite3 threads vs 1 thread, wall",
            median(parallel[0]) * 1e3, "ms", median(parallel[1]) * 1e3, "same queries, 1 thread",
            median(parallel[0]) / median(parallel[1]), "(floor: 0.5 = perfect 2-core scaling)",
            params={"query": HEAVY, "rounds": sizes.concurrent_rounds},
        )
    )  # fmt: skip
    for kind, (rx, rw) in concurrent.items():
        ratio = median(rx) / median(rw)
        results.add(
            Figure(
                f"10{kind[0]}", f"concurrent reads, {kind} query: {sizes.concurrent_tasks} tasks x "
                f"{sizes.concurrent_calls} fetch_all, wall time", median(rx) * 1e3, "ms",
                median(rw) * 1e3, "same on one raw aiosqlite connection", ratio,
                "report the ratio (lower is better)",
                params={"query": READ if kind == "trivial" else HEAVY,
                        "rounds": sizes.concurrent_rounds, "readers": 4},
                extra={"rxdb": rx, "raw": rw},
            )
        )  # fmt: skip


async def _concurrent(
    sizes: Sizes, db: rxdb.Database, raw: aiosqlite.Connection
) -> dict[str, tuple[list[float], list[float]]]:
    """#10: the same read load from ``concurrent_tasks`` tasks at once."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for kind, sql in (("trivial", READ), ("heavy", HEAVY)):
        calls = sizes.concurrent_calls if kind == "trivial" else max(2, sizes.concurrent_calls // 5)

        async def worker(fetch: object, calls: int = calls, sql: str = sql) -> None:
            for i in range(calls):
                await fetch(sql, (i % 7 + 1,))  # type: ignore[operator]

        async def wall(fetch: object) -> float:
            t0 = clock()
            await asyncio.gather(*(worker(fetch) for _ in range(sizes.concurrent_tasks)))
            return clock() - t0

        await wall(db.fetch_all)  # warm-up: opens every reader
        await wall(raw.execute_fetchall)
        rx, rw = [], []
        for r in range(sizes.concurrent_rounds):
            if r % 2 == 0:
                rx.append(await wall(db.fetch_all))
                rw.append(await wall(raw.execute_fetchall))
            else:
                rw.append(await wall(raw.execute_fetchall))
                rx.append(await wall(db.fetch_all))
        out[kind] = (rx, rw)
    out["parallel"] = await asyncio.to_thread(_thread_scaling, db.path, sizes)
    return out


def _thread_scaling(path: str, sizes: Sizes) -> tuple[list[float], list[float]]:
    """How much two threads running SQLite (which releases the GIL while stepping) gain over
    one on this machine: the ceiling for any reader pool."""
    calls = max(2, sizes.concurrent_calls // 5) * 2

    def work(count: int) -> None:
        conn = sqlite3.connect(path)
        try:
            for i in range(count):
                conn.execute(HEAVY, (i % 7 + 1,)).fetchall()
        finally:
            conn.close()

    two, one = [], []
    for _ in range(sizes.concurrent_rounds):
        t0 = clock()
        work(calls)
        one.append(clock() - t0)
        threads = [threading.Thread(target=work, args=(calls // 2,)) for _ in range(2)]
        t0 = clock()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        two.append(clock() - t0)
    return two, one
