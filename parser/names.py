"""SQLite's identifier folding, shared with the rest of rxdb so that table names agree."""

from __future__ import annotations

import string

__all__ = ("fold_name", "qualified_name")

# SQLite compares identifiers case-insensitively for ASCII letters only (sqlite3StrICmp uses an
# ASCII table), so "Äb" and "äb" are two different tables. str.lower() would fold them together.
_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold_name(name: str) -> str:
    """Fold an identifier the way SQLite compares it: ASCII letters only.

    The same function names the tables a statement reads and the tables a write touches, so a
    watch and a write agree on spelling whatever case the SQL used.
    """
    return name.translate(_ASCII_FOLD)


def qualified_name(table: str, schema: str = "") -> str:
    """Name a table as the parser reports it: folded, ``schema.table`` unless in ``main``.

    ``main`` is dropped because an unqualified name and ``main.t`` are the same table for every
    connection that has not created a ``temp`` table of that name, which is the case rxdb tracks.
    """
    folded_schema = fold_name(schema)
    if not folded_schema or folded_schema == "main":
        return fold_name(table)
    return f"{folded_schema}.{fold_name(table)}"
