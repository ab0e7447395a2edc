"""Commits made behind rxdb's back: the commit counter, then ``PRAGMA data_version``.

Another program (the ``sqlite3`` shell, a plain ``sqlite3`` connection, another library) may
commit to the same file without telling anyone. Every commit, by anyone, moves the WAL-index
commit counter (:mod:`rxdb.engines.sqlite.walindex`), which a poll reads with one ``pread``
(~1.5 µs, no SQLite call, no thread hop): while it stands still, nothing happened.
When it moved, the poller asks the writer for ``PRAGMA data_version`` (in line for the
writer's lock, on its thread, unless a reading the writer took after its last commit will do:
:class:`~rxdb.engines.sqlite.walindex.StateReadings`), which changes only when *another*
connection's commit became visible to it, never for the writer's own: unchanged means every
new commit was this database's own.

Other rxdb writers on the file (other processes, other :class:`rxdb.Database` objects) move
``data_version`` too, but they announce their commits anyway: re-running every watch for
them as well would double the work. So when ``data_version`` moved, the poller checks the
counter values since it last looked: each rxdb writer *claims* the values of its own commits
in its bus message. If every value is claimed, nobody else wrote. An unclaimed value gets a
short grace period (the claim may still be on its way through the hub), then counts as a
foreign commit: :meth:`ForeignWritePoller` calls ``on_foreign``, which re-runs the watches.
Whatever cannot be proven (no counter, a span too large, a failed read) counts as foreign;
without a counter (a database not in WAL mode) every poll asks ``data_version``.

A claim comes from another process of the same user, which may be buggy. So a claim may cost
re-runs, never save one that is due: it is believed only for values that exist already (the
counter has reached them when the claim arrives: a commit is claimed after it is made, so a
claim of values to come is a lie), that no earlier reading accounted for, and only for as many
values as one transaction produces (:data:`MAX_CLAIM_SPAN`). A claim that breaks any of these
is ignored whole, and the commits it named count as foreign. What remains open to a process
that means harm is to claim, between a foreign commit and the next poll, the one value that
commit produced; docs/security.md says what a same-uid process can do anyway.

Where the kernel reports writes to the database's files (``watch``, Linux inotify: see
:mod:`rxdb.engines.sqlite.wal_watch`), the poller looks at the counter when told instead of
every ``interval``. An event starts a *chase*: counter reads at growing gaps (from
:data:`CHASE_FIRST`) until it moves or :data:`CHASE_LENGTH` has passed without another event,
because SQLite bumps the counter only after it has written and synced the commit's pages,
after the last event. While the database's own writer works, an event is most likely its
commit: the poller then waits for the writer's :meth:`ForeignWritePoller.nudge` (at most
:data:`CHASE_BUSY`), and during a burst of its commits, and for :data:`CHASE_BUSY` after each
(its next one may follow), looks once per :data:`CHASE_BUSY`.
Between chases it polls every :data:`SAFETY_INTERVAL` as a safety net; while the watch is
incomplete (a file missing) it polls every ``interval`` as without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from rxdb.engines.sqlite.walindex import counter_span

__all__ = ("ChangeWatch", "ForeignWritePoller")

LOG = logging.getLogger("rxdb.foreign")

_MAX_CLAIMS = 1 << 16
MAX_CLAIM_SPAN = 16
"""Counter values one claim may cover. A transaction moves the counter by one as it commits
(a WAL restart may add one); more than this is not one transaction's doing."""
CLAIM_GRACE = 0.01
"""Seconds an unclaimed commit waits for its claim (a hub message takes ~0.5 ms)."""
CHASE_FIRST = 0.0005
"""Seconds between looks at the counter in the first milliseconds after a write event, while
it has not moved (SQLite bumps it after writing and syncing a commit's pages: an fsync takes
~1 ms here). The gap then grows to a quarter of the time since the chase began."""
CHASE_BUSY = 0.008
"""The longest gap of a chase: while write events keep coming and the counter stands still
(a long transaction writing), its commit is seen at most this late, at ~125 counter reads a
second."""
CHASE_LENGTH = 0.25
"""Seconds a chase goes on after the last write event without a commit (a checkpoint, or a
transaction that rolled back, writes without one; a slow disk may take this long to sync)."""
SAFETY_INTERVAL = 1.0
"""Seconds between polls while the file watch reports every write: a net for an event that
cannot come (a file replaced behind the watch)."""


