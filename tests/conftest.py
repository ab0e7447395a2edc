"""Shared fixtures. Every database a test opens is closed; nothing waits by sleeping."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from reactivex.abc import ObserverBase

import rxdb
import rxdb.engines.sqlite.foreign as foreign_module
from rxdb.engines.sqlite import SQLiteEngine
from rxdb.engines.sqlite.wal_watch import FileWatch

T = TypeVar("T")
WAIT = 10.0  # seconds before a wait for an event is declared a failure (a hang, not a delay)


def sqlite_engine(db: rxdb.Database) -> SQLiteEngine:
    """The SQLite engine behind ``db``, for tests of its internals (a database's engine is
    typed as the seam: a PostgreSQL URL gets another one)."""
    engine = db._engine
    assert isinstance(engine, SQLiteEngine), f"{db!r} is not a SQLite database"
    return engine


@pytest.fixture(autouse=True, scope="session")
def private_hub_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hub sockets (and their lock files) of the databases tests open go to a directory of
    this test session, not to the user's runtime directory."""
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    yield
    if saved is None:
        del os.environ["XDG_RUNTIME_DIR"]
    else:
        os.environ["XDG_RUNTIME_DIR"] = saved


@pytest.fixture(params=["watched", "polled"])
def foreign_detection(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test of foreign-commit detection both ways: told by the file watch (its safety
    polls made frequent, so that tests counting polls stay quick), and by polling alone (no
    watch, as where inotify is missing)."""
    if request.param == "watched":
        monkeypatch.setattr(foreign_module, "SAFETY_INTERVAL", 0.005)
    else:
        no_watch(monkeypatch)
    return str(request.param)


def no_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Databases opened from now on poll for other programs' commits: no file watch."""
    monkeypatch.setattr(FileWatch, "start", staticmethod(lambda paths, on_change: None))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[rxdb.Database]:
    """A file database (WAL, writer + readers)."""
    async with rxdb.open(db_path) as database:
        yield database


@pytest.fixture
async def memdb() -> AsyncIterator[rxdb.Database]:
    """An in-memory database (one serialised connection)."""
    async with rxdb.open(":memory:") as database:
        yield database


@pytest.fixture(params=["file", "memory"])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[rxdb.Database]:
    """Each test using it runs against both kinds of database."""
    path = tmp_path / "any.db" if request.param == "file" else ":memory:"
    async with rxdb.open(path) as database:
        yield database


class Recorder(ObserverBase[T]):
    """Collects what an Observable emits and lets a test wait for a condition on it."""

    def __init__(self) -> None:
        self.values: list[T] = []
        self.errors: list[BaseException] = []
        self.completed = False
        self._changed = asyncio.Event()

    def on_next(self, value: T) -> None:
        self.values.append(value)
        self._changed.set()

    def on_error(self, error: BaseException) -> None:
        self.errors.append(error)
        self._changed.set()

    def on_completed(self) -> None:
        self.completed = True
        self._changed.set()

    async def wait_for(self, condition: Callable[[Recorder[T]], bool]) -> None:
        """Wait until ``condition`` holds, at most WAIT seconds (a hang, not a delay)."""
        async with asyncio.timeout(WAIT):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, count: int) -> list[T]:
        await self.wait_for(lambda r: len(r.values) >= count)
        return self.values

    async def wait_value(self, expected: Any) -> None:
        await self.wait_for(lambda r: bool(r.values) and r.values[-1] == expected)


@pytest.fixture
def recorder() -> Recorder[Any]:
    return Recorder()


async def settle(db: rxdb.Database) -> None:
    """Wait until every watch of ``db`` is idle: bus deliveries already queued on the loop
    have run, and no run is queued, in flight or pending. Event-driven: it waits on the
    watches' analysis tasks and the run scheduler's task, not on time."""
    async with asyncio.timeout(WAIT):
        while True:
            await asyncio.sleep(0)  # let queued call_soon callbacks (bus deliveries) run
            queries = list(db._watches.queries.values())
            analyses = [q._analysis for q in queries if q._analysis is not None]
            scheduler = db._watches.scheduler.busy
            if analyses or scheduler is not None:
                await asyncio.wait([*analyses, *([scheduler] if scheduler else [])])
                continue
            await asyncio.sleep(0)
            if not any(q.statistics().running for q in db._watches.queries.values()):
                return


@pytest.fixture(autouse=True)
def no_leaked_connection_threads() -> Iterator[None]:
    """Fail the test that leaves an aiosqlite worker thread alive: an unclosed connection
    would otherwise hang the interpreter at exit, long after the culprit ran."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and "_connection_worker_thread" in t.name and t.is_alive()
    ]
    for thread in leaked:
        thread.join(1.0)  # one that is just finishing its close gets a moment
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"aiosqlite connections left open (threads {still})"


@contextmanager
def subscribed(observable: Any, observer: Any) -> Iterator[None]:
    """Keep ``observer`` subscribed to ``observable`` for the block, then dispose."""
    subscription = observable.subscribe(observer)
    try:
        yield
    finally:
        subscription.dispose()
