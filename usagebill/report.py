"""The usage report: one self-contained HTML page a colleague can read without JSON.

Per meter: a daily chart (static SVG drawn by matplotlib, no JavaScript), the period's total
against the previous period, and the customers who used it most; then the customers with the
largest invoices, and the period's warnings. Every figure is taken from `usage_report` (the
`usage` command's numbers) and `build_invoices` (the invoice JSON's amounts).

How a meter's customers add up to one figure depends on its aggregation: counts, sums, distinct
counts and last values are added over customers; for max and min meters the largest or
smallest customer value is the meter's figure. `COMBINE` says which, and the page says so too.

matplotlib is the optional extra `usagebill[report]`, imported only when a report is drawn.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cycles import DateRange, Month, Period
from .documents import group_digits, long_date, render
from .errors import OptionError
from .money import fmt_money, fmt_number, total

if TYPE_CHECKING:
    from .config import Config, Meter
    from .store import Store
    from .usage import UsageReport

REPORT_EXTRA_HINT = "Install it with: pip install 'usagebill[report]'"

COMBINE = {
    "count": "sum",
    "sum": "sum",
    "unique_count": "sum",
    "last": "sum",
    "max": "max",
    "min": "min",
}
COMBINE_WORDS = {
    "sum": "total over all customers",
    "max": "highest value of any customer",
    "min": "lowest value of any customer",
}


def combine(kind: str, values: list[Decimal]) -> Decimal:
    """One figure from the customers' figures (see COMBINE)."""
    if not values:
        return Decimal(0)
    if kind == "max":
        return max(values)
    if kind == "min":
        return min(values)
    return sum(values, Decimal(0))


