"""Credit pools (SPEC §5): each rule on a ledger of three cycles, first as pure arithmetic,
then end to end from events through the invoice's credit line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from usagebill.config import Config, CreditPool
from usagebill.credits import LedgerEntry, ledger
from usagebill.cycles import Month, cycle_for
from usagebill.invoices import build_invoices, credit_ledgers
from usagebill.pricing import price
from usagebill.store import Store

from .conftest import config, event

D = Decimal
Ingest = Callable[..., Any]
UTC = ZoneInfo("UTC")
AUG, SEP, OCT = Month(2026, 8), Month(2026, 9), Month(2026, 10)


def pool(**fields: Any) -> CreditPool:
    """A pool parsed from YAML like a user would write it (per_cycle 100 unless given)."""
    fields = {"per_cycle": 100, **fields}
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    return config(f"version: 1\ncredits:\n  - {{id: pool, {body}}}\n").credits[0]


def three_cycles(p: CreditPool, *draws: Mapping[str, str]) -> list[LedgerEntry]:
    """August, September and October (UTC, anchor 1), with these draws per meter."""
    cycles = [cycle_for(m, 1, UTC) for m in (AUG, SEP, OCT)]
    return ledger(p, [(c, {k: D(v) for k, v in d.items()}) for c, d in zip(cycles, draws)])


def figures(e: LedgerEntry) -> dict[str, Decimal]:
    return {
        "rolled_over": e.rolled_over,
        "granted": e.granted,
        "consumed": e.consumed,
        "from_rollover": e.from_rollover,
        "from_grant": e.from_grant,
        "overage": e.overage,
        "remaining": e.remaining,
        "expired": e.expired,
        "carried": e.carried,
    }


# -- the ledger, cycle by cycle ---------------------------------------------------------------


def test_every_cycle_is_granted_afresh_and_nothing_rolls_without_rollover_percent() -> None:
    # 100 granted each cycle; 30 used in August leaves 70 that simply lapse
    entries = three_cycles(pool(), {"t": "30"}, {}, {"t": "100"})
    assert [(e.rolled_over, e.granted, e.consumed, e.remaining) for e in entries] == [
        (0, 100, 30, 70),
        (0, 100, 0, 100),
        (0, 100, 100, 0),
    ]


def test_rollover_first_then_grant_then_expiry_after_one_cycle() -> None:
    entries = three_cycles(pool(rollover_percent=50), {"t": "30"}, {"t": "50"}, {})
    aug, sep, oct_ = (figures(e) for e in entries)
    # August: 30 of the 100 grant used; 50% of the unused 70 = 35 carries into September
    assert aug == {
        "rolled_over": 0,
        "granted": 100,
        "consumed": 30,
        "from_rollover": 0,
        "from_grant": 30,
        "overage": 0,
        "remaining": 70,
        "expired": 0,
        "carried": 35,
    }
    # September: 50 used, the 35 rolled-over credits first, then 15 of the grant; 50% of
    # the unused grant 85 = 42.5 carries on. remaining = 35 − 35 + 100 − 15 = 85
    assert sep == {
        "rolled_over": 35,
        "granted": 100,
        "consumed": 50,
        "from_rollover": 35,
        "from_grant": 15,
        "overage": 0,
        "remaining": 85,
        "expired": 0,
        "carried": D("42.5"),
    }
    # October: nothing used; the 42.5 rolled over from September expire at the end (they
    # never roll twice) and only 50% of October's own unused grant (100) = 50 carries.
    # remaining (before expiry) = 42.5 + 100 = 142.5
    assert oct_ == {
        "rolled_over": D("42.5"),
        "granted": 100,
        "consumed": 0,
        "from_rollover": 0,
        "from_grant": 0,
        "overage": 0,
        "remaining": D("142.5"),
        "expired": D("42.5"),
        "carried": 50,
    }


def test_rollover_is_rounded_down_to_the_precision() -> None:
    # unused 10 × 12.35% = 1.235 → 1.23 at 2 decimals (half-up would give 1.24)
    assert three_cycles(pool(per_cycle=10, rollover_percent="12.35"), {}, {}, {})[0].carried == D(
        "1.23"
    )
    # unused 10 × 99% = 9.9 → 9 at precision 0
    entries = three_cycles(pool(per_cycle=10, rollover_percent=99, precision=0), {}, {}, {})
    assert [e.carried for e in entries] == [9, 9, 9]
    assert [e.rolled_over for e in entries] == [0, 9, 9]


def test_overage_is_what_is_used_beyond_the_balance_and_is_billed_at_its_price() -> None:
    p = pool(rollover_percent=10, overage_unit_price='"0.01"')
    entries = three_cycles(p, {"t": "80"}, {"t": "132"}, {"t": "250"})
    # August: 80 of 100 → 20 unused → 10% = 2 carried
    # September: 132 = 2 rolled over + 100 grant + 30 overage → 30 × $0.01 = $0.30
    # October: nothing rolled (the grant was used up); 250 = 100 + 150 overage → $1.50
    assert [(e.rolled_over, e.overage, e.overage_amount, e.remaining) for e in entries] == [
        (0, 0, 0, 20),
        (2, 30, D("0.30"), 0),
        (0, 150, D("1.50"), 0),
    ]
    # consumed includes the overage (SPEC §5)
    assert [e.consumed for e in entries] == [80, 132, 250]


def test_overage_without_a_price_is_counted_but_costs_nothing() -> None:
    entries = three_cycles(pool(), {"t": "150"}, {}, {})
    assert (entries[0].overage, entries[0].overage_amount) == (50, 0)


def test_several_meters_draw_on_one_pool() -> None:
    # 60 + 70 = 130 credits in one cycle: the pool does not care which meter drew them
    e = three_cycles(pool(overage_unit_price=1), {"text": "60", "images": "70"}, {}, {})[0]
    assert (e.consumed, e.from_grant, e.overage, e.overage_amount) == (130, 100, 30, 30)
    assert dict(e.draws) == {"text": 60, "images": 70}


def test_ledger_can_open_with_a_closed_cycles_rollover() -> None:
    p = pool(rollover_percent=100)
    entries = ledger(p, [(cycle_for(OCT, 1, UTC), {})], opening=D(40))
    assert (entries[0].rolled_over, entries[0].remaining, entries[0].carried) == (40, 140, 100)


# -- consumption rounding (price of a credit charge) ------------------------------------------


def credit_charge(precision: int = 2) -> tuple[Config, CreditPool]:
    cfg = config(
        f"""\
