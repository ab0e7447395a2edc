"""The scope walk (parser._reads) and the parser's behaviour on arbitrary text."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from parser import Analysis, StatementKind, Unanalyzable, analyze
from parser._reads import (
    TableRefs,
    UnsupportedName,
    flat_table_refs,
    scoped_table_refs,
    table_refs,
)
from parser._text import split_statements
from tests.parser.slt import read_script
from tests.parser.test_cases import CASES, VIEW_SETS

CORPUS = Path(__file__).parents[1] / "corpus" / "sqllogictest"
SCRIPTS = sorted(CORPUS.rglob("*.test"))
# Keywords whose statements go through sqlglot (parser.analysis._EXPECTED_NODES).
_PARSED = frozenset({"SELECT", "VALUES", "WITH", "INSERT", "REPLACE", "UPDATE", "DELETE"})


def _refs(sql: str) -> int:
    return scoped_table_refs(sqlglot.parse_one(sql, dialect="sqlite")).unscoped


def _outcome(refs: TableRefs | UnsupportedName | None) -> object:
    if isinstance(refs, UnsupportedName):
        return UnsupportedName
    assert refs is not None
    return (refs.reads, refs.writes)


def _trees(sql: str) -> list[exp.Expr]:
    # Every tree the analysis would hand to table_refs: statements sqlglot parses, and the body
    # of a CREATE VIEW.
    trees: list[exp.Expr] = []
    for statement in split_statements(sql):
        if statement.keyword not in _PARSED and statement.keyword != "CREATE":
            continue
        try:
            parsed = sqlglot.parse(statement.text, dialect="sqlite")
        except Exception:  # analyze refuses these before any walk
            continue
        for tree in parsed:
            if isinstance(tree, exp.Create):
                tree = tree.expression
            if isinstance(tree, exp.Query | exp.Insert | exp.Update | exp.Delete):
                trees.append(tree)
    return trees


def _flat_agrees_with_scoped(tree: exp.Expr) -> bool | None:
    """Compare both paths on ``tree``; None when the flat path declines (a WITH)."""
    try:
        flat: TableRefs | UnsupportedName | None = flat_table_refs(tree)
    except UnsupportedName as error:
        flat = error
    if flat is None:
        return None
    try:
        scoped: TableRefs | UnsupportedName = scoped_table_refs(tree)
    except UnsupportedName as error:
        scoped = error
    assert _outcome(flat) == _outcome(scoped), tree.sql(dialect="sqlite")
    if not isinstance(scoped, UnsupportedName):
        assert table_refs(tree) == flat
    return True


def test_flat_path_agrees_with_the_scope_walk_on_every_case() -> None:
    texts = [case.sql for case in CASES]
    texts += [definition for views in VIEW_SETS.values() for definition in views.values()]
    outcomes = [_flat_agrees_with_scoped(tree) for sql in texts for tree in _trees(sql)]
    assert outcomes.count(True) > 50
    assert outcomes.count(None) > 10  # the WITH cases still take the scope walk


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(CORPUS)) for p in SCRIPTS])
def test_flat_path_agrees_with_the_scope_walk_on_the_corpus(script: Path) -> None:
    checked = 0
    for record in read_script(script):
        for tree in _trees(record.sql):
            checked += _flat_agrees_with_scoped(tree) is True
    assert checked > 0


def test_flat_path_declines_any_with() -> None:
    for sql in (
        "WITH t AS (SELECT 1) SELECT * FROM t",
        "SELECT * FROM u WHERE a IN (WITH t AS (SELECT 1) SELECT * FROM t)",
        "INSERT INTO t SELECT * FROM (WITH u AS (SELECT 1) SELECT * FROM u)",
    ):
        assert flat_table_refs(sqlglot.parse_one(sql, dialect="sqlite")) is None, sql


def test_scope_walk_accounts_for_every_table_of_every_query_case() -> None:
    # The fallback for references the walk skips is conservative; queries should never need it.
    checked = 0
    for case in CASES:
        if case.error is None and case.kind is StatementKind.QUERY and not case.multiple:
            (statement,) = split_statements(case.sql)
            assert _refs(statement.text) == 0, case.title
            checked += 1
    assert checked > 50


def test_fallback_covers_clauses_without_a_scope() -> None:
    assert _refs("DELETE FROM t WHERE a IN u") == 1
    assert _refs("INSERT INTO t (a) VALUES (1) RETURNING (SELECT max(a) FROM u)") == 1


_VOCABULARY = (
    "SELECT FROM WHERE IN WITH AS JOIN ON UNION INSERT INTO VALUES UPDATE SET DELETE REPLACE OR"
    " t u \"T\" [x] main. ( ) , ; * = ? ?1 :a 's' 1 -- /* */ EXISTS CREATE VIEW BEGIN END"
    " json_each('[1]') INDEXED BY NOT"
)
_WORDS = st.sampled_from(_VOCABULARY.split())


@settings(max_examples=300, deadline=None)
@given(words=st.lists(_WORDS, max_size=14))
def test_analyze_returns_or_raises_unanalyzable_on_any_text(words: list[str]) -> None:
    sql = " ".join(words)
    try:
        result = analyze(sql)
    except Unanalyzable:
        return
    assert isinstance(result, Analysis)
    assert all(name and name == name.strip() for name in result.reads)
