"""`explain`: how each invoice line came about, as a worked example a person can check.

For usage lines: the meter, its aggregation and filter in words, events counted and skipped,
quantity, free units, billable units, each pricing step, the exact amount and the rounded
one. For credit lines: the opening balance, what each charge drew, overage and rollover.
`explain_events` lists the events behind the lines (what `--events FILE` writes).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from .closing import as_issued
from .config import Config, Meter
from .cycles import Month, iso
from .errors import OptionError
from .invoices import Invoice, Line, build_invoices, invoice_from_record
from .meters import MeterCompiler, describe_filter, describe_meter
from .money import count, fmt_money, fmt_number
from .pricing import Step
from .sql import Sql
from .store import Store
from .usage import select_meters


def _invoice(store: Store, config: Config, month: Month, customer: str,
             as_of: int | None) -> tuple[Invoice, Invoice | None]:
    """The invoice as it stands now, and the issued one when the period is closed (then the
    current one is priced as issued, like `invoice` does for adjustments)."""
    issued = None
    if store.closing(str(month), as_of) is not None:
        issued = next((invoice_from_record(r) for r in store.issued(str(month))
                       if r["customer"]["id"] == customer), None)
    doc = build_invoices(store, config, month, customer=customer, as_of=as_of,
                         issued={customer: issued} if issued else None)
    if not doc.invoices:
        raise OptionError(
            f"--customer {customer}: no invoice for {month} "
            f"(its start_date is {config.customer[customer].start_date})"
        )
    return doc.invoices[0], issued


def _exact(value: Decimal) -> str:
    return f"{value:f}"


def step_json(step: Step) -> dict[str, Any]:
    if step.packages is not None:
        return {"units": fmt_number(step.units), "packages": fmt_number(step.packages),
                "package_size": fmt_number(step.package_size or 0),
                "package_price": str(step.package_price), "amount": _exact(step.amount)}
    out: dict[str, Any] = {} if step.tier is None else {"tier": step.tier}  # the tier's number
    return {**out, "units": fmt_number(step.units), "unit_price": str(step.unit_price),
            "flat_price": str(step.flat_price if step.flat_price is not None else 0),
            "amount": _exact(step.amount)}


def _line_json(
    meters: dict[str, Meter], line: Line, currency: str, base_price: Decimal | None = None
) -> dict[str, Any]:
    amount = fmt_money(line.amount, currency)
    if line.kind == "base":  # the product's price as written, then rounded
        exact = base_price if base_price is not None else line.amount
        return {"kind": "base", "description": line.description,
                "exact_amount": _exact(exact), "amount": amount}
    if line.kind == "usage":
        assert line.priced and line.charge and line.measure and line.meter_id
        meter, ch, p = meters.get(line.meter_id), line.charge, line.priced
        out: dict[str, Any] = {
            "kind": "usage", "meter_id": line.meter_id, "description": line.description,
            "aggregation": describe_meter(meter) if meter else "",
            "filter": describe_filter(meter.filter) if meter else "",
            "model": "credits" if ch.credit else ch.model,
            "quantity": fmt_number(p.quantity), "events": line.measure.events,
            "skipped": [{"reason": r, "events": n} for r, n in line.measure.skipped.items()],
            "free_units": fmt_number(p.free_units), "billable_units": fmt_number(p.billable),
            "exact_amount": _exact(p.exact), "amount": amount,
            "steps": [step_json(s) for s in p.steps],
        }
        if p.credits is not None:
            out.update(credit_id=ch.credit, units_per_credit=fmt_number(ch.units_per_credit or 1),
                       credits=fmt_number(p.credits))
        return out
    e, pool = line.entry, line.pool
    assert e is not None and pool is not None
    return {
        "kind": "credit", "credit_id": line.credit_id, "description": line.description,
        "rolled_over": fmt_number(e.rolled_over), "granted": fmt_number(e.granted),
        "opening_balance": fmt_number(e.balance_before),
        "draws": [{"meter_id": m, "credits": fmt_number(c)} for m, c in e.draws.items()],
        "consumed": fmt_number(e.consumed), "from_rollover": fmt_number(e.from_rollover),
        "from_grant": fmt_number(e.from_grant), "overage_credits": fmt_number(e.overage),
        "overage_unit_price": (str(pool.overage_unit_price)
                               if pool.overage_unit_price is not None else None),
        "exact_amount": _exact(e.overage_amount), "amount": amount,
        "remaining": fmt_number(e.remaining), "expires": fmt_number(e.expired),
        "rollover_percent": fmt_number(pool.rollover_percent or 0),
        "carries_over": fmt_number(e.carried),
    }


def explain(store: Store, config: Config, month: Month, customer: str, *,
            meter: str | None = None, as_of: int | None = None) -> dict[str, Any]:
    """The explanation document (SPEC §8)."""
    if (closing := store.closing(str(month), as_of)) is not None:
        config = as_issued(config, closing)
    inv, issued = _invoice(store, config, month, customer, as_of)
    if meter is not None and meter not in inv.meters:  # (an issued invoice keeps its meters)
        select_meters(config, meter)  # a clear error for an unknown --meter
    lines = [
        _line_json(inv.meters, line, config.currency, inv.product.base_price)
        for line in inv.lines
        if meter is None or line.meter_id == meter
    ]
    out = {
        "customer_id": inv.customer.id, "period": str(month), "currency": config.currency,
        "status": "closed" if issued else "draft",
        "period_start": iso(inv.cycle.start), "period_end": iso(inv.cycle.end),
        "lines": lines, "total": fmt_money(inv.total, config.currency),
    }
    if issued is not None:  # what was sent, so the difference is in plain sight
        out["issued_total"] = fmt_money(issued.total, config.currency)
    return out


def explain_text(doc: dict[str, Any]) -> list[str]:
    """The explanation as a worked example, line by line."""
    cur = doc["currency"]
    out = [f"{doc['customer_id']} · {doc['period_start']} → {doc['period_end']}", ""]
    for x in doc["lines"]:
        if x["kind"] == "base":
            out += [f"{x['description']}: base price {x['exact_amount']} → {x['amount']} {cur}", ""]
            continue
        if x["kind"] == "usage":
            out.append(f"{x['description']} ({x['meter_id']}): {x['aggregation']}; "
                       f"filter: {x['filter']}")
            skipped = "; ".join(f"{s['events']:,} skipped: {s['reason']}" for s in x["skipped"])
            out.append(f"  {count(x['events'], 'event')} counted"
                       + (f"; {skipped}" if skipped else ""))
            out.append(f"  quantity {x['quantity']} − free {x['free_units']} = billable "
                       f"{x['billable_units']}")
            if "credits" in x:
                out.append(f"  {x['billable_units']} ÷ {x['units_per_credit']} per credit, "
                           f"rounded up = {x['credits']} {x['credit_id']} credits (no money)")
            for s in x["steps"]:
                if "packages" in s:
                    out.append(f"  {s['units']} units in packages of {s['package_size']} = "
                               f"{s['packages']} packages × {s['package_price']} = {s['amount']}")
                else:
                    label = f"tier {s['tier']}: " if "tier" in s else ""
                    flat = f" + {s['flat_price']}" if Decimal(s["flat_price"]) else ""
                    out.append(f"  {label}{s['units']} × {s['unit_price']}{flat} = {s['amount']}")
            out += [f"  exact {x['exact_amount']} → rounded {x['amount']} {cur}", ""]
            continue
        draws = ", ".join(f"{d['meter_id']} {d['credits']}" for d in x["draws"]) or "nothing"
        out += [
            f"{x['description']} ({x['credit_id']}): opening balance {x['opening_balance']} = "
            f"{x['rolled_over']} rolled over + {x['granted']} granted",
            f"  drawn: {draws}; consumed {x['consumed']} = {x['from_rollover']} from rollover "
            f"+ {x['from_grant']} from the grant + {x['overage_credits']} overage",
            f"  overage {x['overage_credits']} × {x['overage_unit_price'] or 'not billed'} = "
            f"{x['exact_amount']} → {x['amount']} {cur}",
            f"  left {x['remaining']}; expiring {x['expires']}; carried into the next cycle "
            f"{x['carries_over']} ({x['rollover_percent']}% of the unused grant, rounded down)",
            "",
        ]
    if doc.get("issued_total") is not None:
        out.append(f"Total now {doc['total']} {cur}; issued when {doc['period']} was closed: "
                   f"{doc['issued_total']} {cur} (`usagebill invoice` shows the adjustments)")
    else:
        out.append(f"Total {doc['total']} {cur}")
    return out


EVENTS_HEADER = ["meter_id", "event_id", "file", "line", "run", "timestamp", "value",
                 "corrected_by"]


def explain_events(store: Store, config: Config, month: Month, customer: str, *,
                   meter: str | None = None, as_of: int | None = None) -> list[list[Any]]:
    """The events behind each usage line, by meter, then timestamp, then event_id. A voided
    event is absent; an amended one has its amended values and the correction's event_id."""
    inv, _ = _invoice(store, config, month, customer, as_of)
    # The meters as the invoice was billed with: a closed one keeps its own.
    meters = [inv.meters[ch.meter] for ch in inv.product.charges
              if ch.meter in inv.meters and (meter is None or ch.meter == meter)]
    if not meters:
        return []
    events = store.effective_events(inv.cycle.start, inv.cycle.end, as_of)
    source = (Sql("SELECT event_name, ts, event_id, metadata, file, line, run, corrected_by "
                  "FROM (") + events + Sql(") WHERE customer_id = ?", (customer,)))
    carry = ["file", "line", "run", "corrected_by"]
    rows = store.query(MeterCompiler(meters).compile_rows(source, carry))
    out = []
    for m, file, line, run, corrected_by, ts, event_id, value in rows:
        shown = value
        # Numbers as numbers (a unique_count's 5 and 5.0 are one value, so one text), other
        # JSON values as their text.
        if value is not None and (meters[m].aggregation.type != "unique_count"
                                  or value[:1] == "-" or value[:1].isdigit()):
            shown = fmt_number(Decimal(value))
        out.append([meters[m].id, event_id, file, line, run,
                    ts.astimezone(dt.timezone.utc).isoformat(), shown, corrected_by or ""])
    return out
