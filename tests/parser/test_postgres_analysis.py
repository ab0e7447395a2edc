"""parser.postgres.analyze on text alone: kinds, names as the server folds them, CTE scoping,
writes, functions, and the statements it refuses. The server's own answer is checked in
test_postgres_oracle.py."""

from __future__ import annotations

import pytest

from parser import StatementKind, Unanalyzable
from parser.postgres import RelationName, analyze, fold_identifier

R = RelationName


def reads(sql: str) -> set[RelationName]:
    return set(analyze(sql).reads)


class TestNames:
    def test_unquoted_names_fold_to_lower_case_and_quoted_keep_theirs(self) -> None:
        sql = 'SELECT * FROM Orders JOIN "Orders" USING (id) JOIN Sales."Q1" USING (id)'
        assert reads(sql) == {R(None, "orders"), R(None, "Orders"), R("sales", "Q1")}

    def test_only_ascii_letters_fold(self) -> None:
        assert reads("SELECT * FROM ÄPFEL") == {R(None, "Äpfel")}

    def test_long_names_are_cut_to_63_bytes_on_a_character_boundary(self) -> None:
        assert fold_identifier("a" * 70, quoted=False) == "a" * 63
        assert fold_identifier("é" * 40, quoted=True) == "é" * 31  # 2 bytes each
        assert reads(f"SELECT * FROM {'T' * 64}") == {R(None, "t" * 63)}

    def test_doubled_quotes_in_a_quoted_name(self) -> None:
        assert reads('SELECT * FROM "a""b"') == {R(None, 'a"b')}

    def test_the_catalog_part_of_a_three_part_name_is_dropped(self) -> None:
        assert reads("SELECT * FROM test.public.t") == {R("public", "t")}


class TestScopes:
    def test_a_cte_hides_the_relation_of_its_name(self) -> None:
        assert reads("WITH t AS (SELECT * FROM u) SELECT * FROM t") == {R(None, "u")}

    def test_a_schema_qualified_name_is_never_a_cte(self) -> None:
        assert reads("WITH t AS (SELECT 1) SELECT * FROM t, public.t") == {R("public", "t")}

    def test_cte_names_fold_like_other_names(self) -> None:
        sql = 'WITH "T" AS (SELECT 1), u AS (SELECT 2) SELECT * FROM t, "T", "U", U'
        assert reads(sql) == {R(None, "t"), R(None, "U")}

    def test_a_non_recursive_cte_body_reads_the_relation_of_its_own_name(self) -> None:
        assert reads("WITH t AS (SELECT * FROM t) SELECT * FROM t") == {R(None, "t")}

    def test_recursive_ctes_see_each_other_in_any_order(self) -> None:
        sql = "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a"
        assert reads(sql) == set()

    def test_a_non_recursive_cte_sees_only_earlier_ones(self) -> None:
        sql = "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a"
        assert reads(sql) == {R(None, "b")}

    def test_a_cte_inside_a_subquery_is_not_seen_outside(self) -> None:
        sql = "SELECT * FROM (WITH t AS (SELECT 1) SELECT * FROM t) s, t"
        assert reads(sql) == {R(None, "t")}

    def test_a_cte_of_a_set_operation_is_seen_by_every_branch(self) -> None:
        assert reads("WITH x AS (SELECT 1) SELECT * FROM x UNION SELECT * FROM x") == set()

    def test_for_update_of_names_aliases_not_relations(self) -> None:
        assert reads("SELECT * FROM users u FOR UPDATE OF u") == {R(None, "users")}

    def test_subqueries_anywhere(self) -> None:
        sql = (
            "SELECT (SELECT max(x) FROM a), ARRAY(SELECT y FROM b) FROM c"
            " WHERE EXISTS (SELECT 1 FROM d) GROUP BY 1 HAVING count(*) > (SELECT 1 FROM e)"
            " ORDER BY (SELECT 1 FROM f LIMIT 1)"
        )
        assert reads(sql) == {R(None, n) for n in "abcdef"}

    def test_only_is_kept_apart(self) -> None:
        analysis = analyze("SELECT * FROM ONLY a, ONLY b, b")
        assert analysis.reads == {R(None, "a"), R(None, "b")}
        assert analysis.only == {R(None, "a")}


class TestWrites:
    @pytest.mark.parametrize(
        ("sql", "writes", "extra_reads"),
        [
            ("INSERT INTO t (a) SELECT a FROM u", {"t"}, {"u"}),
            ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a", {"t"}, set()),
            ("UPDATE t SET a = u.a FROM u WHERE u.id = t.id", {"t"}, {"u"}),
            ("DELETE FROM t USING u WHERE u.id = t.id RETURNING t.*", {"t"}, {"u"}),
            ("MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", {"t"}, {"u"}),
            ("TRUNCATE a, b CASCADE", {"a", "b"}, set()),
            ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv WITH DATA", {"mv"}, set()),
            (
                "WITH d AS (DELETE FROM t RETURNING *) INSERT INTO w SELECT * FROM d",
                {"t", "w"},
                set(),
            ),
            ("WITH d AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM d", {"t"}, set()),
        ],
    )
    def test_targets_are_written_and_read(
        self, sql: str, writes: set[str], extra_reads: set[str]
    ) -> None:
        analysis = analyze(sql)
        assert analysis.kind is StatementKind.WRITE
        assert analysis.writes == {R(None, name) for name in writes}
        assert analysis.reads == {R(None, name) for name in writes | extra_reads}

    def test_refresh_with_a_schema(self) -> None:
        assert analyze('REFRESH MATERIALIZED VIEW s."Mv"').writes == {R("s", "Mv")}

    def test_update_only_reads_only_the_target(self) -> None:
        assert analyze("UPDATE ONLY t SET a = 1").only == {R(None, "t")}


