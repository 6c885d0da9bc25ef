"""Corrections and run tracking must not slow the hot path (the audit-trail issue's target).

    python -m bench.corrections --events 1000000

Ingests the benchmark's events into a fresh database and invoices the month, with and without
a file of corrections for 1% of the events (half voids, half amends), interleaved and repeated;
then times `usagebill explain` for one customer on the corrected database. Run from the
repository root, after `python -m bench` has generated the events (or it generates them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from bench import data
from bench.common import PERIOD
from bench.proc import Measured, run
from bench.run import _compile_bytecode
from bench.usagebill_cli import executable

EVERY = 100  # one event in this many is corrected


def corrections_file(events: Path, work: Path) -> Path:
    """Voids and amends for every EVERY-th event (by line, skipping retried duplicates),
    written after the events, so that each correction finds its target."""
    out = work / f"corrections-{events.stem}.jsonl"
    if out.exists():
        return out
    seen: set[str] = set()
    lines = []
    with events.open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n % EVERY != EVERY // 2:
                continue
            event = json.loads(line)
            target = event["event_id"]
            if target in seen:
                continue
            seen.add(target)
            fix = f"fix-{len(seen):07d}"
            if len(seen) % 2:
                lines.append({"event_id": fix, "void": target, "reason": "bench void"})
            else:
                meta = dict(event.get("metadata") or {})
                if "status" in meta:
                    meta["status"] = "error"
                lines.append(
                    {"event_id": fix, "amend": target, "metadata": meta, "reason": "bench amend"}
                )
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.corrections", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    _compile_bytecode()
    events = data.events_file(args.events)
    config = data.config_file()
    fixes = corrections_file(events, data.WORK)
    exe = executable()
    scratch = data.WORK / "corrections-run"
    runs: dict[str, dict[str, list[Measured]]] = {"plain": {}, "corrected": {}}
    for _ in range(args.repeat):
        for case, inputs in (("plain", [events]), ("corrected", [events, fixes])):
            shutil.rmtree(scratch / case, ignore_errors=True)
            (scratch / case).mkdir(parents=True)
            db = str(scratch / case / "usagebill.duckdb")
            steps = {
                "ingest": [*exe, "ingest", "--db", db, *map(str, inputs)],
                "invoice": [*exe, "invoice", "--period", PERIOD, "-c", str(config), "--db", db,
                            "-f", "json", "-o", str(scratch / case / "invoices.json")],
            }
            for step, cmd in steps.items():
                m = run(cmd)
                runs[case].setdefault(step, []).append(m)
                print(f"  {case:<9} {step:<7} {m.seconds:.2f} s", file=sys.stderr)
    db = str(scratch / "corrected" / "usagebill.duckdb")
    explain = [
        run([*exe, "explain", "--period", PERIOD, "--customer", "cus_00002", "-c", str(config),
             "--db", db]).seconds
        for _ in range(args.repeat)
    ]
    print(f"\n{args.events:,} events, {fixes.read_text(encoding='utf-8').count(chr(10)):,} "
          f"corrections, median of {args.repeat}:")
    for step in ("ingest", "invoice"):
        plain = statistics.median(m.seconds for m in runs["plain"][step])
        fixed = statistics.median(m.seconds for m in runs["corrected"][step])
        print(f"  {step:<7} without {plain:.2f} s, with {fixed:.2f} s: "
              f"{(fixed / plain - 1) * 100:+.1f}% (target: within +10%)")
    print(f"  explain for one customer: median {statistics.median(explain):.2f} s "
          f"(target: well under 1 s)")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
