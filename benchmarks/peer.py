"""The peer, side by side: write start -> emission of the chat-room watch, rxdb vs litewriter.

litewriter 0.3.1 (one APSW writer thread, live queries; the fastest Python peer issue #14
knows) runs the same benchmark as rxdb: insert a message into room 1, time until the watch of
that room emits it, ``WRITES`` writes a round; both at ``synchronous=NORMAL`` (litewriter's
setting), litewriter at its fastest setting (``hz=10000``). Rounds of the sides (these two
and the floor below) take turns, which goes first rotating, each round in a fresh child
process; the figure is the ratio of the medians of the rounds' medians, with the median of
the rounds' p99 beside each.

The peer side is ``../shared/peers/chat_litewriter.py``, run by the Python of a venv built
by ``../shared/peers/litewriter-setup.sh`` (litewriter needs CPython >= 3.13): the venv in
``LITEWRITER_VENV`` if set, else one made once in ``~/.cache/rxdb-bench/``. The rxdb side
is :func:`chat` below (``python -m benchmarks.peer N DIR rxdb``, on this project's Python),
the same loop as ``chat_rxdb.py``.

``peer.f`` is the row's floor on this stack: the same writes through raw aiosqlite (one
``execute`` of the INSERT in autocommit, ``synchronous=NORMAL``), each timed from its start
to its return, with no watch at all. A library built on aiosqlite runs its writes on the
connection's thread, so no emission of a write can reach the loop before that one round trip
(a hop to the thread and one back) would have: when ``peer.f`` misses the goal in a run,
the goal is below what this stack allows in that run.

``peer.1`` is the same, every child of both sides held to one CPU (``sched_setaffinity``):
on a VM whose idle vCPUs halt, a thread woken on the other vCPU costs tens of µs more than
one woken where the waker runs, and where the scheduler puts rxdb's loop and writer threads
(one vCPU or two) changes rxdb's figure by about 2x from one run to the next; litewriter's
polling at ``hz`` keeps its vCPU awake. Diagnostic, no bar.

``peer.p`` is the same write start -> emission with :data:`PACE` seconds between writes, as
a UI writes, against the floor at the same pace (cold, halted vCPUs make every hop of both
slower), and ``peer.pn`` the same with ``foreign_poll=None`` (no file watch, no poller): what
watching for other programs' commits costs such a write. Rounds of the three take turns as
above; the peer has no paced variant. Information, no bar.

When the peer cannot run (no ``../shared/peers``, no CPython 3.13, no network for the first
set-up) the reason is printed and the figures have no baseline; ``--smoke`` never runs the
peer. No litewriter code is in rxdb or here: it is only measured.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rxdb

from ._common import (
    ROOT,
    Figure,
    Results,
    Sizes,
    child_json,
    clock,
    median,
    percentile,
    raw_connection,
    workdir,
)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages "
    "(id INTEGER PRIMARY KEY, room INTEGER NOT NULL, body TEXT NOT NULL)"
)
ROOM = "SELECT body FROM messages WHERE room = ? ORDER BY id"
INSERT = "INSERT INTO messages (room, body) VALUES (?, ?)"
HZ = 10000
GOAL = 0.8  # issue #14: rxdb <= 0.8x the peer
ROUNDS = {"smoke": 1, "quick": 3, "full": 5}
WRITES = {"smoke": 5, "quick": 300, "full": 300}
PACE = 0.02  # seconds between paced writes (peer.p)
PACED_WRITES = {"smoke": 3, "quick": 60, "full": 100}
_SETUP_TIMEOUT = 900.0
_ROUND_TIMEOUT = 300.0
MS = 1e3


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "median_ms": median(latencies),
        "p99_ms": percentile(latencies, 99),
        "n": len(latencies),
    }


async def chat(n: int, directory: str, pace: float = 0.0, **options: Any) -> dict[str, float]:
    """``n`` writes, each timed from its start to the watch's emission of it, ``pace``
    seconds after the last one's emission; ``options`` for ``rxdb.open``. Milliseconds."""
    latencies: list[float] = []
    path = os.path.join(directory, "chat.sqlite3")
    async with rxdb.open(path, synchronous="normal", **options) as db:
        await db.execute(SCHEMA)
        i, start = 0, 0.0
        async for rows in db.watch(ROOM, (1,)):
            if len(rows) != i:
                continue
            if i:
                latencies.append((clock() - start) * MS)
            if i == n:
                break
            i += 1
            if pace:
                await asyncio.sleep(pace)
            start = clock()
            await db.execute(INSERT, (1, f"msg {i}"))
    return _summary(latencies)


