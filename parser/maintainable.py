"""Which queries a watch can keep up to date row by row: :func:`maintainable`.

The shape is the common UI query: ``SELECT <columns> FROM <one table> [WHERE ...] [ORDER BY
...]`` with no aggregate, ``GROUP BY``, ``LIMIT``, ``DISTINCT``, window, join, subquery, CTE or
compound, over a table whose rowid is an ``INTEGER PRIMARY KEY`` column.
For such a query every result row is one table row, decided by that row alone: after a commit,
re-reading the rows the commit changed (by rowid) and putting them in their place gives what
the whole query would return, provided the order is total. It is made total by appending the
rowid to the ``ORDER BY`` (ties are unspecified in SQL, so the query that a full run executes
is this rewritten one, and both agree on every tie).

Anything the analysis does not recognise, it refuses (``None``): the caller then re-runs the
whole query, which is never wrong. In particular it refuses any ``COLLATE`` (ordering would
need SQLite's collation), any function it does not know to be deterministic (``random()``,
``datetime('now')`` and user functions would give changed and unchanged rows different
evaluations), and ``ORDER BY`` terms that are neither result columns nor plain columns of
the table (the order of a row must be computable from the row itself).

The rowid, and each ``ORDER BY`` column, that the query does not select are selected by the
rewritten query as *hidden* columns after the user's (``rxdb_hidden_N``): a patch needs them,
a subscriber must not see them (:attr:`Maintainable.visible`). A query without ``ORDER BY``
that would need one is refused: that is mostly a lookup of a row or a few (``WHERE id = ?``),
which a re-run answers as cheaply, and the engine's other cheap roads for re-runs (on the
writer after its commit, on the thread that receives another process's) know a query by
its own text, never run for a maintained one. Pure functions of the SQL text and of the
table facts the caller passes in (:class:`TableFacts`), which it learns from SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import SqlglotError

from .names import fold_name

__all__ = ("Maintainable", "OrderTerm", "TableFacts", "maintainable")


@dataclass(frozen=True, slots=True)
class TableFacts:
    """What the caller knows of a table from SQLite: its columns in order (what ``*``
    expands to) and the column that is the rowid's alias (``None`` if there is none, or the
    table has no rowid). ``plain`` says its definition uses no ``COLLATE``."""

    columns: tuple[str, ...]
    rowid_column: str | None
    plain: bool = True


@dataclass(frozen=True, slots=True)
class OrderTerm:
    """One ``ORDER BY`` term, as a result column: SQLite's NULLs sort first unless
    ``nulls_first`` is false."""

    position: int
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class Maintainable:
    """How to keep one query's result up to date.

    :ivar table: the table it reads (folded, as the parser names tables).
    :ivar sql: the query with the rowid appended to its ``ORDER BY``: what a full run executes.
    :ivar order: the total order of ``sql``'s rows, the rowid's term last (in the direction
        of the term before it).
    :ivar rowid: the position of the rowid in a result row of ``sql``.
    :ivar visible: how many leading columns of ``sql``'s rows the query itself returns (the
        others are hidden: the rowid or ``ORDER BY`` columns it does not select).
    """

    table: str
    sql: str
    order: tuple[OrderTerm, ...]
    rowid: int
    _rowid_name: str
    visible: int

    def changed_sql(self, named: bool, single: bool = False) -> str:
        """``sql`` restricted to the rows whose rowid is in a JSON array: one more parameter,
        ``:rxdb_rowids`` when the query's parameters are ``named`` (a mapping), else a last
        ``?``. SQLite pushes the filter into the query (a lookup by rowid per row). With
        ``single``, the parameter is one rowid instead (no ``json_each``: cheaper to run)."""
        parameter = ":rxdb_rowids" if named else "?"
        quoted = self._rowid_name.replace('"', '""')
        if single:
            return f'SELECT * FROM ({self.sql}\n) WHERE "{quoted}" = {parameter}'
        return (
            f'SELECT * FROM ({self.sql}\n) WHERE "{quoted}" IN '
            f"(SELECT value FROM json_each({parameter}))"
        )


def maintainable(sql: str, facts: Callable[[str], TableFacts | None]) -> Maintainable | None:
    """Tell how to maintain ``sql``'s result row by row, or ``None`` if it is not of the
    shape (see the module's docstring); ``facts(table)`` describes the table it reads
    (``None``: unknown, so not maintainable)."""
    select = _one_select(sql)
    if select is None:
        return None
    source = _single_table(select)
    if source is None:
        return None
    table, alias = source
    known = facts(table)
    if known is None or known.rowid_column is None or not known.plain:
        return None
    names = _output_names(select, known, {table, alias})
    if names is None:
        return None
    if _HIDDEN in sql.lower() or any(_HIDDEN in name.lower() for name in known.columns):
        return None  # our hidden columns' names must mean nothing else
    hidden: list[str] = []  # table columns selected after the user's, in order
    rowid = _rowid_position(select, known, known.rowid_column, names, {table, alias})
    if rowid is None:
        rowid = _hide(fold_name(known.rowid_column), names, hidden)
    order = _order(select, known, names, {table, alias}, hidden)
    if order is None or (hidden and not order):
        return None
    with_hidden = _with_hidden(sql, select, hidden)
    if with_hidden is None:
        return None
    # The rowid goes the way of the last term: an index that serves that term ends in the
    # rowid, read in the same direction, so the rewritten query needs no sort of its own.
    descending = bool(order) and order[-1].descending
    rewritten = _with_tiebreak(with_hidden, rowid, bool(order), descending)
    if rewritten is None:
        return None
    terms = (*order, OrderTerm(rowid, descending=descending, nulls_first=not descending))
    rowid_name = names[rowid] if rowid < len(names) else _hidden_name(rowid - len(names))
    return Maintainable(table, rewritten, terms, rowid, rowid_name, len(names))


_HIDDEN = "rxdb_hidden_"


def _hidden_name(index: int) -> str:
    return f"{_HIDDEN}{index}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _hide(column: str, names: list[str], hidden: list[str]) -> int:
    """The position of the hidden column selecting ``column`` (folded), added if new."""
    if column not in hidden:
        hidden.append(column)
    return len(names) + hidden.index(column)


def _with_hidden(sql: str, select: exp.Select, hidden: list[str]) -> str | None:
    """``sql`` selecting the ``hidden`` columns after its own, inserted as text before its
    ``FROM`` (the query has no subquery: its first ``FROM`` that does not end ``IS [NOT]
    DISTINCT FROM``), or ``None`` if the result does not parse as those columns added."""
    if not hidden:
        return sql
    try:
        tokens = sqlglot.Dialect.get_or_raise("sqlite").tokenize(sql)
    except SqlglotError:
        return None
    start = next(
        (
            token.start
            for previous, token in zip([None, *tokens], tokens, strict=False)
            if token.token_type is TokenType.FROM
            and (previous is None or previous.token_type is not TokenType.DISTINCT)
        ),
        None,
    )
    if start is None:
        return None
    columns = "".join(
        f", {_quoted(column)} AS {_hidden_name(index)}" for index, column in enumerate(hidden)
    )
    rewritten = f"{sql[:start]}{columns}\n{sql[start:]}"
    parsed = _one_select(rewritten)
    if parsed is None or len(parsed.expressions) != len(select.expressions) + len(hidden):
        return None
    added = parsed.expressions[len(select.expressions) :]
    if [item.alias for item in added] != [_hidden_name(i) for i in range(len(hidden))]:
        return None
    if parsed.args.get("from_") != select.args.get("from_"):
        return None
    return rewritten


def _one_select(sql: str) -> exp.Select | None:
    try:
        tree = sqlglot.parse(sql, read="sqlite")
    except SqlglotError:
        return None
    if len(tree) != 1 or not isinstance(tree[0], exp.Select):
        return None
    return tree[0]


_CLAUSES = frozenset({"expressions", "from_", "where", "order"})
"""The clauses a maintainable query may have; any other (a CTE, a join, ``GROUP BY``,
``LIMIT``, ``DISTINCT``...) makes a row's presence depend on more than the row."""
_ALLOWED = (
    exp.Select, exp.From, exp.Where, exp.Order, exp.Ordered, exp.Table, exp.TableAlias,
    exp.Column, exp.Star, exp.Identifier, exp.Literal, exp.Null, exp.Boolean, exp.Paren,
    exp.Alias, exp.Neg, exp.Not, exp.And, exp.Or, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT,
    exp.LTE, exp.Is, exp.Like, exp.Glob, exp.Escape, exp.In, exp.Between, exp.Add, exp.Sub,
    exp.Mul, exp.Div, exp.Mod, exp.DPipe, exp.Case, exp.If, exp.Coalesce, exp.Lower,
    exp.Upper, exp.Length, exp.Abs, exp.Placeholder, exp.Parameter, exp.Tuple,
    exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseNot, exp.Var, exp.NullSafeEQ, exp.NullSafeNEQ,
    exp.Cast, exp.DataType,
)  # fmt: skip
"""Every node a maintainable query may contain: none reads another table or row, none is
non-deterministic, none carries a collation."""


def _single_table(select: exp.Select) -> tuple[str, str] | None:
    """The one table read (folded) and the name columns may qualify it with."""
    if any(value for clause, value in select.args.items() if clause not in _CLAUSES):
        return None
    for node in select.walk():
        if not isinstance(node, _ALLOWED) or (isinstance(node, exp.Select) and node is not select):
            return None
        if isinstance(node, exp.In) and node.args.get("query") is not None:
            return None
        if isinstance(node, exp.Literal) and not node.is_string and not _number(node.this):
            return None
    source = select.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table):
        return None
    table = source.this
    if not isinstance(table.this, exp.Identifier) or table.args.get("indexed") is not None:
        return None  # a table-valued function, or INDEXED BY
    schema = fold_name(table.db) if table.db else "main"
    if schema != "main" or table.catalog:
        return None
    name = fold_name(table.name)
    return name, fold_name(table.alias) if table.alias else name


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _column_of(node: exp.Expression, facts: TableFacts, qualifiers: set[str]) -> str | None:
    """The table column (folded) a plain column reference names, else ``None``."""
    if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
        return None
    if node.table and fold_name(node.table) not in qualifiers:
        return None
    name = fold_name(node.name)
    return name if name in {fold_name(c) for c in facts.columns} else None


