"""The wire protocol: frames, messages, exact values, error mapping, and a decoder fuzz."""

from __future__ import annotations

import contextlib
import math
import struct
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rxdb
from rxdb._types import BackupProgress
from rxdb.errors import (
    BusyError,
    ClosedError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
    ProtocolError,
    RemoteError,
    RxdbError,
)
from rxdb.remote.client import answers
from rxdb.remote.wire.checks import Limits
from rxdb.remote.wire.endpoint import Endpoint
from rxdb.remote.wire.errors import ErrorInfo, error_from_wire, error_to_wire
from rxdb.remote.wire.frames import (
    DEFAULT_MAX_PAYLOAD,
    HEADER_SIZE,
    MAGIC,
    FrameDecoder,
    encode_frame,
)
from rxdb.remote.wire.messages import (
    PROTOCOL_VERSION,
    BadRequest,
    Event,
    EventKind,
    Failure,
    Goodbye,
    Hello,
    Message,
    Notify,
    Ping,
    Pong,
    Refused,
    Request,
    Response,
    UnsupportedVersionError,
    Welcome,
    decode_message,
    encode_message,
    new_token,
    tokens_match,
)
from rxdb.remote.wire.operations import (
    Backup,
    Begin,
    Compute,
    End,
    Execute,
    ExecuteMany,
    ExecuteScript,
    FetchAll,
    FetchOne,
    Interrupt,
    NotifyUpdates,
    OpenFile,
    OpenRead,
    Operation,
    TableUpdates,
    TrackForeignWrites,
    Unsubscribe,
    UntrackForeignWrites,
    Watch,
    WatchMany,
)
from rxdb.remote.wire.states import state_from_wire, state_to_wire
from rxdb.rows import ExecuteResult, Row, row_class
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind
from rxdb.watch.states import WatchState

# A few hundred examples where they are cheap, fewer where generation is slow: the whole
# file should run in about a second.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAD = bytes((0x94, PROTOCOL_VERSION))  # a msgpack array of 4 that starts with the version
SMALL = Limits(max_str_len=256, max_bin_len=256, max_array_len=64, max_map_len=16, max_depth=8)


def roundtrip(message: Message) -> Message:
    decoder = FrameDecoder()
    (payload,) = decoder.feed(encode_frame(encode_message(message)))
    return decode_message(payload)


