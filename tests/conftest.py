"""Shared fixtures. Every test runs in its own temporary directory with no USAGEBILL_*
variables, so no test can touch a user's real files (simonw/llm's habit)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from usagebill.cli import app
from usagebill.config import Config, parse_config
from usagebill.store import Store

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("USAGEBILL_CONFIG", "USAGEBILL_DB", "USAGEBILL_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def write_events(path: Path, events: list[Any]) -> Path:
    """One JSON object (or raw string) per line."""
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def event(
    event_id: str,
    customer: str = "cus_a",
    name: str = "api.call",
    ts: str | None = "2026-10-05T12:00:00Z",
    **metadata: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"event_id": event_id, "customer_id": customer, "event_name": name}
    if ts is not None:
        out["timestamp"] = ts
    if metadata:
        out["metadata"] = metadata
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "test.duckdb")
    yield s
    s.close()


@pytest.fixture
def ingest(store: Store, tmp_path: Path) -> Callable[..., Any]:
    """ingest(events) writes them to a fresh file and ingests it as one run."""
    counter = iter(range(1_000_000))

    def run(events: list[Any], name: str | None = None) -> Any:
        path = write_events(tmp_path / (name or f"events-{next(counter)}.jsonl"), events)
        return store.ingest([str(path)])

    return run


def config(text: str) -> Config:
    return parse_config(text, "meters.yaml")


@pytest.fixture
def cli() -> Callable[..., Any]:
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None) -> Any:
        return runner.invoke(app, list(args), input=input)

    return invoke
