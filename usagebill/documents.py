"""Invoices people read: one self-contained HTML (or PDF) file per invoice, plus an index.

Every number on these pages is a string the invoice JSON document already holds (SPEC §6):
the templates only place text, they never add, round or reformat amounts beyond inserting
thousands separators into the digits. What the JSON does not carry (unit prices, tier steps,
units, issuer, addresses) comes from the config and the priced lines, written with the same
`fmt_number` the JSON uses.

The pages have inline CSS, no scripts and no references to anything outside the file, so they
open offline and print on one A4 or Letter page. PDF output runs the same HTML through
WeasyPrint (the optional extra `usagebill[pdf]`), with a URL fetcher that fetches nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import money
from .errors import OptionError
from .money import fmt_money, fmt_number, minor_units, total

if TYPE_CHECKING:
    import jinja2

    from .config import Config, Issuer
    from .invoices import Invoice, InvoiceDocument, Line

PDF_EXTRA_HINT = "Install it with: pip install 'usagebill[pdf]'"


# -- text helpers (shared with the report) ----------------------------------------------------

_DIGITS = re.compile(r"^([+-]?)(\d+)(\.\d+)?$")


def group_digits(text: str) -> str:
    """Thousands separators in a decimal string, nothing else: "1471.99" -> "1,471.99".
    Pure text: the digits are the JSON's, never parsed into a number and printed again."""
    m = _DIGITS.match(text)
    if not m:
        return text
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + ",".join(groups) + frac


def singular(unit: str) -> str:
    """calls -> call, messages -> message; GB, ms and kWh stay as they are."""
    return unit[:-1] if len(unit) > 3 and unit.endswith("s") and not unit.endswith("ss") else unit


def long_date(day: dt.date) -> str:
    """1 Oct 2026: unambiguous in every locale, unlike 10/01/2026."""
    return f"{day.day} {day:%b %Y}"


@cache
def environment() -> jinja2.Environment:
    """Templates from package data, autoescaped: a customer named <script> stays text."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("usagebill", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = group_digits
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


# -- invoice numbers and file names -----------------------------------------------------------


def invoice_number(prefix: str, period: object, customer_id: str) -> str:
    """SPEC §2: PREFIX-YYYY-MM-CUSTOMER_ID, the customer id exactly as configured."""
    return f"{prefix}-{period}-{customer_id}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 120


def file_stems(numbers: list[str]) -> list[str]:
    """A safe, distinct file name stem for each invoice number, in order.

    A number made only of letters, digits, `.`, `_` and `-` is its own stem. Anything else
    (`/`, `..`, spaces, `<`, non-ASCII) becomes `_`, and the stem gets a short hash of the exact
    number so that `a/b` and `a_b` never share a file. Stems are also kept distinct ignoring
    case, for file systems that fold it (macOS, Windows)."""
    taken: set[str] = set()
    out = []
    for number in numbers:
        stem = _UNSAFE.sub("_", number).strip("._-") or "invoice"
        digest = hashlib.sha256(number.encode("utf-8")).hexdigest()[:10]
        if stem != number or len(stem) > _MAX_STEM or stem.lower() in taken:
            stem = f"{stem[:_MAX_STEM]}-{digest}"
        while stem.lower() in taken:  # only if two hashes meet: practically never
            stem += "_"
        taken.add(stem.lower())
        out.append(stem)
    return out


# -- what a page shows ------------------------------------------------------------------------


@dataclass
class PageLine:
    """One row of the invoice table: text only, numbers as the JSON wrote them."""

    kind: str
    description: str
    notes: list[str] = field(default_factory=list)  # smaller lines under the description
    quantity: str = ""
    unit: str = ""
    free_units: str = ""
    billable: str = ""
    price: list[str] = field(default_factory=list)  # unit price, or one entry per tier step
    amount: str = ""


@dataclass
class PageInvoice:
    number: str
    file: str  # the file name in the output directory
    customer_id: str
    customer_name: str
    email: str | None
    address: str | None
    product: str
    period_first: str  # first day of the cycle, local
    period_last: str  # last day of the cycle, local (the end is exclusive)
    period_start: str  # the JSON's timestamps
    period_end: str
    timezone: str
    lines: list[PageLine]
    total: str
    adjustments: list[dict[str, Any]] = field(default_factory=list)


def fmt_price(value: Decimal | None, currency: str) -> str:
    """A configured price as written, digits grouped. (A price, not an invoice amount: the
    JSON does not carry prices.)"""
    return group_digits(money.fmt_price(value or Decimal(0), currency))


def _price_notes(line: Line, unit: str, currency: str) -> list[str]:
    """How a usage line is priced: the unit price, the package, or each tier's step."""
    ch, priced = line.charge, line.priced
    assert ch is not None and priced is not None
    per = f" per {singular(unit)}" if unit else " each"
    if priced.credits is not None:
        per_credit = group_digits(fmt_number(ch.units_per_credit or Decimal(1)))
        return [f"{per_credit} {unit or 'units'} = 1 credit"]
    if ch.model == "per_unit":
        return [f"{fmt_price(ch.unit_price, currency)}{per}"]
    if ch.model == "package":
        size = fmt_number(ch.package_size or Decimal(1))
        out = [f"{fmt_price(ch.package_price, currency)} per {group_digits(size)} {unit}"]
        for s in priced.steps:
            if s.packages:
                n = fmt_number(s.packages)
                out.append(f"{group_digits(n)} package{'s' if n != '1' else ''}")
        return [o.strip() for o in out]
    label = "Graduated" if ch.model == "graduated" else "Volume"
    if not priced.steps:
        return [f"{label} tiers: no billable units"]
    out = []
    for s in priced.steps:
        text = (
            f"Tier {s.tier}: {group_digits(fmt_number(s.units))} × "
            f"{fmt_price(s.unit_price, currency)}"
        )
        if s.flat_price:
            text += f" + {fmt_price(s.flat_price, currency)} flat"
        out.append(f"{text} = {group_digits(fmt_number(s.amount))}")
    return [f"{label} tiers:", *out]


