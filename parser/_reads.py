"""Find the tables a parsed query or write reads, with sqlglot's scope walk.

Internal module, not covered by versioning.

Subtracting CTE names from every ``exp.Table`` in the tree loses a real table whose name a CTE in
another scope shadows; the scope walk resolves each name in its own scope instead. Two SQLite
forms the walk does not see are added by hand: ``x IN table`` (sqlglot reads the table as a
column) and the target of a write. Any ``exp.Table`` the walk did not account for is kept as read:
a spare table costs a needless re-run, a missing one a stale result.

The walk only matters where a name could mean a CTE. Without a ``WITH`` anywhere in the tree no
scope has a CTE in sight, so what the walk and its fallback report together is exactly every
``exp.Table`` plus every ``x IN t``, each filtered as below. :func:`table_refs` then skips the walk
(the dearest part of a cold analysis after sqlglot's parse) and collects them in one pass;
tests/parser/test_reads.py checks that both paths agree over the corpus.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from .names import fold_name, qualified_name

__all__ = ("TableRefs", "flat_table_refs", "scoped_table_refs", "table_refs")


class UnsupportedName(ValueError):
    """Raised when a table reference has a shape SQLite would not accept."""


class TableRefs(NamedTuple):
    """The tables a statement reads and the table it writes (raw names, views not expanded).

    :ivar unscoped: how many table references the scope walk missed and were kept anyway; tests
        watch this to notice when sqlglot's scoping changes under us.
    :ivar functions: table-valued functions called in FROM (``pragma_table_info``, named like
        tables): not tables, but some read state a write can move (see ``parser.dependencies``).
    """

    reads: frozenset[str]
    writes: frozenset[str]
    unscoped: int
    functions: frozenset[str] = frozenset()


def _is_table_function(table: exp.Table) -> bool:
    # json_each(...), generate_series(...), pragma_table_info(...) are Tables without a name.
    return not isinstance(table.this, exp.Identifier)


def _function_name(table: exp.Table) -> str:
    # pragma_user_version() is Anonymous; functions sqlglot knows (generate_series) have a class.
    function = table.this
    name = function.name if isinstance(function, exp.Anonymous) else None
    if not name and isinstance(function, exp.Func):
        name = function.sql_name()
    if not name:
        raise UnsupportedName(f"{table.sql(dialect='sqlite')!r} calls a function without a name")
    return qualified_name(name, table.db)


def _is_index(table: exp.Table) -> bool:
    # "t INDEXED BY i" holds the index as a Table under the `indexed` argument.
    return table.arg_key == "indexed"


def _table_name(table: exp.Table) -> str:
    if table.args.get("catalog") is not None:
        raise UnsupportedName(f"{table.sql(dialect='sqlite')!r} has more than two name parts")
    return qualified_name(table.name, table.db)


def _in_table_name(column: exp.Column) -> str:
    # "x IN main.t" parses as Column(this=t, table=main).
    if column.args.get("db") is not None or column.args.get("catalog") is not None:
        raise UnsupportedName(f"{column.sql(dialect='sqlite')!r} has more than two name parts")
    return qualified_name(column.name, column.table)


def _in_table(node: exp.In) -> exp.Column | None:
    # "x IN t" puts t in `field`; "x IN (t)" is a one-element list and means the column t.
    field = node.args.get("field")
    if isinstance(field, exp.Column) and isinstance(field.this, exp.Identifier):
        return field
    return None


def _write_target(statement: exp.Expr) -> exp.Table | None:
    if not isinstance(statement, exp.Insert | exp.Update | exp.Delete):
        return None
    target = statement.this
    if isinstance(target, exp.Schema):  # INSERT INTO t(a, b)
        target = target.this
    if not isinstance(target, exp.Table) or _is_table_function(target):
        raise UnsupportedName(f"the target of {type(statement).__name__.upper()} is not a table")
    return target


def _scan_scope(scope: Scope, reads: set[str], functions: set[str], seen: set[int]) -> None:
    # SQLite resolves an unqualified name to a CTE in scope before a table, comparing names as
    # fold_name does; aliases play no part. The scope only says which CTEs are visible here:
    # sqlglot matches names case-sensitively, and its alias-keyed `sources` lose one of two
    # tables sharing an alias.
    ctes = {fold_name(name) for name in scope.cte_sources}
    for table in scope.tables:
        seen.add(id(table))
        if _is_table_function(table):
            functions.add(_function_name(table))
            continue
        if _is_index(table):
            continue
        if not table.db and fold_name(table.name) in ctes:
            continue
        reads.add(_table_name(table))
    for node in scope.find_all(exp.In):
        column = _in_table(node)
        if column is None:
            continue
        seen.add(id(node))
        if column.table or fold_name(column.name) not in ctes:
            reads.add(_in_table_name(column))


def _flat_nodes(statement: exp.Expr) -> tuple[list[exp.Table], list[exp.In]] | None:
    # One depth-first pass over the tree, cheaper than sqlglot's walk (no generator per node).
    # None as soon as a WITH shows up: a name may then mean a CTE and needs the scope walk.
    tables: list[exp.Table] = []
    ins: list[exp.In] = []
    stack: list[exp.Expr] = [statement]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if isinstance(node, exp.Table):
            tables.append(node)
        elif isinstance(node, exp.In):
            ins.append(node)
        elif isinstance(node, exp.With):
            return None
        for value in node.args.values():
            if isinstance(value, exp.Expr):
                push(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, exp.Expr):
                        push(item)
    return tables, ins


def _collect(statement: exp.Expr, tables: list[exp.Table], ins: list[exp.In]) -> TableRefs:
    reads: set[str] = set()
    writes: set[str] = set()
    functions: set[str] = set()
    target = _write_target(statement)
    if target is not None:
        name = _table_name(target)
        writes.add(name)
        reads.add(name)
    for table in tables:
        if table is target or _is_index(table):
            continue
        if _is_table_function(table):
            functions.add(_function_name(table))
        else:
            reads.add(_table_name(table))
    for node in ins:
        column = _in_table(node)
        if column is not None:
            reads.add(_in_table_name(column))
    return TableRefs(frozenset(reads), frozenset(writes), 0, frozenset(functions))


def flat_table_refs(statement: exp.Expr) -> TableRefs | None:
    """Collect what ``statement`` reads and writes without the scope walk, or None if it has a
    ``WITH`` (then only :func:`scoped_table_refs` is right). ``unscoped`` is always 0.

    :raises UnsupportedName: as :func:`table_refs` does.
    """
    nodes = _flat_nodes(statement)
    if nodes is None:
        return None
    return _collect(statement, *nodes)


def table_refs(statement: exp.Expr) -> TableRefs:
    """Collect the tables ``statement`` reads and writes.

    A write's target counts as read: UPDATE and DELETE read the rows they change, and INSERT
    reads it for conflict checks and upserts. Being conservative costs a re-run at most.

    :raises UnsupportedName: if a table reference has a shape SQLite rejects (three name parts).
    """
    refs = flat_table_refs(statement)
    return refs if refs is not None else scoped_table_refs(statement)


def scoped_table_refs(statement: exp.Expr) -> TableRefs:
    """:func:`table_refs` through sqlglot's scope walk, whatever the statement holds."""
    reads: set[str] = set()
    writes: set[str] = set()
    functions: set[str] = set()
    seen: set[int] = set()

    target = _write_target(statement)
    if target is not None:
        seen.add(id(target))
        name = _table_name(target)
        writes.add(name)
        reads.add(name)

    for scope in traverse_scope(statement):
        _scan_scope(scope, reads, functions, seen)

    # The walk does not build a scope for every clause (a DELETE's own WHERE gets none), so
    # whatever it skipped is added without CTE resolution: possibly a spare name, never a miss.
    unscoped = 0
    for table in statement.find_all(exp.Table):
        if id(table) in seen or _is_index(table):
            continue
        if _is_table_function(table):
            functions.add(_function_name(table))
            continue
        unscoped += 1
        reads.add(_table_name(table))
    for node in statement.find_all(exp.In):
        column = _in_table(node)
        if column is None or id(node) in seen:
            continue
        unscoped += 1
        reads.add(_in_table_name(column))
    return TableRefs(frozenset(reads), frozenset(writes), unscoped, frozenset(functions))
