"""parser.postgres against PostgreSQL's own answer, over the corpus in postgres_corpus.sql.

For every statement the server plans (``EXPLAIN``, never run), the relations its plan scans or
modifies must all be among :func:`parser.postgres.dependencies`' answer: a missing relation is a
stale watch. Each case says how the two compare (see the corpus' header): ``exact`` cases must
agree exactly, ``superset`` cases must report strictly more (a superset case that became exact
belongs in the other list), ``everything`` cases must answer None. A write's plan names its
target, which :func:`parser.postgres.write_targets` must include too.

One database per module (dropped at the end), one connection, the catalog read once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parser import StatementKind, Unanalyzable
from parser.postgres import PgCatalog, RelationKind, analyze, dependencies, write_targets
from tests.parser.postgres_oracle import PgOracle

pytestmark = pytest.mark.postgres

CORPUS = Path(__file__).with_name("postgres_corpus.sql")
_HEADER = re.compile(r"^-- (schema|exact|superset|everything)(?::\s*(.*))?$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Case:
    expectation: str
    title: str
    sql: str


def read_corpus(path: Path) -> tuple[str, list[Case]]:
    """The schema script and the cases of a corpus file."""
    text = path.read_text(encoding="utf-8")
    headers = list(_HEADER.finditer(text))
    schema = ""
    cases: list[Case] = []
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        body = text[header.end() : following.start() if following else len(text)].strip()
        if header.group(1) == "schema":
            schema = body
        else:
            cases.append(Case(header.group(1), header.group(2) or "", body))
    return schema, cases


SCHEMA, CASES = read_corpus(CORPUS)


def keys(*names: str) -> frozenset[str]:
    return frozenset(names)


@pytest.fixture(scope="module")
def oracle() -> Iterator[PgOracle]:
    server = PgOracle.open(SCHEMA)
    yield server
    server.close()


@pytest.fixture(scope="module")
def catalog(oracle: PgOracle) -> PgCatalog:
    return oracle.catalog()


def test_the_corpus_is_large_and_mostly_exact() -> None:
    counts = {kind: sum(case.expectation == kind for case in CASES) for kind in ("exact",)}
    assert len(CASES) >= 150
    assert counts["exact"] >= 100
    assert len({case.title for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.title for case in CASES])
def test_parser_covers_the_plan(oracle: PgOracle, catalog: PgCatalog, case: Case) -> None:
    planned = oracle.plan(case.sql)
    analysis = analyze(case.sql)
    assert not analysis.multiple
    found = dependencies(analysis, catalog)
    if case.expectation == "everything":
        assert found is None
        return
    assert found is not None
    assert planned.relations - found == set(), "relations the plan reads and the parser missed"
    if case.expectation == "exact":
        assert found == planned.relations
    else:
        assert found > planned.relations
    if analysis.kind is StatementKind.WRITE:
        targets = write_targets(analysis, catalog)
        assert targets is not None
        assert planned.modified <= targets


class TestSearchPath:
    def test_an_unqualified_name_follows_the_session_search_path(self, oracle: PgOracle) -> None:
        sql = "SELECT * FROM customers JOIN notes USING (id)"
        oracle.execute("SET search_path = aux, app")
        try:
            catalog = oracle.catalog()
            assert catalog.search_path[-2:] == ("aux", "app")
            assert dependencies(analyze(sql), catalog) == keys("aux.customers", "aux.notes")
            assert oracle.plan(sql).relations == keys("aux.customers", "aux.notes")
        finally:
            oracle.execute("SET search_path = app, aux")

    def test_a_view_resolves_names_as_it_was_created_whatever_the_path(
        self, oracle: PgOracle
    ) -> None:
        # pg_get_viewdef qualifies what the path would not find; the view still reads app's.
        oracle.execute('SET search_path = aux, "Sales"')
        try:
            catalog = oracle.catalog()
            found = dependencies(analyze("SELECT * FROM app.customer_totals"), catalog)
            assert found == keys("app.customers", "app.orders")
            assert oracle.plan("SELECT * FROM app.customer_totals").relations == found
        finally:
            oracle.execute("SET search_path = app, aux")

    def test_a_name_the_path_cannot_find_depends_on_everything(self, catalog: PgCatalog) -> None:
        assert dependencies(analyze('SELECT * FROM "Q1"'), catalog) is None
        assert dependencies(analyze("SELECT * FROM no_such_table"), catalog) is None


class TestCatalog:
    def test_kinds(self, catalog: PgCatalog) -> None:
        kinds = {
            name: relation.kind
            for name in ("customers", "customer_totals", "sales_summary", "events", "imported")
            if (relation := catalog.relation("app", name)) is not None
        }
        assert kinds == {
            "customers": RelationKind.TABLE,
            "customer_totals": RelationKind.VIEW,
            "sales_summary": RelationKind.MATERIALIZED_VIEW,
            "events": RelationKind.PARTITIONED_TABLE,
            "imported": RelationKind.FOREIGN_TABLE,
        }
        sequence = catalog.relation("app", "ticket_seq")
        assert sequence is not None
        assert sequence.kind is RelationKind.SEQUENCE

    def test_parents_and_children(self, catalog: PgCatalog) -> None:
        click = catalog.relation("app", "events_2024_click")
        assert click is not None
        assert click.parents == (("app", "events_2024"),)
        logs = catalog.relation("app", "logs")
        assert logs is not None
        assert {child.name for child in catalog.children(logs)} == {"logs_archive", "logs_recent"}

    def test_definitions_of_user_views_only(self, catalog: PgCatalog) -> None:
        view = catalog.relation("app", "big_customers")
        system = catalog.relation("pg_catalog", "pg_tables")
        assert view is not None
        assert view.definition is not None
        assert "customer_totals" in view.definition
        assert system is not None
        assert system.definition is None

    def test_temporary_schema_and_search_path(self, catalog: PgCatalog) -> None:
        assert catalog.temp_schema is not None
        assert catalog.temp_schema.startswith("pg_temp_")
        assert catalog.search_path == (catalog.temp_schema, "pg_catalog", "app", "aux")

    def test_functions_that_may_read(self, catalog: PgCatalog) -> None:
        assert catalog.may_read("app", "order_count")
        assert catalog.may_read("app", "Shout")
        assert not catalog.may_read("app", "double_it")  # IMMUTABLE

    def test_equal_reads_give_equal_catalogs(self, oracle: PgOracle, catalog: PgCatalog) -> None:
        again = oracle.catalog()
        assert again == catalog
        assert hash(again) == hash(catalog)


class TestWriteTargets:
    def test_a_write_to_a_parent_reaches_its_descendants(self, catalog: PgCatalog) -> None:
        targets = write_targets(analyze("DELETE FROM events WHERE at < $1"), catalog)
        assert targets == keys(
            "app.events", "app.events_2023", "app.events_2024", "app.events_2024_click",
            "app.events_2024_rest", "app.events_other",
        )  # fmt: skip

    def test_a_write_through_a_view_reaches_its_base_table(self, catalog: PgCatalog) -> None:
        targets = write_targets(analyze("UPDATE orders_simple SET status = 'x'"), catalog)
        assert targets == keys("app.orders")

    def test_a_refresh_writes_the_materialized_view(self, catalog: PgCatalog) -> None:
        analysis = analyze("REFRESH MATERIALIZED VIEW sales_summary")
        assert write_targets(analysis, catalog) == keys("app.sales_summary")

    def test_truncate_of_a_temporary_table(self, catalog: PgCatalog) -> None:
        analysis = analyze("TRUNCATE scratch, aux.audit")
        expected = keys(f"{catalog.temp_schema}.scratch", "aux.audit")
        assert write_targets(analysis, catalog) == expected


# PostgreSQL syntax sqlglot's postgres dialect cannot parse: each must be valid (the server
# plans it) and answered with "every relation".
UNPARSEABLE = [
    pytest.param('SELECT * FROM U&"cust\\006Fmers"', id="unicode escapes in a name"),
    pytest.param("SELECT * FROM orders ORDER BY total USING >", id="order by using"),
    pytest.param("SELECT @ -total FROM orders", id="prefix absolute value"),
    pytest.param("SELECT * FROM regions WHERE point(id, 1) <@ box '((0,0),(2,2))'", id="box"),
    pytest.param(
        "SELECT * FROM customers c JOIN aux.notes n USING (id) AS j WHERE j.id > 0",
        id="join using alias",
    ),
    pytest.param(
        "SELECT * FROM customers c, LATERAL ROWS FROM (jsonb_each(c.data)) AS kv",
        id="lateral rows from",
    ),
    pytest.param(
        "SELECT x.*, r.name FROM regions r, XMLTABLE('/a' PASSING xmlparse(document '<a/>')"
        " COLUMNS x int PATH 'x') x",
        id="xmltable",
    ),
    pytest.param("INSERT INTO tags OVERRIDING USER VALUE VALUES (1, 'a')", id="overriding"),
]


@pytest.mark.parametrize("sql", UNPARSEABLE)
def test_what_sqlglot_cannot_parse_depends_on_everything(oracle: PgOracle, sql: str) -> None:
    assert oracle.plan(sql).relations  # the server accepts and plans it
    with pytest.raises(Unanalyzable):
        analyze(sql)
