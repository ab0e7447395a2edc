"""The operations a client asks of a server, one typed class each, and their exact encoding.

A :class:`~rxdb.remote.wire.messages.Request` carries one operation as an array
``[tag, *fields]``. Each class below says what its fields are; :func:`operation_to_wire` and
:func:`operation_from_wire` follow the one table of codecs at the bottom, so that what is
sent is checked the same way it is accepted. Nothing a peer sends is trusted: a wrong tag, a
missing field or a field of the wrong type or range is a :class:`~rxdb.errors.ProtocolError`
(which fails that request alone: :class:`~rxdb.remote.wire.messages.BadRequest`), never an
exception from deep inside the server.

What the fields *mean* (is there an open block 7 on this connection? is the backup target
absolute?) is the server's business: such mistakes fail only the request that made them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, TypeAlias, get_args

from rxdb.errors import ProgrammingError, ProtocolError
from rxdb.remote.wire.checks import (
    DEFAULT_LIMITS,
    Limits,
    check_bool,
    check_int,
    check_scalar,
    check_str,
    optional,
)
from rxdb.remote.wire.endpoint import Endpoint
from rxdb.remote.wire.updates import kinds_from_wire, update_from_wire, update_to_wire
from rxdb.remote.wire.values import check_value, scalar_out, value_out
from rxdb.updates import TableUpdate, UpdateKind

__all__ = (
    "Backup",
    "Begin",
    "Compute",
    "End",
    "Execute",
    "ExecuteMany",
    "ExecuteScript",
    "FetchAll",
    "FetchOne",
    "Interrupt",
    "NotifyUpdates",
    "OpenFile",
    "OpenRead",
    "Operation",
    "TableUpdates",
    "TrackForeignWrites",
    "Unsubscribe",
    "UntrackForeignWrites",
    "Watch",
    "WatchMany",
    "WireParams",
    "operation_from_wire",
    "operation_to_wire",
)

WireParams: TypeAlias = list[Any] | dict[str, Any]
"""Statement parameters as they travel: positional (a list) or named (a map)."""

Mode: TypeAlias = Literal["deferred", "immediate", "exclusive"]

MAX_NAME_LEN: Final = 256

# -- statements: each runs in the client's block ``block``, or outside blocks (None) -------


@dataclass(frozen=True, slots=True)
class Execute:
    """``db.execute(sql, params)``."""

    sql: str
    params: WireParams
    block: int | None


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    """``db.execute_many(sql, param_sets)``."""

    sql: str
    param_sets: list[WireParams]
    block: int | None


@dataclass(frozen=True, slots=True)
class ExecuteScript:
    """``db.execute_script(script)``."""

    script: str
    block: int | None


@dataclass(frozen=True, slots=True)
class FetchAll:
    """``db.fetch_all(sql, params)``; the answer is a list of rows."""

    sql: str
    params: WireParams
    block: int | None


@dataclass(frozen=True, slots=True)
class FetchOne:
    """``db.fetch_one(sql, params)``; the answer is a row or ``None``."""

    sql: str
    params: WireParams
    block: int | None


# -- blocks held on the server -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Begin:
    """Open a transaction block (or, inside block ``parent``, a savepoint in it); the answer
    is the block's id."""

    mode: Mode
    parent: int | None


@dataclass(frozen=True, slots=True)
class OpenRead:
    """Open a read block (``isolated``: one snapshot, as ``db.read()``; else as
    ``db.unsafe_read()``), nested in ``parent`` if given; the answer is the block's id."""

    isolated: bool
    parent: int | None


@dataclass(frozen=True, slots=True)
class End:
    """End the innermost level of block ``block``: commit it, or roll it back if ``failed``."""

    block: int
    failed: bool


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Interrupt this client's statements running now (and its backup)."""


@dataclass(frozen=True, slots=True)
class Backup:
    """Back the database up into ``target``, a file on the server's machine. With
    ``progress``, each step is pushed as an event of that subscription id."""

    target: str
    pages_per_step: int
    progress: int | None
    block: int | None


# -- subscriptions: events of subscription ``subscription`` follow -------------------------


