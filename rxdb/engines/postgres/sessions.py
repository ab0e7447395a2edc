"""Read sessions: what ``async with db.read() as r`` hands out on PostgreSQL.

``read()`` runs on a reader inside ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY``, its
snapshot taken when the block begins; ``unsafe_read()`` runs each statement on its own (each
sees the latest commit). A failed statement would fail the whole read transaction, so the
block keeps a savepoint taken right after its snapshot and rolls back to it: the block stays
usable, on the same snapshot, as it does on SQLite.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

from rxdb._types import Params
from rxdb.arguments import check_sql
from rxdb.engines.postgres.connections import Connection, Running, control, run
from rxdb.engines.postgres.failures import ended
from rxdb.engines.postgres.params import bind
from rxdb.errors import ClosedError, DatabaseError, ReadOnlyError
from rxdb.rows import ExecuteResult, Rows
from rxdb.streams import AsyncFetches

__all__ = ("BEGIN_SNAPSHOT", "END_SNAPSHOT", "ReadSession", "read_only_violation")

_SAVEPOINT = "rxdb_read"
BEGIN_SNAPSHOT = (
    # The SELECT takes the snapshot now (PostgreSQL takes it at the first statement).
    f"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1; SAVEPOINT {_SAVEPOINT}"
)
END_SNAPSHOT = "ROLLBACK"  # nothing to commit: the transaction only read

_READ_ONLY_HINT = "writes are not allowed inside db.read(); write inside db.transaction()"


class ReadSession(AsyncFetches):
    """Statements on one reader reserved for one read block; afterwards every call raises
    :class:`rxdb.ClosedError`."""

    def __init__(self, conn: Connection, *, isolated: bool, running: Running) -> None:
        self._conn = conn
        self.isolated = isolated
        self._running = running
        self._open = True

    async def _fetch_rows(self, sql: str, params: Params) -> Rows:
        check_sql(sql)
        conn = self.conn
        text, args = bind(sql, params)
        try:
            rows, _ = await run(conn, text, args, self._running, source=sql)
        except DatabaseError as error:
            if self.isolated and error.sqlstate is not None and not ended(error):
                await control(conn, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            if isinstance(error, ReadOnlyError):
                raise ReadOnlyError(
                    f"{_READ_ONLY_HINT} ({error.args[0]})", sql=sql, sqlstate=error.sqlstate
                ) from error
            raise
        return rows

    async def execute(self, sql: str, params: Params = ()) -> ExecuteResult:
        """Run one statement that reads."""
        return ExecuteResult(-1, None, await self._fetch_rows(sql, params))

    @property
    def conn(self) -> Connection:
        if not self._open:
            raise ClosedError("this read session ended with its 'async with db.read()' block")
        if self._conn.is_closed():
            raise ClosedError(
                "this read session's connection was closed (the database was closed under the "
                "read block, or the server ended the session)"
            )
        return self._conn

    def end(self) -> None:
        self._open = False


def read_only_violation(sql: str) -> ReadOnlyError:
    """The error for a write attempted through the database while a read block is open."""
    return ReadOnlyError(_READ_ONLY_HINT, sql=sql)
