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


def notify_to_wire(message: NotifyTablesUpdated) -> list[Any]:
    updates = sorted((update_to_wire(u) for u in message.updates), key=_update_order)
    wal = None if message.wal_changes is None else list(message.wal_changes)
    return [
        message.database,
        message.origin,
        message.sequence,
        message.everything,
        updates,
        wal,
    ]


def notify_from_wire(fields: Any) -> NotifyTablesUpdated:
    """Rebuild what :func:`notify_to_wire` made.

    :raises ProtocolError: for anything else.
    """
    if not isinstance(fields, list) or len(fields) != 6:
        raise ProtocolError("table updates are an array of 6 fields")
    database, origin, sequence, everything, updates, wal = fields
    if type(everything) is not bool:
        raise ProtocolError(f"'everything' must be a bool, not {type(everything).__name__}")
    if not isinstance(updates, list):
        raise ProtocolError("updates must be an array")
    if wal is not None and not (
        isinstance(wal, list)
        and len(wal) == 2
        and all(type(v) is int and 0 <= v < _U32 for v in wal)
    ):
        raise ProtocolError("wal_changes must be null or two 32-bit unsigned integers")
    return NotifyTablesUpdated(
        database=check_str(database),
        origin=check_str(origin),
        sequence=check_int(sequence, 0),
        updates=frozenset(update_from_wire(u) for u in updates),
        everything=everything,
        wal_changes=None if wal is None else (wal[0], wal[1]),
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
