"""parser.maintainable: which queries a watch may patch row by row, and how they are rewritten."""

from __future__ import annotations

import sqlite3

import pytest

from parser.maintainable import Maintainable, OrderTerm, TableFacts, maintainable

FACTS = TableFacts(("id", "name", "score", "n"), "id")


def facts(table: str) -> TableFacts | None:
    return FACTS if table == "big" else None


def shape(sql: str) -> Maintainable:
    found = maintainable(sql, facts)
    assert found is not None, sql
    return found


@pytest.mark.parametrize(
    ("sql", "rewritten", "order"),
    [
        ("SELECT * FROM big", "SELECT * FROM big\nORDER BY 1", [(0, False, True)]),
        (
            "SELECT * FROM big WHERE n > ? ORDER BY score DESC;",
            "SELECT * FROM big WHERE n > ? ORDER BY score DESC\n, 1 DESC",
            [(2, True, False), (0, True, False)],
        ),
        (
            "SELECT name, id FROM big b WHERE b.n % 2 = 0 ORDER BY b.name NULLS LAST -- why",
            "SELECT name, id FROM big b WHERE b.n % 2 = 0 ORDER BY b.name NULLS LAST -- why\n, 2",
            [(0, False, False), (1, False, True)],
        ),
        (
            "SELECT score AS name, name AS x, id FROM big ORDER BY name",
            "SELECT score AS name, name AS x, id FROM big ORDER BY name\n, 3",
            [(0, False, True), (2, False, True)],  # an AS alias wins over the column
        ),
        (
            "SELECT big.* FROM big WHERE n IN (1, 2) ORDER BY 4 DESC NULLS FIRST",
            "SELECT big.* FROM big WHERE n IN (1, 2) ORDER BY 4 DESC NULLS FIRST\n, 1 DESC",
            [(3, True, True), (0, True, False)],
        ),
        (
            "SELECT id, lower(name) AS l FROM big WHERE name LIKE :p ORDER BY l",
            "SELECT id, lower(name) AS l FROM big WHERE name LIKE :p ORDER BY l\n, 1",
            [(1, False, True), (0, False, True)],
        ),
    ],
)
def test_maintainable_shapes_get_the_rowid_as_last_order_term(
    sql: str, rewritten: str, order: list[tuple[int, bool, bool]]
) -> None:
    found = shape(sql)
    assert found.table == "big"
    assert found.sql == rewritten
    assert found.order == tuple(OrderTerm(*term) for term in order)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM big",
        "SELECT n, count(*) FROM big GROUP BY n",
        "SELECT * FROM big LIMIT 3",
        "SELECT DISTINCT * FROM big",
        "SELECT * FROM big, other",
        "SELECT * FROM big JOIN other USING (id)",
        "WITH c AS (SELECT 1) SELECT * FROM big",
        "SELECT * FROM big UNION SELECT * FROM big",
        "SELECT * FROM big WHERE id IN (SELECT id FROM other)",
        "SELECT *, (SELECT 1) FROM big",
        "SELECT * FROM big ORDER BY lower(name)",  # not a result column
        "SELECT name FROM big ORDER BY lower(name)",
        "SELECT name FROM big ORDER BY score + 0",
        "SELECT name FROM big ORDER BY nothere",
        "SELECT name AS a, score AS a FROM big ORDER BY a",  # ambiguous: an error
        "SELECT name FROM big ORDER BY other.score",
        "SELECT name, 1 AS rxdb_hidden_0 FROM big",  # our hidden columns' names
        "SELECT name FROM big WHERE id = ?",  # no key selected, no order: a lookup
        "SELECT id, id FROM big",
        "SELECT name FROM big ORDER BY score COLLATE NOCASE",
        "SELECT name FROM big ORDER BY score LIMIT 3",
        "SELECT DISTINCT name FROM big ORDER BY score",
        "SELECT name FROM big JOIN other USING (id) ORDER BY score",
        "SELECT * FROM big ORDER BY 9",
        "SELECT * FROM big ORDER BY name COLLATE NOCASE",
        "SELECT * FROM big WHERE name = 'x' COLLATE NOCASE",
        "SELECT *, random() FROM big",
        "SELECT * FROM big WHERE datetime('now') > name",
        "SELECT *, row_number() OVER () FROM big",
        "SELECT * FROM other",  # no facts
        "SELECT * FROM temp.big",
        "SELECT * FROM json_each('[1]')",
        "UPDATE big SET n = 1",
        "SELECT 1; SELECT 2",
        "SELEC * FRM big",
    ],
)
def test_other_shapes_are_refused(sql: str) -> None:
    assert maintainable(sql, facts) is None


