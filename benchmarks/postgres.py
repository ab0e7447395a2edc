"""PostgreSQL (issue 12): the same watches on the machine's server over loopback, each figure
against a baseline measured in the same run.

- P1: commit in another process -> emission here, against one raw asyncpg round trip
  (``SELECT 1``). Beside it, P1.f: the floor of the same path in raw asyncpg (the capture
  trigger's notification reaches a plain ``LISTEN`` connection on this loop, which then runs
  the watched query on a second one), and P1.s: #3, the same figure on SQLite through the
  hub (:func:`benchmarks.processes._hub`), measured in this run. The writer is a child
  process (``python -m benchmarks._pg_writer``); both processes stamp with
  ``CLOCK_MONOTONIC``, and commits are ``process_gap`` apart, as in #3.
- P2: commit cost with N watches on other tables vs none, #5's method: two databases with
  the same schema, only one watched, taking turns block by block.
- P3: what the capture triggers add to a single-row write transaction of any writer (a
  plain asyncpg connection; capture installed and removed between blocks, a ``LISTEN``
  connection present throughout); P3.c: the same with 8 writers at once (a transaction that
  notified takes one lock for the whole server at commit and holds it through the commit's
  WAL flush: such commits cannot share a flush).
- P4: N subscribers of one query: executions per commit.
- P5r, P5w: ``fetch_all`` and ``execute`` against raw asyncpg (#8r/#8w's method).

Each run works in scratch databases of its own (``rxdb_bench_<hex>``), dropped ``WITH
(FORCE)`` at the end. The server: ``RXDB_BENCH_POSTGRES`` (a URL without a database name),
else the machine's ``postgresql://postgres@127.0.0.1:5432``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import importlib.metadata
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

import rxdb
from rxdb.engines.postgres.capture import channel_for, install_capture, uninstall_capture
from rxdb.engines.postgres.dsn import parse_dsn
from rxdb.engines.postgres.engine import PostgresEngine

from ._common import (
    Figure,
    Results,
    Sizes,
    ValueWaiter,
    clock,
    idle,
    median,
    monotonic,
    summary,
    workdir,
)
from ._pg_writer import UPDATE, PgCommitClock
from .fanout import _commit_block, _Counter
from .overhead import _blocks, _per_call
from .processes import _child, _finish, _hub, _ready

SERVER = os.environ.get("RXDB_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
QUERY = "SELECT v FROM counter WHERE id = 1"
READ = "SELECT id, v FROM r WHERE id = ?"
WRITE = "INSERT INTO w (v) VALUES (?)"
TRIGGER_WRITE = "INSERT INTO t3 (v) VALUES ($1)"
WRITERS = 8  # P3.c
BLOCK = 25  # P2: commits per block
MS = 1e3
US = 1e6
NO_BAR = "(info, no bar)"


@contextlib.asynccontextmanager
async def _raw(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _scratch() -> AsyncIterator[str]:
    """A new database on the server, dropped on exit with every connection still in it;
    yields its URL. Each step on a connection of its own, so that a server restarted in
    between still gets its database dropped."""
    name = f"rxdb_bench_{uuid.uuid4().hex[:12]}"
    async with _raw(f"{SERVER}/postgres") as admin:
        await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        async with _raw(f"{SERVER}/postgres") as admin:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def _run_script(url: str, script: str) -> None:
    async with _raw(url) as conn:
        await conn.execute(script)


async def _server() -> str:
    """The server's facts every figure is printed with."""
    async with _raw(f"{SERVER}/postgres") as admin:
        version, fsync, sync_commit = await admin.fetchrow(
            "SELECT current_setting('server_version'), current_setting('fsync'), "
            "current_setting('synchronous_commit')"
        )
    return (
        f"PostgreSQL {version} on loopback, fsync={fsync}, synchronous_commit={sync_commit}; "
        f"asyncpg {importlib.metadata.version('asyncpg')}"
    )


# -- P1 ---------------------------------------------------------------------------------------


