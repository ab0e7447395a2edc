"""The results table (Markdown, so it pastes into docs/benchmarks.md) and the JSON file."""

from __future__ import annotations

import json
import math
from typing import Any

from ._common import Figure, Results

ORDER = [
    "1",
    "1.f",
    "1.fe",
    "1.nh",
    "1.1",
    "1.p",
    "1b",
    "1b.f",
    "1b.n",
    "2",
    "3",
    "3.f",
    "4",
    "4p",
    "4cpu",
    "4wb",
    "4ws",
    "5",
    "6",
    "7",
    "7.r1",
    "7b",
    "7c",
    "8r",
    "8r.1",
    "8w",
    "hop",
    "bd.R1",
    "bd.R2",
    "bd.R3",
    "bd.R4",
    "bd.W1",
    "bd.W2",
    "bd.W3",
    "9c",
    "9w",
    "10p",
    "10t",
    "10h",
    "11.10",
    "11.10cpu",
    "11.100",
    "11.100cpu",
    "S1",
    "S2",
    "S3",
    "J1",
    "J2",
    "J3",
    "J4",
    "B1",
    "B1m",
    "B1e",
    "B1i",
    "B2",
    "B2m",
    "B2e",
    "B2i",
    "B3",
    "B3m",
    "B3e",
    "B3i",
    "P1",
    "P1.f",
    "P1.s",
    "P2",
    "P3",
    "P3.c",
    "P4",
    "P5r",
    "P5w",
    "peer",
    "peer.f",
    "peer.1",
    "peer.p",
    "peer.pn",
    "M1",
    "M1.s",
    "imp",
    "imp.o",
    "imp.q",
    "C1",
    "R",
    *(f"R{n}" for n in range(1, 16)),
    "C2",
]


def _number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def p99(figure: Figure) -> float | None:
    """The p99 a figure carries beside its median (in ``extra["rxdb"]``), if any."""
    ours = figure.extra.get("rxdb")
    if isinstance(ours, dict) and isinstance(ours.get("p99"), int | float):
        return float(ours["p99"])
    return None


def _p99(figure: Figure) -> str:
    tail = p99(figure)
    return "" if tail is None else f" (p99 {_number(tail)})"


def sort_key(figure: Figure) -> int:
    return ORDER.index(figure.id) if figure.id in ORDER else len(ORDER)


def table(results: Results) -> str:
    rows = [["#", "figure", "rxdb", "baseline", "ratio", "bar", "result"]]
    for f in sorted(results.figures, key=sort_key):
        baseline = _number(f.baseline, f.unit) + (
            f" ({f.baseline_label})" if f.baseline_label else ""
        )
        if f.baseline is None:
            baseline = "—"
        rows.append(
            [
                f.id,
                f.title,
                _number(f.value, f.unit) + _p99(f) if f.value is not None else "—",
                baseline,
                "—" if f.ratio is None else f"{f.ratio:.2f}",
                f.bar,
                f.status,
            ]
        )
    return markdown(rows)


def markdown(rows: list[list[str]]) -> str:
    """A Markdown table, columns padded so that it also reads as plain text; row 0 heads it."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parameters(results: Results) -> str:
    """One line per distinct parameter set, naming the figures that share it."""
    groups: dict[str, list[str]] = {}
    for f in sorted(results.figures, key=sort_key):
        if f.params:
            inner = "; ".join(f"{k}: {v}" for k, v in f.params.items())
            groups.setdefault(inner, []).append(f"#{f.id}")
    return "\n".join(f"- {', '.join(ids)}: {inner}" for inner, ids in groups.items())


def to_json(results: Results, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "figures": [
            {
                "id": f.id,
                "title": f.title,
                "value": f.value,
                "unit": f.unit,
                "baseline": f.baseline,
                "baseline_label": f.baseline_label,
                "ratio": f.ratio,
                "bar": f.bar,
                "status": f.status,
                "params": f.params,
                "extra": f.extra,
            }
            for f in sorted(results.figures, key=sort_key)
        ],
    }


def write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")
