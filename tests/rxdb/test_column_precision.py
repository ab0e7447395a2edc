"""Column-level precision: an UPDATE of columns a watch does not read re-runs nothing.

The write side names the columns an UPDATE assigns (``TableUpdate.columns``, see also the
``UPDATED_COLUMNS`` capture cases), the read side the columns a query depends on
(:class:`rxdb.updates.Reads`), and the bus and the wire carry and match both. Whenever either
side cannot tell, it says ``None`` (any column) and the watch re-runs.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rxdb
from rxdb.bus import Bus
from rxdb.errors import ProtocolError
from rxdb.remote.wire.messages import Notify, Request, decode_message, encode_message
from rxdb.remote.wire.operations import NotifyUpdates
from rxdb.remote.wire.updates import notify_from_wire, notify_to_wire, update_from_wire
from rxdb.updates import (
    NotifyTablesUpdated,
    Reads,
    TableUpdate,
    UpdateKind,
    merge_updates,
    union_reads,
)
from tests.conftest import Recorder, settle, sqlite_engine, subscribed

INSERT, UPDATE, DELETE = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE


def cols(*names: str) -> frozenset[str]:
    return frozenset(names)


def committed(*updates: TableUpdate, everything: bool = False) -> NotifyTablesUpdated:
    return NotifyTablesUpdated("db", "origin", 1, frozenset(updates), everything)


class TestMatching:
    def test_an_update_of_other_columns_leaves_a_reader_alone(self) -> None:
        reads = Reads({"t"}, {"t": cols("a", "b")})
        assert not committed(TableUpdate("t", UPDATE, cols("c"))).affects(reads)
        assert committed(TableUpdate("t", UPDATE, cols("c", "b"))).affects(reads)

    @pytest.mark.parametrize("kind", [INSERT, DELETE, None], ids=str)
    def test_inserts_deletes_and_unknown_kinds_reach_a_reader_of_no_column(
        self, kind: UpdateKind | None
    ) -> None:
        reads = Reads({"t"}, {"t": cols()})  # SELECT count(*) FROM t
        assert committed(TableUpdate("t", kind)).affects(reads)
        assert not committed(TableUpdate("t", UPDATE, cols("x"))).affects(reads)

    def test_unknown_columns_on_either_side_match(self) -> None:
        known = Reads({"t"}, {"t": cols("a")})
        assert committed(TableUpdate("t", UPDATE)).affects(known)
        for unknown in (Reads({"t"}), frozenset({"t"}), None):
            assert committed(TableUpdate("t", UPDATE, cols("z"))).affects(unknown)

    def test_columns_of_one_table_say_nothing_of_another(self) -> None:
        reads = Reads({"t", "u"}, {"t": cols("a")})
        assert committed(TableUpdate("u", UPDATE, cols("b"))).affects(reads)
        assert not committed(TableUpdate("t", UPDATE, cols("b"))).affects(reads)

    def test_everything_reaches_every_reader(self) -> None:
        assert committed(everything=True).affects(Reads({"t"}, {"t": cols()}))

    def test_merged_updates_keep_every_column_and_unknown_wins(self) -> None:
        merged = merge_updates(
            [
                TableUpdate("t", UPDATE, cols("a")),
                TableUpdate("t", UPDATE, cols("b")),
                TableUpdate("t", INSERT),
                TableUpdate("u", UPDATE, cols("a")),
                TableUpdate("u", UPDATE),
                TableUpdate("u", UPDATE, cols("c")),
            ]
        )
        assert merged == {
            TableUpdate("t", UPDATE, cols("a", "b")),
            TableUpdate("t", INSERT),
            TableUpdate("u", UPDATE),
        }

    def test_a_group_reads_the_union_and_unknown_wins(self) -> None:
        group = union_reads(
            [
                Reads({"t", "u"}, {"t": cols("a"), "u": cols("x")}),
                Reads({"t", "v"}, {"t": cols("b"), "v": cols()}),
                frozenset({"u"}),  # a member that knows no columns
            ]
        )
        assert group == frozenset({"t", "u", "v"})
        assert group.columns == {"t": cols("a", "b"), "v": cols()}


async def drain() -> None:
    """Run the deliveries ``bus.publish`` already queued on this loop."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


