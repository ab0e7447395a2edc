"""Column-level precision: watch re-runs per commit, table-level vs column-level, and its cost.

Each scenario is a small app schema, the watches such an app keeps open, and the write it
makes all the time (a ``last_seen``, an ``updated_at``, a counter, a heartbeat...). The same
commits run twice in one run, on fresh databases: once as built (column-level) and once with
each watch's read set stripped to its tables (what every watch did before, the table-level
baseline: same engine, same writes, only the columns dropped). A commit's re-runs are counted
with the watches' own statistics, once every watch is idle again.

``C1`` sums the scenarios whose written column no watch reads (issue #14's row: goal 0),
``R`` all of them. The cost (``C2``) is commit -> emission of a watch that reads the updated
column, with and without its columns, alternating rounds on one file.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import rxdb

from ._common import (
    CommitClock,
    Figure,
    Results,
    Sizes,
    ValueWaiter,
    idle,
    median,
    percentile,
    sqlite_engine,
    workdir,
)

MS = 1e3


@dataclass(frozen=True)
class Scenario:
    """An app's schema and rows, the watches it keeps open, and the write it repeats
    (``{i}`` is the commit's number). ``read``: some watch depends on the written column
    (names it, or reads a table where it is an index key: docs/guarantees.md)."""

    name: str
    schema: str
    watches: tuple[str, ...]
    write: str
    read: bool = False


def _rows(table: str, values: str, count: int = 50) -> str:
    """``count`` rows from a recursive CTE; ``values`` may use ``n`` (1..count)."""
    return (
        f"INSERT INTO {table} WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
        f"WHERE n < {count}) SELECT {values} FROM c;"
    )


SCENARIOS = (
    Scenario(
        "presence: last_seen",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name, email, last_seen);"
        + _rows("users", "n, 'user' || n, n || '@x', 0"),
        (
            "SELECT id, name, email FROM users ORDER BY name",
            "SELECT count(*) FROM users",
            "SELECT name, email FROM users WHERE id = 7",
        ),
        "UPDATE users SET last_seen = {i} WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "todos: updated_at touch",
        "CREATE TABLE todos(id INTEGER PRIMARY KEY, title, done, updated_at);"
        + _rows("todos", "n, 'todo ' || n, n % 3 = 0, 0"),
        (
            "SELECT id, title FROM todos WHERE NOT done ORDER BY id",
            "SELECT count(*) FROM todos WHERE done",
        ),
        "UPDATE todos SET updated_at = {i} WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "articles: view counter",
        "CREATE TABLE articles(id INTEGER PRIMARY KEY, title, body, views);"
        + _rows("articles", "n, 'title ' || n, 'body ' || n, 0"),
        (
            "SELECT id, title FROM articles ORDER BY title",
            "SELECT title, body FROM articles WHERE id = 3",
        ),
        "UPDATE articles SET views = views + 1 WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "chat: read receipts",
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, room, author, body, read_at);"
        + _rows("messages", "n, n % 5, 'u' || (n % 7), 'hello ' || n, NULL"),
        (
            "SELECT author, body FROM messages WHERE room = 1 ORDER BY id",
            "SELECT room, count(*) FROM messages GROUP BY room",
        ),
        "UPDATE messages SET read_at = {i} WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "jobs: worker heartbeat",
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, status, payload, heartbeat, attempts);"
        + _rows("jobs", "n, CASE WHEN n % 4 = 0 THEN 'running' ELSE 'pending' END, 'p', 0, 0"),
        (
            "SELECT count(*) FROM jobs WHERE status = 'pending'",
            "SELECT id, status, attempts FROM jobs ORDER BY id",
        ),
        "UPDATE jobs SET heartbeat = {i} WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "orders: customer last_login (join)",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name, last_login);"
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer, total, status);"
        + _rows("customers", "n, 'c' || n, 0", 20)
        + _rows("orders", "n, n % 20 + 1, n * 3, 'open'"),
        (
            "SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer "
            "ORDER BY o.id",
            "SELECT name FROM customers ORDER BY name",
        ),
        "UPDATE customers SET last_login = {i} WHERE id = {i} % 20 + 1",
    ),
    Scenario(
        "events: processed flag under a dashboard",
        "CREATE TABLE events(id INTEGER PRIMARY KEY, kind, at, processed);"
        + _rows("events", "n, 'k' || (n % 4), n, 0"),
        (
            "SELECT kind, count(*) FROM events GROUP BY kind",
            "SELECT id, kind, at FROM events ORDER BY at DESC LIMIT 10",
        ),
        "UPDATE events SET processed = 1 WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "game: score under a leaderboard",
        "CREATE TABLE players(id INTEGER PRIMARY KEY, name, score, online);"
        + _rows("players", "n, 'p' || n, n, n % 2"),
        (
            "SELECT name, score FROM players ORDER BY score DESC LIMIT 10",
            "SELECT count(*) FROM players WHERE online",
        ),
        "UPDATE players SET score = score + 1 WHERE id = {i} % 50 + 1",
        read=True,
    ),
    Scenario(
        "cart: quantity (every watch reads it)",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, cart, product, qty, price);"
        + _rows("items", "n, n % 5, 'prod' || n, 1, n"),
        (
            "SELECT sum(qty * price) FROM items WHERE cart = 1",
            "SELECT product, qty FROM items WHERE cart = 1 ORDER BY product",
        ),
        "UPDATE items SET qty = qty + 1 WHERE id = {i} % 50 + 1",
        read=True,
    ),
    Scenario(
        "profile: SELECT * (reads every column)",
        "CREATE TABLE profiles(id INTEGER PRIMARY KEY, name, bio, last_seen);"
        + _rows("profiles", "n, 'n' || n, 'bio', 0"),
        ("SELECT * FROM profiles WHERE id = 1", "SELECT name FROM profiles ORDER BY name"),
        "UPDATE profiles SET last_seen = {i} WHERE id = {i} % 50 + 1",
        read=True,
    ),
    Scenario(
        "catalog: synced_at has an index (counts as read)",
        "CREATE TABLE products(id INTEGER PRIMARY KEY, name, price, synced_at);"
        "CREATE INDEX products_synced ON products(synced_at);"
        + _rows("products", "n, 'prod' || n, n, 0"),
        (
            "SELECT name, price FROM products ORDER BY name",
            "SELECT count(*) FROM products WHERE price > 10",
        ),
        "UPDATE products SET synced_at = {i} WHERE id = {i} % 50 + 1",
        read=True,
    ),
    Scenario(
        "settings: another setting's value",
        "CREATE TABLE settings(key PRIMARY KEY, value, changed_at);"
        "INSERT INTO settings VALUES ('theme', 'dark', 0), ('lang', 'en', 0);",
        ("SELECT value FROM settings WHERE key = 'theme'",),
        "UPDATE settings SET changed_at = {i} WHERE key = 'lang'",
    ),
    Scenario(
        "sessions: expires_at refresh",
        "CREATE TABLE sessions(id INTEGER PRIMARY KEY, user, token, expires_at);"
        + _rows("sessions", "n, 'u' || (n % 10), hex(n), 0"),
        (
            "SELECT DISTINCT user FROM sessions ORDER BY user",
            "SELECT count(*) FROM sessions WHERE user = 'u1'",
        ),
        "UPDATE sessions SET expires_at = {i} WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "documents: cached word count",
        "CREATE TABLE docs(id INTEGER PRIMARY KEY, folder, title, body, words);"
        + _rows("docs", "n, n % 3, 'doc ' || n, 'text', 0"),
        (
            "SELECT id, title FROM docs WHERE folder = 1 ORDER BY title",
            "SELECT folder, count(*) FROM docs GROUP BY folder",
        ),
        "UPDATE docs SET words = {i} WHERE id = {i} % 50 + 1",
    ),
    Scenario(
        "devices: battery telemetry",
        "CREATE TABLE devices(id INTEGER PRIMARY KEY, name, room, battery);"
        + _rows("devices", "n, 'dev' || n, 'room' || (n % 4), 100"),
        (
            "SELECT name FROM devices WHERE room = 'room1' ORDER BY name",
            "SELECT room, count(*) FROM devices GROUP BY room",
        ),
        "UPDATE devices SET battery = 100 - {i} % 100 WHERE id = {i} % 50 + 1",
    ),
)


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


ReadSet = Callable[[str], Awaitable[frozenset[str] | None]]


def _table_level(db: rxdb.Database) -> None:
    """Make every watch of ``db`` read whole tables: its read set without the columns."""
    read_sets = sqlite_engine(db).read_sets
    original: ReadSet = read_sets.read_set

    async def tables_only(sql: str) -> frozenset[str] | None:
        read = await original(sql)
        return None if read is None else frozenset(read)

    read_sets.read_set = tables_only  # type: ignore[method-assign]


async def _reruns(path: str, scenario: Scenario, commits: int, columns: bool) -> float:
    """Watch re-runs per commit of ``scenario``'s write, on a fresh file."""
    _remove(path)
    async with rxdb.open(path, share_across_processes=False) as db:
        if not columns:
            _table_level(db)
        await db.execute_script(scenario.schema)
        streams = [db.watch(sql) for sql in scenario.watches]
        waiters = [ValueWaiter() for _ in streams]
        subscriptions = [s.subscribe(w) for s, w in zip(streams, waiters, strict=True)]
        try:
            for stream in streams:
                await _first_run(stream)
            before = sum(s.statistics().runs for s in streams)
            for i in range(commits):
                await db.execute(scenario.write.format(i=i))
                for stream in streams:
                    await idle(stream)
            after = sum(s.statistics().runs for s in streams)
        finally:
            for subscription in subscriptions:
                subscription.dispose()
    return (after - before) / commits


async def _first_run(stream: rxdb.QueryStream) -> None:
    while stream.statistics().runs == 0:
        await idle(stream)


async def _latency(path: str, samples: int, columns: bool) -> list[float]:
    """Commit -> emission (seconds) of a watch that reads the updated column."""
    _remove(path)
    async with rxdb.open(path, share_across_processes=False) as db:
        if not columns:
            _table_level(db)
        await db.execute_script(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, x, note);"
            "INSERT INTO t VALUES (1, -1, 'a'), (2, 0, 'b');"
        )
        commits = CommitClock(db)
        waiter = ValueWaiter()
        stream = db.watch("SELECT x FROM t WHERE id = 1")
        subscription = stream.subscribe(waiter)
        try:
            await waiter.expect(-1)
            times = []
            for i in range(samples):
                arrival = waiter.expect(i)
                await db.execute("UPDATE t SET x = ? WHERE id = 1", (i,))
                times.append(await arrival - commits.last)
                await idle(stream)
        finally:
            subscription.dispose()
    return times


