"""Table updates on the wire: the one encoding of :class:`rxdb.NotifyTablesUpdated`.

A hub's ``Notify`` message and a server's table-updates event carry the same fields, made and
checked here: ``[database, origin, sequence, everything, updates, wal_changes]``, where
``updates`` is ``[[table, kind or null], ...]`` sorted by table and kind (so that equal
messages encode to equal bytes), an ``UPDATE`` whose columns are known being
``[table, "update", [column, ...]]`` (columns sorted), and ``wal_changes`` is ``null`` or two
unsigned 32-bit integers. Anything else from a peer is a :class:`~rxdb.errors.ProtocolError`.
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


def notify_to_wire(message: NotifyTablesUpdated) -> list[Any]:
    # Once per commit another process hears of (the hub's Notify): no sort for one update.
    updates = [update_to_wire(u) for u in message.updates]
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
    if type(fields) is not list or len(fields) != 6:
        raise ProtocolError("table updates are an array of 6 fields")
    database, origin, sequence, everything, updates, wal = fields
    if type(everything) is not bool:
        raise ProtocolError(f"'everything' must be a bool, not {type(everything).__name__}")
    if type(updates) is not list:
        raise ProtocolError("updates must be an array")
    if wal is not None:
        if type(wal) is not list or len(wal) != 2:
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
        frozenset(map(update_from_wire, updates)),
        everything,
        wal,
    )


def update_to_wire(update: TableUpdate) -> list[Any]:
    fields: list[Any] = [update.table, None if update.kind is None else update.kind.value]
    if update.columns is not None and update.kind is UpdateKind.UPDATE:
        fields.append(sorted(update.columns))
    return fields


def update_from_wire(fields: Any) -> TableUpdate:
    """:raises ProtocolError: for anything but ``[table, kind or null]`` or
    ``[table, "update", [column, ...]]``."""
    if not isinstance(fields, list) or len(fields) not in (2, 3):
        raise ProtocolError("a table update must be [table, kind] or [table, kind, columns]")
    table, kind = fields[0], fields[1]
    if type(kind) not in (str, type(None)) or kind not in _KINDS:
        raise ProtocolError(f"unknown update kind {kind!r}")
    columns = None
    if len(fields) == 3:
        if _KINDS[kind] is not UpdateKind.UPDATE:
            raise ProtocolError(f"only an update names columns, not {kind!r}")
        if not isinstance(fields[2], list):
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
