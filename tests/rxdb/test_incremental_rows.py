"""Incremental maintenance end to end on a writer connection: the TEMP-trigger capture, the
re-read of the changed rows right after the commit, and the patch, checked against a fresh
full fetch after every commit (rxdb/engines/sqlite/changed_rows.py, rxdb/watch/incremental.py)."""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parser.maintainable import Maintainable, OrderTerm, TableFacts, maintainable
from rxdb.engines.sqlite.capture import ROWIDS_LIMIT, ChangedRowids
from rxdb.engines.sqlite.changed_rows import RowCapture
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.updates import TableUpdate, UpdateKind
from rxdb.watch.incremental import MaintainedRows, OutOfOrder, compare_values
from tests.rxdb import incremental_cases as cases

SCHEMA = cases.SCHEMA
FACTS = TableFacts(("id", "a", "b", "u"), "id")


class Writer:
    """A writer connection with the row capture on ``t``, and one maintained query."""

    def __init__(self, sql: str) -> None:
        factory = functools.partial(TrackedConnection, on_commit=self._announced)
        self.conn = sqlite3.connect(
            ":memory:",
            factory=cast("type[TrackedConnection]", factory),
            isolation_level=None,
            cached_statements=0,
        )
        self.announced: list[tuple[frozenset[Any], bool]] = []
        self.rowids: list[ChangedRowids] = []
        self.conn.execute(SCHEMA)
        self.capture = RowCapture(self.conn, self.conn.buffer)
        self.conn.buffer.rows_committed = self._rows_committed
        assert self.capture.want("t")
        shape = maintainable(sql, lambda table: FACTS if table == "t" else None)
        assert shape is not None, sql
        self.shape: Maintainable = shape
        self.sql = sql
        self.result = self.maintained()
        self.patched = 0

    def _rows_committed(self, rowids: ChangedRowids, schema: bool) -> None:
        if rowids and not schema:
            self.rowids.append(rowids)

    def _announced(self, updates: frozenset[Any], everything: bool, _wal: object) -> None:
        self.announced.append((updates, everything))

    def full(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in sqlite3.Connection.execute(self.conn, self.shape.sql)]

    def maintained(self) -> MaintainedRows:
        """A result from a full run, as a watch keeps it (the user's columns apart)."""
        full, shape = self.full(), self.shape
        visible = [row[: shape.visible] for row in full]
        return MaintainedRows(visible, shape.order, shape.rowid, full, shape.visible)

    def user_rows(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in sqlite3.Connection.execute(self.conn, self.sql)]

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        # A constraint that fails leaves no change; the transaction goes on.
        with contextlib.suppress(sqlite3.IntegrityError):
            self.conn.execute(sql, params)

    def committed(self) -> None:
        """What a maintained watch does after each commit: patch if the rowids are known,
        else re-run in full. Then the result must be what the full query returns now."""
        for rowids in self.rowids:
            changed = self.capture.trusted(rowids).get("t", frozenset())
            if changed is None:
                self.result = self.maintained()
                continue
            fresh = sqlite3.Connection.execute(
                self.conn, self.shape.changed_sql(named=False), (json.dumps(sorted(changed)),)
            )
            self.result.patch(changed, [tuple(row) for row in fresh])
            self.patched += 1
        self.rowids.clear()
        expected = [row[: self.shape.visible] for row in self.full()]
        assert list(self.result.rows) == expected
        assert [tuple(map(type, row)) for row in self.result.rows] == [
            tuple(map(type, row)) for row in expected
        ]
        # The user's own query returns the same rows (its ties in an order of its own).
        assert Counter(map(_typed, self.result.rows)) == Counter(map(_typed, self.user_rows()))

    def close(self) -> None:
        self.conn.close()


def _typed(row: tuple[Any, ...]) -> tuple[tuple[type, Any], ...]:
    return tuple((type(value), value) for value in row)


@pytest.fixture
def writer() -> Iterator[Writer]:
    opened = Writer("SELECT * FROM t WHERE a IS NOT NULL ORDER BY b DESC")
    try:
        yield opened
    finally:
        opened.close()


values = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from([2**53, 2**53 + 1, -(2**63), 2**63 - 1]),
    st.floats(allow_nan=False, width=64).filter(lambda f: f == 0 or abs(f) > 1e-300),
    st.sampled_from([0.5, -0.5, 3.0, float(2**53), float("inf")]),
    st.text(alphabet="aB\u00e9\u4e2d\U0001f600", max_size=2),
    st.binary(max_size=2),
)
ids = st.integers(1, 12)