async def delivered(bus: Bus, tables: frozenset[str] | None, message: NotifyTablesUpdated) -> bool:
    """Whether a subscriber of ``tables`` hears ``message``; the bus is left as it was."""
    heard = asyncio.Event()
    sub = bus.subscribe("db", lambda _: heard.set(), tables=tables)
    try:
        bus.publish(message)
        await drain()
        return heard.is_set()
    finally:
        sub.close()


class TestBus:
    async def test_a_subscriber_hears_only_updates_of_its_columns(self) -> None:
        bus = Bus()
        reads = Reads({"t"}, {"t": cols("a")})
        assert not await delivered(bus, reads, committed(TableUpdate("t", UPDATE, cols("b"))))
        assert await delivered(bus, reads, committed(TableUpdate("t", UPDATE, cols("a", "b"))))
        assert await delivered(bus, reads, committed(TableUpdate("t", INSERT)))
        assert await delivered(bus, reads, committed(TableUpdate("t", UPDATE)))
        assert await delivered(
            bus, frozenset({"t"}), committed(TableUpdate("t", UPDATE, cols("b")))
        )
        assert bus.statistics().subscriptions == 0

    async def test_retargeting_moves_the_columns_too(self) -> None:
        bus = Bus()
        calls: list[NotifyTablesUpdated] = []
        sub = bus.subscribe("db", calls.append, tables=Reads({"t"}, {"t": cols("a")}))
        try:
            sub.retarget(Reads({"t"}, {"t": cols("b")}))
            bus.publish(committed(TableUpdate("t", UPDATE, cols("a"))))
            bus.publish(committed(TableUpdate("t", UPDATE, cols("b"))))
            await drain()
            assert [m.updates for m in calls] == [{TableUpdate("t", UPDATE, cols("b"))}]
        finally:
            sub.close()

    @settings(max_examples=200, deadline=None)
    @given(data=st.data())
    def test_the_bus_index_agrees_with_affects(self, data: Any) -> None:
        """Whatever subscribers and message, the index delivers exactly to those that
        ``NotifyTablesUpdated.affects`` says must look again."""
        names = st.sampled_from(["t", "u"])
        columns = st.frozensets(st.sampled_from(["a", "b", "c"]), max_size=2)
        read_sets = st.one_of(
            st.none(),
            st.frozensets(names),
            st.builds(Reads, st.frozensets(names), st.dictionaries(names, columns)),
        )
        updates = st.builds(
            TableUpdate, names, st.sampled_from([INSERT, UPDATE, DELETE, None]), st.none() | columns
        )
        subscribers = data.draw(st.lists(read_sets, max_size=4))
        message = committed(*data.draw(st.lists(updates, min_size=1, max_size=3)))

        async def check() -> None:
            bus = Bus()
            heard: list[int] = []

            def hear(index: int, _: NotifyTablesUpdated) -> None:
                heard.append(index)

            subs = [
                bus.subscribe("db", functools.partial(hear, i), tables=tables)
                for i, tables in enumerate(subscribers)
            ]
            bus.publish(message)
            await drain()
            for sub in subs:
                sub.close()
            expected = [i for i, tables in enumerate(subscribers) if message.affects(tables)]
            assert sorted(heard) == expected

        asyncio.run(check())


class TestWire:
    def test_columns_cross_the_wire(self) -> None:
        message = committed(
            TableUpdate("t", UPDATE, cols("b", "a")),
            TableUpdate("t", INSERT),
            TableUpdate("u", UPDATE),
        )
        fields = notify_to_wire(message)
        assert fields[4] == [["t", "insert"], ["t", "update", ["a", "b"]], ["u", "update"]]
        assert notify_from_wire(fields) == message

    def test_a_hub_notify_and_a_served_announcement_keep_the_columns(self) -> None:
        message = committed(TableUpdate("t", UPDATE, cols("a")), TableUpdate("u", DELETE))
        back = decode_message(encode_message(Notify(message, "epoch")))
        assert isinstance(back, Notify)
        assert back.message == message
        announced = NotifyUpdates([TableUpdate("t", UPDATE, cols("a", "b"))])
        request = decode_message(encode_message(Request(1, announced)))
        assert isinstance(request, Request)
        assert request.operation == announced

    def test_an_update_from_an_older_peer_is_any_column(self) -> None:
        assert update_from_wire(["t", "update"]) == TableUpdate("t", UPDATE, None)

    @pytest.mark.parametrize(
        "fields",
        [
            ["t", "insert", ["a"]],  # only an update names columns
            ["t", None, ["a"]],
            ["t", "update", "a"],
            ["t", "update", [1]],
            ["t", "update", ["a"], "extra"],
        ],
    )
    def test_malformed_columns_are_a_protocol_error(self, fields: list[Any]) -> None:
        with pytest.raises(ProtocolError):
            update_from_wire(fields)


