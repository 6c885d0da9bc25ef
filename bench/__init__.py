"""usagebill's benchmark: the product against the scripts people write instead.

`python -m bench --events 1000000` (from the repository root) generates a deterministic event
file, runs every contender on it as whole processes, checks that they all bill the same
quantities and prints a table. See `bench/run.py` for the options and the README's
"Benchmarks" section for what each contender does.

Every contender lives in its own module and runs as `python -m bench.<module> ...`, so that
its wall time and peak memory are those of a process a user would run.
"""
