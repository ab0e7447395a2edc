"""Lexical pre-processing: split a script into statements and make each one palatable to sqlglot.

Internal module, not covered by versioning.

sqlglot is only trusted with queries and writes, and a few things SQLite accepts make it fail or
guess: numbered parameters (``?1``, ``:1``), ``REPLACE INTO`` (it falls back to an opaque
``Command``) and ``UPDATE OR IGNORE`` (a parse error). None of them changes which tables a
statement reads, so they are rewritten here into forms sqlglot parses. The scanner knows string
literals, the three identifier quoting styles and comments, so nothing inside those is touched.
"""

from __future__ import annotations

import re
import sqlite3
from typing import NamedTuple

__all__ = ("Statement", "split_statements")

# What a bare word is made of: ASCII letters, digits, "_", "$" and every non-ASCII character,
# written as the ASCII characters it excludes (``[^...]``). The same set spelled positively
# (``A-Za-z0-9_$\x80-\U0010ffff``) costs milliseconds to compile at every import: re builds a
# table for the wide range, where a class of ASCII characters only needs a small bitmap.
NOT_IDENT_CHARS = r"\x00-#%-/:-@\[-^`{-\x7f"

# One alternative per lexical class; the order matters (comments before punctuation, quoted text
# before words). Unterminated quotes and comments run to the end of the text, as SQLite reads them
# before reporting the error, so a stray quote cannot hide a semicolon from the splitter.
_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<quoted>'[^']*(?:'|\Z)|"[^"]*(?:"|\Z)|`[^`]*(?:`|\Z)|\[[^\]]*(?:\]|\Z))
    | (?P<numbered>\?[0-9]+|:[0-9][^{NOT_IDENT_CHARS}]*)
    | (?P<word>[^{NOT_IDENT_CHARS}]+)
    | (?P<semicolon>;)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

# What makes the full scan necessary: a semicolon (a statement may end there) or a numbered
# parameter (rewritten). Without either, even inside literals, the text is one statement whose
# only possible rewrite is in its first tokens.
_SPLIT_OR_REWRITE = re.compile(r";|[?:][0-9]")

_CONFLICT_ACTIONS = frozenset({"ROLLBACK", "ABORT", "REPLACE", "FAIL", "IGNORE"})

# Only the first tokens of a statement are looked at: its keyword and, for UPDATE, "OR action".
_LEADING_TOKENS = 3

_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class Statement(NamedTuple):
    """One statement of a script.

    :ivar source: the statement as written, without its terminating semicolon.
    :ivar text: the same statement rewritten for sqlglot.
    :ivar keyword: its first keyword, upper-cased (ASCII), or the first character when the
        statement does not start with a word.
    """

    source: str
    text: str
    keyword: str


class _Builder:
    """One statement being split off a script (a plain class, not a dataclass: defining
    one costs the import of every program ~0.4 ms)."""

    __slots__ = ("leading", "length", "pieces", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.pieces: list[str] = []
        self.length = 0
        # (upper-cased token, start, end) in the rewritten text, significant tokens only.
        self.leading: list[tuple[str, int, int]] = []

    def add(self, piece: str, *, significant: bool) -> None:
        if significant and len(self.leading) < _LEADING_TOKENS:
            upper = piece.translate(_UPPER)
            self.leading.append((upper, self.length, self.length + len(piece)))
        self.pieces.append(piece)
        self.length += len(piece)

    def build(self, sql: str, end: int) -> Statement | None:
        if not self.leading:
            return None
        text = "".join(self.pieces)
        keyword = self.leading[0][0]
        if keyword == "REPLACE":
            # Same statement for SQLite; sqlglot only parses the long form.
            text = "INSERT OR REPLACE" + text[self.leading[0][2] :]
        elif (
            keyword == "UPDATE"
            and len(self.leading) == _LEADING_TOKENS
            and self.leading[1][0] == "OR"
            and self.leading[2][0] in _CONFLICT_ACTIONS
        ):
            # The conflict action changes what happens on a constraint failure, not what is read.
            text = text[: self.leading[1][1]] + text[self.leading[2][2] :]
        return Statement(source=sql[self.start : end].strip(), text=text, keyword=keyword)


def split_statements(sql: str) -> tuple[Statement, ...]:
    """Split ``sql`` at the semicolons that end a statement, as SQLite's shell does.

    A semicolon inside a ``CREATE TRIGGER ... BEGIN ... END`` body does not end the statement;
    :func:`sqlite3.complete_statement` (SQLite's own ``sqlite3_complete``) decides that, which is
    why a candidate semicolon is confirmed with it. Statements holding only comments are dropped.
    """
    if _SPLIT_OR_REWRITE.search(sql) is None:
        return _single_statement(sql)
    return _scan_statements(sql)


def _scan_statements(sql: str) -> tuple[Statement, ...]:
    # split_statements for any text: every token is looked at.
    statements: list[Statement] = []
    current = _Builder(0)
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup
        piece = match.group()
        if kind == "semicolon" and sqlite3.complete_statement(sql[current.start : match.end()]):
            statement = current.build(sql, match.start())
            if statement is not None:
                statements.append(statement)
            current = _Builder(match.end())
        elif kind == "numbered":
            # "?1" and ":1" are parse errors in sqlglot's sqlite dialect; "?" means the same
            # thing as far as the tables read are concerned.
            current.add("?", significant=True)
        else:
            current.add(piece, significant=kind not in ("space", "comment"))
    statement = current.build(sql, len(sql))
    if statement is not None:
        statements.append(statement)
    return tuple(statements)


def _single_statement(sql: str) -> tuple[Statement, ...]:
    # split_statements for a text without semicolons or numbered parameters: only the leading
    # tokens are scanned, the rest is taken as it is.
    current = _Builder(0)
    rest = 0
    for match in _TOKEN.finditer(sql):
        current.add(match.group(), significant=match.lastgroup not in ("space", "comment"))
        rest = match.end()
        if len(current.leading) == _LEADING_TOKENS:
            break
    current.pieces.append(sql[rest:])
    statement = current.build(sql, len(sql))
    return () if statement is None else (statement,)
