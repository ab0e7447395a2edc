"""Splitting scripts and rewriting what sqlglot cannot parse (parser._text)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from parser._text import _scan_statements, split_statements
from tests.parser.slt import read_script
from tests.parser.test_cases import CASES, VIEW_SETS

CORPUS = Path(__file__).parents[1] / "corpus" / "sqllogictest"


def _texts(sql: str) -> list[str]:
    return [statement.text for statement in split_statements(sql)]


class TestSplit:
    def test_split_at_semicolons_outside_quotes_and_comments(self) -> None:
        sql = "SELECT ';', \";\", [;], `;` -- ;\n; /* ; */ SELECT 2"
        statements = split_statements(sql)
        assert [s.keyword for s in statements] == ["SELECT", "SELECT"]
        assert statements[0].source == "SELECT ';', \";\", [;], `;` -- ;"

    def test_split_keeps_a_trigger_body_whole(self) -> None:
        sql = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; SELECT 3"
        statements = split_statements(sql)
        assert [s.keyword for s in statements] == ["CREATE", "SELECT"]
        assert statements[0].source.endswith("END")

    def test_split_drops_empty_statements(self) -> None:
        assert split_statements(" ; -- x\n ;/* y */") == ()

    def test_unterminated_string_swallows_the_rest(self) -> None:
        assert [s.keyword for s in split_statements("SELECT 'a; SELECT 2")] == ["SELECT"]

    def test_keyword_is_upper_case_and_skips_comments(self) -> None:
        (statement,) = split_statements("/* c */ -- d\n  wItH c AS (SELECT 1) SELECT * FROM c")
        assert statement.keyword == "WITH"


class TestRewrite:
    def test_numbered_parameters_become_anonymous(self) -> None:
        assert _texts("SELECT ?12, :3x, :name, ?, '?1', \"?2\" -- ?3") == [
            "SELECT ?, ?, :name, ?, '?1', \"?2\" -- ?3"
        ]

    def test_dollar_inside_an_identifier_is_not_a_parameter(self) -> None:
        assert _texts("SELECT a$1 FROM t") == ["SELECT a$1 FROM t"]

    def test_replace_becomes_insert_or_replace(self) -> None:
        assert _texts("replace INTO t VALUES (1)") == ["INSERT OR REPLACE INTO t VALUES (1)"]

    def test_update_conflict_action_is_dropped(self) -> None:
        assert _texts("UPDATE OR ROLLBACK t SET a = 1") == ["UPDATE  t SET a = 1"]
        assert _texts("UPDATE ORx SET a = 1") == ["UPDATE ORx SET a = 1"]


_VOCABULARY = "SELECT UPDATE REPLACE OR IGNORE INTO t ? ?1 : :1 :a 1 ' \" ` [ ] -- /* */ ; , ( )"
_PIECES = (*_VOCABULARY.split(" "), "\n")


class TestSingleStatementShortcut:
    """A text without ``;`` or a numbered parameter skips the full scan; both must agree."""

    def test_shortcut_agrees_with_the_full_scan_on_cases_and_corpus(self) -> None:
        texts = [case.sql for case in CASES]
        texts += [definition for views in VIEW_SETS.values() for definition in views.values()]
        texts += [r.sql for script in sorted(CORPUS.rglob("*.test")) for r in read_script(script)]
        shortcut = 0
        for sql in texts:
            assert split_statements(sql) == _scan_statements(sql), sql
            shortcut += ";" not in sql
        assert shortcut > 10_000

    def test_shortcut_keeps_leading_rewrites_and_comments(self) -> None:
        for sql in (
            "  -- lead\n /* c */ replace INTO t VALUES (1)",
            "update or ignore t SET a = 1",
            "UPDATE /* x */ OR\nROLLBACK t SET a = ?",
            "UPDATE OR",
            "-- only a comment",
            "/* unterminated",
            "",
            "SELECT 'it''s' FROM \"a b\" WHERE x = :name AND y = ?",
        ):
            assert split_statements(sql) == _scan_statements(sql), sql

    @settings(max_examples=500, deadline=None)
    @given(
        words=st.lists(
            st.sampled_from(_PIECES),
            max_size=10,
        )
    )
    def test_shortcut_agrees_on_any_text(self, words: list[str]) -> None:
        sql = " ".join(words)
        assert split_statements(sql) == _scan_statements(sql)
