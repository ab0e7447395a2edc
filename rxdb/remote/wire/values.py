"""SQL values on the wire: how scalars, rows, lists of rows and ``ExecuteResult`` cross exactly.

:mod:`rxdb.remote.wire.messages` frames the messages; the values inside them (request arguments,
results, event values) are encoded and checked here. Scalars cross exactly: ``None``, 64-bit
integers, floats bit for bit, ``str`` and ``bytes`` kept apart. Rows, lists of rows and
results travel as msgpack extension types so that they come back as what they were. Every
value from a peer is type-, range- and depth-checked against :class:`Limits`; anything wrong
is a :class:`~rxdb.remote.wire.frames.ProtocolError`.

Also here: the field checks the message decoders share, and table updates as event values
(shared by the server's sessions and the client).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]

from rxdb.errors import ProgrammingError, RxdbError
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD, ProtocolError
from rxdb.rows import ExecuteResult, Row, row_class
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

__all__ = (
    "DEFAULT_LIMITS",
    "INT_MAX",
    "INT_MIN",
    "Limits",
    "check_int",
    "check_str",
    "check_value",
    "decode_ext",
    "notify_from_wire",
    "notify_to_wire",
    "optional",
    "unpack",
    "update_from_wire",
    "update_to_wire",
    "value_out",
)


INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1

_EXT_ROW: Final = 1
_EXT_ROWS: Final = 2
_EXT_RESULT: Final = 3


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied while decoding one payload (each also capped by the payload's length).

    The caps on lengths stop a few header bytes from preallocating a huge list; the depth
    cap keeps validation's recursion far from Python's limit; the cap on row shapes stops
    a message from minting a million row classes.
    """

    max_str_len: int = DEFAULT_MAX_PAYLOAD
    max_bin_len: int = DEFAULT_MAX_PAYLOAD
    max_array_len: int = 1 << 22
    max_map_len: int = 1 << 16
    max_depth: int = 32
    # Each new set of column names creates a class (~1 KiB) for a few bytes of payload; a
    # real result has one set, so a handful per message is plenty.
    max_row_shapes: int = 64


DEFAULT_LIMITS: Final = Limits()


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


def _scalar_out(value: Any) -> Any:
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
    return [_scalar_out(v) for v in row]


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
    if isinstance(value, Row):
        body = [list(value.keys()), _row_values_out(value)]
        return msgpack.ExtType(_EXT_ROW, _pack_inner(body))
    if isinstance(value, ExecuteResult):
        if value.rows and not _uniform_rows(value.rows):
            raise ProtocolError("the rows of one result must share their column names")
        head = [_scalar_out(value.rowcount), _scalar_out(value.last_insert_rowid)]
        return _rows_ext(_EXT_RESULT, head, value.rows)
    if not isinstance(value, list | tuple | dict):
        return _scalar_out(value)
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


def unpack(data: bytes, limits: Limits, ext_hook: Callable[[int, bytes], Any]) -> Any:
    # Every cap is also bounded by the data's own length, as msgpack's own defaults are:
    # a 6-byte array header must not preallocate room for four billion items.
    size = len(data)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=ext_hook,
            max_str_len=min(limits.max_str_len, size),
            max_bin_len=min(limits.max_bin_len, size),
            max_array_len=min(limits.max_array_len, size),
            max_map_len=min(limits.max_map_len, size),
            max_ext_len=size,
        )
    except ProtocolError:
        raise
    except UnicodeDecodeError as error:
        raise ProtocolError(f"text is not valid UTF-8: {error}") from error
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as error:
        raise ProtocolError(f"malformed msgpack ({type(error).__name__}): {error}") from error


def _no_ext(code: int, body: bytes) -> Any:
    raise ProtocolError("extension values cannot nest")


def decode_ext(
    code: int, body: bytes, limits: Limits, shapes: dict[tuple[str, ...], type[Row]]
) -> Any:
    if code not in (_EXT_ROW, _EXT_ROWS, _EXT_RESULT):
        raise ProtocolError(f"unknown extension type {code}")
    fields = unpack(body, limits, _no_ext)
    if not isinstance(fields, list):
        raise ProtocolError("an extension value must hold an array")
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
        _check_scalar(value)
    return values


def _check_scalar(value: Any) -> None:
    kind = type(value)
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise ProtocolError(f"integer {value} is outside SQLite's 64-bit range")
    elif value is not None and kind not in (str, bytes, float, bool):
        raise ProtocolError(f"unexpected value of type {kind.__name__}")


def check_value(value: Any, limits: Limits, depth: int = 0) -> Any:
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
    elif not isinstance(value, Row | ExecuteResult):
        # Rows and results were checked when their extension was decoded.
        _check_scalar(value)
    return value


def check_int(value: Any, low: int = INT_MIN) -> int:
    if type(value) is not int or not low <= value <= INT_MAX:
        raise ProtocolError(f"expected an integer in {low}..{INT_MAX}, got {value!r}")
    return value


def check_str(value: Any, max_len: int | None = None) -> str:
    if type(value) is not str:
        raise ProtocolError(f"expected str, got {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise ProtocolError(f"text longer than {max_len} characters")
    return value


def optional(check: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else check(value)


# ---------------------------------------------------------------------------------------
# Table updates as event values (the server sends them, the client reads them)


def notify_to_wire(message: NotifyTablesUpdated) -> dict[str, Any]:
    """A :class:`NotifyTablesUpdated` as an event value (the protocol's value tree)."""
    return {
        "database": message.database,
        "origin": message.origin,
        "sequence": message.sequence,
        "everything": message.everything,
        "updates": [update_to_wire(u) for u in message.updates],
    }


def notify_from_wire(value: Any) -> NotifyTablesUpdated:
    """Rebuild what :func:`notify_to_wire` sent.

    :raises ProtocolError: if the value is not such a message.
    """
    try:
        return NotifyTablesUpdated(
            database=value["database"],
            origin=value["origin"],
            sequence=value["sequence"],
            updates=frozenset(update_from_wire(u) for u in value["updates"]),
            everything=bool(value["everything"]),
        )
    except (KeyError, TypeError, ValueError, RxdbError) as error:
        raise ProtocolError(f"not a table-updates event: {error}") from None


def update_to_wire(update: TableUpdate) -> list[Any]:
    return [update.table, None if update.kind is None else update.kind.value]


def update_from_wire(value: Any) -> TableUpdate:
    if not isinstance(value, list) or len(value) != 2 or type(value[0]) is not str:
        raise ProgrammingError("a table update must be [table, kind or null]")
    table, kind = value
    try:
        return TableUpdate(table, None if kind is None else UpdateKind(kind))
    except ValueError:
        raise ProgrammingError(f"unknown update kind {kind!r}") from None
