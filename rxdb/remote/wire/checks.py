"""The checks every decoder of peer data shares: msgpack unpacking under :class:`Limits`, and
field checks that raise :class:`~rxdb.errors.ProtocolError` for anything unexpected.

Nothing from a peer is trusted to be well-formed: a wrong type, an integer out of range or a
text over its length is refused here, before any of it reaches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import msgpack  # type: ignore[import-untyped]

from rxdb.errors import ProtocolError
from rxdb.remote.wire.frames import DEFAULT_MAX_PAYLOAD

__all__ = (
    "DEFAULT_LIMITS",
    "INT_MAX",
    "INT_MIN",
    "Limits",
    "check_bool",
    "check_int",
    "check_scalar",
    "check_str",
    "optional",
    "unpack",
)

T = TypeVar("T")

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1


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


def unpack(data: bytes, limits: Limits, ext_hook: Callable[[int, bytes], Any] | None = None) -> Any:
    """Decode one msgpack document; without ``ext_hook``, leniently: text stays bytes, map
    keys may be anything hashable, extension values stay ``msgpack.ExtType`` (to read what
    can still be read of a document the strict decoding refused).

    :raises ProtocolError: for malformed msgpack, invalid UTF-8 or anything over ``limits``.
    """
    # Every cap is also bounded by the data's own length, as msgpack's own defaults are:
    # a 6-byte array header must not preallocate room for four billion items.
    size = len(data)
    strict = ext_hook is not None
    try:
        return msgpack.unpackb(
            data,
            raw=not strict,
            use_list=True,
            strict_map_key=strict,
            ext_hook=ext_hook or msgpack.ExtType,
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


def check_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ProtocolError(f"expected bool, got {type(value).__name__}")
    return value


def check_scalar(value: Any) -> Any:
    """A SQL value: ``None``, a 64-bit integer, a float, text, bytes (or a bool)."""
    kind = type(value)
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise ProtocolError(f"integer {value} is outside SQLite's 64-bit range")
    elif value is not None and kind not in (str, bytes, float, bool):
        raise ProtocolError(f"unexpected value of type {kind.__name__}")
    return value


def optional(check: Callable[[Any], T], value: Any) -> T | None:
    return None if value is None else check(value)
