"""Ask SQLite which tables a statement reads: the oracle the parser's read sets are checked against.

SQLite knows, after resolving views, CTEs and subqueries, which b-trees it opens: the
``OpenRead``/``ReopenIdx`` rows of ``EXPLAIN`` name a root page, which ``sqlite_schema`` maps to a
table (or to an index, whose ``tbl_name`` is the table). A query whose only use of a table needs no
cursor (rare) still shows up in the authorizer's SQLITE_READ reports, so both are united. Neither
runs the statement. A table SQLite optimises away (a subquery behind a constant-false condition)
is in neither, which is why the parser may report more than the oracle, never less.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping

from parser import fold_name

__all__ = ("explain_reads", "schema_tables", "schema_views", "unexplained_extras")

_OPENS_FOR_READ = frozenset({"OpenRead", "ReopenIdx"})
_OPENS_FOR_WRITE = frozenset({"OpenWrite"})


def schema_tables(conn: sqlite3.Connection) -> frozenset[str]:
    rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
    return frozenset(fold_name(name) for (name,) in rows)


def schema_views(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'view'")
    return {name: sql for name, sql in rows}


def explain_reads(conn: sqlite3.Connection, sql: str, *, writes: bool = False) -> frozenset[str]:
    """Return the main-database tables SQLite opens (and, with ``writes``, opens for writing).

    Reads made by trigger bodies are left out: they are the triggers' business, not the
    statement's, and the parser does not look into triggers.

    :raises sqlite3.Error: if SQLite rejects the statement.
    """
    tables: set[str] = set()

    def authorize(
        action: int, arg1: str | None, _arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        if action == sqlite3.SQLITE_READ and db == "main" and trigger is None and arg1:
            tables.add(fold_name(arg1))
        return sqlite3.SQLITE_OK

    pages = {
        rootpage: fold_name(table)
        for kind, table, rootpage in conn.execute(
            "SELECT type, tbl_name, rootpage FROM sqlite_schema"
        )
        if kind in ("table", "index")
    }
    opcodes = _OPENS_FOR_READ | _OPENS_FOR_WRITE if writes else _OPENS_FOR_READ
    conn.set_authorizer(authorize)
    try:
        program = conn.execute("EXPLAIN " + sql).fetchall()
    finally:
        conn.set_authorizer(None)
    for _addr, opcode, _p1, p2, p3, *_rest in program:
        # Page 1 is sqlite_schema itself, and DDL opens b-trees that do not exist yet.
        if opcode in opcodes and p3 == 0 and p2 in pages:
            tables.add(pages[p2])
    # The authorizer also reports columns read through a view under the view's name.
    return frozenset(tables) & schema_tables(conn)


def _mentioned(name: str, texts: Iterable[str]) -> bool:
    word = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
    return any(word.search(fold_name(text)) for text in texts)


def unexplained_extras(extras: Iterable[str], sql: str, views: Mapping[str, str]) -> frozenset[str]:
    """Return the extra tables that appear neither in ``sql`` nor in a view definition.

    A table the parser reports but SQLite does not open is fine when the query names it (SQLite
    compiled the reference away); one the text never names would be a parser bug.
    """
    texts = [sql, *views.values()]
    return frozenset(name for name in extras if not _mentioned(name.rpartition(".")[2], texts))
