"""What every contender shares: the billing period, the meters' ids and the answer format.

The answer is `{customer_id: {meter_id: "decimal"}}` written as JSON: quantities as exact
decimal strings, so that the check compares numbers, not floats.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

# The invoice period every contender bills: cycles starting in October 2026, all UTC.
PERIOD = "2026-10"
LO = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
HI = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
LO_TEXT = "2026-10-01 00:00:00"
HI_TEXT = "2026-11-01 00:00:00"

# bench/meters.yaml's meters, in its order; the hand-written contenders compute these.
METERS = (
    "api_calls",  # count api.call where status = success and region in (eu, us)
    "images_hd",  # count image.generated where quality = hd
    "sms",  # count sms.sent
    "data_gb",  # sum of gb over data.processed (exact decimal)
    "ai_tokens",  # sum of usage.tokens over ai.completion
    "peak_latency_ms",  # max of latency_ms over api.call
    "last_batch_gb",  # gb of the latest data.processed (ties: greatest event_id)
    "active_users",  # distinct user_id over api.call
)

Answer = dict[str, dict[str, str]]


def to_answer(rows: dict[str, dict[str, Any]]) -> Answer:
    """Quantities per customer and meter as decimal text; missing or NULL is 0."""
    return {str(c): {m: _text(values.get(m)) for m in METERS} for c, values in rows.items()}


def write_answer(path: str | Path, rows: dict[str, dict[str, Any]]) -> None:
    Path(path).write_text(json.dumps(to_answer(rows), sort_keys=True), encoding="utf-8")


def sql_answer(sql: str, db: str, out: str) -> None:
    """Run a hand-written aggregation (the customer, then METERS in order) on `db`, opened
    read-only, and write its answer to `out`."""
    import duckdb

    rows = duckdb.connect(db, read_only=True).execute(sql).fetchall()
    write_answer(out, {r[0]: dict(zip(METERS, r[1:])) for r in rows})


def read_answer(path: str | Path) -> Answer:
    data: Answer = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _text(value: Any) -> str:
    if value is None:
        return "0"
    if isinstance(value, float):  # never expected: a float here would lose exactness
        raise TypeError(f"float quantity {value!r}: quantities must be exact")
    return format(Decimal(value).normalize(), "f") if value != 0 else "0"


def differences(expected: Answer, got: Answer, limit: int = 10) -> list[str]:
    """The first `limit` (customer, meter) pairs whose quantities differ; a customer absent
    from one side counts as all zeros there."""
    out = []
    for customer in sorted(set(expected) | set(got)):
        a, b = expected.get(customer, {}), got.get(customer, {})
        for m in METERS:
            x, y = Decimal(a.get(m, "0")), Decimal(b.get(m, "0"))
            if x != y:
                out.append(f"{customer} {m}: expected {x}, got {y}")
                if len(out) >= limit:
                    return out
    return out
