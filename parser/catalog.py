"""What the schemas of one connection hold: :class:`Catalog`, the facts a read set resolves in.

A query names tables, views and virtual tables; which object a name means depends on the
connection (TEMP objects and ATTACHed schemas are its own) and on SQLite's lookup order. The
catalog keeps, per schema, every table, view and virtual table with its ``CREATE`` text, as
``sqlite_schema`` lists them, and answers lookups in that order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from ._text import NOT_IDENT_CHARS
from .names import fold_name

__all__ = ("Catalog", "SchemaObject", "VirtualTable", "parse_virtual_table")

ObjectKind = Literal["table", "view", "virtual"]

_VIRTUAL = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\b", re.IGNORECASE)
# Tokens of a CREATE VIRTUAL TABLE text: quoted names and strings (doubled quotes escape),
# bare words, and any other single character.
_TOKEN = re.compile(
    rf"""'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|[^{NOT_IDENT_CHARS}]+|\S"""
)


@dataclass(frozen=True, slots=True)
class SchemaObject:
    """A table, view or virtual table, with the text that created it (``None`` for the few
    internal tables ``sqlite_schema`` lists without one)."""

    kind: ObjectKind
    sql: str | None


@dataclass(frozen=True, slots=True)
class VirtualTable:
    """What a ``CREATE VIRTUAL TABLE`` says: the module and every word of its arguments
    (names and string values, unquoted and folded), since any of them may name a table."""

    module: str
    words: frozenset[str]


def _unquote(token: str) -> str:
    if token[0] in "'\"`":
        return token[1:-1].replace(token[0] * 2, token[0])
    if token[0] == "[":
        return token[1:-1]
    return token


def parse_virtual_table(sql: str) -> VirtualTable | None:
    """Read the module and argument words of a ``CREATE VIRTUAL TABLE`` text, or ``None`` if it
    is not one (or not one this reading understands)."""
    match = _VIRTUAL.match(sql)
    if match is None:
        return None
    tokens = _TOKEN.findall(sql, match.end())
    try:
        using = next(i for i, token in enumerate(tokens) if fold_name(token) == "using")
        module = tokens[using + 1]
    except (StopIteration, IndexError):
        return None
    rest = tokens[using + 2 :]
    if rest and rest[0] != "(":
        return None
    words = frozenset(
        fold_name(_unquote(token))
        for token in rest[1:]
        if token[0] in "'\"`[" or token[0].isalnum() or token[0] in "_$" or ord(token[0]) > 127
    )
    return VirtualTable(fold_name(_unquote(module)), words)


class Catalog:
    """The tables, views and virtual tables of every schema of one connection.

    Built from ``PRAGMA database_list`` order and each schema's ``sqlite_schema`` rows; indexes
    and triggers are left out (they change no query's dependencies). Immutable and hashed once,
    so it can key caches: two catalogs are equal when every schema holds the same objects with
    the same text.

    :param schemas: schema name to its ``(type, name, sql)`` rows, in ``database_list`` order.
    """

    __slots__ = ("_hash", "_objects", "_order")

    _objects: dict[str, dict[str, SchemaObject]]
    _order: tuple[str, ...]
    _hash: int

    def __init__(self, schemas: Mapping[str, Iterable[tuple[str, str, str | None]]]) -> None:
        objects: dict[str, dict[str, SchemaObject]] = {}
        for schema, rows in schemas.items():
            held = objects.setdefault(fold_name(schema), {})
            for kind, name, sql in rows:
                if kind == "view" and sql is not None:
                    held[fold_name(name)] = SchemaObject("view", sql)
                elif kind == "table":
                    virtual = sql is not None and _VIRTUAL.match(sql) is not None
                    held[fold_name(name)] = SchemaObject("virtual" if virtual else "table", sql)
        self._objects = objects
        # SQLite looks an unqualified name up in temp, then main, then attached schemas in order.
        names = list(objects)
        front = [name for name in ("temp", "main") if name in objects]
        self._order = (*front, *(name for name in names if name not in front))
        self._hash = hash(tuple((s, frozenset(objects[s].items())) for s in self._order))

    @property
    def schemas(self) -> tuple[str, ...]:
        """Schema names, folded, in the order SQLite resolves an unqualified name."""
        return self._order

    def get(self, schema: str, name: str) -> SchemaObject | None:
        """The object ``name`` of ``schema`` (both folded), if there is one."""
        held = self._objects.get(schema)
        return None if held is None else held.get(name)

    def holding(self, name: str) -> Iterator[str]:
        """Every schema that has an object called ``name``, in lookup order."""
        return (schema for schema in self._order if name in self._objects[schema])

    def names(self, schema: str) -> Iterable[str]:
        """The names of every object of ``schema``."""
        return self._objects.get(schema, {}).keys()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Catalog):
            return NotImplemented
        return (
            self._hash == other._hash
            and self._order == other._order
            and self._objects == other._objects
        )

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}: {len(self._objects[s])}" for s in self._order)
        return f"<Catalog {counts}>"