async def _round_trips(sizes: Sizes, url: str) -> list[float]:
    """Raw asyncpg ``SELECT 1`` round trips (ms), one every ``process_gap`` (as #3's echo
    trips), warm-up excluded."""
    out = []
    async with _raw(url) as conn:
        for n in range(sizes.warmup + sizes.process_samples):
            await asyncio.sleep(sizes.process_gap)
            t0 = monotonic()
            await conn.fetchval("SELECT 1")
            if n >= sizes.warmup:
                out.append((monotonic() - t0) * MS)
    return out


async def _other_process(
    sizes: Sizes, url: str, mode: str, first: int, waiter: ValueWaiter, arrivals: list[float]
) -> dict[str, Any]:
    """Run the writer child (``mode`` rxdb or raw, values from ``first``) while ``waiter``
    watches the counter and ``arrivals`` fills with the instants a change reached this loop;
    for each commit after the warm-up (ms): commit -> emission, write start -> emission, and
    commit -> arrival -> emission (the first arrival after the write started). A commit
    whose value never shows alone (coalesced with a later one, as it should be when commits
    bunch up) is seen with the first later value that does."""
    total = sizes.warmup + sizes.process_samples
    args = ("benchmarks._pg_writer", url, mode, str(first), str(total), repr(sizes.process_gap))
    async with _child(*args) as proc:
        await _ready(proc, f"the {mode} writer")
        text = await _finish(proc, f"the {mode} writer", 30 + total * sizes.process_gap)
    written = {int(v): (float(s), float(c)) for v, s, c in map(str.split, text.splitlines())}
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiter.expect(first + total - 1), 2.0)
    out: dict[str, Any] = {"emit": [], "start_emit": [], "arrive": [], "arrival_emit": []}
    coalesced = 0
    shown = sorted(v for v in waiter.seen if isinstance(v, int))
    measured = [v for v in sorted(written) if v >= first + sizes.warmup]
    for value in measured:
        later = shown[bisect.bisect_left(shown, value) :]
        if not later:
            continue
        coalesced += later[0] != value
        start, committed = written[value]
        emitted = waiter.seen[later[0]]
        out["emit"].append((emitted - committed) * MS)
        out["start_emit"].append((emitted - start) * MS)
        arrived = arrivals[bisect.bisect_left(arrivals, start) :]
        if arrived and arrived[0] <= emitted:
            out["arrive"].append((arrived[0] - committed) * MS)
            out["arrival_emit"].append((emitted - arrived[0]) * MS)
    return {**out, "coalesced": coalesced, "missed": len(measured) - len(out["emit"])}


async def _rxdb_emission(sizes: Sizes, url: str) -> dict[str, Any]:
    """P1: this process watches with rxdb; the child writes with rxdb. A bus subscription of
    the benchmark's own stamps each change message as it reaches this loop (delivered in
    the same call as the watch's)."""
    arrivals: list[float] = []
    async with rxdb.open(url) as db:
        tap = db._engine.bus.subscribe(
            db.key, lambda _: arrivals.append(monotonic()), tables=["counter"]
        )
        waiter = ValueWaiter(monotonic)
        subscription = db.watch(QUERY).subscribe(waiter)
        try:
            await waiter.expect(-1)
            return await _other_process(sizes, url, "rxdb", 0, waiter, arrivals)
        finally:
            subscription.dispose()
            tap.close()


async def _raw_emission(sizes: Sizes, url: str, first: int) -> dict[str, Any]:
    """P1.f: the child writes with plain asyncpg; the capture trigger's notification reaches
    a plain ``LISTEN`` connection on this loop, whose callback reads the watched query on a
    second connection."""
    waiter = ValueWaiter(monotonic)
    arrivals: list[float] = []
    lock = asyncio.Lock()
    reads: set[asyncio.Task[None]] = set()
    async with _raw(url) as listener, _raw(url) as reader:

        async def read() -> None:
            async with lock:
                waiter.on_next([(await reader.fetchval(QUERY),)])

        def notified(*_: object) -> None:
            arrivals.append(monotonic())
            task = asyncio.get_running_loop().create_task(read())
            reads.add(task)
            task.add_done_callback(reads.discard)

        channel = channel_for(url.rsplit("/", 1)[1])
        await listener.add_listener(channel, notified)
        try:
            return await _other_process(sizes, url, "raw", first, waiter, arrivals)
        finally:
            await listener.remove_listener(channel, notified)
            await asyncio.gather(*reads)


