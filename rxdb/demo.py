"""``python -m rxdb demo``: live queries refreshed by a writer in another thread.

A writer thread runs its own event loop and uses the database through a handle
(``db.serializable_connection()``: the same engine, the same bus). The main loop watches
three queries (a join through a view, an aggregate, a counter kept by a trigger) and prints
every new result as it arrives. It ends by itself once the writer is done and every watch
shows the final state.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TextIO

import rxdb
from rxdb.api import Handle

__all__ = ("run",)

SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    amount REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open'
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE VIEW order_lines AS
    SELECT o.id, a.name AS account, o.amount, o.status
    FROM orders AS o JOIN accounts AS a ON a.id = o.account_id;
CREATE TRIGGER count_orders AFTER INSERT ON orders BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'orders';
END;
INSERT INTO accounts (name) VALUES ('alice'), ('bob'), ('carol');
INSERT INTO counters VALUES ('orders', 0);
INSERT INTO orders (account_id, amount) VALUES (1, 30.0), (2, 12.5);
"""

# label -> (query, how to show its result on one line)
Format = Callable[[list[rxdb.Row]], str]
QUERIES: dict[str, tuple[str, Format]] = {
    "latest": (
        "SELECT id, account, amount, status FROM order_lines ORDER BY id DESC LIMIT 3",
        lambda rows: "  ".join(
            f"#{r['id']} {r['account']} {r['amount']:.2f} {r['status']}" for r in rows
        ),
    ),
    "totals": (
        "SELECT a.name, count(o.id) AS n, coalesce(sum(o.amount), 0) AS total "
        "FROM accounts AS a LEFT JOIN orders AS o ON o.account_id = a.id "
        "GROUP BY a.id ORDER BY a.name",
        lambda rows: "  ".join(f"{r['name']} {r['n']}x {r['total']:.2f}" for r in rows),
    ),
    "counter": (
        "SELECT value FROM counters WHERE name = 'orders'",
        lambda rows: f"{rows[0]['value']} orders placed" if rows else "-",
    ),
}


class Writer(threading.Thread):
    """Writes for ``seconds`` at ``rate`` commits a second, on its own loop and database."""

    def __init__(
        self,
        handle: Handle,
        seconds: float,
        rate: float,
        log: Callable[[str], object],
        done: Callable[[], object],
    ) -> None:
        super().__init__(name="rxdb-demo-writer")
        self.handle, self.seconds, self.rate, self.log, self.done = handle, seconds, rate, log, done
        self.commits = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self.write())
        except BaseException as error:  # reported by the main thread
            self.error = error
        finally:
            self.done()

    async def write(self) -> None:
        chance = random.Random(7)
        loop = asyncio.get_running_loop()
        async with await self.handle.connect() as db:
            start = next_at = loop.time()
            while loop.time() - start < self.seconds and not self.stop.is_set():
                rows = await db.fetch_all("SELECT id FROM orders WHERE status = 'open'")
                open_ids = [row["id"] for row in rows]
                if open_ids and chance.random() < 0.35:
                    order = chance.choice(open_ids)
                    await db.execute("UPDATE orders SET status = 'paid' WHERE id = ?", (order,))
                    self.log(f"order #{order} paid")
                else:
                    account, amount = chance.randint(1, 3), chance.randint(500, 9000) / 100
                    result = await db.execute(
                        "INSERT INTO orders (account_id, amount) VALUES (?, ?)", (account, amount)
                    )
                    self.log(f"order #{result.last_insert_rowid} placed: {amount:.2f}")
                self.commits += 1
                next_at += 1 / self.rate
                await asyncio.sleep(max(0.0, next_at - loop.time()))


