"""Write capture and commit notifications.

The writer connection records, with SQLite's authorizer, every table a statement may write
(trigger bodies, foreign-key cascades, REPLACE's implicit deletes, INSTEAD OF triggers), keeps
only statements that changed rows (``total_changes``), buffers until the outermost commit, drops
the buffer on rollback, and turns DDL into "anything may have changed". One
``NotifyTablesUpdated`` per committed transaction; nothing before commit, nothing on rollback,
nothing for a statement that changed no row.

Two levels: ``TrackedConnection`` driven synchronously (the callback's calls are recorded), and
``rxdb.Database`` end to end (the bus messages are recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest

import rxdb
from rxdb.engines.sqlite.capture import (
    ROWIDS_LIMIT,
    StatementEffects,
    WriteCapture,
    _Level,
    announced,
    effects_of,
)
from rxdb.engines.sqlite.connections import TrackedConnection, split_script
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind, merge_updates
from tests.rxdb.capture_cases import (
    CASES,
    DELETE,
    INSERT,
    UPDATE,
    Case,
    Fails,
    InTransaction,
    Many,
    Reported,
    Run,
    Script,
    Step,
    everything,
    tu,
)

# ---------------------------------------------------------------------------------------------
# Unit level: TrackedConnection, synchronously
# ---------------------------------------------------------------------------------------------


class Calls:
    """Records the commit callback's calls as ``(updates, everything)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[frozenset[TableUpdate], bool]] = []

    def __call__(
        self, updates: frozenset[TableUpdate], everything: bool, wal_changes: object
    ) -> None:
        assert isinstance(updates, frozenset)
        assert wal_changes is None  # no stamper on these connections
        self.calls.append((updates, everything))

    def take(self) -> list[tuple[frozenset[TableUpdate], bool]]:
        calls, self.calls = self.calls, []
        return calls

    def tables(self) -> list[frozenset[str]]:
        """The tables of each call so far (and forget them)."""
        return [frozenset(u.table for u in updates) for updates, _ in self.take()]


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def conn(calls: Calls) -> Iterator[TrackedConnection]:
    # sqlite3 calls its factory as it would a class; typeshed only accepts a class.
    factory = cast("type[TrackedConnection]", functools.partial(TrackedConnection, on_commit=calls))
    connection = sqlite3.connect(
        ":memory:",
        factory=factory,
        isolation_level=None,
        cached_statements=0,
    )
    assert isinstance(connection, TrackedConnection)
    try:
        yield connection
    finally:
        connection.close()


def setup(conn: sqlite3.Connection, calls: Calls, script: str) -> None:
    """Run ``script`` statement by statement and forget what it reported."""
    for statement in split_script(script):
        conn.execute(statement)
    calls.take()


