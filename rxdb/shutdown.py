"""Hooks for interpreter exit that run *before* Python joins non-daemon threads.

An ``atexit`` hook runs after that join: too late to stop a thread that would hang the exit
(aiosqlite's connection threads, the blocking façade's loop thread). Engines and boundaries
both register here, so it sits below them.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable

__all__ = ("at_thread_shutdown",)


def at_thread_shutdown(hook: Callable[[], None]) -> None:
    """Call ``hook`` as the interpreter exits, before non-daemon threads are joined. Hooks
    run last registered, first called."""
    (getattr(threading, "_register_atexit", None) or atexit.register)(hook)
