"""What a process alone with its database file loads: the hub it hosts, not the wire schemas
of remote clients and servers, nor what only other paths need (``benchmarks/imports.py``
measures what loading costs: ``imp.q`` is this program)."""

from __future__ import annotations

from pathlib import Path

from tests.rxdb.fresh_process import json_of_fresh_python

# Run by a fresh interpreter: open a file database (so that it joins the cross-process hub,
# which it hosts, being alone), run one query, close; then list what is loaded.
LONE_OPEN = """
import asyncio, json, sys
import rxdb

async def main(path):
    async with rxdb.open(path) as db:
        rows = await db.fetch_all("SELECT 1 AS one")
        assert [tuple(row) for row in rows] == [(1,)], rows

asyncio.run(main(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""


def _loaded_by_a_lone_open(tmp_path: Path) -> set[str]:
    return set(json_of_fresh_python(LONE_OPEN, str(tmp_path / "lone.db")))


def test_a_lone_open_hosts_the_hub_without_loading_the_remote_operations(
    tmp_path: Path,
) -> None:
    loaded = _loaded_by_a_lone_open(tmp_path)
    assert "rxdb.remote.hub.hosting" in loaded  # it did join the hub
    assert not loaded & {
        "rxdb.remote.wire.operations",
        "rxdb.remote.wire.endpoint",
        "rxdb.remote.client",
        "rxdb.remote.server",
    }


def test_a_lone_open_leaves_unloaded_what_only_other_paths_need(tmp_path: Path) -> None:
    """Each of these costs a program's start milliseconds: ``uuid`` loads ``platform``, a
    PostgreSQL URL's default user ``getpass`` (and ``termios``), a stream's operators
    ``reactivex.operators``, a server's token check ``hmac`` (and ``secrets``); none is
    needed to open a file, query it and close it."""
    loaded = _loaded_by_a_lone_open(tmp_path)
    assert not loaded & {
        "uuid",
        "platform",
        "getpass",
        "termios",
        "reactivex.operators",
        "hmac",
        "secrets",
    }
