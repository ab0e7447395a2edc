"""Which relations a PostgreSQL query depends on, and which a write touches, given what its
session sees: :func:`dependencies` and :func:`write_targets`.

Names are resolved as the server resolves them (a schema if given, ``pg_temp`` meaning the
session's temporary schema, else the first schema of the search path holding the name) and
replaced by the relations whose announced writes can move the result:

- a table by itself, its descendants unless read with ``ONLY`` (a read of a parent reads its
  children and partitions), and its ancestors (a write through a parent fires the parent's
  statement triggers only, so it is announced under the parent's name);
- a view by what its definition reads, recursively;
- a materialized view by itself: it changes on REFRESH, announced as a write of it;
- a foreign table by itself: changes made on its server are not seen at all;
- a table of the system schemas by itself (only DDL, which re-runs every watch, changes them).

Anything else makes the answer "every relation" (``None``): a sequence (``nextval`` announces
nothing), a view of the system schemas (the catalog keeps no definition of them: statistics
views move without writes), a name the catalog lacks, a function in FROM other than the pure
set-returning built-ins, a user function that is not IMMUTABLE called anywhere, a built-in that
reads data behind the text (``query_to_xml``, ``ts_stat``, sequence and statistics functions),
a view whose definition cannot be analysed. A spare re-run costs time, a missing relation a
stale result.

Every name comes back spelled by :func:`~parser.postgres.names.relation_key`.
"""

from __future__ import annotations

import functools

from ..analysis import StatementKind
from ..errors import Unanalyzable
from .analysis import PgAnalysis, analyze
from .catalog import PgCatalog, PgRelation, RelationKind
from .names import RelationName, relation_key

__all__ = ("PURE_FROM_FUNCTIONS", "dependencies", "write_targets")

PURE_FROM_FUNCTIONS = frozenset(
    {
        "generate_series", "generate_subscripts", "unnest", "regexp_matches",
        "regexp_split_to_table", "string_to_table", "json_each", "json_each_text",
        "jsonb_each", "jsonb_each_text", "json_array_elements", "json_array_elements_text",
        "jsonb_array_elements", "jsonb_array_elements_text", "json_object_keys",
        "jsonb_object_keys", "json_to_record", "json_to_recordset", "jsonb_to_record",
        "jsonb_to_recordset", "json_populate_record", "json_populate_recordset",
        "jsonb_populate_record", "jsonb_populate_recordset", "jsonb_path_query",
        "jsonb_path_query_tz",
    }
)  # fmt: skip
"""Set-returning built-ins of ``pg_catalog`` whose rows come from their arguments only."""

# Built-ins whose value moves without any announced write: they run SQL given as text, read
# sequences or report statistics and sizes.
_DATA_READING_BUILTINS = frozenset(
    {
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "table_to_xml",
        "table_to_xmlschema", "table_to_xml_and_xmlschema", "cursor_to_xml",
        "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema",
        "database_to_xml_and_xmlschema", "ts_stat", "ts_rewrite", "nextval", "currval",
        "lastval", "setval", "pg_sequence_last_value", "pg_database_size",
        "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size",
    }
)  # fmt: skip
_DATA_READING_PREFIXES = ("pg_stat_", "pg_ls_", "pg_read_")

_INHERITING = (RelationKind.TABLE, RelationKind.PARTITIONED_TABLE, RelationKind.FOREIGN_TABLE)


class _Everything(Exception):
    """Raised inside this module when a name may depend on any relation."""


def dependencies(analysis: PgAnalysis, catalog: PgCatalog) -> frozenset[str] | None:
    """The relations whose committed writes can change the result of the analysed query, as
    ``schema.name`` strings (see :func:`~parser.postgres.names.relation_key`); ``None`` if that
    may be any relation. A write's targets count as read. Cached per (analysis, catalog).
    """
    return _dependencies(analysis, catalog)


def write_targets(analysis: PgAnalysis, catalog: PgCatalog) -> frozenset[str] | None:
    """The relations the analysed statement writes itself, as ``schema.name`` strings; ``None``
    if that may be any relation. A table counts with its descendants (a write through a parent
    reaches its children), a view through what its definition reads (an automatically
    updatable view writes its base table). What triggers, rules and foreign-key actions write
    besides is not included.
    """
    found: set[str] = set()
    try:
        for name in analysis.writes:
            relation = _resolve(name, catalog)
            if relation.kind is RelationKind.VIEW:
                _add_view(relation, catalog, found, frozenset())
            else:
                _add_with_descendants(relation, catalog, found)
    except _Everything:
        return None
    return frozenset(found)


