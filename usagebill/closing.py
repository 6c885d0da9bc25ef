"""Closing a period: invoices are issued once and never change; what arrives later (late
events, corrections) shows as adjustments against them (SPEC §8).

An issued invoice is stored as a full record (see `invoices.to_record`), together with the
run it reflects, so `--as-of` can tell whether a period was closed at that point.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .config import Config, Issuer
from .cycles import Month
from .errors import OptionError
from .invoices import (
    Invoice,
    InvoiceDocument,
    build_invoices,
    invoice_from_record,
    to_record,
)
from .money import ZERO, fmt_money, total
from .store import Store


def close_period(store: Store, config: Config, month: Month) -> InvoiceDocument:
    """Compute the period's invoices as `invoice` would, store them as issued with the run
    they reflect, and return them (status "closed")."""
    existing = store.closing(str(month))
    if existing is not None:
        raise OptionError(
            f"--period {month}: already closed (run {existing['run']}, "
            f"{existing['closed_at']:%Y-%m-%d %H:%M} UTC); issued invoices never change",
            hint=f"`usagebill invoice --period {month}` prints them with any adjustments.",
        )
    doc = build_invoices(store, config, month)
    doc.status = "closed"
    issuer = config.issuer.model_dump(mode="json") if config.issuer else None
    store.write_closing(
        str(month), store.latest_run(), {**doc.to_json(), "issuer": issuer},
        [(i.customer.id, i.cycle.start, i.cycle.end, to_record(i)) for i in doc.invoices],
    )
    return doc


def invoice_document(
    store: Store, config: Config, month: Month, *, customer: str | None = None,
    as_of: int | None = None,
) -> InvoiceDocument:
    """What `invoice` prints: a draft, or for a closed period the issued invoices plus the
    adjustments that what arrived since calls for."""
    closing = store.closing(str(month), as_of)
    if closing is None:
        return build_invoices(store, config, month, customer=customer, as_of=as_of)
    config = as_issued(config, closing)
    issued = [invoice_from_record(r) for r in store.issued(str(month))
              if customer in (None, r["customer"]["id"])]
    # Re-measured with what is stored now, priced as issued: only data makes adjustments.
    current = build_invoices(store, config, month, customer=customer, as_of=as_of,
                             issued={i.customer.id: i for i in issued})
    return InvoiceDocument(
        month, config.currency, issued, current.warnings, status="closed",
        adjustments=adjustments(issued, current.invoices, config.currency),
    )


def as_issued(config: Config, closing: dict[str, Any]) -> Config:
    """The config a closed period is shown with: its invoices keep the currency they were
    issued in, and their issuer and numbers, whatever the config says now. (Closings made
    before the issuer was kept show the config's.)"""
    update: dict[str, Any] = {}
    if closing.get("currency") and closing["currency"] != config.currency:
        update["currency"] = closing["currency"]
    if "issuer" in closing:
        issuer = Issuer.model_validate(closing["issuer"]) if closing["issuer"] else None
        if issuer != config.issuer:
            update["issuer"] = issuer
    return config.model_copy(update=update) if update else config


def _key(line: dict[str, Any]) -> tuple[str, str]:
    return line["kind"], line.get("meter_id") or line.get("credit_id") or ""


def adjustments(issued: list[Invoice], current: list[Invoice], currency: str) -> list[dict]:
    """Per customer, the lines whose amount differs now from what was issued: current minus
    issued, line by line (an invoice or line that is new counts as issued 0)."""
    before = {i.customer.id: i for i in issued}
    now = {i.customer.id: i for i in current}
    out = []
    for cid in sorted(before.keys() | now.keys()):
        old = {_key(x): x for x in (before[cid].to_json(currency)["lines"] if cid in before
                                     else [])}
        new = {_key(x): x for x in (now[cid].to_json(currency)["lines"] if cid in now else [])}
        lines = []
        for key in [*old, *(k for k in new if k not in old)]:
            was = Decimal(old[key]["amount"]) if key in old else ZERO
            is_ = Decimal(new[key]["amount"]) if key in new else ZERO
            if was == is_:
                continue
            line: dict[str, Any] = {"kind": key[0]}
            if key[0] == "usage":
                line["meter_id"] = key[1]
            elif key[0] == "credit":
                line["credit_id"] = key[1]
            line.update(issued=fmt_money(was, currency), current=fmt_money(is_, currency),
                        difference=fmt_money(total([is_, -was]), currency))
            lines.append(line)
        if lines:
            out.append({"customer_id": cid, "lines": lines, "total_difference": fmt_money(
                total(Decimal(x["difference"]) for x in lines), currency)})
    return out
