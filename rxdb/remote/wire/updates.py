"""Table updates on the wire: the one encoding of :class:`rxdb.NotifyTablesUpdated`.

A hub's ``Notify`` message and a server's table-updates event carry the same fields, made and
checked here: ``[database, origin, sequence, everything, updates, wal_changes]``, where
``updates`` is ``[[table, kind or null], ...]`` sorted by table and kind (so that equal
messages encode to equal bytes), an ``UPDATE`` whose columns are known being
``[table, "update", [column, ...]]`` (columns sorted), and ``wal_changes`` is ``null`` or two
unsigned 32-bit integers. Anything else from a peer is a :class:`~rxdb.errors.ProtocolError`.

An array may arrive as a list or, from the hub's fast road (msgpack's ``use_list=False``), as a
tuple: then ``updates`` is hashable, and the same few update sets arrive commit after commit,
so their decoded form is remembered by wire form (see :func:`notify_from_wire`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from rxdb.errors import ProtocolError
from rxdb.remote.wire.checks import check_int, check_str
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

__all__ = (
    "kinds_from_wire",
    "notify_from_wire",
    "notify_to_wire",
    "update_from_wire",
    "update_to_wire",
)

_KINDS: Final[dict[Any, UpdateKind | None]] = {None: None} | {k.value: k for k in UpdateKind}
_U32: Final = 1 << 32
_BAD_WAL: Final = "wal_changes must be null or two 32-bit unsigned integers"
_ARRAYS: Final = (list, tuple)

_DECODED: dict[tuple[Any, ...], frozenset[TableUpdate]] = {}
"""Wire form (tuples) -> its updates, each checked once. Only a valid form is ever stored,
and a valid form (text, null, arrays of them) equals no invalid one, so a hit is as checked as
a decode. Read and written by any thread, one dict operation at a time (atomic under the
GIL); emptied when full."""
_DECODED_SIZE: Final = 64


def notify_to_wire(message: NotifyTablesUpdated) -> list[Any]:
    # Once per commit another process hears of (the hub's Notify): no sort for one update,
    # and map rather than a comprehension (a Python frame of its own).
    updates = list(map(update_to_wire, message.updates))
    if len(updates) > 1:
        updates.sort(key=_update_order)
    wal = message.wal_changes
    return [
        message.database,
        message.origin,
        message.sequence,
        message.everything,
        updates,
        None if wal is None else [wal[0], wal[1]],
    ]


def notify_from_wire(fields: Any) -> NotifyTablesUpdated:
    """Rebuild what :func:`notify_to_wire` made.

    :raises ProtocolError: for anything else.
    """
    # Exact types: what msgpack decodes is never a subclass (nor is anything legitimate).
    if type(fields) not in _ARRAYS or len(fields) != 6:
        raise ProtocolError("table updates are an array of 6 fields")
    database, origin, sequence, everything, updates, wal = fields
    if type(everything) is not bool:
        raise ProtocolError(f"'everything' must be a bool, not {type(everything).__name__}")
    if type(updates) not in _ARRAYS:
        raise ProtocolError("updates must be an array")
    if wal is not None:
        if type(wal) not in _ARRAYS or len(wal) != 2:
            raise ProtocolError(_BAD_WAL)
        low, high = wal
        if (
            type(low) is not int
            or type(high) is not int
            or not (0 <= low < _U32 and 0 <= high < _U32)
        ):
            raise ProtocolError(_BAD_WAL)
        wal = (low, high)
    return NotifyTablesUpdated(
        check_str(database),
        check_str(origin),
        check_int(sequence, 0),
        _updates_from_wire(updates),
        everything,
        wal,
    )


def _updates_from_wire(updates: list[Any] | tuple[Any, ...]) -> frozenset[TableUpdate]:
    # Building and checking TableUpdates is most of a Notify's decoding, on every commit of
    # another process, with Python cold: a tuple form costs one lookup the second time.
    if type(updates) is not tuple:
        return frozenset(map(update_from_wire, updates))
    try:
        known = _DECODED.get(updates)
    except TypeError:  # a map inside: no valid form, refused by the decoding
        return frozenset(map(update_from_wire, updates))
    if known is None:
        known = frozenset(map(update_from_wire, updates))
        if len(_DECODED) >= _DECODED_SIZE:
            _DECODED.clear()
        _DECODED[updates] = known
    return known


def update_to_wire(update: TableUpdate) -> list[Any]:
    fields: list[Any] = [update.table, None if update.kind is None else update.kind.value]
    if update.columns is not None and update.kind is UpdateKind.UPDATE:
        fields.append(sorted(update.columns))
    return fields


def update_from_wire(fields: Any) -> TableUpdate:
    """:raises ProtocolError: for anything but ``[table, kind or null]`` or
    ``[table, "update", [column, ...]]``."""
    if type(fields) not in _ARRAYS or len(fields) not in (2, 3):
        raise ProtocolError("a table update must be [table, kind] or [table, kind, columns]")
    table, kind = fields[0], fields[1]
    if type(kind) not in (str, type(None)) or kind not in _KINDS:
        raise ProtocolError(f"unknown update kind {kind!r}")
    columns = None
    if len(fields) == 3:
        if _KINDS[kind] is not UpdateKind.UPDATE:
            raise ProtocolError(f"only an update names columns, not {kind!r}")
        if type(fields[2]) not in _ARRAYS:
            raise ProtocolError("an update's columns must be an array")
        columns = frozenset(check_str(column) for column in fields[2])
    return TableUpdate(check_str(table), _KINDS[kind], columns)


def kinds_from_wire(values: Iterable[Any]) -> list[UpdateKind]:
    """:raises ProtocolError: for a value that names no kind."""
    kinds = []
    for value in values:
        kind = _KINDS.get(value) if type(value) is str else None
        if kind is None:
            raise ProtocolError(f"unknown update kind {value!r}")
        kinds.append(kind)
    return kinds


def _update_order(fields: list[Any]) -> tuple[str, str, list[str]]:
    return fields[0], fields[1] or "", fields[2] if len(fields) == 3 else []