@dataclass(frozen=True, slots=True)
class Watch:
    """``db.watch(sql, params, distinct=distinct, recover=recover)``; each result is an event,
    or with ``states``, each of its states (``stream.states()``, see
    :mod:`rxdb.remote.wire.states`)."""

    subscription: int
    sql: str
    params: WireParams
    distinct: bool
    recover: bool
    states: bool


@dataclass(frozen=True, slots=True)
class WatchMany:
    """``db.watch_many({name: (sql, params)}, ...)`` as ``[name, sql, params]`` triples in
    the group's order; each result (a map by name) or, with ``states``, each state is an
    event."""

    subscription: int
    queries: list[tuple[str, str, WireParams]]
    distinct: bool
    recover: bool
    states: bool


@dataclass(frozen=True, slots=True)
class TableUpdates:
    """``db.table_updates(tables, kinds)``; each message is an event."""

    subscription: int
    tables: list[str] | None
    kinds: list[UpdateKind] | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop subscription ``subscription`` (a watch, table updates, a backup's progress)."""

    subscription: int


# -- the rest of the database's surface ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotifyUpdates:
    """``db.notify_updates(*updates)``."""

    updates: list[TableUpdate]


@dataclass(frozen=True, slots=True)
class TrackForeignWrites:
    """``db.track_foreign_writes()``."""


@dataclass(frozen=True, slots=True)
class UntrackForeignWrites:
    """``db.untrack_foreign_writes()``."""


# -- a worker process's one job --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenFile:
    """A database file a worker opens itself, with the options of :class:`rxdb.Database`."""

    path: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Compute:
    """Run ``await function(db, *args)`` in a worker process, ``db`` being ``target``: a
    server to connect to, or a file to open. ``function`` is ``"module:qualname"``."""

    function: str
    args: list[Any]
    target: Endpoint | OpenFile


Operation: TypeAlias = (
    Execute
    | ExecuteMany
    | ExecuteScript
    | FetchAll
    | FetchOne
    | Begin
    | OpenRead
    | End
    | Interrupt
    | Backup
    | Watch
    | WatchMany
    | TableUpdates
    | Unsubscribe
    | NotifyUpdates
    | TrackForeignWrites
    | UntrackForeignWrites
    | Compute
)


# ---------------------------------------------------------------------------------------
# Encoding and decoding


def operation_to_wire(operation: Operation) -> list[Any]:
    """``[tag, *fields]`` for ``operation``.

    :raises ProtocolError: if a field cannot travel (a value SQLite cannot store, text that
        is not UTF-8, a field of the wrong type).
    """
    spec = _BY_CLASS.get(type(operation))
    if spec is None:
        raise ProtocolError(f"not an rxdb operation: {operation!r}")
    tag, codecs = spec
    values = [getattr(operation, f.name) for f in fields(operation)]
    return [tag, *(codec.out(value) for codec, value in zip(codecs, values, strict=True))]


def operation_from_wire(value: Any, limits: Limits) -> Operation:
    """The operation an array ``[tag, *fields]`` from a peer describes.

    :raises ProtocolError: for an unknown tag, a wrong number of fields, or a field of the
        wrong type or range.
    """
    if not isinstance(value, list) or not value:
        raise ProtocolError("an operation must be an array [tag, ...]")
    tag, *rest = value
    spec = _BY_TAG.get(tag) if type(tag) is str else None
    if spec is None:
        raise ProtocolError(f"unknown operation {tag!r}")
    cls, codecs = spec
    if len(rest) != len(codecs):
        raise ProtocolError(f"{tag!r} takes {len(codecs)} fields, got {len(rest)}")
    values = [codec.into(raw, limits) for codec, raw in zip(codecs, rest, strict=True)]
    operation: Operation = cls(*values)
    return operation


@dataclass(frozen=True, slots=True)
class _Codec:
    out: Callable[[Any], Any]
    into: Callable[[Any, Limits], Any]


def _same(value: Any) -> Any:
    return value


def _text_out(value: Any) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"expected str, got {type(value).__name__}")
    return value


def _int_out(value: Any) -> int:
    if type(value) is not int:
        raise ProtocolError(f"expected an integer, got {type(value).__name__}")
    return value


