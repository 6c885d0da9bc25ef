"""The issue's targets, each as a ratio or a figure measured in this run, plus the two
measurements the contender runs do not give: incremental ingest and `usagebill --help`."""

from __future__ import annotations

import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import data
from bench.harness import SizeResult
from bench.proc import Measured, run
from bench.usagebill_cli import executable

GB = 2**30


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run

    def to_json(self) -> dict[str, Any]:
        return {"target": self.name, "goal": self.goal, "measured": self.measured, "met": self.met}


def help_time(repeat: int = 10) -> list[float]:
    """Wall time of `usagebill --help`, `repeat` times (after one warm-up run)."""
    exe = executable()
    run([*exe, "--help"])
    return [run([*exe, "--help"]).seconds for _ in range(repeat)]


def incremental(
    base_db: Path, new_events: int, repeat: int, work: Path = data.WORK, random_ids: bool = False
) -> dict:
    """Ingest `new_events` fresh events into a copy of `base_db` and into an empty database,
    interleaved, `repeat` times each."""
    new = data.new_events_file(new_events, work, random_ids)
    exe = executable()
    into_full: list[Measured] = []
    into_empty: list[Measured] = []
    scratch = work / "incremental"
    for _ in range(repeat):
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        full = scratch / "full.duckdb"
        shutil.copyfile(base_db, full)
        into_full.append(run([*exe, "ingest", "--db", str(full), str(new)]))
        empty = scratch / "empty.duckdb"
        into_empty.append(run([*exe, "ingest", "--db", str(empty), str(new)]))
        print(
            f"  incremental{' (random ids)' if random_ids else ''}: "
            f"into base {into_full[-1].seconds:.2f}s, "
            f"into empty {into_empty[-1].seconds:.2f}s",
            file=sys.stderr,
        )
    shutil.rmtree(scratch, ignore_errors=True)
    full_s = statistics.median(m.seconds for m in into_full)
    empty_s = statistics.median(m.seconds for m in into_empty)
    return {
        "new_events": new_events,
        "ids": "random UUID" if random_ids else "sequential",
        "into_base_seconds": [round(m.seconds, 3) for m in into_full],
        "into_empty_seconds": [round(m.seconds, 3) for m in into_empty],
        "into_base_peak_mb": round(max(m.peak_bytes for m in into_full) / 2**20, 1),
        "ratio": round(full_s / empty_s, 2),
    }


def evaluate(
    main: SizeResult | None,
    largest: SizeResult | None,
    incs: list[dict],
    inc_base: int | None,
    help_s: list[float] | None,
) -> list[Target]:
    """Each target met or missed, from the `main` size's run (ratios within one run)."""
    out: list[Target] = []
    r = main.results if main else {}
    ub, dk = r.get("usagebill"), r.get("duckdb")
    if ub and dk:
        ratio = ub.phases["ingest"].median / dk.phases["load"].median
        out.append(
            Target("ingest vs DuckDB read_json load", "≤ 1.5×", f"{ratio:.2f}×", ratio <= 1.5)
        )
        ratio = ub.phases["invoice"].median / dk.phases["aggregate"].median
        out.append(
            Target("invoice vs one raw SQL aggregation", "≤ 2×", f"{ratio:.2f}×", ratio <= 2)
        )
    own = r.get("store_sql")
    if ub and own:  # the invoice issue's own wording: a raw query on the same database
        ratio = ub.phases["invoice"].median / own.phases["aggregate"].median
        out.append(
            Target(
                "invoice vs one raw SQL aggregation on usagebill's database",
                "≤ 2×",
                f"{ratio:.2f}×",
                ratio <= 2,
            )
        )
    for name, label, goal, need in (
        ("python", "plain Python", "≥ 5× faster", 5.0),
        ("polars", "Polars", "faster", 1.0),
    ):
        other = r.get(name)
        if ub and other:
            mine, theirs = ub.total.median, other.total.median
            speedup = theirs / mine  # > 1: usagebill is faster
            out.append(
                Target(
                    f"ingest-to-invoice vs {label}",
                    goal,
                    f"{speedup:.2f}× ({mine:.1f} s vs {theirs:.1f} s)",
                    speedup >= need if need > 1 else speedup > 1,
                )
            )
    big = largest.results.get("usagebill") if largest else None
    if big and largest:
        peak = big.phases["ingest"].peak
        out.append(
            Target(
                f"ingest peak memory at {largest.events:,} events",
                "< 1 GB at 10,000,000",
                f"{peak / 2**20:,.0f} MB",
                peak < GB if largest.events >= 10_000_000 else None,
            )
        )
    for inc in incs:
        out.append(
            Target(
                f"{inc['new_events']:,} new events ({inc['ids']} ids) into {inc_base:,} "
                "vs into empty",
                "≤ 3×",
                f"{inc['ratio']:.2f}×",
                inc["ratio"] <= 3 if (inc_base or 0) >= 10_000_000 else None,
            )
        )
    if help_s:
        med = statistics.median(help_s)
        out.append(Target("usagebill --help", "< 0.3 s", f"{med:.3f} s (median)", med < 0.3))
    return out
