"""Result rows: a tuple that answers to column names, in lists the garbage collector skips."""

from __future__ import annotations

import copy
import gc
import json
import pickle
import sqlite3
from typing import Any

import pytest

import rxdb
from rxdb.rows import FrozenRows, Row, make_rows, release, row_class, same_rows


def result(sql: str, *params: Any) -> list[Row]:
    """The rows of ``sql`` as rxdb builds them from a plain sqlite3 cursor."""
    conn = sqlite3.connect(":memory:")
    try:
        cursor = conn.execute(sql, params)
        return make_rows(cursor.description, cursor.fetchall())
    finally:
        conn.close()


TWO = "SELECT 1 AS id, 'a' AS name UNION ALL SELECT 2, 'b'"


def tracked_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


class TestRowsAndTheCollector:
    def test_rows_of_a_result_are_not_left_for_the_collector_to_walk(self) -> None:
        before = tracked_objects()
        rows = result("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                      "WHERE i < 10000) SELECT i, 'x' || i, i * 0.5 FROM n")  # fmt: skip
        grown = tracked_objects() - before
        assert len(rows) == 10_000
        assert grown < 100, f"{grown} more objects for the collector to walk"

    def test_rows_read_from_a_result_are_rows(self) -> None:
        rows = result(TWO)
        first = rows[0]
        assert isinstance(first, Row)
        assert first["name"] == "a"
        assert first.name == "a"
        assert first["NAME"] == "a"
        assert first.keys() == ("id", "name")
        assert first.as_dict() == {"id": 1, "name": "a"}
        assert [row["id"] for row in rows] == [1, 2]
        assert [row.name for row in reversed(rows)] == ["b", "a"]
        assert rows[-1].name == "b"
        assert rows[:1][0].name == "a"
        assert rows[::-1][0].name == "b"
        _one, two = rows
        assert two.as_dict() == {"id": 2, "name": "b"}


class TestResultLists:
    def test_a_result_equals_the_tuples_of_its_values(self) -> None:
        rows: list[Any] = result(TWO)
        assert rows == [(1, "a"), (2, "b")]
        assert [(1, "a"), (2, "b")] == rows  # noqa: SIM300 (the reflected comparison)
        assert rows[0] == (1, "a")
        assert (2, "b") in rows
        assert rows.index((2, "b")) == 1
        assert rows != [(1, "a")]
        assert rows.count((1, "a")) == 1

    def test_a_result_prints_its_rows(self) -> None:
        assert repr(result(TWO)) == "[Row(id=1, name='a'), Row(id=2, name='b')]"

    def test_a_result_pickles_and_copies_with_its_names(self) -> None:
        rows = result(TWO)
        for other in (
            pickle.loads(pickle.dumps(rows)),
            copy.copy(rows),
            copy.deepcopy(rows),
            rows.copy(),
            rows[:],
        ):
            assert other == rows
            assert other is not rows
            assert other[1].name == "b"
            assert [r.id for r in other] == [1, 2]
        assert pickle.loads(pickle.dumps(rows[0])).name == "a"

    def test_a_copy_is_independent(self) -> None:
        rows = result(TWO)
        other = rows.copy()
        other.clear()
        assert rows == [(1, "a"), (2, "b")]

    def test_a_result_sorts_by_a_key_of_rows(self) -> None:
        rows = result(TWO)
        rows.sort(key=lambda row: row.name, reverse=True)
        assert [row.id for row in rows] == [2, 1]
        assert [row.id for row in sorted(rows, key=lambda row: row["id"])] == [1, 2]

    def test_a_result_pops_rows(self) -> None:
        rows = result(TWO)
        assert rows.pop().name == "b"
        assert rows.pop(0).name == "a"
        assert rows == []

    def test_items_added_to_a_result_read_back_as_added(self) -> None:
        rows = result(TWO)
        other = row_class(("x",))((9,))
        rows.append(other)
        rows.insert(0, other)
        rows += [other]
        rows.extend([other])
        rows[1] = other
        assert rows[0] is other
        assert rows[1] is other
        assert rows[-1] is other
        assert [row.keys() for row in rows] == [("x",)] * 2 + [("id", "name")] + [("x",)] * 3
        joined = rows + [other]  # noqa: RUF005 (the operators are under test)
        assert joined[-1] is other
        assert joined[2].name == "b"
        reflected = [other] + rows  # noqa: RUF005
        assert reflected[0] is other
        assert reflected[3].name == "b"

    def test_a_result_serialises_to_json_as_arrays(self) -> None:
        assert json.dumps(result(TWO)) == '[[1, "a"], [2, "b"]]'


class TestComparingResults:
    """How a watch tells a new result from the last one (and keeps the last one)."""

    MANY = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) "
            "SELECT i, 'x' || i FROM n")  # fmt: skip

    def test_equal_results_are_the_same_across_slices(self) -> None:
        assert same_rows(result(self.MANY), FrozenRows(result(self.MANY)))

    def test_a_difference_in_the_last_row_or_the_length_is_seen(self) -> None:
        last = FrozenRows(result(self.MANY))
        changed: list[Any] = result(self.MANY)
        changed[-1] = (50000, "changed")
        assert not same_rows(changed, last)
        assert not same_rows(result(self.MANY)[:-1], last)
        assert not same_rows([], FrozenRows(result(TWO)))

    def test_a_frozen_result_thaws_into_a_new_list_with_its_names(self) -> None:
        rows = result(TWO)
        frozen = FrozenRows(rows)
        rows.clear()
        first, second = frozen.thaw(), frozen.thaw()
        assert first == [(1, "a"), (2, "b")]
        assert first is not second
        assert first[1].name == "b"

    def test_release_empties_a_result(self) -> None:
        rows = result(self.MANY)
        release(rows)
        assert rows == []


class TestDuplicateColumnNames:
    """``SELECT 1 AS a, 2 AS a``: every lookup by name finds the first such column, as
    SQLite's own name lookups and most drivers do."""

    def test_lookup_and_as_dict_both_take_the_first_column_of_a_name(self) -> None:
        row = result("SELECT 1 AS a, 2 AS a, 3 AS b")[0]
        assert row["a"] == 1
        assert row.a == 1
        assert row["A"] == 1
        assert row.as_dict() == {"a": 1, "b": 3}
        assert row.keys() == ("a", "a", "b")
        assert row == (1, 2, 3)

    async def test_duplicate_names_through_the_database(self, memdb: rxdb.Database) -> None:
        row = await memdb.fetch_one("SELECT 1 AS a, 2 AS a")
        assert row is not None
        assert row["a"] == 1
        assert row.as_dict() == {"a": 1}


def test_row_class_is_shared_by_results_with_the_same_names() -> None:
    assert type(result(TWO)[0]) is type(result(TWO)[1]) is row_class(("id", "name"))


@pytest.mark.parametrize("sql", ["SELECT 1 WHERE 0", "SELECT 1 AS a WHERE 0"])
def test_an_empty_result_is_an_empty_list(sql: str) -> None:
    rows = result(sql)
    assert rows == []
    assert not rows
    assert list(rows) == []
    assert repr(rows) == "[]"
