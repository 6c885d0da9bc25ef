"""Pricing (SPEC §5): every worked example, each model's edges, and money rounding.

Charges are written as YAML and parsed by the real config loader, so prices are the exact
decimals a user writes (`0.02` is 0.02, never a binary float)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from usagebill.config import Charge
from usagebill.money import fmt_money, fmt_number, minor_units, round_money
from usagebill.pricing import price

from .conftest import config

D = Decimal


def charge(yaml: str) -> Charge:
    """One charge on meter `m`, parsed through the real config loader."""
    body = "\n".join("      " + line for line in yaml.strip().splitlines())
    cfg = config(
        "version: 1\n"
        "meters:\n"
        "  - {id: m, event_name: e, aggregation: {type: count}}\n"
        "products:\n"
        "  - id: p\n"
        "    charges:\n"
        "    - meter: m\n" + body + "\n"
    )
    return cfg.products[0].charges[0]


PER_UNIT = 'unit_price: "0.02"\nfree_units: 1000'
VOLUME = """model: volume
tiers:
  - {up_to: 5, unit_price: "7"}
  - {up_to: 10, unit_price: "6.50"}
  - {up_to: null, unit_price: "6"}"""
GRADUATED = """model: graduated
tiers:
  - {up_to: 5, unit_price: "5"}
  - {up_to: null, unit_price: "4"}"""
PACKAGE = 'model: package\npackage_size: 10\npackage_price: "5.00"'
IMAGES = """model: graduated
tiers:
  - {up_to: 100, unit_price: "0.08"}
  - {up_to: null, unit_price: "0.04", flat_price: "1.00"}"""


# -- SPEC §5 worked examples ------------------------------------------------------------------


def test_per_unit_example_from_the_spec() -> None:
    # 2,500 calls − 1,000 free = 1,500 billable; 1,500 × $0.02 = $30.00
    p = price(charge(PER_UNIT), D(2500))
    assert (p.quantity, p.free_units, p.billable) == (2500, 1000, 1500)
    assert p.exact == D("30.00")
    assert round_money(p.exact, "USD") == D("30.00")


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (5, "35.00"),  # 5 falls in the first tier (up_to 5 is inclusive): 5 × $7 = $35.00
        (6, "39.00"),  # 6 falls in the second tier, so ALL 6 units cost $6.50: 6 × 6.50 = $39.00
        (10, "65.00"),  # 10 is still the second tier: 10 × 6.50 = $65.00
        (11, "66.00"),  # 11 is the unbounded tier: 11 × $6 = $66.00
        (0, "0"),  # 0 units cost 0
    ],
)
def test_volume_example_from_the_spec(units: int, expected: str) -> None:
    assert price(charge(VOLUME), D(units)).exact == D(expected)


def test_graduated_example_from_the_spec() -> None:
    # 6 units: the first 5 at $5 = $25, the 6th at $4 = $4; $25 + $4 = $29.00
    p = price(charge(GRADUATED), D(6))
    assert p.exact == D("29.00")
    assert [(s.units, s.unit_price, s.amount) for s in p.steps] == [
        (5, 5, 25),
        (1, 4, 4),
    ]


@pytest.mark.parametrize(
    ("units", "packages", "expected"),
    [
        (0, 0, "0"),  # nothing used, no package
        (1, 1, "5.00"),  # ceil(1 / 10) = 1 package × $5
        (10, 1, "5.00"),  # ceil(10 / 10) = 1 package × $5
        (11, 2, "10.00"),  # ceil(11 / 10) = 2 packages × $5: a started package is a package
        (21, 3, "15.00"),  # ceil(21 / 10) = 3 packages × $5
        (D("0.5"), 1, "5.00"),  # a fraction of a unit still starts a package
    ],
)
def test_package_rounds_up_to_whole_packages(units: int, packages: int, expected: str) -> None:
    p = price(charge(PACKAGE), D(units))
    assert p.exact == D(expected)
    assert sum((s.packages or 0) for s in p.steps) == packages


def test_package_counts_billable_units_after_free_units() -> None:
    # 25 − 5 free = 20 billable; ceil(20 / 10) = 2 packages × $5 = $10.00
    p = price(charge(PACKAGE + "\nfree_units: 5"), D(25))
    assert (p.billable, p.exact) == (20, D("10.00"))


def test_graduated_spec_config_example_with_a_flat_price_in_the_second_tier() -> None:
    # 150 images: 100 × $0.08 = $8.00 in tier 1; 50 × $0.04 = $2.00 + $1.00 flat in tier 2;
    # $8.00 + $3.00 = $11.00 (the SPEC §8 explain example)
    p = price(charge(IMAGES), D(150))
    assert p.exact == D("11.00")
    assert [(s.units, s.flat_price, s.amount) for s in p.steps] == [
        (100, 0, D("8.00")),
        (50, D("1.00"), D("3.00")),
    ]
    assert sum(s.amount for s in p.steps) == p.exact


def test_a_tiers_flat_price_is_added_only_when_a_unit_falls_in_it() -> None:
    # 100 images are all in tier 1: 100 × 0.08 = $8.00, tier 2's $1.00 flat is not charged
    assert price(charge(IMAGES), D(100)).exact == D("8.00")
    # 101: tier 2 holds 1 unit, so 8.00 + 0.04 + 1.00 = $9.04
    assert price(charge(IMAGES), D(101)).exact == D("9.04")


@pytest.mark.parametrize("model", ["graduated", "volume"])
def test_a_first_tiers_flat_price_is_not_charged_at_zero_usage(model: str) -> None:
    # Unlike Lago (SPEC §5): 0 units fall in no tier, so the $10 flat fee is not charged;
    # 1 unit is: $10 + 1 × $1 = $11
    c = charge(
        f"""model: {model}
