"""What one PostgreSQL session can see: :class:`PgCatalog`, the facts a read set resolves in.

A query names relations; which relation a name means depends on the session (its
``search_path``, its temporary schema) and on what the database holds. The engine runs
:data:`CATALOG_QUERY` on the session whose queries it analyses and hands the one row to
:meth:`PgCatalog.from_row`; this package never talks to a server.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .names import RelationName

__all__ = ("CATALOG_QUERY", "SYSTEM_SCHEMAS", "PgCatalog", "PgRelation", "RelationKind")

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
"""Schemas the server itself fills: their views get no definition in the catalog."""

CATALOG_QUERY = """
SELECT
    pg_catalog.current_schemas(true) AS search_path,
    (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = pg_catalog.pg_my_temp_schema())
        AS temp_schema,
    (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                c.oid::bigint, n.nspname, c.relname, c.relkind,
                CASE WHEN c.relkind = 'v'
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                     THEN pg_catalog.pg_get_viewdef(c.oid) END,
                (SELECT coalesce(pg_catalog.jsonb_agg(i.inhparent::bigint), '[]')
                   FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid))), '[]')
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')
        AND n.nspname NOT LIKE 'pg\\_toast%'
        AND (n.nspname NOT LIKE 'pg\\_temp\\_%' OR n.oid = pg_catalog.pg_my_temp_schema())
    )::text AS relations,
    (SELECT coalesce(pg_catalog.jsonb_agg(DISTINCT pg_catalog.jsonb_build_array(
                n.nspname, p.proname)), '[]')
       FROM pg_catalog.pg_proc p
       JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND p.provolatile <> 'i'
    )::text AS functions
"""
"""The one statement the engine runs (no parameters) to build a :class:`PgCatalog`.

One row: ``search_path`` (``current_schemas(true)``: the effective lookup order, the temporary
schema and ``pg_catalog`` included where the server puts them), ``temp_schema`` (this session's,
or NULL before its first temporary object), ``relations`` (JSON: every table, view, materialized
view, partitioned table, foreign table and sequence of every schema but other sessions'
temporary ones, with view definitions and inheritance parents) and ``functions`` (JSON: schema
and name of every function outside the system schemas that is not IMMUTABLE, so may read tables).
One statement, so one snapshot: the definitions agree with the search path they were printed
for (``pg_get_viewdef`` qualifies exactly the names that path would not find).
"""


class RelationKind(enum.Enum):
    """``pg_class.relkind`` of the relations a query can name."""

    TABLE = "r"
    VIEW = "v"
    MATERIALIZED_VIEW = "m"
    PARTITIONED_TABLE = "p"
    FOREIGN_TABLE = "f"
    SEQUENCE = "S"


@dataclass(frozen=True, slots=True)
class PgRelation:
    """One relation of the catalog.

    :ivar definition: a view's ``SELECT`` (``pg_get_viewdef``), ``None`` for anything else and
        for the views of :data:`SYSTEM_SCHEMAS`.
    :ivar parents: the relations it inherits from or is a partition of.
    """

    schema: str
    name: str
    kind: RelationKind
    definition: str | None = None
    parents: tuple[tuple[str, str], ...] = ()


def _decoded(value: Any) -> Any:
    # The query casts its JSON to text; an engine that registered a json codec hands lists.
    return json.loads(value) if isinstance(value, str) else value


class PgCatalog:
    """The relations one session can name, and where it looks for an unqualified name.

    Immutable and hashed once, so it can key caches; two catalogs are equal when they hold the
    same facts.

    :param search_path: schemas in lookup order, as ``current_schemas(true)`` gives them.
    :param relations: every relation a query of the session may name.
    :param temp_schema: the session's temporary schema (``pg_temp_3``), which ``pg_temp`` means.
    :param functions: ``(schema, name)`` of user functions that may read tables.
    """

    __slots__ = ("_children", "_functions", "_hash", "_relations", "_search_path", "_temp")

    _search_path: tuple[str, ...]
    _temp: str | None
    _relations: dict[tuple[str, str], PgRelation]
    _children: dict[tuple[str, str], tuple[PgRelation, ...]]
    _functions: frozenset[tuple[str, str]]
    _hash: int

    def __init__(
        self,
        search_path: Iterable[str],
        relations: Iterable[PgRelation],
        *,
        temp_schema: str | None = None,
        functions: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._search_path = tuple(search_path)
        self._temp = temp_schema
        self._relations = {(r.schema, r.name): r for r in relations}
        children: dict[tuple[str, str], list[PgRelation]] = {}
        for relation in self._relations.values():
            for parent in relation.parents:
                children.setdefault(parent, []).append(relation)
        self._children = {key: tuple(value) for key, value in children.items()}
        self._functions = frozenset((schema, name) for schema, name in functions)
        self._hash = hash(
            (self._search_path, self._temp, frozenset(self._relations.values()), self._functions)
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PgCatalog:
        """Build the catalog from the row :data:`CATALOG_QUERY` returns (an asyncpg ``Record``
        or any mapping with its column names)."""
        entries = _decoded(row["relations"])
        names = {oid: (schema, name) for oid, schema, name, *_ in entries}
        relations = [
            PgRelation(
                schema=schema,
                name=name,
                kind=RelationKind(kind),
                definition=definition,
                parents=tuple(names[parent] for parent in parents if parent in names),
            )
            for _oid, schema, name, kind, definition, parents in entries
        ]
        return cls(
            row["search_path"],
            relations,
            temp_schema=row["temp_schema"],
            functions=(tuple(pair) for pair in _decoded(row["functions"])),
        )

    @property
    def search_path(self) -> tuple[str, ...]:
        """Schemas in the order the server looks an unqualified relation up."""
        return self._search_path

    @property
    def temp_schema(self) -> str | None:
        """The session's temporary schema, if it has one yet."""
        return self._temp

    def schema_named(self, schema: str) -> str | None:
        """The schema a query's ``schema`` means: ``pg_temp`` is the session's temporary one."""
        return self._temp if schema == "pg_temp" else schema

    def resolve(self, name: RelationName) -> PgRelation | None:
        """The relation ``name`` means in this session, or ``None`` if it means none (the query
        would fail, or the catalog is older than the relation)."""
        if name.schema is not None:
            schema = self.schema_named(name.schema)
            return None if schema is None else self._relations.get((schema, name.name))
        for schema in self._search_path:
            found = self._relations.get((schema, name.name))
            if found is not None:
                return found
        return None

    def relation(self, schema: str, name: str) -> PgRelation | None:
        """The relation ``name`` of ``schema``, names exactly as the catalog spells them."""
        return self._relations.get((schema, name))

    def children(self, relation: PgRelation) -> tuple[PgRelation, ...]:
        """The relations that inherit from ``relation`` or are its partitions (one level)."""
        return self._children.get((relation.schema, relation.name), ())

    def parents(self, relation: PgRelation) -> Iterator[PgRelation]:
        """The relations ``relation`` inherits from or is a partition of (one level)."""
        for schema, name in relation.parents:
            parent = self._relations.get((schema, name))
            if parent is not None:
                yield parent

    def may_read(self, schema: str, function: str) -> bool:
        """Whether ``schema`` holds a user function ``function`` that is not IMMUTABLE."""
        return (schema, function) in self._functions

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PgCatalog):
            return NotImplemented
        return (
            self._hash == other._hash
            and self._search_path == other._search_path
            and self._temp == other._temp
            and self._relations == other._relations
            and self._functions == other._functions
        )

    def __repr__(self) -> str:
        path = ", ".join(self._search_path)
        return f"<PgCatalog search_path=[{path}] relations={len(self._relations)}>"
