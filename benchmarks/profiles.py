"""Profiles behind the diagnoses in docs/benchmarks.md: ``python -m benchmarks.profiles``.

Two views, because cProfile sees only the thread it runs in:

1. the writer's per-statement work, run synchronously on one thread: a plain ``sqlite3``
   connection against rxdb's ``TrackedConnection`` (write capture, no statement cache,
   commit publishing), same file, ``synchronous=OFF`` so only Python and SQLite CPU remain;
2. the event-loop side of ``Database.execute`` and ``Database.fetch_all`` (cProfile on the
   loop's thread; the worker threads' time shows up as waiting in ``select``);
3. a cold parser analysis (#9).
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import io
import os
import pstats
import sqlite3
import timeit
from typing import cast

import rxdb
from rxdb.engines.sqlite.connections import TrackedConnection

from ._common import workdir

N = 5000


def _top(profile: cProfile.Profile, limit: int, sort: str = "tottime") -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    text = out.getvalue()
    return text[text.index("   ncalls") :] if "   ncalls" in text else text


def writer_statement(path: str) -> str:
    published = []
    plain = sqlite3.connect(path, isolation_level=None)
    # sqlite3 calls its factory as it would a class; typeshed only accepts a class.
    factory = cast(
        "type[TrackedConnection]",
        functools.partial(TrackedConnection, on_commit=lambda u, e, w: published.append(u)),
    )
    tracked = sqlite3.connect(path, isolation_level=None, cached_statements=0, factory=factory)
    try:
        for conn in (plain, tracked):
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = OFF")
        plain.execute("CREATE TABLE IF NOT EXISTS w (id INTEGER PRIMARY KEY, v INTEGER)")
        sql = "INSERT INTO w (v) VALUES (?)"
        t_plain = min(timeit.repeat(lambda: plain.execute(sql, (1,)), number=N, repeat=5)) / N
        t_tracked = min(timeit.repeat(lambda: tracked.execute(sql, (1,)), number=N, repeat=5)) / N
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(N):
            tracked.execute(sql, (1,))
        profile.disable()
    finally:
        plain.close()
        tracked.close()
    head = (
        f"one autocommit INSERT, synchronous=OFF, best of 5 x {N}:\n"
        f"  plain sqlite3.Connection.execute     {t_plain * 1e6:6.1f} µs\n"
        f"  rxdb TrackedConnection.execute       {t_tracked * 1e6:6.1f} µs "
        f"(+{(t_tracked - t_plain) * 1e6:.1f} µs; commits published: {len(published)})\n\n"
    )
    return head + _top(profile, 18)


async def loop_side(path: str) -> str:
    async with rxdb.open(path) as db:
        await db.execute("CREATE TABLE IF NOT EXISTS r (id INTEGER PRIMARY KEY, v INTEGER)")
        await db.execute("INSERT INTO r (v) VALUES (1)")
        await db.execute("PRAGMA synchronous = NORMAL")
        for _ in range(200):  # warm-up
            await db.execute("INSERT INTO w (v) VALUES (?)", (1,))
            await db.fetch_all("SELECT id, v FROM r WHERE id = ?", (1,))
        profile = cProfile.Profile()
        profile.enable()
        for i in range(2000):
            await db.execute("INSERT INTO w (v) VALUES (?)", (i,))
            await db.fetch_all("SELECT id, v FROM r WHERE id = ?", (1,))
        profile.disable()
    return "2000 x (db.execute(INSERT) + db.fetch_all(point query)), loop thread:\n\n" + _top(
        profile, 30
    )


def parser_cold() -> str:
    from parser import analyze

    from .parsing import JOIN, clear_caches

    for _ in range(5):
        clear_caches()
        analyze(JOIN)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(200):
        clear_caches()
        analyze(JOIN)
    profile.disable()
    return "200 cold analyses of the #9 join (caches cleared each time):\n\n" + _top(
        profile, 14, "cumulative"
    )


def main() -> None:
    with workdir() as tmp:
        path = os.path.join(tmp, "profile.db")
        print(writer_statement(path))
        print(asyncio.run(loop_side(path)))
    print(parser_cold())


if __name__ == "__main__":
    main()
