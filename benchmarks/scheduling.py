"""S1-S3: nothing waits behind a slow query (issue #10).

One database, one watch whose query takes about a second (a recursive CTE, calibrated on
this machine), and three cheap operations, each timed alone and while that slow watch
re-runs: a trivial watch's commit -> emission (S1), a new watch's first value (S2), and
``fetch_one('SELECT 1')`` (S3). Each "during" sample has a slow re-run of its own, started
by a commit to the slow watch's table; the sample counts only if the slow run was still in
flight when the cheap operation ended (``during`` in the figure's extra says how many were).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import rxdb

from ._common import (
    CommitClock,
    Figure,
    Results,
    Sizes,
    ValueWaiter,
    clock,
    idle,
    median,
    summary,
    workdir,
)

MS = 1e3
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "SELECT count(*) + (SELECT count(*) FROM slow) FROM c"
)
FAST = "SELECT v FROM fast WHERE id = 1"
UPDATE = "UPDATE fast SET v = ? WHERE id = 1"
# Per mode: slow query's target seconds, samples alone, samples during a slow run.
PLAN = {"smoke": (0.2, 5, 1), "quick": (1.0, 50, 3), "full": (1.0, 200, 5)}
CALIBRATION_STEPS = 200_000
WARM_READS = 50  # cheap reads before each slow run, as an application's reads mostly are


async def _calibrate(db: rxdb.Database, seconds: float) -> int:
    """Steps of the recursive CTE that take about ``seconds`` here."""
    t0 = clock()
    await db.fetch_all(SLOW, (CALIBRATION_STEPS,))
    return max(1000, int(CALIBRATION_STEPS * seconds / (clock() - t0)))


class _Bench:
    def __init__(self, db: rxdb.Database, steps: int) -> None:
        self.db = db
        self.commits = CommitClock(db)
        self.fast = ValueWaiter()
        self.slow = db.watch(SLOW, (steps,))
        self.value = 0
        self.new_watches = 0

    async def fast_rerun(self) -> float:
        """Commit -> the trivial watch's new value, in seconds."""
        self.value += 1
        arrival = self.fast.expect(self.value)
        await self.db.execute(UPDATE, (self.value,))
        committed = self.commits.last
        return await asyncio.wait_for(arrival, 120) - committed

    async def first_value(self) -> float:
        """Subscribe -> a brand-new watch's first value, in seconds."""
        self.new_watches += 1
        waiter = ValueWaiter()
        arrival = waiter.expect(self.value)
        t0 = clock()
        sub = self.db.watch(f"SELECT v, {self.new_watches} FROM fast WHERE id = 1").subscribe(
            waiter
        )
        try:
            return await asyncio.wait_for(arrival, 120) - t0
        finally:
            sub.dispose()

    async def select_one(self) -> float:
        t0 = clock()
        await self.db.fetch_one("SELECT 1")
        return clock() - t0

    async def during_slow_run(
        self, operation: Callable[[], Awaitable[float]]
    ) -> tuple[float, bool]:
        """Start a slow re-run, time ``operation`` while it runs; also whether the slow run
        was still in flight when the operation ended."""
        await idle(self.slow, 120)
        for _ in range(WARM_READS):  # what an application mostly does: cheap reads
            await self.db.fetch_one("SELECT 1")
        await self.db.execute("INSERT INTO slow DEFAULT VALUES")
        await asyncio.sleep(0.05)  # the commit reached the slow watch, its query a reader
        seconds = await operation()
        still_running = self.slow.statistics().running
        await idle(self.slow, 120)
        return seconds, still_running


async def run(sizes: Sizes, results: Results) -> None:
    target, alone_samples, during_samples = PLAN[sizes.name]
    with workdir() as tmp:
        async with rxdb.open(os.path.join(tmp, "scheduling.db")) as db:
            await db.execute("CREATE TABLE fast (id INTEGER PRIMARY KEY, v INTEGER)")
            await db.execute("CREATE TABLE slow (id INTEGER PRIMARY KEY)")
            await db.execute("INSERT INTO fast VALUES (1, 0)")
            steps = await _calibrate(db, target)
            bench = _Bench(db, steps)
            slow_seen = ValueWaiter()
            t0 = clock()
            subs = [bench.slow.subscribe(slow_seen), db.watch(FAST).subscribe(bench.fast)]
            try:
                slow_seconds = await asyncio.wait_for(slow_seen.expect(steps), 120) - t0
                await bench.fast.expect(0)
                operations = {
                    "S1": bench.fast_rerun,
                    "S2": bench.first_value,
                    "S3": bench.select_one,
                }
                alone: dict[str, list[float]] = {key: [] for key in operations}
                during: dict[str, list[float]] = {key: [] for key in operations}
                in_flight = dict.fromkeys(operations, 0)
                for key, operation in operations.items():
                    for _ in range(alone_samples):
                        alone[key].append(await operation() * MS)
                    for _ in range(during_samples):
                        seconds, still = await bench.during_slow_run(operation)
                        during[key].append(seconds * MS)
                        in_flight[key] += still
            finally:
                for sub in subs:
                    sub.dispose()
    titles = {
        "S1": "trivial watch: commit -> new value, while a slow watch re-runs",
        "S2": "new watch: subscribe -> first value, while a slow watch re-runs",
        "S3": "fetch_one('SELECT 1') while a slow watch re-runs",
    }
    tenth = slow_seconds * MS / 10
    for key, title in titles.items():
        value, baseline = median(during[key]), median(alone[key])
        results.add(
            Figure(
                key, title, value, "ms", baseline, "same, no slow run", value / baseline,
                f"<= 1/10 of the slow run ({tenth:.0f} ms)",
                params={
                    "slow watch": f"recursive CTE of {steps:,} steps, first run "
                    f"{slow_seconds:.2f} s",
                    "samples": f"{alone_samples} alone, {during_samples} during (one slow "
                    "re-run each)",
                    "readers": 4,
                },
                extra={
                    "during": summary(during[key]),
                    "alone": summary(alone[key]),
                    "samples during a slow run still in flight": in_flight[key],
                },
            )
        ).judge(value <= tenth)  # fmt: skip


__all__ = ("run",)
