"""A value read from a database's schema (its catalog), kept until the schema may have changed.

Both engines resolve read sets in a catalog that is costly to read and changes only with DDL:
it is read once per schema change, the analyses that start together share that one read (one
cancelled caller does not cancel the others'), a failed read is tried again by the next caller,
and a read that a schema change overtook is handed to its callers but not kept.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ("SchemaCache",)

T = TypeVar("T")


class SchemaCache(Generic[T]):
    """The value ``load()`` reads, cached until :meth:`forget`. Use from one event loop."""

    def __init__(self, load: Callable[[], Awaitable[T]]) -> None:
        self._load = load
        self._value: T | None = None
        self._loading: asyncio.Future[T] | None = None
        self._generation = 0

    def forget(self) -> None:
        """The schema may have changed: the next :meth:`get` reads it again."""
        self._value = None
        self._loading = None
        self._generation += 1

    async def get(self) -> T:
        if self._value is not None:
            return self._value
        loading = self._loading
        if loading is None:
            loading = self._loading = asyncio.ensure_future(self._read(self._generation))
            loading.add_done_callback(self._settled)
        try:
            return await asyncio.shield(loading)
        except BaseException:
            failed = loading.done() and (loading.cancelled() or loading.exception() is not None)
            if failed and self._loading is loading:
                self._loading = None  # the next caller reads it again
            raise

    def _settled(self, loading: asyncio.Future[T]) -> None:
        # Every caller may have been cancelled (or the database closed) while the read went
        # on: its failure is then nobody's to see, and must not be logged as "never
        # retrieved"; the next caller reads again.
        failed = loading.cancelled() or loading.exception() is not None
        if failed and self._loading is loading:
            self._loading = None

    async def _read(self, generation: int) -> T:
        value = await self._load()
        if generation == self._generation:  # no schema change meanwhile
            self._value = value
        return value
