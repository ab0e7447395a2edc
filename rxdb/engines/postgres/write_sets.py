"""What one statement may write, worked out before it runs: announce mode's write sets.

Without the capture triggers nobody tells rxdb which tables a commit wrote, so in announce
mode (:mod:`~rxdb.engines.postgres.announcer`) the engine works it out before each statement
runs, from the text (:func:`parser.postgres.analyze`) and the catalog its writer sees
(:class:`parser.postgres.PgCatalog`):

- the statement's own targets, :func:`parser.postgres.write_targets`: a table with its
  partitions and inheritance children, a view through its base tables;
- what the writes set off, from the catalog: foreign-key actions (``ON DELETE CASCADE``
  deletes the referencing rows, ``SET NULL`` and ``SET DEFAULT`` and every ``ON UPDATE``
  action update them), transitively; a TRUNCATE empties every table that references its
  target (with CASCADE, or it fails);
- every ancestor of a table written: a watch of a parent reads its partitions.

"Anything may have changed" (``None``) where the statement may run code its text does not
show, or change the schema: a trigger on a relation it writes (a view's INSTEAD OF triggers
included), a rule, a column default or CHECK constraint calling a user function that is not
IMMUTABLE, a call of such a function (they may write), a built-in that runs SQL given as
text, DO, CALL, EXECUTE, COPY, cursors (DECLARE, FETCH, MOVE), LOAD, a prepared transaction,
DDL, and anything the parser is not sure of. Announcing too much costs re-runs; too little,
a stale watch. rxdb's own capture triggers (if someone installs them meanwhile) write nothing.

A change's kind comes from the statement's first word (``INSERT ... ON CONFLICT`` may update
too); where it cannot be told, it is unknown (``None``), which every kind filter lets through.
A :class:`WriteSet` also says which facts of the catalog it rests on, so that the announcer
can check at the commit that they still hold.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from parser import StatementKind, Unanalyzable
from parser.postgres import PgAnalysis, PgCatalog, RelationName, analyze, write_targets
from parser.postgres.catalog import PgRelation, ReferentialAction, RelationKind
from rxdb.engines.postgres.capture import SCHEMA as CAPTURE_SCHEMA
from rxdb.updates import UpdateKind

__all__ = ("Write", "WriteSet", "classify", "needs_catalog", "write_set")

INSERT, UPDATE, DELETE = UpdateKind.INSERT, UpdateKind.UPDATE, UpdateKind.DELETE

# Statements the parser classifies as OTHER or TRANSACTION that run code all the same: a
# cursor's query runs as it is fetched, LOAD runs a library's initialisation, COMMIT
# PREPARED commits writes of an earlier transaction. A false match only costs re-runs.
_RUNS_HIDDEN_CODE = re.compile(r"\b(?:declare|fetch|move|load|prepared)\b", re.IGNORECASE)
# Built-ins that run SQL handed to them as text.
_SQL_TEXT_BUILTINS = frozenset(
    {
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml",
        "cursor_to_xmlschema", "ts_stat", "ts_rewrite",
    }
)  # fmt: skip
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*([A-Za-z]+)", re.DOTALL)
_CONFLICT = re.compile(r"\bconflict\b", re.IGNORECASE)


class _Change(enum.Enum):
    """What a statement does to a relation, as far as foreign-key actions care: TRUNCATE is
    a DELETE that reaches every referencing table; ANY is any change."""

    INSERT = INSERT
    UPDATE = UPDATE
    DELETE = DELETE
    TRUNCATE = "truncate"
    ANY = None

    @property
    def announced(self) -> UpdateKind | None:
        return DELETE if self is _Change.TRUNCATE else self.value


_FIRST_WORD_CHANGES = {
    "insert": (_Change.INSERT,),
    "update": (_Change.UPDATE,),
    "delete": (_Change.DELETE,),
    "truncate": (_Change.TRUNCATE,),
    "refresh": (_Change.UPDATE,),  # as the capture announces REFRESH MATERIALIZED VIEW
}
_CHANGING_ACTIONS = (
    ReferentialAction.CASCADE,
    ReferentialAction.SET_NULL,
    ReferentialAction.SET_DEFAULT,
)


@dataclass(frozen=True, slots=True)
class Write:
    """A relation a statement may change, and how (``None``: any way)."""

    schema: str
    name: str
    kind: UpdateKind | None


def classify(sql: str) -> PgAnalysis | None:
    """The analysis of ``sql`` (a statement or a script), or ``None`` if it may change
    anything whatever the catalog says."""
    try:
        analysis = analyze(sql)
    except Unanalyzable:
        return None
    kinds = analysis.kinds
    if StatementKind.DDL in kinds:
        return None
    hidden = StatementKind.OTHER in kinds or StatementKind.TRANSACTION in kinds
    if hidden and _RUNS_HIDDEN_CODE.search(sql):
        return None
    return analysis


def needs_catalog(analysis: PgAnalysis) -> bool:
    """Whether the write set of ``analysis`` depends on the catalog (else it is empty)."""
    return bool(analysis.writes or analysis.calls or analysis.functions)


@dataclass(frozen=True, slots=True)
class WriteSet:
    """What a statement may write, and the facts of the catalog that say so (another session
    may change them before the statement runs: see :mod:`~rxdb.engines.postgres.announcer`).

    :ivar relations: the relations whose catalog entries it rests on.
    :ivar names: the statement's names of relations, with the relation each one meant.
    :ivar calls: the names of the functions it calls, none of which may write.
    """

    writes: frozenset[Write]
    relations: frozenset[PgRelation] = frozenset()
    names: frozenset[tuple[RelationName, PgRelation]] = frozenset()
    calls: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=4096)
def write_set(analysis: PgAnalysis, sql: str, catalog: PgCatalog) -> WriteSet | None:
    """What the statement ``sql`` (analysed by :func:`classify`) may write in ``catalog``;
    ``None``: anything. Cached per (analysis, text, catalog)."""
    calls = analysis.calls | analysis.functions
    if any(_may_write(name, catalog) for name in calls):
        return None
    called = frozenset(name.name for name in calls)
    if not analysis.writes:
        return WriteSet(frozenset(), calls=called)
    targets = write_targets(analysis, catalog)
    if targets is None:
        return None
    views = list(_views_written(analysis, catalog))
    if any(_runs_code(view) for view in views):
        return None
    # write_targets resolved every name.
    names = {(name, relation) for name in analysis.writes if (relation := catalog.resolve(name))}
    pending = [
        (relation, change)
        for key in targets
        for relation in catalog.keyed(key)
        for change in _changes(analysis, sql)
    ]
    changed: set[tuple[PgRelation, _Change]] = set()
    while pending:
        relation, change = pending.pop()
        if (relation, change) in changed:
            continue
        if _runs_code(relation):
            return None
        changed.add((relation, change))
        pending.extend(_actions(relation, change, catalog))
    ancestors = {
        (ancestor, change)
        for relation, change in changed
        for ancestor in _ancestors(relation, catalog)
    }
    writes = {Write(r.schema, r.name, change.announced) for r, change in changed | ancestors}
    relations = {r for r, _ in changed | ancestors} | set(views) | {r for _, r in names}
    return WriteSet(frozenset(writes), frozenset(relations), frozenset(names), called)


def _changes(analysis: PgAnalysis, sql: str) -> tuple[_Change, ...]:
    if analysis.multiple:
        return (_Change.ANY,)
    first = _FIRST_WORD.match(sql)
    word = first.group(1).lower() if first is not None else ""
    if word == "insert" and _CONFLICT.search(sql):
        return (_Change.INSERT, _Change.UPDATE)  # ON CONFLICT DO UPDATE
    return _FIRST_WORD_CHANGES.get(word, (_Change.ANY,))  # MERGE, WITH: any


def _actions(
    relation: PgRelation, change: _Change, catalog: PgCatalog
) -> Iterator[tuple[PgRelation, _Change]]:
    """The changes the foreign keys referencing ``relation`` make when it changes so."""
    for reference in relation.referenced_by:
        referencing = catalog.relation(reference.schema, reference.name)
        if referencing is None:
            continue
        if change is _Change.TRUNCATE:
            yield referencing, _Change.TRUNCATE
            continue
        if change in (_Change.UPDATE, _Change.ANY) and reference.on_update in _CHANGING_ACTIONS:
            yield referencing, _Change.UPDATE
        if change in (_Change.DELETE, _Change.ANY):
            if reference.on_delete is ReferentialAction.CASCADE:
                yield referencing, _Change.DELETE
            elif reference.on_delete in _CHANGING_ACTIONS:
                yield referencing, _Change.UPDATE


def _runs_code(relation: PgRelation) -> bool:
    """Whether a write to ``relation`` may run code that writes elsewhere."""
    return relation.rules or any(schema != CAPTURE_SCHEMA for schema, _ in relation.functions)


def _views_written(analysis: PgAnalysis, catalog: PgCatalog) -> Iterator[PgRelation]:
    """The views a write goes through, nested ones included (each may have INSTEAD OF
    triggers or rules of its own). Only called after :func:`write_targets` resolved every
    name, views' definitions included."""
    pending = [catalog.resolve(name) for name in analysis.writes]
    seen: set[PgRelation] = set()
    while pending:
        relation = pending.pop()
        if relation is None or relation.kind is not RelationKind.VIEW or relation in seen:
            continue
        seen.add(relation)
        yield relation
        if relation.definition is not None:
            pending.extend(catalog.resolve(name) for name in analyze(relation.definition).reads)


def _ancestors(relation: PgRelation, catalog: PgCatalog) -> Iterator[PgRelation]:
    pending = list(catalog.parents(relation))
    seen: set[PgRelation] = set()
    while pending:
        parent = pending.pop()
        if parent not in seen:
            seen.add(parent)
            yield parent
            pending.extend(catalog.parents(parent))


def _may_write(name: RelationName, catalog: PgCatalog) -> bool:
    """Whether calling ``name`` may write: a user function that is not IMMUTABLE (looked up
    as the server looks functions up: the search path without the temporary schema), or a
    built-in that runs SQL text."""
    if name.schema in (None, "pg_catalog") and name.name in _SQL_TEXT_BUILTINS:
        return True
    if name.schema is not None:
        schema = catalog.schema_named(name.schema)
        schemas: tuple[str, ...] = () if schema is None else (schema,)
    else:
        schemas = tuple(s for s in catalog.search_path if s != catalog.temp_schema)
    return any(catalog.may_read(schema, name.name) for schema in schemas)
