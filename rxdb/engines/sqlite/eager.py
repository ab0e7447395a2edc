"""Eager re-runs: a cheap watch re-runs on the writer's thread right after the commit.

The usual road from a commit to a watch's new result has two thread hops after the commit:
the bus wakes the loop, whose scheduler sends the re-run to a reader thread, whose result
wakes the loop again. Here, as GRDB's writer queue does, the writer's thread runs the
re-run itself once the commit is over, and the rows reach the loop with the write's own
result, in the one ``call_soon_threadsafe`` that result needs anyway: no scheduler task, no
reader hop, no extra wake-up of the loop.

**Which watches.** Those subscribed through :meth:`EagerReads.subscribe` (the single
watches of the SQLite engine's own database, ``SQLiteEngine.subscribe_query``), for a
commit of this engine's writer (not a foreign one, not one the hub brings, never a schema
change: ``everything`` goes the usual way, with its re-analysis), whose tables the commit
touched (the bus's own index decides: a watch is asked through its subscription's
``wanted``), and whose query is known to be cheap: the last run of its text
(:class:`~rxdb.engines.sqlite.readers.ReadCosts`: the query's own time, on the thread that
ran it) took at most :data:`BUDGET`, and all the eager re-runs of one
commit fit in :data:`BUDGET` together, so a commit never pays for many or slow watches. A
text never run is not known: its first run goes the usual way. The rest go the usual way
(the bus, the scheduler, a reader), and so does every watch when the writer is not free (a
call already queued behind the one that committed) or the database is closing. When in
doubt, the usual way.

**Patches ride along.** A commit's message that carries patches (the rows of maintained
watches, read right after the commit: :mod:`rxdb.engines.sqlite.maintenance`) needs no
re-run: a watch of this engine that the budget does not claim is handed that message with
the call's result instead of through the bus, so a maintained watch's emission costs no
wake-up of the loop of its own either. The loop runs it where the bus would have (the
watch's ``notified``), just later in the same call's wake-up.

**When.** Only after the outermost COMMIT (claims are made in the commit callback, which a
rollback never reaches), and after the writer's call that committed has ended
(:attr:`Worker.after_call <rxdb.engines.sqlite.workers.Worker.after_call>`), before the
worker takes its next call; the rows and the call's result then reach the loop together
(the rows first). The call may have opened a transaction after its commit (a script's
``BEGIN``): then nothing is read (the writer would see uncommitted rows) and every watch
claimed goes the usual way. So the writer's caller waits for the re-runs (at most about
:data:`BUDGET`); sending the result first and the rows after, in a wake-up of their own,
was slower from write start to emission (docs/benchmarks.md, "Fewer hops").

**Freshness.** The writer connection sees its own commit and every commit before it, so
rows read there are a real committed state, at least as new as the commit. The loop gets
them through :meth:`SharedQuery._fresh <rxdb.watch.stream.SharedQuery._fresh>`, which takes
them only when no run of the watch is queued or in flight (else it marks a re-run pending,
as for any commit). The writer's thread publishes commits and sends eager results in order,
and the loop runs what it is sent in order, so a result sent here never lands after a
result the loop got from a later state.

**Threads.** :meth:`EagerReads.subscribe` runs on the loop (closing is the subscription's);
:meth:`EagerReads.wanted` on whatever thread publishes (it claims only what the writer's
thread publishes while :meth:`EagerReads.publish` runs there: its own commit); the
re-runs on the writer's thread. What the writer's thread reads of a watch is set once
(``sql``, ``params``, the subscription) or is a single attribute (the subscription's
``closed``); costs are single dict operations. A re-run reads on the writer connection
itself, around the tracked ``execute`` (nothing recorded, no commit stamp, no publish; the
write capture's authorizer drops what it hears outside a user's statement), unless the
user's statements may have made it see something else than the readers (TEMP tables or
views, attached databases, settings): then on a second connection of the writer's thread,
read-only, which sees every commit the writer has made (a WAL file)
(:meth:`TrackedConnection.fetch_committed
<rxdb.engines.sqlite.connections.TrackedConnection.fetch_committed>`).

**Closing and interrupts.** Once the engine refuses new work, claimed re-runs read nothing
(their watches are being completed anyway). A re-run runs inside the writer's call, under
the write lock its caller holds, so ``close()`` treats a slow one as it treats a slow
write: after its grace it interrupts the writer (its second connection with it).
``interrupt_writer()`` cuts what the writer runs now, a re-run included; the write before
it has committed and returns as such, and the watch goes the usual way.

Internal: not covered by rxdb's versioning.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable

from rxdb._types import Params
from rxdb.bus import Bus, Callback, Subscription
from rxdb.engines.sqlite.connections import TrackedConnection
from rxdb.engines.sqlite.readers import ReadCosts
from rxdb.engines.sqlite.workers import Worker
from rxdb.rows import Rows
from rxdb.updates import NotifyTablesUpdated

__all__ = ("BUDGET", "EagerReads", "EagerWatch", "Fresh")

LOG = logging.getLogger("rxdb.watch")


BUDGET = 0.0003
"""Seconds of eager re-runs one commit may cost the writer's thread, by their last runs."""

