"""The edges of the public API: leaving without close, read-only files, wrong arguments.

Every error a caller can meet is an :class:`rxdb.RxdbError`; a script that forgets
``close()`` still exits; a file the process may not write can still be read and watched.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.options import OPTION_NAMES
from tests.conftest import WAIT, Recorder, sqlite_engine, subscribed

BIG = 2**63  # one past SQLite's largest INTEGER


def make_file(path: Path, *, wal: bool = False) -> None:
    """A database with ``t(x)`` holding one row, written by plain sqlite3."""
    connection = sqlite3.connect(path)
    try:
        if wal:
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE t(x)")
        connection.execute("INSERT INTO t VALUES (1)")
        connection.commit()
    finally:
        connection.close()


def journal_mode(path: Path) -> str:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        connection.close()


def foreign_insert(path: Path, value: int) -> None:
    """A commit by a program that is not rxdb."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("INSERT INTO t VALUES (?)", (value,))
        connection.commit()
    finally:
        connection.close()


@contextlib.contextmanager
def unraisable() -> Iterator[list[str]]:
    """Collect what would be printed as 'Exception ignored in ...' meanwhile."""
    seen: list[str] = []
    saved = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append(f"{info.object!r}: {info.exc_value!r}")
    try:
        yield seen
        gc.collect()
    finally:
        sys.unraisablehook = saved


# -- a script that forgets close() ------------------------------------------------------------

