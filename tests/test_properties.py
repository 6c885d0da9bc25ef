"""Hypothesis properties of pricing, credits and invoices (issue 4), and byte-stable output.

The pricing properties are pure and run many examples; the invoice properties ingest real
files into a fresh in-memory database per example, so they run few."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usagebill.config import Charge, Config, CreditPool, Tier
from usagebill.credits import ledger
from usagebill.cycles import Month, cycle_for, parse_period
from usagebill.invoices import build_invoices
from usagebill.pricing import price
from usagebill.render import to_json
from usagebill.store import Store
from usagebill.usage import usage_report

from .conftest import config

D = Decimal
OCT = Month(2026, 10)
DB_SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- pricing: amounts never fall when usage grows ---------------------------------------------

money = st.decimals(min_value=0, max_value=100, places=4)
units = st.decimals(min_value=0, max_value=10_000, places=3)


@st.composite
def tiers(draw: st.DrawFn) -> list[Tier]:
    bounds = sorted(
        draw(st.sets(st.decimals(min_value=1, max_value=5000, places=1), min_size=0, max_size=4))
    )
    ups: list[Decimal | None] = [*bounds, None]
    return [
        Tier(up_to=u, unit_price=draw(money), flat_price=draw(st.one_of(st.just(D(0)), money)))
        for u in ups
    ]


@st.composite
def monotone_charges(draw: st.DrawFn) -> Charge:
    """per_unit, package and graduated: the models whose amount never falls as usage grows
    (volume may: 11 units at $6 cost less than 10 at $6.50)."""
    model = draw(st.sampled_from(["per_unit", "package", "graduated"]))
    free = draw(st.one_of(st.just(D(0)), units))
    if model == "per_unit":
        return Charge(meter="m", model=model, unit_price=draw(money), free_units=free)
    if model == "package":
        return Charge(
            meter="m",
            model=model,
            package_size=draw(st.decimals(min_value=D("0.5"), max_value=1000, places=1)),
            package_price=draw(money),
            free_units=free,
        )
    return Charge(meter="m", model=model, tiers=draw(tiers()), free_units=free)


@settings(max_examples=200)
@given(monotone_charges(), units, units)
def test_per_unit_package_and_graduated_amounts_never_fall_when_usage_grows(
    charge: Charge, a: Decimal, b: Decimal
) -> None:
    low, high = sorted((a, b))
    assert price(charge, low).exact <= price(charge, high).exact


@settings(max_examples=200)
@given(
    st.one_of(
        monotone_charges(),
        tiers().map(lambda t: Charge(meter="m", model="volume", tiers=t)),
    ),
    st.decimals(min_value=-10_000, max_value=10_000, places=3),
)
def test_amounts_are_never_negative_and_steps_add_up(charge: Charge, quantity: Decimal) -> None:
    # a sum meter can go negative (refunds): billable = max(quantity − free, 0) keeps it at 0
    p = price(charge, quantity)
    assert p.billable >= 0
    assert p.exact >= 0
    assert sum((s.amount for s in p.steps), D(0)) == p.exact
    if p.billable == 0:
        assert p.exact == 0  # no flat price at zero usage


# -- credits: the ledger balances -------------------------------------------------------------


@settings(max_examples=200)
@given(
    per_cycle=st.decimals(min_value=0, max_value=1000, places=2),
    rollover=st.one_of(st.none(), st.decimals(min_value=0, max_value=100, places=1)),
    precision=st.integers(min_value=0, max_value=4),
    draws=st.lists(st.decimals(min_value=0, max_value=2000, places=2), min_size=1, max_size=6),
)
def test_the_credit_ledger_balances(
    per_cycle: Decimal, rollover: Decimal | None, precision: int, draws: list[Decimal]
) -> None:
    pool = CreditPool(
        id="p",
        per_cycle=per_cycle,
        precision=precision,
        rollover_percent=rollover,
        overage_unit_price=D("0.01"),
    )
    months = [OCT]
    for _ in draws[1:]:
        months.append(months[-1].next())
    cycles = [cycle_for(m, 1, dt.timezone.utc) for m in months]  # type: ignore[arg-type]
    entries = ledger(pool, [(c, {"m": d}) for c, d in zip(cycles, draws)])
    previous_carry = D(0)
    for e in entries:
        assert e.rolled_over == previous_carry  # what carried is exactly what rolls in
        assert e.from_rollover + e.from_grant + e.overage == e.consumed
        assert 0 <= e.from_rollover <= e.rolled_over
        assert 0 <= e.from_grant <= e.granted
        assert e.overage >= 0 and e.remaining >= 0 and e.expired >= 0
        assert e.overage == 0 or e.remaining == 0  # overage only once the balance is gone
        unused = e.granted - e.from_grant
        assert 0 <= e.carried <= unused  # only the grant rolls, never more than its unused part
        assert e.carried == e.carried.quantize(D(1).scaleb(-precision))
        assert e.overage_amount == e.overage * D("0.01")
        previous_carry = e.carried


# -- invoices over real events ----------------------------------------------------------------

CONFIG = """\
version: 1
currency: USD
timezone: Europe/Berlin
meters:
  - {id: calls, event_name: api.call, aggregation: {type: count}}
  - {id: gb, event_name: storage, aggregation: {type: max, key: v}}
  - {id: spend, event_name: storage, aggregation: {type: sum, key: v}}
  - {id: tokens, event_name: ai.tokens, aggregation: {type: sum, key: v}}
  - {id: users, event_name: api.call, aggregation: {type: unique_count, key: user}}
