"""Never stale, whoever writes: watches of several shapes, on one database, while this
process, another rxdb process and a program that has never heard of rxdb write to the same
tables at random, with transactions and rollbacks. The other two write last, after this
process has stopped: their commits must reach the watches on their own. Once every writer has
stopped, each watch's last emission must equal what a fresh read returns now; a watch that
missed a commit waits for an emission that never comes, and fails here.

The writers are tests/rxdb/convergence_worker.py; the same random writes run on SQLite (a
plain ``sqlite3`` program beside rxdb) and on PostgreSQL (a plain ``asyncpg`` one).
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT
from tests.rxdb.convergence_worker import Statement, schema, through, write
from tests.rxdb.postgres_worker import SERVER, scratch_database

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
COUNT = 150
"""Writes by each writer while the others write."""
FINAL = 20
"""Writes by each other writer once this process has stopped."""

WATCHES: list[Statement] = [
    ("SELECT id, v FROM t WHERE v % 3 = 0 ORDER BY id", ()),  # maintained (SQLite)
    ("SELECT count(*), sum(v) FROM t", ()),  # an aggregate: a full re-run
    ("SELECT t.id, u.w FROM t JOIN u ON u.tid = t.id ORDER BY t.id, u.id", ()),
    ("SELECT v FROM t WHERE id = ?", (5,)),
    ("SELECT id, v FROM t ORDER BY v DESC, id LIMIT 5", ()),
    ("SELECT id, s FROM t WHERE id < 20 ORDER BY id", ()),  # the column others skip
    ("SELECT id, v, n FROM vt ORDER BY id", ()),  # a view over both tables
]


class Latest:
    """Each watch's last emission, and an event set by every emission."""

    def __init__(self) -> None:
        self.rows: dict[int, list[tuple[Any, ...]]] = {}
        self.errors: list[BaseException] = []
        self.emitted = asyncio.Event()

    def observe(self, db: rxdb.Database) -> list[Any]:
        subscriptions = []
        for n, (sql, params) in enumerate(WATCHES):

            def on_next(rows: list[Any], n: int = n) -> None:
                self.rows[n] = [tuple(row) for row in rows]
                self.emitted.set()

            subscriptions.append(db.watch(sql, params).subscribe(on_next, self.errors.append))
        return subscriptions

    async def converge(self, db: rxdb.Database) -> None:
        """Wait until every watch's last emission is what a fresh read returns; each wait for
        the next emission lasts at most WAIT seconds."""
        while True:
            self.emitted.clear()  # before the reads: an emission meanwhile is not lost
            stale = []
            for n, (sql, params) in enumerate(WATCHES):
                fresh = [tuple(row) for row in await db.fetch_all(sql, params)]
                if self.rows.get(n) != fresh:
                    stale.append((sql, self.rows.get(n), fresh))
            assert not self.errors, self.errors
            if not stale:
                return
            try:
                async with asyncio.timeout(WAIT):
                    await self.emitted.wait()
            except TimeoutError:
                pytest.fail(f"stale watches, no emission in {WAIT} s: {stale}")


class Writer:
    """Another process writing (tests/rxdb/convergence_worker.py)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.waiting = asyncio.ensure_future(self._wait_for_waiting())

    async def _wait_for_waiting(self) -> None:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        assert line == b"waiting\n", line

    def go_on(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")


@asynccontextmanager
async def writers(target: str, *kinds: str) -> AsyncIterator[list[Writer]]:
    """The other writers, started now; killed if the test ends before they do."""
    started = [
        Writer(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.rxdb.convergence_worker", kind, target, str(seed),
            str(COUNT), str(FINAL), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        ))
        for seed, kind in enumerate(kinds, start=1)
    ]  # fmt: skip
    try:
        yield started
    finally:
        for writer in started:
            writer.waiting.cancel()
            if writer.process.returncode is None:
                writer.process.kill()
            await writer.process.wait()


async def write_here(db: rxdb.Database, dialect: str, until: asyncio.Future[Any]) -> None:
    """This process's share, the workers' kind of writes plus an ``execute_many`` now and
    then, until it has made ``COUNT`` and ``until`` is done (every other writer has made its
    ``COUNT``): the writers overlap, whichever starts first."""
    rng = random.Random(0)
    made = 0
    transactional = through(db)

    async def run(statements: list[Statement], commit: bool) -> None:
        if rng.random() < 0.05:
            await db.execute_many(
                "INSERT INTO u (tid, w) VALUES (?, ?)",
                [(rng.randrange(1, 40), rng.randrange(100)) for _ in range(10)],
            )
        else:
            await transactional(statements, commit)

    while made < COUNT or not until.done():
        await write(rng, dialect, 1, run)
        made += 1


async def write_and_converge(db: rxdb.Database, target: str, dialect: str, *kinds: str) -> None:
    """This process and the others write together; then each other writer in turn writes its
    last commits alone, and the watches must converge after each."""
    latest = Latest()
    subscriptions = latest.observe(db)
    try:
        async with writers(target, *kinds) as others, asyncio.timeout(90):
            everyone_waiting = asyncio.gather(*(writer.waiting for writer in others))
            await write_here(db, dialect, everyone_waiting)
            for writer in others:
                writer.go_on()
                assert await writer.process.wait() == 0
                await latest.converge(db)
    finally:
        for subscription in subscriptions:
            subscription.dispose()


async def test_sqlite_watches_converge_whoever_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "converge.db")
    async with rxdb.open(path) as db:
        for sql in schema("sqlite"):
            await db.execute(sql)
        await write_and_converge(db, path, "sqlite", "rxdb", "sqlite3")


async def test_postgres_watches_converge_whoever_writes() -> None:
    async with scratch_database() as name:
        url = f"{SERVER}/{name}"
        async with rxdb.open(url) as db:
            for sql in schema("postgres"):
                await db.execute(sql)
        # Opened anew: no schema change of its own for a catalog check to find and answer
        # with a re-run of every watch, which would hide a missed commit.
        async with rxdb.open(url) as db:
            await write_and_converge(db, url, "postgres", "rxdb", "asyncpg")
