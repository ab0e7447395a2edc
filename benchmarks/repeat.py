"""``--repeat N``: the same groups N times, each figure summarised across the runs.

Noisy figures are quoted as the median of several runs' medians (issue #14: "median of at
least three"). A merged figure keeps its title, unit, bar and parameters; its value, baseline
and ratio are the medians across the runs of each run's value, baseline and ratio (the ratio
is taken within each run, against the baseline measured beside it, then the median of those),
and its p99 the median of the runs' p99. ``extra["runs"]`` keeps every run's numbers and the
first run's ``extra`` stays under ``extra["run 1"]``. The status is the runs' common status,
or "mixed: k/N pass" when they differ. A figure missing from some runs is merged over the
runs that have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._common import Figure, Results, median
from .report import p99


def _median_of(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return median(present) if present else None


def _status(figures: Sequence[Figure]) -> str:
    statuses = {f.status for f in figures}
    if len(statuses) == 1:
        return figures[0].status
    passed = sum(f.status == "pass" for f in figures)
    return f"mixed: {passed}/{len(figures)} pass"


def merge_figure(figures: Sequence[Figure]) -> Figure:
    """One figure from the same figure of several runs (``figures`` in run order)."""
    first = figures[0]
    runs: list[dict[str, Any]] = [
        {"value": f.value, "baseline": f.baseline, "ratio": f.ratio, "p99": p99(f),
         "status": f.status}
        for f in figures
    ]  # fmt: skip
    extra: dict[str, Any] = {"runs": runs, "run 1": first.extra}
    value = _median_of([f.value for f in figures])
    tail = _median_of([p99(f) for f in figures])
    if tail is not None:
        extra["rxdb"] = {"median": value, "p99": tail}
    return Figure(
        first.id,
        first.title,
        value,
        first.unit,
        _median_of([f.baseline for f in figures]),
        first.baseline_label,
        _median_of([f.ratio for f in figures]),
        first.bar,
        _status(figures),
        params=first.params,
        extra=extra,
    )


def merge(runs: Sequence[Results]) -> Results:
    """Every figure of ``runs`` merged across them; the last run's series (for charts)."""
    by_id: dict[str, list[Figure]] = {}
    for results in runs:
        for figure in results.figures:
            by_id.setdefault(figure.id, []).append(figure)
    merged = Results(series=runs[-1].series if runs else {})
    for figures in by_id.values():
        merged.add(merge_figure(figures))
    return merged