credits:
  - {id: ai, per_cycle: 50, precision: 1, rollover_percent: 50, overage_unit_price: "0.013"}
products:
  - id: pro
    base_price: "9.99"
    charges:
      - {meter: calls, unit_price: "0.0125", free_units: 3}
      - meter: gb
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0.333", flat_price: "0.5"}
          - {up_to: null, unit_price: "0.111"}
      - {meter: spend, model: package, package_size: 7, package_price: "1.005"}
      - {meter: tokens, credit: ai, units_per_credit: 3}
  - id: lite
    charges:
      - meter: calls
        model: volume
        tiers:
          - {up_to: 5, unit_price: "0.07"}
          - {up_to: null, unit_price: "0.065", flat_price: "0.015"}
customers:
  - {id: cus_a, product: pro}
  - {id: cus_b, product: lite, billing_anchor: 31, timezone: America/New_York}
  - {id: cus_c, product: pro, billing_anchor: 15, start_date: 2026-09-20}
"""
CFG: Config = config(CONFIG)
START = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
SPAN = int((dt.datetime(2026, 12, 20, tzinfo=dt.timezone.utc) - START).total_seconds())


@st.composite
def events(draw: st.DrawFn, customers: list[str]) -> dict[str, Any]:
    name = draw(st.sampled_from(["api.call", "storage", "ai.tokens", "other"]))
    meta: dict[str, Any] = {}
    if name == "api.call":
        meta["user"] = draw(st.sampled_from(["u1", "u2", 3, 3.0, "3"]))
    elif name != "other":
        value = draw(st.decimals(min_value=-50, max_value=500, places=2))
        meta["v"] = f"@{value}@"  # written as a JSON number below, exactly as the decimal
    ts = START + dt.timedelta(seconds=draw(st.integers(min_value=0, max_value=SPAN)))
    return {
        "customer_id": draw(st.sampled_from(customers)),
        "event_name": name,
        "timestamp": ts.isoformat().replace("+00:00", "Z"),
        "metadata": meta,
    }


def numbered(items: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}{i}", **e} for i, e in enumerate(items)]


def line(e: dict[str, Any]) -> str:
    return json.dumps(e).replace('"@', "").replace('@"', "")


@contextmanager
def loaded(*files: list[dict[str, Any]]) -> Iterator[Store]:
    """A fresh in-memory database with these files ingested (in this order) as one run."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, content in enumerate(files):
            path = Path(tmp) / f"part-{i}.jsonl"
            path.write_text("".join(line(e) + "\n" for e in content), encoding="utf-8")
            paths.append(str(path))
        store = Store.open(None)
        try:
            store.ingest(paths)
            yield store
        finally:
            store.close()


@DB_SETTINGS
@given(st.lists(events(["cus_a", "cus_b", "cus_c", "cus_x"]), max_size=40))
def test_invoice_totals_are_the_sum_of_their_lines_and_never_negative(
    items: list[dict[str, Any]],
) -> None:
    with loaded(numbered(items, "e")) as store:
        doc = build_invoices(store, CFG, OCT).to_json()
    for inv in doc["invoices"]:
        amounts = [D(x["amount"]) for x in inv["lines"]]
        assert D(inv["total"]) == sum(amounts, D(0))
        assert all(a >= 0 for a in amounts)
        # money has exactly the currency's two decimals
        assert all(x["amount"].split(".")[1].__len__() == 2 for x in inv["lines"])
        assert len(inv["total"].split(".")[1]) == 2


@DB_SETTINGS
@given(
    st.lists(events(["cus_a"]), max_size=25),
    st.lists(events(["cus_b", "cus_c", "cus_x"]), min_size=1, max_size=25),
)
def test_another_customers_events_never_change_this_customers_invoice(
    mine: list[dict[str, Any]], theirs: list[dict[str, Any]]
) -> None:
    with loaded(numbered(mine, "a")) as alone:
        before = build_invoices(alone, CFG, OCT, customer="cus_a").to_json()
    with loaded(numbered(mine, "a"), numbered(theirs, "b")) as crowded:
        after = build_invoices(crowded, CFG, OCT, customer="cus_a").to_json()
        everyone = build_invoices(crowded, CFG, OCT).to_json()
    assert after == before
    assert [i for i in everyone["invoices"] if i["customer_id"] == "cus_a"] == before["invoices"]


@DB_SETTINGS
@given(
    st.lists(events(["cus_a", "cus_b", "cus_c", "cus_x"]), min_size=1, max_size=30),
    st.data(),
)
def test_the_same_events_in_any_file_order_give_the_same_bytes(
    items: list[dict[str, Any]], data: st.DataObject
) -> None:
    evs = numbered(items, "e")
    # some events repeated identically (duplicates, not rejects) in another file
    repeats = data.draw(st.lists(st.sampled_from(evs), max_size=5))
    n_files = data.draw(st.integers(min_value=1, max_value=4))
    assignment = [data.draw(st.integers(0, n_files - 1)) for _ in evs]
    files = [[e for e, f in zip(evs, assignment) if f == i] for i in range(n_files)]
    files.append(repeats)
    shuffled = data.draw(st.permutations([data.draw(st.permutations(f)) for f in files]))

    def outputs(parts: list[list[dict[str, Any]]]) -> tuple[str, str, str]:
        with loaded(*parts) as store:
            return (
                to_json(build_invoices(store, CFG, OCT).to_json()),
                to_json(build_invoices(store, CFG, Month(2026, 11)).to_json()),
                to_json(usage_report(store, CFG, parse_period("2026-10"), by_day=True).to_json()),
            )

    assert outputs(files) == outputs(shuffled)
