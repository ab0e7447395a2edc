"""The message vocabulary spoken between rxdb processes, and its exact msgpack encoding.

Every message is a msgpack array ``[version, tag, *fields]``. Nothing from a peer is
trusted: every field is type- and range-checked, unknown tags and versions are refused,
no class is ever looked up by a name a peer sent, and anything wrong surfaces as a
:class:`~rxdb.remote.frames.ProtocolError` (close that connection, keep serving others).

SQL values cross exactly: ``None``, 64-bit integers, floats bit for bit (``-0.0``, ``inf``,
every NaN payload), ``str`` and ``bytes`` kept apart. Rows, lists of rows and
:class:`~rxdb.rows.ExecuteResult` travel as msgpack extension types so that they come back
as what they were, not as plain lists.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import msgpack  # type: ignore[import-untyped]

from rxdb.errors import (
    BusyError,
    ClosedError,
    DatabaseError,
    IntegrityError,
    InterruptError,
    OperationalError,
    ProgrammingError,
    ReadOnlyError,
    ReentrancyError,
    RxdbError,
    TransactionAbortedError,
    WrongLoopError,
)
from rxdb.remote.frames import DEFAULT_MAX_PAYLOAD, ProtocolError
from rxdb.rows import ExecuteResult, Row, row_class
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

__all__ = (
    "DEFAULT_LIMITS",
    "PROTOCOL_VERSION",
    "ErrorInfo",
    "Event",
    "EventKind",
    "Failure",
    "Goodbye",
    "Hello",
    "Limits",
    "Message",
    "Notify",
    "Ping",
    "Pong",
    "Refused",
    "RemoteError",
    "Request",
    "Response",
    "UnsupportedVersionError",
    "Welcome",
    "decode_message",
    "encode_message",
    "error_from_wire",
    "error_to_wire",
    "new_token",
    "tokens_match",
)

PROTOCOL_VERSION: Final = 1

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
MAX_TOKEN_LEN: Final = 1024
MAX_NAME_LEN: Final = 256  # roles, epochs, ops
# Error texts are diagnostics: a long SQL script in a failure must not push the frame over
# the limit and turn a clean error into a dropped connection.
MAX_ERROR_TEXT: Final = 64 * 1024

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


class UnsupportedVersionError(ProtocolError):
    """Raised when a peer speaks another protocol version; answer :class:`Refused`, then close."""

    def __init__(self, version: object) -> None:
        super().__init__(
            f"protocol version {version!r} is not supported (this side speaks "
            f"{PROTOCOL_VERSION}); upgrade rxdb on both sides to the same release"
        )
        self.version = version


class RemoteError(RxdbError):
    """Raised when a remote call failed with an exception that is not an rxdb error.

    :ivar error_type: the remote exception's type name, e.g. ``"ValueError"``; it is only a
        label -- no class of that name is looked up or instantiated.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}" if message else error_type)
        self.error_type = error_type
        self.remote_message = message


class EventKind(enum.Enum):
    """What an :class:`Event` reports about a subscription."""

    NEXT = "next"
    ERROR = "error"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception as it crosses the wire; see :func:`error_to_wire`."""

    error_type: str
    message: str
    sqlite_errorcode: int | None = None
    sqlite_errorname: str | None = None
    sql: str | None = None


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a connection (client -> server/hub)."""

    token: bytes | None
    role: str
    process_id: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Welcome:
    """The handshake succeeded (server/hub -> client); a new ``epoch`` means resync."""

    process_id: int
    epoch: str
    database: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The handshake failed; the sender closes the connection after it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notify:
    """A committed change, carried between processes (either direction, through the hub)."""

    message: NotifyTablesUpdated
    epoch: str


@dataclass(frozen=True, slots=True)
class Request:
    """A call on a database server (client -> server); ``id`` pairs it with its answer."""

    id: int
    op: str
    args: list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    """The successful answer to the :class:`Request` with the same ``id``."""

    id: int
    result: Any


@dataclass(frozen=True, slots=True)
class Failure:
    """The failed answer to the :class:`Request` with the same ``id``."""

    id: int
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Event:
    """A push from the server for one subscription: a value, an error, or completion."""

    subscription_id: int
    kind: EventKind
    value: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    nonce: int


@dataclass(frozen=True, slots=True)
class Pong:
    nonce: int


