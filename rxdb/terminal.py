"""``rxdb watch``: a query's results in a terminal, as a live table or as JSON lines.

The command only looks: a SQLite file is opened read-only (its journal mode is left alone,
a missing file is not created, and other programs' commits still refresh the watch through
the foreign-write poller). A PostgreSQL URL is opened as usual, because the capture triggers
rxdb installs there are how it hears psql, cron jobs and other programs commit.

rich draws the table and is an optional dependency (``pip install 'rxdb[cli]'``): it is
imported only when a table is drawn, so ``--json`` and the rest of rxdb work without it.
"""

from __future__ import annotations

import decimal
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from rxdb.database import open as open_database
from rxdb.encoding import to_json
from rxdb.engines.postgres.dsn import is_postgres_url
from rxdb.errors import OperationalError
from rxdb.rows import Row

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.text import Text

__all__ = (
    "LiveTable",
    "json_lines",
    "live_table",
    "parse_param",
    "table",
    "watch",
)

Show = Callable[[list[Row]], None]


def parse_param(text: str) -> Any:
    """A query parameter from the command line: a JSON number, ``true``, ``false`` or
    ``null`` is that value; anything else (``'"42"'`` included, quotes stripped) is text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool | str) or value is None else text


def table(rows: Sequence[Row], columns: Sequence[str], title: str, limit: int) -> Group:
    """A result as the query, a rich table of at most ``limit`` rows, and a line that says
    how many rows there are (and how many are not shown)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown = rows[:limit]
    count = f"{len(rows)} row{'' if len(rows) == 1 else 's'}"
    if len(shown) < len(rows):
        count += f", the first {len(shown)} shown"
    drawn = Table()
    for name in columns:
        drawn.add_column(name, overflow="fold")
    for row in shown:
        drawn.add_row(*map(_cell, row))
    return Group(Text(title, style="bold"), drawn, Text(count, style="dim"))


def _cell(value: object) -> Text:
    from rich.text import Text

    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return Text(str(value), justify="right")
    if isinstance(value, bytes):
        return Text(f"<{len(value)} bytes>", style="dim")
    return Text(str(value))


def _check_target(target: str) -> None:
    plain_path = not (target == ":memory:" or target.startswith("file:") or is_postgres_url(target))
    if plain_path and not os.path.exists(target):
        raise OperationalError(f"no database file at {target!r} (rxdb watch does not create one)")


async def watch(
    target: str,
    sql: str,
    params: Sequence[Any],
    show: Show,
    throttle: float | None = None,
) -> None:
    """Watch ``sql`` on the database at ``target`` and hand every new result to ``show``,
    until cancelled (or the query fails: its error is raised); with ``throttle``, at most
    one result per that many seconds after the first (the newest, and the last always).

    :raises rxdb.OperationalError: for a file path where there is no file.
    :raises rxdb.RxdbError: for a database that cannot be opened or a query that fails.
    """
    _check_target(target)
    read_only = not is_postgres_url(target) and target != ":memory:"
    async with open_database(target, read_only=read_only) as db:
        async for rows in db.watch(sql, tuple(params), throttle=throttle):
            show(rows)


def json_lines(out: TextIO) -> Show:
    """Write each result to ``out`` as one line of JSON, flushed at once (for pipes): a list of
    ``{column: value}`` objects, encoded as :mod:`rxdb.web` sends rows to browsers."""

    def show(rows: list[Row]) -> None:
        out.write(to_json(rows) + "\n")
        out.flush()

    return show


class LiveTable:
    """Draws each result as a table: redrawn in place on a terminal, one table after another
    elsewhere (a file, a pipe), where redrawing in place would leave only the last."""

    def __init__(self, console: Console, title: str) -> None:
        from rich.live import Live

        self.console, self.title = console, title
        self.columns: tuple[str, ...] = ()
        self.live = Live(console=console, auto_refresh=False) if console.is_terminal else None

    def __enter__(self) -> Show:
        if self.live is not None:
            self.live.start()
        return self.show

    def __exit__(self, *exc_info: object) -> None:
        if self.live is not None:
            self.live.stop()

    def show(self, rows: list[Row]) -> None:
        if rows:
            self.columns = rows[0].keys()
        limit = max(1, self.console.size.height - 8) if self.live is not None else len(rows)
        drawn = table(rows, self.columns, self.title, limit)
        if self.live is not None:
            self.live.update(drawn, refresh=True)
        else:
            self.console.print(drawn)


def live_table(out: TextIO, title: str) -> LiveTable:
    """A :class:`LiveTable` on ``out``.

    :raises ModuleNotFoundError: if rich is not installed.
    """
    from rich.console import Console

    return LiveTable(Console(file=out), title)
