"""examples/textual_orders.py under Textual's own test pilot: its DataTable follows the watch
row by row (added, changed, removed in place) while something else writes."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from textual.widgets import DataTable

from tests.conftest import WAIT

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "textual_orders.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("textual_orders", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["textual_orders"] = module  # Textual looks its app's module up by name
    spec.loader.exec_module(module)
    return module


async def shows(app: object, condition: Callable[[], bool]) -> None:
    """Wait until the app has applied a diff after which ``condition`` holds."""
    changed: asyncio.Event = app.changed  # type: ignore[attr-defined]
    async with asyncio.timeout(WAIT):
        while not condition():
            changed.clear()
            await changed.wait()


def cells(table: DataTable[str]) -> dict[str, tuple[str, ...]]:
    """The table's rows by key, as the user sees them."""
    return {
        str(key.value): tuple(map(str, table.get_row(key)))
        for key in table.rows  # in the table's own order
    }


async def test_rows_are_added_updated_and_removed_in_place(
    example: ModuleType, tmp_path: Path
) -> None:
    app = example.OrdersApp(str(tmp_path / "orders.db"), pace=None)
    async with app.run_test() as pilot:
        table: DataTable[str] = app.query_one(DataTable)
        await shows(app, lambda: app.sub_title == "0 open")
        assert table.row_count == 0

        db = app.db
        await db.execute("INSERT INTO orders (item, amount) VALUES ('tea', 2.5), ('jam', 4.0)")
        await shows(app, lambda: table.row_count == 2)
        assert cells(table) == {"1": ("1", "tea", "2.50"), "2": ("2", "jam", "4.00")}
        first_row = table.rows  # the same row objects must survive an update: no rebuild
        kept = {key: first_row[key] for key in first_row}

        await db.execute("UPDATE orders SET amount = 3.0 WHERE id = 1")
        await shows(app, lambda: cells(table).get("1") == ("1", "tea", "3.00"))
        assert cells(table)["2"] == ("2", "jam", "4.00")
        assert all(table.rows[key] is row for key, row in kept.items())

        await db.execute("UPDATE orders SET status = 'paid' WHERE id = 2")
        await shows(app, lambda: "2" not in cells(table))
        assert cells(table) == {"1": ("1", "tea", "3.00")}
        assert app.sub_title == "1 open"

        await pilot.press("q")
    assert app.db.closed


async def test_its_writer_runs_to_the_end_and_the_table_matches_the_database(
    example: ModuleType, tmp_path: Path
) -> None:
    app = example.OrdersApp(str(tmp_path / "orders.db"), pace=0.001, writes=15)
    async with app.run_test():
        await app.workers.wait_for_complete()
    assert app.db.closed
    with sqlite3.connect(tmp_path / "orders.db") as check:
        expected = [
            (str(id_), item, f"{amount:.2f}")
            for id_, item, amount in check.execute(example.OPEN_ORDERS)
        ]
        assert check.execute("SELECT count(*) FROM orders").fetchone()[0] > 2
    check.close()
    assert app.return_value == expected