@dataclass(frozen=True, slots=True)
class Goodbye:
    """The sender is closing the connection on purpose (not a crash)."""

    reason: str


Message: TypeAlias = (
    Hello
    | Welcome
    | Refused
    | Notify
    | Request
    | Response
    | Failure
    | Event
    | Ping
    | Pong
    | Goodbye
)


# ---------------------------------------------------------------------------------------
# Tokens


def new_token() -> bytes:
    """Return a fresh random token for a server or hub to demand from its clients."""
    return secrets.token_bytes(32)


def tokens_match(expected: bytes, presented: bytes | None) -> bool:
    """Tell whether ``presented`` is ``expected``, in time independent of where they differ.

    Both sides are hashed first so that not even the length of the secret leaks.
    """
    if presented is None:
        presented = b""
    return hmac.compare_digest(
        hashlib.sha256(expected).digest(), hashlib.sha256(presented).digest()
    )


# ---------------------------------------------------------------------------------------
# Errors

_ERROR_CLASSES: Final[dict[str, type[RxdbError]]] = {
    cls.__name__: cls
    for cls in (
        RxdbError,
        DatabaseError,
        IntegrityError,
        OperationalError,
        ProgrammingError,
        BusyError,
        ReadOnlyError,
        InterruptError,
        TransactionAbortedError,
        ReentrancyError,
        ClosedError,
        WrongLoopError,
    )
}


def error_to_wire(error: BaseException) -> ErrorInfo:
    """Describe ``error`` for the wire: rxdb errors by class, anything else by type name."""
    if isinstance(error, RemoteError):
        return ErrorInfo(error.error_type, _clip(error.remote_message))
    for cls in type(error).__mro__:
        if _ERROR_CLASSES.get(cls.__name__) is cls:
            break
    else:
        kind = type(error)
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        return ErrorInfo(_clip(name), _clip(str(error)))
    if isinstance(error, DatabaseError):
        # Exception.__str__, not DatabaseError.__str__: the SQL travels in its own field
        # and the receiving side appends it again.
        return ErrorInfo(
            cls.__name__,
            _clip(Exception.__str__(error)),
            error.sqlite_errorcode,
            error.sqlite_errorname,
            None if error.sql is None else _clip(error.sql),
        )
    return ErrorInfo(cls.__name__, _clip(str(error)))


def error_from_wire(info: ErrorInfo) -> RxdbError:
    """Rebuild the error ``info`` describes, as the rxdb class of the same name if any."""
    cls = _ERROR_CLASSES.get(info.error_type)
    if cls is None:
        return RemoteError(info.error_type, info.message)
    if issubclass(cls, DatabaseError):
        return cls(
            info.message,
            sql=info.sql,
            sqlite_errorcode=info.sqlite_errorcode,
            sqlite_errorname=info.sqlite_errorname,
        )
    return cls(info.message)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


# ---------------------------------------------------------------------------------------
# Encoding


def encode_message(message: Message) -> bytes:
    """Return the payload for ``message`` (frame it with :func:`encode_frame`).

    :raises ProtocolError: if a value cannot cross exactly: an integer outside SQLite's
        64-bit range, text with a lone surrogate (not valid UTF-8), or an unknown type.
    """
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise TypeError(f"not an rxdb message: {message!r}")
    fields = [PROTOCOL_VERSION, *encoder(message)]
    try:
        packed: bytes = msgpack.packb(fields, use_bin_type=True)
    except UnicodeEncodeError as error:
        raise ProtocolError(
            f"text is not valid UTF-8 (a lone surrogate?) and cannot be sent: {error}"
        ) from error
    except (TypeError, ValueError, OverflowError) as error:
        raise ProtocolError(f"cannot encode {type(message).__name__}: {error}") from error
    return packed


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


def _value_out(value: Any, depth: int = 0) -> Any:
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
            out[key] = _value_out(item, depth + 1)
        return out
    if _uniform_rows(value):
        return _rows_ext(_EXT_ROWS, [], list(value))
    return [_value_out(v, depth + 1) for v in value]


def _error_out(error: ErrorInfo) -> list[Any]:
    return [
        error.error_type,
        error.message,
        error.sqlite_errorcode,
        error.sqlite_errorname,
        error.sql,
    ]


