"""``python -m benchmarks [--quick | --smoke] [--json PATH] [--charts DIR] [--only NAME,...]
[--repeat N]``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import shlex
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import (
    big_results,
    breakdown,
    bulk,
    charts,
    fanout,
    imports,
    issue14,
    journal,
    latency,
    machine,
    overhead,
    parsing,
    peer,
    polling,
    postgres,
    precision,
    processes,
    repeat,
    report,
    scheduling,
)
from ._common import FULL, QUICK, SMOKE, Results, Sizes

Group = Callable[[Sizes, Results], Awaitable[None]]
GROUPS: dict[str, tuple[str, Group]] = {
    "latency": ("#1, #1b, #2", latency.run),
    "processes": ("#3: writer in another process, through the hub", processes.run),
    "fanout": ("#5 (+ watcher sweep), #6, #7", fanout.run),
    "overhead": ("#8, #10, aiosqlite hop floor", overhead.run),
    "breakdown": ("layer-by-layer cost of fetch_all and execute", breakdown.run),
    "parser": ("#9", parsing.run),
    "polling": ("#11, #4", polling.run),
    "scheduling": ("S1-S3: cheap work while a slow watch re-runs", scheduling.run),
    "journal": ("cost per written row of track_foreign_writes' triggers", journal.run),
    "big": ("B1-B3: loop stall and memory of a big watch re-run vs raw aiosqlite", big_results.run),
    "postgres": ("P1-P5: the same watches on PostgreSQL (its server on loopback)", postgres.run),
    "peer": ("write start -> emission vs litewriter, both at NORMAL (issue #14)", peer.run),
    "bulk": ("M1: execute_many outside a transaction, and the loop meanwhile", bulk.run),
    "imports": ("import rxdb vs import aiosqlite, sqlglot, reactivex (issue #14)", imports.run),
    "precision": ("R1-R15, C1, C2: re-runs per commit, column- vs table-level", precision.run),
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    groups = ", ".join(f"{name} ({what})" for name, (what, _) in GROUPS.items())
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes: < 2 min on 2 cores")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, only to check it runs")
    p.add_argument("--json", metavar="PATH", help="write every figure, with samples, as JSON")
    p.add_argument("--charts", metavar="DIR", help="write PNG charts there (needs matplotlib)")
    p.add_argument("--only", metavar="NAME,...", help=f"run only these groups: {groups}")
    p.add_argument(
        "--repeat",
        metavar="N",
        type=int,
        default=1,
        help="run the groups N times; each figure is then the median of the runs' figures "
        "(the JSON keeps every run's values)",
    )
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat needs N >= 1")
    args.groups = list(GROUPS) if not args.only else [g.strip() for g in args.only.split(",")]
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        p.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    return args


async def run_groups(
    sizes: Sizes, names: Sequence[str], results: Results, failed: list[str] | None = None
) -> dict[str, float]:
    """Run the groups in turn. Given ``failed``, a group that raises is reported (its
    traceback printed, its name appended) and the others still run: one PostgreSQL restart by
    another suite must not cost a long ``--repeat`` run everything it measured."""
    seconds = {}
    for name in names:
        gc.collect()
        t0 = time.perf_counter()
        try:
            await GROUPS[name][1](sizes, results)
        except Exception:
            if failed is None:
                raise
            traceback.print_exc()
            print(f"group {name} failed (traceback above); the run goes on without the rest of it")
            failed.append(name)
        seconds[name] = round(time.perf_counter() - t0, 1)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    facts = machine.facts()
    print(f"rxdb benchmarks, {sizes.name} mode: {command}")
    print("machine: " + "; ".join(f"{k} {v}" for k, v in facts.items() if k != "executable"))
    runs: list[Results] = []
    seconds: list[dict[str, float]] = []
    loads = []
    failed: list[str] = []
    t0 = time.perf_counter()
    for n in range(args.repeat):
        if args.repeat > 1:
            print(f"run {n + 1} of {args.repeat}, load average {machine.load_average()}")
        runs.append(Results())
        seconds.append(asyncio.run(run_groups(sizes, args.groups, runs[-1], failed)))
        loads.append(machine.load_average())
    elapsed = time.perf_counter() - t0
    results = runs[0] if args.repeat == 1 else repeat.merge(runs)
    facts["load average at end"] = loads[-1]
    print()
    if args.repeat > 1:
        print(f"Median of {args.repeat} runs (load average after each: {loads}):")
    print(report.table(results))
    print()
    print("Parameters:")
    print(report.parameters(results))
    print("\n#14 table (each row judged against issue #14's goal):")
    print(issue14.table(results))
    print(f"\n{len(results.figures)} figures in {elapsed:.0f} s ({seconds})")
    meta: dict[str, Any] = {
        "command": command,
        "mode": sizes.name,
        "sizes": sizes.asdict(),
        "machine": facts,
        "runs": args.repeat,
        "load average after each run": loads,
        "seconds": seconds[0] if args.repeat == 1 else seconds,
        "issue_14": issue14.judge(results),
        "failed groups": failed,
    }
    if args.charts:
        if charts.available():
            subtitle = (
                f"{facts['cpu']}, {facts['cores']} cores, Python {facts['python']}, "
                f"SQLite {facts['sqlite']} ({sizes.name} mode)"
            )
            for path in charts.draw(results, args.charts, subtitle):
                print(f"chart: {path}")
        else:
            print("charts skipped: matplotlib is not installed (pip install 'rxdb[bench]')")
    if args.json:
        report.write_json(args.json, report.to_json(results, meta))
        print(f"json: {args.json}")
    if failed:
        print(f"failed groups (their tracebacks are above): {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
