"""One SQLite connection on its aiosqlite worker thread, driven one hop per operation.

aiosqlite runs each connection on a thread of its own, with a FIFO queue of calls. rxdb sends
each whole operation (statement, fetch, bookkeeping) as one call, so an operation costs one
thread hop (measured ~25-100 µs here) however much it does. Everything rxdb asks of aiosqlite
goes through :class:`Worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

import aiosqlite
import aiosqlite.core

from rxdb.errors import ClosedError
from rxdb.shutdown import at_thread_shutdown

__all__ = ("AfterCall", "Worker", "uninterrupted")

T = TypeVar("T")
AfterCall = Callable[[asyncio.AbstractEventLoop], Callable[[], None] | None]
"""See :attr:`Worker.after_call`: given the loop the call's caller waits on."""
C = TypeVar("C", bound=sqlite3.Connection)
C_co = TypeVar("C_co", bound=sqlite3.Connection, covariant=True)

LOG = logging.getLogger("rxdb.engine")
_JOIN_TIMEOUT = 5.0
_ABANDON_GRACE = 1.0


class Worker(Generic[C_co]):
    """A connection of type ``C_co`` (one of rxdb's sqlite3 subclasses) and its worker thread."""

    after_call: AfterCall | None = None
    """Set before the worker runs anything (the writer's, by
    :class:`~rxdb.engines.sqlite.eager.EagerReads`): called on the worker thread after each
    call started here, whether it raised or not; what it returns runs on the loop right
    before the call's result is set there, in the same wake-up of the loop. If it raises,
    the error is logged and the result reaches the caller all the same."""
    after_report: Callable[[], None] | None = None
    """Set like :attr:`after_call`: called on the worker thread after each call started here,
    once its outcome is on its way to the loop, before the worker takes its next call. For
    bookkeeping the caller does not wait for: done before the hand-off, it would delay the
    result (and a watch's emission riding with it). If it raises, the error is logged and
    the worker goes on."""

    def __init__(self, conn: aiosqlite.Connection, raw: C_co, path: str) -> None:
        self._conn = conn
        self._raw = raw
        self._path = path
        _OPEN.add(self)
        # aiosqlite's call queue, read by its worker thread: (future, function) pairs, each
        # function called without arguments and its result (or exception) set on the future
        # from that thread. A private API, stable across 0.22.x (the dependency is pinned
        # below 0.23); using it directly saves a coroutine and a partial per operation.
        self._tx = conn._tx

    @property
    def raw(self) -> C_co:
        """The sqlite3 connection: use it on the worker thread only (through :meth:`call`),
        except for ``interrupt`` and ``in_transaction``, which SQLite allows from anywhere."""
        return self._raw

    @staticmethod
    async def open(path: str, factory: Callable[..., C], **kwargs: Any) -> Worker[C]:
        """Open a connection made by ``factory``; if that fails, wait until its worker thread
        has ended (aiosqlite does not, and the thread would then report to an event loop that
        may be closed by then)."""
        conn = aiosqlite.connect(path, factory=factory, **kwargs)
        try:
            await conn
        except BaseException:
            _join(conn)
            raise
        # aiosqlite does not hand out the sqlite3 object; it was made by ``factory``.
        raw = cast(C, await _queue(conn, lambda: conn._conn))
        return Worker(conn, raw, path)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the worker thread: one hop.

        If the caller is cancelled meanwhile, wait until the call has finished anyway, then let
        the cancellation through: callers decide about locks and rollbacks from the
        connection's state, which must not change behind their back.
        """
        future = self.start(fn, *args)
        try:
            return await future
        except asyncio.CancelledError:
            await self.settle()
            raise

    def start(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the worker thread now; return the future of its result.

        For hot paths that await the future in a coroutine of their own instead of through
        :meth:`call`: such a caller must follow the same rule, and on cancellation await
        :meth:`settle` before letting the :class:`asyncio.CancelledError` through.

        :raises rxdb.ClosedError: if the connection is closed (close() closed it under a
            read block that outlived its grace, say).
        """
        conn = self._conn
        if not conn._running or conn._connection is None:
            raise ClosedError("the database is closed; open a new one (rxdb.open)")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        after, later = self.after_call, self.after_report
        if after is None and later is None:
            self._tx.put_nowait((future, functools.partial(_converting, fn, *args)))
        else:
            call = functools.partial(_reporting, future, after, later, fn, *args)
            self._tx.put_nowait((None, call))
        return future

    def idle(self) -> bool:
        """Whether no call waits in the queue now (the one running, if any, not counted).
        Safe from any thread; a moment later it may be wrong."""
        return self._tx.empty()

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Queue ``fn(*args)`` on the worker thread for nobody to await (what it returns or
        raises is dropped): bookkeeping that may outlive the caller's event loop."""
        self._tx.put_nowait((None, functools.partial(_converting, fn, *args)))

    async def settle(self) -> None:
        """Wait until every call queued so far has run, even if the caller is cancelled
        meanwhile (the queue is FIFO: once a no-op queued now has run, so has every call
        before it)."""
        await uninterrupted(self.start(_nothing))

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (``False`` once closed). Safe from the loop thread."""
        try:
            return self.raw.in_transaction
        except sqlite3.ProgrammingError:  # closed
            return False

    def interrupt(self) -> None:
        """Abort the statement running now, if any. Safe from any thread."""
        with contextlib.suppress(sqlite3.ProgrammingError):  # closed meanwhile
            self.raw.interrupt()

    async def close(self) -> None:
        """Close the connection and wait until the worker thread has ended, so that "no
        thread left after close" holds (aiosqlite returns a moment before the thread ends)."""
        await self._conn.close()
        _OPEN.discard(self)
        _join(self._conn)

    def abandon(self) -> None:
        """Close the connection from any thread, without an event loop (the owner's may be
        gone): after the calls queued so far, roll back an open transaction, close, and end
        the thread. Returns at once; :meth:`wait_abandoned` waits for the thread."""
        _OPEN.discard(self)
        conn = self._conn
        conn._running = False  # aiosqlite refuses new calls, and its __del__ stays quiet

        def close_and_stop() -> object:
            connection, conn._connection = conn._connection, None
            if connection is not None:
                connection.close()
            return aiosqlite.core._STOP_RUNNING_SENTINEL

        self._tx.put_nowait((None, close_and_stop))

    def wait_abandoned(self) -> None:
        """Wait for the thread of an abandoned worker; a statement that keeps it past a short
        grace is interrupted (not at once: an interrupt would also cut the checkpoint that
        closing the last connection makes)."""
        thread = getattr(self._conn, "_thread", None)
        if isinstance(thread, threading.Thread) and thread.is_alive():
            thread.join(_ABANDON_GRACE)
            if thread.is_alive():
                self.interrupt()
                _join(self._conn)


