"""The scope walk (parser._reads) and the parser's behaviour on arbitrary text."""

from __future__ import annotations

import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cases import CASES

from parser import Analysis, StatementKind, Unanalyzable, analyze
from parser._reads import table_refs
from parser._text import split_statements


def _refs(sql: str) -> int:
    return table_refs(sqlglot.parse_one(sql, dialect="sqlite")).unscoped


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
