"""The facts about the machine and the stack that every result is printed with."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sqlite3
import sys
from typing import Any


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def facts() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlglot": _version("sqlglot"),
        "sqlglotc": _version("sqlglotc")
        if importlib.util.find_spec("sqlglotc") is not None
        else "absent",
        "aiosqlite": _version("aiosqlite"),
        "reactivex": _version("reactivex"),
        "rxdb": _version("rxdb"),
        "load average at start": load_average(),
        "executable": sys.executable,
    }
