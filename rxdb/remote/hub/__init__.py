"""The cross-process notification hub: processes on one machine that open the same database
file see each other's commits, with no configuration.

Every process that joins a database (identified by ``key``, the file's real path) runs one
*link* for it. Links find each other through a Unix socket whose name derives from the key,
in a directory only the user can enter. One link is the *hub*: it listens on the socket and
relays each :class:`~rxdb.remote.wire.messages.Notify` from one member to all the others. The
others are *members*: one connection each to the hub. The hub's own process takes part
through its local bus, like any member.

Who is the hub is decided by an exclusive ``flock`` on ``{socket}.lock``: whoever holds it
binds the socket; everyone else connects. The kernel drops the lock when its holder dies
(even by ``kill -9``), so a survivor takes over. Delivery is at most once; what makes that
safe is the *resync*: a message that says "anything may have changed" (``everything=True``),
published locally whenever a message may have been lost -- a gap in an origin's sequence
numbers, a new epoch, a lost or new connection to the hub.

Every link of the process runs on one *hub thread*, an event loop of its own started by the
first :func:`join` and stopped after the last link closes: the sockets do not depend on any
application loop staying alive (a database on a worker thread's loop may close while one on
the main loop carries on). Publishing onto the bus is thread-safe; each database receives on
its own loop. A commit's Notify is written to the sockets by the thread that committed, not
handed to the hub thread first (:mod:`.sending`); incoming messages are handled as the
socket delivers them (:mod:`.receiving`).

The package is the bus's cross-process :class:`~rxdb.bus.Transport` for SQLite files:
``await hub.join(key, bus, local_origins=...)`` returns a :class:`Membership` (modules:
:mod:`.membership` the joins and the hub thread, :mod:`.link` one link's election, member
side and resync, :mod:`.hosting` the hub's side, :mod:`.sending` and :mod:`.receiving` a
connection's two directions, :mod:`.tuning` timings and limits).

Internal: not covered by rxdb's versioning.
"""

from rxdb.errors import HubError
from rxdb.remote.hub.membership import HubStatistics, Membership, join
from rxdb.remote.hub.tuning import TUNING, Tuning
from rxdb.remote.runtime import socket_directory, socket_path

__all__ = (
    "TUNING",
    "HubError",
    "HubStatistics",
    "Membership",
    "Tuning",
    "join",
    "socket_directory",
    "socket_path",
)
