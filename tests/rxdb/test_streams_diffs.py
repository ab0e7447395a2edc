"""rxdb.streams.diffs: what a list widget needs to know about each new result."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.rows import make_rows
from rxdb.streams.diffs import Differ, RowDiff, key_function
from tests.conftest import WAIT, Recorder, subscribed


def rows(*values: tuple[Any, ...]) -> list[rxdb.Row]:
    return make_rows((("id",), ("name",)), values)


def test_the_first_diff_lists_every_row_as_inserted() -> None:
    diff = Differ[rxdb.Row]("id")(rows((1, "a"), (2, "b")))
    assert diff.inserted == ((1, "a"), (2, "b"))
    assert (diff.updated, diff.removed, diff.moved) == ((), (), ())
    assert diff.rows == [(1, "a"), (2, "b")]
    assert diff.changed


def test_the_first_diff_of_an_empty_result_is_empty_but_arrives() -> None:
    diff = Differ[rxdb.Row]("id")(rows())
    assert diff == RowDiff(rows())
    assert not diff.changed


def test_inserted_updated_and_removed_rows_are_matched_by_key() -> None:
    differ = Differ[rxdb.Row]("id")
    differ(rows((1, "a"), (2, "b"), (3, "c")))
    diff = differ(rows((1, "a"), (3, "C"), (4, "d")))
    assert diff.inserted == ((4, "d"),)
    assert diff.updated == (((3, "c"), (3, "C")),)
    assert diff.removed == ((2, "b"),)
    assert diff.moved == ()


def test_an_equal_result_changes_nothing() -> None:
    differ = Differ[rxdb.Row]("id")
    differ(rows((1, "a")))
    assert not differ(rows((1, "a"))).changed


def test_moved_is_the_fewest_kept_rows_out_of_their_old_order() -> None:
    differ = Differ[rxdb.Row]("id")
    differ(rows((1, "a"), (2, "b"), (3, "c"), (4, "d")))
    # 4 went to the front: 1, 2, 3 kept their order; only 4 moved.
    assert differ(rows((4, "d"), (1, "a"), (2, "b"), (3, "c"))).moved == ((4, "d"),)
    # Swapping two neighbours moves one of them.
    assert len(differ(rows((1, "a"), (4, "d"), (2, "b"), (3, "c"))).moved) == 1
    # Reversed: all but one moved.
    assert len(differ(rows((3, "c"), (2, "b"), (4, "d"), (1, "a"))).moved) == 3


def test_inserting_or_removing_rows_moves_none() -> None:
    differ = Differ[rxdb.Row]("id")
    differ(rows((1, "a"), (3, "c")))
    diff = differ(rows((0, "z"), (1, "a"), (2, "b")))
    assert diff.moved == ()
    assert diff.inserted == ((0, "z"), (2, "b"))
    assert diff.removed == ((3, "c"),)


def test_a_key_function_and_rows_of_other_types() -> None:
    @dataclass(frozen=True)
    class Item:
        sku: str
        qty: int

    differ = Differ[Item](lambda item: item.sku)
    differ([Item("a", 1)])
    assert differ([Item("a", 2)]).updated == ((Item("a", 1), Item("a", 2)),)
    by_name = Differ[Item]("sku")
    assert by_name([Item("a", 1)]).inserted == (Item("a", 1),)
    as_dicts = Differ[dict[str, int]]("id")
    as_dicts([{"id": 1, "x": 1}])
    assert as_dicts([{"id": 1, "x": 2}]).updated == (({"id": 1, "x": 1}, {"id": 1, "x": 2}),)


def test_a_duplicated_key_is_named() -> None:
    with pytest.raises(rxdb.DuplicateKeyError, match=r"'id' is not unique: 1 is the key of"):
        Differ[rxdb.Row]("id")(rows((1, "a"), (1, "b")))
    assert issubclass(rxdb.DuplicateKeyError, rxdb.ProgrammingError)


def test_a_key_column_no_row_has_is_named() -> None:
    with pytest.raises(rxdb.ProgrammingError, match=r"'sku' is not a column of the rows"):
        Differ[rxdb.Row]("sku")(rows((1, "a")))


@pytest.mark.parametrize("key", ["", 5, None])
def test_a_key_that_is_neither_a_name_nor_a_function_is_refused(key: Any) -> None:
    with pytest.raises(rxdb.ProgrammingError, match="diffs key"):
        key_function(key)


def test_a_key_function_giving_an_unhashable_key_is_named() -> None:
    def unhashable(row: Any) -> Any:  # a key function that breaks its type
        return list(row)

    differ = Differ[rxdb.Row](unhashable)
    with pytest.raises(rxdb.ProgrammingError, match="must be hashable"):
        differ(rows((1, "a")))


class TestIterationLosesNoChange:
    """``async for``/``for`` hand the body the newest state; a diff must still carry every
    change since the one the body saw last (a body busy for three commits sees all three)."""

    async def test_async_for_folds_skipped_results_into_the_next_diff(
        self, memdb: rxdb.Database
    ) -> None:
        await memdb.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        query = "SELECT id FROM t ORDER BY id"
        diffs = aiter(memdb.watch(query).diffs("id"))
        assert (await anext(diffs)).inserted == ()
        seen: Recorder[Any] = Recorder()
        with subscribed(memdb.watch(query), seen):
            for row in (1, 2, 3):
                await memdb.execute("INSERT INTO t VALUES (?)", (row,))
                await seen.wait_value([(row,) for row in range(1, row + 1)])
            await memdb.execute("DELETE FROM t WHERE id = 2")
            await seen.wait_value([(1,), (3,)])
        diff = await anext(diffs)
        assert diff.inserted == ((1,), (3,))
        assert (diff.removed, diff.updated) == ((), ())
        assert diff.rows == [(1,), (3,)]
        await diffs.aclose()

    def test_for_folds_skipped_results_into_the_next_diff(self, tmp_path: Path) -> None:
        with rxdb.open_sync(tmp_path / "diffs.db") as db:
            db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
            query = "SELECT id FROM t ORDER BY id"
            diffs = iter(db.watch(query).diffs("id"))
            assert next(diffs).inserted == ()
            latest: list[Any] = []
            arrived = threading.Condition()

            def on_next(rows: Any) -> None:
                with arrived:
                    latest[:] = [rows]
                    arrived.notify_all()

            subscription = db.watch(query).subscribe(on_next)
            try:
                for row in (1, 2, 3):
                    db.execute("INSERT INTO t VALUES (?)", (row,))
                with arrived:
                    assert arrived.wait_for(lambda: latest == [[(1,), (2,), (3,)]], WAIT)
            finally:
                subscription.dispose()
            diff = next(diffs)
            assert diff.inserted == ((1,), (2,), (3,))
            diffs.close()
