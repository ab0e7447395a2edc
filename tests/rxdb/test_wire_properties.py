"""Properties of the wire decoder, over any input Hypothesis can think of: whatever a peer
sends becomes a message, a request failed alone (``BadRequest``) or a ``ProtocolError`` --
never another exception, never a hang -- and whatever this side sends comes back exact.

The example-based cases, and the first fuzzers of raw bytes, are in test_protocol.py; these
add what those do not reach: extension values and non-text map keys anywhere, integers up to
2**64, a request's id surviving whatever its operation holds, any split of a byte stream,
the asyncio stream over arbitrary bytes, and errors whose text cannot be UTF-8.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxdb import errors
from rxdb.errors import ProtocolError
from rxdb.remote.wire.checks import Limits
from rxdb.remote.wire.errors import error_from_wire, error_to_wire
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
from rxdb.remote.wire.messages import (
    PROTOCOL_VERSION,
    BadRequest,
    Failure,
    Message,
    Request,
    Response,
    decode_message,
    encode_message,
)
from rxdb.remote.wire.operations import Execute, FetchAll, Watch
from rxdb.remote.wire.stream import FramedStream
from rxdb.rows import Row, row_class

# The whole file runs in a few seconds: a few hundred examples where they are cheap.
MANY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL = Limits(max_str_len=256, max_bin_len=256, max_array_len=64, max_map_len=16, max_depth=8)

TAGS = ["hello", "welcome", "refused", "notify", "request", "response", "failure", "event"]
TAGS += ["ping", "pong", "goodbye", "nonsense"]

SQL_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)

# What msgpack can carry, well beyond what the protocol takes: integers up to 2**64-1,
# extension values with any code and body, maps with keys that are not text.
EXT = st.builds(
    msgpack.ExtType,
    st.integers(0, 127),
    st.binary(max_size=12) | st.lists(SQL_VALUES, max_size=3).map(msgpack.packb),
)
WIRE_SCALARS = SQL_VALUES | st.integers(2**63, 2**64 - 1) | EXT
WIRE_KEYS = st.text(max_size=3) | st.integers(-5, 5) | st.binary(max_size=3)
WIRE = st.recursive(
    WIRE_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(WIRE_KEYS, inner, max_size=3),
    max_leaves=10,
)
OPERATION_TAGS = st.sampled_from(
    [
        *("execute", "execute_many", "execute_script", "fetch_all", "fetch_one", "begin"),
        *("read", "end", "interrupt", "backup", "watch", "table_updates", "unsubscribe"),
        *("notify_updates", "track_foreign_writes", "untrack_foreign_writes", "compute"),
    ]
)


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True, strict_types=False)
    return packed


def decodes_or_refuses(payload: bytes) -> Message | None:
    """The message, or ``None`` when it was refused as a ProtocolError (nothing else may
    escape)."""
    try:
        return decode_message(payload, SMALL)
    except ProtocolError:
        return None


@MANY
@given(st.sampled_from(TAGS), st.lists(WIRE, max_size=7))
def test_any_msgpack_fields_decode_or_raise_only_protocol_error(
    tag: str, fields: list[Any]
) -> None:
    decodes_or_refuses(pack([PROTOCOL_VERSION, tag, *fields]))


@MANY
@given(WIRE)
def test_any_msgpack_document_decodes_or_raises_only_protocol_error(value: Any) -> None:
    decodes_or_refuses(pack(value))


@MANY
@given(st.integers(0, 2**63 - 1), OPERATION_TAGS, st.lists(WIRE, max_size=6))
def test_a_request_with_a_readable_id_is_a_request_or_fails_alone(
    request_id: int, tag: str, fields: list[Any]
) -> None:
    """Whatever its operation holds, a whole request frame is answered: it never takes the
    connection down with it."""
    message = decode_message(pack([PROTOCOL_VERSION, "request", request_id, [tag, *fields]]))
    assert isinstance(message, Request | BadRequest)
    assert message.id == request_id


@MANY
@given(st.integers(0, 2**63 - 1), WIRE)
def test_any_operation_value_at_all_is_a_request_or_fails_alone(
    request_id: int, operation: Any
) -> None:
    message = decode_message(pack([PROTOCOL_VERSION, "request", request_id, operation]))
    assert isinstance(message, Request | BadRequest)
    assert message.id == request_id


@MANY
@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=6),
    st.lists(st.integers(0, 400), max_size=8),
)
def test_any_split_of_a_stream_gives_the_same_payloads(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(max_payload=64)
    received: list[bytes] = []
    for start, end in itertools.pairwise(points):
        received += decoder.feed(stream[start:end])
    assert received == payloads
    assert decoder.pending == 0


def _frames(payloads: list[bytes]) -> bytes:
    return b"".join(encode_frame(p) for p in payloads)


@SOME
@given(
    st.lists(
        st.binary(min_size=1, max_size=64)
        | st.builds(_frames, st.lists(st.binary(min_size=1, max_size=20), max_size=3))
        | st.builds(lambda n: b"RXD\x01" + struct.pack(">I", n), st.integers(0, 2**32 - 1)),
        max_size=6,
    )
)
def test_the_framed_stream_ends_or_refuses_whatever_the_bytes(chunks: list[bytes]) -> None:
    """Random bytes, whole frames and bare headers declaring any length, then the end of
    the stream: receiving returns messages, then ``None``, or raises ProtocolError -- and
    never waits for bytes that will not come."""

    async def receive_all() -> None:
        reader = asyncio.StreamReader()
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        stream = FramedStream(reader, cast(asyncio.StreamWriter, None), "fuzz", 1024)
        async with asyncio.timeout(5):
            try:
                while await stream.receive() is not None:
                    pass
            except ProtocolError:
                pass

    asyncio.run(receive_all())


ROW_NAMES = st.lists(st.text(max_size=4), max_size=3).map(tuple)


@st.composite
def rows(draw: st.DrawFn) -> Row:
    names = draw(ROW_NAMES)
    values = draw(st.tuples(*[SQL_VALUES] * len(names)))
    return row_class(names)(values)


VALUES = st.recursive(
    SQL_VALUES | rows(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type, floats bit for bit (nan == nan, 0.0 != -0.0)."""
    if isinstance(a, Row):
        return (
            type(b).__mro__[1:] == type(a).__mro__[1:]
            and a.keys() == b.keys()
            and same(list(a), list(b))
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def roundtrip(message: Message) -> Message:
    (payload,) = FrameDecoder().feed(encode_frame(encode_message(message)))
    return decode_message(payload)


@MANY
@given(VALUES)
def test_any_value_tree_round_trips_exactly(value: Any) -> None:
    back = roundtrip(Response(3, value))
    assert isinstance(back, Response)
    assert same(back.result, value)


PARAMS = st.lists(SQL_VALUES.filter(lambda v: type(v) is not bool), max_size=4) | (
    st.dictionaries(st.text(max_size=3), SQL_VALUES.filter(lambda v: type(v) is not bool))
)
BLOCKS = st.none() | st.integers(0, 2**63 - 1)


@MANY
@given(
    st.integers(0, 2**63 - 1),
    st.builds(Execute, st.text(max_size=20), PARAMS, BLOCKS)
    | st.builds(FetchAll, st.text(max_size=20), PARAMS, BLOCKS)
    | st.builds(Watch, st.integers(0, 2**63 - 1), st.text(max_size=20), PARAMS, st.booleans()),
)
def test_any_well_typed_operation_round_trips_as_itself(
    request_id: int, operation: Execute | FetchAll | Watch
) -> None:
    back = roundtrip(Request(request_id, operation))
    assert isinstance(back, Request)
    assert back.id == request_id
    assert type(back.operation) is type(operation)
    assert same(back.operation.params, operation.params)


ERROR_CLASSES = [
    errors.IntegrityError,
    errors.OperationalError,
    errors.ProgrammingError,
    errors.LimitError,
    errors.ClosedError,
    errors.RxdbError,
]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
@SOME
@given(st.text(st.characters(codec=None), max_size=20))
def test_any_error_text_crosses_as_its_class(cls: type[errors.RxdbError], text: str) -> None:
    """Error texts are diagnostics: one with a lone surrogate (a path decoded with
    surrogateescape, say) crosses escaped instead of failing to encode -- which would leave
    the request it answers unanswered for ever."""
    error: Exception
    error = cls(text, sql=text) if issubclass(cls, errors.DatabaseError) else cls(text)
    back = roundtrip(Failure(5, error_to_wire(error)))
    assert isinstance(back, Failure)
    rebuilt = error_from_wire(back.error)
    assert type(rebuilt) is cls
    if text.encode("utf-8", "surrogatepass").decode("utf-8", "ignore") == text:
        assert str(rebuilt) == str(error)