async def _emission(sizes: Sizes, url: str, server: str, results: Results) -> None:
    await _run_script(
        url,
        "CREATE TABLE counter (id integer PRIMARY KEY, v integer NOT NULL);"
        "INSERT INTO counter VALUES (1, -1);",
    )
    round_trips = await _round_trips(sizes, url)
    pg = await _rxdb_emission(sizes, url)  # installs capture, which the floor then uses
    floor = await _raw_emission(sizes, url, sizes.warmup + sizes.process_samples)
    with workdir() as tmp:
        hub = await _hub(sizes, tmp)
    e, rt, f, sq = (summary(x) for x in (pg["emit"], round_trips, floor["emit"], hub["emit"]))
    params = {
        "server": server,
        "samples": sizes.process_samples,
        "warmup": sizes.warmup,
        "gap": f"{sizes.process_gap * MS:.0f} ms between commits (and between round trips)",
        "query": QUERY,
        "writer": "child process: python -m benchmarks._pg_writer, rxdb.open(url), one "
        "UPDATE per commit; commit = the engine's Changes.committed (PgCommitClock)",
        "watcher": "this process, rxdb.open(url): capture triggers, the process's listener",
        "clock": "CLOCK_MONOTONIC in both processes",
        "coalesced (seen with a later commit's emission)": pg["coalesced"],
        "missed (never seen)": pg["missed"],
    }
    rt_label = "raw asyncpg round trip (SELECT 1)"
    results.add(
        Figure(
            "P1", "PostgreSQL: commit in another process -> emission", e["median"], "ms",
            rt["median"], rt_label, e["median"] / rt["median"], NO_BAR, params=params,
            extra={"rxdb": e, "round_trip": rt, "floor (P1.f)": f,
                   "rxdb / floor": e["median"] / f["median"],
                   "write_start_to_emission": summary(pg["start_emit"]),
                   "commit -> change on this loop": summary(pg["arrive"]),
                   "change on this loop -> emission": summary(pg["arrival_emit"])},
        )
    )  # fmt: skip
    results.add(
        Figure(
            "P1.f", "floor of P1: trigger's NOTIFY -> raw LISTEN connection -> query on another",
            f["median"], "ms", rt["median"], rt_label, f["median"] / rt["median"],
            "(floor, no bar)",
            params={**params, "writer": "child process, plain asyncpg UPDATE; commit = "
                    "execute returned", "watcher": "this loop: asyncpg add_listener on the "
                    "capture channel, then fetchval(query) on a second connection",
                    "coalesced (seen with a later commit's emission)": floor["coalesced"],
                    "missed (never seen)": floor["missed"]},
            extra={"floor": f, "write_start_to_emission": summary(floor["start_emit"]),
                   "commit -> notification on this loop": summary(floor["arrive"]),
                   "notification on this loop -> result": summary(floor["arrival_emit"])},
        )
    )  # fmt: skip
    results.add(
        Figure(
            "P1.s", "P1 against #3 (SQLite, writer in another process, hub), same run",
            e["median"], "ms", sq["median"], "#3 measured in this run",
            e["median"] / sq["median"], NO_BAR, params=params,
            extra={"rxdb": e, "sqlite hub": sq, "sqlite missed": hub["missed"]},
        )
    )  # fmt: skip


# -- P2 ---------------------------------------------------------------------------------------