def run_step(conn: TrackedConnection, calls: Calls, step: Step) -> None:
    match step:
        case str():
            conn.execute(step)
        case Run(sql, params):
            conn.execute(sql, params)
        case Many(sql, rows, lazy):
            conn.executemany(sql, iter(rows) if lazy else list(rows))
        case Script(sql):
            conn.executescript(sql)
        case Fails(sql, error, match):
            with pytest.raises(error, match=match):
                conn.execute(sql)
        case Reported(expected):
            assert calls.take() == list(expected)
        case InTransaction(expected):
            assert conn.in_transaction == expected
        case _:
            raise AssertionError(f"not a step: {step!r}")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_capture(conn: TrackedConnection, calls: Calls, case: Case) -> None:
    """The cases in ``capture_cases.py``: schema, steps, then exactly the expected calls."""
    setup(conn, calls, case.schema)
    for step in case.steps:
        run_step(conn, calls, step)
    for query, rows in case.rows.items():
        assert conn.execute(query).fetchall() == rows, query
    assert not conn.in_transaction
    taken = calls.take()
    if not case.at_least:
        assert taken == list(case.calls)
    else:
        assert [flag for _, flag in taken] == [flag for _, flag in case.calls]
        for (updates, _), (expected, _) in zip(taken, case.calls, strict=True):
            assert expected <= updates


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_capture_memo_and_filter_match_the_general_path(
    conn: TrackedConnection, calls: Calls, case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``WriteCapture`` keeps only the events that record something and memoizes their
    effects: for every statement of every case, what it returns (computed, then from the
    memo) is what every event SQLite reported at the last prepare of its text would give."""
    events: list[tuple[int, str | None, str | None, str | None]] = []
    prepared: dict[str, StatementEffects] = {}
    checked: list[StatementEffects] = []
    authorize, start, finish = WriteCapture.authorize, WriteCapture.start, WriteCapture.finish

    def authorizing(
        self: WriteCapture, code: int, arg1: str | None, arg2: str | None, db: str | None, _: Any
    ) -> int:
        events.append((code, arg1, arg2, db))
        return authorize(self, code, arg1, arg2, db, _)

    def starting(self: WriteCapture, sql: str) -> bool:
        events.clear()
        return start(self, sql)

    def finishing(self: WriteCapture, sql: str) -> StatementEffects:
        if events:  # prepared: what it reported
            prepared[sql] = effects_of(events)
        # Else run from the cache, what its last prepare reported (or nothing was prepared).
        expected = prepared.get(sql, effects_of(()))
        assert finish(self, sql) == expected
        assert finish(self, sql) == expected
        checked.append(expected)
        return expected

    monkeypatch.setattr(WriteCapture, "authorize", authorizing)
    monkeypatch.setattr(WriteCapture, "start", starting)
    monkeypatch.setattr(WriteCapture, "finish", finishing)
    conn.set_authorizer(conn._capture.authorize)
    setup(conn, calls, case.schema)
    for step in case.steps:
        run_step(conn, calls, step)
    assert checked


@pytest.mark.parametrize(
    "update",
    [tu("t", INSERT), tu("t", UPDATE, "a", "b"), tu("t", UPDATE), tu("t"), tu("s.t", DELETE)],
    ids=repr,
)
def test_announced_skips_merging_one_update_with_the_same_result(update: TableUpdate) -> None:
    assert announced({update}) == merge_updates({update})


def test_announced_merges_several_updates() -> None:
    updates = {tu("t", UPDATE, "a"), tu("t", UPDATE, "b"), tu("t", INSERT)}
    assert (
        announced(updates) == merge_updates(updates) == {tu("t", UPDATE, "a", "b"), tu("t", INSERT)}
    )


@pytest.mark.parametrize(
    "rowids",
    [{}, {"t": {1, 2}}, {"t": None}, {"t": set(range(ROWIDS_LIMIT))}, {"t": {1}, "u": None}],
    ids=repr,
)
@pytest.mark.parametrize("schema", [False, True])
def test_a_commit_without_savepoints_announces_its_only_level_as_absorbing_it_would(
    rowids: dict[str, set[Any] | None], schema: bool
) -> None:
    """The outermost commit takes its only level as is, where it absorbs several into an
    empty one: for one level, the same thing."""
    level = _Level(None)
    level.updates = {tu("t", UPDATE, "a"), tu("u", INSERT)}
    level.schema = schema
    level.rowids = rowids
    merged = _Level(None)
    merged.absorb(level)
    assert (merged.updates, merged.schema, merged.rowids) == (level.updates, schema, rowids)


def test_capture_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


class TestStatementCache:
    def test_statement_cache_hides_repeats_when_cached_statements_is_default(self) -> None:
        # Why the writer's capture keeps effects per text: with sqlite3's cache, the
        # authorizer does not fire for the second run of the same text.
        seen: list[str | None] = []
        plain = sqlite3.connect(":memory:", isolation_level=None)
        try:
            plain.execute("CREATE TABLE t(x)")

            def authorizer(code: int, arg1: str | None, *_: Any) -> int:
                if code == sqlite3.SQLITE_INSERT:
                    seen.append(arg1)
                return sqlite3.SQLITE_OK

            plain.set_authorizer(authorizer)
            plain.execute("INSERT INTO t VALUES (1)")
            plain.execute("INSERT INTO t VALUES (1)")
        finally:
            plain.close()
        assert seen == ["t"]


class TestBatches:
    def test_executescript_splits_strings_comments_and_trigger_bodies(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        conn.executescript(
            """
            CREATE TABLE a(x);   -- a comment; with a semicolon
            CREATE TABLE "we;ird"(x);
            /* block; comment */
            CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN
                INSERT INTO "we;ird" VALUES ('from trigger; one');
                INSERT INTO [we;ird] VALUES (CASE WHEN new.x IS NOT NULL THEN 'two;' END);
            END;
            INSERT INTO a VALUES ('x;y');
            """
        )
        tables = calls.tables()
        assert tables[-1] == {"a", "we;ird"}
        assert conn.execute('SELECT x FROM "we;ird" ORDER BY x').fetchall() == [
            ("from trigger; one",),
            ("two;",),
        ]
        assert conn.execute("SELECT x FROM a").fetchall() == [("x;y",)]


class TestSplitScript:
    @pytest.mark.parametrize(
        ("script", "expected"),
        [
            ("", []),
            ("   \n ", []),
            (";;;", []),
            ("SELECT 1", ["SELECT 1"]),
            ("SELECT 1;SELECT 2;", ["SELECT 1;", "SELECT 2;"]),
            ("SELECT 1;;; SELECT 2", ["SELECT 1;", " SELECT 2"]),
            ("SELECT 'a;b'; SELECT 2;", ["SELECT 'a;b';", " SELECT 2;"]),
            ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;';", " SELECT 2"]),
            ('SELECT "a;b" FROM t;', ['SELECT "a;b" FROM t;']),
            ("SELECT [a;b], `c;d` FROM t; SELECT 2", ["SELECT [a;b], `c;d` FROM t;", " SELECT 2"]),
            ("SELECT 1; -- x; y\nSELECT 2;", ["SELECT 1;", " -- x; y\nSELECT 2;"]),
            ("SELECT 1 /* ; */ ; SELECT 2", ["SELECT 1 /* ; */ ;", " SELECT 2"]),
            ("SELECT 1 -- trailing; comment", ["SELECT 1 -- trailing; comment"]),
            (
                "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); "
                "DELETE FROM c; END; SELECT 3;",
                [
                    "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); "
                    "DELETE FROM c; END;",
                    " SELECT 3;",
                ],
            ),
            (
                "CREATE TEMP TRIGGER tr BEFORE DELETE ON a BEGIN "
                "UPDATE b SET x = CASE WHEN 1 THEN 'END;' END; END;",
                [
                    "CREATE TEMP TRIGGER tr BEFORE DELETE ON a BEGIN "
                    "UPDATE b SET x = CASE WHEN 1 THEN 'END;' END; END;"
                ],
            ),
        ],
    )
    def test_split_script_splits_like_sqlite_when_tricky(
        self, script: str, expected: list[str]
    ) -> None:
        assert split_script(script) == expected

    def test_split_script_pieces_are_each_complete(self) -> None:
        script = "CREATE TABLE t(x); INSERT INTO t VALUES ('a;b'); -- c;\n SELECT * FROM t"
        pieces = split_script(script)
        assert "".join(pieces).strip() == script.strip()
        assert all(
            sqlite3.complete_statement(p if p.rstrip().endswith(";") else p + ";") for p in pieces
        )


class TestSchemaChanges:
    @pytest.mark.parametrize(
        "ddl",
        [
            "CREATE TABLE u(y)",
            "CREATE INDEX t_x ON t(x)",
            "CREATE UNIQUE INDEX IF NOT EXISTS t_ux ON t(x)",
            "CREATE VIEW v AS SELECT x FROM t",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
            "CREATE TEMP TABLE tt(y)",
            "CREATE TEMP VIEW tv AS SELECT 1",
            "DROP TABLE t",
            "ALTER TABLE t ADD COLUMN y",
            "ALTER TABLE t RENAME TO t2",
            "ALTER TABLE t RENAME COLUMN x TO z",
        ],
    )
    def test_ddl_reports_everything_when_no_row_changed(
        self, conn: TrackedConnection, calls: Calls, ddl: str
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        before = conn.total_changes
        conn.execute(ddl)
        assert conn.total_changes == before
        assert calls.take() == [everything()]

    @pytest.mark.parametrize(
        "ddl",
        [
            "DROP INDEX t_x",
            "DROP VIEW v",
            "DROP TRIGGER tr",
        ],
    )
    def test_drop_reports_everything(self, conn: TrackedConnection, calls: Calls, ddl: str) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE t(x); CREATE INDEX t_x ON t(x); CREATE VIEW v AS SELECT x FROM t;
            CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;
            """,
        )
        conn.execute(ddl)
        assert calls.take() == [everything()]


