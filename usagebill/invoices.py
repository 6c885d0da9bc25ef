"""Invoices: one per configured customer whose cycle starts in the period.

One SQL pass measures every meter for every (customer, cycle) needed: each customer's cycle
for the period, plus earlier cycles of customers whose credit pools carry history. Cycles
differ per customer, so they are a relation joined to the events, not a query per customer.
Python then prices the aggregated rows, runs the credit ledgers and rounds each line once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from .config import Charge, Config, CreditPool, Customer, Meter, Product, suggest
from .credits import LedgerEntry, ledger
from .cycles import (
    Cycle,
    Month,
    cycle_containing,
    cycle_for,
    cycles_from,
    iso,
    local_midnight,
    parse_month,
)
from .errors import OptionError
from .money import ZERO, count, fmt_money, fmt_number, round_money, total
from .pricing import Priced, Step, price
from .sql import Sql
from .store import Store
from .usage import Measure, measure


@dataclass(slots=True)  # a month of 1,000 customers makes thousands (see pricing.Step)
class Line:
    kind: str  # base | usage | credit
    description: str
    amount: Decimal  # rounded to the currency
    meter_id: str | None = None
    charge: Charge | None = None
    measure: Measure | None = None
    priced: Priced | None = None
    credit_id: str | None = None
    entry: LedgerEntry | None = None
    pool: CreditPool | None = None

    def to_json(self, currency: str) -> dict[str, Any]:
        amount = fmt_money(self.amount, currency)
        if self.kind == "base":
            return {"kind": "base", "description": self.description, "amount": amount}
        if self.kind == "usage":
            assert self.priced is not None
            out = {
                "kind": "usage",
                "meter_id": self.meter_id,
                "description": self.description,
                "quantity": fmt_number(self.priced.quantity),
                "free_units": fmt_number(self.priced.free_units),
                "billable_units": fmt_number(self.priced.billable),
                "amount": amount,
            }
            if self.priced.credits is not None:
                out["credits"] = fmt_number(self.priced.credits)
            return out
        e = self.entry
        assert e is not None
        return {
            "kind": "credit",
            "credit_id": self.credit_id,
            "granted": fmt_number(e.granted),
            "rolled_over": fmt_number(e.rolled_over),
            "consumed": fmt_number(e.consumed),
            "remaining": fmt_number(e.remaining),
            "overage_credits": fmt_number(e.overage),
            "amount": amount,
        }


@dataclass
class Invoice:
    customer: Customer
    product: Product
    cycle: Cycle
    lines: list[Line]
    # The definitions of the meters its product charges, as billed: a closed period is
    # re-measured with these, so editing a meter later makes no adjustment.
    meters: dict[str, Meter] = field(default_factory=dict)
    # Whether its pools' history had started (a cycle before it carries nothing on): a later
    # cycle runs on from the latest closed one that had.
    started: bool = True

    @property
    def total(self) -> Decimal:
        """The sum of the rounded lines (SPEC §5)."""
        return total(line.amount for line in self.lines)

    def to_json(self, currency: str) -> dict[str, Any]:
        return {
            "customer_id": self.customer.id,
            "customer_name": self.customer.title,
            "product_id": self.product.id,
            "period_start": iso(self.cycle.start),
            "period_end": iso(self.cycle.end),
            "lines": [line.to_json(currency) for line in self.lines],
            "total": fmt_money(self.total, currency),
        }


@dataclass(frozen=True)
class Warning:
    kind: str
    message: str
    customer_id: str | None = None
    meter_id: str | None = None
    events: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "customer_id": self.customer_id}
        if self.meter_id is not None:
            out["meter_id"] = self.meter_id
        if self.events is not None:
            out["events"] = self.events
        out["message"] = self.message
        return out


@dataclass
class InvoiceDocument:
    period: Month
    currency: str
    invoices: list[Invoice]
    warnings: list[Warning]
    status: str = "draft"
    adjustments: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": str(self.period),
            "currency": self.currency,
            "status": self.status,
            "invoices": [i.to_json(self.currency) for i in self.invoices],
            "adjustments": self.adjustments,
            "warnings": [w.to_json() for w in self.warnings],
        }


@dataclass
class Plan:
    """What to bill for one customer: its cycle and, for credit pools, the earlier ones."""

    customer: Customer
    product: Product
    cycle: Cycle
    history: list[Cycle]  # oldest first, ending with `cycle`
    pools: dict[str, CreditPool] = field(default_factory=dict)  # the pools its product draws on
    openings: dict[str, Decimal] = field(default_factory=dict)  # pool -> rolled into history[0]
    meters: dict[str, Meter] = field(default_factory=dict)  # charged meter id -> definition
    started: bool = True  # false before the pools' history starts (no event up to `cycle`)


def select_customers(config: Config, customer: str | None) -> list[Customer]:
    if customer is None:
        return sorted(config.customers, key=lambda c: c.id)
    if customer not in config.customer:
        raise OptionError(
            f"--customer {customer}: no such customer in {config.source}"
            + suggest(customer, config.customer)
        )
    return [config.customer[customer]]


def pools_of(config: Config, product: Product) -> list[CreditPool]:
    """The credit pools a product draws on, in the order its charges first name them."""
    ids = dict.fromkeys(ch.credit for ch in product.charges if ch.credit)
    return [config.credit[i] for i in ids if i]


def plan(
    store: Store,
    config: Config,
    month: Month,
    customers: Sequence[Customer],
    as_of: int | None,
    issued: dict[str, Invoice] | None = None,
) -> list[Plan]:
    """Who to bill for which cycle. Customers with an `issued` invoice (a closed period) keep
    its cycle, product and pools: a closed period is re-measured, never re-priced."""
    plans, live = [], set()
    # A product's pools and charged meters, worked out once for all its customers (the plans
    # share these dicts: nothing changes them).
    of_product: dict[str, tuple[dict[str, CreditPool], dict[str, Meter]]] = {}
    for c in customers:
        frozen = (issued or {}).get(c.id)
        if frozen is not None:  # the customer, cycle and pools' opening balances as issued
            credit = _credits(frozen)
            pools = {pid: pool for pid, pool, _ in credit}
            openings = {pid: entry.rolled_over for pid, _, entry in credit}
            meters = frozen.meters or _charged_meters(config, frozen.product)  # older records
            plans.append(Plan(frozen.customer, frozen.product, frozen.cycle, [frozen.cycle],
                              pools, openings, meters=meters))
            continue
        tz = config.customer_timezone(c)
        cycle = cycle_for(month, c.billing_anchor, tz)
        if c.start_date and cycle.end <= local_midnight(c.start_date, tz):
            continue  # no invoice for cycles that end on or before the start date
        product = config.product[c.product]
        if product.id not in of_product:
            of_product[product.id] = (
                {pool.id: pool for pool in pools_of(config, product)},
                _charged_meters(config, product),
            )
        pools, meters = of_product[product.id]
        plans.append(Plan(c, product, cycle, [cycle], pools, meters=meters))
        live.add(id(plans[-1]))
    # A pool's history runs on from the latest closed cycle, from what it carried over, so
    # rollover into later cycles never moves (whatever arrived for closed cycles since, and
    # however the config was edited). Else it starts at the start date, or at the cycle of the
    # first event (and not before a closed cycle whose history had not started); a cycle
    # before it stands alone, carrying nothing on.
    pooled = [p for p in plans if p.pools]
    firsts = _first_events(
        store, [p.customer.id for p in pooled if not p.customer.start_date], as_of
    )
    for p in pooled:
        c, tz = p.customer, config.customer_timezone(p.customer)
        closed = store.issued_before(c.id, str(p.cycle.month), as_of) if id(p) in live else None
        after = invoice_from_record(closed) if closed is not None else None
        if after is not None and after.started:
            p.history = cycles_from(after.cycle.month.next(), month, c.billing_anchor, tz)
            p.history[-1] = p.cycle
            p.openings = {pid: entry.carried for pid, _, entry in _credits(after)}
            continue
        begin = local_midnight(c.start_date, tz) if c.start_date else firsts.get(c.id)
        if begin is None or begin >= p.cycle.end:
            p.started = False
        elif id(p) in live:  # (a closed plan keeps its issued cycle)
            first = cycle_containing(min(begin, p.cycle.start), c.billing_anchor, tz).month
            if after is not None:  # closed before the history started: it starts after
                first = max(first, after.cycle.month.next())
            p.history = cycles_from(first, month, c.billing_anchor, tz)
            p.history[-1] = p.cycle
    return plans


def _credits(inv: Invoice) -> list[tuple[str, CreditPool, LedgerEntry]]:
    """(pool id, pool, ledger entry) of each credit line, as issued for a record."""
    return [(x.credit_id, x.pool, x.entry) for x in inv.lines
            if x.kind == "credit" and x.credit_id and x.pool and x.entry]


def _charged_meters(config: Config, product: Product) -> dict[str, Meter]:
    return {ch.meter: config.meter[ch.meter] for ch in product.charges if ch.meter in config.meter}


def _first_events(store: Store, customers: list[str], as_of: int | None) -> dict[str, dt.datetime]:
    """Each customer's earliest event as it counts: a voided event starts no history, an
    amended one starts it at its corrected time."""
    if not customers:
        return {}
    every = (dt.datetime.min.replace(tzinfo=dt.timezone.utc),
             dt.datetime.max.replace(tzinfo=dt.timezone.utc))
    sql = (
        Sql("SELECT customer_id, min(ts) FROM (")
        + store.effective_events(*every, as_of)
        + Sql(") WHERE customer_id IN (SELECT unnest(?::VARCHAR[]))", (customers,))
    )
    return {r[0]: r[1] for r in store.query(sql + " GROUP BY 1")}


def build_invoices(
    store: Store,
    config: Config,
    month: Month,
    *,
    customer: str | None = None,
    as_of: int | None = None,
    issued: dict[str, Invoice] | None = None,
) -> InvoiceDocument:
    """The invoices of every configured customer (or one) whose cycle starts in `month`.
    `issued` holds a closed period's invoices: their customers are priced as issued, also
    those the config no longer has."""
    issued = issued or {}
    removed = [i.customer for cid, i in sorted(issued.items())
               if cid not in config.customer and customer in (None, cid)]
    if customer is not None and removed:  # the one asked for has left the config since
        customers = removed
    else:
        customers = select_customers(config, customer) + removed
    plans = plan(store, config, month, customers, as_of, issued)
    warnings: list[Warning] = []
    measured, unmetered = measure_plans(store, config, plans, as_of)
    invoices = [_invoice(config, p, measured, warnings) for p in plans]
    for p in plans:
        warnings += _cycle_warnings(
            config,
            p,
            measured.get((p.customer.id, p.cycle.start), {}),
            unmetered.get((p.customer.id, p.cycle.start), 0),
        )
    if customer is None:
        warnings += _unknown_customers(store, config, month, as_of, [c.id for c in customers])
    warnings.sort(key=lambda w: (w.kind, w.customer_id or "", w.meter_id or "", w.message))
    return InvoiceDocument(month, config.currency, invoices, warnings)


Measured = dict[tuple[str, dt.datetime], dict[str, Measure]]


def measure_plans(
    store: Store, config: Config, plans: Sequence[Plan], as_of: int | None
) -> tuple[Measured, dict[tuple[str, dt.datetime], int]]:
    """Every meter for every (customer, cycle) the plans need, in one pass: the cycles are a
    relation joined to the events."""
    cycles = [(p.customer.id, c) for p in plans for c in p.history]
    if not cycles:
        return {}, {}
    # Three lists, not a list of structs: DuckDB binds them in a third of the time.
    relation = (
        [cid for cid, _ in cycles], [c.start for _, c in cycles], [c.end for _, c in cycles]
    )
    events = store.effective_events(
        min(c.start for _, c in cycles), max(c.end for _, c in cycles), as_of
    )
    source = (
        Sql(
            "SELECT c.customer_id, c.cycle_start, e.event_name, e.ts, e.event_id, e.metadata FROM ("
        )
        + events
        + Sql(
            ") e JOIN (SELECT unnest(?::VARCHAR[]) AS customer_id, "
            "unnest(?::TIMESTAMPTZ[]) AS cycle_start, unnest(?::TIMESTAMPTZ[]) AS cycle_end) c "
            "ON e.customer_id = c.customer_id AND e.ts >= c.cycle_start AND e.ts < c.cycle_end",
            relation,
        )
    )
    meters, renames = _meters_to_measure(config, plans)
    result = measure(store, meters, source, ["customer_id", "cycle_start"])
    # Rows come back keyed by the cycle start in UTC; the plans' starts are local times. A
    # local midnight that happens twice (a DST change at 01:00) never equals another zone's
    # datetime (PEP 495), so the rows are keyed by the plans' own start objects.
    starts = {(cid, c.start.astimezone(dt.timezone.utc)): c.start for cid, c in cycles}

    def key(k: tuple[Any, ...]) -> tuple[str, dt.datetime]:
        return k[0], starts[(k[0], k[1].astimezone(dt.timezone.utc))]

    by_group = {key(k): v for k, v in result.by_group.items()}
    for p, rename in zip(plans, renames):
        for c in p.history if rename else ():
            if (got := by_group.get((p.customer.id, c.start))) is not None:
                got.update({mid: got[alias] for mid, alias in rename.items()})
    return by_group, {key(k): v for k, v in result.unmetered.items()}


def _meters_to_measure(
    config: Config, plans: Sequence[Plan]
) -> tuple[list[Meter], list[dict[str, str]]]:
    """The config's meters and, where a closed cycle's plan bills a meter as it was defined
    then, that definition too under an alias; per plan, its meter ids -> their aliases."""
    meters, aliases = list(config.meters), {}
    renames: list[dict[str, str]] = []
    same: dict[int, bool] = {}  # id of a plan's meter -> whether it is the config's
    for p in plans:
        rename = {}
        for mid, m in p.meters.items():
            current = config.meter.get(mid)
            if id(m) not in same:  # `is` first: live plans hold the config's own
                same[id(m)] = current is m or current == m
            if not same[id(m)]:
                key = m.model_dump_json()
                if key not in aliases:
                    aliases[key] = f"{mid}~{len(aliases)}"
                    meters.append(m.model_copy(update={"id": aliases[key]}))
                rename[mid] = aliases[key]
        renames.append(rename)
    return meters, renames


def pool_ledger(config: Config, p: Plan, pool: CreditPool, measured: Measured) -> list[LedgerEntry]:
    """A customer's pool, cycle by cycle over the plan's history."""
    history = []
    for cycle in p.history:
        got = measured.get((p.customer.id, cycle.start), {})
        draws = {
            ch.meter: price(ch, got.get(ch.meter, Measure()).quantity, pool).credits or ZERO
            for ch in p.product.charges
            if ch.credit == pool.id
        }
        history.append((cycle, draws))
    entries = ledger(pool, history, p.openings.get(pool.id, ZERO))
    if not p.started:
        entries[-1] = replace(entries[-1], carried=ZERO)
    return entries


def _invoice(
    config: Config,
    p: Plan,
    measured: dict[tuple[str, dt.datetime], dict[str, Measure]],
    warnings: list[Warning],
) -> Invoice:
    currency, product = config.currency, p.product
    now = measured.get((p.customer.id, p.cycle.start), {})
    lines: list[Line] = []
    if product.base_price is not None:
        lines.append(Line("base", product.title, round_money(product.base_price, currency)))
    for ch in product.charges:
        got = now.get(ch.meter, Measure())
        pool = p.pools.get(ch.credit) if ch.credit else None
        priced = price(ch, got.quantity, pool)
        meter = p.meters.get(ch.meter)
        lines.append(
            Line(
                "usage",
                meter.title if meter else ch.meter,
                round_money(priced.exact, currency),
                ch.meter,
                ch,
                got,
                priced,
            )
        )
    for pool in p.pools.values():
        current = pool_ledger(config, p, pool, measured)[-1]
        lines.append(
            Line(
                "credit",
                pool.title,
                round_money(current.overage_amount, currency),
                credit_id=pool.id,
                entry=current,
                pool=pool,
            )
        )
        if current.overage and pool.overage_unit_price is None:
            warnings.append(
                Warning(
                    "unbilled_overage",
                    f"{p.customer.id} used {fmt_number(current.overage)} credits of "
                    f"{pool.title} beyond its balance; {pool.id} has no overage_unit_price, so "
                    "they are not billed",
                    p.customer.id,
                )
            )
    return Invoice(p.customer, product, p.cycle, lines, p.meters, p.started)


def _cycle_warnings(
    config: Config, p: Plan, now: dict[str, Measure], unmetered: int
) -> list[Warning]:
    """Usage that would otherwise go unbilled without a word."""
    out = []
    # The charged meters as the plan bills them (a closed period's as issued, whatever the
    # config calls them now).
    charged = {m: p.meters[m] for m in (ch.meter for ch in p.product.charges) if m in p.meters}
    # Events a charged meter also looks at are billed through it (an analytics meter such as
    # unique users over api.call is not a gap); only events no charge looks at are. A
    # filtered meter beside a differently filtered charged one (HD images where only standard
    # ones are priced) selects events no charge looks at, unless a charged meter takes all.
    billed_names = {m.event_name for m in charged.values()}
    open_names = {m.event_name for m in charged.values() if m.filter is None}
    cid = p.customer.id
    for m in config.meters:
        got = now.get(m.id)
        if got is None:
            continue
        covered = m.event_name in (billed_names if m.filter is None else open_names)
        if got.events and m.id not in charged and not covered:
            out.append(
                Warning(
                    "unpriced_meter",
                    f"{count(got.events, m.title + ' event')} of {cid} are not billed: product "
                    f"{p.product.id} has no charge for meter {m.id}",
                    cid,
                    m.id,
                    got.events,
                )
            )
        if m.id in charged:
            for reason, n in got.skipped.items():
                out.append(
                    Warning(
                        "skipped_events",
                        f"{count(n, m.event_name + ' event')} of {cid} were not counted by "
                        f"{m.id}: {reason}",
                        cid,
                        m.id,
                        n,
                    )
                )
    if unmetered:
        out.append(
            Warning(
                "unmetered_events",
                f"{count(unmetered, 'event')} of {cid} in this cycle have an event_name no "
                "meter counts",
                cid,
                None,
                unmetered,
            )
        )
    return out


def _unknown_customers(
    store: Store, config: Config, month: Month, as_of: int | None, billed: list[str]
) -> list[Warning]:
    lo, hi = month.window(config.tz)
    known = sorted({*config.customer, *billed})
    sql = Sql("SELECT customer_id, count(*) FROM (") + store.effective_events(lo, hi, as_of) + ")"
    if known:  # one list parameter: a thousand `?` took four times as long to plan
        sql = sql + Sql(" WHERE customer_id NOT IN (SELECT unnest(?::VARCHAR[]))", (known,))
    rows = store.query(sql + " GROUP BY 1 ORDER BY 1")
    return [
        Warning(
            "unknown_customer",
            f"{count(int(n), 'event')} from customer {cid!r}, which is not in the config: "
            "not billed",
            cid,
            None,
            int(n),
        )
        for cid, n in rows
    ]


def credit_ledgers(
    store: Store,
    config: Config,
    month: Month,
    *,
    customer: str | None = None,
    as_of: int | None = None,
) -> list[tuple[Customer, CreditPool, list[LedgerEntry]]]:
    """Every customer's credit pools, cycle by cycle, up to the cycle starting in `month`.
    A closed cycle shows the figures it was issued with (SPEC §8); the cycles after the
    latest closed one continue from what it carried, and those before the first closed one
    are measured as the data stands now."""
    customers = select_customers(config, customer)
    ledgers = _live_ledgers(store, config, month, customers, as_of)
    closed: dict[str, dict[str, list[tuple[CreditPool, LedgerEntry]]]] = {}
    wanted = {c.id for c in customers}
    for cid, record in store.issued_up_to(str(month), as_of):
        if cid in wanted:
            for pid, pool, entry in _credits(invoice_from_record(record)):
                closed.setdefault(cid, {}).setdefault(pid, []).append((pool, entry))
    if not closed:
        return ledgers
    # Open cycles before and between closed ones, measured now: the live ledger up to a
    # closed cycle runs from the previous closed one (one pass per month).
    months: dict[Month, list[Customer]] = {}
    for c in customers:
        for m in {e.cycle.month for pools in closed.get(c.id, {}).values() for _, e in pools}:
            months.setdefault(m, []).append(c)
    between: dict[tuple[str, str], list[LedgerEntry]] = {}
    for m, group in months.items():
        for c, pool, entries in _live_ledgers(store, config, m, group, as_of):
            between.setdefault((c.id, pool.id), []).extend(entries)
    # The live ledgers, then pools that only closed cycles still have.
    pools = {(c.id, pool.id): (c, pool, entries) for c, pool, entries in ledgers}
    for c in customers:
        for pid, issued in closed.get(c.id, {}).items():
            pools.setdefault((c.id, pid), (c, issued[-1][0], []))
    # By billing period: an issued cycle stands for its month, whatever anchor or time zone
    # the config gives the customer now.
    merged: dict[tuple[str, str], dict[Month, LedgerEntry]] = {}
    for key, (c, pool, entries) in pools.items():
        if issued := closed.get(c.id, {}).get(pool.id, []):
            merged[key] = {e.cycle.month: e for e in [*between.get(key, []), *entries]}
            merged[key].update((e.cycle.month, e) for _, e in issued)
    # A month still missing (an open cycle before the pool's history starts, after a closed
    # one) is measured on its own, so that the ledger runs cycle after cycle.
    gaps: dict[Month, dict[str, Customer]] = {}
    for (cid, pid), cycles in merged.items():
        m = min(cycles)
        while m < month:
            if m not in cycles:
                gaps.setdefault(m, {})[cid] = pools[(cid, pid)][0]
            m = m.next()
    for m, group in gaps.items():
        for c, pool, entries in _live_ledgers(store, config, m, list(group.values()), as_of):
            if (c.id, pool.id) in merged and entries and entries[-1].cycle.month == m:
                merged[(c.id, pool.id)].setdefault(m, entries[-1])
    out = [(c, pool, [merged[key][m] for m in sorted(merged[key])] if key in merged else entries)
           for key, (c, pool, entries) in pools.items()]
    return sorted(out, key=lambda x: x[0].id)  # pools only closed cycles have, in their place


def _live_ledgers(
    store: Store, config: Config, month: Month, customers: Sequence[Customer], as_of: int | None
) -> list[tuple[Customer, CreditPool, list[LedgerEntry]]]:
    """The ledgers as invoices compute them: from the cycle after the latest closed one."""
    plans = [p for p in plan(store, config, month, customers, as_of) if p.pools]
    measured, _ = measure_plans(store, config, plans, as_of)
    return [
        (p.customer, pool, pool_ledger(config, p, pool, measured))
        for p in plans
        for pool in p.pools.values()
    ]


def ledger_json(
    customer: Customer, pool: CreditPool, entries: list[LedgerEntry], currency: str
) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": customer.id,
            "credit_id": pool.id,
            "cycle_start": iso(e.cycle.start),
            "cycle_end": iso(e.cycle.end),
            "balance_before": fmt_number(e.balance_before),
            "rolled_over": fmt_number(e.rolled_over),
            "granted": fmt_number(e.granted),
            "consumed": fmt_number(e.consumed),
            "from_rollover": fmt_number(e.from_rollover),
            "from_grant": fmt_number(e.from_grant),
            "overage_credits": fmt_number(e.overage),
            "overage_amount": fmt_money(e.overage_amount, currency),
            "expired": fmt_number(e.expired),
            "carried": fmt_number(e.carried),
            "balance_after": fmt_number(e.remaining),
        }
        for e in entries
    ]


# -- issued-invoice records -------------------------------------------------------------------
# A closed period keeps each invoice as a full record (customer, product, prices, steps,
# credit figures as they were), so that editing the config later never changes it.


def to_record(value: Any) -> Any:
    """An invoice (or any part of one) as plain JSON data: decimals as exact text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Meter):
        return _meter_record(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Cycle):
        return {"month": str(value.month), "start": iso(value.start), "end": iso(value.end)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_record(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_record(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_record(v) for v in value]
    return value


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _cycle(data: dict[str, str]) -> Cycle:
    return Cycle(parse_month(data["month"]), dt.datetime.fromisoformat(data["start"]),
                 dt.datetime.fromisoformat(data["end"]))


def _line(data: dict[str, Any]) -> Line:
    priced = measure_ = entry = None
    if data.get("priced"):
        p = data["priced"]
        steps = tuple(
            Step(**{k: (v if k == "tier" else _dec(v)) for k, v in step.items()})
            for step in p["steps"]
        )
        priced = Priced(Decimal(p["quantity"]), Decimal(p["free_units"]), Decimal(p["billable"]),
                        Decimal(p["exact"]), steps, _dec(p["credits"]))
    if data.get("measure"):
        m = data["measure"]
        measure_ = Measure(Decimal(m["quantity"]), m["events"], m["skipped"])
    if data.get("entry"):
        e = data["entry"]
        entry = LedgerEntry(
            _cycle(e["cycle"]), Decimal(e["rolled_over"]), Decimal(e["granted"]),
            {k: Decimal(v) for k, v in e["draws"].items()}, Decimal(e["from_rollover"]),
            Decimal(e["from_grant"]), Decimal(e["overage"]), Decimal(e["carried"]),
            Decimal(e["overage_amount"]),
        )
    return Line(
        data["kind"], data["description"], Decimal(data["amount"]), data["meter_id"],
        Charge.model_validate(data["charge"]) if data.get("charge") else None, measure_, priced,
        data["credit_id"], entry,
        CreditPool.model_validate(data["pool"]) if data.get("pool") else None,
    )


def invoice_from_record(data: dict[str, Any]) -> Invoice:
    return Invoice(Customer.model_validate(data["customer"]),
                   Product.model_validate(data["product"]), _cycle(data["cycle"]),
                   [_line(x) for x in data["lines"]],
                   {k: _meter(v) for k, v in (data.get("meters") or {}).items()},
                   data.get("started", True))


def _meter_record(meter: Meter) -> dict[str, Any]:
    """A meter as JSON. A filter value that is a decimal is written {"decimal": "5.5"}: as a
    plain string it would read back as text, and compare as text."""

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"decimal": str(x)} if k == "value" and isinstance(x, Decimal)
                        else walk(x)) for k, x in v.items()}
        return [walk(x) for x in v] if isinstance(v, list) else to_record(v)

    return walk(meter.model_dump(mode="python"))


_METERS: dict[str, Meter] = {}


def _meter(data: dict[str, Any]) -> Meter:
    """A meter from its record, parsed once however many issued invoices hold it (and then
    one object, so comparing it with the config's is done once per plan's meter)."""
    key = repr(data)
    if key not in _METERS:
        _METERS[key] = _parse_meter(data)
    return _METERS[key]


def _parse_meter(data: dict[str, Any]) -> Meter:

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            if set(v) == {"decimal"}:
                return Decimal(v["decimal"])
            return {k: walk(x) for k, x in v.items()}
        return [walk(x) for x in v] if isinstance(v, list) else v

    return Meter.model_validate(walk(data))