def _notify_out(m: Notify) -> list[Any]:
    n = m.message
    updates = sorted(
        ([u.table, None if u.kind is None else u.kind.value] for u in n.updates),
        key=lambda pair: (pair[0], pair[1] or ""),
    )
    return [n.database, n.origin, n.sequence, m.epoch, n.everything, updates]


def _event_out(m: Event) -> list[Any]:
    error = None if m.error is None else _error_out(m.error)
    return [m.subscription_id, m.kind.value, _value_out(m.value), error]


_ENCODERS: Final[dict[type[Any], Callable[[Any], list[Any]]]] = {
    Hello: lambda m: ["hello", m.token, m.role, m.process_id, m.epoch],
    Welcome: lambda m: ["welcome", m.process_id, m.epoch, m.database],
    Refused: lambda m: ["refused", m.reason],
    Notify: lambda m: ["notify", *_notify_out(m)],
    Request: lambda m: ["request", m.id, m.op, _value_out(m.args)],
    Response: lambda m: ["response", m.id, _value_out(m.result)],
    Failure: lambda m: ["failure", m.id, *_error_out(m.error)],
    Event: lambda m: ["event", *_event_out(m)],
    Ping: lambda m: ["ping", m.nonce],
    Pong: lambda m: ["pong", m.nonce],
    Goodbye: lambda m: ["goodbye", m.reason],
}


# ---------------------------------------------------------------------------------------
# Decoding


