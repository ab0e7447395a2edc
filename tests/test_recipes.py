"""docs/recipes.md's code, run as a reader would copy it.

Each block the page marks ``<!-- recipe: NAME -->`` is taken from the page as it is written:
the Flask app is driven through Flask's test client, the Django views through Django's (in
a process of their own: Django's settings are per process), the notebook cells are compiled the way
IPython runs a cell (top-level ``await`` allowed) on a running loop, and the worker script
runs as a program.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import runpy
import sqlite3
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rxdb
from tests.conftest import WAIT

PAGE = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
BLOCK = re.compile(r"<!-- recipe: ([\w-]+) -->\n```python\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    return dict(BLOCK.findall(PAGE.read_text(encoding="utf-8")))


def test_every_marked_recipe_is_run_here() -> None:
    assert set(recipes()) == {"django", "flask", "jupyter", "jupyter-end", "workers"}


# ---------------------------------------------------------------------------------------------
# Flask


@pytest.fixture
def flask_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The recipe's module namespace, run in a fresh directory; its database closed after."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.py").write_text(recipes()["flask"], encoding="utf-8")
    namespace = runpy.run_path(str(tmp_path / "shop.py"), run_name="shop")
    try:
        yield namespace
    finally:
        namespace["db"].close()


def test_flask_recipe_lists_and_places_orders(flask_recipe: dict[str, Any]) -> None:
    client = flask_recipe["app"].test_client()
    assert client.get("/orders").get_json() == []
    placed = client.post("/orders", json={"item": "tea"})
    assert placed.status_code == 201
    assert client.get("/orders").get_json() == [{"id": placed.get_json()["id"], "item": "tea"}]


def test_flask_recipe_streams_each_change_and_releases_the_watch_when_closed(
    flask_recipe: dict[str, Any],
) -> None:
    db: rxdb.SyncDatabase = flask_recipe["db"]
    client = flask_recipe["app"].test_client()
    response = client.get("/orders/events", buffered=False)
    assert response.mimetype == "text/event-stream"
    events = iter(response.response)
    assert next(events) == b"data: []\n\n"
    client.post("/orders", json={"item": "tea"})
    assert next(events) == b'data: [{"id": 1, "item": "tea"}]\n\n'
    watch = db.watch(flask_recipe["OPEN_ORDERS"])  # the same query: the same shared watch
    assert watch.statistics().subscribers == 1
    response.close()  # what the server does when the client has gone
    assert watch.statistics().subscribers == 0


# ---------------------------------------------------------------------------------------------
# Django

# Runs beside the recipe's views.py: the least of a Django project (settings, one URLconf),
# then what a browser would do, printed as JSON lines for the test to check.
DJANGO_PROJECT = """
import json
import sqlite3

import django
from django.conf import settings

settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"], INSTALLED_APPS=[])
django.setup()

from django.test import Client
from django.urls import path

with sqlite3.connect("shop.db") as setup:  # the table the project's migrations would make
    setup.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, "
        "status TEXT NOT NULL DEFAULT 'open')"
    )
setup.close()

import views

urlpatterns = [path("orders", views.open_orders), path("orders/events", views.order_events)]
client = Client()
response = client.get("/orders/events")
events = iter(response.streaming_content)
print(json.dumps({"first": next(events).decode()}))
views.db.execute("INSERT INTO orders (item) VALUES ('tea')")
print(json.dumps({"next": next(events).decode(), "list": client.get("/orders").json()}))
watch = views.db.watch(views.OPEN_ORDERS)
print(json.dumps({"subscribers": watch.statistics().subscribers}))
response.close()  # what the server does when the client has gone
print(json.dumps({"subscribers": watch.statistics().subscribers}))
"""


def test_django_recipe_lists_and_streams_orders_and_releases_the_watch(tmp_path: Path) -> None:
    (tmp_path / "views.py").write_text(recipes()["django"], encoding="utf-8")
    (tmp_path / "project.py").write_text(DJANGO_PROJECT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "project.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"first": "data: []\n\n"},
        {
            "next": 'data: [{"id": 1, "item": "tea"}]\n\n',
            "list": [{"id": 1, "item": "tea"}],
        },
        {"subscribers": 1},
        {"subscribers": 0},
    ]


# ---------------------------------------------------------------------------------------------
# Jupyter


class DisplayHandle:
    """IPython's display handle, as far as the recipe uses it: it records what it shows."""

    def __init__(self, first: object) -> None:
        self.shown = [first]
        self.changed = asyncio.Event()

    def update(self, value: object) -> None:
        self.shown.append(value)
        self.changed.set()

    async def wait_for(self, value: object) -> None:
        async with asyncio.timeout(WAIT):
            while self.shown[-1] != value:
                self.changed.clear()
                await self.changed.wait()


def fake_ipython(monkeypatch: pytest.MonkeyPatch) -> list[DisplayHandle]:
    """``IPython.display.display(obj, display_id=True)`` returning recording handles."""
    handles: list[DisplayHandle] = []

    def display(value: object, *, display_id: bool) -> DisplayHandle:
        assert display_id
        handles.append(DisplayHandle(value))
        return handles[-1]

    module = types.ModuleType("IPython.display")
    module.display = display  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", types.ModuleType("IPython"))
    monkeypatch.setitem(sys.modules, "IPython.display", module)
    return handles


async def run_cell(source: str, namespace: dict[str, Any]) -> None:
    """Run a notebook cell as IPython does: top-level ``await`` on the running loop."""
    code = compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)
    if result is not None:  # the cell awaited something: eval gave a coroutine
        await result


async def test_jupyter_recipe_redraws_its_output_after_each_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with sqlite3.connect("shop.db") as setup:  # the notebook's database exists already
        setup.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)")
    setup.close()
    handles = fake_ipython(monkeypatch)
    namespace: dict[str, Any] = {}
    await run_cell(recipes()["jupyter"], namespace)
    try:
        [shown] = handles
        await shown.wait_for([])
        db: rxdb.Database = namespace["db"]
        await db.execute("INSERT INTO orders (status) VALUES ('open'), ('open')")
        await shown.wait_for([{"status": "open", "n": 2}])
    finally:
        await run_cell(recipes()["jupyter-end"], namespace)
    assert namespace["task"].cancelled()
    assert namespace["db"].closed


# ---------------------------------------------------------------------------------------------
# Worker processes


@pytest.mark.timeout(120)
def test_workers_recipe_counts_every_workers_items(tmp_path: Path) -> None:
    (tmp_path / "workers.py").write_text(recipes()["workers"], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "workers.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "0 of 100 items done"
    assert lines[-1] == "100 of 100 items done"
    counts = [int(line.split()[0]) for line in lines]
    assert counts == sorted(set(counts))  # only new results, never one twice
    with sqlite3.connect(tmp_path / "progress.db") as check:
        assert check.execute("SELECT count(DISTINCT worker) FROM done").fetchone() == (4,)
    check.close()
