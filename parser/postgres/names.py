"""PostgreSQL's identifier rules, and the one spelling rxdb gives a relation.

An unquoted identifier is folded to lower case, ASCII letters only (``downcase_identifier`` leaves
other bytes alone in a multi-byte encoding such as UTF8); a quoted one keeps its case. Both are
cut to 63 bytes (``NAMEDATALEN - 1``) on a character boundary, as the server cuts them, so a long
name in a query means the relation the server would find.
"""

from __future__ import annotations

import string
from typing import NamedTuple

__all__ = ("MAX_IDENTIFIER_BYTES", "RelationName", "fold_identifier", "relation_key")

MAX_IDENTIFIER_BYTES = 63
"""``NAMEDATALEN - 1`` of a stock server build: longer identifiers are truncated."""

_ASCII_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


class RelationName(NamedTuple):
    """A relation (or function) as a statement names it: its schema if the text gives one, and
    its name, both folded as the server folds them."""

    schema: str | None
    name: str


def fold_identifier(text: str, *, quoted: bool) -> str:
    """Fold ``text`` (an identifier without its quotes) the way the server does."""
    folded = text if quoted else text.translate(_ASCII_FOLD)
    encoded = folded.encode("utf-8")
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return folded
    return encoded[:MAX_IDENTIFIER_BYTES].decode("utf-8", "ignore")


def relation_key(schema: str, name: str) -> str:
    """Spell a relation as :func:`parser.postgres.dependencies` reports it: ``schema.name`` with
    both parts exactly as the catalog stores them (case kept, no quotes).

    A trigger announces the same string with ``TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME``. Names
    holding a dot can make two relations share a spelling; that costs a spare re-run, never a
    missed one, since both are announced and watched under that one string.
    """
    return f"{schema}.{name}"
