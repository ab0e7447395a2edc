"""An event loop in a thread of its own, and the rule that blocking calls never run on a loop.

Internal to rxdb (the blocking façade's loop, the process's hub thread): not covered by
rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from rxdb.errors import ClosedError, WrongLoopError

__all__ = ("BorrowedLoop", "LoopThread", "Operation", "loop_running", "refuse_running_loop")

T = TypeVar("T")
Operation = Callable[[], Coroutine[Any, Any, T]]


class LoopThread:
    """An event loop running in a thread of its own, until :meth:`stop`."""

    def __init__(self, name: str, *, daemon: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        # Reentrant: a finalizer (a dropped watch iterator) may dispose while this thread
        # already holds the lock.
        self._lock = threading.RLock()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=daemon)
        self._thread.start()
        self.owned = True

    def _serve(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            # Run what was handed in before the stop, then cancel whatever still waits, so
            # that no caller stays blocked on a future nobody would complete.
            loop.run_until_complete(asyncio.sleep(0))
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def run(self, operation: Operation[T]) -> T:
        """Run ``operation()`` on the loop and wait for its outcome."""
        # The coroutine is made only once it can be scheduled: a refused call must not leave
        # a never-awaited coroutine behind.
        refuse_running_loop("this call")
        with self._lock:
            self._check()
            future = asyncio.run_coroutine_threadsafe(operation(), self.loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ClosedError("the database was closed while this call waited") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt in the waiting thread
            raise

    def call(self, callback: Callable[[], None], *, quiet: bool = False) -> None:
        """Run ``callback`` on the loop thread; wait for it unless this thread runs a loop.

        :param quiet: do nothing (rather than raise ClosedError) once the loop has stopped.
        """
        if threading.get_ident() == self.thread_ident:
            callback()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                callback()
            finally:
                done.set_result(None)

        with self._lock:
            if self._stopping and quiet:
                return
            self._check()
            self.loop.call_soon_threadsafe(run)
        if not loop_running():  # waiting would stall this thread's own loop
            done.result()

    @property
    def thread_ident(self) -> int | None:
        return self._thread.ident

    def stop(self) -> None:
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()

    def _check(self) -> None:
        if self._stopping:
            raise ClosedError(
                "the database is closed; open a new one (rxdb.open_sync, or handle.connect_sync())"
            )


def loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def refuse_running_loop(what: str) -> None:
    if loop_running():
        raise WrongLoopError(
            f"{what} of rxdb.SyncDatabase blocks, and this thread runs an event loop that it "
            "would stall (or deadlock, on the database's own loop thread, where watch callbacks "
            "run); in async code use the async API: db = await rxdb.open(path)"
        )


class BorrowedLoop(LoopThread):
    """Another owner's running loop (a database opened with the async API, used from a plain
    thread through its handle): used like an owned one, but never stopped or joined."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_ident: int) -> None:
        self.loop = loop
        self._lock = threading.RLock()
        self._stopping = False
        self._ident = thread_ident
        self.owned = False

    @property
    def thread_ident(self) -> int | None:
        return self._ident

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