def page_line(line: Line, data: dict[str, Any], config: Config, inv: Invoice) -> PageLine:
    """One invoice line for the page; `data` is the line of the JSON document. Meters and
    pools are the invoice's own (an issued one keeps them, whatever the config says now)."""
    amount = group_digits(data["amount"])
    if data["kind"] == "base":
        return PageLine(
            "base",
            f"{data['description']} plan",
            ["Base price for the billing period"],
            amount=amount,
        )
    if data["kind"] == "usage":
        meter = inv.meters.get(data["meter_id"]) or config.meter.get(data["meter_id"])
        unit = (meter.unit if meter else None) or ""
        notes = []
        if "credits" in data:
            credit = line.charge.credit if line.charge else None
            pool = next((x.pool for x in inv.lines if x.credit_id == credit and x.pool), None)
            pool_name = pool.title if pool else "credits"
            notes.append(f"Drawn from {pool_name}: {group_digits(data['credits'])} credits")
        return PageLine(
            "usage",
            data["description"],
            notes,
            quantity=group_digits(data["quantity"]),
            unit=unit,
            free_units=group_digits(data["free_units"]),
            billable=group_digits(data["billable_units"]),
            price=_price_notes(line, unit, config.currency),
            amount=amount,
        )
    pool = line.pool
    title = pool.title if pool else data["credit_id"]
    g = group_digits
    notes = [
        f"Opening balance {g(_opening(data))} credits: {g(data['rolled_over'])} rolled over + "
        f"{g(data['granted'])} granted this period",
        f"Used {g(data['consumed'])} · remaining {g(data['remaining'])}",
    ]
    price = []
    if data["overage_credits"] != "0":
        if pool is not None and pool.overage_unit_price is not None:
            price = [
                f"{g(data['overage_credits'])} overage credits × "
                f"{fmt_price(pool.overage_unit_price, config.currency)}"
            ]
        else:
            price = [f"{g(data['overage_credits'])} overage credits, not billed"]
    return PageLine("credit", f"{title} (credit balance)", notes, price=price, amount=amount)


def _opening(data: dict[str, Any]) -> str:
    """rolled_over + granted, added as the ledger adds them (exact decimals, no rounding)."""
    return fmt_number(Decimal(data["rolled_over"]) + Decimal(data["granted"]))


def page_invoice(
    inv: Invoice, data: dict[str, Any], number: str, file: str, config: Config
) -> PageInvoice:
    zone = config.customer_timezone(inv.customer)  # an issued invoice keeps its customer
    start, end = inv.cycle.start.astimezone(zone), inv.cycle.end.astimezone(zone)
    # The cycle ends at the first instant of a local day, exclusive: its last day is the one
    # before (that instant is 01:00 where a DST change skips midnight).
    last = end.date() - dt.timedelta(days=1)
    return PageInvoice(
        number=number,
        file=file,
        customer_id=data["customer_id"],
        customer_name=data["customer_name"],
        email=inv.customer.email,
        address=inv.customer.address,
        product=inv.product.title,
        period_first=long_date(start.date()),
        period_last=long_date(last),
        period_start=data["period_start"],
        period_end=data["period_end"],
        timezone=zone.key,
        lines=[page_line(li, d, config, inv) for li, d in zip(inv.lines, data["lines"])],
        total=group_digits(data["total"]),
    )


@dataclass
class Documents:
    """What `invoice --format html|pdf` writes: one page per invoice and the index."""

    period: str
    status: str
    currency: str
    minor_units_note: str
    issuer: Issuer | None
    invoices: list[PageInvoice]
    grand_total: str
    warnings: list[str]


