"""The messages rxdb processes exchange, and their exact msgpack encoding.

Every message is a msgpack array ``[version, tag, *fields]``. Nothing from a peer is
trusted: every field is type- and range-checked, unknown tags and versions are refused,
no class is ever looked up by a name a peer sent, and anything wrong surfaces as a
:class:`~rxdb.errors.ProtocolError` (close that connection, keep serving others) -- except
in a whole request frame whose id can be read, which decodes as a :class:`BadRequest` (fail
that request alone).

A :class:`Request` carries one typed operation (:mod:`rxdb.remote.wire.operations`); the
values inside messages are encoded by :mod:`rxdb.remote.wire.values`, table updates by
:mod:`rxdb.remote.wire.updates`, and exceptions cross as :mod:`rxdb.remote.wire.errors` says.
"""

from __future__ import annotations

import enum
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import msgpack  # type: ignore[import-untyped]

from rxdb.errors import ProtocolError
from rxdb.remote.wire.checks import (
    DEFAULT_LIMITS,
    INT_MAX,
    Limits,
    check_int,
    check_str,
    unpack,
)
from rxdb.remote.wire.errors import ErrorInfo, info_from_wire, info_to_wire
from rxdb.remote.wire.updates import notify_from_wire, notify_to_wire
from rxdb.remote.wire.values import check_value, decode_ext, value_out
from rxdb.rows import Row
from rxdb.updates import NotifyTablesUpdated

if TYPE_CHECKING:
    from rxdb.remote.wire.operations import Operation

__all__ = (
    "PROTOCOL_VERSION",
    "BadRequest",
    "Event",
    "EventKind",
    "Failure",
    "Goodbye",
    "Hello",
    "Message",
    "Notify",
    "Ping",
    "Pong",
    "Refused",
    "Request",
    "Response",
    "UnsupportedVersionError",
    "Welcome",
    "decode_message",
    "encode_message",
    "encode_notify",
    "new_token",
    "tokens_match",
)

PROTOCOL_VERSION: Final = 6
"""2 -> 3: typed operations, ``Notify`` and table-updates events in one encoding, backup
progress as its own value, ``Welcome.database`` required. 3 -> 4: errors carry the SQLSTATE.
4 -> 5: ``watch`` carries ``recover`` and ``states``; ``watch_many``; state events.
5 -> 6: a table update may name the columns an ``UPDATE`` assigned (``[table, kind, columns]``)."""

_NOTIFY_HEAD: Final = bytes((0x94, PROTOCOL_VERSION, 0xA6)) + b"notify"
"""How a :class:`Notify`'s payload starts: an array of 4, the version, the tag."""
_SMALL: Final = min(
    DEFAULT_LIMITS.max_str_len,
    DEFAULT_LIMITS.max_bin_len,
    DEFAULT_LIMITS.max_array_len,
    DEFAULT_LIMITS.max_map_len,
)
"""Payloads up to this size are under every default limit (see :func:`decode_message`)."""
_REMEMBERED: Final = 512
"""The largest Notify payload whose update set is remembered, by its wire form: bounds what a
peer can make this process keep (:mod:`rxdb.remote.wire.updates` keeps a few dozen)."""

MAX_TOKEN_LEN: Final = 1024
MAX_NAME_LEN: Final = 256  # roles, epochs


class UnsupportedVersionError(ProtocolError):
    """Raised when a peer speaks another protocol version; answer :class:`Refused`, then close."""

    def __init__(self, version: object) -> None:
        super().__init__(
            f"protocol version {version!r} is not supported (this side speaks "
            f"{PROTOCOL_VERSION}); upgrade rxdb on both sides to the same release"
        )
        self.version = version