def _items(select: exp.Select, facts: TableFacts, qualifiers: set[str]) -> list[exp.Expression]:
    """The result columns, with ``*`` expanded to the table's columns."""
    items: list[exp.Expression] = []
    for item in select.expressions:
        star = isinstance(item, exp.Star) or (
            isinstance(item, exp.Column) and isinstance(item.this, exp.Star)
        )
        if star:
            if isinstance(item, exp.Column) and fold_name(item.table) not in qualifiers:
                return []
            items.extend(exp.column(column) for column in facts.columns)
        else:
            items.append(item)
    return items


def _output_names(select: exp.Select, facts: TableFacts, qualifiers: set[str]) -> list[str] | None:
    items = _items(select, facts, qualifiers)
    if not items:
        return None
    names = []
    for item in items:
        if isinstance(item, exp.Alias):
            names.append(item.alias)
        elif isinstance(item, exp.Column):
            names.append(item.name)
        else:
            names.append("")  # an expression's name is its text: never looked up here
    return names


def _rowid_position(
    select: exp.Select, facts: TableFacts, column: str, names: list[str], qualifiers: set[str]
) -> int | None:
    """Where the rowid's alias column is in a result row, if it is there once under a name
    no other result column has (the changed rows are picked out by that name)."""
    rowid = fold_name(column)
    items = _items(select, facts, qualifiers)
    for position, item in enumerate(items):
        inner = item.this if isinstance(item, exp.Alias) else item
        if _column_of(inner, facts, qualifiers) == rowid:
            folded = fold_name(names[position])
            if folded and [fold_name(n) for n in names].count(folded) == 1:
                return position
    return None


