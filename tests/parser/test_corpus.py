"""The parser against SQLite itself, over SQLite's sqllogictest corpus (tests/corpus/).

Each script is replayed into a fresh in-memory database. Every query's read set must include every
table SQLite opens for it (a miss is a correctness bug); a table the parser reports beyond that
must at least be named by the query or a view it uses. Every statement must be classified like
SQLite's authorizer classifies it, and a write's read set must include what SQLite opens for it.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from parser import StatementKind, Unanalyzable, Views, analyze
from tests.parser.oracle import explain_reads, schema_tables, schema_views, unexplained_extras
from tests.parser.slt import read_script

CORPUS = Path(__file__).parents[1] / "corpus" / "sqllogictest"
SCRIPTS = sorted(CORPUS.rglob("*.test"))

# Queries the parser may refuse, with the reason. Empty: the corpus has none.
KNOWN_UNANALYZABLE: dict[tuple[str, int], str] = {}

_DDL_ACTIONS = frozenset(
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_"))
) | {sqlite3.SQLITE_ALTER_TABLE}
_TRANSACTION_ACTIONS = frozenset({sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT})
_OTHER_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_PRAGMA,
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        sqlite3.SQLITE_ANALYZE,
        sqlite3.SQLITE_REINDEX,
    }
)
_WRITE_ACTIONS = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})


def _execute_classified(conn: sqlite3.Connection, sql: str) -> StatementKind | None:
    """Run ``sql`` and classify it from the authorizer's action codes; None if nothing fired."""
    actions: list[tuple[int, str | None]] = []

    def authorize(
        action: int, _a: str | None, _b: str | None, _db: str | None, trigger: str | None
    ) -> int:
        actions.append((action, trigger))
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorize)
    try:
        conn.execute(sql)
    finally:
        conn.set_authorizer(None)
    codes = {action for action, _ in actions}
    if not codes:
        return None  # e.g. DROP TABLE IF EXISTS of a missing table
    if codes & _DDL_ACTIONS:
        return StatementKind.DDL
    if codes & _TRANSACTION_ACTIONS:
        return StatementKind.TRANSACTION
    if codes & _OTHER_ACTIONS:
        return StatementKind.OTHER
    if any(action in _WRITE_ACTIONS and trigger is None for action, trigger in actions):
        return StatementKind.WRITE
    return StatementKind.QUERY


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []

    def summary(self, name: str) -> str:
        figures = ", ".join(f"{key}={value}" for key, value in sorted(self.counts.items()))
        return f"{name}: {figures}"


def _check_query(conn: sqlite3.Connection, sql: str, where: str, tally: Tally) -> None:
    try:
        oracle = explain_reads(conn, sql)
    except sqlite3.Error:
        tally.counts["queries rejected by sqlite"] += 1
        return
    definitions = schema_views(conn)
    try:
        analysis = analyze(sql, views=Views(definitions))
    except Unanalyzable as error:
        if where in {f"{path}:{line}" for path, line in KNOWN_UNANALYZABLE}:
            tally.counts["queries known unanalyzable"] += 1
        else:
            tally.problems.append(f"{where}: {error}")
        return
    tally.counts["queries checked"] += 1
    if analysis.kind is not StatementKind.QUERY:
        tally.problems.append(f"{where}: kind {analysis.kind} for a query")
    missed = oracle - analysis.reads
    if missed:
        tally.problems.append(f"{where}: missed {sorted(missed)} in {sql!r}")
    extras = analysis.reads - oracle
    if extras:
        tally.counts["queries with extra tables"] += 1
        unexplained = unexplained_extras(extras, sql, definitions)
        if unexplained:
            tally.problems.append(f"{where}: {sorted(unexplained)} is not named in {sql!r}")
        elif extras - schema_tables(conn):
            tally.counts["extra: names no table (cyclic view or missing table)"] += 1
        else:
            tally.counts["extra: named in the text, optimised away by sqlite"] += 1


def _check_statement(
    conn: sqlite3.Connection, sql: str, expect_error: bool, where: str, tally: Tally
) -> None:
    try:
        analysis = analyze(sql, views=Views(schema_views(conn)))
    except Unanalyzable as error:
        analysis = None
        failure = str(error)
    try:
        opened = explain_reads(conn, sql, writes=True)
    except sqlite3.Error:
        opened = None
    try:
        kind = _execute_classified(conn, sql)
    except sqlite3.Error:
        tally.counts["statements rejected by sqlite"] += 1
        return  # what the parser says about a statement SQLite rejects does not matter
    if expect_error:
        tally.counts["statement error accepted by sqlite"] += 1
    if analysis is None:
        tally.problems.append(f"{where}: {failure}")
        return
    tally.counts["statements checked"] += 1
    if kind is not None and kind is not analysis.kind:
        tally.problems.append(f"{where}: {analysis.kind} but sqlite says {kind}: {sql!r}")
    if analysis.kind is StatementKind.WRITE and opened is not None:
        missed = opened - analysis.reads
        if missed:
            tally.problems.append(f"{where}: write missed {sorted(missed)} in {sql!r}")


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(CORPUS)) for p in SCRIPTS])
def test_corpus_read_sets_cover_what_sqlite_opens(script: Path) -> None:
    name = str(script.relative_to(CORPUS))
    tally = Tally()
    # No statement cache: the authorizer only fires while a statement is prepared.
    conn = sqlite3.connect(":memory:", isolation_level=None, cached_statements=0)
    try:
        for record in read_script(script):
            where = f"{name}:{record.line}"
            if record.kind == "query":
                _check_query(conn, record.sql, where, tally)
            else:
                _check_statement(conn, record.sql, record.expect_error, where, tally)
    finally:
        conn.close()
    print(tally.summary(name))
    assert not tally.problems, "\n".join(tally.problems[:20])


def test_corpus_is_present() -> None:
    assert len(SCRIPTS) == 17
