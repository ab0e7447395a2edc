"""Find the relations a parsed PostgreSQL statement reads and writes, and the functions it calls
in FROM, by one walk over sqlglot's tree.

Internal module, not covered by versioning.

sqlglot's scope walk is not used: it builds no scope for a data-modifying CTE, a MERGE or a
DELETE's USING list, compares CTE names case-sensitively without knowing which were quoted,
and counts the aliases of ``FOR UPDATE OF`` as tables. The walk here carries the CTE names in
sight instead, as the server sees them: a CTE's body sees the CTEs listed before it, or with
``RECURSIVE`` every CTE of its list (itself included); the statement under the ``WITH`` sees
them all. Every other ``exp.Table`` with a name is a relation read: a spare name costs a re-run,
a missing one a stale result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from .names import RelationName, fold_identifier

__all__ = ("RelationRefs", "UnsupportedTree", "relation_refs")

_FROM_PARENTS = (exp.From, exp.Join, exp.Lateral)
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_CALLED_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_$]*)\s*\(")


class UnsupportedTree(ValueError):
    """Raised when the tree holds something whose reads cannot be told (an unnamed function in
    FROM, a write whose target is not a relation, a statement sqlglot kept as raw text)."""


@dataclass(slots=True)
class RelationRefs:
    """What one statement names.

    :ivar reads: every relation read, a write's target included (UPDATE and DELETE read the rows
        they change, INSERT reads for ON CONFLICT).
    :ivar only: relations read with ``ONLY`` somewhere (their children are not read there).
    :ivar inherited: relations read without ``ONLY`` somewhere (their children are read).
    :ivar writes: targets of INSERT, UPDATE, DELETE, MERGE and TRUNCATE, in CTEs too.
    :ivar functions: functions called in FROM (``generate_series``, ``ROWS FROM (...)`` items).
    :ivar creates: the statement creates a table (``SELECT ... INTO``).
    """

    reads: set[RelationName] = field(default_factory=set)
    only: set[RelationName] = field(default_factory=set)
    inherited: set[RelationName] = field(default_factory=set)
    writes: set[RelationName] = field(default_factory=set)
    functions: set[RelationName] = field(default_factory=set)
    creates: bool = False

    def read(self, table: exp.Table, name: RelationName) -> None:
        self.reads.add(name)
        (self.only if table.args.get("only") else self.inherited).add(name)


def _identifier(node: exp.Expr | str | None) -> str | None:
    if isinstance(node, exp.Identifier):
        return fold_identifier(node.this, quoted=bool(node.args.get("quoted")))
    if isinstance(node, str) and node:
        return fold_identifier(node, quoted=False)
    return None


def _relation_name(table: exp.Table) -> RelationName:
    # "db.schema.t" is accepted by the server only for the current database: the catalog
    # part names nothing else.
    name = _identifier(table.this)
    if name is None:
        raise UnsupportedTree(f"{table.sql(dialect='postgres')!r} is not a relation name")
    return RelationName(_identifier(table.args.get("db")), name)


def _function_name(function: exp.Func, schema: str | None) -> RelationName:
    if isinstance(function, exp.Anonymous):
        name = _identifier(function.this)
    else:
        # A function sqlglot knows is a typed node; its SQL starts with the name it stands for.
        match = _CALLED_NAME.match(function.sql(dialect="postgres"))
        name = None if match is None else fold_identifier(match.group(1), quoted=False)
    if name is None:
        raise UnsupportedTree(f"{function.sql(dialect='postgres')!r} in FROM has no name")
    return RelationName(schema, name)


def _from_function(node: exp.Expr) -> RelationName | None:
    # A function is a row source when it stands where a relation could: FROM f(), JOIN f(),
    # LATERAL f(), ROWS FROM (f(), g()), or as a Table's body (s.f() keeps s on the Table).
    if not isinstance(node, exp.Func):
        return None
    parent = node.parent
    if isinstance(parent, exp.Table) and node.arg_key in ("this", "rows_from"):
        schema = _identifier(parent.args.get("db")) if node.arg_key == "this" else None
        return _function_name(node, schema)
    if isinstance(parent, _FROM_PARENTS) and node.arg_key == "this":
        return _function_name(node, None)
    return None


def _cte_name(cte: exp.CTE) -> str:
    alias = cte.args.get("alias")
    name = _identifier(alias.this if isinstance(alias, exp.TableAlias) else None)
    if name is None:
        raise UnsupportedTree("a CTE without a name")
    return name


def _targets(statement: exp.Expr) -> list[exp.Table]:
    if isinstance(statement, exp.TruncateTable):
        targets = list(statement.expressions)
    else:
        target = statement.this
        targets = [target.this if isinstance(target, exp.Schema) else target]
    for target in targets:
        if not isinstance(target, exp.Table) or not isinstance(target.this, exp.Identifier):
            kind = type(statement).__name__.upper()
            raise UnsupportedTree(f"the target of {kind} is not a relation")
    return targets


def _add_table(table: exp.Table, ctes: frozenset[str], refs: RelationRefs) -> None:
    body = table.this
    if isinstance(body, exp.Identifier):
        name = _relation_name(table)
        if name.schema is not None or name.name not in ctes:
            refs.read(table, name)
    elif not isinstance(body, exp.Func) and not (body is None and table.args.get("rows_from")):
        # Functions are taken as the walk reaches them; anything else is a shape not foreseen.
        raise UnsupportedTree(f"{table.sql(dialect='postgres')!r} is neither a relation nor a call")


def relation_refs(statement: exp.Expr) -> RelationRefs:
    """Walk ``statement`` and collect what it reads, writes and calls in FROM.

    :raises UnsupportedTree: as the class says.
    """
    refs = RelationRefs()
    done: set[int] = set()  # write targets, recorded before the walk reaches them
    stack: list[tuple[exp.Expr, frozenset[str]]] = [(statement, frozenset())]
    while stack:
        node, ctes = stack.pop()
        if id(node) in done or isinstance(node, exp.Lock):  # FOR UPDATE OF names aliases
            continue
        if isinstance(node, exp.Into):
            refs.creates = True
            continue
        if isinstance(node, exp.Command):
            raise UnsupportedTree(f"sqlglot kept {node.sql(dialect='postgres')!r} as raw text")
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With):
            names = [_cte_name(cte) for cte in with_.expressions]
            recursive = bool(with_.args.get("recursive"))
            for index, cte in enumerate(with_.expressions):
                seen = names if recursive else names[:index]
                stack.append((cte.this, ctes | frozenset(seen)))
            ctes = ctes | frozenset(names)
        # A MERGE's WHEN ... THEN UPDATE/INSERT/DELETE act on the MERGE's own target.
        if isinstance(node, (*_WRITES, exp.TruncateTable)) and not isinstance(
            node.parent, exp.When
        ):
            for target in _targets(node):
                name = _relation_name(target)
                refs.writes.add(name)
                refs.read(target, name)
                done.add(id(target))
        function = _from_function(node)
        if function is not None:
            refs.functions.add(function)
        elif isinstance(node, exp.Table):
            _add_table(node, ctes, refs)
        for key, value in node.args.items():
            if key == "with_":
                continue
            children = value if isinstance(value, list) else [value]
            stack.extend((child, ctes) for child in children if isinstance(child, exp.Expr))
    return refs
