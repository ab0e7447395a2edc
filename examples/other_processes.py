"""Other processes write the file; this one watches.

Two kinds of writer, each a process of its own: one uses rxdb (its commits arrive through
the local hub, naming the tables they wrote), one is a plain ``sqlite3`` program that has
never heard of rxdb (its commits are found by polling; with ``track_foreign_writes`` the
triggers it fires tell which tables it wrote). No configuration: opening the same file is
enough.

Run it: ``python examples/other_processes.py`` (ends by itself in a few seconds).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

import rxdb

RXDB_WRITER = """
import asyncio, sys
import rxdb

async def main(path: str) -> None:
    async with rxdb.open(path) as db:
        for _ in range(3):
            await asyncio.sleep(0.2)
            await db.execute("INSERT INTO orders (source) VALUES ('rxdb process')")

asyncio.run(main(sys.argv[1]))
"""

PLAIN_WRITER = """
import sqlite3, sys, time

conn = sqlite3.connect(sys.argv[1], isolation_level=None)
for _ in range(3):
    time.sleep(0.3)
    conn.execute("INSERT INTO orders (source) VALUES ('plain sqlite3')")
conn.close()
"""

QUERY = "SELECT source, count(*) AS n FROM orders GROUP BY source ORDER BY source"


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "shop.db")
        async with rxdb.open(path, track_foreign_writes=True) as db:
            await db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, source TEXT)")
            writers = [
                await asyncio.create_subprocess_exec(sys.executable, "-c", code, path)
                for code in (RXDB_WRITER, PLAIN_WRITER)
            ]
            async for rows in db.watch(QUERY):
                print(", ".join(f"{row.source}: {row.n}" for row in rows) or "no orders yet")
                if sum(row.n for row in rows) == 6:
                    break
            for writer in writers:
                if await writer.wait() != 0:
                    raise SystemExit(f"a writer failed with exit code {writer.returncode}")
        print("every order seen")


if __name__ == "__main__":
    asyncio.run(main())
