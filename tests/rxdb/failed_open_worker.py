"""Fails to open a database one way, then reports what it holds and exits:
``python -m tests.rxdb.failed_open_worker CASE DIRECTORY``.

It prints one JSON line: the error's type, and the threads and file descriptors before and
after. Returning from ``main`` must end the process: a thread left behind by the failed open
would keep it alive, which the test sees as a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from typing import Any

import rxdb
import rxdb.engines.sqlite.wal_watch as wal_watch


def open_fds() -> int:
    """The process's descriptors, but for the inotify instances kept for the next watch
    (a process-wide cache of at most ``IDLE_LIMIT``, not the failed open's)."""
    return len(os.listdir("/proc/self/fd")) - len(wal_watch._IDLE)


def prepare(case: str, directory: str) -> tuple[str, dict[str, Any]]:
    """The path (and options) whose open fails as ``case`` says."""
    if case == "not-a-database":
        path = os.path.join(directory, "junk.db")
        with open(path, "wb") as file:
            file.write(b"not a database" * 512)
        return path, {}
    if case == "permission-denied":
        path = os.path.join(directory, "private.db")
        with open(path, "wb"):
            pass
        os.chmod(path, 0)
        return path, {}
    if case == "hub-error":
        runtime = os.path.join(directory, "runtime")
        os.mkdir(runtime, 0o700)
        with open(os.path.join(runtime, "rxdb"), "w"):
            pass  # a file where the hub's directory should be
        os.environ["XDG_RUNTIME_DIR"] = runtime
        return os.path.join(directory, "hub.db"), {}
    if case == "bad-option":
        return os.path.join(directory, "option.db"), {"readers": 0}
    raise SystemExit(f"unknown case {case!r}")


async def main(case: str, directory: str) -> None:
    path, options = prepare(case, directory)
    threads, fds = threading.active_count(), open_fds()
    error = ""
    try:
        await rxdb.open(path, **options)
    except rxdb.RxdbError as raised:
        error = type(raised).__name__
    report = {
        "error": error,
        "threads": [threads, threading.active_count()],
        "fds": [fds, open_fds()],
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
