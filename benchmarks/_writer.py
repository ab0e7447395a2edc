"""The other process of #3 and of its floor 3.f: ``python -m benchmarks._writer PATH COUNT GAP
[SOCKET]``.

Without ``SOCKET`` (#3): opens ``PATH`` with rxdb (``foreign_poll=None``: the hub is the only
way its commits can reach the watching process), waits until it is connected to the hub,
prints ``ready ROLE``, then does ``COUNT`` updates of the counter (values 0, 1, ...) ``GAP``
seconds apart. The commit instant is when the writer thread published the commit
(:class:`~benchmarks._common.CommitClock` on ``SQLiteEngine._publish``).

With ``SOCKET`` (3.f, the same road from raw parts): opens ``PATH`` with plain :mod:`sqlite3`
(autocommit, ``synchronous=NORMAL`` as rxdb's writer in WAL mode), connects to the Unix
socket ``SOCKET``, prints ``ready raw``, then does the same updates, writing one byte to the
socket right after each commit returns; the commit instant is taken when it returned.

For each commit it prints ``VALUE START COMMIT``: ``CLOCK_MONOTONIC`` instants (comparable
across processes on one machine), the first taken before the update, all of them after the
last commit: a line per commit would wake the watching process, which reads the pipe, in the
middle of the path it measures. Then it closes what it opened and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import sys
import time

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


def raw(path: str, count: int, gap: float, address: str) -> None:
    with (
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
    ):
        db.execute("PRAGMA synchronous = NORMAL")
        sock.connect(address)
        print("ready raw", flush=True)
        lines = []
        for value in range(count):
            time.sleep(gap)
            start = monotonic()
            db.execute(UPDATE, (value,))
            committed = monotonic()
            sock.send(b"c")
            lines.append(f"{value} {start!r} {committed!r}")
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    path, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if len(sys.argv) > 4:
        raw(path, count, gap, sys.argv[4])
    else:
        asyncio.run(main(path, count, gap))
