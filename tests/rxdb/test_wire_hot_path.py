"""The hub's hot road through the wire code: a whole frame cut from one chunk, a Notify
encoded without its dataclass and decoded without the general road. Each must give exactly
what the general road gives, and refuse what it refuses."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import msgpack  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxdb.errors import ProtocolError
from rxdb.remote.wire.checks import Limits
from rxdb.remote.wire.frames import FrameDecoder, encode_frame
from rxdb.remote.wire.messages import (
    PROTOCOL_VERSION,
    Message,
    Notify,
    _pack,
    decode_message,
    encode_message,
    encode_notify,
)
from rxdb.updates import NotifyTablesUpdated, TableUpdate, UpdateKind

MESSAGE = NotifyTablesUpdated(
    "db",
    "1:o",
    7,
    frozenset({TableUpdate("t", UpdateKind.UPDATE, frozenset({"b", "a"})), TableUpdate("s")}),
    wal_changes=(3, 4),
)

NOTIFY_FIELDS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=4)
    | st.binary(max_size=4)
    | st.sampled_from(["update", "insert", "delete"])
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=6)),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=14,
)


UPDATE_FIELDS = st.lists(
    st.lists(
        st.sampled_from(["t", "s", "update", "insert", None, 1])
        | st.lists(st.sampled_from(["a", "b", 2, None]), max_size=3),
        max_size=4,
    ),
    max_size=3,
)
"""Update sets near the valid ones: most are refused, some by a single field."""


class TestFrames:
    def test_a_whole_frame_in_one_chunk_is_its_payload(self) -> None:
        assert FrameDecoder().feed(encode_frame(b"payload")) == [b"payload"]

    def test_a_body_that_looks_like_a_frame_after_its_own_header_is_a_body(self) -> None:
        # The header came alone: the next chunk is its body, whatever it starts with.
        payload = encode_frame(b"inner")
        frame = encode_frame(payload)
        decoder = FrameDecoder()
        assert decoder.feed(frame[:8]) == []
        assert decoder.feed(frame[8:]) == [payload]

    def test_two_frames_in_one_chunk_are_both_cut(self) -> None:
        chunk = encode_frame(b"one") + encode_frame(b"two")
        assert FrameDecoder().feed(chunk) == [b"one", b"two"]

    @pytest.mark.parametrize(
        "chunk",
        [
            b"RXD\x01\x00\x00\x00\x00",  # an empty frame, alone
            b"RXD\x01\x00\x00\x00\x00x",  # an empty frame, then a byte
            b"RXD\x01\x00\x00\x00\x05toolong",  # over the limit, whole
        ],
    )
    def test_a_bad_header_in_one_chunk_is_refused(self, chunk: bytes) -> None:
        with pytest.raises(ProtocolError):
            FrameDecoder(max_payload=4).feed(chunk)


class TestNotify:
    def test_the_encoding_is_the_protocol_s(self) -> None:
        # Byte for byte what protocol 6 sends (main before this road: the same bytes).
        assert encode_notify(MESSAGE, "e") == (
            b"\x94\x06\xa6notify\xa1e\x96\xa2db\xa31:o\x07\xc2\x92\x92\xa1s\xc0"
            b"\x93\xa1t\xa6update\x92\xa1a\xa1b\x92\x03\x04"
        )
        assert encode_message(Notify(MESSAGE, "e")) == encode_notify(MESSAGE, "e")

    def test_text_that_cannot_be_utf8_is_a_protocol_error(self) -> None:
        with pytest.raises(ProtocolError, match="not valid UTF-8"):
            encode_notify(NotifyTablesUpdated("db", "\ud800", 1), "e")

    def test_a_notify_round_trips(self) -> None:
        assert decode_message(encode_notify(MESSAGE, "e")) == Notify(MESSAGE, "e")

    @pytest.mark.parametrize(
        "payload",
        [
            b"\x94\x06\xa6notify",  # the head alone
            b"\x94\x06\xa6notify\xa1e\x96\xa2db\xa1o\x01\xc2\x90\xc0\xc0",  # a byte too many
            b"\x94\x06\xa6notify\xa1e\x96\xa2db\xa1o\x01\xc2\x90\xc1",  # never used byte
            b"\x94\x06\xa6notify\xa1e\x96\xa2db\xa1\xff\x01\xc2\x90\xc0",  # not UTF-8
            b"\x94\x06\xa6notify\xd4\x04\x00\x96\xa2db\xa1o\x01\xc2\x90\xc0",  # ext epoch
        ],
    )
    def test_malformed_notifies_are_protocol_errors(self, payload: bytes) -> None:
        with pytest.raises(ProtocolError):
            decode_message(payload)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(NOTIFY_FIELDS, min_size=2, max_size=2))
    def test_any_notify_decodes_as_the_general_road_does_or_is_refused(
        self, fields: list[Any]
    ) -> None:
        payload = msgpack.packb([PROTOCOL_VERSION, "notify", *fields], use_bin_type=True)
        try:
            fast = decode_message(payload)  # the default limits: the hot road
        except ProtocolError:
            return
        general: Message = decode_message(payload, Limits())  # equal limits, general road
        assert fast == general


class TestRemembered:
    """A Notify's update set is decoded once per wire form, and its packer made once per
    thread: the same tables arrive commit after commit."""

    def test_a_known_update_set_is_not_decoded_again(self) -> None:
        first = decode_message(encode_notify(MESSAGE, "e"))
        again = decode_message(encode_notify(replace(MESSAGE, sequence=8), "e"))
        assert isinstance(first, Notify)
        assert isinstance(again, Notify)
        assert again.message.updates is first.message.updates
        assert again == Notify(replace(MESSAGE, sequence=8), "e")

    def test_a_large_notify_is_decoded_whole_each_time(self) -> None:
        # Past the size a peer may make this process keep: decoded, never remembered.
        many = frozenset(TableUpdate(f"table_{i}") for i in range(80))
        message = replace(MESSAGE, updates=many)
        first = decode_message(encode_notify(message, "e"))
        again = decode_message(encode_notify(message, "e"))
        assert first == again == Notify(message, "e")
        assert isinstance(first, Notify)
        assert isinstance(again, Notify)
        assert again.message.updates is not first.message.updates

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(UPDATE_FIELDS)
    def test_a_remembered_update_set_decodes_as_the_general_road_does(
        self, updates: list[Any]
    ) -> None:
        fields = ["db", "1:o", 1, False, updates, None]
        payload = msgpack.packb([PROTOCOL_VERSION, "notify", "e", fields], use_bin_type=True)
        for _ in range(2):  # the second time from what the first remembered, if valid
            try:
                general: Message | None = decode_message(payload, Limits())
            except ProtocolError:
                general = None
            if general is None:
                with pytest.raises(ProtocolError):
                    decode_message(payload)
            else:
                assert decode_message(payload) == general

    def test_notifies_are_packed_without_a_packer_per_call(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # msgpack.packb makes a packer, and its 256 KiB buffer, at every call.
        def packb(*args: Any, **kwargs: Any) -> bytes:
            raise AssertionError("msgpack.packb called")

        expected = encode_notify(MESSAGE, "e")
        monkeypatch.setattr(msgpack, "packb", packb)
        assert encode_notify(MESSAGE, "e") == expected

    def test_a_failed_packing_leaves_nothing_behind(self) -> None:
        expected = encode_notify(MESSAGE, "e")
        with pytest.raises(ProtocolError):
            encode_notify(replace(MESSAGE, sequence=1 << 70), "e")
        assert encode_notify(MESSAGE, "e") == expected

    def test_a_packing_re_entered_on_its_thread_spoils_neither(self) -> None:
        # As a finalizer the GC runs mid-packing would (msgpack calls a dict subclass's
        # items()): the inner packing must not write into the outer's buffer.
        inner: list[bytes] = []

        class Reentering(dict[str, int]):
            def items(self) -> Any:
                inner.append(encode_notify(MESSAGE, "e"))
                return super().items()

        expected = encode_notify(MESSAGE, "e")
        outer = _pack([1, Reentering(a=1)], Notify)
        assert outer == msgpack.packb([1, {"a": 1}], use_bin_type=True)
        assert inner == [expected]
        assert encode_notify(MESSAGE, "e") == expected

    def test_each_thread_packs_on_its_own(self) -> None:
        expected = encode_notify(MESSAGE, "e")
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: results.append(encode_notify(MESSAGE, "e")))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert results == [expected] * 4
