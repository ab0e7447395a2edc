"""#5 (commit cost vs watches on other tables, and the sweep behind the chart), #6 (one
query, many subscribers) and #7 (a write storm under watches).

Side by side: two databases in two files, one with watches and one without, take turns
block by block, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import asyncio
import os
import resource
from typing import Any

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
US = 1e6
HOT_INSERT = "INSERT INTO hot (v) VALUES (?)"


class _Counter:
    """Counts first emissions so a setup step can wait for N watches to be live."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()

    def observer(self) -> Any:
        first = [True]

        def on_next(_rows: Any) -> None:
            if first[0]:
                first[0] = False
                self.count += 1
                if self.count >= self.target and not self.done.done():
                    self.done.set_result(None)

        def on_error(error: Exception) -> None:
            if not self.done.done():
                self.done.set_exception(error)

        return on_next, on_error


async def _commit_block(db: rxdb.Database, count: int, start: int) -> list[float]:
    samples = []
    for i in range(count):
        t0 = clock()
        await db.execute(HOT_INSERT, (start + i,))
        samples.append((clock() - t0) * US)
    return samples


async def commit_cost(sizes: Sizes, results: Results) -> None:
    """#5 and the sweep: ``await db.execute(INSERT)`` into a table nobody watches, on a
    database with 0 watches (A) and on one with N watches spread over other tables (B)."""
    levels = sizes.cost_watches
    sweep: list[dict[str, Any]] = []
    subscriptions: list[Any] = []
    with workdir() as tmp:
        async with (
            rxdb.open(os.path.join(tmp, "plain.db")) as plain,
            rxdb.open(os.path.join(tmp, "watched.db")) as watched,
        ):
            for db in (plain, watched):
                await db.execute("CREATE TABLE hot (id INTEGER PRIMARY KEY, v INTEGER)")
            tables = sizes.cost_tables
            script = "".join(
                f"CREATE TABLE other{t} (id INTEGER PRIMARY KEY, v INTEGER);" for t in range(tables)
            )
            for db in (plain, watched):  # the same schema and WAL history on both sides
                async with db.transaction():
                    await db.execute_script(script)
            live = 0
            setup_seconds = 0.0
            try:
                for level in levels:
                    t0 = clock()
                    counter = _Counter(level - live)
                    for n in range(live, level):
                        # Distinct SQL per watch, so none share an execution.
                        sql = f"SELECT count(*) FROM other{n % tables} WHERE id > {n // tables}"
                        on_next, on_error = counter.observer()
                        subscriptions.append(watched.watch(sql).subscribe(on_next, on_error))
                    if level > live:
                        await asyncio.wait_for(counter.done, 600)
                    live = level
                    setup_seconds += clock() - t0
                    a_all: list[float] = []
                    b_all: list[float] = []
                    ratios = []
                    for r in range(sizes.cost_rounds):
                        base = r * sizes.cost_commits
                        order = (plain, watched) if r % 2 == 0 else (watched, plain)
                        blocks = {}
                        for db in order:
                            blocks[id(db)] = await _commit_block(db, sizes.cost_commits, base)
                        a, b = blocks[id(plain)], blocks[id(watched)]
                        a_all += a
                        b_all += b
                        ratios.append(median(b) / median(a))
                    sweep.append(
                        {
                            "watches": level,
                            "bus_subscriptions": watched._engine.bus.statistics().subscriptions,
                            "without": summary(a_all),
                            "with": summary(b_all),
                            "ratio_of_medians": median(b_all) / median(a_all),
                            "round_ratios": ratios,
                        }
                    )
            finally:
                for sub in subscriptions:
                    sub.dispose()
    top = sweep[-1]
    results.add(
        Figure(
            "5",
            f"commit cost with {top['watches']:,} watches on {sizes.cost_tables:,} other tables",
            top["with"]["median"], "µs", top["without"]["median"], "same commit, 0 watches",
            top["ratio_of_medians"], "ratio <= 1.2",
            params={
                "commit": f"await db.execute({HOT_INSERT!r})",
                "commits": f"{sizes.cost_rounds} rounds x {sizes.cost_commits} per database, "
                "alternating which database goes first",
                "databases": f"two files, each with hot + {sizes.cost_tables} other tables; "
                "only B has watches",
                "watch setup seconds": round(setup_seconds, 1),
            },
            extra={"sweep": sweep},
        )
    ).judge(top["ratio_of_medians"] <= 1.2)  # fmt: skip
    results.series["watchers"] = sweep