def _order(
    select: exp.Select,
    facts: TableFacts,
    names: list[str],
    qualifiers: set[str],
    hidden: list[str],
) -> list[OrderTerm] | None:
    """The ``ORDER BY`` terms; a term that is a column of the table the query does not
    select adds that column to ``hidden``."""
    order = select.args.get("order")
    if order is None:
        return []
    items = _items(select, facts, qualifiers)
    aliases = [fold_name(item.alias) if isinstance(item, exp.Alias) else "" for item in items]
    terms = []
    for ordered in order.expressions:
        position = _result_column(ordered.this, items, aliases, facts, qualifiers)
        if position is None:
            column = _unselected_column(ordered.this, aliases, facts, qualifiers)
            if column is None:
                return None
            position = _hide(column, names, hidden)
        terms.append(OrderTerm(position, bool(ordered.args.get("desc")), _nulls_first(ordered)))
    return terms


def _nulls_first(ordered: exp.Ordered) -> bool:
    # sqlglot fills in SQLite's default (NULLs are the smallest values) when none is written.
    return bool(ordered.args.get("nulls_first"))


def _result_column(
    term: exp.Expression,
    items: list[exp.Expression],
    aliases: list[str],
    facts: TableFacts,
    qualifiers: set[str],
) -> int | None:
    """The result column an ``ORDER BY`` term sorts by, resolved as SQLite does: a number
    is a position, a bare name is first an ``AS`` alias, anything else an expression that
    must be one of the result columns."""
    if isinstance(term, exp.Literal):
        if term.is_string or not term.this.isdigit():
            return None
        position = int(term.this) - 1
        return position if 0 <= position < len(items) else None
    if isinstance(term, exp.Column) and not term.table and isinstance(term.this, exp.Identifier):
        folded = fold_name(term.name)
        if aliases.count(folded) > 1:
            return None
        if folded in aliases:
            return aliases.index(folded)
    column = _column_of(term, facts, qualifiers)
    if column is None:
        return None
    for position, item in enumerate(items):
        inner = item.this if isinstance(item, exp.Alias) else item
        if _column_of(inner, facts, qualifiers) == column:
            return position
    return None


def _unselected_column(
    term: exp.Expression, aliases: list[str], facts: TableFacts, qualifiers: set[str]
) -> str | None:
    """The table column (folded) a term names, if it names no ``AS`` alias (an ambiguous
    alias is an error for SQLite, not a column)."""
    if isinstance(term, exp.Column) and not term.table and fold_name(term.name) in aliases:
        return None
    return _column_of(term, facts, qualifiers)


def _with_tiebreak(sql: str, rowid: int, ordered: bool, descending: bool) -> str | None:
    """``sql`` with the rowid's result column (by position) as its last ``ORDER BY`` term,
    appended as text (on a line of its own: the text may end in a ``--`` comment), or
    ``None`` if the result does not parse as one query with that last term."""
    body = sql.rstrip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    term = f"{rowid + 1}{' DESC' if descending else ''}"
    rewritten = f"{body}\n{', ' if ordered else 'ORDER BY '}{term}"
    select = _one_select(rewritten)
    order = None if select is None else select.args.get("order")
    if order is None:
        return None
    last = order.expressions[-1].this
    if not (isinstance(last, exp.Literal) and last.this == str(rowid + 1)):
        return None
    return rewritten
