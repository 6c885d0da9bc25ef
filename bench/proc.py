"""Run one contender step as a whole process and measure it: wall time and peak RSS.

Peak memory is the child's own `ru_maxrss` from `os.wait4`, so it is this process's peak
alone (not the maximum over every child so far, as RUSAGE_CHILDREN would give).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    seconds: float  # wall
    peak_bytes: int  # peak resident set
    cpu_seconds: float  # user + system: less sensitive than wall to a busy machine


class StepFailed(RuntimeError):
    pass


ROOT = Path(__file__).resolve().parent.parent  # the repository: `bench` imports from here


def python(module: str, *args: str) -> list[str]:
    """`python -m bench.MODULE ARGS` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def run(
    cmd: list[str],
    *,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Measured:
    """Run `cmd` to completion; stderr is kept for the error message should it fail."""
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=_env(env),
            cwd=cwd,
        )
        assert proc.stderr is not None
        err = proc.stderr.read()  # drained while it runs, so a chatty child never blocks
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        text = err.decode("utf-8", "replace").strip()[-2000:]
        raise StepFailed(f"{' '.join(cmd)} exited {proc.returncode}:\n{text}")
    return Measured(seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime)


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    """The caller's environment with the repository on the path, so that any cwd works.
    A PYTHONPATH given by the caller comes first: `PYTHONPATH=/copy python -m bench` measures
    an experimental copy of the usagebill package. USAGEBILL_MEMORY_LIMIT passes through (the
    default, 512MB, is what is measured)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    return {**env, **(extra or {})}


def drop_into_cache(path: Path) -> None:
    """Read the file once so that no contender pays for the first read from disk."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
