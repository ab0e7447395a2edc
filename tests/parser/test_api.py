"""The public surface of the parser package: exports, errors, Analysis, Views and the cache."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

import parser
from parser import Analysis, ParserError, StatementKind, Unanalyzable, Views, analyze
from parser.analysis import _analyze_cached


class TestExports:
    def test_all_is_a_tuple_of_the_public_names(self) -> None:
        assert isinstance(parser.__all__, tuple)
        assert set(parser.__all__) == {
            "Analysis",
            "Catalog",
            "ParserError",
            "StatementKind",
            "Unanalyzable",
            "Views",
            "analyze",
            "dependencies",
            "fold_name",
            "read_tables",
        }

    def test_public_names_report_the_package_as_their_module(self) -> None:
        for name in parser.__all__:
            assert getattr(parser, name).__module__ == "parser", name


class TestUnanalyzable:
    def test_unanalyzable_is_a_value_error_and_a_parser_error(self) -> None:
        assert issubclass(Unanalyzable, ValueError)
        assert issubclass(Unanalyzable, ParserError)

    def test_unanalyzable_carries_sql_and_reason(self) -> None:
        with pytest.raises(Unanalyzable) as raised:
            analyze("SELEC * FRM t")
        assert raised.value.sql == "SELEC * FRM t"
        assert "SELEC" in raised.value.reason
        assert "every table" in str(raised.value)

    def test_unanalyzable_pickles(self) -> None:
        error = Unanalyzable("SELECT", "why")
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.sql, copy.reason, str(copy)) == (error.sql, error.reason, str(error))

    def test_unanalyzable_message_cuts_long_sql(self) -> None:
        error = Unanalyzable("SELECT " + "x" * 1000, "why")
        assert len(str(error)) < 400


class TestAnalysis:
    def test_analysis_is_frozen_with_slots(self) -> None:
        analysis = analyze("SELECT * FROM t")
        with pytest.raises(dataclasses.FrozenInstanceError):
            analysis.reads = frozenset()  # type: ignore[misc]
        assert not hasattr(analysis, "__dict__")

    def test_analysis_kinds_lists_each_statement(self) -> None:
        analysis = analyze("BEGIN; SELECT 1; UPDATE t SET a = 1; COMMIT")
        assert analysis.kinds == (
            StatementKind.TRANSACTION,
            StatementKind.QUERY,
            StatementKind.WRITE,
            StatementKind.TRANSACTION,
        )
        assert analysis.kind is StatementKind.WRITE
        assert isinstance(analysis, Analysis)


class TestViews:
    def test_views_fold_keys_and_lookups(self) -> None:
        views = Views({"V": "CREATE VIEW V AS SELECT 1", "main.W": "x", "Temp.X": "y"})
        assert set(views) == {"v", "w", "temp.x"}
        assert views["v"] == views["V"] == views["main.v"] == "CREATE VIEW V AS SELECT 1"
        assert "W" in views
        assert "TEMP.X" in views
        assert "x" not in views
        assert 1 not in views  # type: ignore[comparison-overlap]

    def test_views_hash_is_stable_and_equal_for_equal_content(self) -> None:
        first = Views({"v": "CREATE VIEW v AS SELECT 1"})
        second = Views({"V": "CREATE VIEW v AS SELECT 1"})
        assert first == second
        assert hash(first) == hash(second)
        assert first == {"v": "CREATE VIEW v AS SELECT 1"}
        assert first != Views()
        assert first != 42

    def test_views_is_immutable(self) -> None:
        views = Views({"v": "CREATE VIEW v AS SELECT 1"})
        with pytest.raises(TypeError):
            views["w"] = "x"  # type: ignore[index]
        with pytest.raises(AttributeError):
            views.extra = 1  # type: ignore[attr-defined]

    def test_empty_views_is_the_same_as_none(self) -> None:
        assert analyze("SELECT * FROM v", views=Views()) is analyze("SELECT * FROM v")
        assert analyze("SELECT * FROM v", views={}) is analyze("SELECT * FROM v")


class TestCache:
    def test_second_call_returns_the_cached_analysis(self) -> None:
        sql = "SELECT * FROM cache_a JOIN cache_b USING (id)"
        first = analyze(sql)
        hits = _analyze_cached.cache_info().hits
        assert analyze(sql) is first
        assert _analyze_cached.cache_info().hits == hits + 1

    def test_equal_views_share_a_cache_entry(self) -> None:
        definitions = {"cv": "CREATE VIEW cv AS SELECT * FROM base"}
        first = analyze("SELECT * FROM cv", views=Views(definitions))
        assert analyze("SELECT * FROM cv", views=dict(definitions)) is first
        assert first.reads == {"base"}

    def test_different_views_get_different_answers(self) -> None:
        one = analyze("SELECT * FROM cv", views={"cv": "CREATE VIEW cv AS SELECT * FROM x"})
        two = analyze("SELECT * FROM cv", views={"cv": "CREATE VIEW cv AS SELECT * FROM y"})
        assert (one.reads, two.reads) == (frozenset({"x"}), frozenset({"y"}))

    def test_failures_are_cached_and_raised_fresh(self) -> None:
        sql = "SELECT * FROM cache_fail garbage garbage"
        with pytest.raises(Unanalyzable) as first:
            analyze(sql)
        hits = _analyze_cached.cache_info().hits
        with pytest.raises(Unanalyzable) as second:
            analyze(sql)
        assert _analyze_cached.cache_info().hits == hits + 1
        assert first.value is not second.value
        assert str(first.value) == str(second.value)

    def test_cache_is_bounded(self) -> None:
        assert _analyze_cached.cache_info().maxsize == 4096
