"""Classify a statement and find the tables it reads: :func:`analyze` and :func:`read_tables`.

Only queries and writes get a read set worth trusting, so only they go through sqlglot. Every
other statement is classified by its first keyword, which is enough to know it reads no rows a
watch depends on, and spares sqlglot the syntax it only half understands (``CREATE TRIGGER``
bodies, ``WITHOUT ROWID``, ``SAVEPOINT``).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError

from ._reads import TableRefs, UnsupportedName, table_refs
from ._text import Statement, split_statements
from .errors import Unanalyzable
from .views import Views

__all__ = ("Analysis", "StatementKind", "analyze", "read_tables", "view_refs")

# Built once: a dialect given by name is looked up and instantiated on every parse. It holds only
# settings (each parse makes its own tokenizer and parser), so threads can share it.
_SQLITE = Dialect.get_or_raise("sqlite")

# Big enough for every distinct statement an application issues; an entry is a few hundred bytes.
_CACHE_SIZE = 4096


class StatementKind(enum.Enum):
    """What a statement does, as far as watches care."""

    #: SELECT, WITH ... SELECT, VALUES and set operations.
    QUERY = "query"
    #: INSERT, UPDATE, DELETE, REPLACE, upserts, including WITH ... INSERT.
    WRITE = "write"
    #: CREATE, DROP and ALTER of tables, views, indexes and triggers.
    DDL = "ddl"
    #: BEGIN, COMMIT, END, ROLLBACK, SAVEPOINT, RELEASE.
    TRANSACTION = "transaction"
    #: PRAGMA, ATTACH, DETACH, VACUUM, ANALYZE, REINDEX, EXPLAIN.
    OTHER = "other"


# For a script, the kind that asks the most of a caller wins: DDL may change any read set, a
# write changes rows, OTHER may (PRAGMA, ATTACH), a transaction statement only moves boundaries.
_STRENGTH = {
    StatementKind.QUERY: 0,
    StatementKind.TRANSACTION: 1,
    StatementKind.OTHER: 2,
    StatementKind.WRITE: 3,
    StatementKind.DDL: 4,
}

_KEYWORD_KINDS = {
    **dict.fromkeys(("CREATE", "DROP", "ALTER"), StatementKind.DDL),
    **dict.fromkeys(
        ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"), StatementKind.TRANSACTION
    ),
    **dict.fromkeys(
        ("PRAGMA", "VACUUM", "ATTACH", "DETACH", "ANALYZE", "REINDEX", "EXPLAIN"),
        StatementKind.OTHER,
    ),
}

# The top node sqlglot must produce for each keyword; anything else means it guessed.
_QUERY_NODES: tuple[type[exp.Expression], ...] = (exp.Select, exp.SetOperation, exp.Values)
_WRITE_NODES: tuple[type[exp.Expression], ...] = (exp.Insert, exp.Update, exp.Delete)
_EXPECTED_NODES: dict[str, tuple[type[exp.Expression], ...]] = {
    "SELECT": _QUERY_NODES,
    "VALUES": _QUERY_NODES,
    "WITH": _QUERY_NODES + _WRITE_NODES,
    "INSERT": (exp.Insert,),
    "REPLACE": (exp.Insert,),
    "UPDATE": (exp.Update,),
    "DELETE": (exp.Delete,),
}


@dataclass(frozen=True, slots=True)
class Analysis:
    """What :func:`analyze` found out about a statement or script.

    :ivar reads: tables the text reads, folded, ``schema.table`` outside ``main``, views replaced
        by the tables they read. Empty for DDL, TRANSACTION and OTHER statements.
    :ivar writes: targets of INSERT/UPDATE/DELETE/REPLACE, named like ``reads``; not the tables
        triggers or foreign keys write (SQLite's authorizer reports those). Empty otherwise.
    :ivar kind: the statement's kind; for a script, QUERY only if every statement is a query,
        else the strongest kind present, in the order DDL > WRITE > OTHER > TRANSACTION.
    :ivar multiple: the text held more than one statement (``reads``/``writes`` are unions).
    :ivar kinds: the kind of each statement, in order.
    :ivar functions: table-valued functions the text (or a view it uses) calls in FROM, named
        like ``reads`` (``pragma_user_version``, ``main.pragma_table_info``). Not tables, but
        some read state that changes: ``parser.dependencies`` says which.
    """

    reads: frozenset[str]
    writes: frozenset[str]
    kind: StatementKind
    multiple: bool
    kinds: tuple[StatementKind, ...]
    functions: frozenset[str] = frozenset()


class _Unsure(Exception):
    """Raised inside this module when sqlglot cannot be trusted; becomes Unanalyzable."""


class _Failure(NamedTuple):
    # Cached in place of an exception: re-raising one instance would grow its traceback forever.
    sql: str
    reason: str


_TOKEN_REPR = re.compile(r"<Token token_type: [^,]*, text: ([^,]*),[^>]*>")


def _token_text(match: re.Match[str]) -> str:
    text = match.group(1)
    return "the end of the text" if text == "SENTINEL" else repr(text)


def _describe(error: Exception) -> str:
    # A ParseError's message embeds a token repr and ANSI-highlighted SQL; its structured
    # errors say the same in a line a log can hold.
    if isinstance(error, ParseError) and error.errors:
        first = error.errors[0]
        description = _TOKEN_REPR.sub(_token_text, str(first.get("description")))
        return f"{description} at line {first.get('line')}, column {first.get('col')}"
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def _parse(statement: Statement, *, what: str) -> exp.Expression:
    try:
        trees = [tree for tree in _SQLITE.parse(statement.text) if tree]
    except Exception as error:  # sqlglot raises more than ParseError on odd input
        raise _Unsure(f"sqlglot could not parse {what}: {_describe(error)}") from None
    if len(trees) != 1:
        raise _Unsure(f"sqlglot split {what} into {len(trees)} statements")
    tree = trees[0]
    expected = _EXPECTED_NODES.get(statement.keyword, ())
    if not isinstance(tree, expected):
        raise _Unsure(
            f"sqlglot read {what} starting with {statement.keyword} as {type(tree).__name__}"
        )
    return tree


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _statement_refs(statement: Statement) -> TableRefs:
    # Cached without the views: a new schema version brings new Views, not new statement trees.
    tree = _parse(statement, what="the statement")
    try:
        return table_refs(tree)
    except UnsupportedName as error:
        raise _Unsure(str(error)) from None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _view_reads(name: str, definition: str) -> TableRefs:
    # Cached per definition so that a view shared by many queries is parsed once.
    statements = split_statements(definition)
    if len(statements) != 1 or statements[0].keyword != "CREATE":
        raise _Unsure(f"the definition of view {name!r} is not one CREATE VIEW statement")
    try:
        tree = sqlglot.parse_one(statements[0].text, dialect=_SQLITE)
    except Exception as error:
        reason = f"sqlglot could not parse the definition of view {name!r}: {_describe(error)}"
        raise _Unsure(reason) from None
    body = tree.expression if isinstance(tree, exp.Create) else None
    if not isinstance(body, _QUERY_NODES):
        raise _Unsure(f"the definition of view {name!r} is not a CREATE VIEW ... AS SELECT")
    try:
        return table_refs(body)
    except UnsupportedName as error:
        raise _Unsure(f"in view {name!r}: {error}") from None


def view_refs(name: str, definition: str) -> TableRefs:
    """What the body of view ``name`` reads, its names as written (not resolved to a schema).

    :raises Unanalyzable: if ``definition`` is not one ``CREATE VIEW ... AS SELECT`` that
        sqlglot understands.
    """
    try:
        return _view_reads(name, definition)
    except _Unsure as error:
        raise Unanalyzable(definition, str(error)) from None


def _expand_views(
    names: frozenset[str], views: Views, expanding: frozenset[str], functions: set[str]
) -> set[str]:
    tables: set[str] = set()
    for name in names:
        definition = views.get(name)
        if definition is None:
            tables.add(name)
        elif name in expanding:
            # A cyclic view: SQLite refuses to use it, so any answer is fine as long as it ends.
            tables.add(name)
        else:
            body = _view_reads(name, definition)
            functions |= body.functions
            tables |= _expand_views(body.reads, views, expanding | {name}, functions)
    return tables


def _analyze_uncached(sql: str, views: Views | None) -> Analysis:
    statements = split_statements(sql)
    if not statements:
        raise _Unsure("the text holds no statement")
    reads: set[str] = set()
    writes: set[str] = set()
    functions: set[str] = set()
    kinds: list[StatementKind] = []
    for statement in statements:
        kind = _KEYWORD_KINDS.get(statement.keyword)
        if kind is None:
            if statement.keyword not in _EXPECTED_NODES:
                raise _Unsure(f"{statement.keyword!r} does not start an SQLite statement")
            refs = _statement_refs(statement)
            kind = StatementKind.WRITE if refs.writes else StatementKind.QUERY
            functions |= refs.functions
            if views:
                reads |= _expand_views(refs.reads, views, frozenset(), functions)
            else:
                reads |= refs.reads
            writes |= refs.writes
        kinds.append(kind)
    strongest = max(kinds, key=_STRENGTH.__getitem__)
    return Analysis(
        reads=frozenset(reads),
        writes=frozenset(writes),
        kind=strongest,
        multiple=len(statements) > 1,
        kinds=tuple(kinds),
        functions=frozenset(functions),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _analyze_cached(sql: str, views: Views | None) -> Analysis | _Failure:
    try:
        return _analyze_uncached(sql, views)
    except _Unsure as error:
        return _Failure(sql=sql, reason=str(error))
    except RecursionError:
        return _Failure(sql=sql, reason="the statement nests too deeply for sqlglot")


def _as_views(views: Mapping[str, str] | None) -> Views | None:
    if views is None:
        return None
    if not isinstance(views, Views):
        views = Views(views)
    # No views and views=None must share cache entries and give the same answer.
    return views if views else None


def analyze(sql: str, *, views: Mapping[str, str] | None = None) -> Analysis:
    """Classify ``sql`` (one statement or a script) and find the tables it reads and writes.

    Results, failures included, are cached per (text, views) in a bounded LRU, so a repeated
    statement costs a dictionary lookup. A :class:`~parser.Views` is hashed once; any other
    mapping is converted to one on every call, so pass a :class:`~parser.Views` on hot paths.
    Safe to call from any thread; the result is immutable and may be shared.

    :param views: view name to ``CREATE VIEW`` text; a view read is replaced by the tables its
        definition reads, recursively. Without it, a view is reported as if it were a table.
    :raises Unanalyzable: if the text holds no statement, starts a statement with something that
        is not an SQLite keyword, or holds a query or write that sqlglot cannot parse or parses
        into something other than that statement, including inside a view it uses.
    """
    result = _analyze_cached(sql, _as_views(views))
    if isinstance(result, _Failure):
        raise Unanalyzable(result.sql, result.reason)
    return result


def read_tables(sql: str, *, views: Mapping[str, str] | None = None) -> frozenset[str]:
    """Return the tables ``sql`` reads, as :func:`analyze` finds them.

    A write's target counts as read (UPDATE and DELETE read the rows they change, INSERT reads it
    for conflicts and upserts). DDL, transaction control and other statements (PRAGMA, ATTACH,
    ...) give the empty set: they read no rows a query result depends on, and callers learn of
    schema changes from :attr:`Analysis.kind` instead.

    :raises Unanalyzable: as :func:`analyze` does.
    """
    return analyze(sql, views=views).reads
