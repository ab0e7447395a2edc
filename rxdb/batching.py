"""Watch re-runs that fall due together run together, paced under load.

A commit that touches a table many watches read kicks all of them in the same loop iteration.
Run one by one, each run would cost a task, a thread hop and a loop wake-up of its own. Queued
here instead, the runs that are due together go to the readers as one batch (one hop per
reader used). When commits arrived while a batch ran, the next batch waits until ``duty``
times as long as that batch took has passed, so under a write storm watches take at most
about ``1 / (1 + duty)`` of the loop's time and writers keep the rest; a run that waits
meanwhile has nothing queued behind it (each watch has at most one run due), and the last
commit of a burst is still seen, at most that pause later. A commit after a quiet moment is
run at once.

Knows nothing of SQLite: it is handed a function that runs a list of queries and returns, for
each, its rows or its error.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Sequence

from rxdb._types import Params
from rxdb.rows import Row

__all__ = ("Done", "FetchMany", "RunScheduler")

LOG = logging.getLogger("rxdb.watch")

Rows = list[Row]
Done = Callable[[Rows | Exception], None]
FetchMany = Callable[[Sequence[tuple[str, Params]]], Awaitable[Sequence[Rows | Exception]]]


class RunScheduler:
    def __init__(self, fetch_many: FetchMany, *, parallelism: int, duty: float = 4.0) -> None:
        self._fetch_many = fetch_many
        self._parallelism = max(1, parallelism)
        self._duty = duty
        self._queue: list[tuple[str, Params, Done]] = []
        self._drain: asyncio.Task[None] | None = None
        self._ready_at = 0.0

    @property
    def busy(self) -> asyncio.Task[None] | None:
        """The task running batches now, if any (for tests and diagnostics)."""
        return self._drain

    def submit(self, sql: str, params: Params, done: Done) -> None:
        """Run one query with whatever else is due; ``done(rows or error)`` on the loop."""
        self._queue.append((sql, params, done))
        if self._drain is None:
            # A fresh context: a batch must not run inside whoever kicked it first.
            self._drain = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )

    async def _run(self) -> None:
        try:
            while self._queue:
                if self._ready_at:
                    pause = self._ready_at - time.monotonic()
                    if pause > 0:
                        await asyncio.sleep(pause)
                batch, self._queue = self._queue, []
                started = time.monotonic()
                queries = list(map(_QUERY, batch))
                results: Sequence[Rows | Exception]
                if self._parallelism == 1 or len(queries) == 1:
                    # Awaited here, not in a coroutine of its own: this is the path of every
                    # run kicked after a quiet moment.
                    try:
                        results = await self._fetch_many(queries)
                    except Exception as error:  # e.g. the database closed: all fail alike
                        results = [error] * len(queries)
                else:
                    results = await self._fetch_split(queries)
                for (_, _, done), result in zip(batch, results, strict=True):
                    try:
                        done(result)
                    except Exception:
                        LOG.exception("a watch failed to take its result")
                # Work that arrived while this batch ran means the database is busy: pause
                # before the next batch. A run kicked after an idle moment starts at once.
                if self._queue:
                    ended = time.monotonic()
                    self._ready_at = ended + self._duty * (ended - started)
                else:
                    self._ready_at = 0.0
        finally:
            self._drain = None

    async def _fetch_split(self, queries: list[tuple[str, Params]]) -> list[Rows | Exception]:
        """Run a batch as up to ``parallelism`` calls at once (one per reader)."""
        chunks = min(self._parallelism, len(queries))
        size = -(-len(queries) // chunks)
        parts = [queries[i : i + size] for i in range(0, len(queries), size)]
        outcomes = await asyncio.gather(
            *(self._fetch_many(part) for part in parts), return_exceptions=True
        )
        results: list[Rows | Exception] = []
        for part, outcome in zip(parts, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                results.extend([outcome] * len(part))  # e.g. the database closed
            else:
                results.extend(outcome)
        return results


_QUERY: Callable[[tuple[str, Params, Done]], tuple[str, Params]] = operator.itemgetter(0, 1)
