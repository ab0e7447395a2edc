"""Run a snippet in a fresh interpreter and read the JSON it prints: what a program that
starts now would load, untouched by what this test process already imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def json_of_fresh_python(code: str, *args: str) -> Any:
    """``python -E -s -c code args...`` from the repository's root; its stdout as JSON."""
    done = subprocess.run(
        [sys.executable, "-E", "-s", "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
