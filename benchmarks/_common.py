"""What every figure group shares: sizes, results, statistics, files and instrumentation."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from reactivex.abc import ObserverBase

import rxdb
from rxdb.engines.sqlite import SQLiteEngine

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent  # where a child's ``-m benchmarks.x`` imports
clock = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable across threads


def sqlite_engine(db: rxdb.Database) -> SQLiteEngine:
    """The SQLite engine behind ``db``, for instrumentation (a database's engine is typed as
    the seam: a PostgreSQL URL gets another one)."""
    engine = db._engine
    if not isinstance(engine, SQLiteEngine):
        raise RuntimeError(f"{db!r} is not a SQLite database")
    return engine


def monotonic() -> float:
    """``CLOCK_MONOTONIC`` itself: comparable across processes of one machine (#3).
    ``perf_counter`` happens to read it on Linux, but Python does not promise that."""
    return time.clock_gettime(time.CLOCK_MONOTONIC)


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does. ``quick`` stays under two minutes on 2 cores."""

    name: str
    latency_samples: int  # #1, #1b, #2 (after warm-up)
    warmup: int
    cost_watches: tuple[int, ...]  # #5 sweep; the last level is the #5 figure
    cost_tables: int  # tables the #5 watches spread over
    cost_commits: int  # commits per block, per database, per round
    cost_rounds: int
    fanout_subscribers: int  # #6
    fanout_commits: int
    storm_commits: int  # #7
    storm_watches: int
    storm_rounds: int
    overhead_calls: int  # #8, per block
    overhead_rounds: int
    concurrent_tasks: int  # #10
    concurrent_calls: int  # per task
    concurrent_rounds: int
    parse_cold: int  # #9
    parse_cached: int
    poll_seconds: float  # #11, per mode
    poll_write_interval: float
    process_samples: int  # #3, after warm-up (the warm-up is ``warmup``)
    process_gap: float  # #3, seconds between the other process's commits (and echo trips)

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SMOKE = Sizes(
    "smoke", 5, 2, (0, 5, 20), 5, 5, 1, 5, 2, 20, 3, 1, 5, 1, 2, 3, 1, 3, 100, 0.3, 0.05,
    5, 0.005,
)  # fmt: skip
QUICK = Sizes(
    "quick", 300, 30, (0, 100, 1000, 10000), 1000, 100, 4, 1000, 20, 2000, 100, 2,
    200, 5, 4, 100, 3, 50, 100_000, 2.0, 0.2, 200, 0.01,
)  # fmt: skip
FULL = Sizes(
    "full", 2000, 100, (0, 100, 1000, 10000), 1000, 200, 8, 1000, 50, 10000, 100, 3,
    500, 10, 4, 300, 5, 200, 1_000_000, 6.0, 0.2, 1000, 0.01,
)  # fmt: skip
SIZES = {s.name: s for s in (SMOKE, QUICK, FULL)}


@dataclass
class Figure:
    """One row of the results table.

    ``ratio`` is ``value / baseline`` (both in ``unit``) unless the figure says otherwise in
    ``params["ratio"]``. ``status`` is pass, miss, info (reported, no bar) or not built.
    """

    id: str
    title: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    bar: str = ""
    status: str = "info"
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def judge(self, passed: bool | None) -> Figure:
        self.status = "info" if passed is None else ("pass" if passed else "miss")
        return self


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)  # raw samples for charts

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank on the sorted samples."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": median(values),
        "p99": percentile(values, 99),
        "min": min(values),
        "max": max(values),
    }


@contextlib.contextmanager
def workdir() -> Iterator[str]:
    """A temporary directory for database files, removed afterwards."""
    path = tempfile.mkdtemp(prefix="rxdb-bench-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA foreign_keys = ON")
"""What rxdb's writer sets; the raw baselines set the same. The raw baselines keep SQLite's
``synchronous`` default, FULL (2), which in WAL mode syncs the log at each commit; rxdb's
default in WAL mode is NORMAL, so a figure that compares writes with them opens rxdb with
``synchronous="full"`` (or sets NORMAL on both)."""


@contextlib.asynccontextmanager
async def raw_connection(path: str) -> AsyncIterator[aiosqlite.Connection]:
    """A plain aiosqlite connection in autocommit mode with rxdb's PRAGMAs: the baseline."""
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=5.0)
    try:
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        yield conn
    finally:
        await conn.close()


