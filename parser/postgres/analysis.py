"""Classify a PostgreSQL statement and find the relations it reads and writes: :func:`analyze`.

Queries and writes go through sqlglot (dialect ``postgres``); every other statement is classified
by its leading keywords, which is all a watch needs of it and spares sqlglot the DDL it only half
knows. Statements whose effects the text cannot show are refused (:class:`~parser.Unanalyzable`):
``DO``, ``CALL`` and ``EXECUTE`` run code stored elsewhere, ``COPY`` and ``EXPLAIN ANALYZE`` may
write, and a keyword this module does not know may do anything.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

# One ordering of kinds and one wording of sqlglot's errors for both dialects.
from ..analysis import _STRENGTH, StatementKind, _describe
from ..errors import Unanalyzable
from ._lexer import PgStatement, Token, split_statements
from ._refs import RelationRefs, UnsupportedTree, relation_refs
from .names import RelationName

__all__ = ("PgAnalysis", "analyze")

# Built once: a dialect given by name is looked up and instantiated on every parse. It holds only
# settings, so threads can share it.
_POSTGRES = Dialect.get_or_raise("postgres")

_CACHE_SIZE = 4096

_KEYWORD_KINDS = {
    **dict.fromkeys(
        ("CREATE", "DROP", "ALTER", "COMMENT", "GRANT", "REVOKE", "SECURITY", "IMPORT", "REASSIGN"),
        StatementKind.DDL,
    ),
    **dict.fromkeys(
        ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"),
        StatementKind.TRANSACTION,
    ),
    **dict.fromkeys(
        (
            "SET", "RESET", "SHOW", "LISTEN", "UNLISTEN", "NOTIFY", "VACUUM", "ANALYZE",
            "ANALYSE", "CHECKPOINT", "CLUSTER", "REINDEX", "LOCK", "DISCARD", "LOAD",
            "DEALLOCATE", "DECLARE", "FETCH", "MOVE", "CLOSE",
        ),
        StatementKind.OTHER,
    ),
}  # fmt: skip

_REFUSED = {
    "DO": "DO runs a code block the text does not show",
    "CALL": "CALL runs a procedure the text does not show",
    "EXECUTE": "EXECUTE runs a prepared statement the text does not show",
    "COPY": "COPY may write a table; its target is not analysed",
}

# The top node sqlglot must produce for each keyword; anything else means it guessed.
_QUERY_NODES: tuple[type[exp.Expr], ...] = (exp.Select, exp.SetOperation, exp.Values)
_WRITE_NODES: tuple[type[exp.Expr], ...] = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_EXPECTED_NODES: dict[str, tuple[type[exp.Expr], ...]] = {
    "SELECT": _QUERY_NODES,
    "VALUES": _QUERY_NODES,
    "TABLE": (exp.Select,),
    "(": (*_QUERY_NODES, exp.Subquery),
    "WITH": _QUERY_NODES + _WRITE_NODES,
    "INSERT": (exp.Insert,),
    "UPDATE": (exp.Update,),
    "DELETE": (exp.Delete,),
    "MERGE": (exp.Merge,),
    "TRUNCATE": (exp.TruncateTable,),
}


@dataclass(frozen=True, slots=True)
class PgAnalysis:
    """What :func:`analyze` found out about a statement or script.

    Names are :class:`~parser.postgres.names.RelationName` pairs, folded as the server folds
    identifiers, with the schema only where the text gives one: resolving them needs the
    session's ``search_path`` (:func:`parser.postgres.dependencies` does it).

    :ivar kind: the statement's kind; for a script, QUERY only if every statement is a query,
        else the strongest kind present (DDL > WRITE > OTHER > TRANSACTION).
    :ivar kinds: the kind of each statement, in order.
    :ivar multiple: the text held more than one statement (the sets are unions).
    :ivar reads: relations read, a write's targets included; views as named (not expanded).
    :ivar only: the relations of ``reads`` read only as ``ONLY name`` (their inheritance
        children and partitions are not read).
    :ivar writes: targets of INSERT, UPDATE, DELETE, MERGE (in data-modifying CTEs too),
        TRUNCATE and REFRESH MATERIALIZED VIEW. Not what triggers, rules, foreign-key actions
        or ``TRUNCATE ... CASCADE`` write besides: those are the catalog's to tell.
    :ivar functions: functions called in FROM (they may read anything).
    :ivar calls: every name a query or write calls like a function, anywhere in it; a user's
        function may read tables the text never names.
    """

    kind: StatementKind
    kinds: tuple[StatementKind, ...]
    multiple: bool
    reads: frozenset[RelationName] = frozenset()
    only: frozenset[RelationName] = frozenset()
    writes: frozenset[RelationName] = frozenset()
    functions: frozenset[RelationName] = frozenset()
    calls: frozenset[RelationName] = frozenset()


class _Unsure(Exception):
    """Raised inside this module when the text cannot be trusted; becomes Unanalyzable."""


@dataclass(frozen=True, slots=True)
class _Failure:
    # Cached in place of an exception: re-raising one instance would grow its traceback forever.
    sql: str
    reason: str


def _parse(statement: PgStatement) -> exp.Expr:
    if statement.unicode_escapes:
        raise _Unsure("sqlglot misreads Unicode escapes (U&'...', U&\"...\")")
    try:
        trees = [tree for tree in _POSTGRES.parse(statement.text) if tree]
    except Exception as error:  # sqlglot raises more than ParseError on odd input
        raise _Unsure(f"sqlglot could not parse the statement: {_describe(error)}") from None
    if len(trees) != 1:
        raise _Unsure(f"sqlglot split the statement into {len(trees)} statements")
    tree = trees[0]
    if not isinstance(tree, _EXPECTED_NODES[statement.keyword]):
        raise _Unsure(f"sqlglot read a {statement.keyword} statement as {type(tree).__name__}")
    return tree


def _refresh_target(leading: tuple[Token, ...]) -> RelationName:
    # REFRESH MATERIALIZED VIEW [CONCURRENTLY] [[database.]schema.]name [WITH [NO] DATA]
    if [token.keyword for token in leading[:3]] != ["REFRESH", "MATERIALIZED", "VIEW"]:
        raise _Unsure("a REFRESH statement this module does not read")
    rest = leading[3:]
    if len(rest) > 1 and rest[0].keyword == "CONCURRENTLY" and rest[1].identifier():
        rest = rest[1:]
    parts = [token.identifier() for token in rest[:1]]
    index = 1
    while index < len(rest) and rest[index].text == ".":
        parts.append(rest[index + 1].identifier() if index + 1 < len(rest) else None)
        index += 2
    names = [part for part in parts if part is not None]
    if not names or len(names) != len(parts) or len(names) > 3:
        raise _Unsure("REFRESH MATERIALIZED VIEW names its view in a way this module does not read")
    return RelationName(names[-2] if len(names) > 1 else None, names[-1])


def _keyword_kind(statement: PgStatement) -> StatementKind:
    keyword = statement.keyword
    second = statement.leading[1].keyword if len(statement.leading) > 1 else ""
    if keyword == "PREPARE":
        return StatementKind.TRANSACTION if second == "TRANSACTION" else StatementKind.OTHER
    if keyword == "EXPLAIN":
        if any(token.keyword in ("ANALYZE", "ANALYSE") for token in statement.leading):
            raise _Unsure("EXPLAIN ANALYZE runs the statement it explains")
        return StatementKind.OTHER
    kind = _KEYWORD_KINDS.get(keyword)
    if kind is None:
        reason = _REFUSED.get(keyword, f"{keyword!r} does not start a statement this module knows")
        raise _Unsure(reason)
    return kind


@dataclass(slots=True)
class _Totals:
    refs: RelationRefs
    calls: set[RelationName]
    kinds: list[StatementKind]


def _add_statement(statement: PgStatement, totals: _Totals) -> None:
    if statement.keyword == "REFRESH":
        target = _refresh_target(statement.leading)
        totals.refs.writes.add(target)
        totals.refs.reads.add(target)
        totals.refs.inherited.add(target)
        totals.kinds.append(StatementKind.WRITE)
        return
    if statement.keyword not in _EXPECTED_NODES:
        totals.kinds.append(_keyword_kind(statement))
        return
    try:
        refs = relation_refs(_parse(statement))
    except UnsupportedTree as error:
        raise _Unsure(str(error)) from None
    if refs.creates:  # SELECT ... INTO makes a table
        totals.kinds.append(StatementKind.DDL)
        return
    totals.kinds.append(StatementKind.WRITE if refs.writes else StatementKind.QUERY)
    totals.calls |= statement.calls
    for mine, theirs in (
        (totals.refs.reads, refs.reads),
        (totals.refs.only, refs.only),
        (totals.refs.inherited, refs.inherited),
        (totals.refs.writes, refs.writes),
        (totals.refs.functions, refs.functions),
    ):
        mine |= theirs


def _analyze_uncached(sql: str) -> PgAnalysis:
    statements = split_statements(sql)
    if not statements:
        raise _Unsure("the text holds no statement")
    totals = _Totals(RelationRefs(), set(), [])
    for statement in statements:
        _add_statement(statement, totals)
    refs = totals.refs
    return PgAnalysis(
        kind=max(totals.kinds, key=_STRENGTH.__getitem__),
        kinds=tuple(totals.kinds),
        multiple=len(statements) > 1,
        reads=frozenset(refs.reads),
        only=frozenset(refs.only - refs.inherited),
        writes=frozenset(refs.writes),
        functions=frozenset(refs.functions),
        calls=frozenset(totals.calls),
    )


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _analyze_cached(sql: str) -> PgAnalysis | _Failure:
    try:
        return _analyze_uncached(sql)
    except _Unsure as error:
        return _Failure(sql=sql, reason=str(error))
    except RecursionError:
        return _Failure(sql=sql, reason="the statement nests too deeply for sqlglot")


def analyze(sql: str) -> PgAnalysis:
    """Classify ``sql`` (one statement or a script) and find what it reads, writes and calls.

    Results, failures included, are cached per text in a bounded LRU. Safe to call from any
    thread; the result is immutable and may be shared. ``$1`` parameters are fine.

    :raises Unanalyzable: if the text holds no statement, a statement this module does not know
        or refuses (DO, CALL, EXECUTE, COPY, EXPLAIN ANALYZE), or a query or write that sqlglot
        cannot parse or parses into something other than that statement. Treat the text as
        reading and writing everything.
    """
    result = _analyze_cached(sql)
    if isinstance(result, _Failure):
        raise Unanalyzable(result.sql, result.reason)
    return result
