"""The "#14 table": each row of issue #14's table, the figures that answer it, and its goal.

Issue #14 sets one goal per row, sometimes stricter than the bar its figure is judged by in
the main table (#1's bar is 2x the round trip, the issue's 1.2x), so each row is judged here
against the issue's own goal, from the figure's numbers. A row none of whose figures was
produced (its group did not run, or nobody has built it yet) says "not run".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._common import Figure, Results
from .report import markdown, p99

Figures = Mapping[str, Figure]


def _ratio_at_most(goal: float) -> Callable[[Figure, Figures], bool | None]:
    def met(figure: Figure, _: Figures) -> bool | None:
        return None if figure.ratio is None else figure.ratio <= goal

    return met


def _hub(figure: Figure, _: Figures) -> bool | None:
    tail = p99(figure)
    return figure.value is not None and figure.value <= 0.5 and tail is not None and tail <= 2.0


def _told(figure: Figure, figures: Figures) -> bool | None:
    idle = figures.get("4cpu")
    return (
        figure.value is not None
        and figure.value <= 5.0
        and idle is not None
        and idle.value is not None
        and idle.value <= 0.5
    )


def _nothing(figure: Figure, _: Figures) -> bool | None:
    return None if figure.value is None else figure.value == 0


@dataclass(frozen=True)
class Row:
    """One row of the issue's table. The first of ``ids`` that ran and whose title has
    ``title_has`` is judged (a group names its figures by size rank, so which one is "100,000
    rows" depends on the mode); the figures of ``beside`` are shown with it (its floor, a
    variant). ``met`` sees the judged figure and every figure of the run.

    ``floor`` names the figure that does the row's work with raw parts by the same road, a
    floor no library on this stack goes under: when the row misses and that floor misses
    the goal too, in the same run, the goal is below what the stack allows there (the
    issue's "where a goal proves impossible"), and the row says so."""

    row: str
    ids: tuple[str, ...]
    goal: str
    met: Callable[[Figure, Figures], bool | None]
    beside: tuple[str, ...] = ()
    title_has: str = ""
    floor: str | None = None


ROWS = (
    Row("write start -> emission, chat room, vs litewriter (both NORMAL)", ("peer",),
        "<= 0.8x the peer", _ratio_at_most(0.8), beside=("peer.f", "peer.1"), floor="peer.f"),
    Row("commit -> emission, trivial query, vs a raw aiosqlite round trip", ("1",),
        "<= 1.2x", _ratio_at_most(1.2), beside=("1.f", "1.fe", "1.1", "1.p"),
        floor="1.fe"),
    Row("watch over 100,000 rows, 1-row UPDATE, commit -> emission, vs raw fetch",
        ("B1e", "B2e", "B3e"), "<= 1.0x (full re-run)", _ratio_at_most(1.0),
        title_has="100,000 rows"),
    Row("the same, maintained incrementally", ("B1i", "B2i", "B3i"),
        "<= 0.1x of the full fetch", _ratio_at_most(0.1), title_has="100,000 rows"),
    Row("UPDATE of a column no watch reads (re-runs per commit)", ("C1",), "re-runs nothing",
        _nothing, beside=("C2",)),
    Row("commit in another process -> emission (hub)", ("3",),
        "<= 0.5 ms median, p99 <= 2 ms", _hub, beside=("3.f",)),
    Row("commit by a plain sqlite3 program -> emission", ("4",),
        "<= 5 ms median at <= 0.5 % idle CPU", _told, beside=("4cpu",)),
    Row("import rxdb, vs import aiosqlite, sqlglot, reactivex", ("imp.o",), "<= 1.2x",
        _ratio_at_most(1.2), beside=("imp", "imp.q")),
)  # fmt: skip


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def measured(figure: Figure) -> str:
    """The figure's median (p99), and its ratio to its baseline's median."""
    if figure.value is None:
        return f"#{figure.id} —"
    text = f"#{figure.id} {_number(figure.value)} {figure.unit}"
    tail = p99(figure)
    if tail is not None:
        text += f" (p99 {_number(tail)})"
    if figure.ratio is not None:
        text += f" = {figure.ratio:.2f}x"
        if figure.baseline is not None:
            text += f" of {_number(figure.baseline)} {figure.unit}"
    return text


def judge(results: Results) -> list[dict[str, Any]]:
    """One entry per row: its figures' measurements and pass, miss, not run, or no
    baseline (the figure ran without what the goal compares it with, e.g. no peer); a miss
    whose floor misses too is "miss: floor above the goal" (see :class:`Row`)."""
    figures = {f.id: f for f in results.figures}
    out = []
    for row in ROWS:
        judged = [figures[i] for i in row.ids if i in figures and row.title_has in figures[i].title]
        main = judged[0] if judged else None
        present = [f for f in (main, *(figures.get(i) for i in row.beside)) if f is not None]
        if main is None:
            result = "not run"
        else:
            met = row.met(main, figures)
            result = "no baseline" if met is None else "pass" if met else "miss"
            floor = figures.get(row.floor) if row.floor is not None else None
            if result == "miss" and floor is not None and row.met(floor, figures) is False:
                result = f"miss: floor #{floor.id} above the goal"
        out.append(
            {
                "row": row.row,
                "figures": [main.id if main else "/".join(row.ids), *row.beside],
                "measured": "; ".join(measured(f) for f in present) or "—",
                "goal": row.goal,
                "result": result,
            }
        )
    return out


def table(results: Results) -> str:
    """The rows as Markdown, for docs/benchmarks.md."""
    rows = [["issue #14 row", "figures", "measured (median; ratio to its baseline)", "goal",
             "result"]]  # fmt: skip
    for entry in judge(results):
        ids = ", ".join(f"#{i}" for i in entry["figures"])
        rows.append([entry["row"], ids, entry["measured"], entry["goal"], entry["result"]])
    return markdown(rows)
