"""The contenders, in the order the table shows them; DuckDB alone is the reference."""

from __future__ import annotations

import importlib.util

from bench import chdb_engine, duckdb_alone, plain_python, polars_df, store_sql, usagebill_cli
from bench.contender import Contender

ALL: tuple[Contender, ...] = (
    usagebill_cli.CONTENDER,
    duckdb_alone.CONTENDER,
    store_sql.CONTENDER,
    plain_python.CONTENDER,
    polars_df.CONTENDER,
    chdb_engine.CONTENDER,
)
REFERENCE = duckdb_alone.CONTENDER.name


def available(names: list[str] | None = None) -> list[Contender]:
    """The contenders asked for whose packages are installed (`pip install -e '.[bench]'`)."""
    chosen = [c for c in ALL if names is None or c.name in names]
    return [c for c in chosen if c.needs is None or importlib.util.find_spec(c.needs)]


def missing(names: list[str] | None = None) -> list[Contender]:
    return [
        c
        for c in ALL
        if (names is None or c.name in names)
        and c.needs is not None
        and importlib.util.find_spec(c.needs) is None
    ]