def _bool_out(value: Any) -> bool:
    if type(value) is not bool:
        raise ProtocolError(f"expected a bool, got {type(value).__name__}")
    return value


def _params_out(params: Any) -> Any:
    if isinstance(params, dict):
        return {_text_out(k): scalar_out(v) for k, v in params.items()}
    if isinstance(params, list):
        return [scalar_out(v) for v in params]
    raise ProtocolError(f"parameters are a list or a map, not {type(params).__name__}")


def _params_in(value: Any, limits: Limits) -> WireParams:
    if type(value) is list:
        for item in value:
            check_scalar(item)
        return value
    if type(value) is dict:
        for item in value.values():
            check_scalar(item)
        return value  # unpack refused non-str keys already
    raise ProtocolError("parameters must be an array or a map")


def _list_in(check: Callable[[Any], Any]) -> Callable[[Any, Limits], list[Any]]:
    def into(value: Any, limits: Limits) -> list[Any]:
        if type(value) is not list:
            raise ProtocolError(f"expected an array, got {type(value).__name__}")
        return [check(item) for item in value]

    return into


_MODES: Final[dict[str, Mode]] = {mode: mode for mode in get_args(Mode)}


def _mode_in(value: Any, limits: Limits) -> Mode:
    mode = _MODES.get(value) if type(value) is str else None
    if mode is None:
        raise ProtocolError(f"unknown transaction mode {value!r}")
    return mode


def _pages_out(value: Any) -> int:
    pages = _int_out(value)
    if not -(2**31) <= pages < 2**31:  # SQLite's backup step takes a C int
        raise ProtocolError(f"pages_per_step {pages} is not a 32-bit integer")
    return pages


def _pages_in(value: Any, limits: Limits) -> int:
    return _pages_out(check_int(value))


def _block_out(value: Any) -> int | None:
    return None if value is None else _int_out(value)


def _id_in(value: Any, limits: Limits) -> int:
    return check_int(value, 0)


def _block_in(value: Any, limits: Limits) -> int | None:
    return None if value is None else check_int(value, 0)


def _tables_out(tables: Any) -> list[str] | None:
    return None if tables is None else [_text_out(t) for t in tables]


def _kinds_out(kinds: Any) -> list[str] | None:
    if kinds is None:
        return None
    if not all(isinstance(k, UpdateKind) for k in kinds):
        raise ProtocolError(f"kinds are rxdb.UpdateKind members, not {kinds!r}")
    return [k.value for k in kinds]


def _tables_in(value: Any, limits: Limits) -> list[str] | None:
    return None if value is None else _list_in(check_str)(value, limits)


def _kinds_in(value: Any, limits: Limits) -> list[UpdateKind] | None:
    if value is None:
        return None
    if type(value) is not list:
        raise ProtocolError("kinds must be an array")
    return kinds_from_wire(value)


def _target_out(target: Any) -> list[Any]:
    if isinstance(target, Endpoint):
        return ["server", target.kind, target.address, target.token, target.name]
    if isinstance(target, OpenFile):
        return ["file", _text_out(target.path), value_out(target.options)]
    raise ProtocolError(f"a compute target is a server or a file, not {target!r}")


def _target_in(value: Any, limits: Limits) -> Endpoint | OpenFile:
    if type(value) is list and len(value) == 5 and value[0] == "server":
        _, kind, address, token, name = value
        try:
            return Endpoint(kind, check_str(address), optional(check_str, token), name)
        except ProgrammingError as error:
            raise ProtocolError(f"not a server's endpoint: {error}") from None
    if type(value) is list and len(value) == 3 and value[0] == "file":
        _, path, options = value
        if type(options) is not dict:
            raise ProtocolError("a file's options must be a map")
        return OpenFile(check_str(path), check_value(options, limits))
    raise ProtocolError("a compute target is ['server', ...] or ['file', path, options]")


def _args_in(value: Any, limits: Limits) -> list[Any]:
    if type(value) is not list:
        raise ProtocolError("arguments must be an array")
    checked: list[Any] = check_value(value, limits)
    return checked


def _name_in(value: Any, limits: Limits) -> str:
    text = check_str(value, MAX_NAME_LEN)
    if not text:
        raise ProtocolError("expected a non-empty name")
    return text