LEAKY_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import rxdb

    async def main(path: str) -> None:
        db = await rxdb.open(path)
        await db.execute("CREATE TABLE t(x)")
        await db.execute("INSERT INTO t VALUES (42)")
        async for rows in db.watch("SELECT x FROM t"):
            print(rows, flush=True)
            break
        # returns without db.close()

    asyncio.run(main(sys.argv[1]))
    """
)


class TestExitWithoutClose:
    def test_script_without_close_exits_warns_and_keeps_its_commits(self, db_path: Path) -> None:
        try:
            done = subprocess.run(
                [sys.executable, "-W", "default", "-c", LEAKY_SCRIPT, str(db_path)],
                capture_output=True,
                text=True,
                timeout=3 * WAIT,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            pytest.fail(f"the script hung at exit: {expired.stderr!r}")
        assert done.returncode == 0, done.stderr
        assert "[Row(x=42)]" in done.stdout
        assert "ResourceWarning" in done.stderr
        assert "await db.close()" in done.stderr  # the fix, named
        assert "Traceback" not in done.stderr, done.stderr
        assert "Exception" not in done.stderr, done.stderr
        connection = sqlite3.connect(db_path)
        try:
            assert connection.execute("SELECT x FROM t").fetchall() == [(42,)]
        finally:
            connection.close()


# -- read-only databases ----------------------------------------------------------------------


class TestReadOnly:
    @pytest.mark.parametrize("how", ["keyword", "uri", "immutable"])
    async def test_read_only_file_reads_and_refuses_writes(self, db_path: Path, how: str) -> None:
        make_file(db_path)
        path, options = {
            "keyword": (str(db_path), {"read_only": True}),
            "uri": (f"file:{db_path}?mode=ro", {}),
            "immutable": (f"file:{db_path}?immutable=1", {}),
        }[how]
        async with rxdb.open(path, **options) as db:
            assert await db.fetch_all("SELECT x FROM t") == [(1,)]
            async with db.read() as session:
                assert await session.fetch_all("SELECT count(*) FROM t") == [(1,)]
            with pytest.raises(rxdb.ReadOnlyError, match="read-only"):
                await db.execute("INSERT INTO t VALUES (2)")
            async for rows in db.watch("SELECT x FROM t"):
                assert rows == [(1,)]
                break
        assert journal_mode(db_path) == "delete"  # WAL was not forced on it
        assert list(db_path.parent.glob("*-wal")) == []

    async def test_read_only_uri_shares_the_writers_bus(self, db_path: Path) -> None:
        make_file(db_path)
        async with (
            rxdb.open(db_path) as writer,
            rxdb.open(f"file:{db_path}?mode=ro", foreign_poll=None) as reader,
        ):
            assert reader.key == writer.key == str(db_path.resolve())  # noqa: ASYNC240
            rec: Recorder[Any] = Recorder()
            with subscribed(reader.watch("SELECT x FROM t ORDER BY x"), rec):
                await rec.wait_value([(1,)])
                await writer.execute("INSERT INTO t VALUES (2)")
                await rec.wait_value([(1,), (2,)])  # the bus, not a poller (it is off)

    @pytest.mark.parametrize("wal", [False, True], ids=["rollback", "wal"])
    async def test_foreign_commit_refreshes_a_read_only_watch(
        self, db_path: Path, wal: bool
    ) -> None:
        make_file(db_path, wal=wal)
        keeper = sqlite3.connect(db_path)  # keeps the -shm of a WAL file in place
        try:
            async with rxdb.open(db_path, read_only=True, foreign_poll=0.01) as db:
                rec: Recorder[Any] = Recorder()
                with subscribed(db.watch("SELECT x FROM t ORDER BY x"), rec):
                    await rec.wait_value([(1,)])
                    await asyncio.to_thread(foreign_insert, db_path, 2)
                    await rec.wait_value([(1,), (2,)])
        finally:
            keeper.close()
        assert journal_mode(db_path) == ("wal" if wal else "delete")

    async def test_read_only_of_a_wal_file_reads_from_readers(self, db_path: Path) -> None:
        make_file(db_path, wal=True)
        keeper = sqlite3.connect(db_path)
        try:
            async with rxdb.open(db_path, read_only=True) as db:
                rows = await asyncio.gather(*(db.fetch_all("SELECT x FROM t") for _ in range(4)))
                assert rows == [[(1,)]] * 4
                assert sqlite_engine(db)._readers is not None
                with pytest.raises(rxdb.ReadOnlyError):
                    await db.execute("DELETE FROM t")
        finally:
            keeper.close()

    def test_read_only_through_open_sync_and_a_handle(self, db_path: Path) -> None:
        make_file(db_path)
        with rxdb.open_sync(f"file:{db_path}?mode=ro") as db:
            assert db.fetch_all("SELECT x FROM t") == [(1,)]
            with pytest.raises(rxdb.ReadOnlyError):
                db.execute("DELETE FROM t")
        with rxdb.open_sync(db_path, read_only=True) as db:
            origin = db.database
            assert isinstance(origin, rxdb.Database)  # open_sync drives a file Database
            future = asyncio.run_coroutine_threadsafe(origin.serializable_connection(), db.loop)
            reopened = future.result(WAIT)
        assert isinstance(reopened, rxdb.ConnectionHandle)
        # The original is closed: the handle opens the file anew, read-only again.
        with reopened.connect_sync() as again, pytest.raises(rxdb.ReadOnlyError):
            again.execute("DELETE FROM t")
        assert journal_mode(db_path) == "delete"

    @pytest.mark.parametrize(
        ("path", "options"),
        [
            (":memory:", {"read_only": True}),
            ("file:{db}?mode=rw", {"read_only": True}),
            ("file:{db}?mode=ro", {"track_foreign_writes": True}),
            ("file::memory:", {}),
            ("file:{db}?mode=memory", {}),
            ("file://elsewhere/{db}", {}),
        ],
        ids=["memory", "uri-rw", "ro-journal", "uri-memory", "uri-mode-memory", "remote-host"],
    )
    def test_contradictory_read_only_requests_refused(
        self, db_path: Path, path: str, options: dict[str, Any]
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            rxdb.open(path.format(db=db_path), **options)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's own tmp tree is owner-only)."""
    directory = Path(tempfile.mkdtemp(prefix="rxdb-edges-"))
    directory.chmod(0o755)
    yield directory
    for path in (directory, *directory.rglob("*")):
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(directory)


NOBODY = 65534

