"""A failed open releases every thread, connection and file it took, and the process can
exit afterwards: each way an open can fail (not a database, permission denied, the hub's
directory unusable, a wrong option, cancelled while opening, a PostgreSQL server that
refuses), counted with ``threading.enumerate()`` and ``/proc/self/fd``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT
from tests.rxdb.failed_open_worker import open_fds
from tests.rxdb.postgres_worker import SERVER

CASES = ("not-a-database", "permission-denied", "hub-error", "bad-option")
ERRORS = {
    "not-a-database": "DatabaseError",
    "permission-denied": "OperationalError",
    "hub-error": "HubError",
    "bad-option": "ProgrammingError",
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shared_directory() -> Iterator[str]:
    """A directory another uid may enter (a test's tmp_path is the owner's alone)."""
    with tempfile.TemporaryDirectory(prefix="rxdb-failed-open-") as directory:
        os.chmod(directory, 0o777)
        yield directory


def run_worker(case: str, directory: str) -> dict[str, Any]:
    """Run the worker as a user the permission case can refuse (nobody, when we are root)."""
    command = [sys.executable, "-m", "tests.rxdb.failed_open_worker", case, directory]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=WAIT * 3,  # a process a leaked thread keeps alive fails here
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("case", CASES)
def test_the_process_exits_after_a_failed_open_holding_nothing(
    case: str, shared_directory: str
) -> None:
    report = run_worker(case, shared_directory)
    assert report["error"] == ERRORS[case]
    before, after = report["threads"]
    assert after == before
    before, after = report["fds"]
    assert after == before


async def fails_holding_nothing(
    path: str | Path, error: type[BaseException], **options: Any
) -> None:
    threads, fds = set(threading.enumerate()), open_fds()
    with pytest.raises(error):
        await rxdb.open(path, **options)
    assert set(threading.enumerate()) == threads
    assert open_fds() == fds


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database" * 512)
    await fails_holding_nothing(path, rxdb.DatabaseError)


async def test_the_hub_directory_unusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    (runtime / "rxdb").write_text("")  # a file where the hub's directory should be
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    await fails_holding_nothing(tmp_path / "hub.db", rxdb.HubError)


async def test_a_wrong_option(tmp_path: Path) -> None:
    await fails_holding_nothing(tmp_path / "option.db", rxdb.ProgrammingError, bus="x")


@pytest.mark.postgres
async def test_a_postgres_database_that_does_not_exist() -> None:
    await fails_holding_nothing(f"{SERVER}/rxdb_no_such_database", rxdb.DatabaseError)


@pytest.mark.parametrize(
    "where", ["file", "memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_cancelled_while_opening_releases_everything_and_closes(
    tmp_path: Path, where: str
) -> None:
    path = {"file": str(tmp_path / "c.db"), "memory": ":memory:", "postgres": f"{SERVER}/test"}
    threads, fds = set(threading.enumerate()), open_fds()
    db = rxdb.open(path[where])
    opening = asyncio.ensure_future(db.connect())
    await asyncio.sleep(0)  # the open has started
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(opening, WAIT)
    assert db.closed
    assert set(threading.enumerate()) == threads
    assert open_fds() == fds
    with pytest.raises(rxdb.ClosedError):
        await db.connect()


async def test_a_cancelled_caller_leaves_the_open_to_the_others(tmp_path: Path) -> None:
    async with rxdb.open(tmp_path / "shared.db") as db:
        pass
    db = rxdb.Database(tmp_path / "shared.db")
    first = asyncio.ensure_future(db.connect())
    second = asyncio.ensure_future(db.connect())
    await asyncio.sleep(0)
    first.cancel()
    assert await asyncio.wait_for(second, WAIT) is db
    assert not db.closed
    await db.close()


def test_open_sync_of_a_file_that_is_not_a_database_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database" * 512)
    threads, fds = set(threading.enumerate()), open_fds()
    with pytest.raises(rxdb.DatabaseError):
        rxdb.open_sync(path)
    assert set(threading.enumerate()) == threads
    assert open_fds() == fds