version: 1
meters:
  - {{id: tokens, event_name: ai.tokens, aggregation: {{type: sum, key: tokens}}}}
credits:
  - {{id: ai, per_cycle: 1000, precision: {precision}}}
products:
  - id: p
    charges:
      - {{meter: tokens, credit: ai, units_per_credit: 1000, free_units: 500}}
"""
    )
    return cfg, cfg.credits[0]


@pytest.mark.parametrize(
    ("precision", "tokens", "credits"),
    [
        (2, "1501", "1.01"),  # (1,501 − 500 free) / 1,000 = 1.001 → up to 1.01
        (2, "1500", "1"),  # exactly 1
        (0, "1501", "2"),  # 1.001 → up to 2 at precision 0
        (3, "1501", "1.001"),
        (2, "500", "0"),  # all free
        (2, "0", "0"),
    ],
)
def test_consumption_is_rounded_up_to_the_pools_precision(
    precision: int, tokens: str, credits: str
) -> None:
    cfg, p = credit_charge(precision)
    priced = price(cfg.products[0].charges[0], D(tokens), p)
    assert priced.credits == D(credits)
    assert priced.exact == 0  # a charge drawing on credits costs no money itself


# -- end to end: events → credit lines --------------------------------------------------------

PRODUCT = """\
version: 1
currency: USD
meters:
  - {id: text, name: Text tokens, event_name: ai.text, aggregation: {type: sum, key: tokens}}
  - {id: images, name: Images, event_name: ai.image, aggregation: {type: count}}
  - {id: calls, event_name: api.call, aggregation: {type: count}}
credits:
  - id: ai
    name: AI credits
    per_cycle: 100
    precision: 2
    rollover_percent: 50
    overage_unit_price: "0.10"
  - {id: spare, per_cycle: 5}
