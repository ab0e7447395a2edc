"""The columns a watched query depends on, table by table: :func:`read_columns`.

SQLite's authorizer reports, while it prepares a query, every column the query's names resolve
to (``SQLITE_READ`` with the column; ``*`` expanded, views expanded into their tables, an
ambiguous unqualified name already bound to its table) and, with an empty column, every table it
reads no column of (``count(*)``, ``EXISTS``). That is the source here rather than the parser:
it is SQLite's own resolution, where a parser would have to redo it (and the probe already runs
for the tables). What the reports do not tell is added from the schema, or makes the table's
columns unknown (``None``: every column; an UPDATE of it re-runs the watch):

- Rows come in the order a scan gives them wherever the query leaves it open (no ``ORDER BY``,
  or ties), and that order follows the rowid or an index's key columns, whichever the plan
  picks: the primary key and every index key column of a table count as read, so that an
  UPDATE that could reorder a result never skips it. An index on an expression, or a partial
  one (its ``WHERE`` decides which rows it holds): unknown.
- That rule also covers ``REPLACE``: an UPDATE that collides with another row under a
  ``REPLACE`` conflict policy (``UPDATE OR REPLACE``, a table's ``ON CONFLICT REPLACE``, an
  outer ``INSERT OR REPLACE`` imposing it on a trigger's UPDATE) deletes that row, unreported,
  but it can only collide by assigning a column of a unique index (or the rowid), which every
  reader of the table counts as read.
- A generated column moves with the columns it is computed from, which an UPDATE does not
  name: a table whose read columns (those above included) hold one: unknown.
- ``USING`` and ``NATURAL`` joins compare columns SQLite does not report: a query (or a view
  it reads) that says either word: every table unknown.
- Virtual tables (their modules' own writes to their shadow tables are reported like any
  other statement's), pragma functions, and any table SQLite did not report at all: unknown.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parser import Catalog, fold_name

__all__ = ("ColumnFacts", "Report", "TableFacts", "facts_sql", "parse_facts", "read_columns")

Report = tuple[str | None, str, str]
"""``(schema, table, column)`` as the authorizer reports a read; column ``""``: none."""

_BY_NAME = re.compile(r"\b(?:using|natural)\b", re.IGNORECASE)
_GENERATED = (2, 3)  # table_xinfo's hidden: 2 virtual, 3 stored generated column
_EXPRESSION = -2  # index_xinfo's cid of an expression key


@dataclass(frozen=True, slots=True)
class TableFacts:
    """What the schema adds to one table's read columns.

    :ivar order: the primary key and index key columns (folded); ``None``: any column.
    :ivar generated: the generated columns (folded).
    """

    order: frozenset[str] | None
    generated: frozenset[str] = frozenset()


ColumnFacts = Mapping[tuple[str, str], TableFacts]
"""The facts of every ordinary table of every schema, by (schema, table), folded."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _identifier(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def facts_sql(schemas: Sequence[str]) -> str:
    """One query for the facts of every schema: rows ``(schema index, table, what, name,
    number, flag)`` where ``what`` is ``c`` (a column: ``number`` its ``hidden``, ``flag``
    whether it is in the primary key) or ``i`` (an index key column: ``number`` its ``cid``,
    ``flag`` whether the index is partial)."""
    parts = []
    for index, schema in enumerate(schemas):
        master = f"{_identifier(schema)}.sqlite_schema AS m"
        name = _literal(schema)
        ordinary = "m.type = 'table' AND m.sql NOT LIKE 'CREATE VIRTUAL%'"
        parts.append(
            f"SELECT {index}, m.name, 'c', p.name, p.hidden, p.pk FROM {master}, "
            f"pragma_table_xinfo(m.name, {name}) AS p WHERE {ordinary}"
        )
        parts.append(
            f"SELECT {index}, m.name, 'i', x.name, x.cid, l.partial FROM {master}, "
            f"pragma_index_list(m.name, {name}) AS l, pragma_index_xinfo(l.name, {name}) AS x "
            f"WHERE {ordinary} AND x.key"
        )
    return " UNION ALL ".join(parts)


def parse_facts(schemas: Sequence[str], rows: Iterable[Sequence[Any]]) -> ColumnFacts:
    """Build the facts from the rows of :func:`facts_sql` over ``schemas``."""
    order: dict[tuple[str, str], set[str] | None] = {}
    generated: dict[tuple[str, str], set[str]] = {}
    for index, table, what, name, number, flag in rows:
        key = (fold_name(schemas[index]), fold_name(table))
        known = order.setdefault(key, set())
        if known is None:
            continue
        if what == "i" and (number == _EXPRESSION or flag):
            order[key] = None
        elif isinstance(name, str):
            if what == "i" or flag:
                known.add(fold_name(name))
            if what == "c" and number in _GENERATED:
                generated.setdefault(key, set()).add(fold_name(name))
    return {
        key: TableFacts(
            None if columns is None else frozenset(columns), frozenset(generated.get(key, ()))
        )
        for key, columns in order.items()
    }


def read_columns(
    sql: str,
    tables: Iterable[str],
    reports: Iterable[Report],
    catalog: Catalog,
    facts: ColumnFacts,
) -> dict[str, frozenset[str]]:
    """The columns each of ``tables`` (a read set's names) is read by, for those that can be
    told; a table left out may depend on any column."""
    if _BY_NAME.search(sql):
        return {}
    seen: dict[str, set[str]] = {}
    for _, table, column in reports:
        columns = seen.setdefault(fold_name(table), set())
        if column:
            columns.add(fold_name(column))
    for name in seen:
        for schema in catalog.holding(name):
            view = catalog.get(schema, name)
            if view is not None and view.kind == "view" and _BY_NAME.search(view.sql or ""):
                return {}
    found = {}
    for name in tables:
        read = _table_columns(name, seen, catalog, facts)
        if read is not None:
            found[name] = read
    return found


def _table_columns(
    name: str, seen: Mapping[str, set[str]], catalog: Catalog, facts: ColumnFacts
) -> frozenset[str] | None:
    prefix, dot, rest = name.partition(".")
    if dot and prefix in catalog.schemas:
        bare, instances = rest, [(prefix, rest)]
    else:
        # Unqualified: a write to a table of that name in any schema is announced so.
        bare, instances = name, [(schema, name) for schema in catalog.holding(name)]
    read = seen.get(bare)
    if read is None or not instances:
        return None
    columns = set(read)
    for instance in instances:
        table = facts.get(instance)
        if table is None or table.order is None:
            return None
        columns |= table.order
        if not table.generated.isdisjoint(columns):
            return None
    return frozenset(columns)
