"""Periods and billing cycles: half-open `[start, end)` between local midnights.

A customer's monthly cycle starts at its billing anchor day (clamped to the month's last day)
at local midnight in its time zone. Daylight-saving changes are handled by `zoneinfo`: a cycle
that spans one is simply an hour shorter or longer.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from .errors import OptionError

UTC = dt.timezone.utc


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    def window(self, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        """The calendar month in `tz` (usage reports)."""
        return local_midnight(self.first_day(), tz), local_midnight(self.next().first_day(), tz)


@dataclass(frozen=True)
class DateRange:
    """An explicit half-open range of local dates: `2026-10-01..2026-10-15` ends before the 15th."""

    start: dt.date
    end: dt.date

    def __str__(self) -> str:
        return f"{self.start}..{self.end}"

    def window(self, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
        return local_midnight(self.start, tz), local_midnight(self.end, tz)


Period = Month | DateRange

_MONTH = re.compile(r"(\d{4})-(\d{2})")
# Periods stay a year inside what dates can hold: cycles reach a month beyond their own, and
# reports look back a period.
FIRST_YEAR, LAST_YEAR = 2, 9998
MAX_MONTHS = 120  # a range of months is billed month by month: ten years at once at most


def parse_month(text: str) -> Month:
    m = _MONTH.fullmatch(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise OptionError(
            f"--period {text}: not a month", hint="Write it as YYYY-MM, e.g. --period 2026-10."
        )
    _check_year(text, int(m.group(1)))
    return Month(int(m.group(1)), int(m.group(2)))


def _check_year(text: str, year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise OptionError(f"--period {text}: years {FIRST_YEAR:04d} to {LAST_YEAR} only")


def parse_period(text: str) -> Period:
    """`2026-10` (a month) or `2026-10-01..2026-10-15` (a half-open date range)."""
    if ".." not in text:
        return parse_month(text)
    first, _, last = text.partition("..")
    try:
        start, end = dt.date.fromisoformat(first.strip()), dt.date.fromisoformat(last.strip())
    except ValueError:
        raise OptionError(
            f"--period {text}: not a date range",
            hint="Write it as YYYY-MM-DD..YYYY-MM-DD (the end date is not included).",
        ) from None
    if end < start:
        raise OptionError(f"--period {text}: the range ends before it starts")
    if end == start:
        raise OptionError(
            f"--period {text}: the range is empty (its end date is not included)",
            hint=f"One day is {start}..{start + dt.timedelta(days=1)}.",
        )
    _check_year(text, start.year)
    _check_year(text, end.year)
    return DateRange(start, end)


def parse_months(texts: list[str]) -> list[Month]:
    """For invoices over several periods: months, or month ranges `2026-07..2026-09` (both
    ends included: a range of months lists them from first to last)."""
    months: set[Month] = set()
    for text in texts:
        if ".." in text:
            first, _, last = text.partition("..")
            a, b = parse_month(first), parse_month(last)
            if b < a:
                raise OptionError(f"--period {text}: the range ends before it starts")
            if (b.year - a.year) * 12 + b.month - a.month >= MAX_MONTHS:
                raise OptionError(
                    f"--period {text}: at most {MAX_MONTHS} months at once",
                    hint="Bill a long history in several runs.",
                )
            while a <= b:
                months.add(a)
                a = a.next()
        else:
            months.add(parse_month(text))
    if not months:
        raise OptionError("--period is required", hint="e.g. --period 2026-10")
    return sorted(months)


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The first instant of `day` in `tz`, with the offset in force then. Where midnight does
    not exist (a DST jump at 00:00) that is the first instant after the gap."""
    naive = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    return naive.astimezone(UTC).astimezone(tz)


def anchor_day(year: int, month: int, anchor: int) -> dt.date:
    """The billing anchor in a month, clamped to its last day (31 -> Nov 30)."""
    return dt.date(year, month, min(anchor, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Cycle:
    """One billing cycle; `month` is the month it starts in."""

    month: Month
    start: dt.datetime
    end: dt.datetime


# Customers share anchors and zones: a month of 1,000 customers asks for a handful of distinct
# cycles, and working each out again took half the time of planning the invoices.
@lru_cache(maxsize=4096)
def cycle_for(month: Month, anchor: int, tz: ZoneInfo) -> Cycle:
    """The cycle that starts in `month` (a Cycle is immutable, so one object serves all)."""
    nxt = month.next()
    return Cycle(
        month,
        local_midnight(anchor_day(month.year, month.month, anchor), tz),
        local_midnight(anchor_day(nxt.year, nxt.month, anchor), tz),
    )


def cycle_containing(instant: dt.datetime, anchor: int, tz: ZoneInfo) -> Cycle:
    local = instant.astimezone(tz)
    month = Month(local.year, local.month)
    cycle = cycle_for(month, anchor, tz)
    return cycle if cycle.start <= instant else cycle_for(month.previous(), anchor, tz)


def cycles_from(first: Month, last: Month, anchor: int, tz: ZoneInfo) -> list[Cycle]:
    """Every cycle from the one starting in `first` to the one starting in `last`."""
    out = []
    while first <= last:
        out.append(cycle_for(first, anchor, tz))
        first = first.next()
    return out


def iso(instant: dt.datetime) -> str:
    """ISO 8601 with the UTC offset in force at that instant: 2026-10-01T00:00:00-04:00."""
    return instant.isoformat()
