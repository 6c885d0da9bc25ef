"""Periods and billing cycles (SPEC §4): half-open, local midnight, anchors clamped, DST."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from usagebill.cycles import (
    DateRange,
    Month,
    anchor_day,
    cycle_containing,
    cycle_for,
    cycles_from,
    iso,
    local_midnight,
    parse_month,
    parse_months,
    parse_period,
)
from usagebill.errors import OptionError

UTC = dt.timezone.utc
UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def hours(a: dt.datetime, b: dt.datetime) -> float:
    """Elapsed hours between two instants (Python subtracts same-zone datetimes as wall
    clock times, which hides DST: go through UTC)."""
    return (b.astimezone(dt.timezone.utc) - a.astimezone(dt.timezone.utc)).total_seconds() / 3600


# -- anchors ----------------------------------------------------------------------------------


def test_anchor_31_from_the_spec() -> None:
    # SPEC §4: anchor 31 gives 2026-11-30 → 2026-12-31 (November has 30 days)
    c = cycle_for(Month(2026, 11), 31, UTC_ZONE)
    assert (iso(c.start), iso(c.end)) == (
        "2026-11-30T00:00:00+00:00",
        "2026-12-31T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    ("year", "month", "anchor", "day"),
    [
        (2027, 2, 31, 28),  # 28-day February
        (2028, 2, 31, 29),  # leap-year February has 29
        (2028, 2, 29, 29),
        (2027, 2, 29, 28),  # anchor 29 in a 28-day month clamps to the 28th
        (2026, 4, 31, 30),  # 30-day month
        (2026, 4, 30, 30),
        (2026, 10, 31, 31),  # 31-day month: no clamping
        (2026, 10, 15, 15),
        (2026, 2, 1, 1),
    ],
)
def test_an_anchor_past_the_months_end_falls_on_its_last_day(
    year: int, month: int, anchor: int, day: int
) -> None:
    assert anchor_day(year, month, anchor) == dt.date(year, month, day)


def test_anchor_31_cycles_through_a_year_are_contiguous_and_clamped() -> None:
    # Each cycle ends where the next starts: Jan 31 → Feb 28 → Mar 31 → Apr 30 → ...
    cycles = cycles_from(Month(2027, 1), Month(2027, 12), 31, UTC_ZONE)
    starts = [c.start.date().isoformat() for c in cycles]
    assert starts == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
        "2027-04-30",
        "2027-05-31",
        "2027-06-30",
        "2027-07-31",
        "2027-08-31",
        "2027-09-30",
        "2027-10-31",
        "2027-11-30",
        "2027-12-31",
    ]
    assert all(a.end == b.start for a, b in itertools.pairwise(cycles))
    assert cycles[-1].end.date() == dt.date(2028, 1, 31)


def test_a_leap_year_february_cycle_with_anchor_30() -> None:
    # 2028-02-29 (clamped from 30) → 2028-03-30: 30 days
    c = cycle_for(Month(2028, 2), 30, UTC_ZONE)
    assert (c.start.date(), c.end.date()) == (dt.date(2028, 2, 29), dt.date(2028, 3, 30))
    # and January's cycle ends where February's starts: 2028-01-30 → 2028-02-29
    assert cycle_for(Month(2028, 1), 30, UTC_ZONE).end == c.start


def test_the_december_cycle_ends_in_the_next_year() -> None:
    c = cycle_for(Month(2026, 12), 15, UTC_ZONE)
    assert (c.start.date(), c.end.date()) == (dt.date(2026, 12, 15), dt.date(2027, 1, 15))


# -- time zones and DST -----------------------------------------------------------------------


def test_october_in_new_york_and_berlin_from_the_spec() -> None:
    # SPEC §4: 2026-10-01T00:00:00-04:00 → 2026-11-01T00:00:00-04:00 in New York (DST ends
    # there on Nov 1 at 02:00, after midnight), and → 2026-11-01T00:00:00+01:00 in Berlin (DST
    # ended there on Oct 25).
    ny = cycle_for(Month(2026, 10), 1, NEW_YORK)
    assert (iso(ny.start), iso(ny.end)) == (
        "2026-10-01T00:00:00-04:00",
        "2026-11-01T00:00:00-04:00",
    )
    berlin = cycle_for(Month(2026, 10), 1, BERLIN)
    assert (iso(berlin.start), iso(berlin.end)) == (
        "2026-10-01T00:00:00+02:00",
        "2026-11-01T00:00:00+01:00",
    )


def test_a_cycle_across_the_end_of_dst_is_an_hour_longer() -> None:
    # Berlin, October 2026: 31 days × 24 h + 1 h (clocks went back on Oct 25) = 745 h
    berlin = cycle_for(Month(2026, 10), 1, BERLIN)
    assert hours(berlin.start, berlin.end) == 31 * 24 + 1
    # New York, November 2026: 30 × 24 + 1 = 721 h, from -04:00 to -05:00
    ny = cycle_for(Month(2026, 11), 1, NEW_YORK)
    assert (iso(ny.start), iso(ny.end)) == (
        "2026-11-01T00:00:00-04:00",
        "2026-12-01T00:00:00-05:00",
    )
    assert hours(ny.start, ny.end) == 30 * 24 + 1
    # In UTC instants: 2026-11-01T04:00Z → 2026-12-01T05:00Z
    assert ny.start.astimezone(dt.timezone.utc) == dt.datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert ny.end.astimezone(dt.timezone.utc) == dt.datetime(2026, 12, 1, 5, tzinfo=UTC)


def test_a_cycle_across_the_start_of_dst_is_an_hour_shorter() -> None:
    # New York, anchor 5: 2026-03-05T00:00-05:00 → 2026-04-05T00:00-04:00; clocks jumped
    # forward on Mar 8, so the cycle is 31 × 24 − 1 = 743 h
    c = cycle_for(Month(2026, 3), 5, NEW_YORK)
    assert (iso(c.start), iso(c.end)) == (
        "2026-03-05T00:00:00-05:00",
        "2026-04-05T00:00:00-04:00",
    )
    assert hours(c.start, c.end) == 31 * 24 - 1


def test_where_midnight_does_not_exist_the_period_starts_after_the_gap() -> None:
    # Chile moves its clocks from 00:00 to 01:00 on 2026-09-06: that day starts at 01:00 -03:00
    start = local_midnight(dt.date(2026, 9, 6), ZoneInfo("America/Santiago"))
    assert iso(start) == "2026-09-06T01:00:00-03:00"
    # ...which is the same instant as the end of the previous day (nothing falls between)
    assert start.astimezone(dt.timezone.utc) == dt.datetime(2026, 9, 6, 4, tzinfo=UTC)


def test_cycle_containing_finds_the_cycle_by_local_time() -> None:
    # 2026-10-31T23:30Z is already Nov 1, 00:30 in Berlin: it belongs to November's cycle
    instant = dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    assert cycle_containing(instant, 1, BERLIN).month == Month(2026, 11)
    assert cycle_containing(instant, 1, UTC_ZONE).month == Month(2026, 10)
    # anchor 15: Nov 10 belongs to the cycle that started Oct 15
    c = cycle_containing(dt.datetime(2026, 11, 10, tzinfo=UTC), 15, UTC_ZONE)
    assert (c.month, c.start.date(), c.end.date()) == (
        Month(2026, 10),
        dt.date(2026, 10, 15),
        dt.date(2026, 11, 15),
    )
    # the start instant itself is inside (half-open), the end instant is not
    oct15 = cycle_for(Month(2026, 10), 15, UTC_ZONE)
    assert cycle_containing(oct15.start, 15, UTC_ZONE) == oct15
    assert cycle_containing(oct15.end, 15, UTC_ZONE).month == Month(2026, 11)


# -- periods ----------------------------------------------------------------------------------


def test_a_month_period_is_the_calendar_month_in_the_zone() -> None:
    lo, hi = parse_period("2026-10").window(NEW_YORK)
    assert (iso(lo), iso(hi)) == ("2026-10-01T00:00:00-04:00", "2026-11-01T00:00:00-04:00")


def test_a_date_range_is_half_open() -> None:
    # 2026-10-01..2026-10-15 covers Oct 1 to Oct 14: it ends at local midnight of the 15th
    p = parse_period("2026-10-01..2026-10-15")
    assert p == DateRange(dt.date(2026, 10, 1), dt.date(2026, 10, 15))
    lo, hi = p.window(BERLIN)
    assert (iso(lo), iso(hi)) == ("2026-10-01T00:00:00+02:00", "2026-10-15T00:00:00+02:00")


@pytest.mark.parametrize(
    "text",
    ["2026-13", "2026-1", "26-10", "october", "", "2026-10-05", "2026-00", "0000-10"],
)
def test_a_bad_month_is_an_option_error(text: str) -> None:
    with pytest.raises(OptionError) as e:
        parse_month(text)
    assert e.value.exit_code == 2
    assert "YYYY-MM" in " ".join(e.value.lines())


@pytest.mark.parametrize("text", ["0001-01", "9999-12", "0001-12-01..0002-01-01",
                                  "9998-12-01..9999-01-01"])
def test_periods_stay_a_year_inside_what_dates_hold(text: str) -> None:
    # a cycle reaches into the next month and reports look back a period: 9999-12 would
    # need the year 10000
    with pytest.raises(OptionError) as e:
        parse_period(text)
    assert e.value.lines() == [f"--period {text}: years 0002 to 9998 only"]
    assert parse_month("0002-01") == Month(2, 1) and parse_month("9998-12") == Month(9998, 12)


def test_an_empty_date_range_says_the_end_is_not_included() -> None:
    with pytest.raises(OptionError) as e:
        parse_period("2026-10-01..2026-10-01")
    assert e.value.lines() == [
        "--period 2026-10-01..2026-10-01: the range is empty (its end date is not included)",
        "One day is 2026-10-01..2026-10-02."]


def test_a_range_of_months_is_at_most_ten_years() -> None:
    assert len(parse_months(["2026-10..2036-09"])) == 120
    with pytest.raises(OptionError) as e:
        parse_months(["2026-10..2036-10"])
    assert e.value.lines()[0] == "--period 2026-10..2036-10: at most 120 months at once"


@pytest.mark.parametrize(
    "text",
    [
        "2026-10-15..2026-10-01",
        "2026-10-01..2026-10-01",
        "2026-10-01..soon",
        "2026-10-32..2026-11-01",
    ],
)
def test_a_bad_date_range_is_an_option_error(text: str) -> None:
    with pytest.raises(OptionError):
        parse_period(text)


def test_month_ranges_list_every_month_once_in_order() -> None:
    assert parse_months(["2026-11..2027-01", "2026-12", "2026-09"]) == [
        Month(2026, 9),
        Month(2026, 11),
        Month(2026, 12),
        Month(2027, 1),
    ]
    with pytest.raises(OptionError):
        parse_months(["2026-12..2026-11"])


def test_months_step_across_years() -> None:
    assert Month(2026, 12).next() == Month(2027, 1)
    assert Month(2027, 1).previous() == Month(2026, 12)
    assert str(Month(2026, 3)) == "2026-03"
