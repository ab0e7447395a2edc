"""A worker thread writes; the main event loop watches.

The worker is a plain thread (no event loop) that reaches the database through a handle:
``handle.connect_sync()`` gives the blocking façade over the same engine and bus, so every
commit the worker makes refreshes the main loop's watches at once. (Other processes writing
the file are seen too: see other_processes.py.)

Run it: ``python examples/background_worker.py`` (ends by itself in about two seconds).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time

import rxdb
import rxdb.api

JOBS = {"resize images": 4, "send emails": 6, "rebuild index": 3}


def worker(handle: rxdb.api.Handle) -> None:
    """Do every job step by step, recording progress in the database."""
    with handle.connect_sync() as db:  # closing detaches this thread; the database stays open
        for name, steps in JOBS.items():
            for _ in range(steps):
                time.sleep(0.1)  # the "work"
                db.execute("UPDATE jobs SET done = done + 1 WHERE name = ?", (name,))


async def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "jobs.db")
        async with rxdb.open(path) as db:
            await db.execute(
                "CREATE TABLE jobs (name TEXT PRIMARY KEY, done INTEGER NOT NULL, "
                "total INTEGER NOT NULL)"
            )
            await db.execute_many(
                "INSERT INTO jobs VALUES (?, 0, ?)", [(name, n) for name, n in JOBS.items()]
            )

            handle = await db.serializable_connection()
            thread = threading.Thread(target=worker, args=(handle,))
            thread.start()
            async for rows in db.watch("SELECT name, done, total FROM jobs ORDER BY name"):
                print("  ".join(f"{r['name']} {r['done']}/{r['total']}" for r in rows))
                if all(r["done"] == r["total"] for r in rows):
                    break
            # The worker's last commit is what we just saw; joining only waits for it to close.
            await asyncio.to_thread(thread.join)
    print("all jobs done")


if __name__ == "__main__":
    asyncio.run(main())
