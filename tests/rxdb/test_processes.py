"""Databases in different processes on one file see each other's commits: zero configuration."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import rxdb
from rxdb.engines.sqlite import SQLiteEngine
from tests.conftest import WAIT, Recorder, subscribed

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import rxdb

    async def main(path: str) -> None:
        async with rxdb.open(path, foreign_poll=None) as db:
            await db.execute("INSERT INTO t(x) VALUES (42)")

    asyncio.run(main(sys.argv[1]))
    """
)


async def run_script(script: str, *args: str) -> None:
    """Run ``script`` in a Python process of its own; it must succeed."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


async def test_commit_in_another_process_refreshes_watch_through_the_hub(db_path: Path) -> None:
    # Polling off on both sides: only the hub can carry the change.
    async with rxdb.open(db_path, foreign_poll=None) as db:
        await db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
        rec: Recorder[Any] = Recorder()
        sub = db.watch("SELECT x FROM t").subscribe(rec)
        try:
            await rec.wait_value([])
            await run_script(WRITER, str(db_path))
            await rec.wait_value([(42,)])
        finally:
            sub.dispose()


def membership_of(db: rxdb.Database) -> object:
    """The hub membership of a database's SQLite engine (``None``: not shared)."""
    engine = db._engine
    assert isinstance(engine, SQLiteEngine)
    return engine.membership


async def test_sharing_can_be_turned_off(db_path: Path) -> None:
    async with rxdb.open(db_path, share_across_processes=False) as db:
        assert membership_of(db) is None
    async with rxdb.open(":memory:") as memory:
        assert membership_of(memory) is None


async def test_the_hub_outlives_the_loop_that_joined_first(db_path: Path) -> None:
    """The hub's sockets run on a thread of their own: the loop of the first database to
    join may end while another database of the process still shares the file."""
    opened, close_now = threading.Event(), threading.Event()

    def first_database() -> None:
        async def main() -> None:
            async with rxdb.open(db_path, foreign_poll=None) as first:
                await first.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x)")
                opened.set()
                await asyncio.to_thread(close_now.wait, WAIT)

        asyncio.run(main())

    thread = threading.Thread(target=first_database)
    thread.start()
    try:
        assert await asyncio.to_thread(opened.wait, WAIT)
        async with rxdb.open(db_path, foreign_poll=None) as db:
            close_now.set()
            await asyncio.to_thread(thread.join, WAIT)
            assert not thread.is_alive()  # its loop is gone; the hub is not
            rec: Recorder[Any] = Recorder()
            with subscribed(db.watch("SELECT x FROM t"), rec):
                await rec.wait_value([])
                await run_script(WRITER, str(db_path))
                await rec.wait_value([(42,)])
    finally:
        close_now.set()
        thread.join(WAIT)
    assert not any(t.name == "rxdb-hub" for t in threading.enumerate())