products:
  - id: pro
    name: Pro
    base_price: "10.00"
    charges:
      - {meter: text, credit: ai, units_per_credit: 1000}
      - {meter: images, credit: ai, units_per_credit: "0.5"}
      - {meter: calls, unit_price: "0.001"}
  - id: two_pools
    charges:
      - {meter: text, credit: ai, units_per_credit: 1000}
      - {meter: images, credit: spare}
customers:
"""


def cfg_with(*customers: str) -> Config:
    return config(PRODUCT + "".join(f"  - {c}\n" for c in customers))


def credit_lines(store: Store, cfg: Config, month: Month = OCT) -> dict[str, dict[str, Any]]:
    doc = build_invoices(store, cfg, month).to_json()
    return {
        f"{inv['customer_id']}/{line['credit_id']}": line
        for inv in doc["invoices"]
        for line in inv["lines"]
        if line["kind"] == "credit"
    }


def test_a_three_cycle_history_reaches_the_invoice(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            # August: 30,000.5 tokens → 30.0005 → 30.01 credits (rounded up per cycle)
            event("a1", "cus_a", "ai.text", "2026-08-10T00:00:00Z", tokens=30000),
            event("a2", "cus_a", "ai.text", "2026-08-20T00:00:00Z", tokens=0.5),
            # September: 20 images / 0.5 per credit = 40 credits; plus 30 text credits
            *[event(f"s{i}", "cus_a", "ai.image", "2026-09-15T00:00:00Z") for i in range(20)],
            event("s_text", "cus_a", "ai.text", "2026-09-16T00:00:00Z", tokens=30000),
            # October: 150 text credits
            event("o1", "cus_a", "ai.text", "2026-10-03T00:00:00Z", tokens=150000),
            event("o2", "cus_a", "api.call", "2026-10-03T00:00:00Z"),
        ]
    )
    cfg = cfg_with("{id: cus_a, product: pro}")
    (customer, p, entries) = credit_ledgers(store, cfg, OCT)[0]
    assert (customer.id, p.id) == ("cus_a", "ai")
    # August (the cycle of the first event): 30.01 used, unused 69.99 × 50% = 34.995 → 34.99
    # September: 34.99 rolled over + 100; 70 used: 34.99 from rollover, 35.01 from the grant;
    #   unused grant 64.99 × 50% = 32.495 → 32.49 carried
    # October: 32.49 rolled over + 100; 150 used: 32.49 + 100 + 17.51 overage × $0.10 = $1.751;
    #   the grant is used up, so nothing carries
    assert [
        (str(e.cycle.month), e.rolled_over, e.consumed, e.overage, e.carried) for e in entries
    ] == [
        ("2026-08", 0, D("30.01"), 0, D("34.99")),
        ("2026-09", D("34.99"), 70, 0, D("32.49")),
        ("2026-10", D("32.49"), 150, D("17.51"), 0),
    ]
    assert dict(entries[1].draws) == {"text": 30, "images": 40}
    doc = build_invoices(store, cfg, OCT).to_json()
    lines = doc["invoices"][0]["lines"]
    assert lines == [
        {"kind": "base", "description": "Pro", "amount": "10.00"},
        {
            "kind": "usage",
            "meter_id": "text",
            "description": "Text tokens",
            "quantity": "150000",
            "free_units": "0",
            "billable_units": "150000",
            "amount": "0.00",
            "credits": "150",
        },
        {
            "kind": "usage",
            "meter_id": "images",
            "description": "Images",
            "quantity": "0",
            "free_units": "0",
            "billable_units": "0",
            "amount": "0.00",
            "credits": "0",
        },
        {
            "kind": "usage",
            "meter_id": "calls",
            "description": "calls",
            "quantity": "1",
            "free_units": "0",
            "billable_units": "1",
            "amount": "0.00",  # 1 × $0.001 = $0.001 → $0.00
        },
        {
            "kind": "credit",
            "credit_id": "ai",
            "granted": "100",
            "rolled_over": "32.49",
            "consumed": "150",
            "remaining": "0",
            "overage_credits": "17.51",
            "amount": "1.75",  # 17.51 × $0.10 = $1.751 → $1.75
        },
    ]
    # 10.00 + 0.00 + 0.00 + 0.00 + 1.75 = 11.75
    assert doc["invoices"][0]["total"] == "11.75"


def test_consumption_rounds_up_per_charge_and_cycle_not_per_event(
    store: Store, ingest: Ingest
) -> None:
    # 1,001 events of 1 token each: 1,001 / 1,000 = 1.001 → 1.01 credits for the cycle
    # (rounding each event up would make 1,001 × 0.01 = 10.01)
    ingest(
        [event(f"t{i}", "cus_a", "ai.text", "2026-10-03T00:00:00Z", tokens=1) for i in range(1001)]
    )
    line = credit_lines(store, cfg_with("{id: cus_a, product: pro}"))["cus_a/ai"]
    assert (line["consumed"], line["remaining"]) == ("1.01", "98.99")


def test_history_starts_at_start_date(store: Store, ingest: Ingest) -> None:
    ingest([event("o1", "cus_a", "ai.text", "2026-10-03T00:00:00Z", tokens=10000)])
    # start_date 2026-08-01: August and September pass unused; each carries 50 (50% of 100);
    # the 50 rolled from August into September expire there, so October opens with 50 + 100.
    # October uses 10 of its 50 rolled-over credits: the other 40 expire at its end.
    with_start = cfg_with("{id: cus_a, product: pro, start_date: 2026-08-01}")
    entries = credit_ledgers(store, with_start, OCT)[0][2]
    assert [(str(e.cycle.month), e.rolled_over, e.expired) for e in entries] == [
        ("2026-08", 0, 0),
        ("2026-09", 50, 50),
        ("2026-10", 50, 40),
    ]
    line = credit_lines(store, with_start)["cus_a/ai"]
    # 10 used from the 50 rolled over: remaining = 40 + 100 = 140
    assert (line["rolled_over"], line["consumed"], line["remaining"]) == ("50", "10", "140")


def test_history_starts_at_the_cycle_of_the_first_event(store: Store, ingest: Ingest) -> None:
    cfg = cfg_with("{id: cus_a, product: pro}")
    ingest([event("o1", "cus_a", "ai.text", "2026-10-03T00:00:00Z", tokens=10000)])
    # no start_date and no earlier event: October is the first cycle, nothing rolled over
    assert [str(e.cycle.month) for e in credit_ledgers(store, cfg, OCT)[0][2]] == ["2026-10"]
    assert credit_lines(store, cfg)["cus_a/ai"]["rolled_over"] == "0"
    # an event of any kind in September (even one no credit charge uses) starts the history
    # there: September's unused 100 × 50% = 50 rolls into October
    ingest([event("s1", "cus_a", "api.call", "2026-09-29T00:00:00Z")])
    assert [str(e.cycle.month) for e in credit_ledgers(store, cfg, OCT)[0][2]] == [
        "2026-09",
        "2026-10",
    ]
    assert credit_lines(store, cfg)["cus_a/ai"]["rolled_over"] == "50"


def test_corrected_events_start_the_history_where_they_count(
    store: Store, ingest: Ingest
) -> None:
    cfg = cfg_with("{id: cus_a, product: pro}", "{id: cus_b, product: pro}")
    ingest(
        [
            event("a0", "cus_a", "ai.text", "2026-09-05T00:00:00Z", tokens=1000),
            event("a1", "cus_a", "ai.text", "2026-10-05T00:00:00Z", tokens=10000),
            event("b0", "cus_b", "ai.text", "2026-09-05T00:00:00Z", tokens=1000),
            event("b1", "cus_b", "ai.text", "2026-10-05T00:00:00Z", tokens=10000),
            event("b2", "cus_b", "ai.text", "2026-10-06T00:00:00Z", tokens=1000),
        ]
    )
    ingest(
        [
            {"event_id": "fix-a0", "void": "a0"},  # a0 counts nowhere
            {"event_id": "fix-b0", "amend": "b0", "timestamp": "2026-10-06T00:00:00Z"},
            {"event_id": "fix-b2", "amend": "b2", "timestamp": "2026-07-06T00:00:00Z"},
        ]
    )

    def months(customer: str) -> list[str]:
        ledgers = {c.id: entries for c, _, entries in credit_ledgers(store, cfg, OCT)}
        return [str(e.cycle.month) for e in ledgers[customer]]

    # cus_a: October is the first cycle; 10 credits used of 100, nothing rolled over
    assert months("cus_a") == ["2026-10"]
    line = credit_lines(store, cfg)["cus_a/ai"]
    assert (line["rolled_over"], line["consumed"], line["remaining"]) == ("0", "10", "90")
    # cus_b: b2 moved to July starts the history there (b0 moved to October)
    assert months("cus_b") == ["2026-07", "2026-08", "2026-09", "2026-10"]


def test_other_customers_events_do_not_start_a_history(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("b1", "cus_b", "ai.text", "2026-07-03T00:00:00Z", tokens=1),
            event("a1", "cus_a", "ai.text", "2026-10-03T00:00:00Z", tokens=1),
        ]
    )
    cfg = cfg_with("{id: cus_a, product: pro}", "{id: cus_b, product: pro}")
    ledgers = {
        c.id: [str(e.cycle.month) for e in entries]
        for c, _, entries in credit_ledgers(store, cfg, OCT)
    }
    assert ledgers == {
        "cus_a": ["2026-10"],
        "cus_b": ["2026-07", "2026-08", "2026-09", "2026-10"],
    }


def test_one_credit_line_per_pool_even_when_nothing_is_used(store: Store, ingest: Ingest) -> None:
    ingest([event("x", "cus_other", "api.call", "2026-10-03T00:00:00Z")])
    cfg = cfg_with("{id: cus_a, product: two_pools}")
    lines = credit_lines(store, cfg)
    assert lines == {
        "cus_a/ai": {
            "kind": "credit",
            "credit_id": "ai",
            "granted": "100",
            "rolled_over": "0",
            "consumed": "0",
            "remaining": "100",
            "overage_credits": "0",
            "amount": "0.00",
        },
        "cus_a/spare": {
            "kind": "credit",
            "credit_id": "spare",
            "granted": "5",
            "rolled_over": "0",
            "consumed": "0",
            "remaining": "5",
            "overage_credits": "0",
            "amount": "0.00",
        },
    }


def test_overage_without_a_price_is_not_billed_and_says_so(store: Store, ingest: Ingest) -> None:
    # the spare pool grants 5 credits and has no overage price: 7 images use 7, 2 beyond
    ingest([event(f"i{i}", "cus_a", "ai.image", "2026-10-03T00:00:00Z") for i in range(7)])
    cfg = cfg_with("{id: cus_a, product: two_pools}")
    doc = build_invoices(store, cfg, OCT).to_json()
    spare = credit_lines(store, cfg)["cus_a/spare"]
    assert (spare["consumed"], spare["overage_credits"], spare["amount"]) == ("7", "2", "0.00")
    assert doc["invoices"][0]["total"] == "0.00"
    overage = [w for w in doc["warnings"] if w["kind"] == "unbilled_overage"]
    assert len(overage) == 1
    assert overage[0]["customer_id"] == "cus_a"
    assert "2" in overage[0]["message"] and "spare" in overage[0]["message"]


def test_a_credits_line_of_the_spec_example(store: Store, ingest: Ingest) -> None:
    # SPEC §6: 1,200 credits consumed with 1,000 granted → 200 overage × $0.01 = $2.00
    cfg = config(
        """\
version: 1
meters:
  - {id: tokens, event_name: ai.tokens, aggregation: {type: sum, key: tokens}}
credits:
  - {id: ai_credits, per_cycle: 1000, overage_unit_price: "0.01"}
products:
  - id: p
    charges: [{meter: tokens, credit: ai_credits, units_per_credit: 1000}]
customers:
  - {id: cus_abc, product: p}
"""
    )
    ingest([event("t", "cus_abc", "ai.tokens", "2026-10-05T00:00:00Z", tokens=1200000)])
    assert credit_lines(store, cfg)["cus_abc/ai_credits"] == {
        "kind": "credit",
        "credit_id": "ai_credits",
        "granted": "1000",
        "rolled_over": "0",
        "consumed": "1200",
        "remaining": "0",
        "overage_credits": "200",
        "amount": "2.00",
    }
