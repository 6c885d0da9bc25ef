"""Invoices (SPEC §4–§6): cycles per customer, start dates, lines, money, warnings."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from usagebill.config import Config
from usagebill.cycles import Month
from usagebill.errors import ConfigError, OptionError
from usagebill.invoices import build_invoices
from usagebill.render import invoice_csv
from usagebill.store import Store

from .conftest import config, event

Ingest = Callable[..., Any]
OCT = Month(2026, 10)

BASE = """\
version: 1
currency: {currency}
timezone: UTC
meters:
  - {{id: calls, name: API calls, event_name: api.call, aggregation: {{type: count}}}}
  - {{id: gb, name: Storage, event_name: storage, aggregation: {{type: max, key: gb}}}}
  - {{id: sms, name: SMS, event_name: sms.sent, aggregation: {{type: count}}}}
  - {{id: seats, event_name: api.call, aggregation: {{type: unique_count, key: user}}}}
products:
  - id: metered
    name: Metered
    base_price: "49.00"
    charges:
      - {{meter: calls, unit_price: "0.02", free_units: 1000}}
  - id: bare
    charges:
      - {{meter: calls, unit_price: "0.005"}}
      - {{meter: gb, unit_price: "0.005"}}
      - {{meter: sms, unit_price: "0.005"}}
customers:
"""


def cfg(*customers: str, currency: str = "USD") -> Config:
    return config(BASE.format(currency=currency) + "".join(f"  - {c}\n" for c in customers))


def invoices(store: Store, c: Config, month: Month = OCT, **kw: Any) -> dict[str, Any]:
    return build_invoices(store, c, month, **kw).to_json()


def by_customer(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {inv["customer_id"]: inv for inv in doc["invoices"]}


def calls(n: int, customer: str = "cus_a", ts: str = "2026-10-05T12:00:00Z") -> list[dict]:
    return [event(f"{customer}-{ts}-{i}", customer, "api.call", ts) for i in range(n)]


# -- the SPEC example and the shape -----------------------------------------------------------


def test_per_unit_with_free_units_and_a_base_price(store: Store, ingest: Ingest) -> None:
    # base $49.00 + (2,500 − 1,000 free) × $0.02 = $30.00 → total $79.00
    ingest(calls(2500))
    inv = invoices(store, cfg("{id: cus_a, name: Acme Inc, product: metered}"))["invoices"][0]
    assert inv == {
        "customer_id": "cus_a",
        "customer_name": "Acme Inc",
        "product_id": "metered",
        "period_start": "2026-10-01T00:00:00+00:00",
        "period_end": "2026-11-01T00:00:00+00:00",
        "lines": [
            {"kind": "base", "description": "Metered", "amount": "49.00"},
            {
                "kind": "usage",
                "meter_id": "calls",
                "description": "API calls",
                "quantity": "2500",
                "free_units": "1000",
                "billable_units": "1500",
                "amount": "30.00",
            },
        ],
        "total": "79.00",
    }


def test_a_customer_without_usage_pays_the_base_price(store: Store) -> None:
    inv = invoices(store, cfg("{id: cus_a, product: metered}"))["invoices"][0]
    assert [line["amount"] for line in inv["lines"]] == ["49.00", "0.00"]
    assert inv["lines"][1]["quantity"] == "0"
    assert inv["customer_name"] == "cus_a"  # no name: the id
    assert inv["total"] == "49.00"


def test_invoices_are_sorted_by_customer_id_and_cover_every_customer(
    store: Store, ingest: Ingest
) -> None:
    ingest(calls(3, "cus_b"))
    c = cfg(
        "{id: cus_c, product: bare}", "{id: cus_a, product: bare}", "{id: cus_b, product: bare}"
    )
    assert [i["customer_id"] for i in invoices(store, c)["invoices"]] == ["cus_a", "cus_b", "cus_c"]


def test_customer_option_selects_one_invoice(store: Store, ingest: Ingest) -> None:
    ingest(calls(3, "cus_b") + calls(1, "cus_zzz"))
    c = cfg("{id: cus_a, product: bare}", "{id: cus_b, product: bare}")
    doc = invoices(store, c, customer="cus_b")
    assert [i["customer_id"] for i in doc["invoices"]] == ["cus_b"]
    assert doc["warnings"] == []  # other customers' problems are not this report's
    with pytest.raises(OptionError) as e:
        build_invoices(store, c, OCT, customer="cus_bb")
    assert e.value.exit_code == 2
    assert "did you mean 'cus_b'" in e.value.message


# -- money ------------------------------------------------------------------------------------


def test_the_total_is_the_sum_of_rounded_lines(store: Store, ingest: Ingest) -> None:
    # three lines of 1 × $0.005 = $0.005 each round half-up to $0.01: total $0.03
    # (rounding the exact sum $0.015 would give $0.02)
    ingest(
        [
            event("c", "cus_a", "api.call"),
            event("g", "cus_a", "storage", gb=1),
            event("s", "cus_a", "sms.sent"),
        ]
    )
    inv = invoices(store, cfg("{id: cus_a, product: bare}"))["invoices"][0]
    assert [line["amount"] for line in inv["lines"]] == ["0.01", "0.01", "0.01"]
    assert inv["total"] == "0.03"


def test_large_lines_add_up_exactly(store: Store, ingest: Ingest) -> None:
    # Prices may have 26 digits before the point; with a 20-digit quantity a line has 46,
    # beyond the 28 digits of Python's default decimal context.
    c = config("""
