"""SQLite's placeholders on PostgreSQL: ``?`` and ``:name`` become ``$1``, ``$2``...

Users write the same statements for both engines: ``?`` with a sequence of parameters,
``:name`` with a mapping, and PostgreSQL's own ``$1`` with a sequence. :func:`bind` rewrites
the text to ``$n`` and orders the values, outside string literals (``'...'``, ``E'...'``,
dollar-quoted ``$tag$...$tag$``), quoted identifiers and comments (nested ``/* */`` too).

What is not a placeholder: ``::type`` casts; ``:=`` in a function call; ``:name`` when the
parameters are a sequence (so an array slice ``a[lo:hi]`` stays as written); ``??``, which
stands for one literal ``?`` (jsonb's ``?``, ``?|`` and ``?&`` operators: write ``??``,
``??|``, ``??&``). A statement uses one style: ``?`` and ``$n`` together, or ``?`` with a
mapping, is refused.

Each text is scanned once (a bounded cache); a text without ``?``, ``:``, ``$`` or ``;`` is
not scanned at all.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rxdb._types import Params
from rxdb.errors import ProgrammingError

__all__ = ("Placeholders", "bind", "scan")


@dataclass(frozen=True, slots=True)
class Placeholders:
    """What one statement's text holds, scanned for one kind of parameters.

    :ivar text: the text with every placeholder as ``$n`` (and ``??`` as ``?``).
    :ivar question_marks: how many ``?`` it held.
    :ivar highest: the highest ``$n`` it held (0: none).
    :ivar names: the ``:name`` placeholders, in the order of their ``$n``.
    :ivar several: whether it holds more than one statement.
    """

    text: str
    question_marks: int = 0
    highest: int = 0
    names: tuple[str, ...] = ()
    several: bool = False


def bind(sql: str, params: Params) -> tuple[str, Sequence[Any]]:
    """The text and the values to send for ``sql`` with ``params``.

    :raises rxdb.ProgrammingError: for several statements, a mix of placeholder styles, a
        count of values that does not match the placeholders, a missing name, or
        parameters that are neither a sequence nor a mapping.
    """
    if isinstance(params, Mapping):
        return _bind_names(sql, _one_statement(sql, named=True), params)
    if not isinstance(params, Sequence) or isinstance(params, str | bytes):
        raise ProgrammingError(
            f"parameters must be a sequence (for ? or $1) or a mapping (for :name), not "
            f"{type(params).__name__}; for one value write (value,)",
            sql=sql,
        )
    found = _one_statement(sql, named=False)
    if found.question_marks and found.highest:
        raise ProgrammingError(
            "the statement mixes ? and $1 placeholders; use one style (a literal ? is written ??)",
            sql=sql,
        )
    expected = found.question_marks or found.highest
    if len(params) != expected:
        raise ProgrammingError(
            f"the statement takes {expected} parameter{'' if expected == 1 else 's'}, "
            f"{len(params)} given",
            sql=sql,
        )
    return found.text, params


def _one_statement(sql: str, *, named: bool) -> Placeholders:
    found = scan(sql, named=named)
    if found.several:
        raise ProgrammingError(
            "the text holds several statements; run one at a time, or use execute_script",
            sql=sql,
        )
    return found


def _bind_names(
    sql: str, found: Placeholders, params: Mapping[str, Any]
) -> tuple[str, Sequence[Any]]:
    if found.question_marks or found.highest:
        raise ProgrammingError(
            "a mapping of parameters goes with :name placeholders, not ? or $1 (a literal ? "
            "is written ??)",
            sql=sql,
        )
    try:
        return found.text, [params[name] for name in found.names]
    except KeyError as missing:
        raise ProgrammingError(
            f"no value for the placeholder :{missing.args[0]}", sql=sql
        ) from None


def scan(sql: str, *, named: bool) -> Placeholders:
    """Find the placeholders of ``sql`` (``:name`` only if ``named``); cached per text."""
    key = (sql, named)
    found = _SCANNED.get(key)
    if found is None:
        if "?" in sql or ":" in sql or "$" in sql or ";" in sql:
            found = _Scanner(sql, named).run()
        else:
            found = Placeholders(sql)
        if len(_SCANNED) >= _CACHE_SIZE:
            _SCANNED.clear()
        _SCANNED[key] = found
    return found


_SCANNED: dict[tuple[str, bool], Placeholders] = {}
_CACHE_SIZE = 4096


def _is_ident_start(char: str) -> bool:
    return char.isalpha() or char == "_" or char >= "\x80"


def _is_ident_char(char: str) -> bool:
    return char.isalnum() or char in "_$" or char >= "\x80"


class _Scanner:
    """One pass over a statement's text, PostgreSQL's lexical rules for what is not code."""

    def __init__(self, sql: str, named: bool) -> None:
        self.sql = sql
        self.named = named
        self.out: list[str] = []
        self.copied = 0  # sql[:copied] is in out already
        self.question_marks = 0
        self.highest = 0
        self.names: dict[str, int] = {}
        self.ended = False  # a top-level ; was seen
        self.several = False

    def run(self) -> Placeholders:
        sql, size = self.sql, len(self.sql)
        i = 0
        while i < size:
            char = sql[i]
            nxt = sql[i + 1] if i + 1 < size else ""
            if char in " \t\n\r\f":
                i += 1
                continue
            if char == "-" and nxt == "-":
                end = sql.find("\n", i)
                i = size if end < 0 else end + 1
                continue
            if char == "/" and nxt == "*":
                i = self._block_comment(i)
                continue
            if self.ended and char != ";":
                self.several = True  # code after a statement's end
            if char == "'":
                i = self._string(i + 1, backslashes=False)
            elif char == '"':
                i = self._quoted(i + 1, '"')
            elif char == "$":
                i = self._dollar(i)
            elif _is_ident_start(char):
                start = i
                i += 1
                while i < size and _is_ident_char(sql[i]):
                    i += 1
                if i < size and sql[i] == "'" and i - start == 1 and sql[start] in "eE":
                    i = self._string(i + 1, backslashes=True)
            elif char.isdigit():
                i += 1
                while i < size and (sql[i].isalnum() or sql[i] in "._"):
                    i += 1
            elif char == ":":
                if nxt == ":":
                    i += 2  # a cast
                elif self.named and nxt and _is_ident_start(nxt):
                    end = i + 1
                    while end < size and _is_ident_char(sql[end]):
                        end += 1
                    name = sql[i + 1 : end]
                    number = self.names.setdefault(name, len(self.names) + 1)
                    self._replace(i, end, f"${number}")
                    i = end
                else:
                    i += 1
            elif char == "?":
                if nxt == "?":
                    self._replace(i, i + 2, "?")
                    i += 2
                else:
                    self.question_marks += 1
                    self._replace(i, i + 1, f"${self.question_marks}")
                    i += 1
            elif char == ";":
                self.ended = True
                i += 1
            else:
                i += 1
        if self.out:
            self.out.append(sql[self.copied :])
        return Placeholders(
            "".join(self.out) if self.out else sql,
            question_marks=self.question_marks,
            highest=self.highest,
            names=tuple(self.names),
            several=self.several,
        )

    def _replace(self, start: int, end: int, text: str) -> None:
        self.out.append(self.sql[self.copied : start])
        self.out.append(text)
        self.copied = end

    def _block_comment(self, i: int) -> int:
        sql, depth = self.sql, 0
        while i < len(sql):
            if sql.startswith("/*", i):
                depth += 1
                i += 2
            elif sql.startswith("*/", i):
                depth -= 1
                i += 2
                if depth == 0:
                    return i
            else:
                i += 1
        return i  # unterminated: the server will say so

    def _string(self, i: int, *, backslashes: bool) -> int:
        sql = self.sql
        while i < len(sql):
            char = sql[i]
            if backslashes and char == "\\":
                i += 2
            elif char == "'":
                if sql.startswith("'", i + 1):
                    i += 2  # '' is a quote inside the string
                else:
                    return i + 1
            else:
                i += 1
        return i

    def _quoted(self, i: int, quote: str) -> int:
        sql = self.sql
        while i < len(sql):
            if sql[i] == quote:
                if sql.startswith(quote, i + 1):
                    i += 2
                else:
                    return i + 1
            else:
                i += 1
        return i

    def _dollar(self, i: int) -> int:
        """A ``$n`` parameter, a dollar-quoted string, or a lone ``$``."""
        sql, size = self.sql, len(self.sql)
        end = i + 1
        if end < size and sql[end].isdigit():
            while end < size and sql[end].isdigit():
                end += 1
            self.highest = max(self.highest, int(sql[i + 1 : end]))
            return end
        if end < size and _is_ident_start(sql[end]):
            while end < size and _is_ident_char(sql[end]) and sql[end] != "$":
                end += 1
        if end < size and sql[end] == "$":
            tag = sql[i : end + 1]
            close = sql.find(tag, end + 1)
            return size if close < 0 else close + len(tag)
        return i + 1
