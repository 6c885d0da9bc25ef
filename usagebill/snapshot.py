"""Snapshots and price-change previews: the engineers' and the CI jobs' side of invoicing.

A *snapshot* is the invoice JSON of SPEC §6 written canonically (sorted keys, indent 2, a
trailing newline) so that it diffs well in git. One period is exactly the invoice document;
several periods are `{"periods": [document, ...]}` sorted by period, so one file can guard a
quarter. A check compares *values*, not bytes, and says what differs the way a person reads
a CI log: one line per field, ``2026-10 cus_abc usage api_calls amount: expected 30.00, actual
30.40 (+0.40)``, with invoices, lines and periods that appear or disappear named as such.

A *comparison* prices the same stored usage under two configs (the second may change meters
too: it re-meters the same events) and gives per customer the old total, the new total and
the difference, with grand totals.

Nothing here opens files other than the snapshot, or knows about flags: the CLI parses,
calls one function, renders.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .closing import invoice_document
from .config import Config
from .cycles import Month
from .errors import DataError, InputError, OptionError
from .invoices import InvoiceDocument
from .money import ZERO, fmt_money, minor_units, total
from .render import canonical_json
from .store import Store

# -- documents --------------------------------------------------------------------------------


def invoice_documents(
    store: Store, config: Config, months: Sequence[Month]
) -> list[InvoiceDocument]:
    """The invoice document of every month, oldest first."""
    return [invoice_document(store, config, m) for m in sorted(months)]


def periods_json(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One period: the document itself (exactly what `invoice --format json` prints). Several:
    `{"periods": [...]}` sorted by period, each entry a whole document."""
    ordered = sorted(docs, key=lambda d: d["period"])
    return ordered[0] if len(ordered) == 1 else {"periods": ordered}


def snapshot_json(docs: Sequence[InvoiceDocument]) -> dict[str, Any]:
    return periods_json([d.to_json() for d in docs])


def write_snapshot(path: Path, docs: Sequence[InvoiceDocument]) -> None:
    """Write atomically (a temporary file renamed over the target), creating the folder: an
    interrupted write never leaves half a snapshot for the next check to trip on."""
    text = canonical_json(snapshot_json(docs))
    if not path.name or path.is_dir():
        raise InputError(f"{path}: cannot write the snapshot (give a file name, not a folder)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise InputError(f"{path}: cannot write the snapshot ({e.strerror})") from None


def load_snapshot(path: Path, write_hint: str) -> dict[str, dict[str, Any]]:
    """A snapshot file as {period: document}. Missing or malformed: exit 2 with `write_hint`,
    the command that writes it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{path}: no such snapshot", hint=f"Write it first: {write_hint}"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise InputError(f"{path}: cannot read the snapshot ({reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path}:{e.lineno}:{e.colno}: not a usagebill snapshot: {e.msg}",
            hint=f"Rewrite it: {write_hint}",
        ) from None
    docs = data.get("periods") if isinstance(data, dict) and "periods" in data else [data]
    if not isinstance(docs, list) or not docs or not all(
        isinstance(d, dict) and isinstance(d.get("period"), str)
        and isinstance(d.get("invoices"), list)
        and all(isinstance(i, dict) for i in d["invoices"])
        for d in docs
    ):
        raise InputError(
            f"{path}: not a usagebill snapshot (expected an invoice document, or "
            '{"periods": [...]} of them)',
            hint=f"Rewrite it: {write_hint}",
        )
    by_period = {d["period"]: d for d in docs}
    if len(by_period) != len(docs):
        raise InputError(f"{path}: a period appears twice in the snapshot")
    return by_period


# -- comparing two sets of documents ----------------------------------------------------------

_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    """One thing that differs. `where` names it from the period down (period, customer, line
    kind, meter or credit id); `field` is the JSON field, or None when the whole thing was
    added or removed, which `note` then says."""

    where: tuple[str, ...]
    field: str | None = None
    expected: Any = _ABSENT
    actual: Any = _ABSENT
    note: str | None = None

    def __str__(self) -> str:
        label = _one_line(" ".join(self.where))
        if self.field is None:
            return f"{label}: {_one_line(self.note or '')}"
        text = f"{label} {self.field}: expected {_show(self.expected)}, actual {_show(self.actual)}"
        delta = _delta(self.expected, self.actual)
        return f"{text} ({delta})" if delta else text


def _one_line(text: str) -> str:
    """Ids come from the events: a newline in one must not start a line of its own in a CI
    log (and pose as another), so control characters are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str):
        return _one_line(value) if value else '""'
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _decimal(value: Any) -> Decimal | None:
    if not isinstance(value, str) or not value or value[0] not in "-+0123456789":
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _delta(expected: Any, actual: Any) -> str | None:
    """`+0.40` for two decimal strings: how far the number moved, at the precision shown."""
    a, b = _decimal(expected), _decimal(actual)
    if a is None or b is None:
        return None
    return f"{total([b, -a]):+f}"


