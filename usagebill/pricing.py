"""Pricing: pure functions, Decimal in, Decimal out, with every step written down.

`price()` returns the exact amount and the steps that make it up (each tier or package), so
that `explain` can show the arithmetic and tests can check that the steps add up. Rounding to
the currency happens later, once per invoice line (`money.round_money`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from .config import Charge, CreditPool, Tier
from .money import CONTEXT, ZERO, round_up

# The arithmetic runs through CONTEXT's methods (80 digits: quantities have up to 38, prices
# 12 decimals), as money.py rounds: a `localcontext` per price() was a third of its cost.
_add, _sub, _mul, _div = CONTEXT.add, CONTEXT.subtract, CONTEXT.multiply, CONTEXT.divide


# Slots, not frozen: a frozen dataclass sets each field through object.__setattr__, four
# times slower, and a month of 1,000 customers makes tens of thousands of these.
@dataclass(slots=True)
class Step:
    """One piece of the arithmetic. `units` at `unit_price`, plus `flat_price`, or for
    packages `packages` of `package_size` at `package_price`."""

    units: Decimal
    amount: Decimal
    unit_price: Decimal | None = None
    flat_price: Decimal | None = None
    packages: Decimal | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    tier: int | None = None


@dataclass(slots=True)
class Priced:
    quantity: Decimal
    free_units: Decimal
    billable: Decimal
    exact: Decimal  # the amount before rounding; the steps add up to it
    steps: tuple[Step, ...] = ()
    credits: Decimal | None = None  # for charges drawing on a credit pool


def billable_units(quantity: Decimal, free_units: Decimal) -> Decimal:
    """`max(quantity - free_units, 0)`: free units reset every cycle."""
    return max(_sub(quantity, free_units), ZERO)


def price(charge: Charge, quantity: Decimal, pool: CreditPool | None = None) -> Priced:
    """The amount (or credits) one charge costs for one cycle's quantity."""
    billable = billable_units(quantity, charge.free_units)
    if charge.credit is not None:
        assert pool is not None, "a credit charge needs its pool"
        per = charge.units_per_credit or Decimal(1)
        credits = round_up(_div(billable, per), pool.precision) if billable else ZERO
        return Priced(quantity, charge.free_units, billable, ZERO, credits=credits)
    steps = _steps(charge, billable)
    exact = ZERO
    for s in steps:
        exact = _add(exact, s.amount)
    return Priced(quantity, charge.free_units, billable, exact, tuple(steps))


def _steps(charge: Charge, billable: Decimal) -> list[Step]:
    if charge.model == "per_unit":
        unit_price = charge.unit_price or ZERO
        return [Step(billable, _mul(billable, unit_price), unit_price=unit_price)]
    if charge.model == "package":
        size, each = charge.package_size or Decimal(1), charge.package_price or ZERO
        packages = _div(billable, size).to_integral_value(rounding=ROUND_CEILING)
        return [
            Step(
                billable, _mul(packages, each), packages=packages, package_size=size,
                package_price=each,
            )
        ]
    tiers = charge.tiers or []
    if charge.model == "graduated":
        return graduated(tiers, billable)
    return volume(tiers, billable)


def graduated(tiers: list[Tier], billable: Decimal) -> list[Step]:
    """Each tier prices the units that fall in it; its flat price is added when any does."""
    steps, below = [], ZERO
    for number, tier in enumerate(tiers, 1):
        top = billable if tier.up_to is None else min(billable, tier.up_to)
        units = _sub(top, below)
        if units > 0:
            steps.append(
                Step(
                    units,
                    _add(_mul(units, tier.unit_price), tier.flat_price),
                    unit_price=tier.unit_price,
                    flat_price=tier.flat_price,
                    tier=number,
                )
            )
        if tier.up_to is None or billable <= tier.up_to:
            break
        below = tier.up_to
    return steps


def volume(tiers: list[Tier], billable: Decimal) -> list[Step]:
    """All units at the price of the tier their total falls in, plus its flat price.
    Zero units cost nothing (SPEC §5: no flat price at zero usage)."""
    if billable <= 0:
        return []
    for number, tier in enumerate(tiers, 1):
        if tier.up_to is None or billable <= tier.up_to:
            return [
                Step(
                    billable,
                    _add(_mul(billable, tier.unit_price), tier.flat_price),
                    unit_price=tier.unit_price,
                    flat_price=tier.flat_price,
                    tier=number,
                )
            ]
    raise AssertionError("config validation guarantees an unbounded last tier")