class TestFunctions:
    def test_functions_in_from_are_listed_apart_from_relations(self) -> None:
        analysis = analyze(
            "SELECT * FROM a CROSS JOIN LATERAL generate_series(1, a.n) g,"
            " ROWS FROM (jsonb_each(a.j), unnest(a.arr)) r, s.f(1), unnest(a.b) u"
        )
        assert analysis.reads == {R(None, "a")}
        assert analysis.functions == {
            R(None, "generate_series"),
            R(None, "jsonb_each"),
            R(None, "unnest"),
            R("s", "f"),
        }

    def test_every_call_is_listed_as_written(self) -> None:
        analysis = analyze('SELECT my_func(x), "Odd"(y), s.f(z), count(*) FROM t WHERE x IN (1)')
        assert analysis.calls == {R(None, "my_func"), R(None, "Odd"), R("s", "f"), R(None, "count")}

    def test_a_function_argument_may_hold_a_subquery(self) -> None:
        assert reads("SELECT * FROM generate_series(1, (SELECT max(n) FROM t))") == {R(None, "t")}


class TestKinds:
    @pytest.mark.parametrize(
        ("sql", "kind"),
        [
            ("SELECT 1", StatementKind.QUERY),
            ("VALUES (1), (2)", StatementKind.QUERY),
            ("TABLE t", StatementKind.QUERY),
            ("(SELECT 1 FROM a) UNION (SELECT 2 FROM b)", StatementKind.QUERY),
            ("WITH x AS (SELECT 1) SELECT * FROM x", StatementKind.QUERY),
            ("SELECT * FROM t WHERE id = $1 FOR UPDATE", StatementKind.QUERY),
            ("SELECT * INTO newt FROM t", StatementKind.DDL),
            ("CREATE TABLE t (a int)", StatementKind.DDL),
            ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", StatementKind.DDL),
            ("GRANT SELECT ON t TO PUBLIC", StatementKind.DDL),
            ("COMMENT ON TABLE t IS 'x; y'", StatementKind.DDL),
            ("BEGIN ISOLATION LEVEL REPEATABLE READ", StatementKind.TRANSACTION),
            ("PREPARE TRANSACTION 'x'", StatementKind.TRANSACTION),
            ("SAVEPOINT s", StatementKind.TRANSACTION),
            ("PREPARE q AS SELECT 1", StatementKind.OTHER),
            ("SET search_path = a, b", StatementKind.OTHER),
            ("LISTEN c", StatementKind.OTHER),
            ("EXPLAIN SELECT 1", StatementKind.OTHER),
            ("VACUUM t", StatementKind.OTHER),
        ],
    )
    def test_kind(self, sql: str, kind: StatementKind) -> None:
        assert analyze(sql).kind is kind

    def test_a_script_takes_its_strongest_kind(self) -> None:
        analysis = analyze("BEGIN; SELECT * FROM a; UPDATE b SET x = 1; COMMIT")
        assert analysis.multiple
        assert analysis.kind is StatementKind.WRITE
        assert analysis.reads == {R(None, "a"), R(None, "b")}


class TestSplitting:
    def test_semicolons_inside_quotes_comments_and_parentheses_do_not_split(self) -> None:
        sql = (
            "SELECT $$;$$, $tag$ ; $$ ; $tag$, ';', E'\\';', /* ; /* ; */ ; */ 1 FROM t; -- ;\n"
            "CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM a; DELETE FROM b);"
            ' SELECT * FROM "a;b"'
        )
        analysis = analyze(sql)
        assert analysis.kinds == (StatementKind.QUERY, StatementKind.DDL, StatementKind.QUERY)
        assert analysis.reads == {R(None, "t"), R(None, "a;b")}

    def test_statements_of_comments_only_are_dropped(self) -> None:
        assert not analyze("SELECT 1; -- nothing\n; /* nothing */").multiple


class TestRefusals:
    @pytest.mark.parametrize(
        "sql",
        [
            "",
            "-- only a comment",
            "DO $$ BEGIN DELETE FROM t; END $$",
            "CALL p()",
            "EXECUTE q(1)",
            "COPY t FROM STDIN",
            "EXPLAIN ANALYZE DELETE FROM t",
            "EXPLAIN (ANALYZE, BUFFERS) SELECT 1",
            "FROBNICATE t",
            "SELECT * FROM",
            'SELECT * FROM U&"d\\0061ta"',
            "REFRESH MATERIALIZED VIEW",
            "SELECT 1; DO $$ BEGIN END $$",
        ],
    )
    def test_refused(self, sql: str) -> None:
        with pytest.raises(Unanalyzable):
            analyze(sql)

    def test_refusals_are_cached_and_raised_afresh(self) -> None:
        with pytest.raises(Unanalyzable) as first:
            analyze("CALL p()")
        with pytest.raises(Unanalyzable) as second:
            analyze("CALL p()")
        assert first.value is not second.value
        assert first.value.reason == second.value.reason