@pytest.mark.parametrize(
    ("sql", "rewritten", "order", "rowid"),
    [
        (
            "SELECT name FROM big WHERE n = ? ORDER BY id",
            'SELECT name , "id" AS rxdb_hidden_0\nFROM big WHERE n = ? ORDER BY id\n, 2',
            [(1, False, True), (1, False, True)],
            1,
        ),
        (
            "SELECT name FROM big b ORDER BY b.score DESC NULLS FIRST, n",
            'SELECT name , "id" AS rxdb_hidden_0, "score" AS rxdb_hidden_1, "n" AS rxdb_hidden_2'
            "\nFROM big b ORDER BY b.score DESC NULLS FIRST, n\n, 2",
            [(2, True, True), (3, False, True), (1, False, True)],
            1,
        ),
        (
            "SELECT id, name IS DISTINCT FROM 'x' AS d FROM big ORDER BY score DESC",
            "SELECT id, name IS DISTINCT FROM 'x' AS d , \"score\" AS rxdb_hidden_0\n"
            "FROM big ORDER BY score DESC\n, 1 DESC",
            [(2, True, False), (0, True, False)],
            0,
        ),
        (
            "SELECT id, id FROM big ORDER BY name",  # the rowid's name is not unique: hidden
            'SELECT id, id , "id" AS rxdb_hidden_0, "name" AS rxdb_hidden_1\n'
            "FROM big ORDER BY name\n, 3",
            [(3, False, True), (2, False, True)],
            2,
        ),
        (
            "SELECT name AS score FROM big ORDER BY score",  # the alias, not the column
            'SELECT name AS score , "id" AS rxdb_hidden_0\nFROM big ORDER BY score\n, 2',
            [(0, False, True), (1, False, True)],
            1,
        ),
    ],
)
def test_unselected_rowid_and_order_columns_become_hidden_columns(
    sql: str, rewritten: str, order: list[tuple[int, bool, bool]], rowid: int
) -> None:
    found = shape(sql)
    assert found.sql == rewritten
    assert found.order == tuple(OrderTerm(*term) for term in order)
    assert found.rowid == rowid
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, name, score, n)")
        conn.execute("INSERT INTO big VALUES (1, 'x', NULL, 3), (2, 'y', 2.5, 3)")
        params = (3,) if "?" in sql else ()
        user = conn.execute(sql, params)
        names = [column[0] for column in user.description]
        rows = user.fetchall()
        cursor = conn.execute(found.sql, params)
        assert [column[0] for column in cursor.description][: found.visible] == names
        full = cursor.fetchall()
        assert sorted(row[: found.visible] for row in full) == sorted(rows)
        assert found.visible == len(names)
        assert len(full[0]) > found.visible
        changed = conn.execute(found.changed_sql(named=False), (*params, "[2]")).fetchall()
        assert [row[found.rowid] for row in changed] == [2]
    finally:
        conn.close()


def test_tables_without_a_rowid_alias_or_with_collations_are_refused() -> None:
    assert maintainable("SELECT * FROM big", lambda _: TableFacts(("a", "b"), None)) is None
    plain = TableFacts(("id", "b"), "id", plain=False)
    assert maintainable("SELECT * FROM big", lambda _: plain) is None


def test_changed_sql_reads_only_the_given_rowids_by_primary_key() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, name, score, n)")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?, ?)", [(i, f"n{i}", i % 3, i) for i in range(1, 50)]
        )
        found = shape("SELECT * FROM big WHERE n > ? ORDER BY score DESC")
        rows = conn.execute(found.changed_sql(named=False), (10, "[5, 11, 12, 13, 99]")).fetchall()
        assert rows == [(11, "n11", 2, 11), (13, "n13", 1, 13), (12, "n12", 0, 12)]
        ties = conn.execute(found.changed_sql(named=False), (0, "[3, 6, 9]")).fetchall()
        assert [row[0] for row in ties] == [9, 6, 3]  # the rowid breaks ties, descending
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                f"EXPLAIN QUERY PLAN {found.changed_sql(named=False)}", (1, "[]")
            )
        )
        assert "USING INTEGER PRIMARY KEY (rowid=?)" in plan
        named = shape("SELECT * FROM big WHERE n > :least")
        cursor = conn.execute(named.changed_sql(named=True), {"least": 3, "rxdb_rowids": "[2, 4]"})
        assert cursor.fetchall() == [(4, "n4", 1, 4)]
    finally:
        conn.close()
