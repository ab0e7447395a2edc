"""Splitting scripts and rewriting what sqlglot cannot parse (parser._text)."""

from __future__ import annotations

from parser._text import split_statements


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