version: 1
currency: USD
meters:
  - {id: n, event_name: use, aggregation: {type: sum, key: n}}
  - {id: calls, event_name: use, aggregation: {type: count}}
products:
  - id: big
    charges:
      - {meter: n, unit_price: "99999999999999999999999999.01"}
      - {meter: calls, unit_price: "0.01"}
customers:
  - {id: cus_a, product: big}
""")
    ingest([event("u", "cus_a", "use", n=10**20)])
    inv = invoices(store, c)["invoices"][0]
    big = "9999999999999999999999999901000000000000000000.00"  # 10^20 × 99…99.01
    assert [line["amount"] for line in inv["lines"]] == [big, "0.01"]
    assert inv["total"] == "9999999999999999999999999901000000000000000000.01"


def test_prices_beyond_26_digits_are_refused_by_the_config() -> None:
    text = """
version: 1
meters: [{id: m, event_name: use, aggregation: {type: count}}]
products: [{id: p, charges: [{meter: m, unit_price: "9e999999"}]}]
"""
    with pytest.raises(ConfigError) as e:
        config(text)
    assert [i.message for i in e.value.issues] == [
        "is too large: at most 26 digits before the decimal point"]


@pytest.mark.parametrize(
    ("currency", "amount", "total"),
    [
        # 3 × 0.005 = 0.015 per line; JPY has no minor unit: 0.015 → 0 yen each
        ("JPY", "0", "0"),
        # KWD has 3 decimals: 0.015 stays 0.015, total 0.045
        ("KWD", "0.015", "0.045"),
        ("USD", "0.02", "0.06"),  # 0.015 → 0.02 half-up
    ],
)
def test_amounts_have_the_currencys_minor_unit_decimals(
    store: Store, ingest: Ingest, currency: str, amount: str, total: str
) -> None:
    ingest(
        [event(f"c{i}", "cus_a", "api.call") for i in range(3)]
        + [event("g", "cus_a", "storage", gb=3)]
        + [event(f"s{i}", "cus_a", "sms.sent") for i in range(3)]
    )
    doc = invoices(store, cfg("{id: cus_a, product: bare}", currency=currency))
    assert doc["currency"] == currency
    inv = doc["invoices"][0]
    assert [line["amount"] for line in inv["lines"]] == [amount] * 3
    assert inv["total"] == total


def test_the_base_line_is_rounded_half_up_too(store: Store) -> None:
    # a base price of $9.995 is billed as $10.00 (half-up), and the total is that line
    text = (
        BASE.format(currency="USD").replace('"49.00"', '"9.995"')
        + "  - {id: c, product: metered}\n"
    )
    inv = invoices(store, config(text))["invoices"][0]
    assert (inv["lines"][0]["amount"], inv["total"]) == ("10.00", "10.00")


def test_base_price_in_yen_is_whole(store: Store) -> None:
    text = (
        BASE.format(currency="JPY").replace('"49.00"', "4900") + "  - {id: c, product: metered}\n"
    )
    inv = invoices(store, config(text))["invoices"][0]
    assert (inv["lines"][0]["amount"], inv["total"]) == ("4900", "4900")


# -- cycles per customer ----------------------------------------------------------------------


def test_each_customer_is_billed_for_its_own_anchor_and_zone(store: Store, ingest: Ingest) -> None:
    # cus_utc: Oct 1 → Nov 1 UTC. cus_berlin, anchor 15: 2026-10-15T00:00+02:00 →
    # 2026-11-15T00:00+01:00, i.e. [2026-10-14T22:00Z, 2026-11-14T23:00Z)
    stamps = [
        "2026-10-01T00:00:00Z",  # utc ✓, berlin ✗ (before Oct 15 local)
        "2026-10-14T21:59:59Z",  # utc ✓, berlin ✗ (Oct 14, 23:59:59 local)
        "2026-10-14T22:00:00Z",  # utc ✓, berlin ✓ (Oct 15, 00:00 local)
        "2026-11-01T00:00:00Z",  # utc ✗, berlin ✓
        "2026-11-14T22:59:59Z",  # utc ✗, berlin ✓ (Nov 14, 23:59:59 local)
        "2026-11-14T23:00:00Z",  # utc ✗, berlin ✗ (Nov 15, 00:00 local)
    ]
    events = [
        event(f"{cid}-{i}", cid, "api.call", ts)
        for cid in ("cus_utc", "cus_berlin")
        for i, ts in enumerate(stamps)
    ]
    ingest(events)
    c = cfg(
        "{id: cus_utc, product: bare}",
        "{id: cus_berlin, product: bare, billing_anchor: 15, timezone: Europe/Berlin}",
    )
    got = by_customer(invoices(store, c))
    assert (got["cus_utc"]["period_start"], got["cus_utc"]["period_end"]) == (
        "2026-10-01T00:00:00+00:00",
        "2026-11-01T00:00:00+00:00",
    )
    assert (got["cus_berlin"]["period_start"], got["cus_berlin"]["period_end"]) == (
        "2026-10-15T00:00:00+02:00",
        "2026-11-15T00:00:00+01:00",
    )
    assert got["cus_utc"]["lines"][0]["quantity"] == "3"
    assert got["cus_berlin"]["lines"][0]["quantity"] == "3"


def test_a_customer_zone_falls_back_to_the_config_zone(store: Store) -> None:
    text = (
        BASE.format(currency="USD").replace("timezone: UTC", "timezone: America/New_York")
        + "  - {id: cus_ny, product: bare}\n"
    )
    inv = invoices(store, config(text), Month(2026, 11))["invoices"][0]
    # a cycle across the end of DST: -04:00 at its start, -05:00 at its end (721 hours)
    assert (inv["period_start"], inv["period_end"]) == (
        "2026-11-01T00:00:00-04:00",
        "2026-12-01T00:00:00-05:00",
    )


def test_a_cycle_across_a_dst_change_counts_by_instant(store: Store, ingest: Ingest) -> None:
    # New York, November 2026: [2026-11-01T04:00Z, 2026-12-01T05:00Z)
    ingest(
        [
            event("oct", "cus_ny", "api.call", "2026-11-01T03:59:59Z"),  # Oct 31, 23:59:59
            event("n1", "cus_ny", "api.call", "2026-11-01T04:00:00Z"),  # Nov 1, 00:00 EDT
            event("n2", "cus_ny", "api.call", "2026-11-01T05:30:00Z"),  # 01:30 EDT
            event("n3", "cus_ny", "api.call", "2026-11-01T06:30:00Z"),  # 01:30 EST, again
            event("n4", "cus_ny", "api.call", "2026-12-01T04:59:59Z"),  # Nov 30, 23:59:59 EST
            event("dec", "cus_ny", "api.call", "2026-12-01T05:00:00Z"),  # Dec 1, 00:00 EST
        ]
    )
    c = cfg("{id: cus_ny, product: bare, timezone: America/New_York}")
    assert invoices(store, c, Month(2026, 11))["invoices"][0]["lines"][0]["quantity"] == "4"
    assert invoices(store, c, Month(2026, 10))["invoices"][0]["lines"][0]["quantity"] == "1"
    assert invoices(store, c, Month(2026, 12))["invoices"][0]["lines"][0]["quantity"] == "1"



def test_a_cycle_starting_at_a_midnight_that_happens_twice(store: Store, ingest: Ingest) -> None:
    # The Azores leave summer time at 01:00 on 25 Oct 2026, back to 00:00: local midnight
    # happens twice and the cycle starts at the first, 2026-10-25T00:00Z. It runs to
    # 25 Nov 00:00 at UTC-1, i.e. 2026-11-25T01:00Z.
    ingest(
        [
            event("before", "cus_az", "api.call", "2026-10-24T23:59:59Z"),
            event("a1", "cus_az", "api.call", "2026-10-25T00:30:00Z"),  # 00:30, first time
            event("a2", "cus_az", "api.call", "2026-10-25T01:30:00Z"),  # 00:30, second time
            event("a3", "cus_az", "api.call", "2026-11-25T00:59:59Z"),  # 24 Nov, 23:59:59
            event("after", "cus_az", "api.call", "2026-11-25T01:00:00Z"),
        ]
    )
    c = cfg("{id: cus_az, product: bare, timezone: Atlantic/Azores, billing_anchor: 25}")
    inv = invoices(store, c)["invoices"][0]
    assert (inv["period_start"], inv["period_end"]) == (
        "2026-10-25T00:00:00+00:00", "2026-11-25T00:00:00-01:00"
    )
    assert inv["lines"][0]["quantity"] == "3"  # a1, a2, a3: 3 × 0.005 = 0.015 -> 0.02
    assert inv["total"] == "0.02"

def test_anchor_31_bills_november_30_to_december_31(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("a", "cus_a", "api.call", "2026-11-29T23:59:59Z"),  # the October cycle
            event("b", "cus_a", "api.call", "2026-11-30T00:00:00Z"),
            event("c", "cus_a", "api.call", "2026-12-30T23:59:59Z"),
            event("d", "cus_a", "api.call", "2026-12-31T00:00:00Z"),  # the December cycle
        ]
    )
    c = cfg("{id: cus_a, product: bare, billing_anchor: 31}")
    nov = invoices(store, c, Month(2026, 11))["invoices"][0]
    assert (nov["period_start"], nov["period_end"]) == (
        "2026-11-30T00:00:00+00:00",
        "2026-12-31T00:00:00+00:00",
    )
    assert nov["lines"][0]["quantity"] == "2"
    oct_ = invoices(store, c, OCT)["invoices"][0]
    assert (oct_["period_start"], oct_["period_end"]) == (
        "2026-10-31T00:00:00+00:00",
        "2026-11-30T00:00:00+00:00",
    )
    assert oct_["lines"][0]["quantity"] == "1"


def test_a_leap_february_cycle(store: Store) -> None:
    c = cfg("{id: cus_a, product: bare, billing_anchor: 30}")
    inv = invoices(store, c, Month(2028, 2))["invoices"][0]
    assert (inv["period_start"], inv["period_end"]) == (
        "2028-02-29T00:00:00+00:00",
        "2028-03-30T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("start_date", "billed"),
    [
        ("2026-11-01", False),  # the October cycle ends on the start date: no invoice
        ("2026-12-01", False),  # ...or before it
        ("2026-10-31", True),  # the cycle ends after it: billed
        ("2026-10-01", True),
        ("2026-01-01", True),
    ],
)
def test_no_invoice_for_cycles_ending_on_or_before_the_start_date(
    store: Store, start_date: str, billed: bool
) -> None:
    c = cfg(f"{{id: cus_a, product: metered, start_date: {start_date}}}")
    assert len(invoices(store, c)["invoices"]) == (1 if billed else 0)


def test_start_date_is_local_midnight_in_the_customers_zone(store: Store) -> None:
    # Berlin anchor 1: the October cycle ends 2026-11-01T00:00+01:00; a start date of Nov 1
    # is that same instant, so no October invoice; with anchor 2 it ends Nov 2: billed
    c = cfg(
        "{id: cus_a, product: metered, timezone: Europe/Berlin, start_date: 2026-11-01}",
        "{id: cus_b, product: metered, timezone: Europe/Berlin, start_date: 2026-11-01, "
        "billing_anchor: 2}",
    )
    assert [i["customer_id"] for i in invoices(store, c)["invoices"]] == ["cus_b"]


# -- warnings ---------------------------------------------------------------------------------


def test_unknown_customers_are_warned_about_with_event_counts(store: Store, ingest: Ingest) -> None:
    ingest(
        calls(2, "cus_a")
        + calls(3, "cus_ghost")
        + calls(1, "cus_ghost", "2026-11-05T00:00:00Z")  # another month: not counted
        + calls(1, "cus_other")
    )
    doc = invoices(store, cfg("{id: cus_a, product: metered}"))
    assert [i["customer_id"] for i in doc["invoices"]] == ["cus_a"]
    unknown = [w for w in doc["warnings"] if w["kind"] == "unknown_customer"]
    assert [(w["customer_id"], w["events"]) for w in unknown] == [
        ("cus_ghost", 3),
        ("cus_other", 1),
    ]
    assert "cus_ghost" in unknown[0]["message"] and "3" in unknown[0]["message"]


def test_usage_on_a_meter_the_product_does_not_price_is_warned_about(
    store: Store, ingest: Ingest
) -> None:
    ingest(
        calls(2, "cus_a")
        + [event(f"s{i}", "cus_a", "sms.sent") for i in range(4)]
        + [event("g", "cus_a", "storage", gb=5)]
    )
    doc = invoices(store, cfg("{id: cus_a, product: metered}"))
    unpriced = [w for w in doc["warnings"] if w["kind"] == "unpriced_meter"]
    # sms and gb are not charged by `metered`; seats reads api.call events, which the calls
    # charge bills, so it is an analytics meter and not a gap
    assert [(w["customer_id"], w["meter_id"], w["events"]) for w in unpriced] == [
        ("cus_a", "gb", 1),
        ("cus_a", "sms", 4),
    ]


def test_usage_on_an_unpriced_filtered_meter_is_warned_about(store: Store, ingest: Ingest) -> None:
    # The product charges standard images only. HD images (same event name, another filter)
    # are accepted and never billed: exactly what the warning is for (issue 4).
    c = config(
        """\
