"""Contender 1, the product: `usagebill ingest` into a fresh database, then
`usagebill invoice --period 2026-10 --format json`, exactly as a user runs them."""

from __future__ import annotations

import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path

from bench.common import PERIOD, Answer, to_answer
from bench.contender import Contender, Phase


def executable() -> list[str]:
    """The installed console script next to this interpreter (what a user types)."""
    script = Path(sys.executable).parent / "usagebill"
    found = str(script) if script.exists() else shutil.which("usagebill")
    return [found] if found else [sys.executable, "-m", "usagebill"]


def ingest_phase(events: Path, work: Path) -> Phase:
    """`usagebill ingest` of the events into the run's database (shared with `store_sql`)."""
    return Phase("ingest", [*executable(), "ingest", "--db", str(database(work)), str(events)])


def database(work: Path) -> Path:
    """Where a run in `work` keeps its database (the incremental test starts from it)."""
    return work / "usagebill.duckdb"


def phases(events: Path, config: Path, work: Path) -> list[Phase]:
    invoice = ["invoice", "--period", PERIOD, "-c", str(config), "--db", str(database(work))]
    return [
        ingest_phase(events, work),
        Phase("invoice", [*executable(), *invoice, "-f", "json"], stdout=work / "invoices.json"),
    ]


def answer(work: Path) -> Answer:
    """The quantity of every usage line of every invoice."""
    doc = json.loads((work / "invoices.json").read_text(encoding="utf-8"))
    rows: dict[str, dict[str, Decimal]] = {}
    for invoice in doc["invoices"]:
        per = rows.setdefault(invoice["customer_id"], {})
        for line in invoice["lines"]:
            if line["kind"] == "usage":
                per[line["meter_id"]] = Decimal(line["quantity"])
    return to_answer(rows)


CONTENDER = Contender("usagebill", "usagebill", phases, answer)
