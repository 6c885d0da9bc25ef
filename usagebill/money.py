"""Exact decimals: currencies, rounding and how numbers are written.

Borrowed from beancount's `number.py`: a `Decimal` is only ever made from text or an int,
there is one place that quantizes money, and the rounding mode is named where it is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal, localcontext
from functools import cache

ZERO = Decimal(0)

# Enough digits for DECIMAL(38, 12) quantities times prices with 12 decimals, and then some.
CONTEXT = Context(prec=80, rounding=ROUND_HALF_UP)

# ISO 4217 active codes by minor-unit decimals (2 unless listed under 0, 3 or 4).
_CODES = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
    2: """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD
        BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN
        ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS
        KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV
        MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG
        SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD
        USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL""",
}
CURRENCIES: dict[str, int] = {code: n for n, codes in _CODES.items() for code in codes.split()}


def minor_units(currency: str) -> int:
    """Decimals of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return CURRENCIES[currency]


# Context methods round with the context's mode and precision without switching the
# thread's context (`localcontext` per number cost more than the arithmetic); each context
# is named for its rounding mode.
_HALF_UP = CONTEXT
_CEILING = Context(prec=80, rounding=ROUND_CEILING)
_FLOOR = Context(prec=80, rounding=ROUND_FLOOR)
_ONE = Decimal(1)


@cache
def _exponent(places: int) -> Decimal:
    return _ONE.scaleb(-places)


@cache
def _minor_exponent(currency: str) -> Decimal:
    """The quantum of the currency's minor unit (USD 0.01): an invoice rounds every line."""
    return _exponent(minor_units(currency))


def total(amounts: Iterable[Decimal]) -> Decimal:
    """A sum in CONTEXT: Python's default 28 digits would round a total of large lines."""
    with localcontext(CONTEXT):
        return sum(amounts, ZERO)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit: the only place money is quantized."""
    return _HALF_UP.quantize(amount, _minor_exponent(currency))


def round_up(value: Decimal, places: int) -> Decimal:
    """Round towards +infinity to `places` decimals (credit consumption)."""
    return _CEILING.quantize(value, _exponent(places))


def round_down(value: Decimal, places: int) -> Decimal:
    """Round towards -infinity to `places` decimals (credit rollover)."""
    return _FLOOR.quantize(value, _exponent(places))


def fmt_money(amount: Decimal, currency: str) -> str:
    """Money as text with exactly the currency's minor-unit decimals."""
    return f"{round_money(amount, currency):f}"


def plain(value: Decimal | int) -> Decimal:
    """Drop trailing zeros without going to exponent form: 1.500000000000 -> 1.5, 2500 stays.
    In CONTEXT, not the default 28 digits: DECIMAL(38, 12) has 38."""
    value = Decimal(value)
    if value == value.to_integral_value():
        return CONTEXT.quantize(value, _ONE)
    return CONTEXT.normalize(value)


def fmt_number(value: Decimal | int) -> str:
    """A quantity or credit count as plain text: no exponent, no trailing zeros ("2500", "1.5")."""
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    return f"{CONTEXT.normalize(value):f}"  # normalize() rounds to the context's precision


def fmt_price(value: Decimal, currency: str) -> str:
    """A configured price as written, with at least the currency's decimals: 4 -> 4.00, 0.50
    stays 0.50, 0.001 stays 0.001 (prices are not rounded; amounts are)."""
    whole, _, frac = fmt_number(value).partition(".")
    frac = frac.ljust(minor_units(currency), "0")
    return f"{whole}.{frac}" if frac else whole


def count(n: int, noun: str) -> str:
    """`1 event`, `1,377 events`: counts in warnings read as plain words."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
