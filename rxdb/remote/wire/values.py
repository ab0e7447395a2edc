"""Values on the wire: how SQL values, rows, results and table updates cross exactly.

:mod:`rxdb.remote.wire.messages` frames the messages; the values inside them (statement
parameters, results, subscription events, a compute job's arguments) are encoded and checked
here. Scalars cross exactly: ``None``, 64-bit integers, floats bit for bit, ``str`` and
``bytes`` kept apart. The richer values travel as msgpack extension types so that they come
back as what they were:

- ext 1 a :class:`rxdb.Row`: ``[names, values]``;
- ext 2 a list of rows with the same columns: ``[names, [values, ...]]`` (names sent once);
- ext 3 an :class:`rxdb.ExecuteResult`: ``[rowcount, last_insert_rowid, names, [values, ...]]``;
- ext 4 a :class:`rxdb.NotifyTablesUpdated`, in its one encoding (:mod:`.updates`);
- ext 5 a :class:`rxdb.BackupProgress`: ``[remaining, total]``.

Every value from a peer is type-, range- and depth-checked against
:class:`~rxdb.remote.wire.checks.Limits`; anything wrong is a :class:`~rxdb.errors.ProtocolError`.
"""

from __future__ import annotations

from typing import Any, Final

import msgpack  # type: ignore[import-untyped]

from rxdb._types import BackupProgress
from rxdb.errors import ProtocolError
from rxdb.remote.wire.checks import (
    DEFAULT_LIMITS,
    INT_MAX,
    INT_MIN,
    Limits,
    check_int,
    check_scalar,
    optional,
    unpack,
)
from rxdb.remote.wire.updates import notify_from_wire, notify_to_wire
from rxdb.rows import ExecuteResult, Row, row_class
from rxdb.updates import NotifyTablesUpdated

__all__ = ("check_value", "decode_ext", "scalar_out", "value_out")

_EXT_ROW: Final = 1
_EXT_ROWS: Final = 2
_EXT_RESULT: Final = 3
_EXT_NOTIFY: Final = 4
_EXT_PROGRESS: Final = 5


# ---------------------------------------------------------------------------------------
# Encoding


def _pack_inner(value: Any) -> bytes:
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
    except UnicodeEncodeError as error:
        raise ProtocolError(
            f"text is not valid UTF-8 (a lone surrogate?) and cannot be sent: {error}"
        ) from error
    return packed


