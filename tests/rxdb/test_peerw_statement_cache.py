"""The writer keeps its statements prepared, and still announces every table they write.

A statement run from the sqlite3 module's statement cache is not prepared again, so SQLite's
authorizer reports nothing for it: the write capture takes what the last prepare of its text
reported (:class:`rxdb.engines.sqlite.capture.WriteCapture`). These tests pin down both
halves: a repeated statement is not prepared again, and whatever changes what a statement may
write (another connection's schema change, a pragma, a statement cached behind the capture's
back) is announced all the same.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from rxdb.engines.sqlite import capture
from rxdb.engines.sqlite.capture import WriteCapture
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.updates import TableUpdate


class Announced:
    """The tables of each commit the writer announced (DDL's too, announced with
    ``everything``)."""

    def __init__(self) -> None:
        self.commits: list[frozenset[str]] = []

    def __call__(self, updates: frozenset[TableUpdate], everything: bool, _: object) -> None:
        self.commits.append(frozenset(update.table for update in updates))

    def take(self) -> list[frozenset[str]]:
        commits, self.commits = self.commits, []
        return commits


@pytest.fixture
def announced() -> Announced:
    return Announced()


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "cache.sqlite3")


@pytest.fixture
def writer(announced: Announced, path: str) -> Iterator[TrackedConnection]:
    # Opened as the engine opens it (which asks for no cache); typeshed wants a class.
    factory = cast(
        "type[TrackedConnection]", functools.partial(TrackedConnection, on_commit=announced)
    )
    connection = sqlite3.connect(path, factory=factory, isolation_level=None, cached_statements=0)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE t(a)")
        connection.execute("CREATE TABLE u(a)")
        announced.take()
        yield connection
    finally:
        connection.close()


INSERT = "INSERT INTO t VALUES (?)"


def test_a_repeated_statement_is_prepared_once_and_announced_every_time(
    announced: Announced, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts: list[str | None] = []
    authorize = WriteCapture.authorize

    def counting(self: WriteCapture, code: int, arg1: str | None, *rest: Any) -> int:
        if code == sqlite3.SQLITE_INSERT and arg1 == "t":
            inserts.append(arg1)
        return authorize(self, code, arg1, *rest)

    monkeypatch.setattr(WriteCapture, "authorize", counting)
    factory = cast(
        "type[TrackedConnection]", functools.partial(TrackedConnection, on_commit=announced)
    )
    connection = sqlite3.connect(path, factory=factory, isolation_level=None, cached_statements=0)
    try:
        connection.execute("CREATE TABLE t(a)")
        for value in range(3):
            connection.execute(INSERT, (value,))
    finally:
        connection.close()
    assert inserts == ["t"]  # one prepare
    assert announced.take()[1:] == [frozenset({"t"})] * 3


def test_a_cached_statement_announces_a_trigger_another_connection_added(
    writer: TrackedConnection, announced: Announced, path: str
) -> None:
    writer.execute(INSERT, (1,))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("CREATE TRIGGER copy AFTER INSERT ON t BEGIN INSERT INTO u VALUES (1); END")
    finally:
        other.close()
    writer.execute(INSERT, (2,))
    writer.execute(INSERT, (3,))
    assert announced.take() == [frozenset({"t"}), frozenset({"t", "u"}), frozenset({"t", "u"})]


def test_a_cached_statement_announces_cascades_once_foreign_keys_are_on(
    writer: TrackedConnection, announced: Announced
) -> None:
    writer.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
    writer.execute("CREATE TABLE child(id REFERENCES parent(id) ON DELETE CASCADE)")
    delete = "DELETE FROM parent WHERE id = ?"
    for key in (1, 2, 3):
        writer.execute("INSERT INTO parent VALUES (?)", (key,))
        writer.execute("INSERT INTO child VALUES (?)", (key,))
    announced.take()
    writer.execute(delete, (1,))
    writer.execute("PRAGMA foreign_keys = ON")
    writer.execute(delete, (2,))
    writer.execute("PRAGMA foreign_keys = OFF")
    writer.execute(delete, (3,))
    assert announced.take() == [
        frozenset({"parent"}),
        frozenset({"parent", "child"}),
        frozenset({"parent"}),
    ]


def test_a_statement_cached_behind_the_capture_is_announced(
    writer: TrackedConnection, announced: Announced
) -> None:
    """A text prepared untracked (rxdb's own reads are) is cached without a report: its
    first tracked run must be prepared afresh."""
    sqlite3.Connection.execute(writer, INSERT, (1,))
    writer.execute(INSERT, (2,))
    assert announced.take() == [frozenset({"t"})]


def test_a_statement_whose_text_the_capture_forgot_is_announced(
    writer: TrackedConnection, announced: Announced, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture, "MEMO_LIMIT", 2)
    writer.execute(INSERT, (1,))
    writer.execute("INSERT INTO u VALUES (1)")
    writer.execute("INSERT INTO u VALUES (2)")  # a third text: the capture starts afresh
    writer.execute(INSERT, (2,))
    assert announced.take() == [
        frozenset({"t"}),
        frozenset({"u"}),
        frozenset({"u"}),
        frozenset({"t"}),
    ]