version: 1
meters:
  - {id: std, event_name: image, aggregation: {type: count},
     filter: {clauses: [{key: quality, operator: equals, value: standard}]}}
  - {id: hd, event_name: image, aggregation: {type: count},
     filter: {clauses: [{key: quality, operator: equals, value: hd}]}}
products:
  - id: basic
    charges: [{meter: std, unit_price: "0.04"}]
customers:
  - {id: cus_a, product: basic}
"""
    )
    ingest(
        [
            event("s", "cus_a", "image", quality="standard"),
            event("h", "cus_a", "image", quality="hd"),
        ]
    )
    warnings = invoices(store, c)["warnings"]
    assert [(w["kind"], w.get("meter_id"), w.get("events")) for w in warnings] == [
        ("unpriced_meter", "hd", 1)
    ]


def test_events_a_charged_meter_skips_are_warned_about(store: Store, ingest: Ingest) -> None:
    ingest([event("g1", "cus_a", "storage", gb="lots"), event("g2", "cus_a", "storage")])
    doc = invoices(store, cfg("{id: cus_a, product: bare}"))
    skipped = sorted(
        (w["meter_id"], w["events"], w["message"])
        for w in doc["warnings"]
        if w["kind"] == "skipped_events"
    )
    assert [(m, n) for m, n, _ in skipped] == [("gb", 1), ("gb", 1)]
    assert any("missing property 'gb'" in msg for _, _, msg in skipped)


def test_a_clean_invoice_has_no_warnings(store: Store, ingest: Ingest) -> None:
    ingest(calls(5, "cus_a"))
    assert invoices(store, cfg("{id: cus_a, product: metered}"))["warnings"] == []


def test_the_document_is_the_same_every_time(store: Store, ingest: Ingest) -> None:
    ingest(calls(5, "cus_a") + calls(2, "cus_b") + calls(1, "cus_x"))
    c = cfg("{id: cus_a, product: metered}", "{id: cus_b, product: bare}")
    assert invoices(store, c) == invoices(store, c)
    totals = [Decimal(i["total"]) for i in invoices(store, c)["invoices"]]
    assert totals == [Decimal("49.00"), Decimal("0.01")]


def test_the_csv_shows_prices_as_configured_with_the_currency_decimals(
    store: Store, ingest: Ingest
) -> None:
    # 0.50 per 10 read "0.5 per 10" and 5.00 read "5": the CSV now agrees with the config,
    # explain and the HTML invoice.
    c = config(BASE.format(currency="USD").replace(
        '{meter: calls, unit_price: "0.02", free_units: 1000}',
        '{meter: calls, model: package, package_size: 10, package_price: "0.50"}\n'
        '      - {meter: sms, unit_price: "5.00"}\n      - {meter: gb, unit_price: 2}')
        + "  - {id: cus_a, product: metered}\n")
    ingest(calls(25))
    rows = list(csv.DictReader(io.StringIO(invoice_csv(build_invoices(store, c, OCT)))))
    # 25 calls = 3 packages x 0.50 = 1.50
    assert [(r["meter_id"], r["unit_price"], r["amount"]) for r in rows[1:]] == [
        ("calls", "0.50 per 10", "1.50"), ("sms", "5.00", "0.00"), ("gb", "2.00", "0.00")]
