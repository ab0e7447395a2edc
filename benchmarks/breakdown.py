"""Where the time of one ``fetch_all`` / ``execute`` goes: the same call peeled layer by layer.

Instrumentation, not API: this reaches into ``Database._engine`` (the reader pool, the
writer and their ``Worker`` hops) to time each layer alone, interleaved with the raw aiosqlite
call it wraps. Both writers run ``synchronous=NORMAL``
here, so the fsync (hundreds of µs, noisy) does not hide the Python layers.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import rxdb
from parser import analyze

from ._common import Figure, Results, Sizes, clock, median, raw_connection, sqlite_engine, workdir

US = 1e6
BLOCK = 25  # calls per operation before the next operation takes its turn
READ = "SELECT id, v FROM r WHERE id = ?"
WRITE = "INSERT INTO w (v) VALUES (?)"


async def _per_call(calls: int, op: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(calls):
        t0 = clock()
        await op(i)
        samples.append((clock() - t0) * US)
    return samples


async def run(sizes: Sizes, results: Results) -> None:
    with workdir() as tmp:
        path = os.path.join(tmp, "breakdown.db")
        # No foreign-write poller: W1 calls the writer without its lock (to time the bare
        # hop), and the poller asks the idle writer for data_version on the loop thread
        # whenever that lock is free; the two at once would share the connection.
        async with rxdb.open(path, foreign_poll=None) as db, raw_connection(path) as raw:
            await db.execute_script(
                "CREATE TABLE r (id INTEGER PRIMARY KEY, v INTEGER);"
                "CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER);"
            )
            await db.execute_many("INSERT INTO r (v) VALUES (?)", [(i,) for i in range(100)])
            await db.execute("PRAGMA synchronous = NORMAL")
            await raw.execute("PRAGMA synchronous = NORMAL")
            engine = sqlite_engine(db)
            pool = engine._readers
            writer = engine._writer
            if pool is None or writer is None:
                raise RuntimeError("the breakdown needs a WAL file database")

            async def pooled(i: int) -> Any:
                borrowed = await pool.borrow()
                try:
                    return await borrowed.call(borrowed.raw.fetch, READ, (i % 100 + 1,))
                finally:
                    pool.give_back(borrowed)

            def tracked(i: int) -> Awaitable[Any]:
                return writer.worker.call(writer.worker.raw.run, WRITE, (i,))

            def locked(i: int) -> Awaitable[Any]:
                return writer.run(WRITE, lambda conn: conn.run(WRITE, (i,)))

            reader = await pool.borrow()
            try:
                ops: dict[str, Callable[[int], Awaitable[Any]]] = {
                    "R0 raw aiosqlite execute_fetchall": lambda i: raw.execute_fetchall(
                        READ, (i % 100 + 1,)
                    ),
                    "R1 + rxdb reader hop (Row objects)": lambda i: reader.call(
                        reader.raw.fetch, READ, (i % 100 + 1,)
                    ),
                    "R2 + ReaderPool.borrow": pooled,
                    "R3 + Engine.fetch_committed": lambda i: engine.fetch_committed(
                        READ, (i % 100 + 1,)
                    ),
                    "R4 = Database.fetch_all": lambda i: db.fetch_all(READ, (i % 100 + 1,)),
                    "W0 raw aiosqlite execute (autocommit)": lambda i: raw.execute(WRITE, (i,)),
                    "W1 rxdb tracked writer hop (capture, publish)": tracked,
                    "W2 + Writer.run (lock, transaction scope)": locked,
                    "W3 = Database.execute": lambda i: db.execute(WRITE, (i,)),
                }
                samples: dict[str, list[float]] = {name: [] for name in ops}
                for op in ops.values():
                    await _per_call(max(2, sizes.warmup // 3), op)
                names = list(ops)
                # Blocks of BLOCK calls of each operation, rotating: each block runs with its
                # worker thread warm (steady state), and drift on a shared machine hits all alike.
                block = min(BLOCK, sizes.overhead_rounds * sizes.overhead_calls)
                for r in range(sizes.overhead_rounds * sizes.overhead_calls // block):
                    shift = r % len(names)
                    for name in names[shift:] + names[:shift]:
                        samples[name] += await _per_call(block, ops[name])
            finally:
                pool.give_back(reader)
            t0 = clock()
            for _ in range(1000):
                analyze(READ)
            analyze_us = (clock() - t0) / 1000 * US

    meds = {name: median(s) for name, s in samples.items()}
    params = {
        "synchronous": "NORMAL on both writers (breakdown only)",
        "calls": f"{sizes.overhead_rounds * sizes.overhead_calls} per layer, "
        "in blocks of 25, order rotating",
        "cached analyze() per call (µs)": round(analyze_us, 2),
    }
    for kind, base in (("R", "R0 raw aiosqlite execute_fetchall"),
                       ("W", "W0 raw aiosqlite execute (autocommit)")):  # fmt: skip
        for name, value in meds.items():
            if name.startswith(kind) and name != base:
                results.add(
                    Figure(
                        f"bd.{name[:2]}", f"breakdown {name}", value, "µs", meds[base],
                        base[3:], value / meds[base], "(layer cost, no bar)", params=params,
                    )
                )  # fmt: skip
