"""The hub relays a member's Notify to the other members once, from the frame it received:
publishing it here does not send it again, whatever its origin claims."""

from __future__ import annotations

from pathlib import Path

from rxdb.bus import Bus
from rxdb.remote import hub
from rxdb.remote.wire.messages import Notify, Ping, Pong
from tests.rxdb.test_hub import KEY, RawPeer, notify


async def test_a_delivered_notify_is_not_sent_again_even_under_a_local_origin(
    tmp_path: Path,
) -> None:
    bus = Bus()
    membership = await hub.join(
        KEY, bus, local_origins=lambda: {"mine"}, directory=str(tmp_path / "h")
    )
    first, second = await RawPeer.connect(membership.path), await RawPeer.connect(membership.path)
    try:
        # A member that claims this process's origin: what it sends is still another
        # process's message, relayed by the hub once and never echoed to its sender.
        first.send(notify("mine", 1))
        relayed = await second.receive()
        assert isinstance(relayed, Notify)
        assert relayed.message.origin == "mine"
        for peer in (first, second):
            peer.send(Ping(7))
            # Frames leave in order: a copy sent on publishing would arrive before the pong.
            assert await peer.receive() == Pong(7)
        stats = membership.statistics()
        assert (stats.sent, stats.received) == (1, 1)
    finally:
        await first.close()
        await second.close()
        await membership.leave()
