"""The command line: ``python -m rxdb``, ``rxdb watch`` and the demo."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import fcntl
import io
import json
import os
import pty
import queue
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import rxdb
from rxdb import cli, demo, terminal
from tests.conftest import WAIT

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

    def test_demo_prints_the_queries_it_watches_and_what_its_figures_mean(self) -> None:
        out = io.StringIO()
        assert demo.run(seconds=0.1, rate=10, out=out) == 0
        text = out.getvalue()
        for label, (sql, _) in demo.QUERIES.items():
            assert f"  {label:<8} {sql}\n" in text
        summary = text[text.index("done:") :]
        assert "  runs:        how often a watch ran its query" in summary
        assert "  new results: the runs whose result differed" in summary

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

    def test_unknown_command_exits_nonzero_with_one_line_pointing_to_help(self) -> None:
        result = run_module("frobnicate")
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "frobnicate" in result.stderr
        assert "see 'rxdb --help'" in result.stderr

    def test_version_is_the_one_pyproject_declares(self) -> None:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        result = run_module("--version")
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"rxdb {declared}\n"

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


# ---------------------------------------------------------------------------------------------
# rxdb watch


def make_file(path: Path, journal: str = "wal") -> None:
    """A database with ``t(id, name)`` holding one row, made by plain sqlite3."""
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA journal_mode = {journal}")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO t VALUES (1, 'ada')")
    connection.close()


def write(path: Path, sql: str) -> None:
    """Commit one statement as another program would (plain sqlite3, not rxdb)."""
    with sqlite3.connect(path) as connection:
        connection.execute(sql)
    connection.close()


class Results:
    """What a watch showed; lets a test wait until it shows something."""

    def __init__(self) -> None:
        self.shown: list[list[rxdb.Row]] = []
        self.changed = asyncio.Event()

    def show(self, rows: list[rxdb.Row]) -> None:
        self.shown.append(rows)
        self.changed.set()

    async def wait_for(self, condition: Callable[[list[list[rxdb.Row]]], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition(self.shown):
                self.changed.clear()
                await self.changed.wait()


@contextmanager
def watching(
    target: str, sql: str, *params: Any, show: terminal.Show
) -> Iterator[asyncio.Task[None]]:
    task = asyncio.get_running_loop().create_task(terminal.watch(target, sql, params, show))
    try:
        yield task
    finally:
        task.cancel()


@contextmanager
def watching_throttled(
    target: str, sql: str, throttle: float, show: terminal.Show
) -> Iterator[asyncio.Task[None]]:
    watch = terminal.watch(target, sql, (), show, throttle)
    task = asyncio.get_running_loop().create_task(watch)
    try:
        yield task
    finally:
        task.cancel()


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class TestWatchInProcess:
    async def test_json_lines_show_each_new_result_with_column_names(self, tmp_path: Path) -> None:
        path = tmp_path / "a.db"
        make_file(path)
        out = io.StringIO()
        results = Results()
        to_json = terminal.json_lines(out)

        def show(rows: list[rxdb.Row]) -> None:
            to_json(rows)
            results.show(rows)

        with watching(
            str(path), "SELECT id, name FROM t WHERE id >= ? ORDER BY id", 1, show=show
        ) as task:
            await results.wait_for(lambda shown: len(shown) == 1)
            write(path, "INSERT INTO t VALUES (2, 'grace')")
            await results.wait_for(lambda shown: len(shown) == 2)
            await stop(task)
        assert [json.loads(line) for line in out.getvalue().splitlines()] == [
            [{"id": 1, "name": "ada"}],
            [{"id": 1, "name": "ada"}, {"id": 2, "name": "grace"}],
        ]

    async def test_table_is_printed_again_after_each_change_off_a_terminal(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "a.db"
        make_file(path)
        out = io.StringIO()
        results = Results()
        with terminal.LiveTable(Console(file=out, width=80), "names") as draw:

            def show(rows: list[rxdb.Row]) -> None:
                draw(rows)
                results.show(rows)

            with watching(str(path), "SELECT name FROM t", show=show) as task:
                await results.wait_for(lambda shown: len(shown) == 1)
                write(path, "UPDATE t SET name = 'lovelace'")
                await results.wait_for(lambda shown: len(shown) == 2)
                await stop(task)
        text = out.getvalue()
        assert text.count("names") == 2  # two tables, one after the other
        assert text.index("ada") < text.index("lovelace")
        assert text.count("1 row") == 2

    async def test_the_file_is_left_as_it_was_read_only(self, tmp_path: Path) -> None:
        path = tmp_path / "a.db"
        make_file(path, journal="delete")
        results = Results()
        with watching(str(path), "SELECT count(*) FROM t", show=results.show) as task:
            await results.wait_for(lambda shown: shown == [[(1,)]])
            await stop(task)
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        connection.close()

    async def test_throttle_shows_the_first_result_then_only_the_last_of_a_burst(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "a.db"
        make_file(path)
        results = Results()
        with watching_throttled(str(path), "SELECT count(*) FROM t", 3.0, results.show) as task:
            await results.wait_for(lambda shown: len(shown) == 1)
            for n in range(2, 12):  # well inside one interval: none of these shows at once
                write(path, f"INSERT INTO t VALUES ({n}, 'x')")
            await results.wait_for(lambda shown: shown[-1] == [(11,)])
            await stop(task)
        assert results.shown == [[(1,)], [(11,)]]

    async def test_a_query_that_fails_later_ends_the_watch_with_its_error(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "a.db"
        make_file(path)
        results = Results()
        with watching(str(path), "SELECT name FROM t", show=results.show) as task:
            await results.wait_for(lambda shown: len(shown) == 1)
            write(path, "DROP TABLE t")  # a migration, say
            with pytest.raises(rxdb.OperationalError, match="no such table: t"):
                await asyncio.wait_for(task, WAIT)

    async def test_a_missing_file_is_refused_and_not_created(self, tmp_path: Path) -> None:
        path = tmp_path / "missing.db"
        with pytest.raises(rxdb.OperationalError, match=r"no database file at .*missing\.db"):
            await terminal.watch(str(path), "SELECT 1", (), Results().show)
        assert not path.exists()

    async def test_an_in_memory_database_is_watched(self) -> None:
        results = Results()
        with watching(":memory:", "SELECT ? AS answer", 42, show=results.show) as task:
            await results.wait_for(lambda shown: shown == [[(42,)]])
            await stop(task)

    @pytest.mark.postgres
    async def test_a_postgresql_url_sees_another_connections_commits(self) -> None:
        from tests.rxdb.postgres_worker import SERVER, scratch_database

        async with scratch_database() as name:
            url = f"{SERVER}/{name}"
            async with rxdb.open(url) as db:
                await db.execute("CREATE TABLE t (id int PRIMARY KEY)")
                results = Results()
                with watching(url, "SELECT count(*) AS n FROM t", show=results.show) as task:
                    await results.wait_for(lambda shown: shown[-1:] == [[(0,)]])
                    await db.execute("INSERT INTO t VALUES (1)")
                    await results.wait_for(lambda shown: shown[-1:] == [[(1,)]])
                    await stop(task)


class TestWatchPieces:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("42", 42),
            ("-1.5", -1.5),
            ("true", True),
            ("null", None),
            ('"42"', "42"),
            ("ada", "ada"),
            ("[1, 2]", "[1, 2]"),
            ("007", "007"),
        ],
    )
    def test_a_parameter_is_a_json_scalar_or_else_text(self, text: str, value: object) -> None:
        assert terminal.parse_param(text) == value
        assert type(terminal.parse_param(text)) is type(value)

    def test_json_lines_write_each_result_as_one_line_of_objects(self) -> None:
        row = rxdb.rows.row_class(("blob", "money", "day", "none"))
        out = io.StringIO()
        show = terminal.json_lines(out)
        show([row((b"\x01\x02", decimal.Decimal("0.10"), datetime.date(2026, 12, 3), None))])
        show([])
        assert out.getvalue().splitlines() == [
            '[{"blob":"AQI=","money":"0.10","day":"2026-12-03","none":null}]',
            "[]",
        ]

    def test_a_table_longer_than_its_limit_says_how_many_it_shows(self) -> None:
        row = rxdb.rows.row_class(("n",))
        out = io.StringIO()
        Console(file=out, width=60).print(
            terminal.table([row((i,)) for i in range(50)], ("n",), "q", 5)
        )
        text = out.getvalue()
        assert "50 rows, the first 5 shown" in text
        assert "│ 4 │" in text
        assert "│ 5 │" not in text

    def test_an_empty_first_result_is_drawn_as_no_rows(self) -> None:
        out = io.StringIO()
        with terminal.LiveTable(Console(file=out, width=60), "q") as draw:
            draw([])
        assert "0 rows" in out.getvalue()


class TestWatchErrors:
    """Each is one line on stderr and status 1 (run in process: main() is the whole command)."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["SELECT * FROM nowhere"], "rxdb watch: no such table: nowhere"),
            (["SELEC 1"], 'rxdb watch: near "SELEC": syntax error'),
            (["SELECT * FROM t WHERE id = ?"], "rxdb watch: Incorrect number of bindings"),
            (["DELETE FROM t"], "rxdb watch: only queries can be watched"),
        ],
    )
    def test_a_query_that_cannot_be_watched(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
    ) -> None:
        make_file(tmp_path / "a.db")
        assert cli.main(["watch", str(tmp_path / "a.db"), *args, "--json"]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith(message), captured.err
        assert captured.err.count("\n") == 1
        assert captured.out == ""

    def test_a_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert cli.main(["watch", str(tmp_path / "none.db"), "SELECT 1"]) == 1
        assert capsys.readouterr().err == (
            f"rxdb watch: no database file at '{tmp_path / 'none.db'}' "
            "(rxdb watch does not create one)\n"
        )

    def test_a_server_that_is_not_there(self, capsys: pytest.CaptureFixture[str]) -> None:
        url = "postgresql://postgres@127.0.0.1:1/test"  # port 1: nothing listens
        assert cli.main(["watch", url, "SELECT 1", "--json"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("rxdb watch: cannot connect to PostgreSQL"), err
        assert err.count("\n") == 1

    def test_the_table_without_rich_points_to_the_extra_and_to_json(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_file(tmp_path / "a.db")
        monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails as if absent
        assert cli.main(["watch", str(tmp_path / "a.db"), "SELECT 1"]) == 1
        assert capsys.readouterr().err == (
            "rxdb watch: the live table needs rich: pip install 'rxdb[cli]' (or use --json)\n"
        )

    @pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "fast"])
    def test_a_throttle_that_is_not_a_positive_number(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["watch", str(tmp_path / "a.db"), "SELECT 1", "--throttle", value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("rxdb watch: error: argument --throttle: "), err
        assert err.count("\n") == 1

    def test_missing_arguments_are_one_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["watch"])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == (
            "rxdb watch: error: the following arguments are required: DB, SQL "
            "(see 'rxdb watch --help')\n"
        )


# ---------------------------------------------------------------------------------------------
# Ctrl-C, in a real process


def _interruptible() -> None:
    """In the child, before it runs Python: Ctrl-C as at a terminal. A command started in the
    background by a non-interactive shell (``bash .ci/run &``) ignores SIGINT, and so do its
    children: Python then installs no KeyboardInterrupt handler, and ``interrupt()`` would
    wait for nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Process:
    """``python -m rxdb ARGS`` with its stdout read on a thread, so a test can wait for what it
    shows. With ``terminal_size``, stdout is a pseudo-terminal (the screen a user would see)."""

    def __init__(self, *args: str, terminal_size: tuple[int, int] | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if terminal_size is None:
            self.screen, stdout = os.pipe()
        else:
            self.screen, stdout = pty.openpty()
            rows, columns = terminal_size
            fcntl.ioctl(stdout, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            env.update(TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rxdb", *args],
                stdout=stdout,
                stderr=subprocess.PIPE,
                env=env,
                preexec_fn=_interruptible,
            )
        finally:
            os.close(stdout)
        self.chunks: queue.Queue[str] = queue.Queue()
        self.seen = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.screen, 65536)
            except OSError:  # EIO: the process closed its end of the pseudo-terminal
                chunk = b""
            self.chunks.put(chunk.decode("utf-8", "replace"))
            if not chunk:
                return

    def wait_for(self, text: str) -> None:
        while text not in self.seen:
            chunk = self.chunks.get(timeout=WAIT)
            assert chunk, f"ended before showing {text!r}: {self.seen!r}"
            self.seen += chunk

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; return the exit status and what the process wrote to stderr."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=WAIT * 3)
        return self.process.returncode, err.decode()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
        self.reader.join(WAIT)
        os.close(self.screen)


@contextmanager
def running(*args: str, terminal_size: tuple[int, int] | None = None) -> Iterator[Process]:
    process = Process(*args, terminal_size=terminal_size)
    try:
        yield process
    finally:
        process.close()


class TestInterrupt:
    def test_ctrl_c_ends_watch_json_without_a_traceback(self, tmp_path: Path) -> None:
        make_file(tmp_path / "a.db")
        with running("watch", str(tmp_path / "a.db"), "SELECT name FROM t", "--json") as cmd:
            cmd.wait_for('[{"name":"ada"}]\n')
            write(tmp_path / "a.db", "UPDATE t SET name = 'grace'")
            cmd.wait_for('[{"name":"grace"}]\n')
            status, err = cmd.interrupt()
        assert status == cli.INTERRUPTED
        assert "Traceback" not in err
        assert err == ""

    def test_ctrl_c_ends_the_live_table_on_a_terminal_without_a_traceback(
        self, tmp_path: Path
    ) -> None:
        make_file(tmp_path / "a.db")
        with running(
            "watch", str(tmp_path / "a.db"), "SELECT id, name FROM t", terminal_size=(24, 80)
        ) as cmd:
            cmd.wait_for("ada")
            write(tmp_path / "a.db", "INSERT INTO t VALUES (2, 'grace')")
            cmd.wait_for("grace")
            cmd.wait_for("2 rows")
            status, err = cmd.interrupt()
        assert status == cli.INTERRUPTED
        assert err == ""

    @pytest.mark.timeout(90)
    @pytest.mark.parametrize(
        ("rate", "shown"),
        [
            ("5", " ms  counter "),  # the watches have started; the writer may not have
            # At 1000 commits a second the writer is inside a statement when Ctrl-C comes:
            # the demo once blocked the loop that statement waits for, and never ended.
            ("1000", " ms  writer "),
        ],
        ids=["as-the-watches-start", "while-the-writer-commits"],
    )
    def test_ctrl_c_ends_the_demo_without_a_traceback(self, rate: str, shown: str) -> None:
        with running("demo", "--seconds", "60", "--rate", rate) as cmd:
            cmd.wait_for(shown)
            status, err = cmd.interrupt()
        assert status == cli.INTERRUPTED
        assert "Traceback" not in err
        assert err == ""

    def test_a_reader_that_goes_away_ends_watch_json_quietly(self, tmp_path: Path) -> None:
        make_file(tmp_path / "a.db")
        command = ["watch", str(tmp_path / "a.db"), "SELECT name FROM t", "--json"]
        process = subprocess.Popen(
            [sys.executable, "-m", "rxdb", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b'[{"name":"ada"}]\n'
            process.stdout.close()  # as `| head -1` does once it has its line
            write(tmp_path / "a.db", "UPDATE t SET name = 'grace'")  # the next line fails
            _, err = process.communicate(timeout=WAIT * 3)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert process.returncode == 0
        assert err == b""