class ChangeWatch(Protocol):
    """What the poller needs of a watch on the database's files (see
    :class:`rxdb.engines.sqlite.wal_watch.FileWatch`)."""

    @property
    def complete(self) -> bool: ...

    def refresh(self) -> None: ...

    def listen(self) -> None: ...

    def drain(self) -> bool: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class ForeignWritePoller:
    """Calls ``on_foreign`` after commits that no rxdb writer claimed.

    :param read_state: the writer's ``data_version`` and the counter value it covers exactly
        (``None`` if unknown), from a reading newer than the last, or one still good;
        ``None`` if it cannot be had now (the poller asks again soon while watching).
    :param read_counter: the commit counter, or ``None`` if unknown (then every poll asks
        ``read_state``, and every change of ``data_version`` counts as foreign).
    :param interval: seconds between polls without a (complete) file watch.
    :param watch: starts a watch on the database's files that calls its argument after
        writes, or returns ``None`` where it cannot; ``None``: poll only.
    :param writer_busy: whether the database's writer works now (its commit will
        :meth:`nudge`, so a chase waits for that rather than looking every 0.5 ms).
    """

    def __init__(
        self,
        read_state: Callable[[], Awaitable[tuple[int, int | None] | None]],
        read_counter: Callable[[], int | None],
        on_foreign: Callable[[], Awaitable[None]],
        interval: float,
        watch: Callable[[Callable[[], None]], ChangeWatch | None] | None = None,
        writer_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self._read_state = read_state
        self._read_counter = read_counter
        self._on_foreign = on_foreign
        self._interval = interval
        self._start_watch = watch
        self._writer_busy = writer_busy
        self.wants_nudge = False
        """Whether the poller waits for the writer's next commit (:meth:`nudge`); read on the
        writer's thread, so that a commit nobody waits for costs no call."""
        self._nudged = False  # the writer committed since the last look was scheduled
        self._watch: ChangeWatch | None = None
        self._signalled = False  # the watch reported writes since the last look
        self._waiter: asyncio.Future[None] | None = None  # an idle wait a report shortens
        self._timer: asyncio.TimerHandle | None = None  # when that wait ends
        self._chase_start: float | None = None  # loop time of the chase's first event
        self._last_write = 0.0  # loop time of the last event of the chase
        self._claimed: set[int] = set()
        self._seen: int | None = None  # every counter value up to here is accounted for
        self.claims_expected: Callable[[], bool] = lambda: False
        """Whether other rxdb writers (whose claims may be on their way) share the file;
        without them an unclaimed commit is foreign at once, with no grace period."""
        self._task: asyncio.Task[None] | None = None
        self._version: int | None = None
        self._counter: int | None = None
        self.foreign_commits = 0
        """Polls that found commits nobody claimed (for tests and diagnostics)."""

    async def start(self) -> None:
        """Take the baseline, then poll. Await it before anyone reads: a commit is absorbed
        into the baseline unannounced, so the baseline must come before every read a watch
        makes. If it cannot be read now, the first reading that succeeds later counts as a
        foreign commit instead."""
        try:
            await self._look(baseline=True)
        except Exception:
            LOG.debug("foreign-write baseline failed", exc_info=True)
        if self._start_watch is not None:
            self._watch = self._start_watch(self._written)
        # A context of its own: no transaction or read block of whoever connected applies.
        self._task = asyncio.get_running_loop().create_task(
            self._poll(), context=contextvars.Context()
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
            await watch.wait_closed()

    @property
    def watching(self) -> bool:
        """Whether a file watch reports every write now (else the poller polls)."""
        return self._watch is not None and self._watch.complete

    def claim(self, wal_changes: tuple[int, int]) -> None:
        """Record that an rxdb writer produced the counter values ``(before, after]``, if that
        can be true (see the module's docstring); else ignore the claim."""
        before, after = wal_changes
        span = counter_span(before, after)
        if span is None or span > MAX_CLAIM_SPAN or len(self._claimed) > _MAX_CLAIMS:
            return  # unclaimed values only cost a re-run
        now = self._read_counter()
        if now is None or counter_span(after, now) is None:
            return  # the counter has not reached ``after``: nobody can have made those commits
        seen = self._seen
        for value in _values(before, span):
            if seen is None or counter_span(seen, value):  # not accounted for yet
                self._claimed.add(value)

    async def _poll(self) -> None:
        delay = self._interval
        while True:
            signalled = await self._wait(delay)
            moved = unsettled = False
            try:
                peek = self._read_counter()
                if self._version is None or peek is None or peek != self._counter:
                    moved = self._all_claimed(peek) or await self._look(baseline=False)
                    unsettled = not moved  # no state now (the writer works): look again soon
            except Exception:
                # The database is closing, or the file went away: polling resumes or stops
                # with it; a failed poll must not kill the loop.
                LOG.debug("foreign-write poll failed", exc_info=True)
            now = asyncio.get_running_loop().time()
            delay = self._next_delay(signalled or unsettled, moved, now)

    def nudge(self) -> None:
        """The database's writer committed (call on the loop): look now, not at the next
        step of a chase (the writer has read its state: the look needs no hop)."""
        self.wants_nudge = False
        self._nudged = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _written(self) -> None:
        """The watch's report: a file was written (maybe a commit on its way)."""
        self._signalled = True
        waiter, timer = self._waiter, self._timer
        idle = self._chase_start is None
        if idle and waiter is not None and timer is not None and not waiter.done():
            # Look a moment later, not now: the report comes at a commit's first write, and
            # its counter moves after the last. While the writer works, the write is most
            # likely its own: look when it commits (a nudge), at the latest CHASE_BUSY later.
            busy = self._writer_busy()
            self.wants_nudge = busy
            timer.cancel()
            delay = CHASE_BUSY if busy else CHASE_FIRST
            self._timer = asyncio.get_running_loop().call_later(delay, _wake, waiter)

    async def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` seconds, or until a nudge, or until a report if no chase is under
        way (a chase keeps its pace, reading what was written meanwhile); whether anything
        was written."""
        watch = self._watch
        if watch is None:
            await asyncio.sleep(delay)
        elif self._chase_start is not None or not self._signalled:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            self._timer = loop.call_later(delay, _wake, waiter)
            try:
                await waiter
            finally:
                if self._timer is not None:
                    self._timer.cancel()
                self._waiter = self._timer = None
        signalled, self._signalled = self._signalled, False
        if watch is not None and watch.drain():
            signalled = True
        return signalled

    def _next_delay(self, signalled: bool, moved: bool, now: float) -> float:
        """Seconds to the next look, given what the last one found at ``now``."""
        watch = self._watch
        if watch is None:
            return self._interval
        watch.refresh()
        if moved or not watch.complete:
            self._chase_start = None
        elif signalled:  # a write, and no commit yet: it may be on its way
            self._last_write = now
            if self._chase_start is None:
                self._chase_start = now
        if self._chase_start is not None and now - self._last_write > CHASE_LENGTH:
            self._chase_start = None  # nothing came of the writes (a checkpoint, say)
        busy = self._writer_busy()
        nudged, self._nudged = self._nudged, False
        if self._chase_start is not None:
            if busy:
                self.wants_nudge = True
                return CHASE_BUSY  # the writer's commit nudges sooner
            return min(max(CHASE_FIRST, (now - self._chase_start) / 4), CHASE_BUSY)
        if moved and (busy or nudged) and watch.complete:
            # A burst of the writer's own commits: one look per CHASE_BUSY, not per commit
            # (each look still sees every commit since the last, foreign ones included).
            # Right after its commit (its nudge) the writer may be free, but its next commit
            # may follow at once: listening then would wake the loop at its first write,
            # while the writer works, which slowed that write (by 6-30 µs at NORMAL).
            return CHASE_BUSY
        watch.listen()  # between chases: told of the next write
        return SAFETY_INTERVAL if watch.complete else self._interval

    async def _look(self, *, baseline: bool) -> bool:
        """Read ``data_version`` and the counter value it covers; compare with the last
        reading. Only the very first reading (``baseline``) may absorb commits silently.
        Whether there was a reading."""
        state = await self._read_state()
        if state is None:
            return False
        version, counter = state
        if self._version is None:
            if baseline:
                self._advance(counter)
            else:
                await self._account(None)  # commits since the lost baseline are unknown
        elif version == self._version:
            # Nobody else's commit became visible to the writer between the two readings:
            # every counter value up to this reading is the writer's own.
            self._advance(counter)
        else:
            await self._account(counter)
        self._version, self._counter = version, counter
        return True

    def _all_claimed(self, peek: int | None) -> bool:
        """If rxdb writers claimed every commit up to ``peek``, account for them without
        asking the writer (a file watch sees every commit of theirs)."""
        if self._version is None or peek is None or self._unclaimed(peek):
            return False
        self._advance(peek)
        self._counter = peek  # _version stays: the next reading compares from there
        return True

    def _advance(self, to: int | None) -> None:
        """Mark every value up to ``to`` accounted for (``None``: start afresh). Costs the
        smaller of the window and the claims, never a walk over a long window: a burst of
        300,000 commits (``execute_many`` outside a transaction) moves the counter as far."""
        window = self._window(to)
        self._seen = to
        if window is None or to is None:
            self._claimed.clear()
        elif window[1] <= len(self._claimed):
            self._claimed.difference_update(_values(*window))
        else:  # keep the claims beyond ``to`` (span 0 is ``to`` itself, None is behind it)
            self._claimed = {value for value in self._claimed if counter_span(to, value)}

    async def _account(self, counter: int | None) -> None:
        """Another connection committed: call ``on_foreign`` unless rxdb claimed it all."""
        if self._unclaimed(counter):
            if self.claims_expected():
                await asyncio.sleep(CLAIM_GRACE)
            if self._unclaimed(counter):
                self.foreign_commits += 1
                await self._on_foreign()
        self._advance(counter)

    def _unclaimed(self, counter: int | None) -> bool:
        window = self._window(counter)
        if window is None:
            return True
        claimed = self._claimed
        if window[1] > len(claimed):
            return True  # more values than claims: one at least is nobody's
        return any(value not in claimed for value in _values(*window))

    def _window(self, counter: int | None) -> tuple[int, int] | None:
        """``(seen, span)``: the values after ``seen`` up to ``counter``, if believable."""
        seen = self._seen
        if seen is None or counter is None:
            return None
        span = counter_span(seen, counter)
        return None if span is None else (seen, span)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _values(before: int, span: int) -> Iterator[int]:
    """The counter values after ``before``, ``span`` of them (the counter wraps at 2**32), one
    at a time: a caller that stops early does not pay for the rest."""
    return ((before + i) & 0xFFFFFFFF for i in range(1, span + 1))