@functools.lru_cache(maxsize=4096)
def _dependencies(analysis: PgAnalysis, catalog: PgCatalog) -> frozenset[str] | None:
    found: set[str] = set()
    try:
        _add_analysis(analysis, catalog, found, frozenset())
    except _Everything:
        return None
    return frozenset(found)


def _add_analysis(
    analysis: PgAnalysis,
    catalog: PgCatalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    for function in analysis.functions:
        _check_from_function(function, catalog)
    for call in analysis.calls:
        _check_call(call, catalog)
    for name in analysis.reads:
        relation = _resolve(name, catalog)
        _add_relation(relation, name in analysis.only, catalog, found, expanding)


def _resolve(name: RelationName, catalog: PgCatalog) -> PgRelation:
    relation = catalog.resolve(name)
    if relation is None:
        raise _Everything
    return relation


def _add_relation(
    relation: PgRelation,
    only: bool,
    catalog: PgCatalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    kind = relation.kind
    if kind is RelationKind.VIEW:
        _add_view(relation, catalog, found, expanding)
    elif kind is RelationKind.SEQUENCE:
        raise _Everything
    elif kind is RelationKind.MATERIALIZED_VIEW:
        found.add(relation_key(relation.schema, relation.name))
    else:
        if only:
            found.add(relation_key(relation.schema, relation.name))
        else:
            _add_with_descendants(relation, catalog, found)
        _add_ancestors(relation, catalog, found)


def _add_view(
    view: PgRelation,
    catalog: PgCatalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    key = (view.schema, view.name)
    if view.definition is None:  # a system view, or one dropped while the catalog was read
        raise _Everything
    if key in expanding:  # the server forbids cycles; a catalog mixing two moments might not
        raise _Everything
    try:
        body = analyze(view.definition)
    except Unanalyzable:
        raise _Everything from None
    if body.kind is not StatementKind.QUERY or body.multiple:
        raise _Everything
    _add_analysis(body, catalog, found, expanding | {key})


def _add_with_descendants(relation: PgRelation, catalog: PgCatalog, found: set[str]) -> None:
    pending = [relation]
    seen: set[tuple[str, str]] = set()
    while pending:
        current = pending.pop()
        if (current.schema, current.name) in seen:
            continue
        seen.add((current.schema, current.name))
        found.add(relation_key(current.schema, current.name))
        pending.extend(catalog.children(current))


def _add_ancestors(relation: PgRelation, catalog: PgCatalog, found: set[str]) -> None:
    pending = list(catalog.parents(relation))
    seen: set[tuple[str, str]] = set()
    while pending:
        parent = pending.pop()
        if (parent.schema, parent.name) in seen or parent.kind not in _INHERITING:
            continue
        seen.add((parent.schema, parent.name))
        found.add(relation_key(parent.schema, parent.name))
        pending.extend(catalog.parents(parent))


def _function_schemas(name: RelationName, catalog: PgCatalog) -> tuple[str, ...]:
    # Functions are looked up along the search path without the temporary schema.
    if name.schema is not None:
        schema = catalog.schema_named(name.schema)
        return () if schema is None else (schema,)
    return tuple(s for s in catalog.search_path if s != catalog.temp_schema)


def _user_function_may_read(name: RelationName, catalog: PgCatalog) -> bool:
    return any(catalog.may_read(schema, name.name) for schema in _function_schemas(name, catalog))


def _is_builtin(name: RelationName) -> bool:
    return name.schema is None or name.schema == "pg_catalog"


def _check_from_function(name: RelationName, catalog: PgCatalog) -> None:
    pure = _is_builtin(name) and name.name in PURE_FROM_FUNCTIONS
    if not pure or _user_function_may_read(name, catalog):
        raise _Everything


def _check_call(name: RelationName, catalog: PgCatalog) -> None:
    if _user_function_may_read(name, catalog):
        raise _Everything
    if _is_builtin(name) and (
        name.name in _DATA_READING_BUILTINS or name.name.startswith(_DATA_READING_PREFIXES)
    ):
        raise _Everything
