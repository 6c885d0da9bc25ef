"""`python -m bench`: the benchmark a user runs with one command.

    python -m bench --events 1000000                 # the README's table
    python -m bench --sizes 100000,1000000,10000000  # scaling chart, 10M targets
    python -m bench --events 2000 --repeat 1 --only usagebill,duckdb --no-extras

Runs from the repository root. Inputs are cached in bench/work/, results go to
bench/results/ (both git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path

from bench import contenders, data, harness, report, targets, usagebill_cli

RESULTS = data.BENCH / "results"
BIG = 5_000_000  # sizes from here on run once (each run takes minutes)


def _sizes(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def _compile_bytecode() -> None:
    """Write the .pyc files of usagebill and of the Python contenders before timing them.
    `pip install .` writes them at install time; an editable install in an environment with
    PYTHONDONTWRITEBYTECODE set (as CI images often have) would compile every module on
    every run, and the table would time the compiler."""
    import compileall

    import usagebill

    for package in (Path(usagebill.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(package, quiet=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="the size of the table")
    parser.add_argument(
        "--sizes", type=_sizes, help="comma-separated sizes for the chart (the table is --events)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help=f"runs per contender (1 from {BIG:,} events)"
    )
    parser.add_argument(
        "--only", help="comma-separated contenders: " + ", ".join(c.name for c in contenders.ALL)
    )
    parser.add_argument(
        "--incremental",
        type=int,
        default=100_000,
        help="new events for the incremental test, into the largest size's database (0: skip)",
    )
    parser.add_argument(
        "--no-extras", action="store_true", help="skip the incremental and --help measurements"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    args = parser.parse_args(argv)

    names = args.only.split(",") if args.only else None
    chosen = contenders.available(names)
    for c in contenders.missing(names):
        print(
            f"skipping {c.label}: `pip install {c.needs}` (or the `bench` extra)", file=sys.stderr
        )
    _compile_bytecode()
    sizes = sorted(set((args.sizes or []) + [args.events]))
    results: list[harness.SizeResult] = []
    for n in sizes:
        repeat = args.repeat if n < BIG else 1
        print(f"{n:,} events: {repeat} run(s) of {len(chosen)} contenders", file=sys.stderr)
        results.append(harness.measure(n, chosen, repeat))
    main_result = next(r for r in results if r.events == args.events)
    largest = results[-1]

    incs: list[dict] = []
    help_s = None
    if not args.no_extras and "usagebill" in largest.results:
        if args.incremental:
            base = usagebill_cli.database(largest.keep["usagebill"])
            for random_ids in (False, True):
                incs.append(
                    targets.incremental(
                        base, args.incremental, max(args.repeat, 3), random_ids=random_ids
                    )
                )
        help_s = targets.help_time()
    found = targets.evaluate(main_result, largest, incs, largest.events, help_s)

    for r in results:
        print()
        print(report.table(r))
        for name, c in r.results.items():
            for line in c.mismatches:
                print(f"  {name}: {line}")
    if found:
        print()
        print(report.targets_table(found))
    for inc in incs:
        print(
            f"\nincremental ({inc['ids']} ids): {inc['new_events']:,} new events into "
            f"{largest.events:,}: {statistics.median(inc['into_base_seconds']):.2f} s; into an "
            f"empty database: {statistics.median(inc['into_empty_seconds']):.2f} s"
        )
    if help_s:
        print(
            f"usagebill --help: median {statistics.median(help_s):.3f} s, min {min(help_s):.3f} s"
        )

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out / f"results-{stamp}.json"
    report.write_json(
        out,
        results,
        {
            "main_size": args.events,
            "targets": [t.to_json() for t in found],
            "incremental": incs,
            "help_seconds": help_s,
        },
    )
    print(f"\nresults: {out}")
    if len(results) > 1:
        chart = args.out / f"scaling-{stamp}.png"
        if report.chart(chart, results) and report.chart(chart.with_suffix(".svg"), results):
            print(f"chart: {chart} (and .svg)")
    for r in results:
        harness.discard(r)
    if not all(r.agree for r in results):
        print("the contenders' answers differ: see above", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