# The oracle: for every query and every UPDATE below, on a fresh database, if the UPDATE moves
# the query's result (as a list: values and order), the message the commit published must
# affect the watch's read set. Each trap of the brief has a query or an update here.
SCHEMA = """
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT UNIQUE, team INTEGER,
                   last_seen INTEGER, score INTEGER);
CREATE INDEX users_team ON users(team);
CREATE TABLE posts(id INTEGER PRIMARY KEY, author INTEGER REFERENCES users(id) ON UPDATE CASCADE,
                   title TEXT, body TEXT, views INTEGER, updated_at INTEGER);
CREATE TABLE tags(post INTEGER, tag TEXT, PRIMARY KEY (post, tag)) WITHOUT ROWID;
CREATE TABLE totals(k TEXT, n INTEGER, doubled AS (n * 2), tripled AS (n * 3) STORED);
CREATE TABLE ranked(k TEXT, n INTEGER, half AS (n / 2));
CREATE INDEX ranked_half ON ranked(half);
CREATE TABLE replaced(k UNIQUE ON CONFLICT REPLACE, v);
CREATE TABLE single(v);
CREATE TABLE levels(score INTEGER, label TEXT);
CREATE TABLE flagged(k TEXT, v TEXT, live INTEGER);
CREATE UNIQUE INDEX flagged_live ON flagged(k) WHERE live;
CREATE TABLE "Mixed"("Name" TEXT, "Other" INTEGER);
CREATE VIRTUAL TABLE notes USING fts5(title, body);
CREATE VIEW active AS SELECT id, name FROM users WHERE last_seen > 5;
CREATE VIEW post_authors AS SELECT p.title, u.name FROM posts p JOIN users u ON u.id = p.author;
CREATE VIEW same_ids AS SELECT title, name FROM posts JOIN users USING (id);
CREATE TRIGGER posts_touch AFTER UPDATE OF body ON posts BEGIN
    UPDATE posts SET updated_at = updated_at + 10 WHERE id = new.id;
END;
INSERT INTO users VALUES (1, 'ann', 'a@x', 1, 3, 5), (2, 'bob', 'b@x', 2, 9, 7),
                         (3, 'cid', 'c@x', 1, 7, 5), (4, 'dee', 'd@x', 3, 1, 2);
INSERT INTO posts VALUES (1, 2, 'one', 'b1', 10, 1), (2, 1, 'two', 'b2', 20, 2),
                         (3, 3, 'three', 'b3', 5, 0);
INSERT INTO tags VALUES (1, 'x'), (1, 'y'), (2, 'x');
INSERT INTO totals(k, n) VALUES ('a', 1), ('b', 2);
INSERT INTO ranked(k, n) VALUES ('a', 1), ('b', 4), ('c', 6);
INSERT INTO replaced VALUES (1, 'one'), (2, 'two');
INSERT INTO single VALUES (1), (3);
INSERT INTO levels VALUES (5, 'mid'), (7, 'high');
INSERT INTO flagged VALUES ('a', 'first', 1), ('a', 'second', 0);
INSERT INTO "Mixed" VALUES ('m', 1), ('n', 2);
INSERT INTO notes VALUES ('first', 'plain'), ('second', 'words');
"""