def documents(doc: InvoiceDocument, config: Config, ext: str = "html") -> Documents:
    data = doc.to_json()
    numbers = [
        invoice_number(config.invoice_prefix, doc.period, i["customer_id"])
        for i in data["invoices"]
    ]
    pages = [
        page_invoice(inv, d, number, f"{stem}.{ext}", config)
        for inv, d, number, stem in zip(
            doc.invoices, data["invoices"], numbers, file_stems(numbers)
        )
    ]
    for page in pages:
        page.adjustments = [
            {**a, "lines": [{**line, "label": _line_label(line, config)} for line in a["lines"]]}
            for a in data.get("adjustments", [])
            if a.get("customer_id") == page.customer_id
        ]
    # The grand total is the sum of the invoices' rounded totals, as the table output adds them.
    grand = total(inv.total for inv in doc.invoices)
    places = minor_units(doc.currency)
    return Documents(
        period=data["period"],
        status=data["status"],
        currency=doc.currency,
        minor_units_note=(
            f"Amounts in {doc.currency}, each line rounded half-up to "
            + (f"{places} decimal{'s' if places != 1 else ''}" if places else "whole units")
            + "; the total is the sum of the lines."
        ),
        issuer=config.issuer,
        invoices=pages,
        grand_total=group_digits(fmt_money(grand, doc.currency)),
        warnings=[w["message"] for w in data["warnings"]],
    )


def _line_label(line: dict[str, Any], config: Config) -> str:
    """An adjustment line's name: the meter's or pool's title, as on the invoice."""
    if line.get("meter_id") in config.meter:
        return config.meter[line["meter_id"]].title
    if line.get("credit_id") in config.credit:
        return config.credit[line["credit_id"]].title
    return str(line.get("meter_id") or line.get("credit_id") or line["kind"])


def invoice_html(docs: Documents, page: PageInvoice) -> str:
    return render("invoice.html.j2", docs=docs, inv=page)


def index_html(docs: Documents) -> str:
    return render("index.html.j2", docs=docs)


# -- writing ----------------------------------------------------------------------------------


def require_weasyprint() -> Any:
    """WeasyPrint, or a clear error naming the extra that brings it."""
    try:
        import weasyprint
    except ImportError:
        raise OptionError(
            "--format pdf needs WeasyPrint, which is not installed", hint=PDF_EXTRA_HINT
        ) from None
    except OSError as e:  # installed, but its system libraries (Pango) are missing
        raise OptionError(
            f"--format pdf: WeasyPrint cannot start ({e})",
            hint="Install Pango (Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0).",
        ) from None
    return weasyprint


def _no_fetching(weasyprint: Any) -> Any:
    """A URL fetcher for WeasyPrint that fetches nothing: the pages are self-contained, and a
    hostile value must not make the PDF writer reach out to the network or the disk."""
    try:
        from weasyprint.urls import URLFetcher
    except ImportError:  # WeasyPrint before the URLFetcher class: a plain function

        def refuse(url: str, *args: Any, **kwargs: Any) -> Any:
            raise ValueError(f"usagebill documents fetch nothing: {url}")

        return refuse
    return URLFetcher(allowed_protocols=[])


def html_to_pdf(html: str, target: Path, weasyprint: Any | None = None) -> None:
    weasyprint = weasyprint or require_weasyprint()
    weasyprint.HTML(string=html, base_url=None, url_fetcher=_no_fetching(weasyprint)).write_pdf(
        target
    )


def check_options(output: Path | None, fmt: str) -> None:
    """Everything that can be said about --format/--output before any work is done."""
    _check_output(output, fmt)
    if fmt == "pdf":
        require_weasyprint()


def _check_output(output: Path | None, fmt: str) -> Path:
    if output is None:
        raise OptionError(
            f"--format {fmt} writes one file per invoice: give a directory with --output DIR",
            hint=f"e.g. usagebill invoice --period 2026-10 --format {fmt} --output invoices",
        )
    if output.exists() and not output.is_dir():
        raise OptionError(
            f"--output {output}: not a directory (--format {fmt} writes several files)"
        )
    return output


def _prepare(output: Path | None, fmt: str) -> Path:
    output = _check_output(output, fmt)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(
            f"--output {output}: cannot create the directory ({e.strerror})"
        ) from None
    return output


def _write(path: Path, data: str | bytes) -> None:
    try:
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8")
        else:
            path.write_bytes(data)
    except OSError as e:
        raise OptionError(f"--output {path}: cannot write ({e.strerror})") from None


def write_documents(
    doc: InvoiceDocument, config: Config, output: Path | None, fmt: str = "html"
) -> list[Path]:
    """Write every invoice as `fmt` (html or pdf) into `output`, plus index.html. Returns the
    paths written, index last."""
    weasyprint = require_weasyprint() if fmt == "pdf" else None
    directory = _prepare(output, fmt)
    docs = documents(doc, config, fmt)
    written = []
    for page in docs.invoices:
        path = directory / page.file
        html = invoice_html(docs, page)
        if fmt == "pdf":
            try:
                html_to_pdf(html, path, weasyprint)
            except OSError as e:
                raise OptionError(f"--output {path}: cannot write ({e.strerror})") from None
        else:
            _write(path, html)
        written.append(path)
    index = directory / "index.html"
    _write(index, index_html(docs))
    written.append(index)
    return written
