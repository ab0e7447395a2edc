"""The other process of #3: ``python -m benchmarks._writer PATH COUNT GAP``.

Opens ``PATH`` with rxdb (``foreign_poll=None``: the hub is the only way its commits can reach
the watching process), waits until it is connected to the hub, prints ``ready ROLE``, then
does ``COUNT`` updates of the counter (values 0, 1, ...) ``GAP`` seconds apart. For each it
prints ``VALUE START COMMIT``: ``CLOCK_MONOTONIC`` instants (comparable across processes on
one machine) taken before ``await db.execute(...)`` and when the writer thread published the
commit (:class:`~benchmarks._common.CommitClock` on ``SQLiteEngine._publish``), all of them
after the last commit: a line per commit woke the watching process, which reads the pipe, in
the middle of the path it measures. Then it closes the database and exits 0.
"""

from __future__ import annotations

import asyncio
import sys

import rxdb
from rxdb.remote.hub import Membership

from ._common import CommitClock, monotonic, sqlite_engine

UPDATE = "UPDATE counter SET v = ? WHERE id = 1"


async def main(path: str, count: int, gap: float) -> None:
    async with rxdb.open(path, foreign_poll=None) as db:
        membership = sqlite_engine(db).membership
        deadline = monotonic() + 10.0
        while not isinstance(membership, Membership) or not membership.statistics().connected:
            if monotonic() > deadline:
                raise SystemExit("the writer never connected to the hub")
            await asyncio.sleep(0.005)
        print(f"ready {membership.statistics().role}", flush=True)
        commits = CommitClock(db, monotonic)
        lines = []
        for value in range(count):
            await asyncio.sleep(gap)
            start = monotonic()
            await db.execute(UPDATE, (value,))
            lines.append(f"{value} {start!r} {commits.last!r}")
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