def _queries_out(queries: Any) -> list[list[Any]]:
    if not isinstance(queries, list) or not queries:
        raise ProtocolError("a group's queries are a non-empty list")
    out: list[list[Any]] = []
    for query in queries:
        if not isinstance(query, tuple | list) or len(query) != 3:
            raise ProtocolError(f"a group's query is (name, sql, params), not {query!r}")
        name, sql, params = query
        out.append([_text_out(name), _text_out(sql), _params_out(params)])
    return out


def _queries_in(value: Any, limits: Limits) -> list[tuple[str, str, WireParams]]:
    if type(value) is not list or not value:
        raise ProtocolError("a group's queries must be a non-empty array")
    queries: list[tuple[str, str, WireParams]] = []
    for query in value:
        if type(query) is not list or len(query) != 3:
            raise ProtocolError("a group's query must be an array [name, sql, params]")
        name, sql, params = query
        queries.append((check_str(name, MAX_NAME_LEN), check_str(sql), _params_in(params, limits)))
    if len({name for name, _, _ in queries}) != len(queries):
        raise ProtocolError("a group's names must differ")
    return queries


TEXT: Final = _Codec(_text_out, lambda v, _: check_str(v))
ID: Final = _Codec(_int_out, _id_in)
BLOCK: Final = _Codec(_block_out, _block_in)
BOOL: Final = _Codec(_bool_out, lambda v, _: check_bool(v))
PARAMS: Final = _Codec(_params_out, _params_in)
QUERIES: Final = _Codec(_queries_out, _queries_in)
PARAM_SETS: Final = _Codec(
    lambda sets: [_params_out(p) for p in sets],
    lambda v, lim: [_params_in(p, lim) for p in _list_in(_same)(v, lim)],
)
MODE: Final = _Codec(lambda v: _mode_in(v, DEFAULT_LIMITS), _mode_in)
PAGES: Final = _Codec(_pages_out, _pages_in)
TABLES: Final = _Codec(_tables_out, _tables_in)
KINDS: Final = _Codec(_kinds_out, _kinds_in)
UPDATES: Final = _Codec(lambda us: [update_to_wire(u) for u in us], _list_in(update_from_wire))
NAME: Final = _Codec(_text_out, _name_in)
VALUES: Final = _Codec(lambda v: value_out(list(v)), _args_in)
TARGET: Final = _Codec(_target_out, _target_in)


_SPECS: Final[tuple[tuple[str, type[Any], tuple[_Codec, ...]], ...]] = (
    ("execute", Execute, (TEXT, PARAMS, BLOCK)),
    ("execute_many", ExecuteMany, (TEXT, PARAM_SETS, BLOCK)),
    ("execute_script", ExecuteScript, (TEXT, BLOCK)),
    ("fetch_all", FetchAll, (TEXT, PARAMS, BLOCK)),
    ("fetch_one", FetchOne, (TEXT, PARAMS, BLOCK)),
    ("begin", Begin, (MODE, BLOCK)),
    ("read", OpenRead, (BOOL, BLOCK)),
    ("end", End, (ID, BOOL)),
    ("interrupt", Interrupt, ()),
    ("backup", Backup, (TEXT, PAGES, BLOCK, BLOCK)),
    ("watch", Watch, (ID, TEXT, PARAMS, BOOL, BOOL, BOOL)),
    ("watch_many", WatchMany, (ID, QUERIES, BOOL, BOOL, BOOL)),
    ("table_updates", TableUpdates, (ID, TABLES, KINDS)),
    ("unsubscribe", Unsubscribe, (ID,)),
    ("notify_updates", NotifyUpdates, (UPDATES,)),
    ("track_foreign_writes", TrackForeignWrites, ()),
    ("untrack_foreign_writes", UntrackForeignWrites, ()),
    ("compute", Compute, (NAME, VALUES, TARGET)),
)
_BY_TAG: Final = {tag: (cls, codecs) for tag, cls, codecs in _SPECS}
_BY_CLASS: Final = {cls: (tag, codecs) for tag, cls, codecs in _SPECS}
