"""The view definitions a read set is expanded through, as a cheaply hashable mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .names import qualified_name

__all__ = ("Views",)


def _view_key(name: str) -> str:
    # Keys are spelled as read sets spell tables: "v", or "temp.v" for a view outside main.
    schema, dot, table = name.rpartition(".")
    return qualified_name(table, schema) if dot else qualified_name(name)


class Views(Mapping[str, str]):
    """An immutable map from view name to its ``CREATE VIEW`` text (``sqlite_schema.sql``).

    Analyses are cached per (SQL text, views); a cache lookup hashes the views, so the hash is
    computed once here rather than on every call. Passing the same :class:`Views` object on every
    call is the fast path; any other mapping is converted on each call.

    Keys are folded as :func:`~parser.fold_name` folds them, ``main.v`` becomes ``v`` and a view in
    another schema is keyed ``schema.v``, matching how read sets name tables. Lookups fold too.
    """

    __slots__ = ("_definitions", "_hash")

    _definitions: dict[str, str]
    _hash: int

    def __init__(self, definitions: Mapping[str, str] | None = None, /) -> None:
        folded = {_view_key(name): sql for name, sql in (definitions or {}).items()}
        self._definitions = folded
        self._hash = hash(frozenset(folded.items()))

    def __getitem__(self, name: str) -> str:
        try:
            return self._definitions[name]
        except KeyError:
            return self._definitions[_view_key(name)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self._definitions or _view_key(name) in self._definitions

    def __iter__(self) -> Iterator[str]:
        return iter(self._definitions)

    def __len__(self) -> int:
        return len(self._definitions)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, Views):
            return self._hash == other._hash and self._definitions == other._definitions
        if isinstance(other, Mapping):
            return self._definitions == dict(Views(other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"Views({self._definitions!r})"