async def synchronous_setting(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("PRAGMA synchronous")
    return int(next(iter(rows))[0])


class CommitClock:
    """Instrumentation: records the instant each outermost commit is published.

    rxdb's writer thread calls ``SQLiteEngine._publish`` right after the outermost COMMIT; this
    wraps that method on one instance (nothing in rxdb changes) and stamps ``stamp()``
    (``clock`` unless told) before handing on. Safe from any thread (a list append is atomic).
    """

    def __init__(self, db: rxdb.Database, stamp: Callable[[], float] = clock) -> None:
        self.times: list[float] = []
        engine = sqlite_engine(db)
        original = engine._publish

        def publish(*args: Any, **kwargs: Any) -> None:
            self.times.append(stamp())
            original(*args, **kwargs)

        engine._publish = publish  # type: ignore[method-assign]

    @property
    def last(self) -> float:
        return self.times[-1]


class ValueWaiter(ObserverBase[list[Any]]):
    """An observer of a watch whose first row's first column is a counter: stamps the
    instant each value arrives (``stamp()``, ``clock`` unless told) and lets a coroutine wait
    for a given value."""

    def __init__(self, stamp: Callable[[], float] = clock) -> None:
        self._stamp = stamp
        self.seen: dict[Any, float] = {}
        self.emissions = 0
        self._waiting: dict[Any, asyncio.Future[float]] = {}
        self.errors: list[BaseException] = []

    def on_next(self, rows: list[Any]) -> None:
        now = self._stamp()
        self.emissions += 1
        value = rows[0][0] if rows else None
        self.seen.setdefault(value, now)
        future = self._waiting.pop(value, None)
        if future is not None and not future.done():
            future.set_result(now)

    def on_error(self, error: BaseException) -> None:
        self.errors.append(error)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()

    def on_completed(self) -> None:
        pass

    def expect(self, value: Any) -> asyncio.Future[float]:
        """A future resolved with the arrival instant of ``value`` (at once if seen)."""
        future = asyncio.get_running_loop().create_future()
        if value in self.seen:
            future.set_result(self.seen[value])
        else:
            self._waiting[value] = future
        return future


async def idle(stream: rxdb.QueryStream, limit: float = 30.0) -> None:
    """Wait (outside any measured interval) until the shared query behind ``stream`` has no
    run in flight or pending."""
    deadline = clock() + limit
    while True:
        await asyncio.sleep(0)
        stats = stream.statistics()
        if not stats.running and not stats.pending:
            return
        if clock() > deadline:
            raise TimeoutError("a watch never went idle")
        await asyncio.sleep(0.001)


class LoopThread:
    """A thread running its own event loop; :meth:`run` executes a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="bench-writer", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """From the main loop: an awaitable for ``coro`` running on this thread's loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def one_cpu() -> Iterator[bool]:
    """Pin every thread of this process to one CPU (Linux), restoring each afterwards; yields
    whether that was possible."""
    tasks = "/proc/self/task"
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None or not os.path.isdir(tasks):
        yield False
        return
    saved: dict[int, set[int]] = {}
    try:
        cpu = min(os.sched_getaffinity(0))
        for name in os.listdir(tasks):
            tid = int(name)
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                saved[tid] = os.sched_getaffinity(tid)
                setaffinity(tid, {cpu})
        yield True
    finally:
        everywhere = saved.get(threading.get_native_id(), os.sched_getaffinity(0))
        for name in os.listdir(tasks):  # threads started meanwhile get this thread's CPUs
            with contextlib.suppress(OSError):
                setaffinity(int(name), saved.get(int(name), everywhere))


def last_cpu(thread: int) -> int | None:
    """The CPU the thread with native id ``thread`` (of this process) runs on, or ran on
    last if it waits now (Linux: field 39 of its ``/proc`` stat); ``None`` elsewhere or once
    it has ended. Read from outside, so the measured thread runs no code for it."""
    try:
        with open(f"/proc/self/task/{thread}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[36])  # field 39 of the line, counted after the name's ")"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = clock()
    result = fn()
    return clock() - start, result


def child_json(
    argv: Sequence[str], timeout: float, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a child process (blocking) whose last line of output is a JSON object: that
    object. A failed child raises ``RuntimeError`` with its stderr."""
    done = subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result
