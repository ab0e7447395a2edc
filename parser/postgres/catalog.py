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

from .names import RelationName, relation_key

__all__ = (
    "CATALOG_QUERY",
    "SYSTEM_SCHEMAS",
    "PgCatalog",
    "PgReference",
    "PgRelation",
    "ReferentialAction",
    "RelationKind",
    "relation_entries",
)

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
"""Schemas the server itself fills: their views get no definition in the catalog."""

# One relation's entry in CATALOG_QUERY's "relations" (aliases: c its pg_class row, n its
# namespace, calls and refs from _relations()). Every list is ordered, so two readings of
# unchanged facts give equal JSON. What many relations lack (triggers, functions, foreign
# keys) is gathered in one pass each by _relations(): a subquery per relation costs more
# than the rest of the entry.
_ENTRY = """pg_catalog.jsonb_build_array(
    c.oid::bigint, n.nspname, c.relname, c.relkind,
    CASE WHEN c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         THEN pg_catalog.pg_get_viewdef(c.oid) END,
    (SELECT coalesce(pg_catalog.jsonb_agg(i.inhparent::bigint ORDER BY i.inhseqno), '[]')
       FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid),
    coalesce(calls.list, '[]'),
    EXISTS (SELECT FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1'),
    coalesce(refs.list, '[]'))"""


def _relations(oids: str | None) -> str:
    """pg_class ``c`` with its namespace ``n``, the functions a write to it runs (``calls``:
    its enabled triggers', and the non-IMMUTABLE user functions its column defaults and
    CHECK constraints call), and the foreign keys referencing it (``refs``); limited to the
    relations of ``oids`` if given."""

    def only(column: str) -> str:
        return "" if oids is None else f"AND {column} = ANY({oids})"

    return f"""pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN (SELECT x.rel, pg_catalog.jsonb_agg(DISTINCT pg_catalog.jsonb_build_array(
                    fn.nspname, f.proname)) AS list
               FROM (SELECT g.tgrelid AS rel, g.tgfoid AS fn, true AS trigger
                       FROM pg_catalog.pg_trigger g
                      WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' {only("g.tgrelid")}
                     UNION ALL
                     SELECT a.adrelid, d.refobjid, false FROM pg_catalog.pg_attrdef a
                       JOIN pg_catalog.pg_depend d
                         ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                        AND d.objid = a.oid
                      WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            {only("a.adrelid")}
                     UNION ALL
                     SELECT k.conrelid, d.refobjid, false FROM pg_catalog.pg_constraint k
                       JOIN pg_catalog.pg_depend d
                         ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                        AND d.objid = k.oid
                      WHERE k.contype = 'c'
                        AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            {only("k.conrelid")}) x
               JOIN pg_catalog.pg_proc f ON f.oid = x.fn
               JOIN pg_catalog.pg_namespace fn ON fn.oid = f.pronamespace
              WHERE x.trigger
                 OR (f.provolatile <> 'i'
                     AND fn.nspname NOT IN ('pg_catalog', 'information_schema'))
              GROUP BY x.rel) calls ON calls.rel = c.oid
  LEFT JOIN (SELECT k.confrelid, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    k.conrelid::bigint, k.confupdtype, k.confdeltype) ORDER BY k.oid) AS list
               FROM pg_catalog.pg_constraint k WHERE k.contype = 'f' {only("k.confrelid")}
              GROUP BY k.confrelid) refs ON refs.confrelid = c.oid"""


def relation_entries(oids: str) -> str:
    """A scalar subquery: the entries :data:`CATALOG_QUERY` gives the relations whose oids are
    in ``oids`` (an SQL expression of type ``oid[]``, such as a parameter), ordered by oid, as
    JSON. Equal to those entries (ordered so) while the facts they hold still hold: how a
    session checks cheaply that what it concluded from a catalog read earlier is still true
    of the relations it concluded it about."""
    return f"""(SELECT coalesce(pg_catalog.jsonb_agg({_ENTRY} ORDER BY c.oid), '[]')
  FROM {_relations(oids)}
 WHERE c.oid = ANY({oids}))"""


