"""The results as a table (stdout), JSON and a chart (bench/results/, git-ignored)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from bench.contenders import REFERENCE
from bench.harness import PhaseRuns, SizeResult
from bench.targets import Target

# Which of the reference's phases each phase is compared with.
MATCHING = {"ingest": "load", "invoice": "aggregate", "load": "load", "aggregate": "aggregate"}


def rows(result: SizeResult) -> list[list[str]]:
    """One row per phase and one for each contender's whole path."""
    ref = result.results.get(REFERENCE)
    out = []
    for r in result.results.values():
        label = r.contender.label + ("" if not r.mismatches else " (WRONG)")
        entries: list[tuple[str, PhaseRuns, PhaseRuns | None]] = []
        if len(r.phases) > 1:
            for phase, runs in r.phases.items():
                match = ref.phases.get(MATCHING.get(phase, "")) if ref else None
                entries.append((phase, runs, match))
        entries.append(("total", r.total, ref.total if ref else None))
        for phase, runs, against in entries:
            ratio = f"{runs.median / against.median:.2f}" if against else "-"
            out.append(
                [
                    label,
                    phase,
                    f"{runs.median:.2f}",
                    f"{runs.best:.2f}",
                    f"{runs.cpu:.2f}",
                    f"{result.lines / runs.median:,.0f}",
                    f"{runs.peak / 2**20:,.0f}",
                    ratio,
                ]
            )
    return out


HEADER = ["contender", "phase", "time s", "min s", "cpu s", "events/s", "peak MB", "× DuckDB"]


def table(result: SizeResult) -> str:
    """A Markdown table (it reads as well in a terminal as in the README)."""
    body = rows(result)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEADER)]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|" + "|".join("-" * (w + 1) + (":" if i >= 2 else "-") for i, w in enumerate(widths)) + "|"
    )
    title = (
        f"{result.events:,} events + {result.lines - result.events:,} retried duplicates "
        f"({result.size_bytes / 1e6:,.0f} MB), median of {result.repeat} run"
        f"{'s' if result.repeat != 1 else ''}; answers " + ("agree" if result.agree else "DIFFER")
    )
    return "\n".join([title, "", line(HEADER), rule, *(line(r) for r in body)])


def targets_table(targets: list[Target]) -> str:
    mark = {True: "met", False: "MISSED", None: "not measured at this size"}
    lines = ["| target | goal | measured | |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.goal} | {t.measured} | {mark[t.met]} |" for t in targets]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("usagebill", "duckdb", "polars", "chdb", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write_json(path: Path, sizes: list[SizeResult], extra: dict[str, Any]) -> None:
    import os

    doc = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "sizes": [s.to_json() for s in sizes],
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def chart(path: Path, sizes: list[SizeResult]) -> bool:
    """Time against event count, one line per contender (log-log); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    names = list(dict.fromkeys(n for s in sizes for n in s.results))
    for name in names:
        points = [(s.events, s.results[name].total.median) for s in sizes if name in s.results]
        label = next(s.results[name].contender.label for s in sizes if name in s.results)
        ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events")
    ax.set_ylabel("seconds, file to per-customer quantities (median)")
    ax.set_title("usagebill benchmark: whole path, one process per phase")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True
