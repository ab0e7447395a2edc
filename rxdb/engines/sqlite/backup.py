"""Online backup: a consistent copy while writers carry on.

The copy is taken from one read snapshot (a reader inside an open read transaction, in WAL),
so SQLite never restarts it however much is written meanwhile.
"""

from __future__ import annotations

import sqlite3

from rxdb._types import BackupProgress as BackupProgress
from rxdb._types import ProgressCallback as ProgressCallback
from rxdb.engines.sqlite.workers import Worker

__all__ = ("BackupProgress", "ProgressCallback", "copy_database")


async def copy_database(
    source: Worker[sqlite3.Connection],
    target: sqlite3.Connection,
    *,
    pages_per_step: int,
    progress: ProgressCallback | None,
) -> None:
    """Copy ``source`` into ``target`` on the source's worker thread (where ``progress`` is
    called, between steps)."""

    def report(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(BackupProgress(remaining, total))

    def copy(conn: sqlite3.Connection) -> None:
        conn.backup(target, pages=pages_per_step, progress=report, sleep=0)

    await source.call(copy, source.raw)
