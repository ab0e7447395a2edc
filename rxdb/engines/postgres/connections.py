"""One PostgreSQL connection as the engine uses it: opened with rxdb's settings, running one
statement at a time, and interruptible from any thread.

asyncpg ships no type information; :class:`Connection` names the part of its connection the
engine uses, so that everything above is checked. :func:`run` uses asyncpg's
``Connection._execute`` (its statement cache and its retry of a statement whose cached plan
went stale, plus the command status that the public ``fetch`` drops): a private method, which
is why the extra pins asyncpg below its next minor version.

A statement runs as a task of its own, registered in :class:`Running`, so that
:meth:`Running.interrupt` can cancel it without cancelling the caller: asyncpg then asks the
server to cancel it, and the caller gets :class:`rxdb.InterruptError`.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar, cast

import asyncpg

from rxdb.engines.postgres.dsn import Dsn
from rxdb.engines.postgres.failures import DRIVER_ERRORS, ended, translate
from rxdb.errors import DatabaseError, InterruptError, OperationalError, ProgrammingError
from rxdb.rows import RowList, row_class

__all__ = (
    "Connection",
    "Running",
    "changed_rows",
    "connect",
    "control",
    "never_sent",
    "run",
    "run_script",
)

T = TypeVar("T")
_OPENING_ERRORS: tuple[type[Exception], ...] = (*DRIVER_ERRORS, TimeoutError)

_CHANGES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


class Connection(Protocol):
    """The part of ``asyncpg.Connection`` the engine uses."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def _execute(
        self,
        query: str,
        args: Sequence[Any],
        limit: int,
        timeout: float | None,  # noqa: ASYNC109 (asyncpg's signature)
        *,
        return_status: bool = False,
    ) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    def is_in_transaction(self) -> bool: ...

    def is_closed(self) -> bool: ...

    async def close(self, *, timeout: float | None = None) -> None: ...  # noqa: ASYNC109

    def terminate(self) -> None: ...


async def connect(dsn: Dsn, settings: Mapping[str, str]) -> Connection:
    """A new connection to ``dsn``'s database with ``settings`` (server settings the URL does
    not set itself).

    :raises rxdb.OperationalError: naming the server and database (never the password) if
        it cannot be opened, with the SQLSTATE when the server refused it.
    """
    wanted = {name: value for name, value in settings.items() if name not in dsn.settings}
    try:
        return cast(Connection, await asyncpg.connect(dsn.url, server_settings=wanted))
    except _OPENING_ERRORS as error:
        raise OperationalError(
            f"cannot connect to PostgreSQL at {dsn.shown}: {error or type(error).__name__}",
            sqlstate=getattr(error, "sqlstate", None),
        ) from error


class Running:
    """The statements running now, on every connection of one engine."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Belong to ``loop`` (the engine's), which runs every statement."""
        self._loop = loop
        self._thread = threading.get_ident()

    def add(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)

    def discard(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    def interrupt(self) -> None:
        """Cancel every statement running now. Safe from any thread: on another one the
        cancelling is handed to the engine's loop (a closed loop has nothing to cancel)."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._cancel()
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nothing runs
            loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        for task in self._tasks:
            task.cancel()


async def run(
    conn: Connection, sql: str, args: Sequence[Any], running: Running, *, source: str
) -> tuple[RowList, str]:
    """Run one statement (``sql``, placeholders already ``$n``; ``source``: as the user
    wrote it, for errors): its rows and its command status (``"INSERT 0 1"``).

    :raises rxdb.InterruptError: if :meth:`Running.interrupt` cancelled it.
    :raises rxdb.DatabaseError: (a subclass, with the SQLSTATE) if the server refused it.
    """
    records, status, _ = await _interruptible(
        conn, conn._execute(sql, args, 0, None, return_status=True), running, source
    )
    if not records:
        return RowList(), status.decode()
    names = tuple(records[0].keys())
    return RowList(row_class(names), map(tuple, records)), status.decode()


async def run_script(conn: Connection, script: str, running: Running) -> None:
    """Run several statements (the simple query protocol: no parameters, every statement
    in one implicit transaction unless the script holds its own BEGIN and COMMIT)."""
    await _interruptible(conn, conn.execute(script), running, script)


async def _interruptible(
    conn: Connection, work: Coroutine[Any, Any, T], running: Running, source: str
) -> T:
    task = asyncio.get_running_loop().create_task(work)
    running.add(task)
    try:
        return await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if not task.cancelled() or (current is not None and current.cancelling()):
            raise  # the caller itself is being cancelled
        raise InterruptError(
            "the statement was interrupted", sql=source, sqlstate="57014"
        ) from None
    except DRIVER_ERRORS as error:
        raise _closed_if_ended(conn, translate(error, source)) from error
    except UnicodeEncodeError as error:  # asyncpg encodes before it sends: nothing was sent
        raise ProgrammingError(
            f"{error}: PostgreSQL text is UTF-8, which a str with lone surrogates is not; "
            "pass valid text, or bytes for a bytea",
            sql=source,
        ) from error
    finally:
        running.discard(task)


async def control(conn: Connection, sql: str) -> None:
    """Run one of rxdb's own statements (transaction control), never interrupted."""
    try:
        await conn.execute(sql)
    except DRIVER_ERRORS as error:
        raise _closed_if_ended(conn, translate(error, sql)) from error


def _closed_if_ended(conn: Connection, error: DatabaseError) -> DatabaseError:
    """``error``, having closed ``conn`` if it says the connection is gone: whatever state
    asyncpg left it in, the next statement gets a new one rather than this one."""
    if ended(error) and not conn.is_closed():
        conn.terminate()
    return error


def never_sent(error: BaseException) -> bool:
    """Whether ``error`` is asyncpg refusing a statement before sending it, its connection
    no longer idle: it has read the server's goodbye (a terminated backend, a shutdown) but
    not yet the end of the connection. Work that only reads may run again on a new one."""
    return isinstance(error, DatabaseError) and isinstance(
        error.__cause__, asyncpg.exceptions.InternalClientError
    )


def changed_rows(status: str) -> int:
    """The rows an INSERT, UPDATE, DELETE or MERGE changed, from its command status; -1 for
    any other statement (as SQLite reports it)."""
    verb, _, rest = status.partition(" ")
    if verb not in _CHANGES:
        return -1
    return int(rest.rpartition(" ")[2])
