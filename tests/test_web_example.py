"""examples/web/ end to end in a real headless browser (Debian's chromium, driven by Selenium).

The example server runs as its own process (uvicorn on a free port) with its worker task
writing; a plain ``sqlite3`` program writes from another process. The page must show each
writer's rows (the issue asks for "within a second"; the wait allows 5 s so a loaded 2-core CI
does not flake, and the measured write -> DOM delay is printed: ``pytest -s``), and closing
the tab must release its watches on the server. Both transports of the page: Server-Sent
Events and WebSocket. ``.ci/run`` installs chromium and chromedriver when missing.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "web"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SHOWN_WITHIN = 5.0  # seconds: the condition waits' limit (the figure itself is printed)
STARTUP = 30.0  # seconds for the server or the browser to start (a hang, not a delay)


@dataclass(frozen=True)
class ShownRow:
    id: int
    source: str
    created: float  # seconds since the epoch, when the writer wrote it
    shown: float  # seconds since the epoch, when the page first showed it

    @property
    def delay(self) -> float:
        return self.shown - self.created


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The example app on a free port, its worker writing every 0.2 s; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(EXAMPLE / "app.py"), "--port", str(port)]
    command += ["--db", str(tmp_path / "orders.db"), "--worker-every", "0.2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stream = process.stdout
    assert stream is not None
    output: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in stream:
            output.append(line)
            if "Application startup complete" in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(STARTUP), "the example did not start:\n" + "".join(output)
        yield f"http://127.0.0.1:{port}"
    finally:
        # uvicorn shuts down gracefully (the lifespan closes the database), then ends by the
        # signal it caught, as a process killed by it would.
        process.terminate()
        assert process.wait(STARTUP) in (0, -signal.SIGTERM), "".join(output)
        reader.join(STARTUP)
        stream.close()
    assert "Application shutdown complete" in "".join(output), "".join(output)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    assert not missing, (
        f"the browser test needs {missing}: apt-get install chromium chromium-driver "
        "(.ci/run installs them)"
    )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def shown_rows(driver: webdriver.Chrome) -> list[ShownRow]:
    rows: list[dict[str, Any]] = driver.execute_script(
        """return [...document.querySelectorAll("#orders tr")].map((tr) => ({
            id: Number(tr.id.replace("order-", "")), source: tr.dataset.source,
            created: Number(tr.dataset.created), shown: Number(tr.dataset.shownAt) / 1000}));"""
    )
    return [ShownRow(**row) for row in rows]


def wait_for_row(driver: webdriver.Chrome, wanted: Callable[[ShownRow], bool]) -> ShownRow:
    """The first row on the page that ``wanted`` accepts, waiting up to SHOWN_WITHIN."""

    def found(driver: webdriver.Chrome) -> ShownRow | None:
        return next((row for row in shown_rows(driver) if wanted(row)), None)

    waiting = WebDriverWait(driver, SHOWN_WITHIN, poll_frequency=0.02)
    row = waiting.until(found, f"no such row within {SHOWN_WITHIN} s")
    assert row is not None  # until() returns only a value that is not falsy
    return row


def watchers(base: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base}/stats", timeout=STARTUP) as response:
        counts: dict[str, int] = json.load(response)
        return counts


def write_with_sqlite3(database: Path) -> int:
    """Add an order from another process with plain sqlite3; its id."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "writer.py"), str(database), "--count", "1"],
        capture_output=True,
        text=True,
        timeout=STARTUP,
        check=True,
    )
    match = re.fullmatch(r"added order (\d+)\n", done.stdout)
    assert match, done.stdout + done.stderr
    return int(match.group(1))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("via", ["sse", "ws"])
def test_page_shows_every_writers_rows_and_closing_it_releases_the_watches(
    server: str, browser: webdriver.Chrome, tmp_path: Path, via: str
) -> None:
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"{server}/?via={via}")
    opened = time.time()

    worker_row = wait_for_row(browser, lambda row: row.source == "worker" and row.created > opened)
    sqlite3_id = write_with_sqlite3(tmp_path / "orders.db")
    sqlite3_row = wait_for_row(browser, lambda row: row.id == sqlite3_id)
    assert sqlite3_row.source == "sqlite3"
    print(
        f"\n[{via}] write -> DOM: worker {worker_row.delay * 1000:.0f} ms, "
        f"plain sqlite3 program {sqlite3_row.delay * 1000:.0f} ms"
    )
    # The live total counts every order, the one just written included.
    WebDriverWait(browser, SHOWN_WITHIN, poll_frequency=0.02).until(
        lambda driver: int(driver.find_element("id", "count").text or 0) >= sqlite3_id
    )
    assert watchers(server) == {"orders": 1, "total": 1}

    browser.close()  # the tab; the browser (and its first tab) stays
    browser.switch_to.window(first_tab)
    WebDriverWait(browser, SHOWN_WITHIN, poll_frequency=0.02).until(
        lambda _: watchers(server) == {"orders": 0, "total": 0},
        "closing the tab did not release its watches",
    )
