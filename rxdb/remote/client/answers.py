"""What the client sends as parameters, and what a server's answers must be.

The wire checks that a value is well-formed; these check that it is what the call returns (a
list of rows for ``fetch_all``, a block id for ``begin``...), so that a confused or hostile
server cannot hand the caller something else: a wrong answer is a
:class:`~rxdb.errors.ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rxdb._types import BackupProgress
from rxdb.errors import ProgrammingError, ProtocolError
from rxdb.remote.wire.operations import WireParams
from rxdb.rows import ExecuteResult, Row, Rows
from rxdb.updates import NotifyTablesUpdated

__all__ = (
    "backup_progress",
    "block_id",
    "count",
    "execute_result",
    "nothing",
    "row_or_none",
    "rows",
    "table_updates",
    "wire_params",
)


def wire_params(params: object) -> WireParams:
    """Parameters as they travel: a map for named ones, a list for positional ones.

    :raises rxdb.ProgrammingError: for parameters that are neither.
    """
    if isinstance(params, Mapping):
        return dict(params)
    if isinstance(params, Sequence) and not isinstance(params, str | bytes):
        return list(params)
    raise ProgrammingError(
        f"parameters must be a sequence (for ?) or a mapping (for :name), not "
        f"{type(params).__name__}; for one value write (value,)"
    )


def rows(value: Any) -> Rows:
    if not isinstance(value, list) or not all(isinstance(row, Row) for row in value):
        raise ProtocolError(f"the server answered {_kind(value)} where rows belong")
    return value


def group(value: Any) -> dict[str, Rows]:
    if not isinstance(value, dict) or not all(isinstance(name, str) for name in value):
        raise ProtocolError(f"the server answered {_kind(value)} where a group's results belong")
    return {name: rows(result) for name, result in value.items()}


def row_or_none(value: Any) -> Row | None:
    if value is not None and not isinstance(value, Row):
        raise ProtocolError(f"the server answered {_kind(value)} where a row belongs")
    return value


def execute_result(value: Any) -> ExecuteResult:
    if not isinstance(value, ExecuteResult):
        raise ProtocolError(f"the server answered {_kind(value)} where a result belongs")
    return value


def count(value: Any) -> int:
    if type(value) is not int:
        raise ProtocolError(f"the server answered {_kind(value)} where a count belongs")
    return value


def block_id(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ProtocolError(f"the server answered {_kind(value)} where a block id belongs")
    return value


def nothing(value: Any) -> None:
    if value is not None:
        raise ProtocolError(f"the server answered {_kind(value)} where nothing belongs")


def table_updates(value: Any) -> NotifyTablesUpdated:
    if not isinstance(value, NotifyTablesUpdated):
        raise ProtocolError(f"the server sent {_kind(value)} where table updates belong")
    return value


def backup_progress(value: Any) -> BackupProgress:
    if not isinstance(value, BackupProgress):
        raise ProtocolError(f"the server sent {_kind(value)} where a backup's progress belongs")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"
