"""The SQLite oracle on hand-written queries, including the extras SQLite optimises away."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from parser import Views, analyze
from tests.parser.oracle import explain_reads, schema_views, unexplained_extras

SCHEMA = """
CREATE TABLE t1 (a INTEGER PRIMARY KEY, b);
CREATE TABLE t2 (id INTEGER PRIMARY KEY, c);
CREATE TABLE t3 (x);
CREATE INDEX t3_x ON t3 (x);
CREATE VIEW v AS SELECT * FROM t1 JOIN t3 ON t3.x = t1.b;
CREATE VIEW vv AS SELECT * FROM v WHERE b IN (SELECT c FROM t2);
"""


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None, cached_statements=0)
    connection.executescript(SCHEMA)
    yield connection
    connection.close()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t1 JOIN t2 ON t2.id = t1.b",
        "SELECT count(*) FROM t1 JOIN t2 ON t2.id = t1.b",
        "SELECT * FROM t3 INDEXED BY t3_x WHERE x = 1",
        "SELECT * FROM t1 WHERE b IN t3",
        "SELECT * FROM vv",
        "WITH t2 AS (SELECT 1 AS c) SELECT * FROM t1 WHERE b IN (SELECT c FROM t2)",
        "SELECT * FROM t1 WHERE b IN (WITH t1 AS (SELECT 1) SELECT * FROM t1)",
        "SELECT (SELECT count(*) FROM t3 WHERE x = t1.a) FROM t1 ORDER BY (SELECT c FROM t2)",
    ],
)
def test_parser_matches_sqlite(conn: sqlite3.Connection, sql: str) -> None:
    reads = analyze(sql, views=Views(schema_views(conn))).reads
    assert reads == explain_reads(conn, sql)


def test_constant_false_branch_is_an_explained_extra(conn: sqlite3.Connection) -> None:
    sql = "SELECT * FROM t1 WHERE 0 AND EXISTS (SELECT 1 FROM t3)"
    reads = analyze(sql).reads
    oracle = explain_reads(conn, sql)
    assert oracle == {"t1"}
    assert reads == {"t1", "t3"}
    assert unexplained_extras(reads - oracle, sql, {}) == frozenset()


def test_unexplained_extras_flags_a_name_the_text_lacks() -> None:
    assert unexplained_extras({"t9", "t1"}, "SELECT * FROM t1", {}) == {"t9"}
    views = {"v": "CREATE VIEW v AS SELECT * FROM Base"}
    assert unexplained_extras({"base"}, "SELECT * FROM v", views) == frozenset()


def test_oracle_reports_writes_only_when_asked(conn: sqlite3.Connection) -> None:
    sql = "INSERT INTO t2 (c) SELECT b FROM t1"
    assert explain_reads(conn, sql) == {"t1"}
    assert explain_reads(conn, sql, writes=True) == {"t1", "t2"}
    assert analyze(sql).reads == {"t1", "t2"}