async def floor(n: int, directory: str, pace: float = 0.0) -> dict[str, float]:
    """``n`` of the same writes through raw aiosqlite, ``pace`` seconds apart, each timed
    from its start to its return: one round trip to the connection's thread. Milliseconds."""
    latencies: list[float] = []
    async with raw_connection(os.path.join(directory, "chat.sqlite3")) as conn:
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute(SCHEMA)
        for i in range(1, n + 1):
            if pace:
                await asyncio.sleep(pace)
            start = clock()
            await conn.execute(INSERT, (1, f"msg {i}"))
            latencies.append((clock() - start) * MS)
    return _summary(latencies)


_SIDE_RUNS: dict[str, Callable[[int, str], Coroutine[Any, Any, dict[str, float]]]] = {
    "rxdb": chat,
    "floor": floor,
    "rxdb.p": functools.partial(chat, pace=PACE),
    "rxdb.pn": functools.partial(chat, pace=PACE, foreign_poll=None),
    "floor.p": functools.partial(floor, pace=PACE),
}
"""What ``python -m benchmarks.peer N DIR SIDE`` runs."""


@dataclass
class Peer:
    """Where the peer's pieces are, or why it cannot run (``reason``)."""

    scripts: Path | None = None
    python: Path | None = None
    reason: str = ""


def find_scripts(start: Path = ROOT) -> Path | None:
    """``shared/peers`` beside the repository or beside one of its ancestors (a worktree
    lives deeper than the clone CI makes next to ``shared``)."""
    for base in start.parents:
        candidate = base / "shared" / "peers"
        if (candidate / "chat_litewriter.py").is_file():
            return candidate
    return None


def _python_313() -> Path | None:
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = sorted(Path(root).glob("versions/3.13*/bin/python3"))
    return found[-1] if found else None


def _venv() -> Path:
    given = os.environ.get("LITEWRITER_VENV")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rxdb-bench" / "litewriter-venv"