def change_percent(current: Decimal, previous: Decimal) -> str:
    """`+12.5 %`, `−3.0 %`, `new` (nothing before) or `no change` / `—` (nothing at all)."""
    if previous == 0:
        return "—" if current == 0 else "new"
    pct = ((current - previous) / previous * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    if pct == 0:
        return "±0.0 %"
    return f"{'+' if pct > 0 else '−'}{group_digits(str(abs(pct)))} %"


def previous_period(period: Period) -> Period:
    if isinstance(period, Month):
        return period.previous()
    length = period.end - period.start
    return DateRange(period.start - length, period.start)


def period_label(period: Period, start: dt.datetime, end: dt.datetime) -> str:
    last = end.date() - dt.timedelta(days=1)
    if isinstance(period, Month):
        return f"{start:%B %Y}"
    return f"{long_date(start.date())} – {long_date(last)}"


# -- what the page shows ----------------------------------------------------------------------


@dataclass
class TopRow:
    customer_id: str
    name: str
    known: bool
    value: str  # the figure as text, digits grouped
    share: str  # of the meter's (or the invoices') total, in percent


@dataclass
class MeterSection:
    id: str
    title: str
    unit: str
    aggregation: str
    combined_as: str  # words for COMBINE
    total: str
    previous: str
    change: str
    days: list[tuple[str, str]]  # (ISO day, quantity) for every day of the period
    top: list[TopRow]
    svg: str = ""


@dataclass
class Report:
    title: str
    period: str
    period_label: str
    period_dates: str  # 1 Oct 2026 – 31 Oct 2026
    previous_label: str
    period_start: str
    period_end: str
    timezone: str
    meters: list[MeterSection]
    currency: str
    top_amounts: list[TopRow] | None  # None: not a month, so no invoices
    invoices_total: str
    invoices_note: str
    skipped: list[dict[str, Any]]
    warnings: list[str]
    issuer: str | None = None
    notes: list[str] = field(default_factory=list)


def _days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    first, last = start.date(), end.date() - dt.timedelta(days=1)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _per_meter(report: UsageReport) -> dict[str, dict[str, Decimal]]:
    """meter -> customer -> quantity."""
    out: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for r in report.rows:
        out[r.meter_id][r.customer_id] = r.quantity
    return out


def _share(part: Decimal, whole: Decimal) -> str:
    if whole <= 0:
        return ""
    pct = (part / whole * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)
    return f"{pct} %"


def build_report(
    store: Store,
    config: Config,
    period: Period,
    *,
    as_of: int | None = None,
    top: int = 5,
) -> Report:
    """Gather the figures: usage now and before, daily usage, invoices (for a month)."""
    from .closing import invoice_document
    from .usage import usage_report

    now = usage_report(store, config, period, as_of=as_of)
    daily = usage_report(store, config, period, by_day=True, as_of=as_of)
    before_period = previous_period(period)
    before = usage_report(store, config, before_period, as_of=as_of)
    per_now, per_before = _per_meter(now), _per_meter(before)
    per_day: dict[str, dict[dt.date, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for r in daily.rows:
        assert r.day is not None
        per_day[r.meter_id][r.day].append(r.quantity)
    days = _days(now.period_start, now.period_end)

    sections = []
    for m in config.meters:
        kind = COMBINE[m.aggregation.type]
        customers = per_now.get(m.id, {})
        overall = combine(kind, list(customers.values()))
        prev = combine(kind, list(per_before.get(m.id, {}).values()))
        ranked = sorted(
            ((q, cid) for cid, q in customers.items() if q),
            key=lambda t: (-t[0], t[1]),
        )[:top]
        sections.append(
            MeterSection(
                id=m.id,
                title=m.title,
                unit=m.unit or "",
                aggregation=describe_aggregation(m),
                combined_as=COMBINE_WORDS[kind],
                total=group_digits(fmt_number(overall)),
                previous=group_digits(fmt_number(prev)),
                change=change_percent(overall, prev),
                days=[
                    (d.isoformat(), fmt_number(combine(kind, per_day[m.id].get(d, []))))
                    for d in days
                ],
                top=[
                    TopRow(
                        cid,
                        config.customer[cid].title if cid in config.customer else cid,
                        cid in config.customer,
                        group_digits(fmt_number(q)),
                        _share(q, overall) if kind == "sum" else "",
                    )
                    for q, cid in ranked
                ],
            )
        )

    warnings: list[str] = []
    top_amounts: list[TopRow] | None = None
    invoices_total = ""
    invoices_note = ""
    currency = config.currency
    if isinstance(period, Month):
        doc = invoice_document(store, config, period, as_of=as_of)  # as `invoice` shows it
        currency = doc.currency  # a closed month's, as issued
        data = doc.to_json()
        warnings = [w["message"] for w in data["warnings"]]
        grand = total(i.total for i in doc.invoices)
        invoices_total = group_digits(fmt_money(grand, doc.currency))
        ranked_inv = sorted(
            data["invoices"], key=lambda i: (-Decimal(i["total"]), i["customer_id"])
        )
        top_amounts = [
            TopRow(
                i["customer_id"],
                i["customer_name"],
                True,
                group_digits(i["total"]),
                _share(Decimal(i["total"]), grand),
            )
            for i in ranked_inv[:top]
        ]
        invoices_note = (
            f"Invoices of the {len(doc.invoices)} billing cycles that start in {period} "
            f"({data['status']}); a cycle follows the customer's billing anchor and time zone."
        )
    else:
        unknown = sorted({r.customer_id for r in now.rows} - set(config.customer))
        warnings = [
            f"usage from customer {cid!r}, which is not in {config.source}: not billed"
            for cid in unknown
        ]
        invoices_note = "Invoice amounts need a month: run the report with --period YYYY-MM."

    now_json = now.to_json()
    return Report(
        title=f"Usage report · {period_label(period, now.period_start, now.period_end)}",
        period=str(period),
        period_label=period_label(period, now.period_start, now.period_end),
        period_dates=f"{long_date(days[0])} – {long_date(days[-1])}",
        previous_label=period_label(before_period, before.period_start, before.period_end),
        period_start=now_json["period_start"],
        period_end=now_json["period_end"],
        timezone=config.timezone,
        meters=sections,
        currency=currency,
        top_amounts=top_amounts,
        invoices_total=invoices_total,
        invoices_note=invoices_note,
        skipped=now_json["skipped"],
        warnings=warnings,
        issuer=config.issuer.name if config.issuer and config.issuer.name else None,
    )


def describe_aggregation(m: Meter) -> str:
    a = m.aggregation
    if a.type == "count":
        return "count of events"
    words = {
        "sum": "sum",
        "max": "maximum",
        "min": "minimum",
        "last": "last value",
        "unique_count": "distinct values",
    }
    return f"{words[a.type]} of {a.key}"


# -- charts -----------------------------------------------------------------------------------


def require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise OptionError(
            "`usagebill report` draws its charts with matplotlib, which is not installed",
            hint=REPORT_EXTRA_HINT,
        ) from None
    return matplotlib


_SVG_START = re.compile(r"<svg\b", re.S)

INK = "#1c2430"
MUTED = "#5b6675"
BAR = "#2f6fa8"
WEEKEND = "#f3f5f8"
GRID = "#dfe3e8"


def daily_chart(section: MeterSection) -> str:
    """A bar per day as an inline <svg>: real text (selectable, searchable), fixed ids and no
    date stamp, so the same figures give the same bytes."""
    matplotlib = require_matplotlib()
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    days = [dt.date.fromisoformat(d) for d, _ in section.days]
    values = [float(Decimal(v)) for _, v in section.days]
    rc = {
        "svg.fonttype": "none",
        "svg.hashsalt": f"usagebill-{section.id}",
        "text.parse_math": False,
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.edgecolor": GRID,
        "axes.labelcolor": MUTED,
        "xtick.color": MUTED,
        "ytick.color": MUTED,
    }
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(5.4, 1.9), dpi=96)
        FigureCanvasSVG(fig)
        ax = fig.add_axes((0.09, 0.15, 0.9, 0.81))
        xs = list(range(len(days)))
        for x, d in zip(xs, days):
            if d.weekday() >= 5:
                ax.axvspan(x - 0.5, x + 0.5, color=WEEKEND, zorder=0, linewidth=0)
        ax.bar(xs, values, width=0.72, color=BAR, zorder=2)
        ax.set_xlim(-0.6, len(days) - 0.4)
        top = max(values, default=0)
        ax.set_ylim(0, top * 1.08 if top > 0 else 1)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=top >= 4))
        ax.yaxis.set_major_formatter(FuncFormatter(_tick))
        ax.grid(axis="y", color=GRID, linewidth=0.8, zorder=1)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="both", length=0, pad=4)
        step = max(1, round(len(days) / 10))
        ticks = [x for x in xs if days[x].day == 1 or (x % step == 0)]
        ax.set_xticks(ticks)
        ax.set_xticklabels([_day_label(days[x], x == 0) for x in ticks])
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    start = _SVG_START.search(svg)
    assert start is not None
    svg = svg[start.start() :]
    label = html.escape(f"Daily {section.title}", quote=True)  # a config string: data, not markup
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def _tick(value: float, _pos: int) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.6g}"


def _day_label(day: dt.date, first: bool) -> str:
    return f"{day.day} {day:%b}" if first or day.day == 1 else str(day.day)


# -- page -------------------------------------------------------------------------------------


def report_html(report: Report) -> str:
    from markupsafe import Markup

    for section in report.meters:
        section.svg = Markup(daily_chart(section))
    return render("report.html.j2", r=report)


def write_report(report: Report, output: Path) -> None:
    html = report_html(report)
    try:
        output.write_text(html, encoding="utf-8")
    except OSError as e:
        raise OptionError(f"--output {output}: cannot write ({e.strerror})") from None
