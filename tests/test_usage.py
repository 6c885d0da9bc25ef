"""Usage reports (SPEC §4, §6): half-open periods at local midnight, DST, days, filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from usagebill.config import Config, parse_config
from usagebill.cycles import parse_period
from usagebill.errors import OptionError
from usagebill.store import Store
from usagebill.usage import usage_report

from .conftest import config, event, write_events

Ingest = Callable[..., Any]


def cfg_in(zone: str, customers: str = "") -> Config:
    return config(
        f"""\
version: 1
timezone: {zone}
meters:
  - {{id: calls, event_name: api.call, aggregation: {{type: count}}, unit: calls}}
  - {{id: gb, event_name: storage, aggregation: {{type: max, key: gb}}, unit: GB}}
products:
  - id: p
    charges: [{{meter: calls, unit_price: "0.01"}}]
{customers}"""
    )


def doc(store: Store, cfg: Config, period: str, **kw: Any) -> dict[str, Any]:
    return usage_report(store, cfg, parse_period(period), **kw).to_json()


def calls(store: Store, cfg: Config, period: str, **kw: Any) -> dict[str, str]:
    return {
        r["customer_id"]: r["quantity"]
        for r in doc(store, cfg, period, **kw)["rows"]
        if r["meter_id"] == "calls"
    }


# -- periods ----------------------------------------------------------------------------------


def test_a_month_is_half_open_at_utc_midnight(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("before", ts="2026-09-30T23:59:59.999Z"),
            event("first", ts="2026-10-01T00:00:00Z"),  # start <= ts: in
            event("last", ts="2026-10-31T23:59:59.999999Z"),
            event("end", ts="2026-11-01T00:00:00Z"),  # ts < end fails: November's
        ]
    )
    cfg = cfg_in("UTC")
    assert calls(store, cfg, "2026-10") == {"cus_a": "2"}
    assert calls(store, cfg, "2026-11") == {"cus_a": "1"}
    assert calls(store, cfg, "2026-09") == {"cus_a": "1"}


def test_timestamps_with_offsets_and_without_are_instants(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            # 2026-10-01T01:30+02:00 is 2026-09-30T23:30Z: September in UTC
            event("offset", ts="2026-10-01T01:30:00+02:00"),
            # no offset means UTC
            event("naive", ts="2026-10-01T00:00:00"),
        ]
    )
    cfg = cfg_in("UTC")
    assert calls(store, cfg, "2026-10") == {"cus_a": "1"}
    assert calls(store, cfg, "2026-09") == {"cus_a": "1"}


def test_new_york_october_ends_at_local_midnight_before_dst_ends(
    store: Store, ingest: Ingest
) -> None:
    # New York October 2026: 2026-10-01T00:00-04:00 → 2026-11-01T00:00-04:00 (SPEC §4);
    # i.e. [2026-10-01T04:00Z, 2026-11-01T04:00Z)
    ingest(
        [
            event("sep_local", ts="2026-10-01T03:59:59Z"),  # Sep 30, 23:59:59 EDT
            event("oct_first", ts="2026-10-01T04:00:00Z"),  # Oct 1, 00:00 EDT
            event("oct_last", ts="2026-11-01T03:59:59Z"),  # Oct 31, 23:59:59 EDT
            event("nov_first", ts="2026-11-01T04:00:00Z"),  # Nov 1, 00:00 EDT
            # Nov 1, 01:30 happens twice in New York (DST ends at 02:00): both are November
            event("nov_1_30_edt", ts="2026-11-01T05:30:00Z"),
            event("nov_1_30_est", ts="2026-11-01T06:30:00Z"),
            event("nov_last", ts="2026-12-01T04:59:59Z"),  # Nov 30, 23:59:59 EST
            event("dec_first", ts="2026-12-01T05:00:00Z"),  # Dec 1, 00:00 EST
        ]
    )
    cfg = cfg_in("America/New_York")
    oct_ = doc(store, cfg, "2026-10")
    assert (oct_["period_start"], oct_["period_end"]) == (
        "2026-10-01T00:00:00-04:00",
        "2026-11-01T00:00:00-04:00",
    )
    assert calls(store, cfg, "2026-10") == {"cus_a": "2"}
    nov = doc(store, cfg, "2026-11")
    assert (nov["period_start"], nov["period_end"]) == (
        "2026-11-01T00:00:00-04:00",
        "2026-12-01T00:00:00-05:00",
    )
    assert calls(store, cfg, "2026-11") == {"cus_a": "4"}


def test_berlin_october_spans_the_end_of_summer_time(store: Store, ingest: Ingest) -> None:
    # Berlin October 2026: 2026-10-01T00:00+02:00 → 2026-11-01T00:00+01:00 (SPEC §4);
    # i.e. [2026-09-30T22:00Z, 2026-10-31T23:00Z)
    ingest(
        [
            event("sep", ts="2026-09-30T21:59:59Z"),
            event("oct_first", ts="2026-09-30T22:00:00Z"),
            # Oct 25, 02:30 happens twice (clocks go back at 03:00 CEST): both count
            event("oct25_cest", ts="2026-10-25T00:30:00Z"),
            event("oct25_cet", ts="2026-10-25T01:30:00Z"),
            event("oct_last", ts="2026-10-31T22:59:59Z"),
            event("nov_first", ts="2026-10-31T23:00:00Z"),
        ]
    )
    cfg = cfg_in("Europe/Berlin")
    d = doc(store, cfg, "2026-10")
    assert (d["period_start"], d["period_end"]) == (
        "2026-10-01T00:00:00+02:00",
        "2026-11-01T00:00:00+01:00",
    )
    assert calls(store, cfg, "2026-10") == {"cus_a": "4"}
    # the same events in UTC: oct_first (Sep 30, 22:00Z) moves to September and nov_first
    # (Oct 31, 23:00Z) to October: still 4, but not the same 4
    assert calls(store, cfg_in("UTC"), "2026-10") == {"cus_a": "4"}
    assert calls(store, cfg_in("UTC"), "2026-09") == {"cus_a": "2"}
    assert calls(store, cfg, "2026-11") == {"cus_a": "1"}


def test_an_explicit_date_range_is_half_open(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("d1", ts="2026-10-01T00:00:00Z"),
            event("d14", ts="2026-10-14T23:59:59Z"),
            event("d15", ts="2026-10-15T00:00:00Z"),  # the end date is not included
        ]
    )
    cfg = cfg_in("UTC")
    d = doc(store, cfg, "2026-10-01..2026-10-15")
    assert (d["period_start"], d["period_end"]) == (
        "2026-10-01T00:00:00+00:00",
        "2026-10-15T00:00:00+00:00",
    )
    assert calls(store, cfg, "2026-10-01..2026-10-15") == {"cus_a": "2"}
    assert calls(store, cfg, "2026-10-15..2026-10-16") == {"cus_a": "1"}


def test_a_date_range_uses_local_midnight(store: Store, ingest: Ingest) -> None:
    # 2026-10-24T23:30Z is Oct 25, 01:30 CEST in Berlin: inside 2026-10-25..2026-10-26
    ingest([event("e", ts="2026-10-24T23:30:00Z")])
    cfg = cfg_in("Europe/Berlin")
    d = doc(store, cfg, "2026-10-25..2026-10-26")
    # the day DST ends is 25 hours long: +02:00 at its start, +01:00 at its end
    assert (d["period_start"], d["period_end"]) == (
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    )
    assert calls(store, cfg, "2026-10-25..2026-10-26") == {"cus_a": "1"}


# -- days -------------------------------------------------------------------------------------


def test_by_day_uses_local_dates(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("a", ts="2026-10-05T03:00:00Z"),  # Oct 4, 23:00 in New York
            event("b", ts="2026-10-05T04:00:00Z"),  # Oct 5, 00:00
            event("c", ts="2026-10-05T23:00:00Z"),  # Oct 5, 19:00
            event("g", name="storage", ts="2026-10-05T12:00:00Z", gb=3),
        ]
    )
    d = doc(store, cfg_in("America/New_York"), "2026-10", by_day=True)
    assert d["rows"] == [
        {
            "customer_id": "cus_a",
            "meter_id": "calls",
            "day": "2026-10-04",
            "quantity": "1",
            "events": 1,
            "unit": "calls",
        },
        {
            "customer_id": "cus_a",
            "meter_id": "calls",
            "day": "2026-10-05",
            "quantity": "2",
            "events": 2,
            "unit": "calls",
        },
        {
            "customer_id": "cus_a",
            "meter_id": "gb",
            "day": "2026-10-05",
            "quantity": "3",
            "events": 1,
            "unit": "GB",
        },
    ]
    # in UTC all three calls fall on Oct 5
    utc = doc(store, cfg_in("UTC"), "2026-10", by_day=True)
    assert [(r["meter_id"], r["day"], r["quantity"]) for r in utc["rows"]] == [
        ("calls", "2026-10-05", "3"),
        ("gb", "2026-10-05", "3"),
    ]


def test_by_day_across_a_dst_change_keeps_every_event_on_its_local_day(
    store: Store, ingest: Ingest
) -> None:
    # Berlin, Oct 25 (25 h long): 00:00 CEST = Oct 24 22:00Z … 24:00 CET = Oct 25 23:00Z
    ingest(
        [
            event("start", ts="2026-10-24T22:00:00Z"),
            event("twice1", ts="2026-10-25T00:30:00Z"),
            event("twice2", ts="2026-10-25T01:30:00Z"),
            event("end", ts="2026-10-25T22:59:59Z"),
            event("next", ts="2026-10-25T23:00:00Z"),
        ]
    )
    rows = doc(store, cfg_in("Europe/Berlin"), "2026-10", by_day=True, meter="calls")["rows"]
    assert [(r["day"], r["quantity"]) for r in rows] == [("2026-10-25", "4"), ("2026-10-26", "1")]


@pytest.mark.parametrize("zone", ["America/Vancouver", "America/Havana", "Africa/Casablanca",
                                  "Europe/Chisinau", "Asia/Kathmandu", "Pacific/Kiritimati"])
def test_a_day_of_by_day_is_the_days_own_period(store: Store, ingest: Ingest, zone: str) -> None:
    # Days were cut with DuckDB's zone data and periods with Python's: where they differ
    # (Vancouver from November 2026, for one), an event sat on one day in `--by day` and on
    # the next in `--period D..D+1`.
    ingest([event(f"e{d}-{h}", ts=f"2026-11-{d:02d}T{h:02d}:30:00Z")
            for d in range(2, 4) for h in range(24)])
    cfg = cfg_in(zone)
    rows = doc(store, cfg, "2026-10-31..2026-11-06", by_day=True, meter="calls")["rows"]
    for r in rows:
        day = dt.date.fromisoformat(r["day"])
        alone = calls(store, cfg, f"{day}..{day + dt.timedelta(1)}", meter="calls")
        assert alone == {"cus_a": r["quantity"]}, (zone, day)
    assert sum(int(r["quantity"]) for r in rows) == 48


# -- customers and meters ---------------------------------------------------------------------


def test_rows_cover_every_customer_configured_or_not(store: Store, ingest: Ingest) -> None:
    ingest([event("a1", "cus_known"), event("z1", "cus_unknown"), event("z2", "cus_unknown")])
    cfg = cfg_in(
        "UTC",
        "customers:\n  - {id: cus_known, product: p}\n  - {id: cus_idle, product: p}\n",
    )
    rows = doc(store, cfg, "2026-10")["rows"]
    assert [(r["customer_id"], r["meter_id"], r["quantity"], r["events"]) for r in rows] == [
        ("cus_idle", "calls", "0", 0),  # configured, no events: zero rows
        ("cus_idle", "gb", "0", 0),
        ("cus_known", "calls", "1", 1),
        ("cus_known", "gb", "0", 0),
        ("cus_unknown", "calls", "2", 2),  # not in the config: still reported
        ("cus_unknown", "gb", "0", 0),
    ]


def test_customer_option_on_a_configured_customer_without_events(
    store: Store, ingest: Ingest
) -> None:
    ingest([event("a1", "cus_a")])
    cfg = cfg_in("UTC", "customers:\n  - {id: cus_idle, product: p}\n")
    rows = doc(store, cfg, "2026-10", customer="cus_idle")["rows"]
    assert [(r["customer_id"], r["meter_id"], r["quantity"]) for r in rows] == [
        ("cus_idle", "calls", "0"),
        ("cus_idle", "gb", "0"),
    ]
    # a customer that is neither configured nor in the events: an empty report, not an error
    assert doc(store, cfg, "2026-10", customer="cus_nobody")["rows"] == []


def test_customer_and_meter_options_narrow_the_report(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("a1", "cus_a"),
            event("a2", "cus_a", name="storage", gb=2),
            event("b1", "cus_b"),
            event("b2", "cus_b", name="storage", gb="x"),  # skipped by gb
            event("c1", "cus_c", name="nobody"),
        ]
    )
    cfg = cfg_in("UTC")
    only_b = doc(store, cfg, "2026-10", customer="cus_b")
    assert [(r["customer_id"], r["meter_id"], r["quantity"]) for r in only_b["rows"]] == [
        ("cus_b", "calls", "1"),
        ("cus_b", "gb", "0"),
    ]
    assert only_b["skipped"] == [{"meter_id": "gb", "reason": "'gb' is not a number", "events": 1}]
    only_gb = doc(store, cfg, "2026-10", meter="gb")
    assert [(r["customer_id"], r["quantity"]) for r in only_gb["rows"]] == [
        ("cus_a", "2"),
        ("cus_b", "0"),
        ("cus_c", "0"),
    ]
    # with --meter the events no meter counts are not this meter's business
    assert only_gb["skipped"] == [{"meter_id": "gb", "reason": "'gb' is not a number", "events": 1}]
    both = doc(store, cfg, "2026-10", customer="cus_a", meter="calls")
    assert [(r["customer_id"], r["meter_id"], r["quantity"]) for r in both["rows"]] == [
        ("cus_a", "calls", "1")
    ]


def test_events_no_meter_counts_are_reported_as_skipped(store: Store, ingest: Ingest) -> None:
    ingest([event("x1", name="page.view"), event("x2", name="page.view"), event("y", name="z")])
    skipped = doc(store, cfg_in("UTC"), "2026-10")["skipped"]
    assert skipped == [
        {"meter_id": None, "reason": "no meter counts event_name 'page.view'", "events": 2},
        {"meter_id": None, "reason": "no meter counts event_name 'z'", "events": 1},
    ]


def test_an_unknown_meter_is_an_option_error_with_a_suggestion(store: Store) -> None:
    with pytest.raises(OptionError) as e:
        usage_report(store, cfg_in("UTC"), parse_period("2026-10"), meter="call")
    assert e.value.exit_code == 2
    assert "calls" in e.value.message


def test_usage_json_shape(store: Store, ingest: Ingest) -> None:
    ingest([event("a1")])
    assert doc(store, cfg_in("UTC"), "2026-10") == {
        "period_start": "2026-10-01T00:00:00+00:00",
        "period_end": "2026-11-01T00:00:00+00:00",
        "rows": [
            {
                "customer_id": "cus_a",
                "meter_id": "calls",
                "quantity": "1",
                "events": 1,
                "unit": "calls",
            },
            {"customer_id": "cus_a", "meter_id": "gb", "quantity": "0", "events": 0, "unit": "GB"},
        ],
        "skipped": [],
    }


def test_an_empty_database_gives_an_empty_report(store: Store) -> None:
    assert doc(store, cfg_in("UTC"), "2026-10")["rows"] == []


def test_many_meters_are_measured_in_chunks_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `usage.CHUNK` meters a report runs one query per chunk: same rows, same skips,
    same unmetered events as one query."""
    from usagebill import usage

    cfg = parse_config(
        "version: 1\nmeters:\n"
        "  - {id: a, event_name: api.call, aggregation: {type: count}}\n"
        "  - {id: b, event_name: api.call, aggregation: {type: sum, key: n}}\n"
        "  - {id: c, event_name: sms.sent, aggregation: {type: max, key: n}}\n"
        "  - {id: d, event_name: img.made, aggregation: {type: unique_count, key: u}}\n"
        "  - {id: e, event_name: api.call, aggregation: {type: last, key: n},\n"
        "     filter: {clauses: [{key: s, operator: equals, value: ok}]}}\n",
        "meters.yaml",
    )
    store = Store.open(None)
    write_events(tmp_path / "e.jsonl", [
        event("1", "cus_a", "api.call", n=2, s="ok"), event("2", "cus_a", "api.call"),
        event("3", "cus_b", "sms.sent", n=7), event("4", "cus_b", "img.made", u="x"),
        event("5", "cus_c", "other.thing"), event("6", "cus_a", "api.call", n="x"),
    ])
    store.ingest([str(tmp_path / "e.jsonl")])
    one = usage.usage_report(store, cfg, parse_period("2026-10")).to_json()
    monkeypatch.setattr(usage, "CHUNK", 2)
    chunked = usage.usage_report(store, cfg, parse_period("2026-10")).to_json()
    assert chunked == one
    assert {(s["meter_id"], s["events"]) for s in one["skipped"]} >= {(None, 1), ("b", 1)}
    store.close()