async def _commit_cost(sizes: Sizes, server: str) -> Figure:
    """P2: ``await db.execute(INSERT)`` into a table nobody watches, on a database with no
    watches (A) and on one with N watches spread over other tables (B), block by block.
    The tables are made before rxdb opens (its capture then instruments them at once)."""
    watches, tables = sizes.cost_watches[-1], sizes.cost_tables
    commits = sizes.cost_rounds * sizes.cost_commits
    script = "CREATE TABLE hot (id serial PRIMARY KEY, v integer);" + "".join(
        f"CREATE TABLE other{t} (id integer, v integer);" for t in range(tables)
    )
    subscriptions: list[Any] = []
    async with _scratch() as plain_url, _scratch() as watched_url:
        await asyncio.gather(*(_run_script(url, script) for url in (plain_url, watched_url)))
        async with rxdb.open(plain_url) as plain, rxdb.open(watched_url) as watched:
            t0 = clock()
            try:
                counter = _Counter(watches)
                for n in range(watches):
                    # Distinct SQL per watch, so none share an execution.
                    sql = f"SELECT count(*) FROM other{n % tables} WHERE id > {n // tables}"
                    on_next, on_error = counter.observer()
                    subscriptions.append(watched.watch(sql).subscribe(on_next, on_error))
                if watches:
                    await asyncio.wait_for(counter.done, 600)
                setup = clock() - t0
                for db in (plain, watched):  # warm-up, not recorded
                    await _commit_block(db, sizes.warmup, -sizes.warmup)
                # Short blocks, taking turns: the server's WAL (one for both databases) and
                # the disk behind it vary from one moment to the next.
                samples: dict[int, list[float]] = {id(plain): [], id(watched): []}
                for r in range(max(1, commits // BLOCK)):
                    for db in (plain, watched) if r % 2 == 0 else (watched, plain):
                        samples[id(db)] += await _commit_block(db, BLOCK, r * BLOCK)
            finally:
                for sub in subscriptions:
                    sub.dispose()
    a_all, b_all = samples[id(plain)], samples[id(watched)]
    ratio = median(b_all) / median(a_all)
    return Figure(
        "P2", f"PostgreSQL: commit cost with {watches:,} watches on {tables:,} other tables",
        median(b_all), "µs", median(a_all), "same commit, 0 watches", ratio,
        "ratio <= 1.2 (#5's bar)",
        params={"server": server, "commit": "await db.execute('INSERT INTO hot (v) VALUES (?)')",
                "commits": f"{commits} per database, in blocks of {BLOCK} taking turns",
                "databases": f"two scratch databases, each with hot + {tables} other tables "
                "(all with capture triggers); only B has watches",
                "watch setup seconds": round(setup, 1)},
        extra={"rxdb": summary(b_all), "without": summary(a_all)},
    ).judge(ratio <= 1.2)  # fmt: skip


# -- P3 ---------------------------------------------------------------------------------------


async def _trigger_block(conn: asyncpg.Connection, count: int) -> list[float]:
    samples = []
    for i in range(count):
        t0 = clock()
        await conn.execute(TRIGGER_WRITE, i)
        samples.append((clock() - t0) * US)
    return samples


async def _concurrent_rate(url: str, count: int) -> float:
    """Single-row write transactions per second of ``WRITERS`` connections at once."""
    async with contextlib.AsyncExitStack() as stack:
        conns = [await stack.enter_async_context(_raw(url)) for _ in range(WRITERS)]
        t0 = clock()
        await asyncio.gather(*(_trigger_block(conn, count) for conn in conns))
        return WRITERS * count / (clock() - t0)


async def _trigger_cost(sizes: Sizes, url: str, server: str, results: Results) -> None:
    """P3 and P3.c, on a database no rxdb engine has open: capture installed (with) and
    removed (without) between blocks, in alternating order."""
    channel = channel_for(url.rsplit("/", 1)[1])
    per_call: dict[str, list[float]] = {"with": [], "without": []}
    rates: dict[str, list[float]] = {"with": [], "without": []}
    async with _raw(url) as conn, _raw(url) as listener:
        await conn.execute("CREATE TABLE t3 (id serial PRIMARY KEY, v integer)")
        await listener.add_listener(channel, lambda *_: None)
        for r in range(sizes.cost_rounds):
            for phase in ("with", "without") if r % 2 == 0 else ("without", "with"):
                if phase == "with":
                    await install_capture(conn, channel)
                else:
                    await uninstall_capture(conn)
                await _trigger_block(conn, sizes.warmup)
                per_call[phase] += await _trigger_block(conn, sizes.cost_commits)
                rates[phase].append(await _concurrent_rate(url, sizes.cost_commits))
    w, wo = median(per_call["with"]), median(per_call["without"])
    params = {
        "server": server,
        "write": f"{TRIGGER_WRITE} on a plain asyncpg connection (autocommit: one "
        "transaction per statement)",
        "blocks": f"{sizes.cost_rounds} rounds x {sizes.cost_commits} per side, alternating "
        "which goes first; install_capture / uninstall_capture between blocks",
        "listener": "a plain asyncpg LISTEN connection on the capture channel throughout",
    }
    results.add(
        Figure(
            "P3", "PostgreSQL: single-row write transaction with the capture triggers",
            w, "µs", wo, "same without the triggers", w / wo, NO_BAR, params=params,
            extra={"rxdb": summary(per_call["with"]), "without": summary(per_call["without"]),
                   "added (µs, median)": w - wo},
        )
    )  # fmt: skip
    rw, rwo = median(rates["with"]), median(rates["without"])
    results.add(
        Figure(
            "P3.c", f"PostgreSQL: {WRITERS} writers at once, with the capture triggers",
            rw, "tx/s", rwo, "same without the triggers", rw / rwo, NO_BAR,
            params={**params, "ratio": "with / without (throughput: higher is better)",
                    "writers": f"{WRITERS} connections x {sizes.cost_commits} transactions"},
            extra={"with": rates["with"], "without": rates["without"]},
        )
    )  # fmt: skip


# -- P4 and P5 --------------------------------------------------------------------------------


async def _shared_query(sizes: Sizes, db: rxdb.Database, server: str) -> Figure:
    """P4: N subscribers of one query; each commit must run it exactly once."""
    n = sizes.fanout_subscribers
    commits = PgCommitClock(db)
    waiters = [ValueWaiter() for _ in range(n)]
    subscriptions = [db.watch(QUERY).subscribe(w) for w in waiters]
    stream = db.watch(QUERY)
    runs_per_commit, last_latency = [], []
    try:
        row = await db.fetch_one(QUERY)
        first = row[0] if row is not None else -1
        await asyncio.gather(*(w.expect(first) for w in waiters))
        await idle(stream)
        for i in range(first + 1, first + 1 + sizes.fanout_commits):
            before = stream.statistics().runs
            arrivals = [w.expect(i) for w in waiters]
            await db.execute(UPDATE, (i,))
            stamps = await asyncio.wait_for(asyncio.gather(*arrivals), 30)
            await idle(stream)
            runs_per_commit.append(stream.statistics().runs - before)
            last_latency.append((max(stamps) - commits.last) * MS)
        subscribers = stream.statistics().subscribers
    finally:
        for sub in subscriptions:
            sub.dispose()
    return Figure(
        "P4", f"PostgreSQL: {n:,} subscribers of one query: executions per commit",
        max(runs_per_commit), "runs", bar="exactly 1 execution per commit",
        params={"server": server, "subscribers": n, "commits": sizes.fanout_commits},
        extra={"runs_per_commit": runs_per_commit, "subscribers_seen_by_statistics": subscribers,
               "commit -> last subscriber (ms)": summary(last_latency)},
    ).judge(all(r == 1 for r in runs_per_commit))  # fmt: skip


async def _overhead(sizes: Sizes, url: str, server: str) -> list[Figure]:
    """P5r, P5w: per-call cost of rxdb and raw asyncpg, in rotating blocks (#8's method).

    The raw baseline runs on rxdb's own connections (its one reader, its writer), so that
    both sides talk to the same server process (with a connection of its own, the ratio
    moved between 0.67 and 1.75 from run to run on a loaded 2-vCPU machine). Such a
    connection is measured beside them (``own connection``), as a user would compare.
    """
    async with rxdb.open(url, readers=1) as db, _raw(url) as own:
        await db.execute_script(
            "CREATE TABLE r (id integer PRIMARY KEY, v integer);"
            "CREATE TABLE w (id serial PRIMARY KEY, v integer);"
            "INSERT INTO r SELECT i, i FROM generate_series(1, 100) AS i;"
        )
        engine = db._engine
        assert isinstance(engine, PostgresEngine)
        assert engine._writer is not None
        writer: asyncpg.Connection = engine._writer.conn
        assert writer is not None
        async with engine._readers.reader() as conn:  # the one every fetch_all takes
            reader: asyncpg.Connection = conn
        raw_read, raw_write = READ.replace("?", "$1"), WRITE.replace("?", "$1")
        ops = {
            "rxdb read": lambda i: db.fetch_all(READ, (i % 100 + 1,)),
            "raw read": lambda i: reader.fetch(raw_read, i % 100 + 1),
            "rxdb write": lambda i: db.execute(WRITE, (i,)),
            "raw write": lambda i: writer.execute(raw_write, i),
            "raw SELECT 1": lambda i: reader.fetchval("SELECT 1"),
            "own connection read": lambda i: own.fetch(raw_read, i % 100 + 1),
            "own connection write": lambda i: own.execute(raw_write, i),
        }
        samples: dict[str, list[float]] = {name: [] for name in ops}
        for op in ops.values():  # warm-up, not recorded
            await _per_call(max(2, sizes.warmup // 3), op)
        await _blocks(sizes, ops, samples)
    med = {name: median(s) for name, s in samples.items()}
    params = {
        "server": server,
        "calls": f"{sizes.overhead_rounds * sizes.overhead_calls} per operation, "
        "in blocks of 25, order rotating",
        "read": READ,
        "write": WRITE,
        "raw": "asyncpg fetch / execute with $1 (autocommit, its statement cache) on rxdb's "
        "own reader / writer connection; both sides write through the capture triggers",
    }
    floor = {"raw fetchval('SELECT 1') (µs)": med["raw SELECT 1"]}
    kinds = (
        ("P5r", "read", "fetch_all overhead (point query, 1 row)", "raw fetch, rxdb's reader"),
        ("P5w", "write", "execute overhead (single-row INSERT, autocommit)", "raw execute, same"),
    )
    figures = []
    for figure_id, kind, title, label in kinds:
        rx, rw = med[f"rxdb {kind}"], med[f"raw {kind}"]
        figures.append(
            Figure(
                figure_id, f"PostgreSQL: {title}", rx, "µs", rw, label, rx / rw, NO_BAR,
                params=params,
                extra={"rxdb": summary(samples[f"rxdb {kind}"]),
                       "raw": summary(samples[f"raw {kind}"]),
                       "raw, own connection": summary(samples[f"own connection {kind}"]),
                       "floors": floor},
            )
        )  # fmt: skip
    return figures


async def run(sizes: Sizes, results: Results) -> None:
    try:
        server = await _server()
    except (OSError, asyncpg.PostgresError) as error:
        where = parse_dsn(SERVER)
        print(f"postgres group not run: no PostgreSQL at {where.host}:{where.port} ({error})")
        return
    async with _scratch() as url:
        await _emission(sizes, url, server, results)
        async with rxdb.open(url) as db:
            results.add(await _shared_query(sizes, db, server))
        for figure in await _overhead(sizes, url, server):
            results.add(figure)
        await _trigger_cost(sizes, url, server, results)
    results.add(await _commit_cost(sizes, server))
