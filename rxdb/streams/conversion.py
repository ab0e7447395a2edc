"""Rows as the caller's own type: ``row_type=`` of ``watch``, ``fetch_all`` and ``fetch_one``.

A result's rows share one set of column names, so whether they fit the type (every required
field has a column, every column a field) is decided once per result, not per row, and the
way to build each row (positionally when the columns are the fields in order) with it.
Optional libraries (pydantic, msgspec) are recognised by their classes' attributes, never
imported: rxdb requires neither.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, cast

from rxdb.errors import ProgrammingError, RowTypeError
from rxdb.rows import Row

__all__ = (
    "OFF_LOOP_ROWS",
    "RowConverter",
    "check_row_type",
    "converted_row",
    "converted_rows",
    "converter_for",
    "first_value",
)

T = TypeVar("T")

OFF_LOOP_ROWS = 10_000
"""Results this long are converted on a thread, off the event loop (~1 µs a row: 10 ms)."""

Make = Callable[[tuple[Any, ...]], Any]


def check_row_type(row_type: object) -> None:
    """Raise :class:`rxdb.ProgrammingError` unless ``row_type`` is ``None`` or callable."""
    if row_type is not None and not callable(row_type):
        raise ProgrammingError(
            f"row_type is a class or a function of the columns (or None), not {row_type!r}"
        )


def converter_for(row_type: Callable[..., T]) -> RowConverter[T]:
    """The converter of results to ``row_type`` (checked to be callable)."""
    check_row_type(row_type)
    return RowConverter(row_type)


def converted_rows(rows: list[Row], row_type: Callable[..., Any] | None) -> list[Any]:
    """What ``fetch_all(..., row_type=)`` returns: ``rows``, converted unless ``row_type``
    is ``None`` (checked already)."""
    return rows if row_type is None else RowConverter(row_type).rows(rows)


def converted_row(row: Row | None, row_type: Callable[..., Any] | None) -> Any:
    """What ``fetch_one(..., row_type=)`` returns: ``row`` (or ``None``), converted unless
    ``row_type`` is ``None`` (checked already)."""
    return row if row_type is None else RowConverter(row_type).one(row)


def first_value(row: Row | None) -> Any:
    """What ``fetch_value`` returns: the first column of ``row``, ``None`` for no row."""
    return None if row is None else row[0]


class RowConverter(Generic[T]):
    """Turns the rows of results into ``row_type``; keeps one plan per set of column names."""

    def __init__(self, row_type: Callable[..., T]) -> None:
        self.row_type = row_type
        self._plans: dict[tuple[str, ...], Make] = {}

    def rows(self, rows: list[Row]) -> list[T]:
        """Every row of a result, converted.

        :raises rxdb.RowTypeError: when the columns do not fit ``row_type``.
        """
        if not rows:
            return []
        make = self._plan(rows[0].keys())
        # The plain tuples a RowList stores: no Row object made per row on the way.
        values: Iterator[tuple[Any, ...]] = list.__iter__(rows)  # type: ignore[arg-type]
        return [make(row) for row in values]

    def one(self, row: Row | None) -> T | None:
        """One row (or ``None``), converted."""
        return None if row is None else self._plan(row.keys())(tuple(row))

    def _plan(self, names: tuple[str, ...]) -> Make:
        make = self._plans.get(names)
        if make is None:
            make = _plan(self.row_type, names)
            if len(self._plans) < 64:
                self._plans[names] = make
        return make


def _plan(row_type: Callable[..., Any], names: tuple[str, ...]) -> Make:
    """How to build a ``row_type`` from the values of a row with columns ``names``."""
    positions = _first_positions(names)
    if row_type is dict or _is_typeddict(row_type):
        if _is_typeddict(row_type):
            hints = cast(type, row_type)
            _fit(row_type, names, tuple(hints.__annotations__), hints.__required_keys__)  # type: ignore[attr-defined]
        if len(positions) == len(names):
            return lambda values: dict(zip(names, values, strict=True))
        return lambda values: {name: values[at] for name, at in positions.items()}
    fields = _fields(row_type)
    if fields is not None:
        declared, required, positional = fields
        _fit(row_type, names, declared, required)
        if positional and names == declared[: len(names)]:
            return lambda values: _guarded(row_type, names, row_type, *values)
    validate = getattr(row_type, "model_validate", None)
    if fields is not None and callable(validate):  # pydantic: validated by its aliases
        return lambda values: _guarded(
            row_type, names, validate, {name: values[at] for name, at in positions.items()}
        )
    return lambda values: _guarded(
        row_type, names, row_type, **{name: values[at] for name, at in positions.items()}
    )


def _guarded(
    row_type: object, names: tuple[str, ...], make: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    try:
        return make(*args, **kwargs)
    except (TypeError, ValueError) as error:
        raise RowTypeError(
            f"row_type {_name(row_type)} does not take the columns {list(names)}: {error}"
        ) from error


def _fit(
    row_type: object, names: tuple[str, ...], declared: Sequence[str], required: Iterable[str]
) -> None:
    needed = set(required)
    missing = [name for name in declared if name in needed and name not in names]
    unexpected = [name for name in names if name not in declared]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"no column for the required fields {missing}")
        if unexpected:
            problems.append(f"no field for the columns {unexpected}")
        raise RowTypeError(
            f"row_type {_name(row_type)} does not fit the columns {list(names)}"
            f" (its fields are {list(declared)}): {'; '.join(problems)}"
        )


def _fields(row_type: object) -> tuple[tuple[str, ...], list[str], bool] | None:
    """``(fields, required fields, built positionally)`` of a type whose fields can be read:
    a dataclass, a NamedTuple, a pydantic model, a msgspec Struct; else ``None``."""
    if isinstance(row_type, type) and dataclasses.is_dataclass(row_type):
        init = [f for f in dataclasses.fields(row_type) if f.init]
        required = [
            f.name
            for f in init
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        positional = not any(f.kw_only for f in init)
        return tuple(f.name for f in init), required, positional
    if isinstance(row_type, type) and issubclass(row_type, tuple) and hasattr(row_type, "_fields"):
        declared: tuple[str, ...] = row_type._fields
        defaults = getattr(row_type, "_field_defaults", {})
        return declared, [name for name in declared if name not in defaults], True
    model_fields = getattr(row_type, "model_fields", None)
    if isinstance(model_fields, dict):  # pydantic (v2)
        names = {name: getattr(info, "alias", None) or name for name, info in model_fields.items()}
        return (
            tuple(names.values()),
            [names[name] for name, info in model_fields.items() if info.is_required()],
            False,
        )
    struct_fields = getattr(row_type, "__struct_fields__", None)
    if isinstance(struct_fields, tuple):  # msgspec: defaults line up with the last fields
        defaults = getattr(row_type, "__struct_defaults__", ())
        unset = len(struct_fields) - len(defaults)
        required = list(struct_fields[:unset]) + [
            name
            for name, default in zip(struct_fields[unset:], defaults, strict=True)
            if repr(default) == "NODEFAULT"  # a required field after ones with defaults
        ]
        return struct_fields, required, False
    return None


def _is_typeddict(row_type: object) -> bool:
    return typing.is_typeddict(row_type)


def _first_positions(names: tuple[str, ...]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for at, name in enumerate(names):
        positions.setdefault(name, at)
    return positions


def _name(row_type: object) -> str:
    return getattr(row_type, "__qualname__", None) or repr(row_type)
