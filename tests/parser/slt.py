"""A reader for SQLite's sqllogictest scripts, enough for the parser's corpus test.

Records are separated by blank lines. ``skipif``/``onlyif`` lines at the head of a record select
the engines it applies to; ``halt`` ends the script for the engines it applies to (the corpus uses
``onlyif mssql`` + ``halt`` to mean "skip this file on mssql"). Result lines after ``----`` are
not needed here and are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ("Record", "read_script")

ENGINE = "sqlite"


@dataclass(frozen=True, slots=True)
class Record:
    """One record that applies to SQLite.

    :ivar kind: ``statement`` or ``query``.
    :ivar expect_error: a ``statement error`` record (queries never expect one in this corpus).
    :ivar sql: the statement text, possibly several lines.
    :ivar line: where the record starts in its file, for failure messages.
    """

    kind: str
    expect_error: bool
    sql: str
    line: int


def _blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    block: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line:
            if block:
                yield start, block
            block = []
            continue
        if line.startswith("#") and not block:
            continue  # a comment before a record belongs to no record
        if not block:
            start = number
        block.append(line)
    if block:
        yield start, block


def _applies(conditions: list[str]) -> bool:
    for condition in conditions:
        words = condition.split()
        if words[0] == "onlyif" and words[1] != ENGINE:
            return False
        if words[0] == "skipif" and words[1] == ENGINE:
            return False
    return True


def read_script(path: Path) -> Iterator[Record]:
    """Yield the records of ``path`` that apply to SQLite, stopping at an applicable ``halt``.

    :raises ValueError: if a record has a head line this reader does not know.
    """
    for start, lines in _blocks(path.read_text(encoding="utf-8")):
        conditions: list[str] = []
        while lines and lines[0].split()[0] in ("skipif", "onlyif"):
            conditions.append(lines.pop(0))
        lines = [line for line in lines if not line.startswith("#")]
        if not lines:
            continue
        head = lines[0].split()
        if not _applies(conditions):
            continue
        if head[0] == "halt":
            return
        if head[0] == "hash-threshold":
            continue
        body = lines[1:]
        if head[0] == "statement":
            yield Record("statement", head[1] == "error", "\n".join(body), start)
        elif head[0] == "query":
            end = body.index("----") if "----" in body else len(body)
            yield Record("query", False, "\n".join(body[:end]), start)
        else:
            raise ValueError(f"{path}:{start}: unknown record {lines[0]!r}")