async def uninterrupted(operation: Awaitable[T]) -> T:
    """Await ``operation`` to its end even if the caller is cancelled meanwhile, then let the
    cancellation through (for rare steps that must complete, such as opening a connection
    that would otherwise be left half-open with nobody to close it)."""
    future = asyncio.ensure_future(operation)
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])  # unlike awaiting it, this never cancels it
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        future.exception()  # retrieved: the cancellation is what the caller gets
        raise asyncio.CancelledError
    return future.result()


def _queue(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    # aiosqlite's own queue (a private API, stable across its 0.x releases; the dependency is
    # pinned below 0.23). Its public methods cost a hop per cursor step, and give no way to run
    # rxdb's bookkeeping in the same hop as the statement. Returned, not awaited here: one
    # coroutine less on every operation.
    queued: Awaitable[T] = conn._execute(fn, *args)  # type: ignore[no-untyped-call]
    return queued


def _nothing() -> None:
    return None


def _reporting(
    future: asyncio.Future[T],
    after: AfterCall | None,
    later: Callable[[], None] | None,
    fn: Callable[..., T],
    *args: Any,
) -> None:
    """What aiosqlite's worker does with a call and its future, plus :attr:`Worker.after_call`
    and :attr:`Worker.after_report` (on the worker thread): the call's outcome and the work
    ``after`` returns reach the loop in one ``call_soon_threadsafe``, then ``later`` runs."""
    loop = future.get_loop()
    try:
        outcome: tuple[Callable[..., None], Any] = (_set_result, _converting(fn, *args))
    except BaseException as error:  # handed to the caller, as aiosqlite does
        outcome = (_set_exception, error)
    then = None
    if after is not None:
        try:
            then = after(loop)
        except Exception:  # a bug of its owner's: the caller must get its result all the same
            LOG.exception("the work after a call on %s failed", _thread_name())
    # Not contextlib.suppress: its enter and exit are Python calls on the road from a commit
    # to a watch's emission, each several µs there (the writer's thread is cold after fsync).
    try:  # noqa: SIM105
        loop.call_soon_threadsafe(_report, future, then, *outcome)
    except RuntimeError:  # the loop is closed: nobody to tell
        pass
    if later is not None:
        try:
            later()
        except Exception:  # aiosqlite's worker would drop it with a debug line: say it
            LOG.exception("the work after a call's report on %s failed", _thread_name())


def _thread_name() -> str:
    return threading.current_thread().name


def _report(
    future: asyncio.Future[Any],
    then: Callable[[], None] | None,
    settle: Callable[[asyncio.Future[Any], Any], None],
    value: Any,
) -> None:
    if then is not None:
        then()
    settle(future, value)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # cancelled meanwhile
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _converting(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on the worker thread. Python's sqlite3 reports most values it cannot
    hand to SQLite as ``sqlite3.ProgrammingError``, but an int beyond 64 bits as
    ``OverflowError`` and a str with lone surrogates as ``UnicodeEncodeError``: those become
    ``sqlite3.ProgrammingError`` too, so that every caller's ``except sqlite3.Error`` (and
    its translation into rxdb's errors) covers them."""
    try:
        return fn(*args)
    except OverflowError as error:
        raise sqlite3.ProgrammingError(
            f"{error}: SQLite integers are 64-bit ({_INT_RANGE}); pass a larger number as "
            "text or a float"
        ) from error
    except UnicodeEncodeError as error:
        raise sqlite3.ProgrammingError(
            f"{error}: SQLite text is UTF-8, which a str with lone surrogates is not; pass "
            "valid text, or bytes for a BLOB"
        ) from error


_INT_RANGE = "-2**63 to 2**63-1"


def _join(conn: aiosqlite.Connection) -> None:
    thread = getattr(conn, "_thread", None)  # aiosqlite keeps it private
    if isinstance(thread, threading.Thread) and thread.is_alive():
        thread.join(_JOIN_TIMEOUT)


_OPEN: weakref.WeakSet[Worker[Any]] = weakref.WeakSet()
"""Workers not closed yet (weakly: aiosqlite stops a collected connection's thread itself)."""


def _close_left_open() -> None:
    # aiosqlite's worker threads are not daemons: one connection left open would hang the
    # exit for ever. Whatever its owner did not close is closed here, with a warning.
    leftovers = list(_OPEN)
    for path in dict.fromkeys(worker._path for worker in leftovers):
        warnings.warn(
            f"an rxdb database on {path!r} was never closed; rxdb closed its connections at "
            "exit (a transaction left open was rolled back). Close it with 'await "
            "db.close()', or open it with 'async with rxdb.open(...)'",
            ResourceWarning,
            stacklevel=1,
        )
    for worker in leftovers:
        worker.abandon()
    for worker in leftovers:
        worker.wait_abandoned()


at_thread_shutdown(_close_left_open)
