"""The price of ``track_foreign_writes``: what its triggers add to every written row.

The triggers live in the file and fire for every writer, so the cost is measured where any
program pays it: a plain ``sqlite3`` connection writing rows, once without and once with
the journal triggers on the same schema, alternating rounds, same rows. Reported per row for
INSERT, UPDATE and DELETE in one transaction, and per commit for single-row commits.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence

from rxdb.engines.sqlite.journal import _CREATE_JOURNAL, trigger_sql
from rxdb.updates import UpdateKind

from ._common import Figure, Results, Sizes, clock, median, workdir

US = 1e6


def _open(path: str, journal: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # FULL's fsync would drown the difference
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x INTEGER, y TEXT)")
    if journal:
        conn.execute(_CREATE_JOURNAL)
        for kind in UpdateKind:
            conn.execute(trigger_sql("t", kind)[1])
    return conn


def _timed(conn: sqlite3.Connection, work: Callable[[], None]) -> float:
    t0 = clock()
    work()
    return clock() - t0


def _one_round(path: str, journal: bool, rows: int, commits: int) -> dict[str, float]:
    """Seconds per row (or per commit) for each operation, on a fresh file."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    conn = _open(path, journal)
    try:
        data = [(i, i, "x" * 20) for i in range(rows)]

        def in_one_transaction(
            sql: str, params: Sequence[tuple[object, ...]]
        ) -> Callable[[], None]:
            def work() -> None:
                conn.execute("BEGIN")
                conn.executemany(sql, params)
                conn.execute("COMMIT")

            return work

        insert = _timed(conn, in_one_transaction("INSERT INTO t VALUES (?, ?, ?)", data))
        update = _timed(
            conn,
            in_one_transaction("UPDATE t SET x = x + 1 WHERE id = ?", [(i,) for i in range(rows)]),
        )
        delete = _timed(
            conn, in_one_transaction("DELETE FROM t WHERE id = ?", [(i,) for i in range(rows)])
        )

        def single_commits() -> None:
            for i in range(commits):
                conn.execute("INSERT INTO t VALUES (?, ?, ?)", (rows + i, i, "y"))

        single = _timed(conn, single_commits)
    finally:
        conn.close()
    return {
        "insert": insert / rows,
        "update": update / rows,
        "delete": delete / rows,
        "commit": single / commits,
    }


async def run(sizes: Sizes, results: Results) -> None:
    rows = sizes.overhead_calls * 50
    commits = sizes.overhead_calls * 5
    rounds = max(3, sizes.overhead_rounds)
    samples: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    with workdir() as directory:
        path = os.path.join(directory, "journal.db")
        for _ in range(rounds):
            for journal in (False, True):
                samples[journal].append(_one_round(path, journal, rows, commits))
    params = {
        "writer": "plain sqlite3, WAL, synchronous=NORMAL",
        "rows": rows,
        "single-row commits": commits,
        "rounds": f"{rounds}, alternating without/with the triggers, medians shown",
    }
    what = {
        "insert": "INSERT, per row (one transaction)",
        "update": "UPDATE, per row (one transaction)",
        "delete": "DELETE, per row (one transaction)",
        "commit": "single-row INSERT commit",
    }
    for index, (op, title) in enumerate(what.items(), start=1):
        without = median([s[op] for s in samples[False]]) * US
        with_ = median([s[op] for s in samples[True]]) * US
        results.add(
            Figure(
                f"J{index}", f"journal triggers: {title}", with_, "µs", baseline=without,
                baseline_label="same without the triggers", ratio=with_ / without,
                params=params, extra={"added µs": with_ - without},
            )
        ).judge(None)  # fmt: skip
