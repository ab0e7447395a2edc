"""What a process alone with its database file loads: the hub it hosts, not the wire schemas
of remote clients and servers, nor what only other paths need (``benchmarks/imports.py``
measures what loading costs: ``imp.q`` is this program)."""

from __future__ import annotations

import json
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


WIRE = {
    "msgpack",
    "rxdb.remote.wire.messages",
    "rxdb.remote.wire.channel",
    "rxdb.remote.hub.sending",
}
"""The wire the hub's connections speak (~10 ms to load): loaded with the first connection."""

# Run by a fresh interpreter: host the hub alone, then let a second process (a child that
# opens the same file and inserts a row) connect; the row must reach the first process's
# watch through the hub, which loads the wire only then.
HOST_THEN_JOINED = """
import asyncio, json, subprocess, sys
import rxdb

WIRE = set(json.loads(sys.argv[2]))
CHILD = '''
import asyncio, sys
import rxdb

async def main(path):
    async with rxdb.open(path) as db:
        await db.execute("INSERT INTO t VALUES ('from the child')")

asyncio.run(main(sys.argv[1]))
'''

async def main(path):
    async with rxdb.open(path, foreign_poll=None) as db:
        await db.execute("CREATE TABLE t (v TEXT)")
        alone = sorted(WIRE & set(sys.modules))
        seen = asyncio.Event()
        watch = db.watch("SELECT v FROM t").subscribe(
            lambda rows: seen.set() if rows else None
        )
        try:
            child = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, path)
            assert await asyncio.wait_for(child.wait(), 30) == 0
            await asyncio.wait_for(seen.wait(), 30)
        finally:
            watch.dispose()
        received = db._engine.membership.statistics().received
    return {"alone": alone, "joined": sorted(WIRE & set(sys.modules)), "received": received}

print(json.dumps(asyncio.run(main(sys.argv[1]))))
"""


def test_a_lone_open_loads_the_wire_only_when_another_process_joins(tmp_path: Path) -> None:
    """A file's first process hosts its hub without the wire; the first process that joins
    loads it on the hub's side, and its commit reaches the first process's watch through
    the hub (``foreign_poll=None``: the file watch cannot be what tells it)."""
    result = json_of_fresh_python(
        HOST_THEN_JOINED, str(tmp_path / "joined.db"), json.dumps(sorted(WIRE))
    )
    assert result["alone"] == []
    assert result["joined"] == sorted(WIRE)
    assert result["received"] >= 1
