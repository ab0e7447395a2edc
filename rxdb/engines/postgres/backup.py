"""``db.backup(path)`` on PostgreSQL: ``pg_dump`` of one snapshot into a file.

A reader opens a REPEATABLE READ transaction and exports its snapshot
(``pg_export_snapshot()``); ``pg_dump --snapshot`` then dumps exactly what that transaction
sees, while writes go on. The file is a plain SQL script (restore it with ``psql -f``), not a
database file: PostgreSQL has no file to copy, and ``pg_dump`` is the tool that makes a
consistent copy. ``pg_dump`` must be on ``PATH`` (a major version at least the server's).

The password, if the URL has one, reaches ``pg_dump`` through its environment
(``PGPASSWORD``), never its command line, which other users of the machine can read.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import os
import shutil

from rxdb._types import BackupProgress, ProgressCallback
from rxdb.engines.postgres.connections import Connection, control
from rxdb.engines.postgres.dsn import Dsn
from rxdb.engines.postgres.failures import DRIVER_ERRORS, translate
from rxdb.errors import OperationalError

__all__ = ("dump",)

_EXPORT = "SELECT pg_export_snapshot()"
_LIBPQ_SETTINGS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}
"""URL parameters that are connection settings for pg_dump too (libpq reads them from
these variables)."""


async def dump(conn: Connection, dsn: Dsn, target: str, progress: ProgressCallback | None) -> None:
    """Dump the database, as of one snapshot taken on ``conn`` (a reader), into ``target``.

    ``progress`` is called (on a worker thread) before the dump with ``remaining=1`` and after
    it with ``remaining=0``, ``total=1``: ``pg_dump`` reports no steps. Raising from it
    aborts the backup.

    :raises rxdb.OperationalError: if ``pg_dump`` is missing or fails (its message says why).
    """
    program = shutil.which("pg_dump")
    if program is None:
        raise OperationalError(
            "db.backup() on PostgreSQL runs pg_dump, which is not on PATH: install the "
            "PostgreSQL client programs"
        )
    await control(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        try:
            snapshot = await conn.fetchval(_EXPORT)
        except DRIVER_ERRORS as error:
            raise translate(error, _EXPORT, "backup failed") from error
        if progress is not None:
            await asyncio.to_thread(progress, BackupProgress(remaining=1, total=1))
        await _run_pg_dump(program, dsn, snapshot, target)
        if progress is not None:
            await asyncio.to_thread(progress, BackupProgress(remaining=0, total=1))
    finally:
        if not conn.is_closed():
            await control(conn, "ROLLBACK")


async def _run_pg_dump(program: str, dsn: Dsn, snapshot: str, target: str) -> None:
    env = {
        **os.environ,
        "PGHOST": dsn.host,
        "PGPORT": str(dsn.port),
        "PGUSER": dsn.user,
        "PGDATABASE": dsn.database,
    }
    if dsn.password is not None:
        env["PGPASSWORD"] = dsn.password
    for name, variable in _LIBPQ_SETTINGS.items():
        if name in dsn.settings:
            env[variable] = dsn.settings[name]
    process = await asyncio.create_subprocess_exec(
        program,
        "--no-password",
        f"--snapshot={snapshot}",
        f"--file={target}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        _, errors = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        raise OperationalError(
            f"backup failed: pg_dump exited with {process.returncode}: "
            f"{errors.decode(errors='replace').strip()}"
        )
