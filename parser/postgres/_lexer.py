"""The lexical pass over PostgreSQL text: split a script into statements, and note in each its
leading words and every name it calls like a function.

Internal module, not covered by versioning.

Quoting follows the server's lexer (``scan.l``) with ``standard_conforming_strings`` on (the
default since 9.1): ``'...'`` with doubled quotes, ``E'...'`` with backslash escapes, the ``B``,
``X`` and ``N`` prefixes, ``$tag$...$tag$``, ``"..."`` identifiers, ``--`` and nested ``/* */``
comments. A semicolon ends a statement only outside parentheses, as psql decides (a ``CREATE
RULE`` holds its several actions in parentheses). psql's extra care for ``BEGIN ATOMIC`` bodies is
left out: splitting one inside costs nothing, since the ``CREATE`` piece makes the script DDL.

The calls are found here rather than in sqlglot's tree because sqlglot turns the functions it
knows into typed nodes that no longer say how the text spelled them; a user's function that
reads tables must be recognised by the name the server will look up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .names import RelationName, fold_identifier

__all__ = ("PgStatement", "Token", "split_statements")

_LETTER = r"A-Za-z_\x80-\U0010ffff"

_TOKEN = re.compile(
    rf"""
    (?P<space>\s+)
    | (?P<comment>--[^\n]*)
    | (?P<block>/\*)
    | (?P<unicode>[uU]&(?:'(?:[^']|'')*(?:'|\Z)|"(?:[^"]|"")*(?:"|\Z)))
    | (?P<string>[eE]'(?:[^'\\]|\\.|'')*(?:'|\Z) | [bBxXnN]?'(?:[^']|'')*(?:'|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<param>\$[0-9]+)
    | (?P<dollar>\$(?:[{_LETTER}][{_LETTER}0-9]*)?\$)
    | (?P<word>[{_LETTER}][{_LETTER}0-9$]*)
    | (?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_BLOCK_EDGE = re.compile(r"/\*|\*/")
_INSIGNIFICANT = frozenset({"space", "comment", "block"})

# Words that never name a function before "(": the server's reserved keywords, and the
# non-reserved ones whose "(" belongs to the grammar (EXISTS (...), OVER (...), ROWS FROM (...)).
_NOT_CALLS = frozenset(
    {
        "ALL", "ANALYSE", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "ASYMMETRIC", "BOTH",
        "CASE", "CAST", "CHECK", "COLLATE", "COLUMN", "CONSTRAINT", "CREATE", "CURRENT_CATALOG",
        "CURRENT_DATE", "CURRENT_ROLE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "CURRENT_USER",
        "DEFAULT", "DEFERRABLE", "DESC", "DISTINCT", "DO", "ELSE", "END", "EXCEPT", "FALSE",
        "FETCH", "FOR", "FOREIGN", "FROM", "GRANT", "GROUP", "HAVING", "IN", "INITIALLY",
        "INTERSECT", "INTO", "LATERAL", "LEADING", "LIMIT", "LOCALTIME", "LOCALTIMESTAMP", "NOT",
        "NULL", "OFFSET", "ON", "ONLY", "OR", "ORDER", "PLACING", "PRIMARY", "REFERENCES",
        "RETURNING", "SELECT", "SESSION_USER", "SOME", "SYMMETRIC", "TABLE", "THEN", "TO",
        "TRAILING", "TRUE", "UNION", "UNIQUE", "USER", "USING", "VARIADIC", "WHEN", "WHERE",
        "WINDOW", "WITH", "CONFLICT", "EXISTS", "FILTER", "OVER", "ROW", "ROWS", "SETS",
        "VALUES",
    }
)  # fmt: skip

# Enough leading words for the longest prefix classified by hand:
# REFRESH MATERIALIZED VIEW CONCURRENTLY database . schema . name.
_LEADING = 10

_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Token:
    """A significant token: ``kind`` is a group name of the scanner (``word``, ``ident``,
    ``string``, ``param``, ``number``, ``other``), ``text`` its source text."""

    kind: str
    text: str

    @property
    def keyword(self) -> str:
        """The token upper-cased if it is a bare word (a possible keyword), else its text."""
        return self.text.translate(_UPPER) if self.kind == "word" else self.text

    def identifier(self) -> str | None:
        """The name a ``word`` or ``ident`` token means, folded; None for any other token."""
        if self.kind == "word":
            return fold_identifier(self.text, quoted=False)
        if self.kind == "ident" and len(self.text) > 2 and self.text.endswith('"'):
            return fold_identifier(self.text[1:-1].replace('""', '"'), quoted=True)
        return None


@dataclass(frozen=True, slots=True)
class PgStatement:
    """One statement of a script.

    :ivar text: the statement as written, without its terminating semicolon.
    :ivar leading: its first significant tokens (up to ten), for classifying it.
    :ivar calls: every name written like a function call, ``name(`` or ``schema.name(``, folded.
        Type modifiers (``varchar(10)``) and column lists (``INSERT INTO t (a)``) look the same
        and are included: a spare name, never a missed call.
    :ivar unicode_escapes: the text uses ``U&'...'`` or ``U&"..."``, which sqlglot misreads.
    """

    text: str
    leading: tuple[Token, ...]
    calls: frozenset[RelationName]
    unicode_escapes: bool

    @property
    def keyword(self) -> str:
        """The first keyword, upper-cased ("(" for a parenthesised query)."""
        return self.leading[0].keyword


@dataclass(slots=True)
class _Builder:
    start: int
    leading: list[Token]
    calls: set[RelationName]
    unicode_escapes: bool = False
    # The last significant tokens, to recognise "schema . name (".
    previous: tuple[Token | None, Token | None, Token | None] = (None, None, None)

    def add(self, token: Token) -> None:
        if len(self.leading) < _LEADING:
            self.leading.append(token)
        if token.text == "(":
            self._note_call()
        self.previous = (self.previous[1], self.previous[2], token)

    def _note_call(self) -> None:
        schema_token, dot, name_token = self.previous
        if name_token is None or (name_token.kind == "word" and name_token.keyword in _NOT_CALLS):
            return
        name = name_token.identifier()
        if name is None:
            return
        schema = None
        if dot is not None and dot.text == "." and schema_token is not None:
            schema = schema_token.identifier()
        self.calls.add(RelationName(schema, name))

    def build(self, sql: str, end: int) -> PgStatement | None:
        if not self.leading:
            return None
        return PgStatement(
            text=sql[self.start : end].strip(),
            leading=tuple(self.leading),
            calls=frozenset(self.calls),
            unicode_escapes=self.unicode_escapes,
        )


def _token_end(sql: str, kind: str, match: re.Match[str]) -> int:
    end = match.end()
    if kind == "block":  # comments nest: /* a /* b */ still a */
        depth = 1
        while depth:
            edge = _BLOCK_EDGE.search(sql, end)
            if edge is None:
                return len(sql)
            depth += 1 if edge.group() == "/*" else -1
            end = edge.end()
    elif kind == "dollar":
        close = sql.find(match.group(), end)
        return len(sql) if close < 0 else close + len(match.group())
    return end


def split_statements(sql: str) -> tuple[PgStatement, ...]:
    """Split ``sql`` at the semicolons that end a statement; statements holding only comments
    are dropped."""
    statements: list[PgStatement] = []
    current = _Builder(start=0, leading=[], calls=set())
    depth = 0
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        if match is None:  # never: the last alternative matches any character
            break
        kind = match.lastgroup or "other"
        end = _token_end(sql, kind, match)
        text = sql[position:end]
        position = end
        if kind in _INSIGNIFICANT:
            continue
        if kind == "other" and text == ";" and depth == 0:
            statement = current.build(sql, match.start())
            if statement is not None:
                statements.append(statement)
            current = _Builder(start=end, leading=[], calls=set())
            continue
        if kind == "unicode":
            current.unicode_escapes = True
        elif text == "(":
            depth += 1
        elif text == ")":
            depth = max(depth - 1, 0)
        current.add(Token(kind, text))
    statement = current.build(sql, len(sql))
    if statement is not None:
        statements.append(statement)
    return tuple(statements)
