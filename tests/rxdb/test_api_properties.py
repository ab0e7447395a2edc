"""Properties of the public API's argument handling, over any input Hypothesis can think of:
every call of execute, execute_many, execute_script, fetch_all, fetch_one, watch,
transaction, backup and every option of ``rxdb.open`` returns a result or raises an
``rxdb.RxdbError`` -- never another exception, never a hang (pytest-timeout) -- and the
error can always be printed. The database stays usable after each.

The example-based cases are in tests/conformance/test_arguments.py (every shape); these run
on ``rxdb.open_sync`` (the async Database underneath, behind the blocking boundary) and on
``rxdb.Database`` itself for the options.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rxdb
from rxdb.options import OPTION_NAMES

# The whole file runs in seconds: a hundred-odd examples per property.
SOME = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

LONE = st.integers(0xD800, 0xDFFF).map(chr)  # lone surrogates: a str, never UTF-8
TEXT = st.text(max_size=12) | st.builds(
    lambda a, b, c: a + b + c, st.text(max_size=4), LONE, st.text(max_size=4)
)
VALUE = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats()
    | TEXT
    | st.binary(max_size=8)
    | st.builds(object)
    | st.lists(st.integers(), max_size=2)
)
PARAMS = (
    st.lists(VALUE, max_size=3)
    | st.lists(VALUE, max_size=3).map(tuple)
    | st.dictionaries(st.text(max_size=3), VALUE, max_size=3)
    | VALUE
)
STATEMENTS = [
    "SELECT ?",
    "SELECT :a",
    "SELECT * FROM t WHERE a = ?",
    "INSERT INTO t VALUES (?, ?)",
    "UPDATE t SET a = ? WHERE b = ?",
    "SELECT 1",
    "",
    " ; ",
    "-- nothing",
    "SELEC 1",
    "SELECT 1; SELECT 2",
]
SQL = st.sampled_from(STATEMENTS) | TEXT | VALUE
# A file name inside the test's directory (never a path elsewhere), or anything but a str.
NAME = TEXT.filter(lambda name: "/" not in name) | VALUE.filter(lambda v: not isinstance(v, str))
ANYTHING = VALUE | PARAMS | st.sampled_from(["deferred", "immediate", "exclusive", "no"])


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    """One blocking database for every example of a property (typed Any: the calls are
    wrong on purpose)."""
    with rxdb.open_sync(tmp_path / "p.db") as database:
        database.execute("CREATE TABLE t(a, b)")
        yield database


def outcome(call: Callable[[], object]) -> object:
    """Run ``call``: its result, or the rxdb error it raised (printable, as a log line
    would print it). Any other exception fails the property."""
    try:
        return call()
    except rxdb.RxdbError as error:
        str(error).encode("utf-8")
        return error


def still_usable(db: Any) -> None:
    assert db.fetch_all("SELECT 1") == [(1,)]


@SOME
@given(method=st.sampled_from(["execute", "fetch_all", "fetch_one"]), sql=SQL, params=PARAMS)
def test_a_statement_returns_or_raises_an_rxdb_error(
    db: Any, method: str, sql: Any, params: Any
) -> None:
    outcome(lambda: getattr(db, method)(sql, params))
    still_usable(db)


@SOME
@given(sql=SQL, sets=st.lists(PARAMS, max_size=3) | VALUE)
def test_execute_many_returns_or_raises_an_rxdb_error(db: Any, sql: Any, sets: Any) -> None:
    outcome(lambda: db.execute_many(sql, sets))
    still_usable(db)


@SOME
@given(script=SQL)
def test_execute_script_returns_or_raises_an_rxdb_error(db: Any, script: Any) -> None:
    outcome(lambda: db.execute_script(script))
    still_usable(db)


@SOME
@given(sql=SQL, params=PARAMS, distinct=ANYTHING, recover=ANYTHING)
def test_watch_returns_a_stream_or_raises_an_rxdb_error(
    db: Any, sql: Any, params: Any, distinct: Any, recover: Any
) -> None:
    made = outcome(lambda: db.watch(sql, params, distinct=distinct, recover=recover))
    if not isinstance(made, rxdb.RxdbError):
        assert isinstance(distinct, bool)
        assert isinstance(recover, bool)


@SOME
@given(mode=ANYTHING, sql=SQL, params=PARAMS)
def test_a_transaction_commits_or_raises_an_rxdb_error(
    db: Any, mode: Any, sql: Any, params: Any
) -> None:
    def block() -> None:
        with db.transaction(mode):
            outcome(lambda: db.execute(sql, params))

    outcome(block)
    still_usable(db)


@FEW
@given(
    name=NAME,
    pages_per_step=st.integers() | VALUE,
    progress=st.none() | st.just(lambda progress: None) | VALUE,
)
def test_a_backup_copies_or_raises_an_rxdb_error(
    db: Any, tmp_path: Path, name: Any, pages_per_step: Any, progress: Any
) -> None:
    target = os.path.join(tmp_path, name) if isinstance(name, str) else name
    outcome(lambda: db.backup(target, pages_per_step=pages_per_step, progress=progress))
    still_usable(db)


@FEW
@given(option=st.sampled_from(OPTION_NAMES), value=ANYTHING | st.floats(-1, 10))
def test_an_option_opens_or_raises_an_rxdb_error(tmp_path: Path, option: str, value: Any) -> None:
    async def open_and_close() -> None:
        async with rxdb.open(tmp_path / "options.db", **{option: value}):
            pass

    outcome(lambda: asyncio.run(open_and_close()))


@FEW
@given(path=NAME)
def test_a_path_opens_or_raises_an_rxdb_error(tmp_path: Path, path: Any) -> None:
    where = os.path.join(tmp_path, path) if isinstance(path, str) else path

    async def open_and_close() -> None:
        async with rxdb.open(where, share_across_processes=False):
            pass

    outcome(lambda: asyncio.run(open_and_close()))