CATALOG_QUERY = f"""
SELECT
    pg_catalog.current_schemas(true) AS search_path,
    (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = pg_catalog.pg_my_temp_schema())
        AS temp_schema,
    (SELECT coalesce(pg_catalog.jsonb_agg({_ENTRY}), '[]')
       FROM {_relations(None)}
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
temporary ones, each an entry ``[oid, schema, name, relkind, view definition, parent oids,
functions a write runs, has write rules, [[referencing oid, on update, on delete], ...]]``:
see :class:`PgRelation`) and ``functions`` (JSON: schema and name of every function outside the
system schemas that is not IMMUTABLE, so may read tables). One statement, so one snapshot: the
definitions agree with the search path they were printed for (``pg_get_viewdef`` qualifies
exactly the names that path would not find).
"""


class RelationKind(enum.Enum):
    """``pg_class.relkind`` of the relations a query can name."""

    TABLE = "r"
    VIEW = "v"
    MATERIALIZED_VIEW = "m"
    PARTITIONED_TABLE = "p"
    FOREIGN_TABLE = "f"
    SEQUENCE = "S"


class ReferentialAction(enum.Enum):
    """``pg_constraint.confupdtype`` and ``confdeltype``: what a foreign key does to the
    referencing rows when the rows they reference are updated or deleted."""

    NO_ACTION = "a"
    RESTRICT = "r"
    CASCADE = "c"
    SET_NULL = "n"
    SET_DEFAULT = "d"


@dataclass(frozen=True, slots=True)
class PgReference:
    """A foreign key of the relation ``schema.name`` referencing another relation."""

    schema: str
    name: str
    on_update: ReferentialAction
    on_delete: ReferentialAction


@dataclass(frozen=True, slots=True)
class PgRelation:
    """One relation of the catalog.

    :ivar definition: a view's ``SELECT`` (``pg_get_viewdef``), ``None`` for anything else and
        for the views of :data:`SYSTEM_SCHEMAS`.
    :ivar parents: the relations it inherits from or is a partition of.
    :ivar functions: ``(schema, name)`` of the functions a write to it may run besides the
        write itself: those of its enabled triggers (INSTEAD OF triggers of a view included),
        and the user functions that are not IMMUTABLE its column defaults and CHECK
        constraints call.
    :ivar rules: it has rules for INSERT, UPDATE or DELETE (a write to it may be rewritten
        into other statements).
    :ivar referenced_by: the foreign keys that reference it.
    """

    schema: str
    name: str
    kind: RelationKind
    definition: str | None = None
    parents: tuple[tuple[str, str], ...] = ()
    functions: tuple[tuple[str, str], ...] = ()
    rules: bool = False
    referenced_by: tuple[PgReference, ...] = ()


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

    __slots__ = (
        "_by_key",
        "_children",
        "_functions",
        "_hash",
        "_relations",
        "_search_path",
        "_temp",
    )

    _search_path: tuple[str, ...]
    _temp: str | None
    _relations: dict[tuple[str, str], PgRelation]
    _children: dict[tuple[str, str], tuple[PgRelation, ...]]
    _by_key: dict[str, tuple[PgRelation, ...]]
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
        by_key: dict[str, list[PgRelation]] = {}
        for relation in self._relations.values():
            by_key.setdefault(relation_key(relation.schema, relation.name), []).append(relation)
        self._by_key = {key: tuple(value) for key, value in by_key.items()}
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
                functions=tuple((fschema, fname) for fschema, fname in functions),
                rules=rules,
                referenced_by=tuple(
                    # A referencing relation outside the catalog is another session's
                    # temporary table: nobody else can read it.
                    PgReference(*names[oid], ReferentialAction(update), ReferentialAction(delete))
                    for oid, update, delete in references
                    if oid in names
                ),
            )
            for (
                _oid,
                schema,
                name,
                kind,
                definition,
                parents,
                functions,
                rules,
                references,
            ) in entries
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

    def keyed(self, key: str) -> tuple[PgRelation, ...]:
        """The relations :func:`~parser.postgres.names.relation_key` spells ``key`` (more
        than one only where names hold dots)."""
        return self._by_key.get(key, ())

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
