"""SQLite's placeholders on PostgreSQL: the rewriting to ``$n`` (no server needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest

import rxdb
from rxdb.engines.postgres.params import bind, scan


class TestRewriting:
    @pytest.mark.parametrize(
        ("sql", "params", "text", "values"),
        [
            ("SELECT ?", (1,), "SELECT $1", (1,)),
            ("SELECT ?, ?", ("a", "b"), "SELECT $1, $2", ("a", "b")),
            ("SELECT $2, $1", (1, 2), "SELECT $2, $1", (1, 2)),
            ("SELECT :a, :b, :a", {"a": 1, "b": 2, "unused": 3}, "SELECT $1, $2, $1", [1, 2]),
            ("SELECT 1", (), "SELECT 1", ()),
            ("SELECT 1;", (), "SELECT 1;", ()),
            ("SELECT 1; -- done\n", (), "SELECT 1; -- done\n", ()),
        ],
    )
    def test_placeholders_become_numbered(
        self, sql: str, params: Any, text: str, values: Any
    ) -> None:
        assert bind(sql, params) == (text, values)

    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT '?', ?",  # a string
            "SELECT 'it''s ?', ?",  # a doubled quote inside it
            "SELECT E'\\' ?', ?",  # an escape string: \' does not end it
            'SELECT "?" FROM t WHERE ?',  # a quoted identifier
            'SELECT "a""?", ?',  # a doubled quote inside one
            "SELECT -- ?\n ?",  # a line comment
            "SELECT /* ? /* nested ? */ ? */ ?",  # nested block comments
            "SELECT $$ ? $$, ?",  # a dollar-quoted string
            "SELECT $tag$ ? $x$ ? $tag$, ?",  # with a tag, another tag inside
            "SELECT a$b, ?",  # $ inside an identifier
        ],
    )
    def test_question_marks_outside_code_stay(self, sql: str) -> None:
        text, values = bind(sql, (1,))
        assert values == (1,)
        assert text == sql[: sql.rindex("?")] + "$1" + sql[sql.rindex("?") + 1 :]

    def test_casts_are_not_named_parameters(self) -> None:
        assert bind("SELECT :a::int, x::text", {"a": "1"}) == ("SELECT $1::int, x::text", ["1"])

    def test_named_notation_is_not_a_parameter(self) -> None:
        assert bind("SELECT f(a := :a)", {"a": 1}) == ("SELECT f(a := $1)", [1])

    def test_a_colon_name_stays_with_a_sequence(self) -> None:
        """An array slice ``a[lo:hi]`` keeps its meaning when the parameters are positional."""
        assert bind("SELECT a[lo:hi] FROM t WHERE x = ?", (1,)) == (
            "SELECT a[lo:hi] FROM t WHERE x = $1",
            (1,),
        )

    def test_two_question_marks_are_one_literal(self) -> None:
        """jsonb's ``?`` operator is written ``??``."""
        assert bind("SELECT d ?? 'k', d ??| ?", ("x",)) == ("SELECT d ? 'k', d ?| $1", ("x",))

    def test_scans_are_cached_per_text_and_style(self) -> None:
        assert scan("SELECT :a", named=True) is scan("SELECT :a", named=True)
        assert scan("SELECT :a", named=False).names == ()


class TestRefusals:
    @pytest.mark.parametrize(
        ("sql", "params", "says"),
        [
            ("SELECT 1; SELECT 2", (), "several statements"),
            ("SELECT ?", (), "takes 1 parameter, 0 given"),
            ("SELECT ?", (1, 2), "takes 1 parameter, 2 given"),
            ("SELECT $2", (1,), "takes 2 parameters, 1 given"),
            ("SELECT :a", {"b": 1}, "no value for the placeholder :a"),
            ("SELECT ?, $1", (1,), "mixes ? and $1"),
            ("SELECT ?", {"a": 1}, "mapping of parameters goes with :name"),
            ("SELECT ?", 5, "sequence (for ? or $1) or a mapping"),
            ("SELECT ?", "a", "sequence (for ? or $1) or a mapping"),
        ],
    )
    def test_wrong_parameters_raise_programming_error(
        self, sql: str, params: Any, says: str
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError, match=re.escape(says)):
            bind(sql, params)

    def test_a_semicolon_inside_a_string_is_not_a_second_statement(self) -> None:
        assert bind("SELECT ';' ; ", ()) == ("SELECT ';' ; ", ())