def _line_key(line: dict[str, Any]) -> tuple[str, ...]:
    kind = str(line.get("kind", "line"))
    ident = line.get("meter_id") or line.get("credit_id")
    return (kind, str(ident)) if ident is not None else (kind,)


def _keyed(items: Iterable[Any], key: Any) -> dict[tuple[str, ...], Any]:
    """Items by their key; a key seen again gets `#2`, `#3`, ... (two charges on one meter)."""
    out: dict[tuple[str, ...], Any] = {}
    seen: Counter[tuple[str, ...]] = Counter()
    for item in items:
        k = key(item) if isinstance(item, dict) else ("item",)
        seen[k] += 1
        out[(*k[:-1], f"{k[-1]}#{seen[k]}") if seen[k] > 1 else k] = item
    return out


def _ordered_keys(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Fields in the document's own order (the actual one's, then any only expected has)."""
    return list(actual) + [k for k in expected if k not in actual]


def _values(where: tuple[str, ...], field: str, e: Any, a: Any, out: list[Difference]) -> None:
    """Any two JSON values: dicts field by field, lists item by item, leaves compared."""
    if e == a and type(e) is type(a):
        return
    if isinstance(e, dict) and isinstance(a, dict):
        for k in _ordered_keys(e, a):
            _values(where, f"{field}.{k}", e.get(k, _ABSENT), a.get(k, _ABSENT), out)
    elif isinstance(e, list) and isinstance(a, list) and len(e) == len(a):
        for i, (x, y) in enumerate(zip(e, a)):
            _values(where, f"{field}[{i}]", x, y, out)
    else:
        out.append(Difference(where, field, e, a))


def _fields(
    where: tuple[str, ...],
    e: dict[str, Any],
    a: dict[str, Any],
    out: list[Difference],
    skip: Iterable[str] = (),
) -> None:
    for k in _ordered_keys(e, a):
        if k not in skip:
            _values(where, k, e.get(k, _ABSENT), a.get(k, _ABSENT), out)


def _summary(item: Any, *fields: str) -> str:
    if not isinstance(item, dict):
        return ""
    shown = [f"{f} {_show(item[f])}" for f in fields if f in item]
    return f" ({', '.join(shown)})" if shown else ""


def _lines(where: tuple[str, ...], e: Any, a: Any, out: list[Difference], what: str) -> None:
    """Invoice lines (or adjustment lines) matched by kind and meter/credit id."""
    if not (isinstance(e, list) and isinstance(a, list)):
        _values(where, "lines", e, a, out)
        return
    old, new = _keyed(e, _line_key), _keyed(a, _line_key)
    for key in list(new) + [k for k in old if k not in new]:
        here = (*where, *key)
        if key not in old:
            out.append(Difference(here, note=f"{what} added{_summary(new[key], 'amount')}"))
        elif key not in new:
            out.append(Difference(here, note=f"{what} removed{_summary(old[key], 'amount')}"))
        elif isinstance(old[key], dict) and isinstance(new[key], dict):
            _fields(here, old[key], new[key], out, skip=("kind",))
        else:
            _values(here, "value", old[key], new[key], out)


def _by_customer(
    where: tuple[str, ...],
    e: Any,
    a: Any,
    out: list[Difference],
    what: str,
    total: str,
    prefix: tuple[str, ...] = (),
) -> None:
    """Invoices (or adjustments) matched by customer_id, in customer_id order."""
    if not (isinstance(e, list) and isinstance(a, list)):
        _values(where, what + "s", e, a, out)
        return

    def key(item: dict[str, Any]) -> tuple[str, ...]:
        return (str(item.get("customer_id")),)

    old, new = _keyed(e, key), _keyed(a, key)
    for k in sorted(set(old) | set(new)):
        here = (*where, *k, *prefix)
        if k not in old:
            out.append(Difference((*where, *k), note=f"{what} added{_summary(new[k], total)}"))
        elif k not in new:
            out.append(Difference((*where, *k), note=f"{what} removed{_summary(old[k], total)}"))
        elif not (isinstance(old[k], dict) and isinstance(new[k], dict)):
            _values(here, what, old[k], new[k], out)
        else:
            oe, ne = old[k], new[k]
            _fields(here, oe, ne, out, skip=("customer_id", "lines", total))
            _lines(here, oe.get("lines", []), ne.get("lines", []), out, "line")
            _values(here, total, oe.get(total, _ABSENT), ne.get(total, _ABSENT), out)


def _warnings(where: tuple[str, ...], e: Any, a: Any, out: list[Difference]) -> None:
    """Warnings as a multiset, each added or removed one named by its customer. They are
    matched whole, message included: a skipped-events warning keeps its reason only there,
    and a check must fail whenever rewriting the snapshot would change it."""
    if not (isinstance(e, list) and isinstance(a, list)):
        _values(where, "warnings", e, a, out)
        return

    def facts(w: Any) -> str:
        return json.dumps(w, sort_keys=True, ensure_ascii=False)

    old, new = Counter(map(facts, e)), Counter(map(facts, a))
    for side, gone, note in ((e, old - new, "warning removed"), (a, new - old, "warning added")):
        for w in sorted(side, key=lambda w: (facts(w), json.dumps(w, sort_keys=True))):
            if gone[facts(w)] <= 0:
                continue
            gone[facts(w)] -= 1
            cid = w.get("customer_id") if isinstance(w, dict) else None
            message = w.get("message", facts(w)) if isinstance(w, dict) else facts(w)
            out.append(Difference((*where, *([cid] if cid else [])), note=f"{note}: {message}"))


def diff_document(expected: dict[str, Any], actual: dict[str, Any]) -> list[Difference]:
    """What differs between two invoice documents of one period, in reading order: the
    document's own fields, then invoices by customer (header fields, lines, total), then
    adjustments, then warnings."""
    where = (str(actual.get("period", expected.get("period"))),)
    out: list[Difference] = []
    parts = ("invoices", "adjustments", "warnings")
    _fields(where, expected, actual, out, skip=parts)
    _by_customer(where, expected.get("invoices"), actual.get("invoices"), out, "invoice", "total")
    _by_customer(
        where,
        expected.get("adjustments", []),
        actual.get("adjustments", []),
        out,
        "adjustment",
        "total_difference",
        prefix=("adjustment",),
    )
    _warnings(where, expected.get("warnings", []), actual.get("warnings", []), out)
    return out


def diff_periods(
    expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]
) -> list[Difference]:
    """Documents matched by period. A period only one side has is one difference."""
    out: list[Difference] = []
    for period in sorted(set(expected) | set(actual)):
        if period not in actual:
            out.append(
                Difference(
                    (period,),
                    note="period in the snapshot but not in these invoices "
                    f"(add --period {period}, or rewrite the snapshot)",
                )
            )
        elif period not in expected:
            out.append(Difference((period,), note="period not in the snapshot"))
        else:
            out.extend(diff_document(expected[period], actual[period]))
    return out


@dataclass(frozen=True)
class CheckResult:
    differences: list[Difference]
    periods: list[str]
    invoices: int

    @property
    def ok(self) -> bool:
        return not self.differences


def check_snapshot(
    path: Path,
    expected: dict[str, dict[str, Any]],
    docs: Sequence[InvoiceDocument],
    write_hint: str,
) -> CheckResult:
    """Compare the invoices with `expected` (the snapshot at `path`, from `load_snapshot`,
    which callers run first so that a missing snapshot fails before any work). Raises
    `DataError` (exit 1) listing every difference when they differ."""
    actual = {str(d.period): d.to_json() for d in docs}
    # Through JSON text and back, so both sides are plain JSON values (no tuples, no Decimals).
    actual = json.loads(json.dumps(actual))
    result = CheckResult(
        diff_periods(expected, actual), sorted(actual), sum(len(d.invoices) for d in docs)
    )
    if not result.ok:
        n = len(result.differences)
        raise DataError(
            f"{path}: {n} difference{'s' if n != 1 else ''} from the snapshot "
            f"(expected: the snapshot; actual: the invoices of {', '.join(result.periods)})",
            details=[f"  {d}" for d in result.differences],
            hint=f"If the change is intended, rewrite the snapshot: {write_hint}",
        )
    return result


# -- price-change preview ---------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerChange:
    customer_id: str
    customer_name: str
    old_total: Decimal | None  # None: no invoice under that config (customer or cycle absent)
    new_total: Decimal | None

    @property
    def difference(self) -> Decimal:
        return total([self.new_total or ZERO, -(self.old_total or ZERO)])


@dataclass(frozen=True)
class Comparison:
    """One period priced under two configs."""

    period: Month
    currency: str
    customers: list[CustomerChange]

    @property
    def old_total(self) -> Decimal:
        return total(c.old_total or ZERO for c in self.customers)

    @property
    def new_total(self) -> Decimal:
        return total(c.new_total or ZERO for c in self.customers)

    @property
    def difference(self) -> Decimal:
        return total([self.new_total, -self.old_total])

    def to_json(self) -> dict[str, Any]:
        money = self.money
        return {
            "period": str(self.period),
            "currency": self.currency,
            "customers": [
                {
                    "customer_id": c.customer_id,
                    "customer_name": c.customer_name,
                    "old_total": money(c.old_total),
                    "new_total": money(c.new_total),
                    "difference": money(c.difference),
                }
                for c in self.customers
            ],
            "old_total": money(self.old_total),
            "new_total": money(self.new_total),
            "difference": money(self.difference),
        }

    def money(self, amount: Decimal | None) -> str | None:
        return None if amount is None else fmt_money(amount, self.currency)


def compare(old: InvoiceDocument, new: InvoiceDocument) -> Comparison:
    """Per customer, the totals of two documents of the same period (same usage, two
    configs). A customer invoiced under one config only has None on the other side, and its
    whole total counts as the difference."""
    if old.currency != new.currency:
        raise OptionError(
            f"--compare: the configs bill in different currencies ({old.currency} and "
            f"{new.currency}); their totals cannot be compared"
        )
    before = {i.customer.id: i for i in old.invoices}
    after = {i.customer.id: i for i in new.invoices}
    rows = []
    for cid in sorted(set(before) | set(after)):
        b, a = before.get(cid), after.get(cid)
        name = (a or b).customer.title  # type: ignore[union-attr]
        rows.append(CustomerChange(cid, name, b.total if b else None, a.total if a else None))
    return Comparison(old.period, old.currency, rows)


def comparisons(old: Sequence[InvoiceDocument], new: Sequence[InvoiceDocument]) -> list[Comparison]:
    return [compare(o, n) for o, n in zip(old, new)]


def comparison_json(items: Sequence[Comparison]) -> dict[str, Any]:
    """Same shape rule as invoices: one period is the comparison itself, several are
    `{"periods": [...]}`."""
    return periods_json([c.to_json() for c in items])


COMPARISON_CSV_HEADER = [
    "period",
    "kind",
    "customer_id",
    "customer_name",
    "old_total",
    "new_total",
    "difference",
    "currency",
]


def comparison_rows(items: Sequence[Comparison]) -> list[list[Any]]:
    """CSV rows: one per customer (`kind` customer), then the period's total (`kind` total),
    so a spreadsheet can filter the totals out before summing."""
    rows: list[list[Any]] = []
    for c in items:
        doc = c.to_json()
        for r in doc["customers"]:
            rows.append(
                [
                    doc["period"],
                    "customer",
                    r["customer_id"],
                    r["customer_name"],
                    r["old_total"],
                    r["new_total"],
                    r["difference"],
                    c.currency,
                ]
            )
        rows.append(
            [
                doc["period"],
                "total",
                None,
                None,
                doc["old_total"],
                doc["new_total"],
                doc["difference"],
                c.currency,
            ]
        )
    return rows


def comparison_table(items: Sequence[Comparison], old_name: str, new_name: str, out: Any) -> None:
    """One table per period: old total, new total and difference per customer, and the total."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    for c in items:
        places = minor_units(c.currency)

        def amount(d: Decimal | None, sign: bool = False, places: int = places) -> Text:
            if d is None:
                return Text("—")
            return Text(f"{d:+,.{places}f}" if sign and d else f"{d:,.{places}f}")

        table = Table(
            box=box.SIMPLE_HEAD,
            title=Text(f"{c.period}: {old_name} → {new_name} ({c.currency})"),
            title_justify="left",
        )
        table.add_column("Customer", no_wrap=True)
        table.add_column("Name")
        for name in ("Old total", "New total", "Difference"):
            table.add_column(name, justify="right", no_wrap=True)
        for r in c.customers:
            table.add_row(
                Text(r.customer_id),
                Text(r.customer_name),
                amount(r.old_total),
                amount(r.new_total),
                amount(r.difference, sign=True),
            )
        table.add_section()
        changed = sum(1 for r in c.customers if r.difference)
        table.add_row(
            Text("Total", style="bold"),
            Text(f"{changed} of {len(c.customers)} customers change"),
            amount(c.old_total),
            amount(c.new_total),
            Text(
                f"{c.difference:+,.{places}f}" if c.difference else f"{c.difference:,.{places}f}",
                style="bold",
            ),
        )
        out.print(table)