class EventKind(enum.Enum):
    """What an :class:`Event` reports about a subscription."""

    NEXT = "next"
    ERROR = "error"
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a connection (client -> server, member -> hub)."""

    token: bytes | None
    role: str
    process_id: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Welcome:
    """The handshake succeeded; ``database`` is what the server serves (or the hub's key)."""

    process_id: int
    epoch: str
    database: str


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
    """An operation asked of a server; ``id`` pairs it with its answer."""

    id: int
    operation: Operation


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A request whose id could be read but whose operation could not (a field of the wrong
    type or range, an integer over 64 bits, an unknown op...). Only ever decoded, never sent:
    the frame was whole, so the stream is still in step and the receiver can answer that one
    request with a failure and carry on."""

    id: int
    reason: str


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
    """Are you there? Answered by a :class:`Pong` with the same ``nonce``."""

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
    | BadRequest
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
    """Return a fresh random token for a server to demand from its clients."""
    return os.urandom(32)  # what secrets.token_bytes(32) returns


def tokens_match(expected: bytes, presented: bytes | None) -> bool:
    """Tell whether ``presented`` is ``expected``, in time independent of where they differ.

    Both sides are hashed first so that not even the length of the secret leaks.
    """
    import hmac  # here, once per handshake: a process that hosts the hub never needs it

    if presented is None:
        presented = b""
    return hmac.compare_digest(
        hashlib.sha256(expected).digest(), hashlib.sha256(presented).digest()
    )


# ---------------------------------------------------------------------------------------
# Encoding


def encode_message(message: Message) -> bytes:
    """Return the payload for ``message`` (frame it with :func:`encode_frame`).

    :raises ProtocolError: if a value cannot cross exactly: an integer outside SQLite's
        64-bit range, text with a lone surrogate (not valid UTF-8), an unknown type.
    """
    if type(message) is Notify:
        return encode_notify(message.message, message.epoch)
    encoder = _ENCODERS.get(type(message))
    if encoder is None:
        raise ProtocolError(f"not an rxdb message: {message!r}")
    return _pack([PROTOCOL_VERSION, *encoder(message)], type(message))


def encode_notify(message: NotifyTablesUpdated, epoch: str) -> bytes:
    """``encode_message(Notify(message, epoch))`` without the :class:`Notify`: a hub link
    sends one for every commit, and Python on that road runs cold.

    :raises ProtocolError: as :func:`encode_message`.
    """
    return _pack([PROTOCOL_VERSION, "notify", epoch, notify_to_wire(message)], Notify)


class _Packers(threading.local):
    """One msgpack packer per thread: ``msgpack.packb`` makes a new one per call, with a
    256 KiB buffer (malloc'd and freed each time: ~10 us of a commit's Notify, cold). A
    packer empties its buffer after each call, a failed one included."""

    def __init__(self) -> None:
        self.idle: Any = msgpack.Packer(use_bin_type=True)


_PACKERS: Final = _Packers()


def _pack(fields: list[Any], kind: type[Any]) -> bytes:
    packers = _PACKERS
    # Taken while in use: a packing re-entered on this thread (a finalizer the GC runs
    # mid-packing disposes of a remote subscription) gets a packer of its own.
    packer, packers.idle = packers.idle, None
    try:
        packed: bytes = (packer or msgpack.Packer(use_bin_type=True)).pack(fields)
    except UnicodeEncodeError as error:
        raise ProtocolError(
            f"text is not valid UTF-8 (a lone surrogate?) and cannot be sent: {error}"
        ) from error
    except (TypeError, ValueError, OverflowError) as error:
        raise ProtocolError(f"cannot encode {kind.__name__}: {error}") from error
    finally:
        packers.idle = packer
    return packed


def _operation_out(operation: Operation) -> Any:
    # Only clients and servers send requests: a hub, or a process alone with its file,
    # never loads the operations' schemas.
    from rxdb.remote.wire.operations import operation_to_wire

    return operation_to_wire(operation)


def _event_out(m: Event) -> list[Any]:
    error = None if m.error is None else info_to_wire(m.error)
    return [m.subscription_id, m.kind.value, value_out(m.value), error]


_ENCODERS: Final[dict[type[Any], Callable[[Any], list[Any]]]] = {
    Hello: lambda m: ["hello", m.token, m.role, m.process_id, m.epoch],
    Welcome: lambda m: ["welcome", m.process_id, m.epoch, m.database],
    Refused: lambda m: ["refused", m.reason],
    Request: lambda m: ["request", m.id, _operation_out(m.operation)],
    Response: lambda m: ["response", m.id, value_out(m.result)],
    Failure: lambda m: ["failure", m.id, *info_to_wire(m.error)],
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
    if payload.startswith(_NOTIFY_HEAD) and limits is DEFAULT_LIMITS and len(payload) <= _SMALL:
        # The hub's every message, decoded on every commit of another process (cold): the
        # leanest road. msgpack's own bounds are the payload's length, which is under every
        # default limit here, so it decodes as unpack() would; the only difference is an
        # extension value, refused below as a wrong type instead of by decode_ext. Anything
        # msgpack refuses takes the usual road, which reports it.
        try:
            # Tuples (hashable) from a small one: its updates are remembered (wire.updates).
            fields = msgpack.unpackb(payload, use_list=len(payload) > _REMEMBERED)
        except (ValueError, TypeError, OverflowError, msgpack.UnpackException):
            pass
        else:
            return _notify_in(fields[2:], limits)  # the head says: an array of 4
    # Read the version before decoding the rest, so that a newer peer whose message this
    # side cannot even parse still gets "other version" rather than "garbage".
    early = _peek_version(payload)
    if early is not None and early != PROTOCOL_VERSION:
        raise UnsupportedVersionError(early)
    shapes: dict[tuple[str, ...], type[Row]] = {}

    def ext_hook(code: int, body: bytes) -> Any:
        return decode_ext(code, body, limits, shapes)

    try:
        fields = unpack(payload, limits, ext_hook)
    except ProtocolError as error:
        request_id = _request_id(payload, limits)
        if request_id is None:
            raise
        return BadRequest(request_id, str(error))
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


def _request_id(payload: bytes, limits: Limits) -> int | None:
    """The id of the request ``payload`` holds, read leniently (text as bytes, any map key,
    extension values left as they are), or ``None`` if it is no request with a readable id.

    A request whose values msgpack refused (an integer over 64 bits, invalid UTF-8, a map
    key that is not text, a malformed extension value) is still a whole frame: its id is
    enough to fail it alone."""
    try:
        fields = unpack(payload, limits)
    except ProtocolError:
        return None
    if type(fields) is not list or len(fields) != 4:
        return None
    version, tag, request_id, _ = fields
    if type(version) is not int or version != PROTOCOL_VERSION or tag != b"request":
        return None
    return request_id if type(request_id) is int and 0 <= request_id <= INT_MAX else None


def _request_in(fields: list[Any], limits: Limits) -> Request | BadRequest:
    from rxdb.remote.wire.operations import operation_from_wire  # see _operation_out

    request_id = _id(fields[0])
    try:
        return Request(request_id, operation_from_wire(fields[1], limits))
    except ProtocolError as error:
        return BadRequest(request_id, str(error))


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


def _id(value: Any) -> int:
    return check_int(value, 0)


def _name(value: Any) -> str:
    text = check_str(value, MAX_NAME_LEN)
    if not text:
        raise ProtocolError("expected a non-empty name")
    return text


def _hello_in(f: list[Any], limits: Limits) -> Hello:
    token, role, process_id, epoch = f
    if token is not None and (type(token) is not bytes or len(token) > MAX_TOKEN_LEN):
        raise ProtocolError(f"a token must be at most {MAX_TOKEN_LEN} bytes")
    return Hello(token, _name(role), _id(process_id), _name(epoch))


def _notify_in(f: Sequence[Any], limits: Limits) -> Notify:
    return Notify(notify_from_wire(f[1]), _name(f[0]))


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
        if not isinstance(error, list) or len(error) != 6:
            raise ProtocolError("an event's error must be an array of 6 fields")
        info = info_from_wire(error)
    if (info is not None) != (event_kind is EventKind.ERROR):
        raise ProtocolError("an event carries an error exactly when its kind is 'error'")
    return Event(_id(subscription_id), event_kind, check_value(value, limits), info)


_DECODERS: Final[dict[str, tuple[int, Callable[[list[Any], Limits], Message]]]] = {
    "hello": (4, _hello_in),
    "welcome": (3, lambda f, _: Welcome(_id(f[0]), _name(f[1]), check_str(f[2]))),
    "refused": (1, lambda f, _: Refused(check_str(f[0]))),
    "notify": (2, _notify_in),
    "request": (2, _request_in),
    "response": (2, lambda f, lim: Response(_id(f[0]), check_value(f[1], lim))),
    "failure": (7, lambda f, _: Failure(_id(f[0]), info_from_wire(f[1:]))),
    "event": (4, _event_in),
    "ping": (1, lambda f, _: Ping(check_int(f[0]))),
    "pong": (1, lambda f, _: Pong(check_int(f[0]))),
    "goodbye": (1, lambda f, _: Goodbye(check_str(f[0]))),
}
