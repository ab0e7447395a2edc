"""parser.dependencies and parser.Catalog: names resolved as SQLite resolves them, against the
schemas of a real connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from parser import Catalog, analyze, dependencies
from parser.catalog import parse_virtual_table


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.execute("ATTACH ':memory:' AS aux")
    yield connection
    connection.close()


def catalog_of(conn: sqlite3.Connection) -> Catalog:
    schemas = {}
    for _, name, _ in conn.execute("PRAGMA database_list").fetchall():
        schemas[name] = conn.execute(f'SELECT type, name, sql FROM "{name}".sqlite_schema')
    return Catalog(schemas)


def depends(conn: sqlite3.Connection, sql: str) -> set[str] | None:
    analysis = analyze(sql)
    found = dependencies(analysis.reads, catalog_of(conn), analysis.functions)
    return None if found is None else set(found)


class TestViews:
    def test_view_of_an_attached_schema_reads_that_schemas_tables(
        self, conn: sqlite3.Connection
    ) -> None:
        conn.executescript(
            "CREATE TABLE t(x); CREATE TABLE aux.t(x); CREATE TABLE aux.u(x);"
            "CREATE VIEW aux.v AS SELECT x FROM t; CREATE VIEW aux.w AS SELECT * FROM v, u;"
        )
        assert depends(conn, "SELECT * FROM aux.w") == {"aux.t", "aux.u"}

    def test_temp_view_resolves_its_names_as_a_query_does(self, conn: sqlite3.Connection) -> None:
        conn.executescript("CREATE TABLE aux.u(x); CREATE TEMP VIEW tv AS SELECT x FROM u")
        assert depends(conn, "SELECT * FROM tv") == {"u"}

    def test_unqualified_name_finds_temp_before_main(self, conn: sqlite3.Connection) -> None:
        # main's own "v" is kept too: "main.v" reaches dependencies() spelled "v".
        conn.executescript(
            "CREATE TABLE t(x); CREATE TABLE v(x); CREATE TEMP VIEW v AS SELECT x FROM t"
        )
        assert depends(conn, "SELECT * FROM v") == {"t", "v"}

    def test_main_before_attached(self, conn: sqlite3.Connection) -> None:
        conn.executescript(
            "CREATE TABLE t(x); CREATE TABLE aux.s(x); CREATE VIEW aux.t AS SELECT x FROM s"
        )
        assert depends(conn, "SELECT * FROM t") == {"t"}
        assert depends(conn, "SELECT * FROM aux.t") == {"aux.s"}


class TestVirtualTables:
    def test_fts5_depends_on_itself_its_shadow_tables_and_its_content_table(
        self, conn: sqlite3.Connection
    ) -> None:
        conn.executescript(
            "CREATE TABLE a(id INTEGER PRIMARY KEY, x);"
            "CREATE VIRTUAL TABLE d USING fts5(x, content='a', content_rowid='id')"
        )
        assert depends(conn, "SELECT * FROM d") == {
            "d", "d_config", "d_data", "d_docsize", "d_idx", "a",
        }  # fmt: skip
        assert depends(conn, "SELECT * FROM d('x')") == depends(conn, "SELECT * FROM d")

    def test_content_table_that_is_a_view_is_expanded(self, conn: sqlite3.Connection) -> None:
        conn.executescript(
            "CREATE TABLE b(x); CREATE VIEW a AS SELECT rowid AS id, x FROM b;"
            'CREATE VIRTUAL TABLE d USING fts4(x, content="a")'
        )
        reads = depends(conn, "SELECT * FROM d")
        assert reads is not None
        assert "b" in reads

    def test_fts5vocab_depends_on_the_table_it_describes(self, conn: sqlite3.Connection) -> None:
        conn.executescript(
            "CREATE VIRTUAL TABLE ft USING fts5(x);"
            "CREATE VIRTUAL TABLE voc USING fts5vocab(ft, 'row')"
        )
        reads = depends(conn, "SELECT * FROM voc")
        assert reads is not None
        assert {"voc", "ft", "ft_data", "ft_idx"} <= reads

    def test_unknown_module_depends_on_everything(self) -> None:
        catalog = Catalog({"main": [("table", "x", "CREATE VIRTUAL TABLE x USING csv(data='1')")]})
        assert dependencies({"x"}, catalog) is None

    def test_reading_the_virtual_table_text(self) -> None:
        parsed = parse_virtual_table(
            'CREATE VIRTUAL TABLE "x y" USING Fts5(a, content = \'T\', tokenize="porter")'
        )
        assert parsed is not None
        assert parsed.module == "fts5"
        assert parsed.words == {"a", "content", "t", "tokenize", "porter"}
        assert parse_virtual_table("CREATE TABLE t(x)") is None


class TestUnannouncedState:
    def test_sqlite_sequence_depends_on_autoincrement_tables(
        self, conn: sqlite3.Connection
    ) -> None:
        conn.executescript(
            "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT); CREATE TABLE b(id);"
            "CREATE TABLE aux.c(id INTEGER PRIMARY KEY autoincrement)"
        )
        assert depends(conn, "SELECT * FROM sqlite_sequence") == {"sqlite_sequence", "a"}
        assert depends(conn, "SELECT * FROM aux.sqlite_sequence") == {
            "aux.sqlite_sequence",
            "aux.c",
        }

    @pytest.mark.parametrize(
        ("sql", "expected"),
        [
            ("SELECT * FROM pragma_user_version", {"pragma_user_version"}),
            ("SELECT * FROM pragma_user_version()", {"pragma_user_version"}),
            ("SELECT * FROM pragma_table_info('t')", set()),  # DDL re-runs every watch
            ("SELECT * FROM pragma_page_count()", None),  # any write moves it
            ("SELECT * FROM dbstat", None),
            ("SELECT * FROM sqlite_schema", {"sqlite_schema"}),
            ("SELECT value FROM json_each('[1]')", set()),
        ],
    )
    def test_eponymous_tables_and_functions(
        self, conn: sqlite3.Connection, sql: str, expected: set[str] | None
    ) -> None:
        assert depends(conn, sql) == expected

    def test_functions_a_view_calls_are_resolved(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE VIEW v AS SELECT * FROM pragma_freelist_count()")
        assert depends(conn, "SELECT * FROM v") is None


class TestCatalog:
    def test_equal_schemas_make_equal_catalogs(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE t(x)")
        assert catalog_of(conn) == catalog_of(conn)
        assert hash(catalog_of(conn)) == hash(catalog_of(conn))
        conn.execute("CREATE TABLE u(x)")
        first = catalog_of(conn)
        conn.execute("DROP TABLE u")
        assert catalog_of(conn) != first

    def test_lookup_order_is_temp_main_then_attached(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TEMP TABLE t(x)")  # temp is listed once it is used
        assert catalog_of(conn).schemas == ("temp", "main", "aux")

    def test_cyclic_view_ends(self) -> None:
        catalog = Catalog(
            {
                "main": [
                    ("view", "a", "CREATE VIEW a AS SELECT * FROM b"),
                    ("view", "b", "CREATE VIEW b AS SELECT * FROM a"),
                ]
            }
        )
        assert dependencies({"a"}, catalog) == frozenset({"a"})