QUERIES = [
    "SELECT name, email FROM users ORDER BY name",
    "SELECT name FROM users",
    "SELECT id FROM users",  # may scan the team index: its order follows team
    "SELECT count(*) FROM users",
    "SELECT count(*) FROM users WHERE last_seen > 5",
    "SELECT team, count(*) FROM users GROUP BY team",
    "SELECT group_concat(name) FROM users",
    "SELECT * FROM users ORDER BY id",
    "SELECT rowid, name FROM users ORDER BY rowid",
    "SELECT oid FROM users",
    "SELECT * FROM active",
    "SELECT * FROM post_authors ORDER BY title",
    "SELECT * FROM same_ids",
    "SELECT title FROM posts NATURAL JOIN tags",
    "SELECT title FROM posts JOIN tags ON tags.post = posts.id ORDER BY tag",
    "SELECT title FROM posts JOIN users ON users.id = posts.author WHERE users.team = 1",
    "SELECT title FROM posts WHERE EXISTS "
    "(SELECT 1 FROM users WHERE users.id = posts.author AND users.score > 4)",
    "SELECT title FROM posts WHERE author IN (SELECT id FROM users WHERE name LIKE 'a%')",
    "WITH recent AS (SELECT * FROM posts WHERE updated_at > 1) SELECT title FROM recent",
    "SELECT (SELECT max(views) FROM posts) AS top, name FROM users ORDER BY name LIMIT 2",
    "SELECT name, rank() OVER (ORDER BY score) FROM users",
    "SELECT tag FROM tags ORDER BY tag",
    "SELECT post FROM tags",
    "SELECT doubled FROM totals",
    "SELECT k FROM totals",
    "SELECT tripled FROM totals ORDER BY k",
    "SELECT k FROM ranked",
    "SELECT v FROM replaced",
    "SELECT id FROM users WHERE id IN single",
    "SELECT title FROM posts UNION SELECT name FROM users",
    "SELECT upper(name) AS n FROM users ORDER BY n",
    "SELECT name FROM users ORDER BY score",
    "SELECT name FROM users WHERE score = (SELECT max(score) FROM users)",
    "SELECT a.name, b.name FROM users a, users b WHERE a.team = b.team AND a.id < b.id",
    "SELECT json_group_array(title) FROM posts",
    "SELECT body FROM posts",
    "SELECT updated_at FROM posts",
    'SELECT "name" FROM mixed',
    "SELECT views FROM posts WHERE title = 'one'",
    "SELECT name, label FROM users JOIN levels USING (score) ORDER BY name",
    "SELECT label FROM users NATURAL JOIN levels ORDER BY label",
    "SELECT v FROM flagged ORDER BY v",
    "SELECT title FROM notes WHERE notes MATCH 'zebra'",
]

UPDATES = [
    "UPDATE users SET last_seen = 8 WHERE id = 1",
    "UPDATE users SET last_seen = 0 WHERE id = 2",
    "UPDATE users SET score = 9 WHERE id = 4",
    "UPDATE users SET name = 'zed' WHERE id = 1",
    "UPDATE users SET team = 0 WHERE id = 4",
    "UPDATE users SET email = 'q@x' WHERE id = 3",
    "UPDATE users SET id = 9 WHERE id = 2",  # cascades to posts.author
    "UPDATE users SET rowid = 0 WHERE id = 4",
    "UPDATE users SET _rowid_ = 7 WHERE id = 1",
    "UPDATE OR REPLACE users SET email = 'd@x' WHERE id = 2",  # deletes dee, unreported
    "UPDATE posts SET body = 'new' WHERE id = 3",  # its trigger moves updated_at
    "UPDATE posts SET views = 1 WHERE id = 1",
    "UPDATE posts SET title = 'aaa' WHERE id = 3",
    "UPDATE tags SET tag = 'a' WHERE post = 2",
    "UPDATE tags SET post = 3 WHERE tag = 'y'",
    "UPDATE totals SET n = 5 WHERE k = 'a'",
    "UPDATE totals SET k = 'c' WHERE k = 'a'",
    "UPDATE ranked SET n = 9 WHERE k = 'a'",
    "UPDATE replaced SET k = 2 WHERE v = 'one'",  # ON CONFLICT REPLACE deletes 'two'
    "UPDATE single SET v = 2 WHERE v = 3",
    'UPDATE mixed SET "NAME" = \'a\' WHERE "other" = 2',
    "UPDATE mixed SET other = 0",
    "UPDATE levels SET score = 2 WHERE label = 'mid'",
    "UPDATE OR REPLACE flagged SET live = 1 WHERE v = 'second'",  # deletes 'first'
    "UPDATE notes SET body = 'zebra' WHERE title = 'first'",
]