def same(a: Any, b: Any) -> bool:
    """Equal, of the same type, and floats equal bit for bit (so nan == nan, 0.0 != -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, Row):
        return a.keys() == b.keys() and all(map(same, a, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, ExecuteResult):
        return (a.rowcount, a.last_insert_rowid) == (b.rowcount, b.last_insert_rowid) and same(
            a.rows, b.rows
        )
    return bool(a == b)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


NOTIFY = NotifyTablesUpdated(
    database="/tmp/app.db",  # a name, never opened
    origin="p1",
    sequence=7,
    updates=frozenset({TableUpdate("t", UpdateKind.INSERT), TableUpdate("u")}),
)


def sample_operations() -> list[Operation]:
    return [
        Execute("INSERT INTO t VALUES (?, ?)", [1, b"x"], None),
        Execute("INSERT INTO t VALUES (:a)", {"a": -0.0}, 3),
        ExecuteMany("INSERT INTO t VALUES (?)", [[1], [None], ["x"]], None),
        ExecuteScript("CREATE TABLE t(x); INSERT INTO t VALUES (1);", 2),
        FetchAll("SELECT :a", {"a": None}, None),
        FetchOne("SELECT ?", [2**63 - 1], 1),
        Begin("immediate", None),
        Begin("exclusive", 4),
        OpenRead(True, None),
        OpenRead(False, 2),
        End(1, False),
        Interrupt(),
        Backup("/srv/copy.db", -1, 7, None),
        Watch(5, "SELECT count(*) FROM t", [], True, False, False),
        Watch(5, "SELECT count(*) FROM t", [], False, True, True),
        WatchMany(
            8,
            [("n", "SELECT count(*) FROM t", []), ("u", "SELECT :a", {"a": 1})],
            True,
            True,
            False,
        ),
        TableUpdates(6, ["t", "u"], [UpdateKind.INSERT, UpdateKind.DELETE]),
        TableUpdates(6, None, None),
        Unsubscribe(5),
        NotifyUpdates([TableUpdate("t"), TableUpdate("u", UpdateKind.UPDATE)]),
        TrackForeignWrites(),
        UntrackForeignWrites(),
        Compute("pkg.mod:fn", [1, "a", [b"x"], {"k": None}], Endpoint("unix", "/run/s.sock")),
        Compute("pkg.mod:fn", [], Endpoint("tcp", "[::1]:8080", "00ff", "inventory")),
        Compute("pkg.mod:fn", [], OpenFile("/srv/app.db", {"readers": 2, "foreign_poll": None})),
    ]


def sample_messages() -> list[Message]:
    cls = row_class(("id", "name", "blob"))
    rows = [cls((1, "a", b"\x00")), cls((2, None, b""))]
    info = ErrorInfo("IntegrityError", "UNIQUE failed", 2067, "SQLITE_CONSTRAINT_UNIQUE", "X")
    return [
        Hello(b"secret", "client", 123, "e1"),
        Hello(None, "bus", 0, "e2"),
        Welcome(9, "hub-epoch", "/tmp/app.db"),  # a name, never opened
        Refused("bad token"),
        Notify(NOTIFY, "e1"),
        Notify(NotifyTablesUpdated("db", "o", 1, everything=True), "e1"),
        Notify(NotifyTablesUpdated("db", "o", 2, wal_changes=(2**32 - 1, 0)), "e1"),
        *(Request(i, op) for i, op in enumerate(sample_operations(), 1)),
        Response(1, ExecuteResult(1, 5, [])),
        Response(2, rows),
        Response(3, rows[0]),
        Response(4, None),
        Response(5, ExecuteResult(2, None, rows)),
        Failure(3, info),
        Event(4, EventKind.NEXT, rows),
        Event(4, EventKind.NEXT, NOTIFY),
        Event(4, EventKind.NEXT, BackupProgress(3, 10)),
        Event(4, EventKind.ERROR, None, info),
        Event(4, EventKind.COMPLETE),
        Ping(-1),
        Pong(2**63 - 1),
        Goodbye("shutdown"),
    ]


# ---------------------------------------------------------------------------------------


class TestFrames:
    def test_frame_header_is_magic_version_and_big_endian_length(self) -> None:
        assert encode_frame(b"abc") == MAGIC + b"\x01" + b"\x00\x00\x00\x03abc"
        assert HEADER_SIZE == 8

    def test_frames_split_at_every_boundary_decode_the_same(self) -> None:
        payloads = [b"a", b"hello" * 10, bytes(range(256))]
        stream = b"".join(encode_frame(p) for p in payloads)
        for cut in range(len(stream) + 1):
            decoder = FrameDecoder()
            got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
            assert got == payloads, cut
            assert decoder.pending == 0

    def test_frames_fed_one_byte_at_a_time_decode_the_same(self) -> None:
        payloads = [b"x" * 3, b"y" * 300]
        stream = b"".join(encode_frame(p) for p in payloads)
        decoder = FrameDecoder()
        got = [p for i in range(len(stream)) for p in decoder.feed(stream[i : i + 1])]
        assert got == payloads

    def test_truncated_payload_stays_pending_until_the_rest_arrives(self) -> None:
        frame = encode_frame(b"0123456789")
        decoder = FrameDecoder()
        assert decoder.feed(frame[:-1]) == []
        assert decoder.pending == len(frame) - 1
        assert decoder.feed(frame[-1:]) == [b"0123456789"]

    def test_oversized_length_is_rejected_from_the_header_alone(self) -> None:
        decoder = FrameDecoder(max_payload=1000)
        header = MAGIC + b"\x01" + (1001).to_bytes(4, "big")
        with pytest.raises(ProtocolError, match="over the limit of 1000"):
            decoder.feed(header)

    def test_default_limit_refuses_a_four_gigabyte_declaration(self) -> None:
        with pytest.raises(ProtocolError, match=str(DEFAULT_MAX_PAYLOAD)):
            FrameDecoder().feed(MAGIC + b"\x01\xff\xff\xff\xff")

    def test_wrong_magic_is_rejected_at_its_first_byte(self) -> None:
        with pytest.raises(ProtocolError, match="not an rxdb frame"):
            FrameDecoder().feed(b"G")  # "GET / HTTP/1.1" from a confused client

    def test_wrong_frame_version_is_rejected(self) -> None:
        with pytest.raises(ProtocolError, match="frame version 2"):
            FrameDecoder().feed(MAGIC + b"\x02")

    def test_empty_frame_is_rejected(self) -> None:
        with pytest.raises(ProtocolError, match="empty"):
            FrameDecoder().feed(MAGIC + b"\x01\x00\x00\x00\x00")
        with pytest.raises(ProtocolError):
            encode_frame(b"")

    def test_decoder_stays_broken_after_an_error(self) -> None:
        decoder = FrameDecoder()
        with pytest.raises(ProtocolError):
            decoder.feed(b"garbage")
        with pytest.raises(ProtocolError, match="already broken"):
            decoder.feed(encode_frame(b"fine"))

    def test_limit_can_be_raised_after_the_handshake(self) -> None:
        decoder = FrameDecoder(max_payload=16)
        assert decoder.feed(encode_frame(b"x" * 16)) == [b"x" * 16]
        decoder.max_payload = 64
        assert decoder.feed(encode_frame(b"y" * 64)) == [b"y" * 64]


class TestMessages:
    @pytest.mark.parametrize("message", sample_messages(), ids=lambda m: type(m).__name__)
    def test_every_message_round_trips(self, message: Message) -> None:
        back = roundtrip(message)
        assert back == message
        assert type(back) is type(message)

    def test_messages_carry_version_and_tag(self) -> None:
        assert msgpack.unpackb(encode_message(Ping(5))) == [PROTOCOL_VERSION, "ping", 5]

    def test_other_protocol_version_is_refused_with_its_own_error(self) -> None:
        with pytest.raises(UnsupportedVersionError) as caught:
            decode_message(msgpack.packb([PROTOCOL_VERSION + 1, "ping", 5]))
        assert caught.value.version == PROTOCOL_VERSION + 1
        assert isinstance(caught.value, ProtocolError)

    def test_other_version_is_recognised_even_when_the_rest_is_unreadable(self) -> None:
        future = msgpack.packb([99, "hello", msgpack.ExtType(42, b"?")]) + b"trailing"
        with pytest.raises(UnsupportedVersionError, match="version 99"):
            decode_message(future)

    @pytest.mark.parametrize(
        "fields",
        [
            [PROTOCOL_VERSION, "teleport", 5],  # unknown tag
            [PROTOCOL_VERSION, "ping"],  # missing field
            [PROTOCOL_VERSION, "ping", 5, 6],  # extra field
            [PROTOCOL_VERSION, "ping", True],  # bool is not an int
            [PROTOCOL_VERSION, "ping", 2**63],  # outside int64
            [PROTOCOL_VERSION, "request", -1, ["interrupt"]],  # negative id
            [PROTOCOL_VERSION, "request", 1, ["interrupt"], 2],  # extra field
            [PROTOCOL_VERSION, "welcome", 1, "e"],  # the database missing
            [PROTOCOL_VERSION, "hello", "token-as-str", "client", 1, "e"],
            [PROTOCOL_VERSION, "hello", b"x" * 2000, "client", 1, "e"],  # token too long
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, 1, [], None]],  # not a bool
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, False, [["t", "upsert"]], None]],
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, False, [["t", ["insert"]]], None]],
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, False, [], [1]]],  # wal: one value
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, False, [], [1, 2**32]]],  # > u32
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, False, [], [1, True]]],
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", 1, False, []]],  # wal missing
            [PROTOCOL_VERSION, "notify", "e", ["db", "o", -1, False, [], None]],  # sequence < 0
            [PROTOCOL_VERSION, "notify", "", ["db", "o", 1, False, [], None]],  # empty epoch
            [PROTOCOL_VERSION, "event", 1, "next", None, ["IntegrityError", "m", None, None, None]],
            [PROTOCOL_VERSION, "event", 1, "error", None, None],
            [PROTOCOL_VERSION, "event", 1, "explode", None, None],
            [PROTOCOL_VERSION, "response", 1, nested(40)],  # deeper than max_depth
            "not an array",
            [],
        ],
    )
    def test_malformed_messages_raise_protocol_error(self, fields: Any) -> None:
        with pytest.raises(ProtocolError):
            decode_message(msgpack.packb(fields, use_bin_type=True))

    def test_trailing_bytes_after_a_message_are_refused(self) -> None:
        with pytest.raises(ProtocolError):
            decode_message(encode_message(Ping(1)) + b"\xc0")

    def test_non_str_map_keys_are_refused(self) -> None:
        with pytest.raises(ProtocolError):
            decode_message(msgpack.packb([PROTOCOL_VERSION, "response", 1, {1: 2}]))
        with pytest.raises(ProtocolError):
            decode_message(
                msgpack.packb([PROTOCOL_VERSION, "response", 1, {b"k": 2}], use_bin_type=True)
            )
        with pytest.raises(ProtocolError):
            encode_message(Response(1, {1: 2}))

    def test_unknown_and_nested_extensions_are_refused(self) -> None:
        with pytest.raises(ProtocolError, match="unknown extension"):
            decode_message(
                msgpack.packb([PROTOCOL_VERSION, "response", 1, msgpack.ExtType(9, b"\x90")])
            )
        row = msgpack.ExtType(1, msgpack.packb([["a"], [1]]))
        outer = msgpack.ExtType(1, msgpack.packb([["a"], [row]]))
        with pytest.raises(ProtocolError, match="cannot nest"):
            decode_message(msgpack.packb([PROTOCOL_VERSION, "response", 1, outer]))

    def test_msgpack_timestamps_are_refused(self) -> None:
        # fixext4 with type -1: msgpack decodes it to a Timestamp before our hook sees it.
        payload = HEAD + b"\xa8response\x01\xd6\xff\x00\x00\x00\x01"
        with pytest.raises(ProtocolError):
            decode_message(payload)

    def test_a_message_cannot_mint_unbounded_row_classes(self) -> None:
        rows = [row_class((f"c{i}",))((i,)) for i in range(65)]
        payload = encode_message(Response(1, rows))  # mixed shapes travel one by one
        with pytest.raises(ProtocolError, match="more than 64 sets of column names"):
            decode_message(payload)
        assert roundtrip(Response(1, rows[:64])) == Response(1, rows[:64])

    def test_rows_with_the_wrong_width_are_refused(self) -> None:
        ext = msgpack.ExtType(2, msgpack.packb([["a", "b"], [[1, 2], [3]]]))
        with pytest.raises(ProtocolError, match="array of 2 values"):
            decode_message(msgpack.packb([PROTOCOL_VERSION, "response", 1, ext]))

    def test_unknown_types_are_refused_when_encoding(self) -> None:
        with pytest.raises(ProtocolError, match="type object"):
            encode_message(Response(1, object()))
        with pytest.raises(ProtocolError, match="type set"):
            encode_message(Request(1, Compute("m:f", [{1, 2}], Endpoint("unix", "/s"))))


class TestValues:
    @pytest.mark.parametrize(
        "value",
        [
            None,
            0,
            -(2**63),
            2**63 - 1,
            -0.0,
            0.0,
            math.inf,
            -math.inf,
            math.nan,
            struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0],  # NaN with a payload
            5e-324,
            "",
            b"",
            "\x00é😀",
            b"\x00\xff",
            True,
        ],
        ids=repr,
    )
    def test_sql_values_round_trip_exactly(self, value: Any) -> None:
        back = roundtrip(Response(1, [value]))
        assert isinstance(back, Response)
        assert same(back.result, [value])

    def test_str_and_bytes_stay_distinct(self) -> None:
        back = roundtrip(Response(1, ["abc", b"abc"]))
        assert isinstance(back, Response)
        assert [type(v) for v in back.result] == [str, bytes]

    @pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, 2**100])
    def test_integers_outside_sqlite_range_are_refused_not_changed(self, value: int) -> None:
        with pytest.raises(ProtocolError, match="64-bit range"):
            encode_message(Response(1, value))
        row = row_class(("x",))((value,))
        with pytest.raises(ProtocolError):
            encode_message(Response(1, [row]))

    def test_unsigned_64_bit_integers_from_a_peer_are_refused(self) -> None:
        # msgpack can carry 2**63..2**64-1 (uint64); SQLite cannot store them.
        with pytest.raises(ProtocolError, match="64-bit range"):
            decode_message(msgpack.packb([PROTOCOL_VERSION, "response", 1, 2**64 - 1]))

    def test_lone_surrogates_are_refused_both_ways(self) -> None:
        with pytest.raises(ProtocolError, match="surrogate"):
            encode_message(Response(1, "a\ud800b"))
        with pytest.raises(ProtocolError, match="surrogate"):
            encode_message(Response(1, [row_class(("x",))(("\udfff",))]))
        encoded_surrogate = HEAD + b"\xa8response\x01\xa3\xed\xa0\x80"
        with pytest.raises(ProtocolError, match="UTF-8"):
            decode_message(encoded_surrogate)

    def test_tuples_arrive_as_lists_and_bytearrays_as_bytes(self) -> None:
        args = [(1, 2), bytearray(b"x"), memoryview(b"y")]
        back = roundtrip(Request(1, Compute("m:f", args, Endpoint("unix", "/s"))))
        assert isinstance(back, Request)
        assert isinstance(back.operation, Compute)
        assert back.operation.args == [[1, 2], b"x", b"y"]

    def test_rows_keep_their_column_names(self) -> None:
        cls = row_class(("id", "Name"))
        back = roundtrip(Response(1, [cls((1, "a"))]))
        assert isinstance(back, Response)
        (row,) = back.result
        assert isinstance(row, Row)
        assert row.keys() == ("id", "Name")
        assert row["name"] == "a"
        assert row == (1, "a")

    def test_mixed_rows_travel_one_by_one(self) -> None:
        a = row_class(("a",))((1,))
        b = row_class(("b",))((2,))
        back = roundtrip(Response(1, [a, b, 3]))
        assert isinstance(back, Response)
        assert same(back.result, [a, b, 3])

    @SOME
    @given(
        st.lists(
            st.none()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text()
            | st.binary(),
            max_size=8,
        )
    )
    def test_any_sql_values_round_trip_exactly(self, values: list[Any]) -> None:
        back = roundtrip(Response(1, values))
        assert isinstance(back, Response)
        assert same(back.result, values)

    @SOME
    @given(st.data())
    def test_any_rows_round_trip_exactly(self, data: st.DataObject) -> None:
        names = tuple(data.draw(st.lists(st.text(max_size=5), max_size=4)))
        scalar = (
            st.none()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats()
            | st.text(max_size=8)
            | st.binary(max_size=8)
        )
        row = st.tuples(*[scalar] * len(names)).map(row_class(names))
        rows = data.draw(st.lists(row, max_size=5))
        back = roundtrip(Response(1, ExecuteResult(len(rows), None, rows)))
        assert isinstance(back, Response)
        assert same(back.result, ExecuteResult(len(rows), None, rows))


class TestErrors:
    def test_integrity_error_comes_back_as_integrity_error(self) -> None:
        error = IntegrityError(
            "UNIQUE constraint failed: t.id",
            sql="INSERT INTO t VALUES (1)",
            sqlite_errorcode=2067,
            sqlite_errorname="SQLITE_CONSTRAINT_UNIQUE",
        )
        back = roundtrip(Failure(1, error_to_wire(error)))
        assert isinstance(back, Failure)
        rebuilt = error_from_wire(back.error)
        assert type(rebuilt) is IntegrityError
        assert rebuilt.sql == "INSERT INTO t VALUES (1)"
        assert rebuilt.sqlite_errorcode == 2067
        assert rebuilt.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
        assert str(rebuilt) == str(error)

    @pytest.mark.parametrize("error", [BusyError("locked"), ClosedError("closed"), RxdbError()])
    def test_rxdb_errors_keep_their_class(self, error: RxdbError) -> None:
        assert type(error_from_wire(error_to_wire(error))) is type(error)

    def test_subclasses_travel_as_their_nearest_rxdb_class(self) -> None:
        class Custom(OperationalError):
            pass

        info = error_to_wire(Custom("x", sqlite_errorcode=1))
        assert info.error_type == "OperationalError"
        assert type(error_from_wire(info)) is OperationalError

    def test_foreign_errors_become_remote_errors(self) -> None:
        rebuilt = error_from_wire(error_to_wire(ValueError("bad")))
        assert isinstance(rebuilt, RemoteError)
        assert rebuilt.error_type == "ValueError"
        assert str(rebuilt) == "ValueError: bad"
        assert error_to_wire(rebuilt) == error_to_wire(ValueError("bad"))

    def test_error_type_names_are_never_looked_up_outside_the_table(self) -> None:
        for name in ("os.system", "builtins.eval", "__import__", "SystemExit", "Row"):
            assert type(error_from_wire(ErrorInfo(name, "x"))) is RemoteError

    def test_long_error_texts_are_clipped(self) -> None:
        info = error_to_wire(OperationalError("x" * 100_000, sql="S" * 100_000))
        assert len(info.message) <= 64 * 1024
        assert info.sql is not None
        assert len(info.sql) <= 64 * 1024


class TestTokens:
    def test_tokens_match_only_themselves(self) -> None:
        token = new_token()
        assert len(token) == 32
        assert tokens_match(token, bytes(token))
        assert not tokens_match(token, token[:-1])
        assert not tokens_match(token, token + b"\x00")
        assert not tokens_match(token, new_token())
        assert not tokens_match(token, None)
        assert not tokens_match(token, b"")


class TestFuzz:
    """Whatever a peer sends, only ProtocolError comes out: the server never crashes on it."""

    @FUZZ
    @given(st.lists(st.binary(max_size=64), max_size=8))
    def test_garbage_into_the_frame_decoder_raises_only_protocol_error(
        self, chunks: list[bytes]
    ) -> None:
        decoder = FrameDecoder(max_payload=256)
        try:
            for chunk in chunks:
                for payload in decoder.feed(chunk):
                    assert len(payload) <= 256
                    decode_message(payload, SMALL)
        except ProtocolError:
            pass

    @FUZZ
    @given(st.binary(max_size=256))
    def test_garbage_into_decode_message_raises_only_protocol_error(self, data: bytes) -> None:
        with contextlib.suppress(ProtocolError):
            decode_message(data, SMALL)

    @SOME
    @given(
        st.sampled_from(sample_messages()),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    )
    def test_mutated_frames_raise_only_protocol_error(
        self, message: Message, flips: list[tuple[int, int]]
    ) -> None:
        frame = bytearray(encode_frame(encode_message(message)))
        for position, value in flips:
            frame[position % len(frame)] = value
        decoder = FrameDecoder(max_payload=4096)
        try:
            for payload in decoder.feed(bytes(frame)):
                decode_message(payload, SMALL)
        except ProtocolError:
            pass

    @SOME
    @given(
        st.sampled_from(["hello", "welcome", "notify", "request", "response", "failure", "event"]),
        st.lists(
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**64), 2**64 - 1)
                | st.floats()
                | st.text(max_size=8)
                | st.binary(max_size=8)
                | st.sampled_from(["insert", "next", "error", "IntegrityError"]),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3)
                ),
                max_leaves=8,
            ),
            max_size=7,
        ),
    )
    def test_well_formed_msgpack_with_wrong_fields_raises_only_protocol_error(
        self, tag: str, fields: list[Any]
    ) -> None:
        try:
            payload = msgpack.packb([PROTOCOL_VERSION, tag, *fields], use_bin_type=True)
        except OverflowError:  # msgpack cannot even carry ints below -2**63
            return
        with contextlib.suppress(ProtocolError):
            decode_message(payload, SMALL)


class TestOperations:
    @pytest.mark.parametrize("operation", sample_operations(), ids=lambda o: type(o).__name__)
    def test_every_operation_round_trips_as_its_own_class(self, operation: Operation) -> None:
        back = roundtrip(Request(7, operation))
        assert isinstance(back, Request)
        assert type(back.operation) is type(operation)
        assert back.operation == operation

    @pytest.mark.parametrize(
        "operation",
        [
            Execute(123, [], None),  # type: ignore[arg-type]
            Execute("SELECT ?", [[1]], None),  # a parameter that is no SQL value
            Execute("SELECT ?", [object()], None),
            Execute("SELECT :a", {1: 2}, None),  # type: ignore[dict-item]
            Execute("SELECT 1", (1,), None),  # type: ignore[arg-type]
            FetchAll("SELECT 1", [], "block"),  # type: ignore[arg-type]
            Begin("sometimes", None),  # type: ignore[arg-type]
            OpenRead(1, None),  # type: ignore[arg-type]
            Backup("/srv/x.db", 2**40, None, None),
            Backup("/srv/x.db", True, None, None),
            TableUpdates(1, None, ["insert"]),  # type: ignore[list-item]
            Compute("m:f", [], "/srv/app.db"),  # type: ignore[arg-type]
        ],
        ids=repr,
    )
    def test_fields_of_the_wrong_type_are_refused_before_they_are_sent(
        self, operation: Operation
    ) -> None:
        with pytest.raises(ProtocolError):
            encode_message(Request(1, operation))

    @pytest.mark.parametrize(
        "fields",
        [
            ["execute", "SELECT 1", [], None, None],  # a field too many
            ["execute", "SELECT 1", []],  # a field missing
            ["execute", b"SELECT 1", [], None],  # the SQL as bytes
            ["execute", "SELECT ?", [[1]], None],
            ["execute", "SELECT ?", "1", None],
            ["execute", "SELECT 1", [], -1],  # a negative block id
            ["execute_many", "SELECT ?", [[1], 2], None],
            ["begin", "sometimes", None],
            ["begin", 1, None],
            ["read", 1, None],
            ["end", 1, None],
            ["backup", "/x.db", -(2**31) - 1, None, None],
            ["watch", -1, "SELECT 1", [], True, False, False],
            ["watch", 1, "SELECT 1", [], True],  # recover and states missing
            ["watch", 1, "SELECT 1", [], True, 1, False],  # recover not a bool
            ["watch_many", 1, [], True, False, False],  # no queries
            ["watch_many", 1, [["n", "SELECT 1"]], True, False, False],  # no params
            ["watch_many", 1, [["n", "SELECT 1", []], ["n", "SELECT 2", []]], True, False, False],
            ["watch_many", 1, [[1, "SELECT 1", []]], True, False, False],  # a name not text
            ["watch_many", 1, "SELECT 1", True, False, False],
            ["table_updates", 1, "t", None],
            ["table_updates", 1, [1], None],
            ["table_updates", 1, None, ["upsert"]],
            ["notify_updates", [["t", "upsert"]]],
            ["notify_updates", "t"],
            ["compute", "", [], ["file", "/x.db", {}]],  # no function
            ["compute", "m:f", "args", ["file", "/x.db", {}]],
            ["compute", "m:f", [], ["file", "/x.db"]],
            ["compute", "m:f", [], ["server", "udp", "/s", None, None]],
            ["compute", "m:f", [], ["server", "tcp", "nohost", None, None]],
            ["compute", "m:f", [], ["server", "unix", "/s", "not hex", None]],
            ["compute", "m:f", [], ["elsewhere"]],
            [7],
            "execute",
            [],  # no operation
            ["teleport"],  # unknown operation
        ],
        ids=repr,
    )
    def test_malformed_operations_decode_as_a_bad_request(self, fields: Any) -> None:
        """The frame is whole and its id readable: the request fails alone."""
        payload = msgpack.packb([PROTOCOL_VERSION, "request", 1, fields], use_bin_type=True)
        bad = decode_message(payload)
        assert isinstance(bad, BadRequest)
        assert bad.id == 1
        assert bad.reason

    @SOME
    @given(
        st.sampled_from(
            [
                *("execute", "fetch_all", "begin", "read", "end", "backup", "watch", "compute"),
                "watch_many",
                *("table_updates", "notify_updates", "unsubscribe", "execute_many"),
            ]
        ),
        st.lists(
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers(-(2**63), 2**63 - 1)
                | st.text(max_size=8)
                | st.binary(max_size=8),
                lambda inner: st.lists(inner, max_size=3),
                max_leaves=6,
            ),
            max_size=6,
        ),
    )
    def test_any_fields_for_an_operation_raise_only_protocol_error(
        self, tag: str, fields: list[Any]
    ) -> None:
        payload = msgpack.packb([PROTOCOL_VERSION, "request", 1, [tag, *fields]])
        with contextlib.suppress(ProtocolError):
            decode_message(payload, SMALL)


class TestTableUpdates:
    def test_notify_and_table_update_events_share_one_encoding(self) -> None:
        message = NotifyTablesUpdated("/srv/app.db", "o", 3, NOTIFY.updates, wal_changes=(4, 5))
        notify = msgpack.unpackb(encode_message(Notify(message, "e")))
        event = msgpack.unpackb(encode_message(Event(1, EventKind.NEXT, message)))
        ext = event[4]
        assert ext.code == 4
        assert msgpack.unpackb(ext.data) == notify[3]
        back = roundtrip(Event(1, EventKind.NEXT, message))
        assert isinstance(back, Event)
        assert back.value == message

    def test_equal_messages_encode_to_equal_bytes(self) -> None:
        updates = [TableUpdate(t, k) for t in "cab" for k in (None, *UpdateKind)]
        first = NotifyTablesUpdated("db", "o", 1, frozenset(updates))
        second = NotifyTablesUpdated("db", "o", 1, frozenset(reversed(updates)))
        assert encode_message(Notify(first, "e")) == encode_message(Notify(second, "e"))


class TestEndpoints:
    @pytest.mark.parametrize(
        "fields",
        [
            ("udp", "/s"),
            ("unix", ""),
            ("tcp", "localhost"),
            ("tcp", "localhost:http"),
            ("tcp", "localhost:70000"),
            ("tcp", ":80"),
            ("unix", "/s", "not hex"),
            ("unix", "/s", None, 7),
        ],
        ids=repr,
    )
    def test_a_malformed_endpoint_is_a_programming_error(self, fields: tuple[Any, ...]) -> None:
        with pytest.raises(ProgrammingError):
            Endpoint(*fields)

    def test_json_round_trips_and_is_checked(self) -> None:
        endpoint = Endpoint("tcp", "[::1]:8080", "00ff", "inventory")
        assert Endpoint.from_json(endpoint.to_json()) == endpoint
        malformed: list[Any] = [None, [], {"kind": "tcp"}, {"kind": "unix", "address": 7}]
        for data in malformed:
            with pytest.raises(ProgrammingError):
                Endpoint.from_json(data)

    def test_a_frame_decoder_needs_a_usable_limit(self) -> None:
        for limit in (0, -1, 2**32, 1.5):
            with pytest.raises(ProgrammingError, match="max_payload"):
                FrameDecoder(max_payload=limit)  # type: ignore[arg-type]


class TestWatchStates:
    """A watch's state as it travels (``rxdb/remote/wire/states.py``)."""

    def test_a_state_round_trips_through_a_message(self) -> None:
        cls = row_class(("n",))
        failure = rxdb.OperationalError("no such table: t", sql="SELECT n FROM t")
        for state in [
            WatchState("loading"),
            WatchState("live", [cls((1,))]),
            WatchState("refreshing", [cls((1,))], failure),
            WatchState("error", None, failure),
        ]:
            sent = state_to_wire(state, list)
            event = decode_message(encode_message(Event(3, EventKind.NEXT, sent)))
            assert isinstance(event, Event)
            back = state_from_wire(event.value, answers.rows)
            assert (back.phase, back.value) == (state.phase, state.value)
            if state.error is None:
                assert back.error is None
            else:
                assert isinstance(back.error, rxdb.OperationalError)
                assert str(state.error) in str(back.error)

    @pytest.mark.parametrize(
        "value",
        [
            "live",
            ["live", None],
            ["sleeping", None, None],
            [1, None, None],
            ["error", None, None],  # an error state without its error
            ["live", None, ["OperationalError", "x", None, None, None, None]],
            ["error", None, ["OperationalError"]],
            ["live", "not rows", None],
        ],
        ids=repr,
    )
    def test_a_malformed_state_is_a_protocol_error(self, value: Any) -> None:
        with pytest.raises(rxdb.ProtocolError):
            state_from_wire(value, answers.rows)
