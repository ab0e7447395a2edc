"""The catalog cache: a read whose callers all went away fails quietly and is read again."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import rxdb
from rxdb.engines.schema_cache import SchemaCache


async def test_a_failed_read_nobody_waits_for_is_not_reported_and_is_read_again() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    gate = asyncio.Event()
    started = asyncio.Event()
    reads = 0

    async def load() -> str:
        nonlocal reads
        reads += 1
        if reads == 1:
            started.set()
            await gate.wait()
            raise rxdb.ClosedError("the database closed during the read")
        return "catalog"

    try:
        cache = SchemaCache(load)
        caller = asyncio.ensure_future(cache.get())
        await started.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        loading = cache._loading
        assert loading is not None
        gate.set()
        await asyncio.wait([loading])
        del loading
        gc.collect()
        assert reported == []
        assert await cache.get() == "catalog"
        assert reads == 2
    finally:
        loop.set_exception_handler(previous)