tiers:
  - {{up_to: 10, unit_price: "1", flat_price: "10"}}
  - {{up_to: null, unit_price: "0.5"}}"""
    )
    zero = price(c, D(0))
    assert zero.exact == 0 and zero.steps == ()
    assert price(c, D(1)).exact == D("11")


def test_volume_adds_the_flat_price_of_the_tier_the_total_falls_in() -> None:
    # 12 units fall in tier 2: 12 × $0.50 = $6 + its $2 flat = $8 (tier 1's flat is not added)
    c = charge(
        """model: volume
tiers:
  - {up_to: 10, unit_price: "1", flat_price: "10"}
  - {up_to: null, unit_price: "0.5", flat_price: "2"}"""
    )
    assert price(c, D(12)).exact == D("8")


def test_free_units_cover_all_usage() -> None:
    # max(800 − 1,000, 0) = 0 billable: nothing to pay, never a negative amount
    p = price(charge(PER_UNIT), D(800))
    assert (p.billable, p.exact) == (0, 0)


def test_free_units_come_before_tiers() -> None:
    # 8 − 2 free = 6 billable; graduated $5 up to 5, $4 after: 25 + 4 = $29.00
    p = price(charge(GRADUATED + "\nfree_units: 2"), D(8))
    assert (p.billable, p.exact) == (6, D("29.00"))


def test_tier_bounds_count_fractional_billable_units() -> None:
    # 5.5 units: graduated 5 × $5 + 0.5 × $4 = $27.00; volume 5.5 > 5, so 5.5 × $6.50 = $35.75
    assert price(charge(GRADUATED), D("5.5")).exact == D("27.00")
    assert price(charge(VOLUME), D("5.5")).exact == D("35.75")


def test_prices_are_exact_decimals_before_rounding() -> None:
    # 3 × $0.000000000001 = 0.000000000003 exactly (12 decimals), rounded only on the invoice
    p = price(charge('unit_price: "0.000000000001"'), D(3))
    assert p.exact == D("3E-12")
    assert round_money(p.exact, "USD") == 0


def test_steps_always_add_up_to_the_exact_amount() -> None:
    for text in (PER_UNIT, VOLUME, GRADUATED, PACKAGE, IMAGES):
        for units in (0, 1, 5, 6, 99, 100, 101, 2500):
            p = price(charge(text), D(units))
            assert sum((s.amount for s in p.steps), D(0)) == p.exact


# -- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.015", "USD", "0.02"),  # half-up: the half cent goes up (SPEC §5)
        ("0.025", "USD", "0.03"),  # half-up, not banker's rounding (which would give 0.02)
        ("0.0149999", "USD", "0.01"),
        ("0.005", "EUR", "0.01"),
        ("30", "USD", "30.00"),  # exactly the minor-unit decimals
        ("1234.5", "JPY", "1235"),  # JPY has no minor unit
        ("0.4", "JPY", "0"),
        ("1.2345", "KWD", "1.235"),  # KWD has 3 decimals
        ("1", "KWD", "1.000"),
        ("0.00005", "CLF", "0.0001"),  # CLF has 4
    ],
)
def test_money_rounds_half_up_to_the_currencys_minor_unit(
    amount: str, currency: str, expected: str
) -> None:
    assert fmt_money(D(amount), currency) == expected
    assert round_money(D(amount), currency) == D(expected)


def test_minor_units_follow_iso_4217() -> None:
    assert [minor_units(c) for c in ("USD", "EUR", "JPY", "KRW", "KWD", "BHD")] == [
        2,
        2,
        0,
        0,
        3,
        3,
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("2500"), "2500"),
        (D("1.500000000000"), "1.5"),
        (D("1E+3"), "1000"),  # never exponent form
        (D("0.000000000001"), "0.000000000001"),
        (D("0E-12"), "0"),
        (7, "7"),
    ],
)
def test_quantities_are_written_plainly(value: Decimal | int, text: str) -> None:
    assert fmt_number(value) == text
