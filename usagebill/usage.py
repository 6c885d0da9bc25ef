"""Usage reports: how much each customer used of each meter in a period.

`measure` runs the compiled meter query (one pass over the period's events for every meter
and customer) and turns its rows into `Measure`s; invoices use it too, grouped by cycle.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .config import Config, Meter, suggest
from .cycles import Period, iso, local_midnight
from .errors import OptionError
from .meters import SKIP_REASONS, MeterCompiler
from .money import ZERO, fmt_number, plain
from .sql import Sql
from .store import Store


@dataclass(slots=True)  # not frozen: see pricing.Step
class Measure:
    """One meter for one group: its quantity, the events counted, the events skipped."""

    quantity: Decimal = ZERO
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason text -> events


Group = tuple[Any, ...]


@dataclass
class Measured:
    by_group: dict[Group, dict[str, Measure]]
    unmetered: dict[Group, int]  # events whose event_name no meter counts


# Meters per query. One query covers every meter for every group; past a few hundred meters
# its planning and memory grow fast, so larger configs are measured a few hundred at a time.
CHUNK = 200


def measure(
    store: Store, meters: Sequence[Meter], source: Sql, group_by: Sequence[str]
) -> Measured:
    """Every meter for every group, in one query (one per `CHUNK` meters). `source` yields
    the group columns plus event_name, ts, event_id, metadata."""
    if len(meters) <= CHUNK:
        return _measure(store, meters, source, group_by)
    ordered = sorted(meters, key=lambda m: m.event_name)  # each query reads few event names
    out: dict[Group, dict[str, Measure]] = {}
    for start in range(0, len(ordered), CHUNK):
        part = _measure(store, ordered[start : start + CHUNK], source, group_by, restrict=True)
        for key, per in part.by_group.items():
            out.setdefault(key, {}).update(per)
    names = sorted({m.event_name for m in meters})
    groups = ", ".join(group_by)
    sql = (Sql(f"SELECT {groups}, count(*) FROM (") + source
           + Sql(") WHERE event_name NOT IN (" + ", ".join("?" * len(names)) + ")", tuple(names))
           + f" GROUP BY {groups}")
    unmetered = {tuple(r[:-1]): int(r[-1]) for r in store.query(sql)}
    for key in unmetered:
        out.setdefault(key, {})
    for per in out.values():
        for m in meters:
            per.setdefault(m.id, Measure())
    return Measured(out, unmetered)


def _measure(
    store: Store, meters: Sequence[Meter], source: Sql, group_by: Sequence[str],
    restrict: bool = False, reasons: bool = False,
) -> Measured:
    """One query; when it finds events a meter matched but could not count, a second one
    with the reason for each (most periods skip nothing and pay for one query)."""
    compiled = MeterCompiler(meters).compile(source, group_by, restrict, reasons)
    names, rows = store.query_named(compiled.sql)
    col = {n: i for i, n in enumerate(names)}
    matched = [(col[mc.matched], col[mc.events]) for mc in compiled.meters if mc.matched]
    if not reasons and any(row[i] != row[j] for row in rows for i, j in matched):
        return _measure(store, meters, source, group_by, restrict, reasons=True)
    n_groups, unmetered_at = len(group_by), col[compiled.unmetered]
    # Each meter's columns, found once: a month of 1,000 customers has thousands of rows.
    columns = [
        (mc.meter, col[mc.quantity], col[mc.events], [(r, col[c]) for r, c in mc.skips.items()])
        for mc in compiled.meters
    ]
    out: dict[Group, dict[str, Measure]] = {}
    unmetered: dict[Group, int] = {}
    for row in rows:
        key = tuple(row[:n_groups])
        unmetered[key] = int(row[unmetered_at])
        per: dict[str, Measure] = {}
        for m, quantity, events, skips in columns:
            skipped = {
                SKIP_REASONS[code].format(key=m.aggregation.key): int(row[i])
                for code, i in skips
                if row[i]
            } if skips else {}  # (a query without reasons has no skip columns)
            q = row[quantity]
            per[m.id] = Measure(plain(q) if q is not None else ZERO, int(row[events]), skipped)
        out[key] = per
    return Measured(out, unmetered)


@dataclass(frozen=True)
class UsageRow:
    customer_id: str
    meter_id: str
    quantity: Decimal
    events: int
    unit: str | None
    day: dt.date | None = None


@dataclass(frozen=True)
class Skipped:
    meter_id: str | None  # None: events no meter counts
    reason: str
    events: int


@dataclass
class UsageReport:
    period_start: dt.datetime
    period_end: dt.datetime
    rows: list[UsageRow]
    skipped: list[Skipped]
    by_day: bool = False

    def to_json(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            row: dict[str, Any] = {"customer_id": r.customer_id, "meter_id": r.meter_id}
            if self.by_day:
                row["day"] = r.day.isoformat() if r.day else None
            row.update(quantity=fmt_number(r.quantity), events=r.events, unit=r.unit)
            rows.append(row)
        return {
            "period_start": iso(self.period_start),
            "period_end": iso(self.period_end),
            "rows": rows,
            "skipped": [
                {"meter_id": s.meter_id, "reason": s.reason, "events": s.events}
                for s in self.skipped
            ],
        }


def select_meters(config: Config, meter: str | None) -> list[Meter]:
    if meter is None:
        return list(config.meters)
    if meter not in config.meter:
        raise OptionError(
            f"--meter {meter}: no such meter in {config.source}" + suggest(meter, config.meter)
        )
    return [config.meter[meter]]


def usage_report(
    store: Store,
    config: Config,
    period: Period,
    *,
    customer: str | None = None,
    meter: str | None = None,
    by_day: bool = False,
    as_of: int | None = None,
) -> UsageReport:
    """Quantity per customer and meter (and local day) over `period` in the config's zone."""
    meters = select_meters(config, meter)
    lo, hi = period.window(config.tz)
    events = store.effective_events(lo, hi, as_of)
    source = Sql("SELECT customer_id, event_name, ts, event_id, metadata FROM (") + events + ")"
    if customer is not None:
        source = source + Sql(" WHERE customer_id = ?", (customer,))
    if by_day:  # each event's local day, by the day's first instant as Python's zone data
        # has it (DuckDB's own zone data may differ, and cycles are Python's)
        days = [lo.date() + dt.timedelta(n) for n in range((hi.date() - lo.date()).days + 1)]
        starts = [local_midnight(d, config.tz) for d in days]
        source = (
            Sql("SELECT e.*, d.day FROM (") + source
            + Sql(") e ASOF JOIN (SELECT unnest(?::DATE[]) AS day, unnest(?::TIMESTAMPTZ[]) AS "
                  "first) d ON e.ts >= d.first", (days, starts))
        )
    group_by = ["customer_id", "day"] if by_day else ["customer_id"]
    measured = measure(store, meters, source, group_by)

    rows: list[UsageRow] = []
    skips: dict[tuple[str | None, str], int] = defaultdict(int)
    for key, per in measured.by_group.items():
        for m in meters:
            got = per[m.id]
            for reason, n in got.skipped.items():
                skips[(m.id, reason)] += n
            if by_day and not got.events:
                continue
            rows.append(
                UsageRow(key[0], m.id, got.quantity, got.events, m.unit, key[1] if by_day else None)
            )
    if not by_day:  # configured customers without events get their zero rows too
        seen = {k[0] for k in measured.by_group}
        for c in config.customers:
            if c.id not in seen and (customer is None or customer == c.id):
                rows += [UsageRow(c.id, m.id, ZERO, 0, m.unit) for m in meters]
    if meter is None and sum(measured.unmetered.values()):
        for name, n in _unmetered_names(store, config, events, customer):
            skips[(None, f"no meter counts event_name {name!r}")] += n
    order = {m.id: i for i, m in enumerate(meters)}
    rows.sort(key=lambda r: (r.customer_id, order[r.meter_id], r.day or dt.date.min))
    skipped = [Skipped(m, reason, n) for (m, reason), n in skips.items()]
    skipped.sort(key=lambda s: (s.meter_id is None, order.get(s.meter_id or "", 0), s.reason))
    return UsageReport(lo, hi, rows, skipped, by_day)


def _unmetered_names(
    store: Store, config: Config, events: Sql, customer: str | None
) -> list[tuple[str, int]]:
    """Only asked when some events match no meter: which event names, how many."""
    names = sorted({m.event_name for m in config.meters})
    sql = Sql("SELECT event_name, count(*) FROM (") + events + ") WHERE true"
    if names:
        sql = sql + Sql(
            " AND event_name NOT IN (" + ", ".join("?" * len(names)) + ")", tuple(names)
        )
    if customer is not None:
        sql = sql + Sql(" AND customer_id = ?", (customer,))
    return [(r[0], int(r[1])) for r in store.query(sql + " GROUP BY 1 ORDER BY 1")]
