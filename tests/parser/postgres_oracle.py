"""Ask PostgreSQL which relations a statement reads: the oracle parser.postgres is checked against.

``EXPLAIN (VERBOSE, FORMAT JSON)`` plans a statement without running it and names, on every scan
and modify node, the relation and its schema; views are already replaced by what they read,
CTEs and subqueries planned in place. What the planner proves it need not read (a partition
pruned, a join removed, a branch behind a constant-false condition) is missing from the plan,
which is why the parser may report more than the oracle, never less.

Every statement is prepared and its generic plan explained (``plan_cache_mode``), so that a
``$n`` parameter (all are NULL) folds no branch away; partitions pruned when the executor
starts are still missing.

A :class:`PgOracle` is a blocking façade over one connection to a fresh database of its own (on
its own event loop), so that a test module can share it through a module-scoped fixture.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from parser.postgres import CATALOG_QUERY, PgCatalog, relation_key

__all__ = ("SERVER", "PgOracle", "Planned", "plan_relations")

SERVER = "postgresql://postgres@127.0.0.1:5432"

T = TypeVar("T")


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@dataclass(frozen=True, slots=True)
class Planned:
    """The relations a plan names: every one it scans or modifies, and those it modifies."""

    relations: frozenset[str]
    modified: frozenset[str]


def plan_relations(explained: list[dict[str, Any]], *, temp_schema: str | None = None) -> Planned:
    """The relations an ``EXPLAIN (VERBOSE, FORMAT JSON)`` output names, its schema
    ``pg_temp`` (as EXPLAIN names the session's own) replaced by ``temp_schema``."""

    def key(node: dict[str, Any]) -> str:
        schema = node["Schema"]
        return relation_key(
            temp_schema if schema == "pg_temp" and temp_schema else schema, node["Relation Name"]
        )

    nodes = [
        node for entry in explained for node in _nodes(entry["Plan"]) if "Relation Name" in node
    ]
    return Planned(
        relations=frozenset(key(node) for node in nodes),
        modified=frozenset(key(node) for node in nodes if node["Node Type"] == "ModifyTable"),
    )


class PgOracle:
    """One connection to a database created for it (dropped by :meth:`close`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, database: str) -> None:
        self._loop = loop
        self.database = database
        self._admin: asyncpg.Connection | None = None
        self._conn: asyncpg.Connection | None = None

    @classmethod
    def open(cls, schema: str = "") -> PgOracle:
        """Create the database, connect to it and run ``schema`` (a script)."""
        oracle = cls(asyncio.new_event_loop(), f"rxdb_pgparser_{uuid.uuid4().hex}")
        try:
            oracle._run(oracle._open(schema))
        except BaseException:
            oracle.close()
            raise
        return oracle

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    async def _open(self, schema: str) -> None:
        self._admin = await asyncpg.connect(f"{SERVER}/test")
        await self._admin.execute(f"CREATE DATABASE {self.database}")
        self._conn = await asyncpg.connect(f"{SERVER}/{self.database}")
        await self._conn.execute("SET plan_cache_mode = force_generic_plan")
        if schema:
            await self._conn.execute(schema)

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("the oracle is closed")
        return self._conn

    def execute(self, script: str) -> None:
        """Run ``script`` (several statements allowed, no parameters)."""
        self._run(self.conn.execute(script))

    def catalog(self) -> PgCatalog:
        """The catalog the engine would build for this session."""
        row = self._run(self.conn.fetchrow(CATALOG_QUERY))
        if row is None:
            raise RuntimeError("the catalog query returned no row")
        return PgCatalog.from_row(row)

    def plan(self, sql: str) -> Planned:
        """The relations the server's plan for ``sql`` names.

        :raises asyncpg.PostgresError: if the server rejects ``sql``.
        """
        return self._run(self._plan(sql))

    async def _plan(self, sql: str) -> Planned:
        # EXPLAIN of a statement with bound parameters plans it for those values (NULL folds
        # whole branches away); a prepared statement's generic plan does not.
        await self.conn.execute(f"PREPARE rxdb_oracle AS {sql}")
        try:
            count = await self.conn.fetchval(
                "SELECT cardinality(parameter_types) FROM pg_prepared_statements"
                " WHERE name = 'rxdb_oracle'"
            )
            nulls = ", ".join(["NULL"] * count)
            execute = f"EXECUTE rxdb_oracle({nulls})" if count else "EXECUTE rxdb_oracle"
            explained = await self.conn.fetchval(f"EXPLAIN (VERBOSE, FORMAT JSON) {execute}")
        finally:
            await self.conn.execute("DEALLOCATE rxdb_oracle")
        temp = await self.conn.fetchval(
            "SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()"
        )
        return plan_relations(json.loads(explained), temp_schema=temp)

    def close(self) -> None:
        """Close the connection, drop the database (with any connection left in it)."""
        try:
            self._run(self._close())
        finally:
            self._loop.close()

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._admin is not None:
            try:
                await self._admin.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            finally:
                await self._admin.close()
                self._admin = None
