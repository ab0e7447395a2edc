"""A terminal app whose table follows a query: rows appear, change and go away in place.

A Textual ``DataTable`` shows the open orders. It is fed by ``stream.diffs(key="id")``: each
new result arrives as what it inserted, updated and removed, so the app adds, edits and
removes just those rows (the cursor and the scroll position stay put) instead of rebuilding
the table. A writer task places orders, changes their amounts and pays them (a paid order
leaves the query).

Run it in a terminal: ``python examples/textual_orders.py`` (``q`` quits; needs
``pip install textual``). Without a terminal (piped, or in the tests) it runs headless for a
few writes and prints the rows the table ends with. tests/test_textual_example.py drives it
with Textual's pilot.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
from typing import ClassVar

from reactivex.abc import DisposableBase
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.widgets import DataTable, Footer, Header

import rxdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    item TEXT NOT NULL,
    amount REAL NOT NULL,
    status TEXT NOT NULL DEFAULT 'open'
);
"""
OPEN_ORDERS = "SELECT id, item, amount FROM orders WHERE status = 'open' ORDER BY id"
COLUMNS = ("id", "item", "amount")
ITEMS = ("tea", "coffee", "cake", "soup", "bread", "jam")


class OrdersApp(App[list[tuple[str, ...]]]):
    """The open orders of the database at ``path``, live.

    :param pace: seconds between the writer's commits; ``None``: no writer (someone else
        writes, as the tests do).
    :param writes: how many commits the writer makes before the app exits with the rows it
        shows; ``None``: it writes until the user quits.
    """

    TITLE = "open orders"
    BINDINGS: ClassVar[list[BindingType]] = [("q", "quit", "Quit")]

    def __init__(self, path: str, pace: float | None = 0.7, writes: int | None = None) -> None:
        super().__init__()
        self.pace, self.writes = pace, writes
        self.db = rxdb.open(path)
        self.shown: list[rxdb.Row] = []
        self.changed = asyncio.Event()  # set after each diff is applied: tests wait on it
        self.subscription: DisposableBase | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row")
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        await self.db.connect()
        await self.db.execute_script(SCHEMA)
        # Subscribed, not `async for`: every diff must be applied, none skipped for a newer.
        diffs = self.db.watch(OPEN_ORDERS).diffs(key="id")
        self.subscription = diffs.subscribe(self.apply, self.failed)
        if self.pace is not None:
            self.run_worker(self.write(self.pace), exit_on_error=True)

    def apply(self, diff: rxdb.RowDiff[rxdb.Row]) -> None:
        """Change the rows that changed, and only those (runs on the app's loop)."""
        table = self.query_one(DataTable)
        for row in diff.removed:
            table.remove_row(str(row["id"]))
        for _, row in diff.updated:
            for column in COLUMNS:
                table.update_cell(str(row["id"]), column, cell(row[column]))
        for row in diff.inserted:  # ids only grow: a new order belongs at the end
            table.add_row(*map(cell, row), key=str(row["id"]))
        self.shown = list(diff.rows)
        self.sub_title = f"{len(diff.rows)} open"
        self.changed.set()

    def failed(self, error: Exception) -> None:
        self.exit(return_code=1, message=f"the watch failed: {error}")

    async def write(self, pace: float) -> None:
        chance = random.Random(13)
        done = 0
        while self.writes is None or done < self.writes:
            await asyncio.sleep(pace)  # the pace a person can follow
            await self.db.execute(*next_write(chance, [row["id"] for row in self.shown]))
            done += 1
        # Finished: exit once the table shows what the database holds.
        final = await self.db.fetch_all(OPEN_ORDERS)
        while self.shown != final:
            self.changed.clear()
            await self.changed.wait()
        self.exit(self.table_rows())

    def table_rows(self) -> list[tuple[str, ...]]:
        """The cells the table shows, row by row."""
        table = self.query_one(DataTable)
        return [tuple(map(str, table.get_row_at(index))) for index in range(table.row_count)]

    async def on_unmount(self) -> None:
        if self.subscription is not None:
            self.subscription.dispose()
        await self.db.close()


def next_write(chance: random.Random, open_ids: list[int]) -> tuple[str, tuple[object, ...]]:
    """A statement that pays the oldest open order, changes an amount or places an order."""
    step, amount = chance.random(), chance.randint(100, 2000) / 100
    if len(open_ids) > 2 and step < 0.3:
        return "UPDATE orders SET status = 'paid' WHERE id = ?", (open_ids[0],)
    if open_ids and step < 0.6:
        return "UPDATE orders SET amount = ? WHERE id = ?", (amount, chance.choice(open_ids))
    return "INSERT INTO orders (item, amount) VALUES (?, ?)", (chance.choice(ITEMS), amount)


def cell(value: object) -> str:
    """A value as the table shows it (amounts with two decimals)."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "orders.db")
        if sys.stdout.isatty():
            OrdersApp(path).run()
            return
        rows = OrdersApp(path, pace=0.05, writes=12).run(headless=True)
        print(f"{len(rows or [])} open orders after 12 writes:")
        for row in rows or []:
            print("  ".join(row))


if __name__ == "__main__":
    main()