UNPRIVILEGED_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import rxdb

    async def main(path: str, read_only: bool) -> None:
        try:
            async with rxdb.open(path, read_only=read_only, share_across_processes=False) as db:
                print("rows", list(map(tuple, await db.fetch_all("SELECT x FROM t"))))
                try:
                    await db.execute("INSERT INTO t VALUES (2)")
                except rxdb.ReadOnlyError:
                    print("write refused")
        except rxdb.RxdbError as error:
            print("refused", type(error).__name__, error)

    asyncio.run(main(sys.argv[1], sys.argv[2] == "ro"))
    """
)


def run_unprivileged(path: Path, mode: str) -> str:
    """Run the script as a user file permissions apply to (root ignores them)."""
    command = [sys.executable, "-c", UNPRIVILEGED_SCRIPT, str(path), mode]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root, which ignores file permissions, without setpriv")
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
        probe = subprocess.run(
            [*command[:4], sys.executable, "-c", "import rxdb"],
            capture_output=True,
            text=True,
            timeout=3 * WAIT,
            check=False,
        )
        if probe.returncode != 0:
            pytest.skip(f"running as root, and uid {NOBODY} cannot import rxdb: {probe.stderr}")
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=3 * WAIT,
        check=False,
        cwd=path.parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


class TestPermissions:
    def test_file_without_write_permission_opens_read_only(self, public_dir: Path) -> None:
        path = public_dir / "a.db"
        make_file(path)
        path.chmod(0o444)
        assert run_unprivileged(path, "ro") == "rows [(1,)]\nwrite refused\n"
        refused = run_unprivileged(path, "rw")
        assert refused.startswith("refused ReadOnlyError")
        assert "read_only=True" in refused  # the fix, named
        assert journal_mode(path) == "delete"

    def test_file_in_read_only_directory_opens_read_only(self, public_dir: Path) -> None:
        directory = public_dir / "d"
        directory.mkdir()
        path = directory / "a.db"
        make_file(path)
        if os.geteuid() == 0:
            os.chown(directory, NOBODY, NOBODY)
            os.chown(path, NOBODY, NOBODY)
        directory.chmod(0o555)
        assert run_unprivileged(path, "ro") == "rows [(1,)]\nwrite refused\n"
        assert run_unprivileged(path, "rw").startswith("refused ReadOnlyError")

    def test_wal_file_without_its_shm_in_read_only_directory_says_why(
        self, public_dir: Path
    ) -> None:
        directory = public_dir / "d"
        directory.mkdir()
        path = directory / "a.db"
        make_file(path, wal=True)
        directory.chmod(0o555)
        refused = run_unprivileged(path, "ro")
        assert refused.startswith("refused")
        assert "immutable=1" in refused


# -- every error is an RxdbError --------------------------------------------------------------


class TestErrorsAreRxdbErrors:
    async def test_file_that_is_not_a_database_raises_database_error(self, db_path: Path) -> None:
        db_path.write_bytes(b"this is not a database, just text " * 64)  # noqa: ASYNC240
        with pytest.raises(rxdb.DatabaseError, match="not a database") as info:
            await rxdb.open(db_path)
        assert info.value.sqlite_errorname == "SQLITE_NOTADB"

    @pytest.mark.parametrize(
        "value", [BIG, -BIG - 1, "lone \ud800 surrogate"], ids=["over", "under", "surrogate"]
    )
    async def test_unbindable_values_raise_programming_error(
        self, any_db: rxdb.Database, value: Any
    ) -> None:
        await any_db.execute("CREATE TABLE t(x)")
        calls: list[Callable[[], Any]] = [
            lambda: any_db.execute("INSERT INTO t VALUES (?)", (value,)),
            lambda: any_db.execute_many("INSERT INTO t VALUES (?)", [(value,)]),
            lambda: any_db.fetch_all("SELECT ?", (value,)),
            lambda: any_db.fetch_one("SELECT :v", {"v": value}),
        ]
        for call in calls:
            with pytest.raises(rxdb.ProgrammingError, match="SQLite"):
                await call()
        async with any_db.read() as session:
            with pytest.raises(rxdb.ProgrammingError):
                await session.fetch_all("SELECT ?", (value,))
        async with any_db.transaction():
            with pytest.raises(rxdb.ProgrammingError):
                await any_db.fetch_all("SELECT ?", (value,))
        assert await any_db.fetch_all("SELECT count(*) FROM t") == [(0,)]

    async def test_sql_with_lone_surrogate_raises_programming_error(
        self, any_db: rxdb.Database
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError):
            await any_db.fetch_all("SELECT '\udc80'")
        with pytest.raises(rxdb.ProgrammingError):
            await any_db.execute("SELECT '\udc80'")

    async def test_watch_of_unbindable_value_refused_at_call(self, any_db: rxdb.Database) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="64-bit"):
            any_db.watch("SELECT ?", (BIG,))
        with pytest.raises(rxdb.ProgrammingError, match="64-bit"):
            any_db.watch("SELECT :v", {"v": -BIG - 1})
        with pytest.raises(rxdb.ProgrammingError, match="UTF-8"):
            any_db.watch("SELECT ?", ("\ud800",))
        with pytest.raises(rxdb.ProgrammingError, match="UTF-8"):
            any_db.watch("SELECT '\ud800'")
        with pytest.raises(rxdb.ProgrammingError, match=r"sequence.*mapping"):
            any_db.watch("SELECT ?", 5)  # type: ignore[call-overload]

    @pytest.mark.parametrize("sql", [5, None, b"SELECT 1"], ids=["int", "none", "bytes"])
    async def test_sql_that_is_not_a_string_raises_programming_error(
        self, any_db: rxdb.Database, sql: Any
    ) -> None:
        for call in (any_db.execute, any_db.fetch_all, any_db.fetch_one, any_db.execute_script):
            with pytest.raises(rxdb.ProgrammingError, match="str"):
                await call(sql)
        with pytest.raises(rxdb.ProgrammingError, match="str"):
            await any_db.execute_many(sql, [()])
        with pytest.raises(rxdb.ProgrammingError, match="str"):
            any_db.watch(sql)
        async with any_db.read() as session:
            with pytest.raises(rxdb.ProgrammingError, match="str"):
                await session.fetch_all(sql)

    async def test_execute_many_of_non_iterable_raises_programming_error(
        self, any_db: rxdb.Database
    ) -> None:
        await any_db.execute("CREATE TABLE t(x)")
        with pytest.raises(rxdb.ProgrammingError, match="iterable"):
            await any_db.execute_many("INSERT INTO t VALUES (?)", 5)  # type: ignore[arg-type]

    async def test_wrong_backup_arguments_raise_programming_error(
        self, db: rxdb.Database, tmp_path: Path
    ) -> None:
        target = tmp_path / "copy.db"
        with pytest.raises(rxdb.ProgrammingError, match="pages_per_step"):
            await db.backup(target, pages_per_step="many")  # type: ignore[arg-type]
        with pytest.raises(rxdb.ProgrammingError, match="target"):
            await db.backup(5)  # type: ignore[arg-type]
        with pytest.raises(rxdb.ProgrammingError, match="progress"):
            await db.backup(target, progress=5)  # type: ignore[arg-type]

    async def test_wrong_table_names_raise_programming_error(self, db: rxdb.Database) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="table"):
            await db.notify_updates(5)  # type: ignore[arg-type]
        with pytest.raises(rxdb.ProgrammingError, match="table"):
            db.table_updates(5)  # type: ignore[arg-type]


BAD_OPTIONS: list[tuple[str, Any]] = [
    ("readers", 0),
    ("readers", "4"),
    ("readers", True),
    ("busy_timeout", -1),
    ("busy_timeout", "5"),
    ("busy_timeout", float("nan")),
    ("foreign_keys", "yes"),
    ("synchronous", "bogus"),
    ("foreign_poll", 0),
    ("foreign_poll", -0.5),
    ("foreign_poll", "fast"),
    ("share_across_processes", 1),
    ("track_foreign_writes", "yes"),
    ("read_only", "no"),
    ("bus", object()),
]


class TestOptions:
    @pytest.mark.parametrize(("name", "value"), BAD_OPTIONS, ids=[n for n, _ in BAD_OPTIONS])
    def test_bad_option_refused_at_construction(self, db_path: Path, name: str, value: Any) -> None:
        with unraisable() as seen:
            with pytest.raises(rxdb.ProgrammingError, match=name):
                rxdb.Database(db_path, **{name: value})
            with pytest.raises(rxdb.ProgrammingError, match=name):
                rxdb.open(db_path, **{name: value})
        assert seen == []  # no "Exception ignored in Database.__del__"

    def test_bad_path_refused_at_construction(self) -> None:
        with unraisable() as seen, pytest.raises(rxdb.ProgrammingError, match="path"):
            rxdb.open(5)  # type: ignore[arg-type]
        assert seen == []

    @pytest.mark.parametrize(
        ("path", "options"),
        [
            (":memory:", {"track_foreign_writes": True}),
            ("{db}", {"foreign_poll": None, "track_foreign_writes": True}),
        ],
        ids=["memory", "no-poll"],
    )
    def test_journal_without_poller_refused_at_construction(
        self, db_path: Path, path: str, options: dict[str, Any]
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="track_foreign_writes"):
            rxdb.open(path.format(db=db_path), **options)

    def test_unknown_keyword_refused_with_the_known_ones(self, db_path: Path) -> None:
        with pytest.raises(rxdb.ProgrammingError, match=r"'reader'.*'readers'"):
            rxdb.open(db_path, reader=2)
        with pytest.raises(rxdb.ProgrammingError, match="'reader'"):
            rxdb.open_sync(db_path, reader=2)

    def test_open_sync_refuses_bad_option_without_starting_a_thread(self, db_path: Path) -> None:
        before = {t.ident for t in threading.enumerate()}
        with pytest.raises(rxdb.ProgrammingError, match="readers"):
            rxdb.open_sync(db_path, readers=0)
        assert {t.ident for t in threading.enumerate()} <= before

    def test_option_names_are_the_database_keywords(self) -> None:
        parameters = inspect.signature(rxdb.Database).parameters
        keywords = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
        assert set(OPTION_NAMES) == keywords

    async def test_good_options_still_open(self, db_path: Path) -> None:
        async with rxdb.open(
            db_path, readers=1, busy_timeout=0, synchronous="normal", foreign_poll=0.5
        ) as db:
            assert await db.fetch_one("SELECT 1") == (1,)


# -- statements that hold no statement --------------------------------------------------------

BLANK = ["", "   \n", "-- nothing", "/* nothing */", ";", " ; -- x\n/* y */ ;"]


class TestNoStatement:
    @pytest.mark.parametrize("sql", BLANK)
    async def test_watch_of_no_statement_refused_at_call(
        self, any_db: rxdb.Database, sql: str
    ) -> None:
        with pytest.raises(rxdb.ProgrammingError, match="no statement"):
            any_db.watch(sql)

    @pytest.mark.parametrize("sql", BLANK)
    async def test_fetch_and_execute_of_no_statement_refused(
        self, any_db: rxdb.Database, sql: str
    ) -> None:
        for call in (any_db.fetch_all, any_db.fetch_one, any_db.execute):
            with pytest.raises(rxdb.ProgrammingError, match="no statement"):
                await call(sql)
        async with any_db.read() as session:
            with pytest.raises(rxdb.ProgrammingError, match="no statement"):
                await session.fetch_all(sql)

    async def test_statement_after_a_comment_still_runs(self, any_db: rxdb.Database) -> None:
        assert await any_db.fetch_all("-- why\nSELECT 1 /* one */") == [(1,)]
        async for rows in any_db.watch("/* why */ SELECT 2"):
            assert rows == [(2,)]
            break