statements = cases.statements(values, ids)
transactions = st.tuples(
    st.sampled_from(
        ["autocommit", "commit", "rollback", "savepoint rollback", "savepoint release"]
    ),
    st.lists(statements, min_size=1, max_size=4),
    st.lists(statements, max_size=3),
)
queries = st.sampled_from(
    [
        "SELECT * FROM t",
        "SELECT * FROM t WHERE a IS NOT NULL ORDER BY b DESC",
        "SELECT id, a, b FROM t ORDER BY a DESC NULLS FIRST, b",
        "SELECT b, id FROM t WHERE b > 0 ORDER BY b NULLS LAST",
        "SELECT a AS b, b AS a, id FROM t WHERE a IS NOT b ORDER BY b, 2 DESC",
        # Not selecting the rowid, or an ORDER BY column: hidden columns.
        "SELECT b FROM t WHERE a IS NOT NULL ORDER BY id",
        "SELECT a FROM t ORDER BY b DESC",
        "SELECT u FROM t WHERE b IS NOT a ORDER BY b NULLS LAST, a DESC",
        "SELECT u AS id, a FROM t ORDER BY id DESC, b",
        # Ordered by the rowid alone: keyed by it.
        "SELECT a, b FROM t WHERE b IS NOT NULL ORDER BY id DESC",
    ]
)


@settings(max_examples=80, deadline=None)
@given(queries, st.lists(transactions, min_size=1, max_size=8))
def test_every_patched_result_is_what_a_full_fetch_returns_at_that_commit(
    sql: str,
    script: list[tuple[str, list[tuple[str, tuple[Any, ...]]], list[tuple[str, tuple[Any, ...]]]]],
) -> None:
    writer = Writer(sql)
    try:
        for how, first, inner in script:
            if how == "autocommit":
                for statement, params in first:
                    writer.run(statement, params)
                    writer.committed()
                continue
            writer.run("BEGIN")
            for statement, params in first:
                writer.run(statement, params)
            if how.startswith("savepoint"):
                writer.run("SAVEPOINT s")
                for statement, params in inner:
                    writer.run(statement, params)
                writer.run("ROLLBACK TO s" if how == "savepoint rollback" else "RELEASE s")
            writer.run("ROLLBACK" if how == "rollback" else "COMMIT")
            writer.committed()
    finally:
        writer.close()


def test_rows_changed_in_a_rolled_back_savepoint_are_dropped(writer: Writer) -> None:
    writer.run("INSERT INTO t (a, b) VALUES (1, 1)")
    writer.rowids.clear()
    writer.run("BEGIN")
    writer.run("INSERT INTO t (a, b) VALUES (2, 2)")
    writer.run("SAVEPOINT s")
    writer.run("UPDATE t SET b = 9 WHERE id = 1")
    writer.run("ROLLBACK TO s")
    writer.run("RELEASE s")
    writer.run("COMMIT")
    assert writer.rowids == [{"t": frozenset({2})}]


def test_a_replace_makes_the_rowids_unknown(writer: Writer) -> None:
    writer.run("INSERT INTO t (a, b, u) VALUES (1, 1, 1)")
    writer.run("INSERT OR REPLACE INTO t (a, b, u) VALUES (2, 2, 1)")  # deletes row 1 unseen
    assert writer.rowids == [{"t": frozenset({1})}, {"t": None}]


def test_a_table_or_trigger_that_says_replace_makes_the_rowids_unknown(writer: Writer) -> None:
    assert writer.capture.trusted({"t": frozenset({1})}) == {"t": frozenset({1})}
    writer.run("CREATE TABLE v (id INTEGER PRIMARY KEY, x UNIQUE ON CONFLICT REPLACE)")
    assert writer.capture.trusted({"t": frozenset({1}), "v": frozenset({2})}) == {
        "t": frozenset({1}),
        "v": None,
    }
    writer.run("CREATE TRIGGER w AFTER INSERT ON v BEGIN INSERT INTO t (u) VALUES (new.x); END")
    assert writer.capture.trusted({"t": frozenset({1})}) == {"t": frozenset({1})}
    writer.run("DROP TRIGGER w")
    writer.run("CREATE TRIGGER w AFTER INSERT ON v BEGIN REPLACE INTO t (u) VALUES (new.x); END")
    assert writer.capture.trusted({"t": frozenset({1})}) == {"t": None}