# ---------------------------------------------------------------------------------------------
# End to end: rxdb.Database and the bus
# ---------------------------------------------------------------------------------------------


async def quiet(rounds: int = 10) -> None:
    """Let already-queued loop callbacks (bus deliveries) run. Used only for negative checks."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@contextmanager
def watching(db: rxdb.Database, recorder: Any, **filters: Any) -> Iterator[None]:
    """Record ``db.table_updates(**filters)`` into ``recorder`` for the block."""
    subscription = db.table_updates(**filters).subscribe(recorder)
    try:
        yield
    finally:
        subscription.dispose()


def tables_of(message: NotifyTablesUpdated) -> set[str]:
    return {u.table for u in message.updates}


class TestNotifications:
    async def test_commit_publishes_one_message_per_transaction(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):
            await db.execute("INSERT INTO a VALUES (1)")
            async with db.transaction():
                await db.execute("INSERT INTO a VALUES (2)")
                await db.execute("INSERT INTO b VALUES (2)")
                await db.execute("UPDATE a SET x = x + 1")
            await db.execute_many("INSERT INTO b VALUES (?)", [(3,), (4,)])
            messages = await recorder.wait_count(3)
            await quiet()
            assert len(recorder.values) == 3
        first, second, third = messages
        for message in messages:
            assert isinstance(message, NotifyTablesUpdated)
            assert message.database == db.key
            assert message.origin == db.origin
            assert not message.everything
        assert first.updates == {tu("a", INSERT)}
        assert second.updates == {tu("a", INSERT), tu("a", UPDATE, "x"), tu("b", INSERT)}
        assert third.updates == {tu("b", INSERT)}
        assert second.sequence == first.sequence + 1
        assert third.sequence == second.sequence + 1

    async def test_transaction_publishes_nothing_before_commit(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute("CREATE TABLE a(x)")
        with watching(db, recorder):
            async with db.transaction():
                await db.execute("INSERT INTO a VALUES (1)")
                await db.execute_script("INSERT INTO a VALUES (2); INSERT INTO a VALUES (3);")
                await quiet()
                assert recorder.values == []
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("a", INSERT)}
        assert await db.fetch_one("SELECT count(*) FROM a") == (3,)

    async def test_transaction_publishes_nothing_when_rolled_back(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):

            async def write_then_fail() -> None:
                async with db.transaction():
                    await db.execute("INSERT INTO a VALUES (1)")
                    await db.execute_script("INSERT INTO a VALUES (2); CREATE TABLE c(x);")
                    raise RuntimeError("boom")

            with pytest.raises(RuntimeError, match="boom"):
                await write_then_fail()
            await quiet()
            assert recorder.values == []
            assert await db.fetch_all("SELECT * FROM a") == []
            assert await db.fetch_one("SELECT 1 FROM sqlite_schema WHERE name = 'c'") is None
            # The next commit is announced alone: nothing of the rolled-back one leaks into it.
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("b", INSERT)}
        assert not message.everything

    async def test_statement_changing_no_row_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):
            await db.execute("UPDATE a SET x = 1 WHERE 0")
            await db.execute("DELETE FROM a")
            async with db.transaction():
                await db.execute("UPDATE a SET x = 2")
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("b", INSERT)}

    async def test_ddl_publishes_everything(self, any_db: rxdb.Database, recorder: Any) -> None:
        db = any_db
        with watching(db, recorder, tables=["unrelated"]):
            await db.execute("CREATE TABLE a(x)")
            [message] = await recorder.wait_count(1)
        assert message.everything

    async def test_trigger_and_cascade_writes_reach_subscribers_of_those_tables(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script(
            """
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE child(id INTEGER PRIMARY KEY,
                               pid REFERENCES parent(id) ON DELETE CASCADE);
            CREATE TABLE log(msg);
            CREATE TRIGGER child_gone AFTER DELETE ON child BEGIN
                INSERT INTO log VALUES ('child ' || old.id);
            END;
            INSERT INTO parent VALUES (1);
            INSERT INTO child VALUES (10, 1);
            """
        )
        with watching(db, recorder, tables=["LOG"]):
            await db.execute("DELETE FROM parent")
            [message] = await recorder.wait_count(1)
        assert {tu("parent", DELETE), tu("child", DELETE), tu("log", INSERT)} <= message.updates
        assert await db.fetch_all("SELECT msg FROM log") == [("child 10",)]


class TestFilters:
    async def test_table_updates_filters_by_table(self, db: rxdb.Database, recorder: Any) -> None:
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder, tables=["B"]):
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
            await db.execute("INSERT INTO a VALUES (2)")
            await db.execute("DELETE FROM b")
            await recorder.wait_count(2)
        assert [m.updates for m in recorder.values] == [{tu("b", INSERT)}, {tu("b", DELETE)}]
        assert recorder.values[1].sequence == message.sequence + 2  # a's insert in between

    async def test_table_updates_filters_by_kind(self, db: rxdb.Database, recorder: Any) -> None:
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder, kinds=[UpdateKind.DELETE]):
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("UPDATE a SET x = 2")
            await db.execute("DELETE FROM a")
            [message] = await recorder.wait_count(1)
            async with db.transaction():  # a delete anywhere in the transaction matches
                await db.execute("INSERT INTO a VALUES (1)")
                await db.execute("DELETE FROM a")
                await db.execute("INSERT INTO b VALUES (1)")
            await recorder.wait_count(2)
        assert message.updates == {tu("a", DELETE)}
        assert recorder.values[1].updates == {tu("a", INSERT), tu("a", DELETE), tu("b", INSERT)}

    async def test_table_updates_filters_by_table_and_kind(
        self, db: rxdb.Database, recorder: Any
    ) -> None:
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder, tables=["a"], kinds=[UpdateKind.DELETE]):
            async with db.transaction():  # a delete, but of another table
                await db.execute("INSERT INTO a VALUES (1)")
                await db.execute("INSERT INTO b VALUES (1)")
                await db.execute("DELETE FROM b")
            await db.execute("DELETE FROM a")
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("a", DELETE)}

    async def test_notify_updates_announces_named_table(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        other = type(recorder)()
        with (
            watching(db, recorder, tables=["t"], kinds=[UpdateKind.DELETE]),
            watching(db, other, tables=["u"]),
        ):
            await db.notify_updates("T")
            [message] = await recorder.wait_count(1)
            await db.notify_updates(TableUpdate("u", UpdateKind.INSERT))
            await other.wait_count(1)
        assert message.updates == {TableUpdate("t", None)}
        assert not message.everything
        assert message.database == db.key
        assert message.origin == db.origin
        assert other.values[0].sequence == message.sequence + 1

    async def test_notify_updates_without_tables_announces_everything(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        with watching(db, recorder, tables=["t"], kinds=[UpdateKind.INSERT]):
            await db.notify_updates()
            [message] = await recorder.wait_count(1)
        assert message.everything
        assert message.updates == frozenset()


class TestExplicitTransactions:
    async def test_begin_commit_written_by_user_publishes_once_at_commit(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):
            await db.execute("BEGIN")
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("INSERT INTO b VALUES (1)")
            await quiet()
            assert recorder.values == []
            await db.execute("COMMIT")
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("a", INSERT), tu("b", INSERT)}

    async def test_begin_rollback_written_by_user_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):
            await db.execute("BEGIN")
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("ROLLBACK")
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("b", INSERT)}
        assert await db.fetch_all("SELECT * FROM a") == []

    async def test_script_with_begin_commit_publishes_once(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):
            await db.execute_script(
                "BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES (';'); COMMIT;"
            )
            [message] = await recorder.wait_count(1)
            await quiet()
            assert len(recorder.values) == 1
        assert message.updates == {tu("a", INSERT), tu("b", INSERT)}

    async def test_user_savepoints_publish_released_and_drop_rolled_back(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x); CREATE TABLE c(x);")
        with watching(db, recorder):
            await db.execute("SAVEPOINT outer_sp")  # starts the transaction
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("SAVEPOINT inner_sp")
            await db.execute("INSERT INTO b VALUES (1)")
            await db.execute("ROLLBACK TO inner_sp")
            await db.execute("RELEASE inner_sp")
            await db.execute("SAVEPOINT kept")
            await db.execute("INSERT INTO c VALUES (1)")
            await db.execute("RELEASE kept")
            await quiet()
            assert recorder.values == []
            await db.execute("RELEASE outer_sp")  # commits
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("a", INSERT), tu("c", INSERT)}

    async def test_nested_transaction_that_raises_is_not_announced(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        with watching(db, recorder):

            async def nested_then_fail() -> None:
                async with db.transaction():
                    await db.execute("INSERT INTO b VALUES (1)")
                    await db.execute("DELETE FROM a")
                    raise RuntimeError("undo the savepoint")

            async with db.transaction():
                await db.execute("INSERT INTO a VALUES (1)")
                with pytest.raises(RuntimeError, match="undo"):
                    await nested_then_fail()
                async with db.transaction():
                    await db.execute("UPDATE a SET x = 2")
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("a", INSERT), tu("a", UPDATE, "x")}
        assert await db.fetch_all("SELECT x FROM a") == [(2,)]
        assert await db.fetch_all("SELECT x FROM b") == []


class TestErrors:
    async def test_failed_statement_raises_integrity_error_and_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script(
            "CREATE TABLE a(x PRIMARY KEY); INSERT INTO a VALUES (1); CREATE TABLE b(x);"
        )
        with watching(db, recorder):
            with pytest.raises(rxdb.IntegrityError) as caught:
                await db.execute("INSERT INTO a VALUES (2), (1)")
            await db.execute("INSERT INTO b VALUES (1)")  # still usable
            [message] = await recorder.wait_count(1)
        error = caught.value
        assert error.sqlite_errorcode == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
        assert error.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY"
        assert error.sql == "INSERT INTO a VALUES (2), (1)"
        assert message.updates == {tu("b", INSERT)}
        assert await db.fetch_all("SELECT x FROM a") == [(1,)]

    async def test_failed_statement_in_transaction_keeps_earlier_changes(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x UNIQUE); CREATE TABLE b(x);")
        with watching(db, recorder):
            async with db.transaction():
                await db.execute("INSERT INTO b VALUES (1)")
                await db.execute("INSERT INTO a VALUES (1)")
                with pytest.raises(rxdb.IntegrityError) as caught:
                    await db.execute("INSERT INTO a VALUES (1)")
            [message] = await recorder.wait_count(1)
        assert caught.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        assert message.updates == {tu("a", INSERT), tu("b", INSERT)}

    async def test_failed_statement_with_on_conflict_rollback_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x UNIQUE); CREATE TABLE b(x);")
        with watching(db, recorder):
            await db.execute("BEGIN")
            await db.execute("INSERT INTO b VALUES (1)")
            await db.execute("INSERT INTO a VALUES (1)")
            with pytest.raises(rxdb.IntegrityError):
                await db.execute("INSERT OR ROLLBACK INTO a VALUES (1)")
            # The transaction is gone, and so is its write lock: another task can write.
            await asyncio.wait_for(
                asyncio.get_running_loop().create_task(db.execute("INSERT INTO b VALUES (2)")),
                10,
            )
            [message] = await recorder.wait_count(1)
        assert message.updates == {tu("b", INSERT)}
        assert await db.fetch_all("SELECT x FROM b") == [(2,)]
        assert await db.fetch_all("SELECT x FROM a") == []

    async def test_transaction_rolled_back_by_sqlite_leaves_no_trace(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script(
            "CREATE TABLE a(x UNIQUE); INSERT INTO a VALUES (1); CREATE TABLE b(x);"
        )

        async def give_up_after_sqlite_rolled_back() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO b VALUES (1)")
                with pytest.raises(rxdb.IntegrityError):
                    await db.execute("INSERT OR ROLLBACK INTO a VALUES (1)")
                with contextlib.suppress(rxdb.RxdbError):  # refusing it would be fine too
                    await db.execute("INSERT INTO b VALUES (2)")
                raise RuntimeError("give up")

        with watching(db, recorder):
            with pytest.raises(RuntimeError, match="give up"):
                await give_up_after_sqlite_rolled_back()
            await db.execute("INSERT INTO a VALUES (5)")  # a marker commit
            await recorder.wait_for(lambda r: any("a" in m.tables for m in r.values))
        assert await db.fetch_all("SELECT x FROM b") == []
        assert [m.updates for m in recorder.values] == [{tu("a", INSERT)}]
