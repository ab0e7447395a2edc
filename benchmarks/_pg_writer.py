"""The other process of P1 (:mod:`benchmarks.postgres`):
``python -m benchmarks._pg_writer URL MODE FIRST COUNT GAP``.

Prints ``ready``, then does ``COUNT`` updates of the counter (values ``FIRST``, ``FIRST + 1``,
...) ``GAP`` seconds apart, and for each prints ``VALUE START COMMIT``: ``CLOCK_MONOTONIC``
instants (one clock for every process of the machine) taken before the write and when the
writer learned of its commit. Then it closes and exits 0.

``MODE`` ``rxdb``: the writes go through ``rxdb.open(URL)``; the commit instant is when the
engine's writer hands the commit to its change source (:class:`PgCommitClock`), as #3's
writer stamps SQLite's. ``raw``: through a plain asyncpg connection, the commit instant being
when ``execute`` returned (the floor, P1.f).

:class:`PgCommitClock` lives here, the writer being its first user; P4 stamps with it too.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import asyncpg

import rxdb
from rxdb.engines.postgres.connections import Connection
from rxdb.engines.postgres.engine import PostgresEngine

from ._common import clock, monotonic

UPDATE = "UPDATE counter SET v = ? WHERE id = 1"
RAW_UPDATE = "UPDATE counter SET v = $1 WHERE id = 1"


class PgCommitClock:
    """Instrumentation: records the instant the PostgreSQL engine's writer learns of each
    commit (a statement's own or a transaction's).

    The writer awaits ``Changes.committed`` right after the server acknowledged the commit;
    this wraps that method on one instance (nothing in rxdb changes) and stamps ``stamp()``
    (``clock`` unless told) before handing on: :class:`benchmarks._common.CommitClock` for
    PostgreSQL.
    """

    def __init__(self, db: rxdb.Database, stamp: Callable[[], float] = clock) -> None:
        engine = db._engine
        if not isinstance(engine, PostgresEngine):
            raise RuntimeError(f"{db!r} is not a PostgreSQL database")
        self.times: list[float] = []
        changes = engine.changes
        original = changes.committed

        async def committed(conn: Connection, *, notified: bool) -> None:
            self.times.append(stamp())
            await original(conn, notified=notified)

        changes.committed = committed  # type: ignore[method-assign]

    @property
    def last(self) -> float:
        return self.times[-1]


async def _rxdb(url: str, values: range, gap: float) -> None:
    async with rxdb.open(url) as db:
        commits = PgCommitClock(db, monotonic)
        print("ready", flush=True)
        for value in values:
            await asyncio.sleep(gap)
            start = monotonic()
            await db.execute(UPDATE, (value,))
            print(f"{value} {start!r} {commits.last!r}", flush=True)


async def _raw(url: str, values: range, gap: float) -> None:
    conn = await asyncpg.connect(url)
    try:
        print("ready", flush=True)
        for value in values:
            await asyncio.sleep(gap)
            start = monotonic()
            await conn.execute(RAW_UPDATE, value)
            print(f"{value} {start!r} {monotonic()!r}", flush=True)
    finally:
        await conn.close()


async def main(url: str, mode: str, first: int, count: int, gap: float) -> None:
    write = {"rxdb": _rxdb, "raw": _raw}[mode]
    await write(url, range(first, first + count), gap)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    )
