"""fold_name must fold exactly as SQLite compares identifiers."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parser import fold_name, read_tables


# Dotted capital I and the Kelvin sign lower-case to ASCII letters under str.lower().
@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("USERS", "users"),
        ("Users_1", "users_1"),
        ("Äb", "Äb"),
        ("ÄB", "Äb"),
        ("ß", "ß"),
        ("\u0130", "\u0130"),
        ("\u212a", "\u212a"),
        ("", ""),
    ],
)
def test_fold_name_folds_ascii_only(name: str, folded: str) -> None:
    assert fold_name(name) == folded


def _sqlite_finds(created: str, queried: str) -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        quoted = '"{}"'.format(created.replace('"', '""'))
        conn.execute(f"CREATE TABLE {quoted} (x)")
        try:
            conn.execute('SELECT * FROM "{}"'.format(queried.replace('"', '""')))
        except sqlite3.OperationalError:
            return False
        return True
    finally:
        conn.close()


_names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=8,
).filter(lambda name: not fold_name(name).startswith("sqlite_"))


@settings(max_examples=150, deadline=None)
@given(name=_names, change=st.sampled_from([str.upper, str.lower, str.swapcase, str.title]))
def test_fold_name_agrees_with_sqlite(name: str, change: object) -> None:
    assert callable(change)
    other = change(name)
    assert (fold_name(name) == fold_name(other)) == _sqlite_finds(name, other)


@settings(max_examples=50, deadline=None)
@given(name=_names)
def test_read_tables_names_a_quoted_table_with_fold_name(name: str) -> None:
    quoted = '"{}"'.format(name.replace('"', '""'))
    assert read_tables(f"SELECT * FROM {quoted}") == {fold_name(name)}
