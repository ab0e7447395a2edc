"""The cross-process notification hub (see :mod:`rxdb.remote.hub.membership`)."""

from rxdb.remote.hub.membership import (
    TUNING,
    HubError,
    HubStatistics,
    Membership,
    Tuning,
    join,
    socket_directory,
    socket_path,
)

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