async def demo(seconds: float, rate: float, out: TextIO) -> int:
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    broken: list[BrokenPipeError] = []  # the reader went away (``| head``): stop early

    def say(text: str) -> None:
        if not broken:
            try:
                print(text, file=out, flush=True)
            except BrokenPipeError as error:
                broken.append(error)
                writer.stop.set()

    def show(label: str, text: str) -> None:
        say(f"{(time.monotonic() - started) * 1000:7.0f} ms  {label:<8} {text}")

    latest: dict[str, list[rxdb.Row]] = {}
    changed = asyncio.Condition()

    async def follow(label: str, stream: rxdb.QueryStream, fmt: Format) -> None:
        try:
            async for rows in stream:
                show(label, fmt(rows))
                async with changed:
                    latest[label] = rows
                    changed.notify_all()
        finally:  # wake settle(): a watch that ended will never catch up
            async with changed:
                changed.notify_all()

    async def settle(predicate: Callable[[], bool]) -> bool:
        # A bound, not a pace: the watches catch up in milliseconds, or something is broken.
        async with asyncio.timeout(10), changed:
            await changed.wait_for(lambda: predicate() or any(f.done() for f in followers))
            return predicate()

    with tempfile.TemporaryDirectory(prefix="rxdb-demo-") as directory:
        path = os.path.join(directory, "shop.db")
        # The writer's lines and its "done" reach this loop through one door.
        done = asyncio.Event()
        async with rxdb.open(path) as db:
            await db.execute_script(SCHEMA)
            writer = Writer(
                await db.serializable_connection(),
                seconds,
                rate,
                log=lambda text: loop.call_soon_threadsafe(show, "writer", text),
                done=lambda: loop.call_soon_threadsafe(done.set),
            )
            say(f"rxdb demo: watching {len(QUERIES)} queries on {path}")
            for label, (sql, _) in QUERIES.items():
                say(f"  {label:<8} {sql}")
            say(
                f"a writer thread (own loop, a handle to this database) commits {rate:g}/s "
                f"for {seconds:g} s; each line below is a watch's new result or a commit\n"
            )
            streams = {label: db.watch(sql) for label, (sql, _) in QUERIES.items()}
            followers = [
                asyncio.create_task(follow(label, streams[label], QUERIES[label][1]))
                for label in QUERIES
            ]
            summary = ""
            try:
                if await settle(lambda: len(latest) == len(QUERIES)):
                    writer.start()
                    await done.wait()
                    # All committed: every watch must reach the state a fresh read shows.
                    final = {label: await db.fetch_all(sql) for label, (sql, _) in QUERIES.items()}
                    if await settle(lambda: latest == final):
                        summary = "".join(
                            f"\n  {label:<8} {s.runs:4} runs, {s.emissions:4} new results shown"
                            for label, s in ((k, v.statistics()) for k, v in streams.items())
                        )
            finally:
                writer.stop.set()
                if writer.ident is not None:
                    # The writer's statements run on this loop (its handle reaches this very
                    # database): joining it here, while one is under way (Ctrl-C, a failure),
                    # would block the loop that statement waits for. Its "done" comes last.
                    await done.wait()
                    writer.join()
        # Closing the database completed every watch, so the followers have ended.
        ended = await asyncio.gather(*followers, return_exceptions=True)
    failure = writer.error or next((e for e in ended if e is not None), None)
    if broken:
        return 0
    if failure is not None or not summary:
        say(f"\nfailed: {failure!r}" if failure else "\nfailed: a watch ended too early")
        return 1
    say(f"\ndone: {writer.commits} commits by the writer thread; the watches:{summary}")
    say(
        "\n  runs:        how often a watch ran its query: once at the start, then after "
        "commits to a table it reads (commits during a run share the next one)"
        "\n  new results: the runs whose result differed from the one before; only those "
        "are handed on"
    )
    return 0


def run(seconds: float = 4.0, rate: float = 5.0, out: TextIO | None = None) -> int:
    """Run the demo to the end; return the process exit status."""
    status = asyncio.run(demo(seconds, rate, out or sys.stdout))
    if out is None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            # Python would complain when flushing at exit: point stdout at nothing instead.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status