def scalar_out(value: Any) -> Any:
    """A SQL value as sent (a tuple-free, exact copy).

    :raises ProtocolError: for an integer outside 64 bits or a type SQLite cannot store.
    """
    if value is None or isinstance(value, str | bytes | float | bool):
        return value
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise ProtocolError(f"integer {value} is outside SQLite's 64-bit range")
        return int(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ProtocolError(f"cannot send a value of type {type(value).__name__}")


def _row_values_out(row: Row) -> list[Any]:
    return [scalar_out(v) for v in row]


def _rows_ext(code: int, head: list[Any], rows: list[Row]) -> msgpack.ExtType:
    names = list(rows[0].keys()) if rows else []
    body = [*head, names, [_row_values_out(r) for r in rows]]
    return msgpack.ExtType(code, _pack_inner(body))


def _uniform_rows(value: list[Any] | tuple[Any, ...]) -> bool:
    if not value or not isinstance(value[0], Row):
        return False
    names = value[0].keys()
    return all(isinstance(r, Row) and r.keys() == names for r in value)


def value_out(value: Any, depth: int = 0) -> Any:
    """``value`` as msgpack sends it: lists (tuples too), maps with text keys, SQL values,
    and the extension types above.

    :raises ProtocolError: for anything else, or a value nested deeper than the decoder takes.
    """
    if isinstance(value, Row):
        body = [list(value.keys()), _row_values_out(value)]
        return msgpack.ExtType(_EXT_ROW, _pack_inner(body))
    if isinstance(value, ExecuteResult):
        if value.rows and not _uniform_rows(value.rows):
            raise ProtocolError("the rows of one result must share their column names")
        head = [scalar_out(value.rowcount), scalar_out(value.last_insert_rowid)]
        return _rows_ext(_EXT_RESULT, head, value.rows)
    if isinstance(value, NotifyTablesUpdated):
        return msgpack.ExtType(_EXT_NOTIFY, _pack_inner(notify_to_wire(value)))
    if isinstance(value, BackupProgress):
        body = [scalar_out(value.remaining), scalar_out(value.total)]
        return msgpack.ExtType(_EXT_PROGRESS, _pack_inner(body))
    if not isinstance(value, list | tuple | dict):
        return scalar_out(value)
    # The same bound the decoder applies, so that what is sent is what is accepted.
    if depth >= DEFAULT_LIMITS.max_depth:
        raise ProtocolError(f"value nested deeper than {DEFAULT_LIMITS.max_depth} levels")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(f"map keys must be str, not {type(key).__name__}")
            out[key] = value_out(item, depth + 1)
        return out
    if _uniform_rows(value):
        return _rows_ext(_EXT_ROWS, [], list(value))
    return [value_out(v, depth + 1) for v in value]


# ---------------------------------------------------------------------------------------
# Decoding and checking


def _no_ext(code: int, body: bytes) -> Any:
    raise ProtocolError("extension values cannot nest")


def decode_ext(
    code: int, body: bytes, limits: Limits, shapes: dict[tuple[str, ...], type[Row]]
) -> Any:
    """Rebuild one extension value (msgpack's ``ext_hook``); ``shapes`` holds the row classes
    made so far while decoding this payload.

    :raises ProtocolError: for an unknown code or a malformed body.
    """
    if code not in (_EXT_ROW, _EXT_ROWS, _EXT_RESULT, _EXT_NOTIFY, _EXT_PROGRESS):
        raise ProtocolError(f"unknown extension type {code}")
    fields = unpack(body, limits, _no_ext)
    if not isinstance(fields, list):
        raise ProtocolError("an extension value must hold an array")
    if code == _EXT_NOTIFY:
        return notify_from_wire(fields)
    if code == _EXT_PROGRESS:
        remaining, total = _exact(fields, 2, "backup progress")
        return BackupProgress(check_int(remaining, 0), check_int(total, 0))
    if code == _EXT_ROW:
        names, values = _exact(fields, 2, "row")
        cls, width = _row_type(names, limits, shapes)
        return cls(_row_values_in(values, width))
    if code == _EXT_ROWS:
        names, rows = _exact(fields, 2, "rows")
        return _rows_in(names, rows, limits, shapes)
    rowcount, last_rowid, names, rows = _exact(fields, 4, "result")
    return ExecuteResult(
        check_int(rowcount), optional(check_int, last_rowid), _rows_in(names, rows, limits, shapes)
    )


def _exact(fields: list[Any], count: int, what: str) -> list[Any]:
    if len(fields) != count:
        raise ProtocolError(f"a {what} takes {count} fields, got {len(fields)}")
    return fields


def _row_type(
    names: Any, limits: Limits, shapes: dict[tuple[str, ...], type[Row]]
) -> tuple[type[Row], int]:
    if not isinstance(names, list) or not all(type(n) is str for n in names):
        raise ProtocolError("column names must be an array of str")
    columns = tuple(names)
    cls = shapes.get(columns)
    if cls is None:
        if len(shapes) >= limits.max_row_shapes:
            raise ProtocolError(f"more than {limits.max_row_shapes} sets of column names")
        cls = shapes[columns] = row_class(columns)
    return cls, len(columns)


def _rows_in(
    names: Any, rows: Any, limits: Limits, shapes: dict[tuple[str, ...], type[Row]]
) -> list[Row]:
    cls, width = _row_type(names, limits, shapes)
    if not isinstance(rows, list):
        raise ProtocolError("rows must be an array")
    return [cls(_row_values_in(values, width)) for values in rows]


def _row_values_in(values: Any, width: int) -> list[Any]:
    if not isinstance(values, list) or len(values) != width:
        raise ProtocolError(f"a row must be an array of {width} values")
    for value in values:
        check_scalar(value)
    return values


def check_value(value: Any, limits: Limits = DEFAULT_LIMITS, depth: int = 0) -> Any:
    """Check a decoded value tree: lists, maps with text keys, SQL values, extension values.

    :raises ProtocolError: for anything else, or nesting deeper than ``limits`` allows.
    """
    kind = type(value)
    if kind is list:
        if depth >= limits.max_depth:
            raise ProtocolError(f"value nested deeper than {limits.max_depth} levels")
        for item in value:
            check_value(item, limits, depth + 1)
    elif kind is dict:
        if depth >= limits.max_depth:
            raise ProtocolError(f"value nested deeper than {limits.max_depth} levels")
        for key, item in value.items():
            if type(key) is not str:
                raise ProtocolError("map keys must be str")
            check_value(item, limits, depth + 1)
    elif not isinstance(value, Row | ExecuteResult | NotifyTablesUpdated | BackupProgress):
        # Extension values were checked when they were decoded.
        check_scalar(value)
    return value
