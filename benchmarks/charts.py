"""Optional PNG charts (needs matplotlib: ``pip install 'rxdb[bench]'``)."""

from __future__ import annotations

import os
from typing import Any

from ._common import Results


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw(results: Results, directory: str, subtitle: str) -> list[str]:
    """Write the charts the results have data for; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []
    latency: dict[str, list[float]] | None = results.series.get("latency")
    if latency:
        fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
        for label, samples in latency.items():
            ordered = sorted(samples)
            n = len(ordered)
            ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds (log scale)")
        ax.set_ylabel("fraction of samples ≤ x")
        ax.set_title(f"Latency distributions (CDF)\n{subtitle}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = os.path.join(directory, "bench-latency.png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    sweep: list[dict[str, Any]] | None = results.series.get("watchers")
    if sweep:
        fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
        xs = [max(point["watches"], 1) for point in sweep]
        labels = [f"{point['watches']:,}" for point in sweep]
        for key, style, name in (("with", "o-", "with N watches"), ("without", "s--", "0 watches")):
            ax.plot(xs, [p[key]["median"] for p in sweep], style, label=f"{name}: median")
            ax.plot(xs, [p[key]["p99"] for p in sweep], style, alpha=0.35, label=f"{name}: p99")
        ax.set_xscale("log")
        ax.set_xticks(xs, labels)
        ax.set_xlabel("watches on other tables (database B); database A has none")
        ax.set_ylabel("µs per commit (await db.execute(INSERT))")
        ax.set_title(f"Commit cost vs number of watchers\n{subtitle}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(directory, "bench-watchers.png")
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
