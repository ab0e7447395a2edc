"""What loading rxdb costs a program, against loading the three libraries it is built on.

Each sample is a fresh child process of this project's Python (``python -c``, run from the
repository's root so that this tree's ``rxdb`` is the one imported) that times one import
statement with ``perf_counter`` and prints the seconds and how many modules it left loaded.
The statements, in an order that rotates every round (one warm-up round, which writes the
bytecode caches, is not counted):

- baseline: ``import aiosqlite, sqlglot, reactivex``;
- ``imp``: ``import rxdb`` (issue #14's row; the façade loads its heavy parts lazily);
- ``imp.o``: ``import rxdb`` then ``rxdb.open`` (the attribute: what the façade loads for it);
- ``imp.q`` against ``baseline.q``: a program's real start, the imports, then opening a file
  database in a new temporary directory, one query, closing it, under ``asyncio.run``:
  rxdb against the same with aiosqlite and sqlglot parsing the query in SQLite's dialect, as
  rxdb does (rxdb's open also joins the file's cross-process hub, starts its threads and reads
  the schema). Information, no bar.

Issue #14's goal for ``imp`` and ``imp.o``: <= 1.2x the baseline (medians).

The children write and read bytecode caches in a directory of their own
(``PYTHONPYCACHEPREFIX``, whatever ``PYTHONDONTWRITEBYTECODE`` says here), as an installed
package does: without them every sample of rxdb compiled its modules from source while the
baseline's libraries, installed with their caches, did not.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from typing import Any

from ._common import Figure, Results, Sizes, child_json, median, summary

GOAL = 1.2
_STARTED = """\
import asyncio, os, tempfile, {imports}
async def _start():
    async with {open}(os.path.join(tempfile.mkdtemp(), "start.db")) as db:
        {parse}await db.{query}("SELECT 1")
asyncio.run(_start())"""
ROUNDS = {"smoke": 2, "quick": 10, "full": 20}
STATEMENTS = {
    "baseline": "import aiosqlite, sqlglot, reactivex",
    "imp": "import rxdb",
    "imp.o": "import rxdb; rxdb.open",
    "baseline.q": _STARTED.format(
        imports="aiosqlite, sqlglot, reactivex",
        open="aiosqlite.connect",
        parse='sqlglot.parse_one("SELECT 1", read="sqlite"); ',
        query="execute_fetchall",
    ),
    "imp.q": _STARTED.format(imports="rxdb", open="rxdb.open", parse="", query="fetch_all"),
}
_TIMED = """\
import sys, time, json
start = time.perf_counter()
{statement}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "modules": len(sys.modules)}}))
"""
MS = 1e3


def _sample(statement: str, env: dict[str, str]) -> dict[str, Any]:
    return child_json([sys.executable, "-c", _TIMED.format(statement=statement)], 120, env=env)


def _samples(rounds: int) -> dict[str, list[dict[str, Any]]]:
    kinds = list(STATEMENTS)
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="rxdb-bench-pycache-") as caches:
        env = {**os.environ, "PYTHONPYCACHEPREFIX": caches}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for n in range(rounds + 1):
            order = kinds[n % len(kinds) :] + kinds[: n % len(kinds)]
            for kind in order:
                sample = _sample(STATEMENTS[kind], env)
                if n:  # round 0 writes the bytecode caches
                    out[kind].append(sample)
    return out


async def run(sizes: Sizes, results: Results) -> None:
    rounds = ROUNDS[sizes.name]
    samples = await asyncio.to_thread(_samples, rounds)
    base = [s["seconds"] * MS for s in samples["baseline"]]
    base_median = median(base)
    params = {
        "rounds": f"{rounds} after one warm-up round; each sample a fresh `python -c` from the "
        "repository's root, perf_counter around the statement; the order rotates per round; "
        "bytecode caches in a directory of the run's own (PYTHONPYCACHEPREFIX)",
        "baseline": STATEMENTS["baseline"],
    }
    titles = {
        "imp": "`import rxdb` in a fresh process",
        "imp.o": "`import rxdb` + `rxdb.open` (what opening a database needs loaded)",
    }
    for kind, title in titles.items():
        ours = [s["seconds"] * MS for s in samples[kind]]
        ratio = median(ours) / base_median
        extra: dict[str, Any] = {
            "rxdb": summary(ours),
            "baseline": summary(base),
            "modules loaded": median([s["modules"] for s in samples[kind]]),
            "modules loaded by the baseline": median([s["modules"] for s in samples["baseline"]]),
        }
        results.add(
            Figure(
                kind, title, median(ours), "ms", base_median, STATEMENTS["baseline"], ratio,
                f"<= {GOAL:g}x (issue #14)", params={**params, "statement": STATEMENTS[kind]},
                extra=extra,
            )
        ).judge(ratio <= GOAL)  # fmt: skip
    started = [s["seconds"] * MS for s in samples["imp.q"]]
    started_base = [s["seconds"] * MS for s in samples["baseline.q"]]
    results.add(
        Figure(
            "imp.q", "a program's start: import, open a file, one query, close (asyncio.run)",
            median(started), "ms", median(started_base), "the same with aiosqlite",
            median(started) / median(started_base), "(information, no bar)",
            params={**params, "statement": "import rxdb; asyncio.run: async with "
                    "rxdb.open(a new file) as db: await db.fetch_all('SELECT 1')",
                    "baseline": "import aiosqlite, sqlglot, reactivex; the same with "
                    "aiosqlite.connect and execute_fetchall, and sqlglot.parse_one of the "
                    "query (read='sqlite')"},
            extra={"rxdb": summary(started), "baseline": summary(started_base)},
        )
    )  # fmt: skip