async def run(sizes: Sizes, results: Results) -> None:
    commits = max(5, sizes.fanout_commits)
    rounds = max(3, sizes.cost_rounds)
    samples = max(10, sizes.latency_samples // 4)
    params: dict[str, Any] = {
        "commits per scenario": commits,
        "baseline": "the same commits with each watch's read set stripped to its tables",
        "counted": "sum of the watches' runs (WatchStatistics) after each commit, all idle",
    }
    runs: dict[Scenario, tuple[float, float]] = {}  # column-level, table-level
    with workdir() as directory:
        path = os.path.join(directory, "precision.db")
        for index, scenario in enumerate(SCENARIOS, start=1):
            column = await _reruns(path, scenario, commits, columns=True)
            table = await _reruns(path, scenario, commits, columns=False)
            runs[scenario] = (column, table)
            results.add(
                Figure(
                    f"R{index}", f"re-runs per commit, {scenario.name}", column, "runs",
                    baseline=table, baseline_label="table-level (read set without columns)",
                    ratio=column / table if table else None,
                    params={"watches": len(scenario.watches), "write": scenario.write},
                )
            ).judge(None)  # fmt: skip
        unread = [s for s in SCENARIOS if not s.read]
        for fid, chosen, title in (
            ("C1", unread, f"re-runs per commit, UPDATE of a column no watch reads "
             f"({len(unread)} scenarios)"),
            ("R", SCENARIOS, f"re-runs per commit, all {len(SCENARIOS)} scenarios"),
        ):  # fmt: skip
            column = sum(runs[s][0] for s in chosen)
            table = sum(runs[s][1] for s in chosen)
            results.add(
                Figure(
                    fid, title, column, "runs", baseline=table, baseline_label="table-level",
                    ratio=column / table, params=params,
                )
            ).judge(None if fid == "R" else column == 0)  # fmt: skip
        latencies: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(rounds):
            for columns in (False, True):
                latencies[columns] += await _latency(path, samples, columns)
    after, before = median(latencies[True]) * MS, median(latencies[False]) * MS
    results.add(
        Figure(
            "C2", "commit -> emission, a watch reading the updated column", after, "ms",
            baseline=before, baseline_label="same, read set without columns", ratio=after / before,
            params={
                "samples": f"{samples} per round x {rounds} rounds, alternating",
                "p99 column-level ms": round(percentile(latencies[True], 99) * MS, 3),
                "p99 table-level ms": round(percentile(latencies[False], 99) * MS, 3),
            },
        )
    ).judge(None)  # fmt: skip
