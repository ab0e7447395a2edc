"""Which tables a query depends on, given what its connection's schemas hold: :func:`dependencies`.

A query's read set names what the text names. What a commit announces is tables, so every name
is resolved the way SQLite resolves it and replaced by the tables whose changes can move the
result: a view by what its body reads (its unqualified names bound to the view's own schema,
unless it is a TEMP view); a virtual table by itself, its shadow tables and every object its
module arguments name; ``sqlite_sequence`` by the AUTOINCREMENT tables whose inserts write it; a
pragma function by the name the writer announces its setting under. Whatever cannot be resolved
that way (a virtual table module that may read anywhere, a pragma whose value any write moves,
an eponymous table nobody announces) makes the answer "every table" (``None``): a spare re-run
costs time, a missing table a stale result.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from .analysis import view_refs
from .catalog import Catalog, SchemaObject, parse_virtual_table
from .errors import Unanalyzable
from .names import fold_name, qualified_name
from .pragmas import SETTING_PRAGMAS

__all__ = ("SETTING_PRAGMAS", "dependencies")


# Pragma functions whose values only DDL moves (a schema change re-runs every watch anyway).
_SCHEMA_PRAGMAS = frozenset(
    {
        "collation_list", "compile_options", "database_list", "encoding", "foreign_key_list",
        "function_list", "index_info", "index_list", "index_xinfo", "module_list", "pragma_list",
        "schema_version", "table_info", "table_list", "table_xinfo",
    }
)  # fmt: skip
# Eponymous tables that read only their arguments.
_PURE_FUNCTIONS = frozenset({"generate_series", "json_each", "json_tree"})
# sqlite_schema and its aliases: only DDL changes them, and DDL re-runs every watch.
_SCHEMA_TABLES = frozenset(
    {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
)
# Virtual table modules that read only their own shadow tables and the tables their arguments
# name (fts5 content=, fts4 content=, the fts5 table an fts5vocab table describes).
_CONTAINED_MODULES = frozenset(
    {"fts3", "fts4", "fts5", "fts5vocab", "geopoly", "rtree", "rtree_i32"}
)
_AUTOINCREMENT = "autoincrement"
_SEQUENCE = "sqlite_sequence"


class _Everything(Exception):
    """Raised inside this module when a name may depend on any table."""


def dependencies(
    reads: Iterable[str], catalog: Catalog, functions: Iterable[str] = ()
) -> frozenset[str] | None:
    """The tables whose committed changes can change the result of a query that reads
    ``reads`` and calls the table-valued ``functions`` (as :class:`~parser.Analysis` names
    them), resolved in ``catalog``; ``None`` if that may be any table.

    Names come back as writes are announced: folded, ``schema.table`` for a table a view of
    that schema reads; a name the query itself wrote unqualified stays unqualified, which
    matches a write to that table in any schema. Cached per (names, catalog).
    """
    return _dependencies(frozenset(reads) | frozenset(functions), catalog)


@functools.lru_cache(maxsize=4096)
def _dependencies(names: frozenset[str], catalog: Catalog) -> frozenset[str] | None:
    found: set[str] = set()
    try:
        for name in names:
            _add_name(name, None, catalog, found, frozenset())
    except _Everything:
        return None
    return frozenset(found)


def _add_name(
    name: str,
    context: str | None,
    catalog: Catalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    # ``context``: the schema of the (non-TEMP) view whose body holds the name; its
    # unqualified names mean objects of that schema only.
    prefix, dot, bare = name.partition(".")
    if dot and prefix in catalog.schemas:
        schema: str | None = prefix
    else:
        schema, bare = context, name
    if schema is not None:
        hits = [schema] if catalog.get(schema, bare) is not None else []
    else:
        hits = list(catalog.holding(bare))[:1]
        # "main.t" reaches us as "t": a TEMP object may be shadowing the one meant.
        if hits == ["temp"] and catalog.get("main", bare) is not None:
            hits.append("main")
    if not hits:
        _add_unknown(name if schema is None else qualified_name(bare, schema), bare, found)
        return
    for held in hits:
        shown = name if context is None else qualified_name(bare, held)
        _add_object(held, bare, shown, catalog, found, expanding)


def _add_object(
    schema: str,
    name: str,
    shown: str,
    catalog: Catalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    thing = catalog.get(schema, name)
    key = (schema, name)
    if thing is None:  # callers looked it up; kept as read if it vanished
        found.add(shown)
        return
    if key in expanding:  # a cycle: SQLite refuses to use it, so any answer that ends will do
        found.add(shown)
        return
    if thing.kind == "view":
        _add_view(schema, name, thing, catalog, found, expanding | {key})
        return
    found.add(shown)
    if thing.kind == "virtual":
        _add_virtual(schema, name, thing, catalog, found, expanding | {key})
    elif name == _SEQUENCE:
        # SQLite writes sqlite_sequence on inserts into AUTOINCREMENT tables without telling
        # the authorizer; those inserts are announced under the table's own name.
        for table in catalog.names(schema):
            held = catalog.get(schema, table)
            if held is not None and _AUTOINCREMENT in fold_name(held.sql or ""):
                found.add(qualified_name(table, schema))


def _add_view(
    schema: str,
    name: str,
    view: SchemaObject,
    catalog: Catalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    try:
        body = view_refs(name, view.sql or "")
    except Unanalyzable:
        raise _Everything from None
    # A TEMP view resolves its names as a query does; any other is bound to its own schema.
    context = None if schema == "temp" else schema
    for read in body.reads | body.functions:
        _add_name(read, context, catalog, found, expanding)


def _add_virtual(
    schema: str,
    name: str,
    table: SchemaObject,
    catalog: Catalog,
    found: set[str],
    expanding: frozenset[tuple[str, str]],
) -> None:
    definition = parse_virtual_table(table.sql or "")
    if definition is None or definition.module not in _CONTAINED_MODULES:
        raise _Everything
    shadow = name + "_"
    for other in catalog.names(schema):
        if other.startswith(shadow):
            found.add(qualified_name(other, schema))
    for word in definition.words:
        for held in catalog.holding(word):
            _add_object(held, word, qualified_name(word, held), catalog, found, expanding)


def _add_unknown(shown: str, bare: str, found: set[str]) -> None:
    # A name no schema holds: an eponymous virtual table (pragma_*, json_each, dbstat), a
    # table-valued function, or a missing table (then the query fails on its own).
    pragma = bare.removeprefix("pragma_") if bare.startswith("pragma_") else None
    if bare in _SCHEMA_TABLES or pragma in SETTING_PRAGMAS:
        found.add(shown)
    elif pragma not in _SCHEMA_PRAGMAS and bare not in _PURE_FUNCTIONS:
        raise _Everything
