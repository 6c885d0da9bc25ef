"""Output: tables (rich), JSON and CSV. No arithmetic here: every number arrives as text or
as a Decimal already rounded where it is money. rich is imported by the functions that draw
tables: JSON and CSV, what scripts and CI read, don't pay for it."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable, Sequence
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from .config import Config
from .cycles import iso
from .invoices import InvoiceDocument
from .meters import describe_filter, describe_meter
from .money import ZERO, fmt_money, fmt_number, fmt_price, minor_units, total
from .usage import UsageReport

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def to_json(doc: Any) -> str:
    """One JSON document, keys in the documented order, ending in a newline. orjson writes
    the same bytes as `json.dumps(doc, indent=2, ensure_ascii=False)`, a hundred times faster
    (Python's own encoder is pure Python once it indents: most of a 1,000-invoice run)."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def canonical_json(doc: Any) -> str:
    """Sorted keys and fixed indentation, so that snapshot files diff well in git."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return out.getvalue()


def console(file: TextIO | None = None) -> Console:
    """A console for reports. On a terminal it fits the window; into a pipe or a file it is
    wide (so ids and money are never wrapped) and has no colour codes."""
    from rich.console import Console

    out = Console(file=file, highlight=False)
    if not out.is_terminal:
        out = Console(file=file, highlight=False, width=200, no_color=True)
    return out


def _t(value: Any) -> Text:
    """Data goes into tables as Text, never as markup: a customer named "[red]" stays text."""
    from rich.text import Text

    return Text("" if value is None else str(value))


def _money(amount: Decimal | str, currency: str) -> Text:
    from rich.text import Text

    value = Decimal(amount)
    return Text(f"{value:,.{minor_units(currency)}f}")


def _qty(value: str | Decimal | int | None) -> Text:
    from rich.text import Text

    if value is None or value == "":
        return Text("")
    d = Decimal(str(value))
    whole = d == d.to_integral_value()
    return Text(f"{d:,.0f}" if whole else f"{d:,f}")


# -- usage ------------------------------------------------------------------------------------


def usage_table(report: UsageReport, out: Console) -> None:
    from rich import box
    from rich.table import Table

    doc = report.to_json()
    table = Table(box=box.SIMPLE_HEAD, title=f"Usage {doc['period_start']} → {doc['period_end']}")
    table.add_column("Customer")
    if report.by_day:
        table.add_column("Day")
    table.add_column("Meter")
    table.add_column("Quantity", justify="right")
    table.add_column("Unit")
    table.add_column("Events", justify="right")
    for r in doc["rows"]:
        cells = [_t(r["customer_id"])]
        if report.by_day:
            cells.append(_t(r["day"]))
        cells += [_t(r["meter_id"]), _qty(r["quantity"]), _t(r["unit"]), _qty(r["events"])]
        table.add_row(*cells)
    out.print(table)
    if doc["skipped"]:
        skipped = Table(box=box.SIMPLE_HEAD, title="Skipped events (not counted)")
        skipped.add_column("Meter")
        skipped.add_column("Reason")
        skipped.add_column("Events", justify="right")
        for s in doc["skipped"]:
            skipped.add_row(_t(s["meter_id"] or "(none)"), _t(s["reason"]), _qty(s["events"]))
        out.print(skipped)
    if report.by_day and out.is_terminal:
        usage_sparklines(report, out)


SPARKS = "▁▂▃▄▅▆▇█"
MAX_SPARK = 62  # cells; a longer period shows the largest day of each group of days


def sparkline(values: Sequence[Decimal]) -> str:
    """One cell per value, scaled to the largest: █ the largest, ▁ the least above zero,
    · nothing (zero or below)."""
    top = max(values, default=Decimal(0))
    cells = []
    for v in values:
        if v <= 0 or top <= 0:
            cells.append("·")
        else:
            level = int((v * len(SPARKS) / top).to_integral_value(rounding=ROUND_CEILING))
            cells.append(SPARKS[min(max(level, 1), len(SPARKS)) - 1])
    return "".join(cells)


def usage_sparklines(report: UsageReport, out: Console) -> None:
    """On a terminal, after the day table: one line per customer and meter, a cell a day."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    first = report.period_start.date()
    days = (report.period_end.date() - first).days
    per_day: dict[tuple[str, str], dict[int, Decimal]] = {}
    for r in report.rows:
        if r.day is not None:
            per_day.setdefault((r.customer_id, r.meter_id), {})[(r.day - first).days] = r.quantity
    step = -(-days // MAX_SPARK)  # days per cell, rounded up
    last = report.period_end.date() - datetime.timedelta(days=1)
    table = Table(box=box.SIMPLE_HEAD, title="Daily usage")
    table.add_column("Customer")
    table.add_column("Meter")
    span = f"{first:%d %b} → {last:%d %b}" + (f" ({step} days a cell)" if step > 1 else "")
    table.add_column(span, no_wrap=True)
    table.add_column("Peak day", justify="right")
    for (customer, meter), got in per_day.items():
        values = [
            max((got.get(d, Decimal(0)) for d in range(i, min(i + step, days))), default=Decimal(0))
            for i in range(0, days, step)
        ]
        peak = max(got, key=lambda d: (got[d], -d))
        table.add_row(
            _t(customer),
            _t(meter),
            _t(sparkline(values)),
            Text.assemble(_qty(got[peak]), f" on {first + datetime.timedelta(days=peak):%d %b}"),
        )
    out.print(table)


def usage_csv(report: UsageReport) -> str:
    doc = report.to_json()
    header = [
        "customer_id",
        *(["day"] if report.by_day else []),
        "meter_id",
        "quantity",
        "events",
        "unit",
    ]
    return to_csv(header, ([r[h] for h in header] for r in doc["rows"]))


# -- invoices ---------------------------------------------------------------------------------


def invoice_table(doc: InvoiceDocument, out: Console) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cur = doc.currency
    for inv in doc.invoices:
        data = inv.to_json(cur)
        table = Table(
            box=box.SIMPLE_HEAD,
            title=Text(
                f"{data['customer_id']} · {data['customer_name']} · {inv.product.title}"
                f" · {data['period_start']} → {data['period_end']}"
            ),
            title_justify="left",
        )
        for name, just in (
            ("Line", "left"),
            ("Quantity", "right"),
            ("Free", "right"),
            ("Billable", "right"),
            (f"Amount ({cur})", "right"),
        ):
            width = 44 if name == "Line" else None  # long credit lines wrap
            table.add_column(name, justify=just, max_width=width)  # type: ignore[arg-type]
        pools = {x.credit_id: x.description for x in inv.lines if x.kind == "credit"}
        for line in data["lines"]:
            if line["kind"] == "base":
                table.add_row(
                    _t(f"{line['description']} (base price)"),
                    _t(""),
                    _t(""),
                    _t(""),
                    _money(line["amount"], cur),
                )
            elif line["kind"] == "usage":
                label = line["description"]
                if "credits" in line:
                    label += f" → {line['credits']} credits"
                table.add_row(
                    _t(label),
                    _qty(line["quantity"]),
                    _qty(line["free_units"]),
                    _qty(line["billable_units"]),
                    _money(line["amount"], cur),
                )
            else:
                label = (
                    f"{pools.get(line['credit_id'], line['credit_id'])}: {line['granted']} "
                    f"granted + {line['rolled_over']} rolled over, {line['consumed']} used, "
                    f"{line['remaining']} left, {line['overage_credits']} overage"
                )
                table.add_row(_t(label), _t(""), _t(""), _t(""), _money(line["amount"], cur))
        table.add_section()
        table.add_row(
            Text("Total", style="bold"),
            _t(""),
            _t(""),
            _t(""),
            Text(f"{Decimal(data['total']):,.{minor_units(cur)}f}", style="bold"),
        )
        out.print(table)
    grand = total(inv.total for inv in doc.invoices)
    n = len(doc.invoices)
    out.print(
        Text(
            f"{n} invoice{'s' if n != 1 else ''} for {doc.period} ({doc.status}), "
            f"total {cur} {grand:,.{minor_units(cur)}f}",
            style="bold",
        )
    )
    for adj in doc.adjustments:
        out.print(
            Text(f"Adjustment since closing, {adj['customer_id']}: {adj['total_difference']} {cur}")
        )
        for line in adj["lines"]:
            what = line.get("meter_id") or line.get("credit_id")
            out.print(
                Text(
                    f"  {line['kind']}{' ' + what if what else ''}: issued {line['issued']}, now "
                    f"{line['current']}, difference {line['difference']}"
                )
            )


INVOICE_CSV_HEADER = [
    "period",
    "status",
    "customer_id",
    "customer_name",
    "period_start",
    "period_end",
    "kind",
    "meter_id",
    "credit_id",
    "description",
    "quantity",
    "free_units",
    "billable_units",
    "unit_price",
    "credits",
    "amount",
    "currency",
]


def invoice_csv(doc: InvoiceDocument) -> str:
    """One row per invoice line, ready for a spreadsheet (totals are the sum of `amount`)."""
    rows = []
    cur = doc.currency
    for inv in doc.invoices:
        for line in inv.lines:
            unit_price: str | None = None
            qty = free = billable = credits = None
            desc = line.description
            if line.kind == "usage" and line.priced is not None and line.charge is not None:
                qty, free, billable = (
                    fmt_number(line.priced.quantity),
                    fmt_number(line.priced.free_units),
                    fmt_number(line.priced.billable),
                )
                ch = line.charge
                if line.priced.credits is not None:
                    credits = fmt_number(line.priced.credits)
                elif ch.model == "per_unit":
                    unit_price = fmt_price(ch.unit_price or ZERO, cur)
                elif ch.model == "package":
                    unit_price = (
                        f"{fmt_price(ch.package_price or ZERO, cur)} per "
                        f"{fmt_number(ch.package_size or 1)}"
                    )
                else:
                    unit_price = ch.model
            elif line.kind == "credit" and line.entry is not None and line.pool is not None:
                e = line.entry
                desc = (
                    f"{line.description}: {fmt_number(e.granted)} granted, "
                    f"{fmt_number(e.rolled_over)} rolled over, {fmt_number(e.consumed)} used, "
                    f"{fmt_number(e.remaining)} left"
                )
                qty = fmt_number(e.overage)
                credits = fmt_number(e.consumed)
                if line.pool.overage_unit_price is not None:
                    unit_price = fmt_price(line.pool.overage_unit_price, cur)
            rows.append(
                [
                    str(doc.period),
                    doc.status,
                    inv.customer.id,
                    inv.customer.title,
                    iso(inv.cycle.start),
                    iso(inv.cycle.end),
                    line.kind,
                    line.meter_id,
                    line.credit_id,
                    desc,
                    qty,
                    free,
                    billable,
                    unit_price,
                    credits,
                    fmt_money(line.amount, cur),
                    cur,
                ]
            )
    issued = {inv.customer.id: inv for inv in doc.invoices}
    for adj in doc.adjustments:  # apart from the issued lines: status "adjustment"
        inv = issued.get(adj["customer_id"])  # (none for a customer added since)
        who = [inv.customer.title, iso(inv.cycle.start), iso(inv.cycle.end)] if inv else [None] * 3
        for line in adj["lines"]:
            rows.append([
                str(doc.period), "adjustment", adj["customer_id"], *who,
                line["kind"], line.get("meter_id"), line.get("credit_id"),
                f"adjustment since closing: issued {line['issued']}, now {line['current']}",
                None, None, None, None, None, line["difference"], cur,
            ])
    return to_csv(INVOICE_CSV_HEADER, rows)


# -- other listings ---------------------------------------------------------------------------


def simple_table(
    title: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    out: Console,
    right: Sequence[str] = (),
) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, title=title)
    for h in header:
        table.add_column(h, justify="right" if h in right else "left", min_width=len(h),
                         overflow="fold")
    for row in rows:
        table.add_row(*(_t(v) for v in row))
    out.print(table)


def shorten(text: str | None, width: int = 70) -> str:
    """Raw lines for a table: control characters made visible, long ones cut."""
    if text is None:
        return ""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def config_summary(config: Config, out: Console) -> None:
    simple_table(
        "Meters",
        ["id", "event_name", "aggregation", "filter", "unit"],
        (
            [
                m.id,
                m.event_name,
                describe_meter(m).split(" over ")[0],
                describe_filter(m.filter),
                m.unit or "",
            ]
            for m in config.meters
        ),
        out,
    )
    if config.credits:
        simple_table(
            "Credit pools",
            ["id", "per cycle", "precision", "rollover %", "overage price"],
            (
                [
                    c.id,
                    fmt_number(c.per_cycle),
                    c.precision,
                    fmt_number(c.rollover_percent) if c.rollover_percent is not None else "",
                    fmt_number(c.overage_unit_price) if c.overage_unit_price is not None else "",
                ]
                for c in config.credits
            ),
            out,
        )
    if config.products:
        simple_table(
            "Products",
            ["id", "name", "base price", "charges"],
            (
                [
                    p.id,
                    p.title,
                    fmt_money(p.base_price, config.currency) if p.base_price is not None else "",
                    ", ".join(
                        f"{ch.meter} ({'credits: ' + ch.credit if ch.credit else ch.model})"
                        for ch in p.charges
                    ),
                ]
                for p in config.products
            ),
            out,
        )
    if config.customers:
        simple_table(
            "Customers",
            ["id", "name", "product", "anchor", "timezone", "start_date"],
            (
                [
                    c.id,
                    c.title,
                    c.product,
                    c.billing_anchor,
                    c.timezone or config.timezone,
                    c.start_date or "",
                ]
                for c in config.customers
            ),
            out,
        )
