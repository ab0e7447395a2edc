"""Commits made behind rxdb's back: polling ``PRAGMA data_version`` on the writer.

Another program (the ``sqlite3`` shell, a plain ``sqlite3`` connection, another library) may
commit to the same file without telling anyone. ``PRAGMA data_version`` changes when any
*other* connection commits and never for the connection's own commits, so asked of the
writer it stays quiet for everything rxdb itself writes through this database. A change means
"someone else committed": every watch of the database re-runs (and re-reads its views, since
the schema may have changed too). Other rxdb databases on the same file announce their
commits on the bus as well, so their commits may also cause such a re-run: more runs, never
a missed change.

A poll is one ``PRAGMA`` on the writer (asked on the loop thread while the writer is idle,
about 10 µs), skipped while the writer is busy; at the default 50 ms, 20 a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

__all__ = ("ForeignWritePoller",)

LOG = logging.getLogger("rxdb.foreign")


class ForeignWritePoller:
    def __init__(
        self,
        read_version: Callable[[], int | None],
        on_change: Callable[[], None],
        interval: float,
    ) -> None:
        self._read_version = read_version
        self._on_change = on_change
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        last: int | None = None
        while True:
            try:
                version = self._read_version()
            except Exception:
                # The database is closing, or the file went away: polling resumes or stops
                # with it; a failed poll must not kill the loop.
                LOG.debug("data_version poll failed", exc_info=True)
                version = None
            if version is not None:
                if last is not None and version != last:
                    self._on_change()
                last = version
            await asyncio.sleep(self._interval)
