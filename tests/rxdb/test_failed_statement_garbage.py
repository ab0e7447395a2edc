"""A statement that failed on a connection leaves nothing behind that needs that connection
again: freeing it elsewhere (the loop's garbage collection, say) must not wait for the
statement the connection runs next.

SQLite serialises calls on one connection with a mutex that ``sqlite3_step`` holds for the
whole statement. A cursor of the failed statement, kept by the error's traceback, resets its
statement when freed, which takes that mutex: freed on the event loop while the connection runs
an endless query, it froze the loop until the query ended -- and with it the interrupt that
would have ended the query (a served client's ``interrupt()`` then went unheard: "server silent
for 30 s").
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import rxdb
from tests.conftest import WAIT, sqlite_engine

OVERFLOW = "SELECT abs(-9223372036854775808)"  # fails while it steps, not while prepared
ENDLESS = (
    "WITH RECURSIVE c(n) AS (SELECT started() UNION ALL SELECT n + 1 FROM c "
    "WHERE n < 1000000000) SELECT count(*) FROM c"
)


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """The failed statement's garbage stays until the test collects it, where it chooses."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_automatic_gc")
async def test_garbage_of_a_failed_statement_is_freed_while_the_writer_runs(
    tmp_path: Path,
) -> None:
    async with rxdb.open(tmp_path / "garbage.db") as db:
        worker = sqlite_engine(db)._writer.worker  # type: ignore[union-attr]
        running = asyncio.Event()
        loop = asyncio.get_running_loop()

        def started() -> int:
            loop.call_soon_threadsafe(running.set)
            return 1

        await worker.call(worker.raw.create_function, "started", 0, started)
        async with db.transaction():  # on the writer
            with pytest.raises(rxdb.DatabaseError):
                await db.fetch_all(OVERFLOW)

        async def endless() -> None:
            async with db.transaction():
                await db.fetch_all(ENDLESS)

        query = asyncio.create_task(endless())
        await asyncio.wait_for(running.wait(), WAIT)
        collected = threading.Event()

        def collect() -> None:
            gc.collect()
            collected.set()

        collector = threading.Thread(target=collect)
        collector.start()
        try:
            assert await asyncio.to_thread(collected.wait, WAIT), (
                "freeing the failed statement waited for the writer's running query"
            )
        finally:
            db.interrupt_threadsafe()
            with contextlib.suppress(rxdb.InterruptError):
                await asyncio.wait_for(query, WAIT)
            await asyncio.to_thread(collector.join)
