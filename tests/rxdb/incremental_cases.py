"""Writes for the property tests of maintained queries (test_incremental_*.py): statements
on ``t (id INTEGER PRIMARY KEY, a, b, u UNIQUE)`` with generated parameters."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

Statement = tuple[str, tuple[Any, ...]]
SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, u UNIQUE)"


def statement(sql: str, *params: st.SearchStrategy[Any]) -> st.SearchStrategy[Statement]:
    return st.tuples(st.just(sql), st.tuples(*params))


def statements(
    values: st.SearchStrategy[Any], ids: st.SearchStrategy[int]
) -> st.SearchStrategy[Statement]:
    """Inserts, REPLACEs, updates (of the rowid too) and deletes of ``t``."""
    return st.one_of(
        statement("INSERT INTO t (a, b, u) VALUES (?, ?, ?)", values, values, ids),
        statement("INSERT OR REPLACE INTO t (a, b, u) VALUES (?, ?, ?)", values, values, ids),
        statement("UPDATE t SET a = ?, b = ? WHERE id = ?", values, values, ids),
        statement("UPDATE t SET b = ? WHERE id > ?", values, ids),
        statement("UPDATE t SET id = ? WHERE id = ?", ids, ids),
        statement("UPDATE OR REPLACE t SET u = ? WHERE id = ?", ids, ids),
        statement("DELETE FROM t WHERE id = ?", ids),
        statement("DELETE FROM t WHERE a IS ?", values),
    )
