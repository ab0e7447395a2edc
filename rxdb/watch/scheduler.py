"""Watch runs go to the readers as soon as they are due; runs due together share one hop.

A commit that touches a table many watches read kicks all of them in the same loop iteration.
Run one by one, each run would cost a task, a thread hop and a loop wake-up of its own. Queued
here instead, the runs that fall due together go to the readers as one batch, split over the
readers that are free (one hop per reader used). A batch never waits for another: runs that
fall due while others are in flight go out at once, on a reader of their own where one is
free, so a slow query holds up nobody but the runs in its own hop.

Pacing applies to re-runs only. A re-run wanted because commits arrived while the previous
run was in flight (:meth:`Run.again`) waits until ``duty`` times as long as that run's batch
took has passed since the batch ended, so under a write storm the watches' runs take at most
``1 / (1 + duty)`` of the time and writers keep the rest; the last commit of a storm is still
seen, at most that pause later. The re-runs of one batch wait for all its hops and go out
together again (hops paced one by one would drift apart and, together, keep the readers busy
all the time). A run kicked after a quiet moment starts at once, and no run ever waits for a
pause earned by another batch.

A run nobody wants any more (:meth:`Run.abandon`) is dropped if it has not gone out yet; if it
is in flight, its hop is cancelled once every run in that hop is abandoned (the engine then
interrupts the query, where that hits nothing else), so it does not keep a reader busy.

Knows nothing of SQLite: it is handed a function that runs a list of queries and returns, for
each, its rows or its error, and one that runs a group of queries on one read snapshot (the
runs of ``db.watch_many``; such a run goes out with its batch, in its hop, as one call).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from rxdb._types import Params
from rxdb.rows import Rows

__all__ = ("Done", "FetchMany", "Run", "RunScheduler", "SnapshotDone")

LOG = logging.getLogger("rxdb.watch")

Done = Callable[[Rows | Exception], None]
SnapshotDone = Callable[[tuple[Rows, ...] | Exception], None]
Query = tuple[str, Params]
FetchMany = Callable[[Sequence[Query]], Awaitable[Sequence[Rows | Exception]]]


class RunScheduler:
    """Runs queries for watches; everything here is called on the database's loop."""

    def __init__(
        self,
        fetch_many: FetchMany,
        *,
        parallelism: int,
        duty: float = 4.0,
        fetch_snapshot: FetchMany | None = None,
    ) -> None:
        self._fetch_many = fetch_many
        self._fetch_snapshot = fetch_snapshot
        self._parallelism = max(1, parallelism)
        self._duty = duty
        self._queue: list[Run] = []
        self._collecting = False  # a task will take the queue on its first step
        self._paced: dict[float, list[Run]] = {}  # runs waiting for their pause, by due time
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching = 0  # hops in flight

    @property
    def busy(self) -> asyncio.Task[None] | None:
        """A task of this scheduler that has not ended (a batch queued, in flight, being
        delivered, or a pause), if any: for tests and diagnostics."""
        return next((task for task in self._tasks if not task.done()), None)

    def submit(self, sql: str, params: Params, done: Done) -> Run:
        """Run one query with whatever else is due; ``done(rows or error)`` on the loop,
        unless the run is abandoned first."""
        run = Run(self, sql, params, done)
        self._enqueue([run])
        return run

    def submit_snapshot(self, queries: tuple[Query, ...], done: SnapshotDone) -> Run:
        """Run ``queries`` together on one read snapshot; ``done(every result or the first
        error)`` on the loop, unless the run is abandoned first."""
        if self._fetch_snapshot is None:
            raise RuntimeError("this scheduler was made without fetch_snapshot")
        run = Run(self, "", (), done, group=queries)
        self._enqueue([run])
        return run

    def _again(self, previous: Run) -> Run:
        run = Run(self, previous.sql, previous.params, previous.done, group=previous.group)
        batch = previous._batch
        if batch is None:  # never went out (cannot happen through SharedQuery): no pause
            self._enqueue([run])
        elif batch.hops:
            batch.reruns.append(run)  # paced once the whole batch is back
        else:
            self._pace([run], batch)
        return run

    def _pace(self, runs: list[Run], batch: _Batch) -> None:
        due = batch.ended + self._duty * (batch.ended - batch.started)
        if due <= time.monotonic():
            self._enqueue(runs)
            return
        waiting = self._paced.get(due)
        if waiting is None:
            self._paced[due] = runs
            self._start(self._pause(due))
        else:
            waiting.extend(runs)  # the same batch: they go out together

    def _enqueue(self, runs: list[Run]) -> None:
        self._queue.extend(runs)
        if not self._collecting:
            self._collecting = True
            self._start(self._send(None))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        # A fresh context: a run must not run inside whoever kicked it (a transaction).
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pause(self, due: float) -> None:
        await asyncio.sleep(due - time.monotonic())
        self._enqueue(self._paced.pop(due))

    async def _send(self, runs: list[Run] | None, batch: _Batch | None = None) -> None:
        """Run ``runs`` in one hop of ``batch``; ``None``: take everything queued by now
        (this task's first step comes after the loop iteration that kicked it), split it
        over the free readers as one batch, and run its first hop here."""
        if runs is None or batch is None:
            self._collecting = False
            queued, self._queue = self._queue, []
            wanted = [run for run in queued if not run.abandoned]
            if not wanted:
                return
            parts = self._split(wanted)
            batch = _Batch(len(parts))
            for part in parts[1:]:
                self._start(self._send(part, batch))
            runs = parts[0]
        await self._hop(runs, batch)

    def _split(self, runs: list[Run]) -> list[list[Run]]:
        free = max(1, self._parallelism - self._fetching)
        size = -(-len(runs) // min(free, len(runs)))
        return [runs[i : i + size] for i in range(0, len(runs), size)]

    async def _hop(self, runs: list[Run], batch: _Batch) -> None:
        hop = _Hop(runs, batch, asyncio.current_task())
        self._fetching += 1
        results: list[object]
        try:
            results = await self._fetch(runs)
        except asyncio.CancelledError:
            if hop.wanted():
                raise  # not cancelled by an abandon: by whoever stops the loop
            return
        except Exception as error:  # e.g. the database closed: all fail alike
            results = [error] * len(runs)
        finally:
            self._fetching -= 1
            hop.landed()
            batch.hops -= 1
            if not batch.hops:
                batch.ended = time.monotonic()
                if batch.reruns:
                    self._pace(batch.reruns, batch)
        for run, result in zip(runs, results, strict=True):
            if run.abandoned:
                continue
            try:
                run.done(result)
            except Exception:
                LOG.exception("a watch failed to take its result")

    async def _fetch(self, runs: list[Run]) -> list[object]:
        """The results of ``runs`` in order: the single queries in one call, then each
        snapshot group in one call of its own (its results, or its first error)."""
        results: list[object] = [None] * len(runs)
        singles = [i for i, run in enumerate(runs) if run.group is None]
        if singles:
            rows = await self._fetch_many([(runs[i].sql, runs[i].params) for i in singles])
            for i, result in zip(singles, rows, strict=True):
                results[i] = result
        for i, run in enumerate(runs):
            if run.group is not None and self._fetch_snapshot is not None:
                group = await self._fetch_snapshot(run.group)
                error = next((r for r in group if isinstance(r, Exception)), None)
                results[i] = error if error is not None else tuple(group)
        return results


class Run:
    """One query run for a watch, from :meth:`RunScheduler.submit` or :meth:`again`."""

    __slots__ = ("_batch", "_hop", "_scheduler", "abandoned", "done", "group", "params", "sql")

    def __init__(
        self,
        scheduler: RunScheduler,
        sql: str,
        params: Params,
        done: Callable[[Any], None],
        *,
        group: tuple[Query, ...] | None = None,
    ) -> None:
        self._scheduler = scheduler
        self.sql = sql
        self.params = params
        self.done = done
        self.group = group  # run on one snapshot instead of sql
        self.abandoned = False
        self._hop: _Hop | None = None  # while in flight
        self._batch: _Batch | None = None  # once gone out

    def again(self) -> Run:
        """Run the same query again, for commits that arrived while this run was in flight:
        after ``duty`` times as long as this run's batch took, counted from its end."""
        return self._scheduler._again(self)

    def abandon(self) -> None:
        """Nobody wants the result any more: drop the run, or stop its hop in flight when
        every run in that hop is abandoned. ``done`` is not called after this."""
        self.abandoned = True
        if self._hop is not None:
            self._hop.abandoned_one()


class _Batch:
    """Runs that went out together, over ``hops`` hops; their re-runs wait together."""

    __slots__ = ("ended", "hops", "reruns", "started")

    def __init__(self, hops: int) -> None:
        self.started = time.monotonic()
        self.ended = 0.0
        self.hops = hops  # still out
        self.reruns: list[Run] = []  # asked for before the last hop came back


class _Hop:
    """Runs sent to one reader in one call, and the task waiting for them."""

    __slots__ = ("runs", "task")

    def __init__(self, runs: list[Run], batch: _Batch, task: asyncio.Task[Any] | None) -> None:
        self.runs = runs
        self.task = task
        for run in runs:
            run._hop = self
            run._batch = batch

    def wanted(self) -> bool:
        return not all(run.abandoned for run in self.runs)

    def abandoned_one(self) -> None:
        if self.task is not None and not self.wanted():
            self.task.cancel()

    def landed(self) -> None:
        for run in self.runs:
            run._hop = None