def locate() -> Peer:
    """The peer's scripts and venv, building the venv the first time (slow, needs PyPI)."""
    scripts = find_scripts()
    if scripts is None:
        return Peer(reason=f"no shared/peers/ beside {ROOT} or its parents")
    py313 = _python_313()
    if py313 is None:
        return Peer(reason="no CPython 3.13 under pyenv (litewriter needs >= 3.13)")
    venv = _venv()
    try:
        done = subprocess.run(
            ["bash", str(scripts / "litewriter-setup.sh"), str(py313), str(venv)],
            capture_output=True,
            text=True,
            timeout=_SETUP_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Peer(reason=f"litewriter-setup.sh failed: {error}")
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        return Peer(reason=f"litewriter-setup.sh {venv} exited {done.returncode}: {tail}")
    return Peer(scripts=scripts, python=venv / "bin" / "python")


def _own_round(side: str, writes: int, tmp: str) -> dict[str, float]:
    """One round of ``side`` (a key of ``_SIDE_RUNS``) on this project's Python."""
    argv = [sys.executable, "-m", "benchmarks.peer", str(writes), tmp, side]
    return child_json(argv, _ROUND_TIMEOUT)


def _peer_round(python: Path, scripts: Path, writes: int, tmp: str) -> dict[str, float]:
    """One litewriter round; its script makes its database under ``TMPDIR`` (``tmp``)."""
    script = str(scripts / "chat_litewriter.py")
    env = {**os.environ, "TMPDIR": tmp}
    return child_json([str(python), script, str(writes), str(HZ)], _ROUND_TIMEOUT, scripts, env)


Rounds = list[dict[str, float]]
SIDES = ("rxdb", "peer", "floor")


def _rounds(
    peer: Peer,
    sizes: Sizes,
    cpu: int | None = None,
    sides: tuple[str, ...] = SIDES,
    writes: int | None = None,
) -> dict[str, Rounds]:
    """Rounds of each of ``sides`` (``writes`` a round: ``WRITES`` by default), blocking
    (run off the loop), taking turns (which goes first rotates). A failing peer round ends
    the peer's part with its reason (``peer.reason``), never the run. With ``cpu``, every
    child runs held to that CPU: this thread's affinity, which they inherit (set on this
    thread alone, and put back)."""
    writes = WRITES[sizes.name] if writes is None else writes
    rounds: dict[str, Rounds] = {side: [] for side in sides}
    if cpu is not None:
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
    try:
        for n in range(ROUNDS[sizes.name]):
            for side in sides[n % len(sides) :] + sides[: n % len(sides)]:
                with workdir() as tmp:
                    if side != "peer":
                        rounds[side].append(_own_round(side, writes, tmp))
                    elif peer.python and peer.scripts and not peer.reason:
                        try:
                            rounds[side].append(_peer_round(peer.python, peer.scripts, writes, tmp))
                        except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
                            peer.reason = f"a litewriter round failed: {error}"
    finally:
        if cpu is not None:
            os.sched_setaffinity(0, allowed)
    return rounds


PACED = ("rxdb.p", "rxdb.pn", "floor.p")


def _one_cpu() -> int | None:
    """A CPU to hold both sides to for ``peer.1``; ``None`` where there is no choice to make
    (one CPU) or no way to make it (no ``sched_setaffinity``)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = os.sched_getaffinity(0)
    return min(allowed) if len(allowed) > 1 else None


def _rounds_text(sizes: Sizes) -> str:
    return (
        f"{ROUNDS[sizes.name]} per side, taking turns (which goes first rotates), each in a "
        "fresh child process; median of the rounds' medians and of their p99"
    )


def _side(rounds: list[dict[str, float]]) -> dict[str, Any]:
    medians = [r["median_ms"] for r in rounds]
    p99s = [r["p99_ms"] for r in rounds]
    return {"median": median(medians), "p99": median(p99s), "round medians": medians,
            "round p99": p99s, "writes per round": rounds[0]["n"]}  # fmt: skip


async def run(sizes: Sizes, results: Results) -> None:
    if sizes.name == "smoke":
        peer = Peer(reason="not in --smoke mode")
    else:
        peer = await asyncio.to_thread(locate)
    rounds = await asyncio.to_thread(_rounds, peer, sizes)
    ours, theirs = rounds["rxdb"], rounds["peer"]
    cpu = _one_cpu()
    pinned = None if cpu is None else await asyncio.to_thread(_rounds, peer, sizes, cpu)
    if peer.reason:
        print(f"peer: litewriter not run: {peer.reason}")
    rx = _side(ours)
    them = _side(theirs) if theirs and not peer.reason else None
    params = {
        "rounds": _rounds_text(sizes),
        "writes": f"{WRITES[sizes.name]} per round: INSERT a message into room 1, time from "
        "the write's start to the emission of the room's watch",
        "query": ROOM,
        "durability": "synchronous=NORMAL on both, WAL",
        "peer": f"litewriter 0.3.1, hz={HZ}, CPython 3.13, ../shared/peers/chat_litewriter.py"
        if them
        else f"not run: {peer.reason}",
    }
    ratio = rx["median"] / them["median"] if them else None
    figure = results.add(
        Figure(
            "peer", "write start -> emission, chat-room watch, rxdb vs litewriter (both NORMAL)",
            rx["median"], "ms", them["median"] if them else None,
            "litewriter 0.3.1 median" if them else "", ratio,
            f"<= {GOAL:g}x the peer (issue #14)", params=params,
            extra={"rxdb": rx, "peer": them if them else {"not run": peer.reason}},
        )
    )  # fmt: skip
    figure.judge(None if ratio is None else ratio <= GOAL)
    raw = _side(rounds["floor"])
    results.add(
        Figure(
            "peer.f", "floor of peer: the same INSERT through raw aiosqlite, start -> return "
            "(one round trip, no watch)", raw["median"], "ms", them["median"] if them else None,
            "litewriter 0.3.1 median" if them else "",
            raw["median"] / them["median"] if them else None, "(floor, no bar)",
            params={**params, "writes": f"{WRITES[sizes.name]} per round: INSERT a message "
                    "into room 1, timed from its start to its return",
                    "floor": "aiosqlite.connect(isolation_level=None), WAL, "
                    "synchronous=NORMAL; await conn.execute(INSERT), no watch"},
            extra={"floor": raw, "rxdb / floor": rx["median"] / raw["median"]},
        )
    )  # fmt: skip
    paced = await asyncio.to_thread(_rounds, peer, sizes, None, PACED, PACED_WRITES[sizes.name])
    _add_paced(sizes, paced, results)
    if pinned is not None:
        rx1 = _side(pinned["rxdb"])
        them1 = _side(pinned["peer"]) if pinned["peer"] and not peer.reason else None
        results.add(
            Figure(
                "peer.1", f"the same, both sides held to CPU {cpu} (diagnostic)",
                rx1["median"], "ms", them1["median"] if them1 else None,
                "litewriter 0.3.1 median, same CPU" if them1 else "",
                rx1["median"] / them1["median"] if them1 else None, "(diagnostic, no bar)",
                params={**params, "cpu": f"sched_setaffinity({{{cpu}}}) on the thread "
                        "that starts both sides' children"},
                extra={"rxdb": rx1, "peer": them1 if them1 else {"not run": peer.reason},
                       "floor": _side(pinned["floor"])},
            )
        )  # fmt: skip


def _add_paced(sizes: Sizes, rounds: dict[str, Rounds], results: Results) -> None:
    paced, unwatched, raw = (_side(rounds[side]) for side in PACED)
    params = {
        "rounds": _rounds_text(sizes),
        "writes": f"{PACED_WRITES[sizes.name]} per round, each {PACE * MS:g} ms after the last "
        "one's emission (the floor's: after its return): INSERT a message into room 1, time "
        "from the write's start to the emission of the room's watch",
        "query": ROOM,
        "durability": "synchronous=NORMAL, WAL",
        "baseline": "aiosqlite.connect(isolation_level=None), WAL, synchronous=NORMAL; await "
        "conn.execute(INSERT) at the same pace, start -> return, no watch",
    }
    for figure_id, title, side, extra_params in (
        ("peer.p", f"write start -> emission, chat-room watch, {PACE * MS:g} ms between writes",
         paced, {}),
        ("peer.pn", "the same with foreign_poll=None (no file watch, no poller)", unwatched,
         {"options": "rxdb.open(..., foreign_poll=None)"}),
    ):  # fmt: skip
        results.add(
            Figure(
                figure_id, title, side["median"], "ms", raw["median"],
                "raw aiosqlite write at the same pace (start -> return)",
                side["median"] / raw["median"], "(information, no bar)",
                params={**params, **extra_params}, extra={"rxdb": side, "floor": raw},
            )
        )  # fmt: skip


def main(argv: list[str]) -> int:
    writes, directory, side = argv
    print(json.dumps(asyncio.run(_SIDE_RUNS[side](int(writes), directory))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
