"""What the harness needs of a contender module: its phases as commands, and its answer."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import Answer


@dataclass(frozen=True)
class Phase:
    name: str  # ingest/load, invoice/aggregate, or "all" for single-process contenders
    cmd: list[str]
    stdout: Path | None = None


@dataclass(frozen=True)
class Contender:
    """`phases(events, config, work)` gives the commands, run in order in a fresh `work`
    directory; `answer(work)` reads what they produced."""

    name: str
    label: str
    phases: Callable[[Path, Path, Path], list[Phase]]
    answer: Callable[[Path], Answer]
    needs: str | None = None  # the Python package it needs, if any beyond the project's

    def fresh(self, work: Path) -> Path:
        """An empty working directory for one run of this contender."""
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return work
