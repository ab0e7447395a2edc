"""parser.postgres.dependencies and PgCatalog on catalogs written by hand: the rules the server's
plans cannot show (what a write through a parent announces, functions, odd catalogs). The
server's own answer is checked in test_postgres_oracle.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from parser.postgres import (
    PgCatalog,
    PgRelation,
    RelationKind,
    analyze,
    dependencies,
    relation_key,
    write_targets,
)
from parser.postgres.catalog import PgReference, ReferentialAction

TABLE, VIEW = RelationKind.TABLE, RelationKind.VIEW
PATH = ("pg_catalog", "app", "aux")


def table(name: str, *parents: str, schema: str = "app") -> PgRelation:
    return PgRelation(schema, name, TABLE, parents=tuple(("app", p) for p in parents))


def view(name: str, definition: str | None, schema: str = "app") -> PgRelation:
    return PgRelation(schema, name, VIEW, definition)


def depends(
    sql: str,
    *relations: PgRelation,
    temp_schema: str | None = None,
    functions: Sequence[tuple[str, str]] = (),
) -> set[str] | None:
    catalog = PgCatalog(PATH, relations, temp_schema=temp_schema, functions=functions)
    found = dependencies(analyze(sql), catalog)
    return None if found is None else set(found)


class TestInheritance:
    def test_a_grandchild_depends_on_its_ancestors(self) -> None:
        relations = (table("p"), table("c", "p"), table("g", "c"))
        assert depends("SELECT * FROM g", *relations) == {"app.g", "app.c", "app.p"}

    def test_only_leaves_the_children_out(self) -> None:
        relations = (table("p"), table("c", "p"))
        assert depends("SELECT * FROM ONLY p", *relations) == {"app.p"}
        assert depends("SELECT * FROM p", *relations) == {"app.p", "app.c"}

    def test_a_child_read_with_only_elsewhere_still_brings_its_children(self) -> None:
        relations = (table("p"), table("c", "p"), table("g", "c"))
        assert depends("SELECT * FROM ONLY c, p", *relations) == {"app.p", "app.c", "app.g"}

    def test_multiple_inheritance(self) -> None:
        relations = (table("a"), table("b"), table("c", "a", "b"))
        assert depends("SELECT * FROM c", *relations) == {"app.a", "app.b", "app.c"}
        assert depends("SELECT * FROM a", *relations) == {"app.a", "app.c"}


class TestViews:
    def test_a_view_cycle_ends_as_everything(self) -> None:
        # The server forbids it; a catalog read across two moments might show one.
        relations = (view("a", "SELECT * FROM b"), view("b", "SELECT * FROM a"))
        assert depends("SELECT * FROM a", *relations) is None

    @pytest.mark.parametrize(
        "definition",
        [None, "SELECT FROM WHERE", "DELETE FROM t RETURNING *", "SELECT 1; SELECT 2"],
    )
    def test_a_view_without_a_usable_query_depends_on_everything(
        self, definition: str | None
    ) -> None:
        assert depends("SELECT * FROM v", view("v", definition), table("t")) is None

    def test_a_view_body_keeps_only(self) -> None:
        relations = (view("v", " SELECT * FROM ONLY p;"), table("p"), table("c", "p"))
        assert depends("SELECT * FROM v", *relations) == {"app.p"}

    def test_a_materialized_view_depends_on_itself_only(self) -> None:
        mv = PgRelation("app", "mv", RelationKind.MATERIALIZED_VIEW)
        assert depends("SELECT * FROM mv", mv, table("t")) == {"app.mv"}


class TestResolution:
    def test_the_first_schema_of_the_path_holding_the_name_wins(self) -> None:
        relations = (table("t", schema="aux"), table("t"))
        assert depends("SELECT * FROM t", *relations) == {"app.t"}

    def test_pg_temp_means_the_sessions_temporary_schema(self) -> None:
        scratch = table("s", schema="pg_temp_7")
        assert depends("SELECT * FROM pg_temp.s", scratch, temp_schema="pg_temp_7") == {
            "pg_temp_7.s"
        }
        assert depends("SELECT * FROM pg_temp.s", scratch) is None  # no temporary schema yet

    def test_names_keep_their_case(self) -> None:
        mixed = PgRelation("Sales", "Q1", TABLE)
        assert depends('SELECT * FROM "Sales"."Q1"', mixed) == {relation_key("Sales", "Q1")}
        assert depends("SELECT * FROM Sales.Q1", mixed) is None

    def test_a_sequence_depends_on_everything(self) -> None:
        seq = PgRelation("app", "s", RelationKind.SEQUENCE)
        assert depends("SELECT last_value FROM s", seq) is None


class TestFunctions:
    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT * FROM pg_catalog.generate_series(1, 3), t",
            "SELECT * FROM t, unnest(ARRAY[1])",
            "SELECT lower(x), aux.pure(x) FROM t",  # aux.pure is IMMUTABLE: not listed
        ],
    )
    def test_pure_functions_leave_the_answer_alone(self, sql: str) -> None:
        assert depends(sql, table("t"), functions=[("app", "reads")]) == {"app.t"}

    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT * FROM aux.generate_series(1, 3)",  # not pg_catalog's
            "SELECT * FROM my_rows()",
            "SELECT reads(x) FROM t",
            "SELECT app.reads(x) FROM t",
            "SELECT nextval('s')",
            "SELECT pg_catalog.query_to_xml('SELECT * FROM t', true, false, '')",
            "SELECT pg_stat_get_numscans(1)",
        ],
    )
    def test_functions_that_may_read_anything(self, sql: str) -> None:
        assert depends(sql, table("t"), functions=[("app", "reads")]) is None

    def test_a_user_function_shadowing_a_pure_builtin(self) -> None:
        # With pg_catalog placed after app, app.generate_series would be called.
        catalog = PgCatalog(("app", "pg_catalog"), [table("t")], functions=[("app", "unnest")])
        assert dependencies(analyze("SELECT * FROM t, unnest(ARRAY[1])"), catalog) is None

    def test_a_function_of_the_temporary_schema_is_never_found_unqualified(self) -> None:
        catalog = PgCatalog(
            ("pg_temp_1", "pg_catalog", "app"),
            [table("t")],
            temp_schema="pg_temp_1",
            functions=[("pg_temp_1", "f")],
        )
        assert dependencies(analyze("SELECT f(x) FROM t"), catalog) == frozenset({"app.t"})
        assert dependencies(analyze("SELECT pg_temp.f(x) FROM t"), catalog) is None


class TestWriteTargets:
    def test_an_unknown_target_may_be_anything(self) -> None:
        catalog = PgCatalog(PATH, [table("t")])
        assert write_targets(analyze("INSERT INTO u VALUES (1)"), catalog) is None

    def test_only_still_announces_the_children(self) -> None:
        # A spare announcement costs a re-run; ONLY on a partitioned table reaches nothing.
        catalog = PgCatalog(PATH, [table("p"), table("c", "p")])
        targets = write_targets(analyze("DELETE FROM ONLY p"), catalog)
        assert targets == frozenset({"app.p", "app.c"})


class TestCatalog:
    ROW: ClassVar[dict[str, Any]] = {
        "search_path": ["pg_catalog", "app"],
        "temp_schema": None,
        "relations": [
            [1, "app", "p", "p", None, [], [], False, [[4, "c", "n"], [98, "c", "c"]]],
            [2, "app", "p1", "r", None, [1], [["app", "f"]], False, []],
            [3, "app", "v", "v", " SELECT * FROM p;", [], [], True, []],
            [4, "app", "orphan", "r", None, [99], [], False, []],
        ],
        "functions": [["app", "f"]],
    }

    def test_from_row_takes_json_text_or_decoded_lists(self) -> None:
        as_text = {
            **self.ROW,
            "relations": json.dumps(self.ROW["relations"]),
            "functions": json.dumps(self.ROW["functions"]),
        }
        assert PgCatalog.from_row(as_text) == PgCatalog.from_row(self.ROW)

    def test_from_row_links_parents_by_oid(self) -> None:
        catalog = PgCatalog.from_row(self.ROW)
        child = catalog.relation("app", "p1")
        orphan = catalog.relation("app", "orphan")
        assert child is not None
        assert child.parents == (("app", "p"),)
        assert orphan is not None
        assert orphan.parents == ()  # a parent outside the catalog (another session's)
        parent = catalog.relation("app", "p")
        assert parent is not None
        assert parent.referenced_by == (  # one referencing relation outside the catalog
            PgReference("app", "orphan", ReferentialAction.CASCADE, ReferentialAction.SET_NULL),
        )
        assert child.functions == (("app", "f"),)
        assert catalog.may_read("app", "f")
        assert dependencies(analyze("SELECT * FROM v"), catalog) == frozenset({"app.p", "app.p1"})

    def test_catalogs_differ_when_any_fact_does(self) -> None:
        base = PgCatalog(PATH, [table("t")])
        assert base == PgCatalog(PATH, [table("t")])
        assert hash(base) == hash(PgCatalog(PATH, [table("t")]))
        assert base != PgCatalog(("app",), [table("t")])
        assert base != PgCatalog(PATH, [table("t")], temp_schema="pg_temp_1")
        assert base != PgCatalog(PATH, [table("t")], functions=[("app", "f")])
        assert base != PgCatalog(PATH, [table("u")])
