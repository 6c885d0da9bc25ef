"""Contender 3, plain Python: what a finance script does.

    python -m bench.plain_python EVENTS OUT

`json.loads` per line (numbers with a fraction as `Decimal`, so sums are exact), a set of the
event_ids seen (first one stands), timestamps parsed with `datetime.fromisoformat` (offsets
count), and per customer a few dicts and sets. No third-party package.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import HI, LO, Answer, read_answer, write_answer
from bench.contender import Contender, Phase
from bench.proc import python


def aggregate(events: str, out: str) -> None:
    seen: set[str] = set()
    rows: dict[str, dict[str, Any]] = {}
    latest: dict[str, tuple[dt.datetime, str]] = {}  # customer -> (ts, event_id) of last_batch
    users: dict[str, set[Any]] = {}
    loads = json.loads
    parse = dt.datetime.fromisoformat
    with open(events, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            e = loads(line, parse_float=Decimal)
            event_id = e["event_id"]
            if event_id in seen:
                continue
            seen.add(event_id)
            ts = parse(e["timestamp"])
            if not LO <= ts < HI:
                continue
            customer, name, md = e["customer_id"], e["event_name"], e.get("metadata") or {}
            r = rows.get(customer)
            if r is None:
                r = rows[customer] = {}
            if name == "api.call":
                if md.get("status") == "success" and md.get("region") in ("eu", "us"):
                    r["api_calls"] = r.get("api_calls", 0) + 1
                latency = md.get("latency_ms")
                if latency is not None and latency > r.get("peak_latency_ms", latency - 1):
                    r["peak_latency_ms"] = latency
                user = md.get("user_id")
                if user is not None:
                    users.setdefault(customer, set()).add(user)
            elif name == "image.generated":
                if md.get("quality") == "hd":
                    r["images_hd"] = r.get("images_hd", 0) + 1
            elif name == "sms.sent":
                r["sms"] = r.get("sms", 0) + 1
            elif name == "data.processed":
                gb = md.get("gb")
                if gb is not None:
                    r["data_gb"] = r.get("data_gb", 0) + gb
                    key = (ts, event_id)
                    if customer not in latest or key > latest[customer]:
                        latest[customer] = key
                        r["last_batch_gb"] = gb
            elif name == "ai.completion":
                tokens = (md.get("usage") or {}).get("tokens")
                if tokens is not None:
                    r["ai_tokens"] = r.get("ai_tokens", 0) + tokens
    for customer, u in users.items():
        rows[customer]["active_users"] = len(u)
    write_answer(out, rows)


def phases(events: Path, config: Path, work: Path) -> list[Phase]:
    return [Phase("all", python("bench.plain_python", str(events), str(work / "a.json")))]


def answer(work: Path) -> Answer:
    return read_answer(work / "a.json")


CONTENDER = Contender("python", "plain Python", phases, answer)

if __name__ == "__main__":
    aggregate(sys.argv[1], sys.argv[2])