def decode_message(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Return the message in one frame's payload.

    :raises UnsupportedVersionError: if the peer speaks another protocol version.
    :raises ProtocolError: if the payload is anything but a well-formed message of this
        version; nothing else escapes, whatever the bytes.
    """
    # Read the version before decoding the rest, so that a newer peer whose message this
    # side cannot even parse still gets "other version" rather than "garbage".
    early = _peek_version(payload)
    if early is not None and early != PROTOCOL_VERSION:
        raise UnsupportedVersionError(early)
    shapes: dict[tuple[str, ...], type[Row]] = {}

    def ext_hook(code: int, body: bytes) -> Any:
        return _decode_ext(code, body, limits, shapes)

    fields = _unpack(payload, limits, ext_hook)
    if not isinstance(fields, list) or len(fields) < 2:
        raise ProtocolError("a message must be an array [version, tag, ...]")
    version, tag, *rest = fields
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(version)
    if type(tag) is not str or tag not in _DECODERS:
        raise ProtocolError(f"unknown message type {tag!r}")
    arity, decoder = _DECODERS[tag]
    if len(rest) != arity:
        raise ProtocolError(f"{tag!r} takes {arity} fields, got {len(rest)}")
    return decoder(rest, limits)


def _peek_version(payload: bytes) -> int | None:
    if not payload:
        return None
    first = payload[0]
    if 0x90 <= first <= 0x9F:  # fixarray
        offset = 1
    elif first == 0xDC:  # array 16
        offset = 3
    elif first == 0xDD:  # array 32
        offset = 5
    else:
        return None
    if len(payload) > offset and payload[offset] < 0x80:  # positive fixint
        return payload[offset]
    return None


def _unpack(data: bytes, limits: Limits, ext_hook: Callable[[int, bytes], Any]) -> Any:
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


def _decode_ext(
    code: int, body: bytes, limits: Limits, shapes: dict[tuple[str, ...], type[Row]]
) -> Any:
    if code not in (_EXT_ROW, _EXT_ROWS, _EXT_RESULT):
        raise ProtocolError(f"unknown extension type {code}")
    fields = _unpack(body, limits, _no_ext)
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
        _int(rowcount), _opt(_int, last_rowid), _rows_in(names, rows, limits, shapes)
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


def _check_value(value: Any, limits: Limits, depth: int = 0) -> Any:
    kind = type(value)
    if kind is list:
        if depth >= limits.max_depth:
            raise ProtocolError(f"value nested deeper than {limits.max_depth} levels")
        for item in value:
            _check_value(item, limits, depth + 1)
    elif kind is dict:
        if depth >= limits.max_depth:
            raise ProtocolError(f"value nested deeper than {limits.max_depth} levels")
        for key, item in value.items():
            if type(key) is not str:
                raise ProtocolError("map keys must be str")
            _check_value(item, limits, depth + 1)
    elif not isinstance(value, Row | ExecuteResult):
        # Rows and results were checked when their extension was decoded.
        _check_scalar(value)
    return value


def _int(value: Any, low: int = INT_MIN) -> int:
    if type(value) is not int or not low <= value <= INT_MAX:
        raise ProtocolError(f"expected an integer in {low}..{INT_MAX}, got {value!r}")
    return value


def _id(value: Any) -> int:
    return _int(value, 0)


def _str(value: Any, max_len: int | None = None) -> str:
    if type(value) is not str:
        raise ProtocolError(f"expected str, got {type(value).__name__}")
    if max_len is not None and len(value) > max_len:
        raise ProtocolError(f"text longer than {max_len} characters")
    return value


def _name(value: Any) -> str:
    text = _str(value, MAX_NAME_LEN)
    if not text:
        raise ProtocolError("expected a non-empty name")
    return text


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ProtocolError(f"expected bool, got {type(value).__name__}")
    return value


def _opt(check: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else check(value)


def _error_in(fields: list[Any]) -> ErrorInfo:
    error_type, message, code, name, sql = fields
    return ErrorInfo(
        _str(error_type, MAX_NAME_LEN),
        _str(message),
        _opt(_int, code),
        _opt(_str, name),
        _opt(_str, sql),
    )


def _hello_in(f: list[Any], limits: Limits) -> Hello:
    token, role, process_id, epoch = f
    if token is not None and (type(token) is not bytes or len(token) > MAX_TOKEN_LEN):
        raise ProtocolError(f"a token must be at most {MAX_TOKEN_LEN} bytes")
    return Hello(token, _name(role), _id(process_id), _name(epoch))


_KINDS: Final[dict[Any, UpdateKind | None]] = {None: None} | {k.value: k for k in UpdateKind}


def _update_in(pair: Any) -> TableUpdate:
    if not isinstance(pair, list) or len(pair) != 2:
        raise ProtocolError("a table update must be [table, kind]")
    table, kind = pair
    if type(kind) not in (str, type(None)) or kind not in _KINDS:
        raise ProtocolError(f"unknown update kind {kind!r}")
    return TableUpdate(_str(table), _KINDS[kind])


def _notify_in(f: list[Any], limits: Limits) -> Notify:
    database, origin, sequence, epoch, everything, updates = f
    if not isinstance(updates, list):
        raise ProtocolError("updates must be an array")
    message = NotifyTablesUpdated(
        database=_str(database),
        origin=_str(origin),
        sequence=_id(sequence),
        updates=frozenset(_update_in(u) for u in updates),
        everything=_bool(everything),
    )
    return Notify(message, _name(epoch))


def _request_in(f: list[Any], limits: Limits) -> Request:
    request_id, op, args = f
    if type(args) not in (list, dict):
        raise ProtocolError("request args must be an array or a map")
    return Request(_id(request_id), _name(op), _check_value(args, limits))


def _event_in(f: list[Any], limits: Limits) -> Event:
    subscription_id, kind, value, error = f
    try:
        event_kind = EventKind(kind) if type(kind) is str else None
    except ValueError:
        event_kind = None
    if event_kind is None:
        raise ProtocolError(f"unknown event kind {kind!r}")
    info = None
    if error is not None:
        if not isinstance(error, list) or len(error) != 5:
            raise ProtocolError("an event's error must be an array of 5 fields")
        info = _error_in(error)
    if (info is not None) != (event_kind is EventKind.ERROR):
        raise ProtocolError("an event carries an error exactly when its kind is 'error'")
    return Event(_id(subscription_id), event_kind, _check_value(value, limits), info)


_DECODERS: Final[dict[str, tuple[int, Callable[[list[Any], Limits], Message]]]] = {
    "hello": (4, _hello_in),
    "welcome": (
        3,
        lambda f, _: Welcome(_id(f[0]), _name(f[1]), _opt(_str, f[2])),
    ),
    "refused": (1, lambda f, _: Refused(_str(f[0]))),
    "notify": (6, _notify_in),
    "request": (3, _request_in),
    "response": (2, lambda f, lim: Response(_id(f[0]), _check_value(f[1], lim))),
    "failure": (6, lambda f, _: Failure(_id(f[0]), _error_in(f[1:]))),
    "event": (4, _event_in),
    "ping": (1, lambda f, _: Ping(_int(f[0]))),
    "pong": (1, lambda f, _: Pong(_int(f[0]))),
    "goodbye": (1, lambda f, _: Goodbye(_str(f[0]))),
}
