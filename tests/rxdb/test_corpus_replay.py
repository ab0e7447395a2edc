"""A watch is never stale: SQLite's sqllogictest scripts replayed through ``rxdb.Database``.

Every statement of a script runs through ``db.execute``; a ``db.watch`` stays open for each
distinct query record seen so far (the newest ``MAX_QUERY_WATCHES``), plus one ``SELECT *`` watch
per table and view that exists. After every statement and at every query record the loop is
settled, and each open watch's last value must equal a fresh ``db.fetch_all`` of its query. That
is "a watch never misses a committed change to a table it reads", through triggers, views,
REPLACE, UPDATE and DROP in scripts nobody wrote for rxdb.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import rxdb
from rxdb.engines.sqlite.connections import split_script
from tests.conftest import settle

CORPUS = Path(__file__).parents[1] / "corpus" / "sqllogictest"
EVIDENCE = [
    "slt_lang_createtrigger",
    "slt_lang_droptrigger",
    "slt_lang_createview",
    "slt_lang_dropview",
    "slt_lang_droptable",
    "slt_lang_dropindex",
    "slt_lang_reindex",
    "slt_lang_replace",
    "slt_lang_update",
    "slt_lang_aggfunc",
    "in1",
]
SELECT_SCRIPT = "select1"
SELECT_QUERY_LIMIT = 300  # keeps the select script well under 20 s
MAX_QUERY_WATCHES = 50
ENGINE = "sqlite"


# -- a tiny sqllogictest reader ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    kind: str  # "statement" or "query"
    expect_error: bool
    sql: str
    line: int


def read_script(path: Path) -> Iterator[Record]:
    """The records of ``path`` that apply to SQLite, up to an applicable ``halt``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    block: list[tuple[int, str]] = []
    for number, raw in [*enumerate(lines, start=1), (len(lines) + 1, "")]:
        line = raw.rstrip()
        if line:
            if not (line.startswith("#") and not block):
                block.append((number, line))
            continue
        if not block:
            continue
        start = block[0][0]
        texts = [text for _, text in block if not text.startswith("#")]
        block = []
        applies = True
        while texts and texts[0].split()[0] in ("skipif", "onlyif"):
            word, engine = texts.pop(0).split()[:2]
            applies &= (engine == ENGINE) == (word == "onlyif")
        if not texts or not applies:
            continue
        head = texts[0].split()
        if head[0] == "halt":
            return
        if head[0] == "statement":
            yield Record("statement", head[1] == "error", "\n".join(texts[1:]), start)
        elif head[0] == "query":
            body = texts[1:]
            end = body.index("----") if "----" in body else len(body)
            yield Record("query", False, "\n".join(body[:end]), start)


# -- replay -----------------------------------------------------------------------------------


class Watched:
    """One open watch and what it emitted."""

    def __init__(self, db: rxdb.Database, sql: str) -> None:
        self.sql = sql
        self.values: list[list[Any]] = []
        self.errors: list[BaseException] = []
        self._subscription = db.watch(sql).subscribe(
            on_next=self.values.append, on_error=self.errors.append
        )

    def close(self) -> None:
        self._subscription.dispose()


