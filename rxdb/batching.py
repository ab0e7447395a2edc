"""Watch re-runs that fall due together run together, in one hop.

A commit that touches a table many watches read kicks all of them in the same loop iteration.
Run one by one, each run would cost a task, a thread hop and a loop wake-up of its own, and a
write storm would spend the writer's time waking readers. Queued here instead, the runs that
are due together go to a reader as one batch (one hop); a later kick starts another batch,
up to one per reader connection in flight.

Knows nothing of SQLite: it is handed a function that runs a list of queries and returns, for
each, its rows or its error.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rxdb._types import Params
from rxdb.rows import Row

__all__ = ("FetchMany", "RunBatcher")

Rows = list[Row]
FetchMany = Callable[[Sequence[tuple[str, Params]]], Awaitable[Sequence[Rows | Exception]]]


class RunBatcher:
    def __init__(self, fetch_many: FetchMany, *, max_in_flight: int) -> None:
        self._fetch_many = fetch_many
        self._max_in_flight = max(1, max_in_flight)
        self._queue: list[tuple[str, Params, asyncio.Future[Rows]]] = []
        self._draining = 0  # counted by the drains themselves: a finished task's done
        # callbacks run later, and a run queued meanwhile must still find a drain to take it
        self._tasks: set[asyncio.Task[None]] = set()

    async def fetch(self, sql: str, params: Params) -> Rows:
        """Run one query with whatever else is due now; return its rows or raise its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Rows] = loop.create_future()
        self._queue.append((sql, params, future))
        if len(self._queue) == 1 and self._draining < self._max_in_flight:
            self._draining += 1
            # A fresh context: the batch must not run inside whoever kicked it first.
            task = loop.create_task(self._drain(), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                due = [entry for entry in batch if not entry[2].done()]  # skip cancelled runs
                if due:
                    await self._run(due)
        finally:
            self._draining -= 1

    async def _run(self, due: list[tuple[str, Params, asyncio.Future[Rows]]]) -> None:
        results: Sequence[Rows | BaseException]
        try:
            results = await self._fetch_many([(sql, params) for sql, params, _ in due])
        except BaseException as error:  # e.g. the database closed: every run fails alike
            results = [error] * len(due)
            if not isinstance(error, Exception):
                _settle_all(due, results)
                raise
        _settle_all(due, results)


def _settle_all(
    due: list[tuple[str, Params, asyncio.Future[Rows]]], results: Sequence[Any]
) -> None:
    for (_, _, future), result in zip(due, results, strict=True):
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
