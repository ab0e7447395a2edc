"""Results as JSON with column names, for browsers (:mod:`rxdb.web`) and pipes (``rxdb watch
--json``): rows become objects, not arrays. Needs nothing beyond the standard library.

A :class:`rxdb.Row` is a tuple, so ``json.dumps`` alone writes ``[1, "tea"]`` and the names
are lost; :func:`jsonable` turns it (and whatever a typed or transformed stream emits:
dataclasses, named tuples, pydantic models, msgspec structs) into plain JSON values first.
Values JSON has no type for get the form a browser can use without losing anything:
``bytes`` as base64 text, ``Decimal`` as its exact decimal text, dates and times as ISO
8601, UUIDs as text; an exception (a watch state's error) as its class name and message.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import json
import uuid
from collections.abc import Mapping
from typing import Any

from rxdb.errors import ProgrammingError
from rxdb.rows import Row

__all__ = ("jsonable", "to_json")


def to_json(value: Any) -> str:
    """Encode ``value`` (a result, a row, anything :func:`jsonable` takes) as compact JSON.

    :raises rxdb.ProgrammingError: for a value with no JSON form (an infinite float, an
        object of an unknown type); the message names its type.
    """
    try:
        return json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)
    except ValueError as error:  # NaN or an infinity: JSON.parse would refuse the text
        raise ProgrammingError(f"value cannot be encoded as JSON: {error}") from None


def jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON values: rows as objects keyed by column name.

    :raises rxdb.ProgrammingError: for an object of a type with no JSON form.
    """
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Row):
        return {name: jsonable(item) for name, item in zip(value.keys(), value, strict=True)}
    if hasattr(value, "_asdict"):  # a NamedTuple
        return jsonable(value._asdict())
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):  # a watch state's error
        return {"error": type(value).__name__, "message": str(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic
        return jsonable(value.model_dump())
    fields = getattr(type(value), "__struct_fields__", None)  # msgspec
    if isinstance(fields, tuple):
        return {name: jsonable(getattr(value, name)) for name in fields}
    raise ProgrammingError(
        f"value of type {type(value).__name__} cannot be encoded as JSON; "
        "pass encode= a function that turns it into text"
    )