def test_too_many_changed_rows_are_unknown(writer: Writer) -> None:
    writer.conn.executemany("INSERT INTO t (a) VALUES (?)", [(i,) for i in range(ROWIDS_LIMIT + 1)])
    assert writer.rowids == [{"t": None}]


def test_the_capture_triggers_announce_no_schema_change() -> None:
    writer = Writer("SELECT * FROM t")
    try:
        writer.announced.clear()  # the CREATE TABLE
        writer.capture.want("t")  # a second watch of the table
        assert writer.capture.unwant("t")
        assert writer.capture.unwant("t")
        assert writer.capture.want("t")
        writer.run("INSERT INTO t (a) VALUES (1)")
        assert writer.announced == [(frozenset({TableUpdate("t", UpdateKind.INSERT)}), False)]
        triggers = sqlite3.Connection.execute(
            writer.conn, "SELECT count(*) FROM temp.sqlite_schema WHERE type = 'trigger'"
        ).fetchone()
        assert triggers == (3,)
    finally:
        writer.close()


def test_triggers_are_not_created_inside_a_transaction() -> None:
    writer = Writer("SELECT * FROM t")
    try:
        writer.run("CREATE TABLE other (id INTEGER PRIMARY KEY)")
        writer.run("BEGIN")
        assert not writer.capture.want("other")
        writer.run("ROLLBACK")
        assert writer.capture.want("other")
        assert writer.capture.tables == {"t", "other"}
    finally:
        writer.close()


def test_patching_places_rows_and_reports_no_change() -> None:
    writer = Writer("SELECT * FROM t ORDER BY a")
    try:
        writer.run("INSERT INTO t (a) VALUES (3), (1), (2)")
        writer.committed()
        writer.run("UPDATE t SET a = 0 WHERE id = 1")
        writer.committed()
        assert [row[1] for row in writer.result.rows] == [0, 1, 2]
        assert writer.result.patch({2}, [(2, 1, None, None)]) is False  # the same row again
        assert writer.patched == 2
    finally:
        writer.close()


def test_patches_change_the_rows_in_place_after_copying_the_callers() -> None:
    by_id = [OrderTerm(position=0, descending=False, nulls_first=True)]
    given_rows = [(1, "a"), (2, "b"), (4, "d")]
    result = MaintainedRows(given_rows, by_id, 0)
    assert result.patch({3}, [(3, "c")])
    patched = result.rows
    assert given_rows == [(1, "a"), (2, "b"), (4, "d")]  # the caller's list is not patched
    assert result.patch({1, 4}, [(4, "D")])
    assert result.rows is patched
    assert patched == [(2, "b"), (3, "c"), (4, "D")]


@pytest.mark.parametrize("patched_before", [False, True])
def test_a_result_out_of_order_is_left_as_it_was(patched_before: bool) -> None:
    by_id = [OrderTerm(position=0, descending=False, nulls_first=True)]
    result = MaintainedRows([(1, "a"), (3, "c"), (2, "b")], by_id, 0)
    if patched_before:
        assert result.patch({9}, [(9, "i")])
    before = list(result.rows)
    with pytest.raises(OutOfOrder):
        result.patch({1, 2}, [])  # row 1 is in place, row 2 is not: neither is removed
    assert list(result.rows) == before


def test_compare_values_follows_sqlite_storage_classes() -> None:
    ordered = [
        None,
        -(2**63),
        -0.5,
        0,
        0.5,
        2**53,
        2**53 + 1,
        float("inf"),
        "",
        "B",
        "a",
        b"",
        b"\x00",
    ]
    for i, left in enumerate(ordered):
        for j, right in enumerate(ordered):
            assert compare_values(left, right) == (i > j) - (i < j), (left, right)


def test_a_renamed_table_gets_its_capture_back() -> None:
    writer = Writer("SELECT * FROM t")
    try:
        writer.capture.want("t")  # a second watch: the table stays wanted through the rename
        writer.run("ALTER TABLE t RENAME TO gone")
        writer.run(SCHEMA)
        writer.run("INSERT INTO gone (a) VALUES (1)")  # its moved triggers still say "t"
        assert writer.capture.trusted(writer.rowids[-1]) == {"t": None}
        writer.run("INSERT INTO t (a) VALUES (1)")
        assert writer.capture.trusted(writer.rowids[-1]) == {"t": frozenset({1})}
    finally:
        writer.close()