async def shared_query(sizes: Sizes, results: Results) -> None:
    """#6: N subscribers of one identical query; each commit must run it exactly once."""
    n = sizes.fanout_subscribers
    with workdir() as tmp:
        async with rxdb.open(os.path.join(tmp, "fanout.db")) as db:
            await db.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, v INTEGER)")
            await db.execute("INSERT INTO counter VALUES (1, -1)")
            commits = CommitClock(db)
            sql = "SELECT v FROM counter WHERE id = 1"
            waiters = [ValueWaiter() for _ in range(n)]
            subs = [db.watch(sql).subscribe(w) for w in waiters]
            stream = db.watch(sql)
            try:
                await asyncio.gather(*(w.expect(-1) for w in waiters))
                await idle(stream)
                runs_per_commit = []
                last_latency = []
                for i in range(sizes.fanout_commits):
                    before = _executions(stream)
                    arrivals = [w.expect(i) for w in waiters]
                    await db.execute("UPDATE counter SET v = ? WHERE id = 1", (i,))
                    stamps = await asyncio.gather(*arrivals)
                    await idle(stream)
                    runs_per_commit.append(_executions(stream) - before)
                    last_latency.append((max(stamps) - commits.last) * MS)
                stats = stream.statistics()
            finally:
                for sub in subs:
                    sub.dispose()
    worst = max(runs_per_commit)
    results.add(
        Figure(
            "6", f"{n:,} subscribers of one query: executions per commit", worst, "runs",
            bar="exactly 1 execution per commit",
            params={"subscribers": n, "commits": sizes.fanout_commits},
            extra={
                "runs_per_commit": runs_per_commit,
                "subscribers_seen_by_statistics": stats.subscribers,
                "commit -> last subscriber (ms)": summary(last_latency),
            },
        )
    ).judge(all(r == 1 for r in runs_per_commit))  # fmt: skip


def _executions(stream: Any) -> int:
    """The query's runs, and the patches of its maintained result (a re-read of the rows a
    commit changed, rxdb.watch.incremental): each answers one commit."""
    statistics = stream.statistics()
    return int(statistics.runs + statistics.patched)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _storms(sizes: Sizes, rounds: int, readers: int) -> dict[str, list[Any]]:
    """Storms on a database without watches and on one with ``storm_watches`` watches
    (opened with ``readers`` reader connections), alternating which goes first."""
    n = sizes.storm_commits
    out: dict[str, list[Any]] = {
        k: [] for k in ("plain", "watched", "lag", "lag_median", "runs", "memory", "run_cost")
    }
    with workdir() as tmp:
        async with (
            rxdb.open(os.path.join(tmp, "plain.db")) as plain,
            rxdb.open(os.path.join(tmp, "watched.db"), readers=readers) as watched,
        ):
            commits = CommitClock(watched)
            for r in range(rounds):
                table = f"storm{r}"
                for db in (plain, watched):
                    await db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v INTEGER)")
                waiters = [ValueWaiter() for _ in range(sizes.storm_watches)]
                streams = [
                    watched.watch(f"SELECT max(id), {j} FROM {table}")
                    for j in range(sizes.storm_watches)
                ]
                subs = [s.subscribe(w) for s, w in zip(streams, waiters, strict=True)]
                try:
                    await asyncio.gather(*(w.expect(None) for w in waiters))
                    for s in streams:
                        await idle(s)
                    runs_before = sum(s.statistics().runs for s in streams)
                    mem_before = {"rss": _rss_mb(), "peak": _peak_rss_mb()}
                    finals = [w.expect(n) for w in waiters]
                    order = (plain, watched) if r % 2 == 0 else (watched, plain)
                    seconds = {}
                    for db in order:
                        sql = f"INSERT INTO {table} (v) VALUES (?)"
                        t0 = clock()
                        for i in range(n):
                            await db.execute(sql, (i,))
                        seconds[id(db)] = clock() - t0
                        if db is watched:
                            last_commit = commits.last
                            stamps = await asyncio.wait_for(asyncio.gather(*finals), 60)
                            out["lag"].append((max(stamps) - last_commit) * MS)
                            out["lag_median"].append((median(stamps) - last_commit) * MS)
                            out["memory"].append(
                                {
                                    "rss_before_mb": mem_before["rss"],
                                    "rss_after_mb": _rss_mb(),
                                    "peak_before_mb": mem_before["peak"],
                                    "peak_after_mb": _peak_rss_mb(),
                                }
                            )
                    for s in streams:
                        await idle(s)
                    runs = sum(s.statistics().runs for s in streams) - runs_before
                    out["plain"].append(n / seconds[id(plain)])
                    out["watched"].append(n / seconds[id(watched)])
                    out["runs"].append(runs / sizes.storm_watches)
                    # What one watch re-run cost the writer: the storm's extra wall time
                    # spread over the re-runs that happened during it.
                    extra = seconds[id(watched)] - seconds[id(plain)]
                    out["run_cost"].append(extra / max(runs, 1) * US)
                finally:
                    for sub in subs:
                        sub.dispose()
    return out


