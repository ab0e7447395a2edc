"""Re-runs on receipt: a cheap watch re-runs on the thread that publishes another
connection's commit, and the loop gets the rows in one wake-up.

The usual road from another process's commit to a watch's new result, once the hub thread
has the commit's message, is three thread hops: the bus wakes the loop, whose scheduler sends
the re-run to a reader thread, whose result wakes the loop again. Here the thread that
publishes the message (the hub thread, for another process's commit) runs the re-run itself,
on a read-only connection of its own, and sends the rows to the loop: one hop instead of
three. :mod:`rxdb.engines.sqlite.eager` does the same on the writer's thread for this
engine's own commits; this module takes the commits it leaves.

**Which watches.** Those subscribed through :meth:`ReceiptReads.adopt` (the single watches
of the SQLite engine's own database, ``SQLiteEngine.subscribe_query``), in WAL mode only,
for a message that is not this engine's own commit and not ``everything`` (a schema change,
a resync: those go the usual way, with their re-analysis), published on a thread that is not
the watch's loop (the loop is never kept waiting for a read), whose tables the message
touched (the bus's own index decides: a watch is asked through its subscription's
``wanted``), and whose query is known to be cheap: the last run of its text took at most
:data:`BUDGET`, and the re-runs of one message fit in that budget together, so a message
never holds the publishing thread long (the hub thread relays the other processes' messages
meanwhile). The connection serves one
thread at a time: a thread that finds it busy leaves the watch to the usual way. When in
doubt, the usual way.

**Freshness.** Every publisher of such a message publishes after the commit has returned: the
other process's writer after its COMMIT (its message reaches the hub thread after that), a
sibling engine's writer likewise, a poller after it saw the commit. In WAL mode a read
transaction that starts after a commit returned sees it: the rows read here are a committed
state at least as new as the message. The loop takes them through :meth:`SharedQuery._fresh
<rxdb.watch.stream.SharedQuery._fresh>`, which takes rows only when no run of the watch is
queued or in flight. One more rule keeps a result from landing after a result of a later
state: every other message the watch is asked about (one eager re-runs, one that goes the
usual way) marks it, and rows read before such a mark are not taken (the loop re-runs the
query instead), since that message's run may read a later state and land first. Messages
one thread publishes reach the loop in the order it published them, so the re-runs of
successive commits from the hub land in order.

**Threads.** :meth:`ReceiptReads.adopt` and :meth:`ReceiptReads.close` run on the loop; the
re-runs on whatever thread publishes (serialized by one lock, never waited for). What a
publishing thread reads of a watch is set once or is a single attribute (``mark``,
``closed``); costs are single dict operations.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading

from rxdb._types import Params
from rxdb.bus import Subscription
from rxdb.engines.sqlite.connections import ReaderConnection
from rxdb.engines.sqlite.eager import Fresh
from rxdb.engines.sqlite.readers import ReadCosts
from rxdb.rows import Rows
from rxdb.updates import NotifyTablesUpdated

__all__ = ("BUDGET", "ReceiptReads")

LOG = logging.getLogger("rxdb.watch")

BUDGET = 0.001
"""Seconds of re-runs one message may cost the thread that publishes it, by their last runs.