async def results(db: Any) -> list[list[tuple[Any, ...]]]:
    return [[tuple(row) for row in await db.fetch_all(sql)] for sql in QUERIES]


@pytest.mark.parametrize("update", UPDATES)
async def test_an_update_that_moves_a_result_always_reaches_its_watch(update: str) -> None:
    async with rxdb.open(":memory:") as db:
        await db.execute_script("PRAGMA foreign_keys = ON;" + SCHEMA)
        engine = sqlite_engine(db)
        reads = [await engine.read_sets.read_set(sql) for sql in QUERIES]
        before = await results(db)
        heard: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(db.table_updates(), heard):
            await db.execute(update)
            [message] = await heard.wait_count(1)
        after = await results(db)
    missed = [
        (sql, read)
        for sql, read, old, new in zip(QUERIES, reads, before, after, strict=True)
        if old != new and not message.affects(read)
    ]
    assert not missed, f"{update} announced {sorted(message.updates, key=repr)}"


PEOPLE = """
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, email TEXT, last_seen INTEGER);
INSERT INTO people VALUES (1, 'ann', 'a@x', 0), (2, 'bob', 'b@x', 0);
"""
NAMES = "SELECT name FROM people ORDER BY name"


async def runs_after(db: rxdb.Database, stream: Any, change: str) -> int:
    """The commits ``stream``'s watch answered (by a run, or by patching a maintained
    result) once ``change`` is committed and every watch is idle."""
    await db.execute(change)
    await settle(db)
    statistics = stream.statistics()
    return int(statistics.runs + statistics.patched)


