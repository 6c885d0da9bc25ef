"""The benchmark's inputs, generated once and cached under bench/work/ (git-ignored).

- `events-N.jsonl`: `python -m usagebill.sample --events N` (deterministic, ~200 bytes an
  event, October 2026, 1,000 customers) followed by one retry of every 100th event, sent again
  unchanged: real feeds repeat events, and every contender must de-duplicate them.
- `new-N.jsonl`: N further events (another seed, so new event_ids) for the incremental test.
- `meters.yaml`: bench/meters.yaml plus 1,000 customers, all UTC with cycles on the 1st, so
  that the hand-written contenders bill the same calendar month.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work"
CUSTOMERS = 1000
RETRY_EVERY = 100  # one event in this many is sent twice


def _generate(n: int, seed: int, out: Path) -> float:
    """Run the project's own generator; returns the seconds it took."""
    started = time.perf_counter()
    tmp = out.with_suffix(".tmp")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "usagebill.sample",
            "--events",
            str(n),
            "--customers",
            str(CUSTOMERS),
            "--seed",
            str(seed),
            "--out",
            str(tmp),
        ],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    os.replace(tmp, out)
    return time.perf_counter() - started


def events_file(n: int, work: Path = WORK, log: bool = True) -> Path:
    """`n` distinct events plus n/100 retried duplicates (generated on first use)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"events-{n}.jsonl"
    if path.exists():
        return path
    sample = work / f"sample-{n}.jsonl"
    seconds = 0.0
    if not sample.exists() or _lines(sample) != n:
        seconds = _generate(n, 1, sample)
    retries = []
    with open(sample, "rb") as f:
        for i, line in enumerate(f):
            if i % RETRY_EVERY == RETRY_EVERY // 2:
                retries.append(line)
    with open(sample, "ab") as f:
        f.writelines(retries)
    os.replace(sample, path)
    if log:
        print(
            f"generated {path.name}: {n:,} events + {len(retries):,} retries, "
            f"{path.stat().st_size / 1e6:,.0f} MB in {seconds:,.0f} s",
            file=sys.stderr,
        )
    return path


def new_events_file(n: int, work: Path = WORK, random_ids: bool = False) -> Path:
    """`n` events with event_ids no other file has (seed 2), for the incremental test.

    The generator's ids (`evt_02_...`) all sort after the stored ones (`evt_01_...`), as
    time-ordered ids (ULIDs, counters) do, which lets DuckDB skip stored row groups by their
    min/max; `random_ids` rewrites them as UUID-like hex spread over the stored range, the
    harder case."""
    work.mkdir(parents=True, exist_ok=True)
    plain = work / f"new-{n}.jsonl"
    if not plain.exists():
        _generate(n, 2, plain)
    if not random_ids:
        return plain
    path = work / f"new-{n}-random-ids.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with open(plain, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as out:
            for line in src:
                event = json.loads(line)
                digest = hashlib.sha1(event["event_id"].encode()).hexdigest()
                event["event_id"] = str(uuid.UUID(digest[:32]))
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
        os.replace(tmp, path)
    return path


def config_file(work: Path = WORK) -> Path:
    """bench/meters.yaml with the customers appended (every other one on each product)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "meters.yaml"
    text = (BENCH / "meters.yaml").read_text(encoding="utf-8")
    customers = "".join(
        f"  - {{id: cus_{i:05d}, product: {'pro' if i % 2 == 0 else 'starter'}}}\n"
        for i in range(1, CUSTOMERS + 1)
    )
    full = text.rstrip("\n") + "\n\ncustomers:\n" + customers
    if not path.exists() or path.read_text(encoding="utf-8") != full:
        path.write_text(full, encoding="utf-8")
    return path


def lines_in(path: Path) -> int:
    return _lines(path)


def _lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n
