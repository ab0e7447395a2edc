"""Read sessions: what ``async with db.read() as r`` hands out."""

from __future__ import annotations

import sqlite3

from rxdb._types import Params
from rxdb.arguments import check_sql
from rxdb.engines.sqlite.connections import ReaderConnection
from rxdb.engines.sqlite.workers import Worker
from rxdb.errors import ClosedError, ReadOnlyError, from_sqlite
from rxdb.rows import ExecuteResult, Rows
from rxdb.streams import AsyncFetches

__all__ = ("ReadSession",)

_READ_ONLY_HINT = "writes are not allowed inside db.read(); write inside db.transaction()"


class ReadSession(AsyncFetches):
    """Statements on one connection reserved for one read block.

    Inside ``db.read()`` every statement sees the snapshot taken when the block began;
    inside ``db.unsafe_read()`` each statement sees the latest commit. Valid only inside its
    block; afterwards every call raises :class:`rxdb.ClosedError`.
    """

    def __init__(self, worker: Worker[ReaderConnection], *, isolated: bool) -> None:
        self._worker = worker
        self.isolated = isolated
        self._open = True

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        check_sql(sql)
        worker = self.worker
        try:
            return await worker.call(worker.raw.fetch, sql, params)
        except sqlite3.Error as error:
            raise _translate(error, sql) from error

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Run one statement that reads (a query, a read-only PRAGMA)."""
        return ExecuteResult(-1, None, await self._fetch_rows(sql, params))

    @property
    def worker(self) -> Worker[ReaderConnection]:
        if not self._open:
            raise ClosedError("this read session ended with its 'async with db.read()' block")
        return self._worker

    def interrupt(self) -> None:
        """Abort the statement this session runs now, on its own connection (a server stops
        one client's read block this way). Safe from any thread; nothing happens once the
        block has ended."""
        if self._open:
            self._worker.interrupt()

    def end(self) -> None:
        self._open = False


def _translate(error: sqlite3.Error, sql: str) -> Exception:
    translated = from_sqlite(error, sql)
    if isinstance(translated, ReadOnlyError):
        return ReadOnlyError(
            f"{_READ_ONLY_HINT} ({error})",
            sql=sql,
            sqlite_errorcode=translated.sqlite_errorcode,
            sqlite_errorname=translated.sqlite_errorname,
        )
    return translated


def read_only_violation(sql: str) -> ReadOnlyError:
    """The error for a write attempted through the database while a read block is open."""
    return ReadOnlyError(_READ_ONLY_HINT, sql=sql)
