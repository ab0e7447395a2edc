"""The benchmark suite still runs (tiny sizes). Benchmarks are not tests: nothing here
asserts a timing, only that every group produces its figures and the outputs are written."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import charts, report
from benchmarks._common import SMOKE, Results

ROOT = Path(__file__).resolve().parent.parent
# Every figure the report knows how to order must be produced by some group, and no other.
EXPECTED = set(report.ORDER)


@pytest.mark.postgres  # the postgres group runs on the machine's server
def test_benchmarks_every_group_produces_its_figures() -> None:
    results = Results()
    asyncio.run(cli.run_groups(SMOKE, list(cli.GROUPS), results))
    ids = {f.id for f in results.figures}
    assert ids == EXPECTED
    for figure in results.figures:
        assert figure.status in {"pass", "miss", "info", "not built (issue 4)"}, figure
    assert next(f for f in results.figures if f.id == "6").status == "pass"  # a count, not a time
    table = report.table(results)
    assert table.count("\n") == len(EXPECTED) + 1
    payload = report.to_json(results, {"mode": "smoke"})
    json.dumps(payload, default=str)


def test_benchmarks_charts_are_drawn(tmp_path: Path) -> None:
    if not charts.available():
        pytest.skip("matplotlib is not installed (the optional 'bench' extra)")
    results = Results()
    asyncio.run(cli.run_groups(SMOKE, ["latency"], results))
    results.series["watchers"] = [
        {"watches": n, "with": {"median": 1.0, "p99": 2.0}, "without": {"median": 1.0, "p99": 2.0}}
        for n in (0, 10)
    ]
    paths = charts.draw(results, str(tmp_path), "smoke")
    assert sorted(Path(p).name for p in paths) == ["bench-latency.png", "bench-watchers.png"]


def test_benchmarks_command_line_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "parser", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(out.read_text())
    assert payload["mode"] == "smoke"
    assert {f["id"] for f in payload["figures"]} == {"9c", "9w"}
    assert payload["machine"]["sqlite"]


def test_benchmarks_command_line_rejects_unknown_group() -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--only", "nope"])