@dataclass
class Replay:
    db: rxdb.Database
    script: str
    queries: dict[str, Watched] = field(default_factory=dict)  # insertion order = age
    relations: dict[str, Watched] = field(default_factory=dict)
    statements: int = 0
    scripts: int = 0
    failing_statements: int = 0
    query_records: int = 0
    skipped_queries: int = 0
    checks: int = 0
    retired: int = 0
    reopened: int = 0

    async def statement(self, record: Record) -> None:
        self.statements += 1
        # A few records hold several statements: those go through execute_script.
        several = len(split_script(record.sql)) > 1
        run = self.db.execute_script if several else self.db.execute
        self.scripts += several
        if record.expect_error:
            self.failing_statements += 1
            with pytest.raises(rxdb.DatabaseError):
                await run(record.sql)
        else:
            await run(record.sql)
        await self.watch_relations()
        await self.check(record)

    async def query(self, record: Record) -> None:
        self.query_records += 1
        sql = record.sql
        if sql not in self.queries:
            try:
                await self.db.fetch_all(sql)
            except rxdb.DatabaseError:
                self.skipped_queries += 1
                return
            self.queries[sql] = Watched(self.db, sql)
            if len(self.queries) > MAX_QUERY_WATCHES:
                oldest = next(iter(self.queries))
                self.queries.pop(oldest).close()
        await self.check(record)

    async def watch_relations(self) -> None:
        """A ``SELECT *`` watch for every table and view (scripts without queries included)."""
        rows = await self.db.fetch_all(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        for (name,) in rows:
            sql = 'SELECT * FROM "{}"'.format(name.replace('"', '""'))
            if sql not in self.relations:
                self.relations[sql] = Watched(self.db, sql)

    async def check(self, record: Record) -> None:
        await settle(self.db)
        reopened: list[Watched] = []
        for group in (self.queries, self.relations):
            for sql, watched in list(group.items()):
                try:
                    fresh = await self.db.fetch_all(sql)
                except rxdb.DatabaseError:
                    # Its table or view was dropped: the query fails now, so the watch is over.
                    watched.close()
                    del group[sql]
                    self.retired += 1
                    continue
                if watched.errors:
                    # The query failed in a state committed half-way through a record
                    # (slt_lang_aggfunc's "INSERT ...; DROP INDEX ...": while the index exists,
                    # sum(DISTINCT x) overflows). The watch delivered SQLite's error and ended,
                    # as documented; watch the query afresh.
                    self.expect_sqlite_errors(record, watched)
                    watched.close()
                    group[sql] = Watched(self.db, sql)
                    reopened.append(group[sql])
                    continue
                self.compare(record, watched, fresh)
        if reopened:
            self.reopened += len(reopened)
            await settle(self.db)
            for watched in reopened:
                self.compare(record, watched, await self.db.fetch_all(watched.sql))

    def expect_sqlite_errors(self, record: Record, watched: Watched) -> None:
        where = f"{self.script}:{record.line}: watch of {watched.sql!r}"
        assert all(isinstance(e, rxdb.DatabaseError) for e in watched.errors), (
            f"{where} failed: {watched.errors!r}"
        )

    def compare(self, record: Record, watched: Watched, fresh: list[Any]) -> None:
        where = f"{self.script}:{record.line}: watch of {watched.sql!r}"
        assert watched.errors == [], f"{where} failed: {watched.errors!r}"
        assert watched.values, f"{where} never emitted"
        assert watched.values[-1] == fresh, f"{where} is stale"
        self.checks += 1

    def close(self) -> None:
        for watched in [*self.queries.values(), *self.relations.values()]:
            watched.close()


async def replay(db: rxdb.Database, name: str, query_limit: int | None = None) -> Replay:
    state = Replay(db, name)
    try:
        for record in read_script(CORPUS / f"{name}.test"):
            if record.kind == "statement":
                await state.statement(record)
            elif query_limit is None or state.query_records < query_limit:
                await state.query(record)
            else:
                break
        await state.check(Record("end", False, "", -1))
    finally:
        state.close()
    return state


def report(state: Replay, started: float) -> None:
    print(
        f"\n{state.script}: {state.statements} statements ({state.failing_statements} expected "
        f"to fail, {state.scripts} scripts), {state.query_records} query records "
        f"({state.skipped_queries} skipped), {state.checks} watch checks, {state.retired} "
        f"watches retired, {state.reopened} reopened after an error, "
        f"{time.perf_counter() - started:.2f} s"
    )


@pytest.fixture
async def file_db(tmp_path: Path) -> Any:
    async with rxdb.open(tmp_path / "replay.db") as database:
        yield database


@pytest.mark.parametrize("name", EVIDENCE)
async def test_watch_never_stale_when_replaying_evidence_script(
    file_db: rxdb.Database, name: str
) -> None:
    started = time.perf_counter()
    state = await replay(file_db, f"evidence/{name}")
    report(state, started)
    assert state.statements > 0
    assert state.checks > 0


async def test_watch_never_stale_when_replaying_select_script(file_db: rxdb.Database) -> None:
    started = time.perf_counter()
    state = await replay(file_db, SELECT_SCRIPT, query_limit=SELECT_QUERY_LIMIT)
    report(state, started)
    assert state.query_records == SELECT_QUERY_LIMIT
    assert state.checks > SELECT_QUERY_LIMIT


async def test_watch_never_stale_when_replaying_evidence_script_in_memory() -> None:
    # The in-memory database runs watches on the writer itself: the same guarantee holds.
    started = time.perf_counter()
    async with rxdb.open(":memory:") as db:
        state = await replay(db, "evidence/slt_lang_createtrigger")
    report(state, started)
    assert state.checks > 0


def test_read_script_applies_skipif_onlyif_and_halt(tmp_path: Path) -> None:
    path = tmp_path / "x.test"
    path.write_text(
        "# a comment\nhash-threshold 8\n\n"
        "statement ok\nCREATE TABLE t(x)\n\n"
        "skipif sqlite\nstatement ok\nNOT FOR SQLITE\n\n"
        "onlyif mysql\nhalt\n\n"
        "onlyif sqlite\nstatement error\nBAD\nSQL\n\n"
        "query I rowsort label-1\nSELECT x\nFROM t\n----\n1\n\n"
        "halt\n\n"
        "statement ok\nAFTER HALT\n",
        encoding="utf-8",
    )
    assert [(r.kind, r.expect_error, r.sql) for r in read_script(path)] == [
        ("statement", False, "CREATE TABLE t(x)"),
        ("statement", True, "BAD\nSQL"),
        ("query", False, "SELECT x\nFROM t"),
    ]