class TestWatches:
    async def test_an_update_of_a_column_no_watch_reads_reruns_nothing(
        self, any_db: rxdb.Database
    ) -> None:
        db = any_db
        await db.execute_script(PEOPLE)
        names = db.watch(NAMES)
        seen: Recorder[Any] = Recorder()
        with subscribed(names, seen):
            await seen.wait_value([("ann",), ("bob",)])
            assert await runs_after(db, names, "UPDATE people SET last_seen = 5") == 1
            assert await runs_after(db, names, "UPDATE people SET email = 'q' WHERE id = 1") == 1
            assert await runs_after(db, names, "UPDATE people SET name = 'cy' WHERE id = 1") == 2
            assert await runs_after(db, names, "UPDATE people SET id = 7 WHERE id = 2") == 3
            assert await runs_after(db, names, "UPDATE people SET rowid = 9 WHERE id = 7") == 4
        assert seen.values[-1] == [("bob",), ("cy",)]

    async def test_a_counting_watch_reruns_on_insert_and_delete_only(
        self, memdb: rxdb.Database
    ) -> None:
        await memdb.execute_script(PEOPLE)
        count = memdb.watch("SELECT count(*) FROM people")
        seen: Recorder[Any] = Recorder()
        with subscribed(count, seen):
            await seen.wait_value([(2,)])
            assert await runs_after(memdb, count, "UPDATE people SET name = 'x'") == 1
            assert await runs_after(memdb, count, "INSERT INTO people(name) VALUES ('c')") == 2
            assert await runs_after(memdb, count, "DELETE FROM people WHERE id = 1") == 3
        assert seen.values == [[(2,)], [(3,)], [(2,)]]

    async def test_a_group_reruns_when_any_member_reads_the_column(
        self, memdb: rxdb.Database
    ) -> None:
        await memdb.execute_script(PEOPLE)
        group = memdb.watch_many(
            {"names": (NAMES, ()), "seen": ("SELECT max(last_seen) FROM people", ())}
        )
        seen: Recorder[Any] = Recorder()
        with subscribed(group, seen):
            await seen.wait_count(1)
            assert await runs_after(memdb, group, "UPDATE people SET email = 'q'") == 1
            assert await runs_after(memdb, group, "UPDATE people SET last_seen = 3") == 2
            assert await runs_after(memdb, group, "UPDATE people SET name = 'z' WHERE id = 1") == 3

    async def test_columns_of_attached_and_temp_tables_are_told_apart(
        self, memdb: rxdb.Database
    ) -> None:
        await memdb.execute("ATTACH ':memory:' AS aux")
        try:
            await memdb.execute_script(
                """
                CREATE TABLE aux.t(a, b); INSERT INTO aux.t VALUES (1, 1);
                CREATE TEMP TABLE u(a, b); INSERT INTO u VALUES (1, 1);
                CREATE TABLE u(c, d); INSERT INTO u VALUES (1, 1);
                """
            )
            qualified = memdb.watch("SELECT a FROM aux.t")
            bare = memdb.watch("SELECT a FROM t")
            shadowing = memdb.watch("SELECT a FROM u")  # the temp u hides main's
            streams = (qualified, bare, shadowing)
            seen: list[Recorder[Any]] = [Recorder(), Recorder(), Recorder()]
            with (
                subscribed(qualified, seen[0]),
                subscribed(bare, seen[1]),
                subscribed(shadowing, seen[2]),
            ):
                for recorder in seen:
                    await recorder.wait_count(1)
                await memdb.execute("UPDATE aux.t SET b = 2")
                await memdb.execute("UPDATE temp.u SET b = 2")
                await memdb.execute("UPDATE main.u SET c = 2")  # not u's a: no
                await settle(memdb)
                assert [s.statistics().runs for s in streams] == [1, 1, 1]
                await memdb.execute("UPDATE t SET a = 2")
                await memdb.execute("UPDATE u SET a = 2")
                await settle(memdb)
                assert [s.statistics().runs for s in streams] == [2, 2, 2]
        finally:
            await memdb.execute("DETACH aux")

    async def test_announced_changes_rerun_every_reader(self, memdb: rxdb.Database) -> None:
        await memdb.execute_script(PEOPLE)
        names = memdb.watch(NAMES)
        with subscribed(names, Recorder()):
            await settle(memdb)
            await memdb.notify_updates("people")
            await settle(memdb)
            assert names.statistics().runs == 2

    async def test_a_schema_change_reanalyses_the_columns(self, memdb: rxdb.Database) -> None:
        await memdb.execute_script(PEOPLE)
        names = memdb.watch(NAMES)
        with subscribed(names, Recorder()):
            await settle(memdb)
            assert await runs_after(memdb, names, "UPDATE people SET last_seen = 1") == 1
            # An index orders scans by last_seen: from now on it may move the result.
            assert await runs_after(memdb, names, "CREATE INDEX seen ON people(last_seen)") == 2
            assert await runs_after(memdb, names, "UPDATE people SET last_seen = 2") == 3


class TestOthersSayAnyColumn:
    async def test_a_foreign_update_of_an_unread_column_reruns_the_watch(
        self, db: rxdb.Database, db_path: Path, foreign_detection: str
    ) -> None:
        await db.execute_script(PEOPLE)
        names = db.watch(NAMES)
        states: Recorder[Any] = Recorder()
        with subscribed(names, Recorder()), subscribed(names.states(), states):
            await states.wait_for(lambda r: r.values[-1].phase == "live")
            before = len(states.values)
            await asyncio.to_thread(_foreign_update, db_path)
            # Only a run makes it refresh: the program's commit re-ran it.
            await states.wait_for(lambda r: any(s.phase == "refreshing" for s in r.values[before:]))

    async def test_table_updates_filter_by_table_not_column(self, memdb: rxdb.Database) -> None:
        await memdb.execute_script(PEOPLE)
        heard: Recorder[NotifyTablesUpdated] = Recorder()
        with subscribed(memdb.table_updates(["people"], [UPDATE]), heard):
            await memdb.execute("UPDATE people SET last_seen = 1")
            [message] = await heard.wait_count(1)
        assert message.updates == {TableUpdate("people", UPDATE, cols("last_seen"))}


def _foreign_update(path: Path) -> None:
    """Another program: a plain sqlite3 connection and its own commit."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("UPDATE people SET last_seen = 99")
    finally:
        conn.close()
