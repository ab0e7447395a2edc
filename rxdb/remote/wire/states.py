"""How a watch's state (:class:`rxdb.WatchState`) travels in an event.

A state event's value is ``[phase, value, error]``: ``value`` is the latest result as the
watch's own events carry it (rows, or a map of rows by name for a group) or nil, ``error``
the six fields of an error (:func:`rxdb.remote.wire.errors.info_to_wire`) or nil. A state
from a peer is checked whole: an unknown phase, an error where none belongs (or none where
one must be) is a :class:`rxdb.ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from rxdb.errors import ProtocolError
from rxdb.remote.wire.errors import error_from_wire, error_to_wire, info_from_wire, info_to_wire
from rxdb.watch.states import Phase, WatchState

__all__ = ("state_from_wire", "state_to_wire")

T = TypeVar("T")

_PHASES: Final[dict[str, Phase]] = {
    "loading": "loading",
    "live": "live",
    "refreshing": "refreshing",
    "error": "error",
}


def state_to_wire(state: WatchState[Any], value_out: Callable[[Any], Any]) -> list[Any]:
    """``[phase, value, error]`` for ``state``, its value as ``value_out`` sends it."""
    value = None if state.value is None else value_out(state.value)
    error = None if state.error is None else info_to_wire(error_to_wire(state.error))
    return [state.phase, value, error]


def state_from_wire(value: Any, value_in: Callable[[Any], T]) -> WatchState[T]:
    """The state ``[phase, value, error]`` from a peer describes; ``value_in`` checks its value.

    :raises ProtocolError: for anything but a well-formed state.
    """
    if type(value) is not list or len(value) != 3:
        raise ProtocolError("a watch state must be an array [phase, value, error]")
    raw_phase, raw_value, raw_error = value
    phase = _PHASES.get(raw_phase) if type(raw_phase) is str else None
    if phase is None:
        raise ProtocolError(f"unknown watch phase {raw_phase!r}")
    error = None
    if raw_error is not None:
        if type(raw_error) is not list or len(raw_error) != 6:
            raise ProtocolError("a watch state's error must be an array of 6 fields")
        error = error_from_wire(info_from_wire(raw_error))
    if (phase == "error") != (error is not None) and phase != "refreshing":
        raise ProtocolError(
            f"a {phase!r} watch state {'lacks' if error is None else 'has'} an error"
        )
    return WatchState(phase, None if raw_value is None else value_in(raw_value), error)
