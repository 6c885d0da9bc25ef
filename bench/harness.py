"""Run the contenders on one event file, interleaved and repeated, and check their answers.

Each repetition runs every contender once, in a rotating order, so that a slow spell of a
noisy machine lands on all of them rather than on one.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data
from bench.common import Answer, differences
from bench.contender import Contender
from bench.contenders import REFERENCE
from bench.proc import Measured, drop_into_cache, run


@dataclass
class PhaseRuns:
    runs: list[Measured] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(m.seconds for m in self.runs)

    @property
    def best(self) -> float:
        return min(m.seconds for m in self.runs)

    @property
    def peak(self) -> int:
        return max(m.peak_bytes for m in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(m.cpu_seconds for m in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": [round(m.seconds, 3) for m in self.runs],
            "cpu_seconds": [round(m.cpu_seconds, 3) for m in self.runs],
            "peak_bytes": [m.peak_bytes for m in self.runs],
            "median_seconds": round(self.median, 3),
            "min_seconds": round(self.best, 3),
            "peak_mb": round(self.peak / 2**20, 1),
        }


@dataclass
class ContenderResult:
    contender: Contender
    phases: dict[str, PhaseRuns] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    answer: Answer = field(default_factory=dict)  # the last run's

    @property
    def total(self) -> PhaseRuns:
        """Whole path per repetition: the phases' times added, the largest peak."""
        lists = [p.runs for p in self.phases.values()]
        runs = [
            Measured(
                sum(m.seconds for m in rep),
                max(m.peak_bytes for m in rep),
                sum(m.cpu_seconds for m in rep),
            )
            for rep in zip(*lists)
        ]
        return PhaseRuns(runs)


@dataclass
class SizeResult:
    events: int
    lines: int
    size_bytes: int
    repeat: int
    results: dict[str, ContenderResult]
    keep: dict[str, Path] = field(default_factory=dict)  # name -> last work dir

    @property
    def agree(self) -> bool:
        return all(not r.mismatches for r in self.results.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "lines": self.lines,
            "bytes": self.size_bytes,
            "repeat": self.repeat,
            "agree": self.agree,
            "contenders": {
                name: {
                    "label": r.contender.label,
                    "phases": {p: runs.to_json() for p, runs in r.phases.items()},
                    "total": r.total.to_json(),
                    "mismatches": r.mismatches,
                }
                for name, r in self.results.items()
            },
        }


def measure(
    n: int,
    contenders: list[Contender],
    repeat: int,
    work: Path = data.WORK,
    log: bool = True,
) -> SizeResult:
    """Every contender `repeat` times on the n-event file; answers checked on every run."""
    events = data.events_file(n, work, log=log)
    config = data.config_file(work)
    drop_into_cache(events)
    results = {c.name: ContenderResult(c) for c in contenders}
    keep: dict[str, Path] = {}
    for rep in range(repeat):
        shift = rep % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            target = c.fresh(work / "run" / c.name)
            timings = []
            for phase in c.phases(events, config, target):
                m = run(phase.cmd, stdout=phase.stdout)
                results[c.name].phases.setdefault(phase.name, PhaseRuns()).runs.append(m)
                timings.append(f"{phase.name} {m.seconds:.2f}s/{m.peak_bytes / 2**20:.0f}MB")
            results[c.name].answer = c.answer(target)
            keep[c.name] = target
            if log:
                head = f"  {n:>11,} events, run {rep + 1}/{repeat}, {c.name:<10}"
                print(head, ", ".join(timings), file=sys.stderr)
        _check(results)
    return SizeResult(n, data.lines_in(events), events.stat().st_size, repeat, results, keep)


def _check(results: dict[str, ContenderResult]) -> None:
    """Every answer against the reference's (or, without it, the first contender's)."""
    answers = {n: r.answer for n, r in results.items()}
    ref = REFERENCE if REFERENCE in answers else next(iter(answers))
    for name, r in results.items():
        if name != ref:
            found = differences(answers[ref], answers[name])
            if found and not r.mismatches:
                r.mismatches = [f"differs from {ref}:", *found]


def discard(result: SizeResult) -> None:
    for path in result.keep.values():
        shutil.rmtree(path, ignore_errors=True)