async def write_storm(sizes: Sizes, results: Results) -> None:
    """#7: single-row commits as fast as one task can issue them, 0 vs N watches."""
    n = sizes.storm_commits
    main = await _storms(sizes, sizes.storm_rounds, readers=4)
    one_reader = await _storms(sizes, 1, readers=1)
    plain_rates, watched_rates = main["plain"], main["watched"]
    final_lag, final_lag_median, memory = main["lag"], main["lag_median"], main["memory"]
    ratio = median(watched_rates) / median(plain_rates)
    lag = median(final_lag)
    growth = max(m["rss_after_mb"] - m["rss_before_mb"] for m in memory)
    params = {
        "commits": n,
        "watches": sizes.storm_watches,
        "rounds": sizes.storm_rounds,
        "commit": "await db.execute('INSERT INTO stormN (v) VALUES (?)'), one task, in sequence",
        "watch query": "SELECT max(id), j FROM stormN (j = 0..watches-1: distinct queries)",
    }
    results.add(
        Figure(
            "7", f"write storm: {n:,} commits, {sizes.storm_watches} watches, throughput",
            median(watched_rates), "commits/s", median(plain_rates), "same storm, 0 watches",
            ratio, "throughput ratio >= 0.7", params={**params, "ratio": "rxdb / baseline"},
            extra={"with": watched_rates, "without": plain_rates,
                   "runs per watch during a storm": main["runs"],
                   "storm slowdown per watch re-run (µs)": main["run_cost"]},
        )
    ).judge(ratio >= 0.7)  # fmt: skip
    r1 = median(one_reader["watched"]) / median(one_reader["plain"])
    results.add(
        Figure(
            "7.r1", "write storm variant: watched database opened with readers=1",
            median(one_reader["watched"]), "commits/s", median(one_reader["plain"]),
            "same storm, 0 watches", r1, "(diagnostic, no bar)",
            params={**params, "rounds": 1, "ratio": "rxdb / baseline"},
            extra={"runs per watch during a storm": one_reader["runs"],
                   "storm slowdown per watch re-run (µs)": one_reader["run_cost"]},
        )
    )  # fmt: skip
    results.add(
        Figure(
            "7b", "write storm: last commit -> final state emitted by every watch", lag, "ms",
            bar="<= 50 ms", params=params,
            extra={"all watches, per round": final_lag,
                   "median watch, per round": final_lag_median},
        )
    ).judge(lag <= 50)  # fmt: skip
    results.add(
        Figure(
            "7c",
            "write storm: memory (RSS growth during the watched storm)",
            growth,
            "MB",
            bar="bounded (report)",
            params=params,
            extra={"rounds": memory},
        )
    )


async def run(sizes: Sizes, results: Results) -> None:
    await commit_cost(sizes, results)
    await shared_query(sizes, results)
    await write_storm(sizes, results)


__all__ = ("commit_cost", "run", "shared_query", "write_storm")
