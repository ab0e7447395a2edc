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
from typing import Any

import pytest

import rxdb
from rxdb.engine.connections import TrackedConnection, split_script
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

INSERT, UPDATE, DELETE = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE


def tu(table: str, kind: UpdateKind | None = None) -> TableUpdate:
    return TableUpdate(table, kind)


# ---------------------------------------------------------------------------------------------
# Unit level: TrackedConnection, synchronously
# ---------------------------------------------------------------------------------------------


class Calls:
    """Records the commit callback's calls as ``(updates, everything)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[frozenset[TableUpdate], bool]] = []

    def __call__(self, updates: frozenset[TableUpdate], everything: bool) -> None:
        assert isinstance(updates, frozenset)
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
    connection = sqlite3.connect(
        ":memory:",
        factory=functools.partial(TrackedConnection, on_commit=calls),
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


class TestPlainWrites:
    def test_insert_reports_table_with_insert_kind(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert calls.take() == [(frozenset({tu("t", INSERT)}), False)]

    def test_update_reports_table_with_update_kind(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        conn.execute("UPDATE t SET x = 2")
        assert calls.take() == [(frozenset({tu("t", UPDATE)}), False)]

    def test_delete_reports_table_with_delete_kind(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        conn.execute("DELETE FROM t WHERE x = 1")
        assert calls.take() == [(frozenset({tu("t", DELETE)}), False)]

    def test_delete_reports_table_when_whole_table_is_truncated(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
        conn.execute("DELETE FROM t")  # SQLite's truncate optimisation still counts rows
        assert calls.take() == [(frozenset({tu("t", DELETE)}), False)]

    def test_statement_reports_nothing_when_no_row_changed(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        conn.execute("UPDATE t SET x = 2 WHERE 0")
        conn.execute("DELETE FROM t WHERE x = 99")
        conn.execute("INSERT INTO t SELECT x FROM t WHERE 0")
        conn.executemany("INSERT INTO t VALUES (?)", [])
        assert calls.take() == []

    def test_query_reports_nothing(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        assert calls.take() == []

    def test_insert_returning_reports_table_and_returns_rows(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        rows = conn.execute("INSERT INTO t VALUES (1), (2) RETURNING x").fetchall()
        assert rows == [(1,), (2,)]
        assert calls.take() == [(frozenset({tu("t", INSERT)}), False)]

    def test_same_statement_text_reports_every_run(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        for _ in range(3):
            conn.execute("INSERT INTO t VALUES (1)")
        assert calls.take() == [(frozenset({tu("t", INSERT)}), False)] * 3

    def test_statement_cache_hides_repeats_when_cached_statements_is_default(self) -> None:
        # Why the writer runs with cached_statements=0: with sqlite3's cache, the authorizer
        # does not fire for the second run of the same text.
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

    def test_failed_autocommit_statement_reports_nothing(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x PRIMARY KEY); INSERT INTO t VALUES (1);")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO t VALUES (2), (1)")  # aborted: row 2 is undone too
        assert calls.take() == []
        assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]

    def test_failed_autocommit_statement_reports_rows_it_kept_when_or_fail(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x PRIMARY KEY); INSERT INTO t VALUES (1);")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT OR FAIL INTO t VALUES (2), (1)")  # row 2 stays, committed
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
        assert calls.take() == [(frozenset({tu("t", INSERT)}), False)]


class TestIndirectWrites:
    def test_trigger_body_writes_are_reported(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE a(x);
            CREATE TABLE log(msg);
            CREATE TRIGGER a_log AFTER INSERT ON a BEGIN
                INSERT INTO log VALUES ('a got ' || new.x);
            END;
            """,
        )
        conn.execute("INSERT INTO a VALUES (1)")
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("log", INSERT)}), False)]

    def test_nested_trigger_writes_are_reported(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE a(x); CREATE TABLE b(x); CREATE TABLE c(x);
            CREATE TRIGGER a_b AFTER INSERT ON a BEGIN INSERT INTO b VALUES (new.x); END;
            CREATE TRIGGER b_c AFTER INSERT ON b BEGIN UPDATE c SET x = new.x; DELETE FROM c; END;
            """,
        )
        conn.execute("INSERT INTO a VALUES (1)")
        (updates, everything), *rest = calls.take()
        assert rest == []
        assert not everything
        assert {tu("a", INSERT), tu("b", INSERT), tu("c", UPDATE), tu("c", DELETE)} <= updates

    def test_fk_cascade_and_set_null_report_child_tables(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            PRAGMA foreign_keys = ON;
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE child(id INTEGER PRIMARY KEY,
                               pid REFERENCES parent(id) ON DELETE CASCADE);
            CREATE TABLE grandchild(id INTEGER PRIMARY KEY,
                                    cid REFERENCES child(id) ON DELETE SET NULL);
            INSERT INTO parent VALUES (1);
            INSERT INTO child VALUES (10, 1);
            INSERT INTO grandchild VALUES (100, 10);
            """,
        )
        conn.execute("DELETE FROM parent WHERE id = 1")
        assert calls.take() == [
            (
                frozenset({tu("parent", DELETE), tu("child", DELETE), tu("grandchild", UPDATE)}),
                False,
            )
        ]
        assert conn.execute("SELECT * FROM grandchild").fetchall() == [(100, None)]

    def test_replace_reports_cascade_from_implicit_delete(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            PRAGMA foreign_keys = ON;
            CREATE TABLE parent(id INTEGER PRIMARY KEY, v);
            CREATE TABLE child(id INTEGER PRIMARY KEY,
                               pid REFERENCES parent(id) ON DELETE CASCADE);
            INSERT INTO parent VALUES (1, 'old');
            INSERT INTO child VALUES (10, 1);
            """,
        )
        conn.execute("REPLACE INTO parent VALUES (1, 'new')")
        [(updates, everything)] = calls.take()
        assert not everything
        assert {tu("parent", INSERT), tu("child", DELETE)} <= updates
        assert conn.execute("SELECT count(*) FROM child").fetchall() == [(0,)]

    def test_instead_of_trigger_on_view_reports_base_table(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE base(x);
            CREATE VIEW v AS SELECT x FROM base;
            CREATE TRIGGER v_ins INSTEAD OF INSERT ON v BEGIN
                INSERT INTO base VALUES (new.x * 10);
            END;
            """,
        )
        conn.execute("INSERT INTO v VALUES (1)")
        [(updates, everything)] = calls.take()
        assert not everything
        assert tu("base", INSERT) in updates
        assert conn.execute("SELECT x FROM base").fetchall() == [(10,)]

    def test_upsert_reports_insert_and_update(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, "CREATE TABLE t(k PRIMARY KEY, n); INSERT INTO t VALUES ('a', 1);")
        upsert = "INSERT INTO t VALUES (?, 1) ON CONFLICT(k) DO UPDATE SET n = n + 1"
        conn.execute(upsert, ("a",))  # the UPDATE branch
        conn.execute(upsert, ("b",))  # the INSERT branch
        expected = frozenset({tu("t", INSERT), tu("t", UPDATE)})
        assert calls.take() == [(expected, False), (expected, False)]
        assert conn.execute("SELECT * FROM t ORDER BY k").fetchall() == [("a", 2), ("b", 1)]

    def test_upsert_do_nothing_reports_nothing_when_conflicting(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(k PRIMARY KEY); INSERT INTO t VALUES ('a');")
        conn.execute("INSERT INTO t VALUES ('a') ON CONFLICT DO NOTHING")
        conn.execute("INSERT OR IGNORE INTO t VALUES ('a')")
        assert calls.take() == []


class TestBatches:
    def test_executemany_reports_once(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
        assert calls.take() == [(frozenset({tu("t", INSERT)}), False)]
        assert conn.execute("SELECT count(*) FROM t").fetchall() == [(3,)]

    def test_executemany_reports_nothing_when_no_row_changed(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.executemany("UPDATE t SET x = ?", ((i,) for i in range(3)))  # no rows to update
        assert calls.take() == []

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

    def test_executescript_reports_each_autocommit_statement(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.executescript("INSERT INTO a VALUES (1); INSERT INTO b VALUES (1);")
        assert calls.take() == [
            (frozenset({tu("a", INSERT)}), False),
            (frozenset({tu("b", INSERT)}), False),
        ]

    def test_executescript_keeps_transaction_open_when_inside_one(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.executescript("INSERT INTO b VALUES (1); INSERT INTO b VALUES (2);")
        assert conn.in_transaction  # sqlite3's own executescript would have committed
        assert calls.take() == []
        conn.execute("ROLLBACK")
        assert calls.take() == []
        assert conn.execute(
            "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)"
        ).fetchall() == [(0, 0)]

    def test_executescript_with_begin_commit_reports_once(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.executescript(
            "BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES ('COMMIT;'); COMMIT;"
        )
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("b", INSERT)}), False)]


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


class TestTransactions:
    def test_begin_commit_reports_once_at_commit_with_union(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x); INSERT INTO b VALUES (1);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("UPDATE b SET x = 2")
        conn.execute("UPDATE a SET x = 3 WHERE 0")
        assert calls.take() == []
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("b", UPDATE)}), False)]

    @pytest.mark.parametrize("commit", ["COMMIT", "END", "END TRANSACTION", "commit"])
    def test_commit_spellings_report(
        self, conn: TrackedConnection, calls: Calls, commit: str
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute(commit)
        assert calls.take() == [(frozenset({tu("a", INSERT)}), False)]

    def test_begin_commit_reports_nothing_when_nothing_changed(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x)")
        conn.execute("BEGIN")
        conn.execute("DELETE FROM a")
        conn.execute("COMMIT")
        assert calls.take() == []

    def test_begin_rollback_reports_nothing(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, "CREATE TABLE a(x)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("ROLLBACK")
        assert calls.take() == []
        # The dropped buffer does not leak into the next transaction.
        conn.execute("BEGIN")
        conn.execute("COMMIT")
        assert calls.take() == []

    def test_rolled_back_savepoint_tables_absent_after_commit(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x); CREATE TABLE c(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("SAVEPOINT sp")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("ROLLBACK TO sp")
        conn.execute("INSERT INTO c VALUES (1)")  # still inside sp, which stays open
        conn.execute("RELEASE sp")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("c", INSERT)}), False)]

    def test_released_savepoint_tables_present_after_commit(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("SAVEPOINT outer_sp")
        conn.execute("SAVEPOINT inner_sp")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("RELEASE inner_sp")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("RELEASE outer_sp")
        assert calls.take() == []
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("b", INSERT)}), False)]

    def test_rollback_to_outer_savepoint_drops_inner_ones(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x); CREATE TABLE c(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("SAVEPOINT one")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("SAVEPOINT two")
        conn.execute("INSERT INTO c VALUES (1)")
        conn.execute("RELEASE two")
        conn.execute("ROLLBACK TO one")  # undoes b and c, released or not
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT)}), False)]

    def test_savepoint_names_match_case_insensitively(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute('SAVEPOINT "MiXed"')
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("ROLLBACK TO mixed")
        conn.execute("RELEASE MIXED")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT)}), False)]

    def test_repeated_savepoint_name_rolls_back_innermost(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("SAVEPOINT sp")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("SAVEPOINT sp")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("ROLLBACK TO sp")  # the inner one
        conn.execute("RELEASE sp")  # the inner one
        conn.execute("RELEASE sp")  # the outer one
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT)}), False)]

    def test_savepoint_started_transaction_reports_on_release(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("SAVEPOINT sp")
        assert conn.in_transaction
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("SAVEPOINT inner_sp")
        conn.execute("INSERT INTO b VALUES (1)")
        assert calls.take() == []
        conn.execute("RELEASE sp")  # releases both and commits
        assert not conn.in_transaction
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("b", INSERT)}), False)]

    def test_savepoint_started_transaction_rolled_back_to_then_released_reports_rest(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("SAVEPOINT sp")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("ROLLBACK TO sp")
        assert conn.in_transaction
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("RELEASE sp")
        assert calls.take() == [(frozenset({tu("b", INSERT)}), False)]

    def test_savepoint_started_transaction_reports_nothing_on_rollback(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x)")
        conn.execute("SAVEPOINT sp")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("ROLLBACK")
        assert calls.take() == []

    def test_commit_with_savepoints_open_reports_all_levels(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        conn.execute("SAVEPOINT sp")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("b", INSERT)}), False)]

    def test_failed_statement_in_transaction_keeps_earlier_changes(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x PRIMARY KEY); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO a VALUES (1)")
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO missing VALUES (1)")
        assert conn.in_transaction
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT), tu("b", INSERT)}), False)]

    def test_failed_or_fail_statement_in_transaction_reports_rows_it_kept(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x PRIMARY KEY); INSERT INTO a VALUES (1);")
        conn.execute("BEGIN")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT OR FAIL INTO a VALUES (2), (1)")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT)}), False)]

    def test_on_conflict_rollback_reports_nothing(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x PRIMARY KEY); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("INSERT INTO a VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT OR ROLLBACK INTO a VALUES (1)")
        assert not conn.in_transaction
        assert calls.take() == []
        # The next transaction starts clean.
        conn.execute("BEGIN")
        conn.execute("INSERT INTO a VALUES (2)")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("a", INSERT)}), False)]

    def test_constraint_on_conflict_rollback_clause_reports_nothing(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE a(x UNIQUE ON CONFLICT ROLLBACK); CREATE TABLE b(x);")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("INSERT INTO a VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO a VALUES (1)")
        assert not conn.in_transaction
        assert calls.take() == []
        assert conn.execute("SELECT count(*) FROM b").fetchall() == [(0,)]

    def test_trigger_raise_rollback_reports_nothing(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE a(x); CREATE TABLE b(x);
            CREATE TRIGGER a_guard BEFORE INSERT ON a WHEN new.x < 0 BEGIN
                SELECT RAISE(ROLLBACK, 'negative');
            END;
            """,
        )
        conn.execute("BEGIN")
        conn.execute("INSERT INTO b VALUES (1)")
        conn.execute("INSERT INTO a VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError, match="negative"):
            conn.execute("INSERT INTO a VALUES (-1)")
        assert not conn.in_transaction
        assert calls.take() == []

    # SQLite adds trigger-body rows to total_changes even when the statement is then undone,
    # and no cheap signal tells an undone statement from an OR FAIL one whose earlier rows (BEFORE
    # trigger rows included) persist. rxdb announces such a failed statement: an extra re-run,
    # never a missed change. These two tests pin that documented over-approximation.
    def test_trigger_raise_rollback_is_announced_conservatively(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE a(x); CREATE TABLE log(x);
            CREATE TRIGGER a_log AFTER INSERT ON a BEGIN INSERT INTO log VALUES (new.x); END;
            CREATE TRIGGER a_guard AFTER INSERT ON a WHEN new.x < 0 BEGIN
                SELECT RAISE(ROLLBACK, 'negative');
            END;
            """,
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO a VALUES (1), (-1)")
        assert calls.take() == [({tu("a", INSERT), tu("log", INSERT)}, False)]
        assert conn.execute("SELECT count(*) FROM log").fetchall() == [(0,)]

    def test_aborted_statement_with_trigger_writes_is_announced_conservatively(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE a(x UNIQUE); CREATE TABLE log(x);
            CREATE TRIGGER a_log AFTER INSERT ON a BEGIN INSERT INTO log VALUES (new.x); END;
            INSERT INTO a VALUES (1);
            """,
        )
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO a VALUES (2), (1)")  # ABORT: row 2 and its log row undone
        conn.execute("BEGIN")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO a VALUES (3), (1)")
        conn.execute("COMMIT")  # commits nothing
        assert conn.execute(
            "SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM log)"
        ).fetchall() == [(1, 1)]
        announced = calls.take()
        assert len(announced) == 2  # the autocommit failure, then the COMMIT
        assert all(updates == {tu("a", INSERT), tu("log", INSERT)} for updates, _ in announced)

    def test_failed_commit_keeps_buffer_until_rollback(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            PRAGMA foreign_keys = ON;
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE child(pid REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
            """,
        )
        conn.execute("BEGIN")
        conn.execute("INSERT INTO child VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("COMMIT")  # deferred FK violation: the transaction stays open
        assert conn.in_transaction
        assert calls.take() == []
        conn.execute("INSERT INTO parent VALUES (1)")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("child", INSERT), tu("parent", INSERT)}), False)]


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
        assert calls.take() == [(frozenset(), True)]

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
        assert calls.take() == [(frozenset(), True)]

    def test_ddl_in_transaction_reports_everything_with_writes_at_commit(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("CREATE TABLE u(y)")
        assert calls.take() == []
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("t", INSERT)}), True)]

    def test_ddl_rolled_back_reports_nothing(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.execute("BEGIN")
        conn.execute("CREATE TABLE u(y)")
        conn.execute("DROP TABLE t")
        conn.execute("ROLLBACK")
        assert calls.take() == []

    def test_ddl_in_rolled_back_savepoint_reports_nothing(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("SAVEPOINT sp")
        conn.execute("CREATE TABLE u(y)")
        conn.execute("ROLLBACK TO sp")
        conn.execute("RELEASE sp")
        conn.execute("COMMIT")
        assert calls.take() == [(frozenset({tu("t", INSERT)}), False)]

    def test_failed_ddl_reports_nothing(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (1);")
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("CREATE TABLE t(x)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("CREATE UNIQUE INDEX t_ux ON t(x)")
        assert calls.take() == []

    def test_statement_after_schema_change_is_reported_anew(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x); CREATE TABLE log(x);")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES (1); END")
        conn.execute("INSERT INTO t VALUES (1)")
        assert calls.tables() == [{"t"}, frozenset(), {"t", "log"}]


class TestTableNames:
    def test_temp_table_reported_qualified_and_bare(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TEMP TABLE t(x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("INSERT INTO temp.t VALUES (1)")
        expected = frozenset({tu("temp.t", INSERT), tu("t", INSERT)})
        assert calls.take() == [(expected, False), (expected, False)]

    def test_attached_table_reported_qualified_and_bare(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "ATTACH ':memory:' AS aux; CREATE TABLE aux.t(x);")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("UPDATE aux.t SET x = 2")
        assert calls.take() == [
            (frozenset({tu("aux.t", INSERT), tu("t", INSERT)}), False),
            (frozenset({tu("aux.t", UPDATE), tu("t", UPDATE)}), False),
        ]

    def test_attach_and_detach_report_everything(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        conn.execute("ATTACH ':memory:' AS aux")
        conn.execute("DETACH aux")
        assert calls.take() == [(frozenset(), True), (frozenset(), True)]

    def test_main_qualified_table_reported_bare(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, "CREATE TABLE t(x)")
        conn.execute("INSERT INTO main.t VALUES (1)")
        conn.execute('INSERT INTO "MAIN"."T" VALUES (1)')
        expected = frozenset({tu("t", INSERT)})
        assert calls.take() == [(expected, False), (expected, False)]

    def test_quoted_mixed_case_names_folded_ascii(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(conn, calls, 'CREATE TABLE "USERS"(x); CREATE TABLE "Mixed Case"(x);')
        conn.execute("INSERT INTO users VALUES (1)")
        conn.execute('INSERT INTO "Users" VALUES (1)')
        conn.execute('INSERT INTO "mixed case" VALUES (1)')
        assert calls.take() == [
            (frozenset({tu("users", INSERT)}), False),
            (frozenset({tu("users", INSERT)}), False),
            (frozenset({tu("mixed case", INSERT)}), False),
        ]

    def test_non_ascii_names_keep_their_case(self, conn: TrackedConnection, calls: Calls) -> None:
        setup(conn, calls, 'CREATE TABLE "ÄBC"(x)')
        conn.execute('INSERT INTO "ÄBC" VALUES (1)')
        assert calls.take() == [(frozenset({tu("Äbc", INSERT)}), False)]

    def test_trigger_in_temp_writing_main_reports_main_name(
        self, conn: TrackedConnection, calls: Calls
    ) -> None:
        setup(
            conn,
            calls,
            """
            CREATE TABLE t(x); CREATE TABLE log(x);
            CREATE TEMP TRIGGER t_log AFTER INSERT ON main.t BEGIN
                INSERT INTO log VALUES (new.x);
            END;
            """,
        )
        conn.execute("INSERT INTO t VALUES (1)")
        [(updates, _)] = calls.take()
        assert {tu("t", INSERT), tu("log", INSERT)} <= updates


# ---------------------------------------------------------------------------------------------
# End to end: rxdb.Database and the bus
# ---------------------------------------------------------------------------------------------


async def quiet(rounds: int = 10) -> None:
    """Let already-queued loop callbacks (bus deliveries) run. Used only for negative checks."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def watch_updates(db: rxdb.Database, recorder: Any, **filters: Any) -> Any:
    return db.table_updates(**filters).subscribe(recorder)


def tables_of(message: NotifyTablesUpdated) -> set[str]:
    return {u.table for u in message.updates}


class TestNotifications:
    async def test_commit_publishes_one_message_per_transaction(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:
            await db.execute("INSERT INTO a VALUES (1)")
            async with db.transaction():
                await db.execute("INSERT INTO a VALUES (2)")
                await db.execute("INSERT INTO b VALUES (2)")
                await db.execute("UPDATE a SET x = x + 1")
            await db.execute_many("INSERT INTO b VALUES (?)", [(3,), (4,)])
            messages = await recorder.wait_count(3)
            await quiet()
            assert len(recorder.values) == 3
        finally:
            sub.dispose()
        first, second, third = messages
        for message in messages:
            assert isinstance(message, NotifyTablesUpdated)
            assert message.database == db.key
            assert message.origin == db.origin
            assert not message.everything
        assert first.updates == {tu("a", INSERT)}
        assert second.updates == {tu("a", INSERT), tu("a", UPDATE), tu("b", INSERT)}
        assert third.updates == {tu("b", INSERT)}
        assert second.sequence == first.sequence + 1
        assert third.sequence == second.sequence + 1

    async def test_transaction_publishes_nothing_before_commit(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute("CREATE TABLE a(x)")
        sub = watch_updates(db, recorder)
        try:
            async with db.transaction():
                await db.execute("INSERT INTO a VALUES (1)")
                await db.execute_script("INSERT INTO a VALUES (2); INSERT INTO a VALUES (3);")
                await quiet()
                assert recorder.values == []
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert message.updates == {tu("a", INSERT)}
        assert (await db.fetch_one("SELECT count(*) FROM a"))[0] == 3

    async def test_transaction_publishes_nothing_when_rolled_back(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:

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
        finally:
            sub.dispose()
        assert message.updates == {tu("b", INSERT)}
        assert not message.everything

    async def test_statement_changing_no_row_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:
            await db.execute("UPDATE a SET x = 1 WHERE 0")
            await db.execute("DELETE FROM a")
            async with db.transaction():
                await db.execute("UPDATE a SET x = 2")
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert message.updates == {tu("b", INSERT)}

    async def test_ddl_publishes_everything(self, any_db: rxdb.Database, recorder: Any) -> None:
        db = any_db
        sub = watch_updates(db, recorder, tables=["unrelated"])
        try:
            await db.execute("CREATE TABLE a(x)")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
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
        sub = watch_updates(db, recorder, tables=["LOG"])
        try:
            await db.execute("DELETE FROM parent")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert {tu("parent", DELETE), tu("child", DELETE), tu("log", INSERT)} <= message.updates
        assert await db.fetch_all("SELECT msg FROM log") == [("child 10",)]


class TestFilters:
    async def test_table_updates_filters_by_table(self, db: rxdb.Database, recorder: Any) -> None:
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder, tables=["B"])
        try:
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
            await db.execute("INSERT INTO a VALUES (2)")
            await db.execute("DELETE FROM b")
            await recorder.wait_count(2)
        finally:
            sub.dispose()
        assert [m.updates for m in recorder.values] == [{tu("b", INSERT)}, {tu("b", DELETE)}]
        assert recorder.values[1].sequence == message.sequence + 2  # a's insert in between

    async def test_table_updates_filters_by_kind(self, db: rxdb.Database, recorder: Any) -> None:
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder, kinds=[UpdateKind.DELETE])
        try:
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("UPDATE a SET x = 2")
            await db.execute("DELETE FROM a")
            [message] = await recorder.wait_count(1)
            async with db.transaction():  # a delete anywhere in the transaction matches
                await db.execute("INSERT INTO a VALUES (1)")
                await db.execute("DELETE FROM a")
                await db.execute("INSERT INTO b VALUES (1)")
            await recorder.wait_count(2)
        finally:
            sub.dispose()
        assert message.updates == {tu("a", DELETE)}
        assert recorder.values[1].updates == {tu("a", INSERT), tu("a", DELETE), tu("b", INSERT)}

    async def test_table_updates_filters_by_table_and_kind(
        self, db: rxdb.Database, recorder: Any
    ) -> None:
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder, tables=["a"], kinds=[UpdateKind.DELETE])
        try:
            async with db.transaction():  # a delete, but of another table
                await db.execute("INSERT INTO a VALUES (1)")
                await db.execute("INSERT INTO b VALUES (1)")
                await db.execute("DELETE FROM b")
            await db.execute("DELETE FROM a")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert message.updates == {tu("a", DELETE)}

    async def test_notify_updates_announces_named_table(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        other = type(recorder)()
        sub = watch_updates(db, recorder, tables=["t"], kinds=[UpdateKind.DELETE])
        sub_other = watch_updates(db, other, tables=["u"])
        try:
            await db.notify_updates("T")
            [message] = await recorder.wait_count(1)
            await db.notify_updates(TableUpdate("u", UpdateKind.INSERT))
            await other.wait_count(1)
        finally:
            sub.dispose()
            sub_other.dispose()
        assert message.updates == {TableUpdate("t", None)}
        assert not message.everything
        assert message.database == db.key
        assert message.origin == db.origin
        assert other.values[0].sequence == message.sequence + 1

    async def test_notify_updates_without_tables_announces_everything(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        sub = watch_updates(db, recorder, tables=["t"], kinds=[UpdateKind.INSERT])
        try:
            await db.notify_updates()
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert message.everything
        assert message.updates == frozenset()


class TestExplicitTransactions:
    async def test_begin_commit_written_by_user_publishes_once_at_commit(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:
            await db.execute("BEGIN")
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("INSERT INTO b VALUES (1)")
            await quiet()
            assert recorder.values == []
            await db.execute("COMMIT")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert message.updates == {tu("a", INSERT), tu("b", INSERT)}

    async def test_begin_rollback_written_by_user_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:
            await db.execute("BEGIN")
            await db.execute("INSERT INTO a VALUES (1)")
            await db.execute("ROLLBACK")
            await db.execute("INSERT INTO b VALUES (1)")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert message.updates == {tu("b", INSERT)}
        assert await db.fetch_all("SELECT * FROM a") == []

    async def test_script_with_begin_commit_publishes_once(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:
            await db.execute_script(
                "BEGIN; INSERT INTO a VALUES (1); INSERT INTO b VALUES (';'); COMMIT;"
            )
            [message] = await recorder.wait_count(1)
            await quiet()
            assert len(recorder.values) == 1
        finally:
            sub.dispose()
        assert message.updates == {tu("a", INSERT), tu("b", INSERT)}

    async def test_user_savepoints_publish_released_and_drop_rolled_back(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x); CREATE TABLE c(x);")
        sub = watch_updates(db, recorder)
        try:
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
        finally:
            sub.dispose()
        assert message.updates == {tu("a", INSERT), tu("c", INSERT)}

    async def test_nested_transaction_that_raises_is_not_announced(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:

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
        finally:
            sub.dispose()
        assert message.updates == {tu("a", INSERT), tu("a", UPDATE)}
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
        sub = watch_updates(db, recorder)
        try:
            with pytest.raises(rxdb.IntegrityError) as caught:
                await db.execute("INSERT INTO a VALUES (2), (1)")
            await db.execute("INSERT INTO b VALUES (1)")  # still usable
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
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
        sub = watch_updates(db, recorder)
        try:
            async with db.transaction():
                await db.execute("INSERT INTO b VALUES (1)")
                await db.execute("INSERT INTO a VALUES (1)")
                with pytest.raises(rxdb.IntegrityError) as caught:
                    await db.execute("INSERT INTO a VALUES (1)")
            [message] = await recorder.wait_count(1)
        finally:
            sub.dispose()
        assert caught.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        assert message.updates == {tu("a", INSERT), tu("b", INSERT)}

    async def test_failed_statement_with_on_conflict_rollback_publishes_nothing(
        self, any_db: rxdb.Database, recorder: Any
    ) -> None:
        db = any_db
        await db.execute_script("CREATE TABLE a(x UNIQUE); CREATE TABLE b(x);")
        sub = watch_updates(db, recorder)
        try:
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
        finally:
            sub.dispose()
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
        sub = watch_updates(db, recorder)

        async def give_up_after_sqlite_rolled_back() -> None:
            async with db.transaction():
                await db.execute("INSERT INTO b VALUES (1)")
                with pytest.raises(rxdb.IntegrityError):
                    await db.execute("INSERT OR ROLLBACK INTO a VALUES (1)")
                with contextlib.suppress(rxdb.RxdbError):  # refusing it would be fine too
                    await db.execute("INSERT INTO b VALUES (2)")
                raise RuntimeError("give up")

        try:
            with pytest.raises(RuntimeError, match="give up"):
                await give_up_after_sqlite_rolled_back()
            await db.execute("INSERT INTO a VALUES (5)")  # a marker commit
            await recorder.wait_for(lambda r: any("a" in m.tables for m in r.values))
        finally:
            sub.dispose()
        assert await db.fetch_all("SELECT x FROM b") == []
        assert [m.updates for m in recorder.values] == [{tu("a", INSERT)}]
