"""M1: a bulk load outside a transaction (``execute_many`` of many rows), against raw
aiosqlite's ``executemany`` of the same rows, and how long the event loop stands still
meanwhile.

Outside a transaction SQLite commits each row on its own (docs/guarantees.md), so the load
moves the WAL-index commit counter once per row: it measures what rxdb does per commit
beside the statement, the foreign-write poller's accounting of a long run of its own
commits among it. A ticker task on the loop (``asyncio.sleep(TICK)`` in turn) records the
gaps between its turns from the load's start until ``AFTER`` seconds after it ended: the
longest is how long anything else on the loop (a watch's emission, a web request) would
have waited. Both sides at ``synchronous=NORMAL`` in WAL mode (rxdb's default there).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import rxdb

from ._common import Figure, Results, Sizes, clock, raw_connection, workdir

ROWS = {"smoke": 2_000, "quick": 30_000, "full": 100_000}
SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v REAL)"
INSERT = "INSERT INTO t VALUES (?, ?, ?)"
TICK = 0.0005
AFTER = 0.2
MS = 1e3


async def _timed(load: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """The load's time and the loop's longest gap between ticks meanwhile (and ``AFTER``
    seconds after). Milliseconds."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = clock()
        while not done.is_set():
            await asyncio.sleep(TICK)
            now = clock()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        start = clock()
        await load()
        took = clock() - start
        await asyncio.sleep(AFTER)
    finally:
        done.set()
        await task
    return took * MS, max(gaps, default=0.0) * MS


async def run(sizes: Sizes, results: Results) -> None:
    n = ROWS[sizes.name]
    rows = [(i, f"name {i}", i * 0.5) for i in range(n)]
    with workdir() as tmp:
        async with rxdb.open(os.path.join(tmp, "bulk-rxdb.db")) as db:
            await db.execute(SCHEMA)
            ours, our_gap = await _timed(lambda: db.execute_many(INSERT, rows))
        async with raw_connection(os.path.join(tmp, "bulk-raw.db")) as raw:
            await raw.execute("PRAGMA synchronous = NORMAL")
            await raw.execute(SCHEMA)
            theirs, their_gap = await _timed(lambda: raw.executemany(INSERT, rows))
    params = {
        "rows": f"{n}, one commit each (outside a transaction)",
        "statement": INSERT,
        "raw": "aiosqlite.connect(isolation_level=None), WAL, synchronous=NORMAL, executemany",
        "loop": f"a ticker task sleeping {TICK * MS:g} ms in turn; longest gap from the "
        f"load's start until {AFTER * MS:g} ms after its end",
    }
    results.add(
        Figure(
            "M1", f"execute_many of {n:,} rows outside a transaction", ours, "ms", theirs,
            "raw aiosqlite executemany", ours / theirs, "(information, no bar)",
            params=params,
        )
    )  # fmt: skip
    results.add(
        Figure(
            "M1.s", "the loop's longest stall during M1", our_gap, "ms", their_gap,
            "the same during the raw load", our_gap / their_gap if their_gap else None,
            "(information, no bar)", params=params,
        )
    )  # fmt: skip