More than the writer's budget (:data:`rxdb.engines.sqlite.eager.BUDGET`, which the writer's
caller waits for): what a read here spares is the usual way's three hops, about that much
on a busy machine, and nobody waits for the hub thread but the other messages. (On a sibling
engine's writer thread, two databases on one file in one process, that write's caller does
wait for them: a rare setup, which the budget bounds.)"""


class _Watch:
    """One adopted watch, as a publishing thread sees it."""

    __slots__ = ("fresh", "loop", "mark", "params", "sql", "subscription", "thread")

    def __init__(
        self, sub: Subscription, sql: str, params: Params, fresh: Fresh, mark: int
    ) -> None:
        self.subscription = sub
        self.loop = sub.loop
        self.thread = threading.get_ident()  # the loop's: never read on it
        self.sql = sql
        self.params = params
        self.fresh = fresh
        self.mark = mark  # replaced (never compared by size) at each message not taken here


class _Spent(threading.local):
    """What the re-runs of the message this thread publishes now have cost."""

    message: NotifyTablesUpdated | None = None
    seconds = 0.0


class ReceiptReads:
    """The re-runs on receipt of one SQLite engine (a WAL file): its watches, the read-only
    connection they run on (opened at the first re-run) and what each message costs."""

    def __init__(self, target: str, origin: str, costs: ReadCosts) -> None:
        self._target = target
        self._origin = origin
        self._costs = costs
        self._lock = threading.Lock()  # held by whichever thread uses the connection
        self._connection: ReaderConnection | None = None
        self._usable = True  # False once closed, or after the connection failed to open
        self._marks = itertools.count(1)
        self._spent = _Spent()

    def adopt(self, sub: Subscription, sql: str, params: Params, fresh: Fresh) -> Subscription:
        """On the loop: let publishing threads re-run the query of ``sub`` (a watch's
        subscription, made by :meth:`EagerReads.subscribe
        <rxdb.engines.sqlite.eager.EagerReads.subscribe>`) and hand ``fresh`` its rows.
        ``sub``'s ``wanted`` is wrapped: the eager re-runs are asked first."""
        if sub.kinds is not None:
            return sub  # the bus filters kinds after ``wanted``: keep it simple
        watch = _Watch(sub, sql, params, fresh, next(self._marks))
        first = sub.wanted
        marks = self._marks
        take = self._take
        own = self._origin

        def wanted(message: NotifyTablesUpdated) -> bool:
            # Asked for every commit the watch hears, in every storm: own ones cost one test.
            usual = first is None or first(message)
            if usual and message.origin != own and take(watch, message):
                return False
            # Taken by the eager re-runs, or going the usual way: its result may be of a
            # later state than rows read here before now.
            watch.mark = next(marks)
            return usual

        sub.wanted = wanted
        return sub

    def close(self) -> None:
        """On the loop, as the engine closes: no more re-runs; a read in flight is cut."""
        self._usable = False
        connection = self._connection
        if connection is not None:
            connection.interrupt()
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()

    def _take(self, watch: _Watch, message: NotifyTablesUpdated) -> bool:
        """On the publishing thread: re-run ``watch``'s query for ``message`` and send the
        rows to its loop; ``False`` if that is not for here (see the module's docstring)."""
        if message.everything or not self._usable or threading.get_ident() == watch.thread:
            return False
        cost = self._costs.seconds(watch.sql)
        if cost is None:
            return False
        spent = self._spent
        if spent.message is not message:
            spent.message, spent.seconds = message, 0.0
        if spent.seconds + cost > BUDGET or not self._lock.acquire(blocking=False):
            return False
        try:
            connection = self._connection or self._open()
            if connection is None:
                return False
            mark = watch.mark
            try:
                rows = self._costs.fetch(connection, watch.sql, watch.params)
            except Exception:  # the usual way reports it (or finds the database closed)
                LOG.debug("a re-run on receipt failed; the usual run follows", exc_info=True)
                return False
        finally:
            self._lock.release()
        spent.seconds += cost
        # Not contextlib.suppress: its three calls, cold, would run after the loop is woken,
        # and the loop waits for this thread to let go of the GIL.
        try:  # noqa: SIM105
            watch.loop.call_soon_threadsafe(_deliver, watch, mark, rows)
        except RuntimeError:  # that loop is closed: nobody to tell
            pass
        return True

    def _open(self) -> ReaderConnection | None:
        # Under the lock. No busy timeout: a read that would wait goes the usual way.
        if not self._usable:
            return None
        try:
            # Used on whichever thread publishes, one at a time.
            connection = ReaderConnection.open_read_only(self._target)
        except sqlite3.Error:
            LOG.debug("no re-runs on receipt: the connection failed to open", exc_info=True)
            self._usable = False
            return None
        self._connection = connection
        return connection


def _deliver(watch: _Watch, mark: int, rows: Rows) -> None:
    # On the watch's loop.
    if watch.subscription.closed:
        return
    try:
        watch.fresh(rows if watch.mark == mark else None)
    except Exception:
        LOG.exception("a watch failed to take its re-run on receipt")
