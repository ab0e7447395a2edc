"""Maintained watches (docs/guide.md, "Big results"): db.watch patches the last result with
the rows a commit changed, and each emission is what the full query returns at that commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rxdb
from rxdb import Row
from rxdb.engines.sqlite import maintenance
from tests.rxdb import incremental_cases as cases

SCHEMA = cases.SCHEMA
QUERY = "SELECT * FROM t WHERE a IS NOT NULL ORDER BY b DESC"
ORDERED = f"{QUERY}\n, 1 DESC"  # what rxdb runs: the rowid breaks ties
CHAT = "SELECT b FROM t WHERE a = 1 ORDER BY id"  # the chat room's shape: no key selected
TIMEOUT = 10.0


class Watched:
    """A watch with ``distinct=False`` (one emission per commit that touches ``t``) and the
    count of the commits that touched ``t``."""

    def __init__(self, db: rxdb.Database, sql: str = QUERY) -> None:
        self.stream = db.watch(sql, distinct=False)
        self.results: list[list[Row]] = []
        self.messages = 0
        self._changed = asyncio.Event()
        self._subscriptions = [
            db.table_updates(["t"]).subscribe(lambda _: self._count()),
            self.stream.subscribe(self._got),
        ]

    def _count(self) -> None:
        self.messages += 1
        self._changed.set()

    def _got(self, rows: list[Row]) -> None:
        self.results.append(rows)
        self._changed.set()

    def wake(self) -> None:
        """Have :meth:`until` look again (something else it waits for happened)."""
        self._changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def settled(self) -> list[Row]:
        """The result once every commit that touched ``t`` has been answered (a commit's
        message reaches the loop before the write that made it returns)."""
        await self.until(lambda: len(self.results) >= 1 + self.messages)
        return self.results[-1]

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.dispose()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[rxdb.Database]:
    async with rxdb.open(str(tmp_path / "app.db")) as opened:
        await opened.execute(SCHEMA)
        yield opened


async def test_a_maintained_watch_patches_instead_of_running(db: rxdb.Database) -> None:
    await db.execute_many("INSERT INTO t (a, b) VALUES (?, ?)", [(i, i % 3) for i in range(20)])
    watched = Watched(db)
    try:
        assert await watched.settled() == await db.fetch_all(ORDERED)
        await db.execute("UPDATE t SET b = 7 WHERE id = 5")
        async with db.transaction():
            await db.execute("DELETE FROM t WHERE id = 6")
            await db.execute("INSERT INTO t (a, b) VALUES ('x', 1)")
        await db.execute("UPDATE t SET a = NULL WHERE id = 7")
        assert await watched.settled() == await db.fetch_all(ORDERED)
        statistics = watched.stream.statistics()
        assert (statistics.runs, statistics.patched) == (1, 3)
        assert watched.results[-1][0]["id"] == 5  # b = 7 came first
        assert 21 in [row["id"] for row in watched.results[-1]]
        assert watched.results[-1][0].keys() == ("id", "a", "b", "u")
    finally:
        watched.close()


async def test_a_watch_that_does_not_select_its_key_is_patched(db: rxdb.Database) -> None:
    await db.execute_many("INSERT INTO t (a, b) VALUES (?, ?)", [(1, f"m{i}") for i in range(5)])
    watched = Watched(db, CHAT)
    typed = db.watch(CHAT, row_type=dict)
    dicts: list[list[dict[str, object]]] = []

    def got(rows: list[dict[str, object]]) -> None:
        dicts.append(rows)
        watched.wake()

    subscription = typed.subscribe(got)
    try:
        assert await watched.settled() == [(f"m{i}",) for i in range(5)]
        await db.execute("INSERT INTO t (a, b) VALUES (1, 'new')")
        await db.execute("UPDATE t SET a = 2 WHERE id = 2")  # leaves the room
        await db.execute("UPDATE t SET b = 'edited' WHERE id = 1")
        await db.execute("INSERT INTO t (a, b) VALUES (2, 'elsewhere')")
        emitted = await watched.settled()
        assert emitted == [("edited",), ("m2",), ("m3",), ("m4",), ("new",)]
        assert emitted[0].keys() == ("b",)
        assert emitted[0].b == "edited"
        assert repr(emitted[0]) == "Row(b='edited')"
        statistics = watched.stream.statistics()
        assert (statistics.runs, statistics.patched) == (1, 4)
        # Its own emissions (one per commit) may come later than the other watch's.
        await watched.until(lambda: bool(dicts) and dicts[-1][0] == {"b": "edited"})
        assert dicts[-1] == [{"b": b} for b in ("edited", "m2", "m3", "m4", "new")]
    finally:
        subscription.dispose()
        watched.close()


@pytest.mark.parametrize("sql", [QUERY, CHAT], ids=["key selected", "hidden columns"])
async def test_patched_emissions_are_lists_of_their_own(db: rxdb.Database, sql: str) -> None:
    # The watch patches its result in place: what it hands out must be copies, which
    # neither its later patches nor a subscriber's changes reach.
    await db.execute_many("INSERT INTO t (a, b) VALUES (?, ?)", [(1, f"m{i}") for i in range(5)])
    expected = f"{sql}\n, 1 DESC" if sql == QUERY else sql
    watched = Watched(db, sql)
    try:
        first = await watched.settled()
        await db.execute("INSERT INTO t (a, b) VALUES (1, 'new')")
        second = await watched.settled()
        kept = [tuple(row) for row in second]
        first.clear()  # a subscriber's own list: no later emission misses a row for it
        second.append(second[0])
        await db.execute("DELETE FROM t WHERE id = 2")
        await db.execute("UPDATE t SET b = 'edited' WHERE id = 3")
        third = await watched.settled()
        assert third == await db.fetch_all(expected)
        assert [tuple(row) for row in second[:-1]] == kept  # untouched by the later patches
        late: list[list[Row]] = []
        db.watch(sql, distinct=False).subscribe(late.append).dispose()
        assert late == [third]
        assert late[0] is not third
        assert watched.stream.statistics().patched == 3
    finally:
        watched.close()


async def test_a_replace_makes_the_watch_run(db: rxdb.Database) -> None:
    await db.execute("INSERT INTO t (a, b, u) VALUES (1, 1, 1)")
    watched = Watched(db)
    try:
        await watched.settled()
        await db.execute("INSERT OR REPLACE INTO t (a, b, u) VALUES (2, 2, 1)")
        assert await watched.settled() == await db.fetch_all(ORDERED)
        assert (watched.stream.statistics().runs, watched.stream.statistics().patched) == (2, 0)
    finally:
        watched.close()


async def test_another_connections_commit_makes_the_watch_run(
    db: rxdb.Database, tmp_path: Path
) -> None:
    await db.execute("INSERT INTO t (a, b) VALUES (1, 1)")
    watched = Watched(db)
    try:
        await watched.settled()
        other = sqlite3.connect(str(tmp_path / "app.db"), isolation_level=None)
        try:
            other.execute("INSERT INTO t (a, b) VALUES (2, 2)")
        finally:
            other.close()
        await watched.until(lambda: watched.messages == 1)  # told by the poller, in its time
        assert await watched.settled() == await db.fetch_all(ORDERED)
        assert watched.stream.statistics().runs == 2
        # The next own commit cannot patch across the foreign one: the epoch moved.
        await db.execute("UPDATE t SET b = 9 WHERE id = 1")
        assert await watched.settled() == await db.fetch_all(ORDERED)
        assert watched.stream.statistics().patched == 0
    finally:
        watched.close()


async def test_a_foreign_commit_nobody_announced_is_not_patched_across(tmp_path: Path) -> None:
    # No poller: the watch hears of the foreign commit only through the next own commit,
    # whose patch must not apply over a result that lacks the foreign row.
    path = str(tmp_path / "app.db")
    async with rxdb.open(path, foreign_poll=None) as db:
        await db.execute(SCHEMA)
        watched = Watched(db)
        try:
            await watched.settled()
            await db.execute("INSERT INTO t (a, b) VALUES (1, 1)")  # patched
            await watched.settled()
            other = sqlite3.connect(path, isolation_level=None)
            try:
                other.execute("INSERT INTO t (a, b) VALUES (2, 2)")
            finally:
                other.close()
            await db.execute("UPDATE t SET b = 9 WHERE id = 1")
            assert await watched.settled() == await db.fetch_all(ORDERED)
            assert len(watched.results[-1]) == 2
            assert (watched.stream.statistics().runs, watched.stream.statistics().patched) == (2, 1)
            await db.execute("UPDATE t SET b = 8 WHERE id = 2")  # patched again
            assert await watched.settled() == await db.fetch_all(ORDERED)
            assert watched.stream.statistics().patched == 2
        finally:
            watched.close()


async def test_a_foreign_commit_during_the_reread_is_not_patched_across(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another program commits between an own commit and its re-read, changing the row the
    # commit changed and another one: a patch of the row read then would show a state that
    # never was (the other row as before that commit).
    path = str(tmp_path / "app.db")
    fetch = maintenance._fetch
    foreign: list[int] = []

    def interleaved(connection: sqlite3.Connection, *args: Any) -> list[tuple[Any, ...]]:
        if not foreign:
            other = sqlite3.connect(path, isolation_level=None)
            try:
                foreign.append(other.execute("UPDATE t SET b = 5 WHERE id <= 2").rowcount)
            finally:
                other.close()
        return fetch(connection, *args)

    async with rxdb.open(path, foreign_poll=None) as db:
        await db.execute(SCHEMA)
        await db.execute("INSERT INTO t (a, b) VALUES (1, 1)")
        watched = Watched(db)
        try:
            await watched.settled()
            await db.execute("INSERT INTO t (a, b) VALUES (2, 2)")  # patched
            await watched.settled()
            monkeypatch.setattr(maintenance, "_fetch", interleaved)
            await db.execute("UPDATE t SET b = 9 WHERE id = 1")
            assert await watched.settled() == await db.fetch_all(ORDERED)
            assert [row["b"] for row in watched.results[-1]] == [5, 5]
            assert foreign == [2]
            assert watched.stream.statistics().patched == 1
        finally:
            watched.close()


async def test_a_trigger_that_says_replace_is_seen_on_the_next_commit(db: rxdb.Database) -> None:
    await db.execute("INSERT INTO t (a, b, u) VALUES (1, 1, 1)")
    watched = Watched(db)
    try:
        await watched.settled()
        await db.execute("INSERT INTO t (a, b, u) VALUES (2, 2, 2)")  # patched
        await watched.settled()
        await db.execute("CREATE TABLE v (x)")
        await watched.settled()  # each schema change: a run
        await db.execute(
            "CREATE TRIGGER w AFTER INSERT ON v "
            "BEGIN REPLACE INTO t (a, b, u) VALUES (3, 3, new.x); END"
        )
        await watched.settled()
        await db.execute("INSERT INTO v (x) VALUES (1)")  # deletes row 1 unseen
        assert await watched.settled() == await db.fetch_all(ORDERED)
        assert [row["u"] for row in watched.results[-1]] == [1, 2]
        assert watched.stream.statistics().patched == 1
    finally:
        watched.close()


async def test_a_temp_table_on_the_writer_does_not_answer_its_reread(db: rxdb.Database) -> None:
    # Maintained rows are re-read on the writer, unless it may see something else than the
    # readers: here a TEMP table of the same name, which an unqualified name finds first.
    await db.execute("INSERT INTO t (a, b) VALUES (1, 'file')")
    watched = Watched(db, CHAT)
    try:
        await watched.settled()
        await db.execute("CREATE TEMP TABLE t (id INTEGER PRIMARY KEY, a, b, u)")
        await db.execute("INSERT INTO temp.t (id, a, b) VALUES (2, 1, 'shadow'), (3, 1, 'x')")
        await watched.settled()
        # Rowids 2 and 3 of the file's table: the first commit after a schema change has no
        # proof to read aside with (the watch runs); the second one is patched.
        for body in ("file 2", "file 3"):
            await db.execute("INSERT INTO main.t (a, b) VALUES (1, ?)", (body,))
            assert await watched.settled() == await db.fetch_all(f"{CHAT}\n, 1")
        assert [row["b"] for row in watched.results[-1]] == ["file", "file 2", "file 3"]
        assert watched.stream.statistics().patched == 1
    finally:
        watched.close()


async def test_a_patch_rides_with_the_writes_result(tmp_path: Path) -> None:
    async with rxdb.open(str(tmp_path / "app.db"), foreign_poll=None) as db:
        await db.execute(SCHEMA)
        results: list[list[Row]] = []
        changed = asyncio.Event()

        def got(rows: list[Row]) -> None:
            results.append(rows)
            changed.set()

        subscription = db.watch(CHAT).subscribe(got)
        try:
            async with asyncio.timeout(TIMEOUT):
                while not results:  # the watch hears commits from its first result on
                    changed.clear()
                    await changed.wait()
            await db.execute("INSERT INTO t (a, b) VALUES (1, 'first')")
            loop = asyncio.get_running_loop()
            wakeups = 0
            threadsafe = loop.call_soon_threadsafe

            def counted(*args: Any, **kwargs: Any) -> Any:
                nonlocal wakeups
                wakeups += 1
                return threadsafe(*args, **kwargs)

            loop.call_soon_threadsafe = counted  # type: ignore[method-assign, assignment]
            try:
                await db.execute("INSERT INTO t (a, b) VALUES (1, 'second')")
            finally:
                del loop.call_soon_threadsafe
            assert results[-1] == [("first",), ("second",)]  # emitted as the write returned
            assert wakeups == 1  # the patch came with the write's result
            assert db.watch(CHAT).statistics().patched == 2
        finally:
            subscription.dispose()


async def test_a_memory_database_is_maintained_on_the_writer() -> None:
    async with rxdb.open(":memory:") as db:
        await db.execute(SCHEMA)
        watched = Watched(db, CHAT)
        try:
            await watched.settled()
            await db.execute("INSERT INTO t (a, b) VALUES (1, 'x')")
            async with db.transaction():
                await db.execute("INSERT INTO t (a, b) VALUES (1, 'y')")
                await db.execute("INSERT INTO t (a, b) VALUES (1, 'z')")
            assert await watched.settled() == [("x",), ("y",), ("z",)]
            assert watched.stream.statistics().patched == 2
        finally:
            watched.close()


async def test_a_schema_change_makes_the_watch_run_and_maintain_again(db: rxdb.Database) -> None:
    await db.execute("INSERT INTO t (a, b) VALUES (1, 1)")
    watched = Watched(db, "SELECT * FROM t")
    try:
        await watched.settled()
        await db.execute("ALTER TABLE t ADD COLUMN c DEFAULT 'new'")
        await watched.settled()
        await db.execute("INSERT INTO t (a, b) VALUES (2, 2)")
        assert await watched.settled() == [(1, 1, 1, None, "new"), (2, 2, 2, None, "new")]
        assert watched.stream.statistics().patched == 1
    finally:
        watched.close()


async def test_other_shapes_run_as_before(db: rxdb.Database) -> None:
    watched = Watched(db, "SELECT count(*) FROM t")
    try:
        await watched.settled()
        await db.execute("INSERT INTO t (a) VALUES (1)")
        assert await watched.settled() == [(1,)]
        assert (watched.stream.statistics().runs, watched.stream.statistics().patched) == (2, 0)
    finally:
        watched.close()


async def test_the_capture_is_removed_with_the_last_watch(db: rxdb.Database) -> None:
    watched = Watched(db)
    await watched.settled()
    triggers = "SELECT count(*) FROM temp.sqlite_schema WHERE type = 'trigger'"
    async with db.transaction():  # on the writer, where the TEMP triggers live
        assert await db.fetch_all(triggers) == [(3,)]
    watched.close()
    async with db.transaction():  # queued on the writer after the removal
        assert await db.fetch_all(triggers) == [(0,)]


values = st.one_of(st.none(), st.integers(-2, 2), st.sampled_from([0.5, "a", "B", b"\x00"]))
ids = st.integers(1, 8)
steps = st.lists(cases.statements(values, ids), min_size=1, max_size=3)


USER_QUERIES = [
    # (what the watch runs, the same with its ties broken by the rowid, as rxdb does)
    (QUERY, ORDERED),
    # Queries that do not select the rowid, or an ORDER BY column: hidden columns.
    (CHAT, CHAT),
    (
        "SELECT a, u AS x FROM t ORDER BY b DESC NULLS LAST",
        "SELECT a, u AS x FROM t ORDER BY b DESC NULLS LAST, id DESC",
    ),
    (
        "SELECT u FROM t WHERE b IS NOT NULL ORDER BY a",
        "SELECT u FROM t WHERE b IS NOT NULL ORDER BY a, id",
    ),
]


async def _replay(
    path: Path, script: list[tuple[bool, list[cases.Statement]]], query: tuple[str, str]
) -> int:
    user_sql, ordered = query
    async with rxdb.open(str(path)) as db:
        await db.execute(SCHEMA)
        watched = Watched(db, user_sql)
        try:
            await watched.settled()  # the first result, once the watch hears commits
            for together, statements in script:
                try:
                    if together:
                        async with db.transaction():
                            for sql, params in statements:
                                await db.execute(sql, params)
                    else:
                        for sql, params in statements:
                            await db.execute(sql, params)
                except rxdb.IntegrityError:
                    pass  # the transaction (or the statement) left no trace
                emitted = await watched.settled()
                _same_result(emitted, await db.fetch_all(ordered), await db.fetch_all(user_sql))
            return watched.stream.statistics().patched
        finally:
            watched.close()


def _same_result(emitted: list[Row], ordered: list[Row], user: list[Row]) -> None:
    """``emitted`` is the user's query's result (names, row type, values of the same types),
    in the order of a full run: of the query with the rowid breaking its ties (a maintained
    run or patch), or of the query as written (an eager re-run by the engine)."""
    assert emitted in (ordered, user)
    full = ordered if emitted == ordered else user
    assert [tuple(map(type, row)) for row in emitted] == [tuple(map(type, r)) for r in full]
    assert Counter(map(_typed, emitted)) == Counter(map(_typed, user))
    assert {type(row) for row in emitted} <= {type(row) for row in user}
    assert all(row.keys() == user[0].keys() for row in emitted)
    assert all(row.as_dict() == dict(zip(row.keys(), row, strict=True)) for row in emitted)


def _typed(row: Row) -> tuple[tuple[type, object], ...]:
    return tuple((type(value), value) for value in row)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), steps), min_size=1, max_size=6),
    st.sampled_from(USER_QUERIES),
)
def test_every_emission_is_the_full_result_at_that_commit(
    tmp_path_factory: pytest.TempPathFactory,
    script: list[tuple[bool, list[cases.Statement]]],
    query: tuple[str, str],
) -> None:
    asyncio.run(_replay(tmp_path_factory.mktemp("watch") / "app.db", script, query))