Taken = Rows | NotifyTablesUpdated | None
"""What a claimed watch gets with the call's result: rows read after the commit (``None``:
not read), or a message whose patches need no read (:meth:`EagerReads.wanted`)."""

Fresh = Callable[[Rows | None], None]
"""Called on the loop with the rows read right after a commit (``None``: not read; run the
query the usual way)."""


class EagerWatch:
    """One watch's query as the writer's thread may re-run it after a commit."""

    __slots__ = ("fresh", "params", "sql", "subscription")

    def __init__(self, sql: str, params: Params, fresh: Fresh) -> None:
        self.sql = sql
        self.params = params
        self.fresh = fresh
        self.subscription: Subscription | None = None


class EagerReads:
    """The eager re-runs of one SQLite engine's writer."""

    def __init__(self, bus: Bus, key: str, costs: ReadCosts) -> None:
        self._bus = bus
        self._key = key
        self._costs = costs
        # Attributes, not calls: read on the writer's thread after every commit, where Python
        # frames add up, cold. ``_refused`` is set once, by :meth:`refuse`.
        self._refused = False
        self._writer: Worker[TrackedConnection] | None = None
        self._connection: TrackedConnection | None = None
        # Set and read on the writer's thread only: while it publishes one of its commits
        # (``_publishing`` is that thread's id then: read from any thread), and after a call.
        self._publishing: int | None = None
        self._claimed: list[tuple[EagerWatch, NotifyTablesUpdated | None]] = []
        self._spent = 0.0

    def attach(self, writer: Worker[TrackedConnection]) -> None:
        """Re-run on ``writer``'s thread from now on (before any watch subscribes)."""
        writer.after_call = self._after_call
        self._writer = writer
        self._connection = writer.raw

    def refuse(self) -> None:
        """From now on claim nothing, and read nothing for what was claimed: the engine
        refuses new work (it is closing). Safe from any thread."""
        self._refused = True

    def subscribe(
        self,
        sql: str,
        params: Params,
        tables: Iterable[str] | None,
        notified: Callback,
        fresh: Fresh,
    ) -> Subscription:
        """A bus subscription of the running loop for a watch of ``sql``: ``notified`` for
        each message the usual way, ``fresh`` for a commit whose re-run the writer took."""
        watch = EagerWatch(sql, params, fresh)
        # A partial (no frame of its own) straight to :meth:`wanted`: the bus asks it on the
        # writer's thread for every commit, where each Python frame costs several µs.
        wanted = functools.partial(self.wanted, watch)
        sub = self._bus.subscribe(self._key, notified, tables=tables, wanted=wanted)
        watch.subscription = sub
        return sub

    def publish(self, publish: Callable[[], None]) -> None:
        """On the writer's thread, right after its outermost commit: ``publish()`` (which puts
        the commit's message on the bus), claiming eager re-runs meanwhile; they run once
        the writer's call is over (see the module's docstring)."""
        writer = self._writer
        if writer is None or self._refused or not writer.idle():
            publish()
            return
        self._publishing, self._spent = threading.get_ident(), 0.0
        try:
            publish()
        finally:
            self._publishing = None

    def wanted(self, watch: EagerWatch, message: NotifyTablesUpdated) -> bool:
        """The bus's question for ``watch``, on the publishing thread: ``False`` when the
        writer's thread takes its re-run for ``message`` (the message then reaches the
        watch with its rows; see the module's docstring), ``True`` for the usual delivery,
        always for any message but the commit the writer publishes now."""
        if self._publishing != threading.get_ident() or message.everything:
            return True
        cost = self._costs.seconds(watch.sql)
        if cost is not None and self._spent + cost <= BUDGET:
            self._spent += cost
            self._claimed.append((watch, None))
            return False
        if message.patches:
            # Maintained watches' rows came with the commit: the message itself rides with
            # the call's result, in the same wake-up, rather than waking the loop alone.
            self._claimed.append((watch, message))
            return False
        return True

    def _after_call(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None] | None:
        """On the writer's thread, after each call: run the re-runs its commits claimed (none
        inside a transaction, or once closing), send their rows to other loops, and return
        the delivery to ``loop`` (the caller's), which goes with the call's result."""
        claimed = self._claimed
        if not claimed:
            return None
        self._claimed = []
        try:
            results = self._rerun(claimed)
        except Exception:  # a bug: the claimed watches must still hear of their commits
            LOG.exception("eager re-runs failed; their watches run their queries instead")
            results = {}
            for watch, message in claimed:
                sub = watch.subscription
                if sub is not None and not sub.closed:
                    results.setdefault(sub.loop, []).append((watch, message))
        own = results.pop(loop, None)
        for other, taken in results.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to tell
                other.call_soon_threadsafe(_deliver, taken)
        return None if own is None else functools.partial(_deliver, own)

    def _rerun(
        self, claimed: list[tuple[EagerWatch, NotifyTablesUpdated | None]]
    ) -> dict[asyncio.AbstractEventLoop, list[tuple[EagerWatch, Taken]]]:
        """The claimed watches' rows (or messages), by loop."""
        connection = None if self._refused else self._connection
        if connection is not None and connection.in_transaction:
            connection = None  # a call opened a transaction after the commit
        results: dict[asyncio.AbstractEventLoop, list[tuple[EagerWatch, Taken]]] = {}
        record = self._costs.record
        reread: set[EagerWatch] = set()
        for watch, message in claimed:
            sub = watch.subscription
            if sub is None or sub.closed:
                continue  # nobody listens any more
            if message is not None:
                results.setdefault(sub.loop, []).append((watch, message))
                continue
            if watch in reread:
                continue  # once each, if several commits claimed it
            reread.add(watch)
            rows = None
            if connection is not None:
                started = time.perf_counter()
                try:
                    rows = connection.fetch_committed(watch.sql, watch.params)
                except Exception:  # the usual way reports it (or finds it gone)
                    LOG.debug("an eager re-run failed; the usual run follows", exc_info=True)
                else:
                    record(watch.sql, started)
            results.setdefault(sub.loop, []).append((watch, rows))
        return results


def _deliver(results: list[tuple[EagerWatch, Taken]]) -> None:
    # On the watches' loop.
    for watch, taken in results:
        sub = watch.subscription
        if sub is None or sub.closed:
            continue
        try:
            if isinstance(taken, NotifyTablesUpdated):
                sub.callback(taken)
            else:
                watch.fresh(taken)
        except Exception:
            LOG.exception("a watch failed to take its eager result")
