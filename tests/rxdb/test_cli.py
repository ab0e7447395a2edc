"""The command line: ``python -m rxdb`` and its demo."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
from collections import Counter

import pytest

from rxdb import cli, demo

LINE = re.compile(r"^\s*\d+ ms  (\w+)\s")


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rxdb", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def labels(output: str) -> Counter[str]:
    """How many result lines each label printed."""
    return Counter(m.group(1) for m in map(LINE.match, output.splitlines()) if m)


class TestDemo:
    @pytest.mark.timeout(90)
    def test_demo_shows_updates_for_every_watch_when_run_as_module(self) -> None:
        result = run_module("demo", "--seconds", "1", "--rate", "20")
        assert result.returncode == 0, result.stderr
        seen = labels(result.stdout)
        # The first line of each label is the initial result; a second one is an update.
        for label in demo.QUERIES:
            assert seen[label] >= 2, (label, result.stdout)
        assert seen["writer"] >= 1
        assert "done:" in result.stdout
        assert result.stderr == ""

    def test_demo_ends_with_every_thread_joined_when_run_in_process(self) -> None:
        threads_before = set(threading.enumerate())
        out = io.StringIO()
        assert demo.run(seconds=0.3, rate=20, out=out) == 0
        seen = labels(out.getvalue())
        assert all(seen[label] >= 2 for label in demo.QUERIES), out.getvalue()
        assert set(threading.enumerate()) <= threads_before

    def test_demo_removes_its_temporary_directory(self) -> None:
        out = io.StringIO()
        assert demo.run(seconds=0.1, rate=10, out=out) == 0
        match = re.search(r"queries on (\S+)", out.getvalue())
        assert match is not None
        assert not os.path.exists(match.group(1))

    def test_demo_reports_a_failing_watch_without_waiting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(demo.QUERIES, "broken", ("SELECT * FROM missing", str))
        out = io.StringIO()
        assert demo.run(seconds=30, rate=1, out=out) == 1
        assert "failed: OperationalError" in out.getvalue()
        assert "no such table: missing" in out.getvalue()


class TestCommandLine:
    def test_help_lists_the_demo_command(self) -> None:
        result = run_module("--help")
        assert result.returncode == 0
        assert "usage: rxdb" in result.stdout
        assert "demo" in result.stdout

    def test_demo_help_lists_its_options(self) -> None:
        result = run_module("demo", "--help")
        assert result.returncode == 0
        assert "--seconds" in result.stdout
        assert "--rate" in result.stdout

    def test_unknown_command_exits_nonzero_with_usage(self) -> None:
        result = run_module("frobnicate")
        assert result.returncode != 0
        assert "usage: rxdb" in result.stderr
        assert "frobnicate" in result.stderr

    def test_missing_command_exits_nonzero_with_usage(self) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([])
        assert exit_info.value.code == 2

    @pytest.mark.parametrize("value", ["0", "-1", "fast"])
    def test_demo_rejects_a_rate_that_is_not_positive(
        self, value: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["demo", "--rate", value])
        assert exit_info.value.code == 2
        assert "--rate" in capsys.readouterr().err
