"""SPEC §8, sentence by sentence: runs, corrections, closed periods, explain."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from usagebill.closing import close_period, invoice_document
from usagebill.config import parse_config
from usagebill.cycles import parse_month, parse_period
from usagebill.explain import explain, explain_events, explain_text
from usagebill.invoices import build_invoices, credit_ledgers
from usagebill.money import round_money
from usagebill.store import SCHEMA_VERSION, Store, _m001_core
from usagebill.usage import usage_report

from .conftest import event, write_events

CONFIG = """\
version: 1
currency: USD
meters:
  - {id: api_calls, name: API calls, event_name: api.call, aggregation: {type: count},
     filter: {clauses: [{key: status, operator: equals, value: ok}]}}
  - {id: tokens, name: Tokens, event_name: ai.tokens, aggregation: {type: sum, key: n}}
  - id: images
    name: Images
    event_name: image.made
    aggregation: {type: count}
credits:
  - {id: ai, name: AI credits, per_cycle: 100, rollover_percent: 50, overage_unit_price: "0.01"}
products:
  - id: pro
    name: Pro
    base_price: "10.00"
    charges:
      - {meter: api_calls, unit_price: "0.10"}
      - {meter: tokens, credit: ai, units_per_credit: 1}
      - meter: images
        model: graduated
        tiers:
          - {up_to: 100, unit_price: "0.08"}
          - {up_to: null, unit_price: "0.04", flat_price: "1.00"}
customers:
  - {id: cus_a, name: Acme, product: pro, start_date: 2026-09-01}
  - {id: cus_b, name: Bolt, product: pro}
"""


def calls(prefix: str, n: int, customer: str = "cus_a", day: int = 5, **md: Any) -> list[dict]:
    return [event(f"{prefix}{i}", customer, "api.call", f"2026-10-{day:02d}T10:00:{i % 60:02d}Z",
                  status="ok", **md) for i in range(n)]


def run_cli(cli: Any, *args: str, input: str | None = None) -> Any:
    result = cli(*args, input=input)
    assert "Traceback" not in result.stderr
    return result


def setup(tmp: Path) -> None:
    (tmp / "meters.yaml").write_text(CONFIG)


def doc(cli: Any, *args: str) -> Any:
    result = run_cli(cli, *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def usage_of(cli: Any, *args: str) -> dict[tuple[str, str], str]:
    out = doc(cli, "usage", "--period", "2026-10", *args)
    return {(r["customer_id"], r["meter_id"]): r["quantity"] for r in out["rows"]}


# -- Runs ---------------------------------------------------------------------------------------


def test_each_ingest_is_a_numbered_run_with_times_files_and_counts(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "a.jsonl", [*calls("a", 3), "not json"])
    write_events(tmp_path / "b.jsonl", calls("b", 2) + calls("a", 1))
    assert run_cli(cli, "ingest", "a.jsonl").exit_code == 0
    assert run_cli(cli, "ingest", "b.jsonl").exit_code == 0
    runs = doc(cli, "runs")
    assert [(r["run"], r["files"], r["lines_read"], r["accepted"], r["duplicates"],
             r["rejected"]) for r in runs] == [(1, ["a.jsonl"], 4, 3, 0, 1),
                                               (2, ["b.jsonl"], 3, 2, 1, 0)]
    for r in runs:  # start and end, in UTC
        start, end = (dt.datetime.fromisoformat(r[k]) for k in ("started_at", "ended_at"))
        assert start.utcoffset() == dt.timedelta(0) and start <= end
    with duckdb.connect("usagebill.duckdb", read_only=True) as con:
        assert con.execute("SELECT event_id, run FROM events ORDER BY event_id").fetchall() == [
            ("a0", 1), ("a1", 1), ("a2", 1), ("b0", 2), ("b1", 2)]
        assert con.execute("SELECT line, run FROM rejects").fetchall() == [(4, 1)]


def test_as_of_a_run_counts_only_what_runs_1_to_n_stored(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "r1.jsonl", calls("x", 3))
    write_events(tmp_path / "r2.jsonl", calls("y", 2))
    run_cli(cli, "ingest", "r1.jsonl")
    run_cli(cli, "ingest", "r2.jsonl")
    assert usage_of(cli)[("cus_a", "api_calls")] == "5"
    assert usage_of(cli, "--as-of", "1")[("cus_a", "api_calls")] == "3"
    first = doc(cli, "invoice", "--period", "2026-10", "--as-of", "1")
    assert first["invoices"][0]["lines"][1]["quantity"] == "3"
    lines = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a", "--as-of", "1")
    assert lines["lines"][1]["quantity"] == "3"
    # A timestamp means the runs that ended at or before it.
    ended = doc(cli, "runs")[0]["ended_at"]
    assert usage_of(cli, "--as-of", ended)[("cus_a", "api_calls")] == "3"
    bad = run_cli(cli, "usage", "--period", "2026-10", "--as-of", "7")
    assert bad.exit_code == 2 and "no such run" in bad.stderr
    for text in ("²", "١"):  # digits to str.isdigit, not run numbers
        bad = run_cli(cli, "usage", "--period", "2026-10", "--as-of", text)
        assert bad.exit_code == 2 and "give a run number or an ISO timestamp" in bad.stderr


# -- Corrections --------------------------------------------------------------------------------


def test_void_makes_the_target_count_nowhere_and_nothing_is_deleted(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 4))
    write_events(tmp_path / "fix.jsonl", [{"event_id": "fix-1", "void": "c0", "reason": "test"}])
    run_cli(cli, "ingest", "e.jsonl", "fix.jsonl")
    assert usage_of(cli)[("cus_a", "api_calls")] == "3"
    with duckdb.connect("usagebill.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (4,)


def test_amend_counts_the_target_as_if_its_fields_were_those_given(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", [
        *calls("c", 3),
        event("t1", "cus_a", "ai.tokens", "2026-10-06T00:00:00Z", n=5),
    ])
    write_events(tmp_path / "fix.jsonl", [
        {"event_id": "f1", "amend": "c0", "customer_id": "cus_b", "reason": "wrong tenant"},
        {"event_id": "f2", "amend": "c1", "metadata": {"status": "failed"}},  # filter now fails
        {"event_id": "f3", "amend": "c2", "timestamp": "2026-11-02T00:00:00Z"},  # next period
        {"event_id": "f4", "amend": "t1", "metadata": {"n": 7.5}},  # absent fields are kept
    ])
    run_cli(cli, "ingest", "e.jsonl", "fix.jsonl")
    got = usage_of(cli)
    assert got[("cus_a", "api_calls")] == "0" and got[("cus_b", "api_calls")] == "1"
    assert got[("cus_a", "tokens")] == "7.5"
    november = doc(cli, "usage", "--period", "2026-11")["rows"]
    assert {(r["customer_id"], r["meter_id"], r["quantity"]) for r in november} >= {
        ("cus_a", "api_calls", "1")}


def test_a_correction_may_arrive_before_its_target(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "fix.jsonl", [{"event_id": "fix-1", "void": "c1"}])
    write_events(tmp_path / "e.jsonl", calls("c", 3))
    run_cli(cli, "ingest", "fix.jsonl")
    assert [c["status"] for c in doc(cli, "corrections")] == ["waiting"]
    run_cli(cli, "ingest", "e.jsonl")
    assert [c["status"] for c in doc(cli, "corrections")] == ["applied"]
    assert usage_of(cli)[("cus_a", "api_calls")] == "2"


def test_an_event_is_corrected_at_most_once(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 2))
    write_events(tmp_path / "fix.jsonl", [
        {"event_id": "fix-1", "void": "c0"},
        {"event_id": "fix-1", "void": "c0"},  # the same correction again: a duplicate
        {"event_id": "fix-2", "amend": "c0", "customer_id": "cus_b"},  # a second one: rejected
        {"event_id": "fix-3", "void": "fix-1"},  # a correction of a correction: rejected
    ])
    result = run_cli(cli, "ingest", "e.jsonl", "fix.jsonl")
    assert "2 rejected" in result.stderr and "1 duplicate," in result.stderr
    reasons = [(r["line"], r["reason"]) for r in doc(cli, "rejects")]
    assert reasons == [
        (3, "c0 is already corrected by fix-1 (fix.jsonl:1)"),
        (4, "cannot correct a correction: fix-1 is itself a correction (fix.jsonl:1)"),
    ]
    # ... also across runs.
    write_events(tmp_path / "later.jsonl", [{"event_id": "fix-9", "void": "c0"}])
    run_cli(cli, "ingest", "later.jsonl")
    assert doc(cli, "rejects")[-1]["reason"] == "c0 is already corrected by fix-1 (fix.jsonl:1)"


def test_corrections_lists_every_correction_with_its_status(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 1))
    write_events(tmp_path / "fix.jsonl", [
        {"event_id": "fix-1", "void": "c0", "reason": "test traffic"},
        {"event_id": "fix-2", "amend": "zzz", "metadata": {"status": "ok"}, "reason": "later"},
    ])
    run_cli(cli, "ingest", "e.jsonl", "fix.jsonl")
    assert doc(cli, "corrections") == [
        {"event_id": "fix-1", "action": "void", "target": "c0", "reason": "test traffic",
         "file": "fix.jsonl", "line": 1, "run": 1, "status": "applied"},
        {"event_id": "fix-2", "action": "amend", "target": "zzz", "reason": "later",
         "file": "fix.jsonl", "line": 2, "run": 1, "status": "waiting"},
    ]


# -- Closing ------------------------------------------------------------------------------------


def test_close_issues_the_invoices_and_later_events_become_adjustments(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 10))
    run_cli(cli, "ingest", "e.jsonl")
    draft = doc(cli, "invoice", "--period", "2026-10")
    assert draft["status"] == "draft" and draft["adjustments"] == []
    closed = doc(cli, "close", "--period", "2026-10")
    assert closed["status"] == "closed"
    assert closed["invoices"] == draft["invoices"]  # computed as `invoice` would
    # A late event for the closed period: stored, said so, and shown as an adjustment.
    write_events(tmp_path / "late.jsonl", calls("late", 3, day=30))
    late = run_cli(cli, "ingest", "late.jsonl")
    assert "stored 3 events for closed period 2026-10" in late.stderr
    now = doc(cli, "invoice", "--period", "2026-10")
    assert now["status"] == "closed"
    assert now["invoices"] == closed["invoices"]  # issued invoices never change
    assert now["adjustments"] == [{
        "customer_id": "cus_a",
        "lines": [{"kind": "usage", "meter_id": "api_calls", "issued": "1.00",
                   "current": "1.30", "difference": "0.30"}],
        "total_difference": "0.30",
    }]
    # As of the run the closing reflected, the period was closed with nothing to adjust.
    assert doc(cli, "invoice", "--period", "2026-10", "--as-of", "1")["adjustments"] == []
    again = run_cli(cli, "close", "--period", "2026-10")
    assert again.exit_code == 2
    assert "already closed" in again.stderr and "usagebill invoice --period 2026-10" in again.stderr
    # Table and CSV show the adjustment apart from the issued lines.
    table = run_cli(cli, "invoice", "--period", "2026-10").stdout
    assert "Adjustment since closing, cus_a: 0.30" in table
    rows = list(csv.DictReader(io.StringIO(run_cli(cli, "invoice", "--period", "2026-10",
                                                   "--format", "csv").stdout)))
    adjustment = [r for r in rows if r["status"] == "adjustment"]
    assert [(r["customer_id"], r["meter_id"], r["amount"]) for r in adjustment] == [
        ("cus_a", "api_calls", "0.30")]
    # named and dated like the issued invoice it adjusts, for a spreadsheet's filters
    assert [(r["customer_name"], r["period_start"], r["period_end"]) for r in adjustment] == [
        ("Acme", "2026-10-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00")]


def test_the_closed_period_warning_counts_each_correction_once(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 10))
    run_cli(cli, "ingest", "e.jsonl")
    run_cli(cli, "close", "--period", "2026-10")
    # A void touches one event of the period; so does an amend that keeps it there.
    write_events(tmp_path / "fix.jsonl", [{"event_id": "fix-1", "void": "c0"},
                                          {"event_id": "fix-2", "amend": "c1", "metadata": {}}])
    fixed = run_cli(cli, "ingest", "fix.jsonl")
    assert "stored 2 events for closed period 2026-10" in fixed.stderr


def test_close_checks_its_output_before_closing(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 10))
    run_cli(cli, "ingest", "e.jsonl")
    (tmp_path / "out").mkdir()
    failed = run_cli(cli, "close", "--period", "2026-10", "--output", "out")
    assert failed.exit_code == 2 and "--output out: cannot write" in failed.stderr
    assert doc(cli, "invoice", "--period", "2026-10")["status"] == "draft"  # not closed


def test_a_price_change_after_closing_does_not_move_issued_invoices(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("c", 10))
    run_cli(cli, "ingest", "e.jsonl")
    closed = doc(cli, "close", "--period", "2026-10")
    (tmp_path / "meters.yaml").write_text(CONFIG.replace('"0.10"', '"0.50"').replace(
        "name: Acme", "name: Acme Renamed"))
    now = doc(cli, "invoice", "--period", "2026-10")
    assert now["invoices"] == closed["invoices"] and now["adjustments"] == []


def test_a_meter_edited_or_removed_after_closing_makes_no_adjustment(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    failed = [event(f"f{i}", "cus_a", "api.call", "2026-10-06T10:00:00Z", status="failed")
              for i in range(4)]
    write_events(tmp_path / "e.jsonl", calls("c", 10) + failed)
    run_cli(cli, "ingest", "e.jsonl")
    closed = doc(cli, "close", "--period", "2026-10")
    # The filter dropped: 14 calls would count now, but nothing arrived since the close.
    (tmp_path / "meters.yaml").write_text(CONFIG.replace(
        ",\n     filter: {clauses: [{key: status, operator: equals, value: ok}]}}", "}"))
    now = doc(cli, "invoice", "--period", "2026-10")
    assert now["invoices"] == closed["invoices"] and now["adjustments"] == []
    # A late event is measured with the meter as it was billed: only an `ok` call counts.
    late_failed = event("late-f", "cus_a", "api.call", "2026-10-30T10:00:00Z", status="failed")
    write_events(tmp_path / "late.jsonl", [*calls("late", 1, day=30), late_failed])
    run_cli(cli, "ingest", "late.jsonl")
    assert doc(cli, "invoice", "--period", "2026-10")["adjustments"][0]["lines"] == [
        {"kind": "usage", "meter_id": "api_calls", "issued": "1.00", "current": "1.10",
         "difference": "0.10"}]
    # The meter and its charge removed from the config: explain still shows the issued line.
    (tmp_path / "meters.yaml").write_text(CONFIG.replace(
        "      - {meter: api_calls, unit_price: \"0.10\"}\n", ""))
    lines = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a", "--events",
                "ev.csv")["lines"]
    assert lines[1]["meter_id"] == "api_calls" and lines[1]["filter"] == 'status equals "ok"'
    rows = list(csv.DictReader(io.StringIO((tmp_path / "ev.csv").read_text())))
    assert sum(r["meter_id"] == "api_calls" for r in rows) == 11


def test_a_closed_cycle_keeps_its_credit_figures_for_rollover(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG)
    store = Store.open(None)
    september = [event("s1", "cus_a", "ai.tokens", "2026-09-10T00:00:00Z", n=40)]
    write_events(tmp_path / "sep.jsonl", september)
    store.ingest([str(tmp_path / "sep.jsonl")])
    close_period(store, cfg, parse_month("2026-09"))
    # Issued: 40 of 100 used, 50% of the 60 unused rolls over: 30.
    # A late September event must not move October's rollover.
    write_events(tmp_path / "late.jsonl",
                 [event("s2", "cus_a", "ai.tokens", "2026-09-20T00:00:00Z", n=50)])
    store.ingest([str(tmp_path / "late.jsonl")])
    october = build_invoices(store, cfg, parse_month("2026-10"), customer="cus_a")
    credit = october.to_json()["invoices"][0]["lines"][-1]
    assert credit["kind"] == "credit" and credit["rolled_over"] == "30"
    sep = invoice_document(store, cfg, parse_month("2026-09"), customer="cus_a").to_json()
    assert sep["invoices"][0]["lines"][-1]["consumed"] == "40"  # as issued
    # The credits ledger shows the closed cycle as issued too, up to it and past it.
    for month in ("2026-09", "2026-10"):
        [(_, _, entries)] = credit_ledgers(store, cfg, parse_month(month), customer="cus_a")
        sep_entry = next(e for e in entries if str(e.cycle.month) == "2026-09")
        assert (sep_entry.consumed, sep_entry.carried) == (40, 30)
    assert [str(e.cycle.month) for e in entries] == ["2026-09", "2026-10"]
    assert entries[-1].rolled_over == 30
    store.close()


def test_closing_a_month_before_the_first_event_changes_no_later_invoice(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG)  # cus_b has no start_date: its pool starts at its first event
    store = Store.open(None)
    write_events(tmp_path / "oct.jsonl",
                 [event("t1", "cus_b", "ai.tokens", "2026-10-05T00:00:00Z", n=130)])
    store.ingest([str(tmp_path / "oct.jsonl")])
    october = parse_month("2026-10")

    def credit_line() -> dict:
        doc = build_invoices(store, cfg, october, customer="cus_b").to_json()
        return doc["invoices"][0]["lines"][-1]

    # 130 tokens = 130 credits: 100 granted, 30 overage x 0.01 = 0.30; nothing rolled in.
    before = credit_line()
    assert (before["rolled_over"], before["overage_credits"], before["amount"]) == ("0", "30",
                                                                                     "0.30")
    close_period(store, cfg, parse_month("2026-09"))  # a cycle before the history starts
    assert credit_line() == before
    [(_, _, entries)] = credit_ledgers(store, cfg, october, customer="cus_b")
    assert [(str(e.cycle.month), e.carried) for e in entries] == [("2026-09", 0), ("2026-10", 0)]
    store.close()


def test_the_credits_ledger_keeps_an_open_cycle_between_two_closed_ones(tmp_path: Path) -> None:
    cfg = parse_config(CONFIG)
    store = Store.open(None)
    write_events(tmp_path / "e.jsonl", [
        event(f"t{m}", "cus_a", "ai.tokens", f"2026-{m:02d}-05T00:00:00Z", n=10 * m - 80)
        for m in (9, 10, 11)])
    store.ingest([str(tmp_path / "e.jsonl")])
    november = parse_month("2026-11")
    [(_, _, live)] = credit_ledgers(store, cfg, november, customer="cus_a")
    close_period(store, cfg, parse_month("2026-09"))
    close_period(store, cfg, november)
    [(_, _, entries)] = credit_ledgers(store, cfg, november, customer="cus_a")
    # Sep: 10 used of 100, 45 carried; Oct: 20 drawn from the 45, 100 unused, 50 carried; Nov:
    # 30 drawn from the 50. Nothing arrived since, so the closings change no figure.
    assert [(str(e.cycle.month), e.rolled_over, e.consumed, e.carried) for e in entries] == [
        ("2026-09", 0, 10, 45), ("2026-10", 45, 20, 50), ("2026-11", 50, 30, 50)]
    assert entries == live
    store.close()


def test_a_customer_removed_from_the_config_after_closing_keeps_its_invoice(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("a", 2) + calls("b", 3, customer="cus_b"))
    run_cli(cli, "ingest", "e.jsonl")
    closed = doc(cli, "close", "--period", "2026-10")
    (tmp_path / "meters.yaml").write_text(CONFIG.replace("  - {id: cus_b, name: Bolt, product: "
                                                         "pro}\n", ""))
    now = doc(cli, "invoice", "--period", "2026-10")
    assert now["invoices"] == closed["invoices"]
    assert now["adjustments"] == [] and now["warnings"] == []
    # Late usage of the removed customer is still an adjustment of its issued invoice.
    write_events(tmp_path / "late.jsonl", calls("late", 1, customer="cus_b", day=30))
    run_cli(cli, "ingest", "late.jsonl")
    assert doc(cli, "invoice", "--period", "2026-10")["adjustments"] == [
        {"customer_id": "cus_b", "lines": [{"kind": "usage", "meter_id": "api_calls",
         "issued": "0.30", "current": "0.40", "difference": "0.10"}],
         "total_difference": "0.10"}]


def test_a_closed_period_keeps_the_currency_it_was_issued_in(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("a", 14))
    run_cli(cli, "ingest", "e.jsonl")
    closed = doc(cli, "close", "--period", "2026-10")
    (tmp_path / "meters.yaml").write_text(CONFIG.replace("currency: USD", "currency: JPY"))
    now = doc(cli, "invoice", "--period", "2026-10")
    # 10.00 base + 14 x 0.10 = 1.40: still USD with cents, not 10 + 1 = 11 yen.
    assert now["currency"] == "USD" and now["invoices"] == closed["invoices"]
    assert now["invoices"][0]["total"] == "11.40" and now["adjustments"] == []
    explained = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a")
    assert (explained["currency"], explained["total"]) == ("USD", "11.40")


def test_a_closed_period_keeps_its_issuer_and_invoice_numbers(tmp_path: Path, cli: Any) -> None:
    (tmp_path / "meters.yaml").write_text(CONFIG + "issuer: {name: Old Co, invoice_prefix: OLD}\n")
    write_events(tmp_path / "e.jsonl", calls("a", 2))
    run_cli(cli, "ingest", "e.jsonl")
    run_cli(cli, "close", "--period", "2026-10")
    (tmp_path / "meters.yaml").write_text(CONFIG + "issuer: {name: New Co, invoice_prefix: NEW}\n")
    result = run_cli(cli, "invoice", "--period", "2026-10", "--format", "html", "--output", "h")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "h").iterdir()) == [
        "OLD-2026-10-cus_a.html", "OLD-2026-10-cus_b.html", "index.html"]
    page = (tmp_path / "h" / "OLD-2026-10-cus_a.html").read_text()
    assert "Old Co" in page and "New Co" not in page
    # the next, open month is the config's
    result = run_cli(cli, "invoice", "--period", "2026-11", "--format", "html", "--output", "n")
    assert (tmp_path / "n" / "NEW-2026-11-cus_a.html").exists()


@pytest.mark.parametrize(("edit", "first"), [
    (("name: Acme, product: pro, start_date: 2026-09-01",
      "name: Acme, product: pro, start_date: 2026-09-01, timezone: America/New_York"), 9),
    # the start date, 1 Sep, falls in the cycle starting 5 Aug
    (("name: Acme, product: pro, start_date: 2026-09-01",
      "name: Acme, product: pro, start_date: 2026-09-01, billing_anchor: 5"), 8),
    (("currency: USD", "currency: USD\ntimezone: Asia/Tokyo"), 9),
    (("start_date: 2026-09-01", "start_date: 2026-10-01"), 10),  # no September cycle now
])
def test_a_customer_cycle_edited_after_closing_moves_no_issued_figure(
    tmp_path: Path, cli: Any, edit: tuple[str, str], first: int
) -> None:
    # The closed cycle's pool was rebuilt from the customer's zone, anchor and start date as
    # they are now: its usage was looked for in other cycles (an adjustment of -14.10 with
    # no new data), or its rollover from September dropped.
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", [
        event("t9", "cus_a", "ai.tokens", "2026-09-10T12:00:00Z", n=40),
        event("t10", "cus_a", "ai.tokens", "2026-10-10T12:00:00Z", n=120),
        *calls("c", 3, day=10)])
    run_cli(cli, "ingest", "e.jsonl")
    closed = doc(cli, "close", "--period", "2026-10")
    november = doc(cli, "invoice", "--period", "2026-11")["invoices"]
    (tmp_path / "meters.yaml").write_text(CONFIG.replace(*edit))
    now = doc(cli, "invoice", "--period", "2026-10")
    assert now["invoices"] == closed["invoices"] and now["adjustments"] == []
    # Sep: 40 of 100 used, 50% of 60 unused = 30 rolls over. Oct: 120 used, 30 of them
    # rolled over and 90 granted: 10 left, 50% of the 10 unused grant = 5 rolls into Nov.
    credit = now["invoices"][0]["lines"][-1]
    assert (credit["rolled_over"], credit["consumed"], credit["remaining"]) == ("30", "120", "10")
    later = doc(cli, "invoice", "--period", "2026-11")["invoices"]
    assert later[0]["lines"][-1]["rolled_over"] == november[0]["lines"][-1]["rolled_over"] == "5"
    explained = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a")
    assert explained["total"] == explained["issued_total"] == now["invoices"][0]["total"]
    ledgers = doc(cli, "credits", "--period", "2026-11", "--customer", "cus_a")
    # every billing period once, in order (an issued cycle stands for its month)
    assert [r["cycle_start"][:7] for r in ledgers] == [f"2026-{m:02d}" for m in range(first, 12)]


POOL_CONFIG = """\
version: 1
currency: USD
timezone: UTC
meters:
  - {id: tok, name: Tokens, event_name: tok, aggregation: {type: sum, key: n}}
credits:
  - {id: c50, name: C50, per_cycle: 100, rollover_percent: 50, overage_unit_price: "0.10"}
products:
  - {id: p, name: P, charges: [{meter: tok, credit: c50, units_per_credit: 10}]}
customers:
  - {id: a, name: A, product: p}
"""


def pooled(tmp_path: Path, cli: Any, events: list[tuple[str, str, int]], *closes: str) -> None:
    """POOL_CONFIG, customer a's `tok` events (id, day, n) ingested, then the months closed."""
    (tmp_path / "meters.yaml").write_text(POOL_CONFIG)
    write_events(tmp_path / "e.jsonl", [event(i, "a", "tok", f"{day}T00:00:00Z", n=n)
                                        for i, day, n in events])
    run_cli(cli, "ingest", "e.jsonl")
    for period in closes:
        run_cli(cli, "close", "--period", period)


def ledger_of(cli: Any, period: str, config: str = "meters.yaml") -> list[tuple[str, ...]]:
    rows = doc(cli, "credits", "--period", period, "-c", config)
    return [(r["cycle_start"][:7], r["rolled_over"], r["consumed"], r["carried"]) for r in rows]


def test_a_void_into_a_closed_month_moves_no_later_rollover(tmp_path: Path, cli: Any) -> None:
    # The void removed August's only event, so the pool's history seemed to start in
    # October, and the closed August's 45 credits no longer rolled into September.
    pooled(tmp_path, cli, [("a1", "2026-08-05", 100), ("o1", "2026-10-10", 300)], "2026-08")
    write_events(tmp_path / "v.jsonl", [{"event_id": "v1", "void": "a1"}])
    run_cli(cli, "ingest", "v.jsonl")
    # Aug as issued: 10 credits of 100, 50% of 90 = 45 over. Sep: 45 in, none used, 50% of
    # the 100 unused grant = 50 over. Oct: 50 in, 30 used from them, 50 over again.
    assert ledger_of(cli, "2026-11") == [
        ("2026-08", "0", "10", "45"), ("2026-09", "45", "0", "50"),
        ("2026-10", "50", "30", "50"), ("2026-11", "50", "0", "50")]


def test_closing_a_cycle_before_the_history_keeps_the_ledger_whole(
    tmp_path: Path, cli: Any
) -> None:
    pooled(tmp_path, cli, [("o1", "2026-10-10", 300)])
    before = ledger_of(cli, "2026-11")
    # History from October: 30 of 100 used, 50% of 70 = 35 over.
    assert before == [("2026-10", "0", "30", "35"), ("2026-11", "35", "0", "50")]
    run_cli(cli, "close", "--period", "2026-08")
    # August and September stand alone (nothing carried), then the same October and November.
    assert ledger_of(cli, "2026-11") == [("2026-08", "0", "0", "0"), ("2026-09", "0", "0", "0"),
                                         *before]
    explained = doc(cli, "explain", "--period", "2026-08", "--customer", "a")
    assert explained["lines"][-1]["carries_over"] == "0"


def nov_credit(cli: Any, config: str = "meters.yaml", period: str = "2026-11") -> tuple:
    inv = doc(cli, "invoice", "--period", period, "-c", config)["invoices"][0]
    return inv["lines"][-1]["rolled_over"], inv["total"]


def test_late_usage_in_closed_months_before_the_history_moves_no_later_rollover(
    tmp_path: Path, cli: Any
) -> None:
    # Sep and Oct closed with no usage (nothing carried); a late September event made the
    # history start in September and re-measured October live: November opened with 50.
    pooled(tmp_path, cli, [("n1", "2026-11-05", 1200)], "2026-09", "2026-10")
    # Nov: 1200 / 10 = 120 credits, 100 granted, 20 over x 0.10 = 2.00
    assert nov_credit(cli) == ("0", "2.00")
    write_events(tmp_path / "late.jsonl", [event("s1", "a", "tok", "2026-09-10T00:00:00Z", n=100)])
    run_cli(cli, "ingest", "late.jsonl")
    assert nov_credit(cli) == ("0", "2.00")
    assert [r[3] for r in ledger_of(cli, "2026-11")][-2:] == ["0", "0"]  # Oct carried 0


@pytest.mark.parametrize(("events", "edit", "period", "expected"), [
    # Sep closed with no usage (nothing carried): a start date of 1 Sep set since must not
    # make September's grant roll into October (1200 -> 120 credits, 20 over: 2.00).
    ([("o1", "2026-10-05", 1200)], "2026-09-01", "2026-10", ("0", "2.00")),
    # Sep closed carrying 45: a start date moved to 1 Nov must not let those 45 skip October
    # (October's unused grant carries 50 into November).
    ([("s1", "2026-09-05", 100), ("n1", "2026-11-05", 100)], "2026-11-01", "2026-11",
     ("50", "0.00")),
])
def test_a_start_date_set_after_closing_moves_no_rollover(
    tmp_path: Path, cli: Any, events: list, edit: str, period: str, expected: tuple
) -> None:
    pooled(tmp_path, cli, events, "2026-09")
    assert nov_credit(cli, period=period) == expected
    (tmp_path / "edited.yaml").write_text(POOL_CONFIG.replace(
        "{id: a, name: A, product: p}", f"{{id: a, name: A, product: p, start_date: {edit}}}"))
    assert nov_credit(cli, "edited.yaml", period) == expected


def test_a_time_zone_ahead_of_utc_keeps_the_closed_carry(tmp_path: Path, cli: Any) -> None:
    # Berlin's November starts an hour before the issued (UTC) October ends: the closed
    # October was not found, and November's rollover was recomputed (2.5 instead of 50).
    pooled(tmp_path, cli, [("s1", "2026-09-10", 100), ("n1", "2026-11-10", 200)], "2026-10")
    # (Oct: 45 in, none used, 50 over)
    (tmp_path / "berlin.yaml").write_text(POOL_CONFIG.replace("timezone: UTC",
                                                              "timezone: Europe/Berlin"))
    nov = doc(cli, "invoice", "--period", "2026-11", "-c", "berlin.yaml")["invoices"][0]
    assert nov["lines"][-1]["rolled_over"] == "50"
    assert [m for m, *_ in ledger_of(cli, "2026-12", "berlin.yaml")] == [
        "2026-09", "2026-10", "2026-11", "2026-12"]


def test_a_customer_removed_after_closing_can_still_be_asked_for(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", calls("b", 3, customer="cus_b"))
    run_cli(cli, "ingest", "e.jsonl")
    closed = doc(cli, "close", "--period", "2026-10")
    (tmp_path / "meters.yaml").write_text(CONFIG.replace("  - {id: cus_b, name: Bolt, product: "
                                                         "pro}\n", ""))
    one = doc(cli, "invoice", "--period", "2026-10", "--customer", "cus_b")
    assert one["invoices"] == [closed["invoices"][1]] and one["adjustments"] == []
    explained = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_b")
    assert explained["total"] == explained["issued_total"] == "10.30"
    assert run_cli(cli, "invoice", "--period", "2026-10", "--customer", "cus_z").exit_code == 2


def test_a_closed_invoice_is_shown_with_its_own_meters_and_pools(
    tmp_path: Path, cli: Any
) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl",
                 [event("t1", "cus_a", "ai.tokens", "2026-10-10T12:00:00Z", n=5)])
    run_cli(cli, "ingest", "e.jsonl")
    run_cli(cli, "close", "--period", "2026-10")
    # The tokens meter renamed and the pool renamed: nothing about the issued invoice moves.
    (tmp_path / "meters.yaml").write_text(
        CONFIG.replace("{id: tokens, name: Tokens", "{id: tok, name: Tokens")
        .replace("{meter: tokens, credit: ai", "{meter: tok, credit: ai2")
        .replace("{id: ai, name: AI credits", "{id: ai2, name: Other credits"))
    now = doc(cli, "invoice", "--period", "2026-10")
    assert now["warnings"] == [] and now["adjustments"] == []  # tokens were billed, as credits
    lines = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a", "--meter",
                "tokens")["lines"]
    assert [x["meter_id"] for x in lines] == ["tokens"]
    result = run_cli(cli, "invoice", "--period", "2026-10", "--format", "html", "--output", "h")
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "h" / "INV-2026-10-cus_a.html").read_text()
    assert "Drawn from AI credits" in page


# -- Explain ------------------------------------------------------------------------------------


def test_explain_numbers_volume_tiers_and_shows_the_base_price_before_rounding(
    tmp_path: Path
) -> None:
    cfg = parse_config("""
version: 1
meters: [{id: seats, event_name: seats, aggregation: {type: max, key: n}}]
products:
  - id: p
    name: Plan
    base_price: "9.995"
    charges:
      - {meter: seats, model: volume, tiers: [{up_to: 5, unit_price: "7"},
         {up_to: 10, unit_price: "6.50"}, {up_to: null, unit_price: "6"}]}
customers: [{id: c1, product: p}]
""")
    store = Store.open(None)
    write_events(tmp_path / "e.jsonl", [event("s1", "c1", "seats", "2026-10-05T00:00:00Z", n=12)])
    store.ingest([str(tmp_path / "e.jsonl")])
    doc = explain(store, cfg, parse_month("2026-10"), "c1")
    base, seats = doc["lines"]
    # 9.995 rounds half-up to 10.00; 12 seats fall in the third tier: 12 × 6 = 72
    assert (base["exact_amount"], base["amount"]) == ("9.995", "10.00")
    assert seats["steps"] == [{"tier": 3, "units": "12", "unit_price": "6", "flat_price": "0",
                               "amount": "72"}]
    assert "  tier 3: 12 × 6 = 72" in explain_text(doc)
    store.close()


def test_the_events_export_shows_one_text_per_distinct_value(tmp_path: Path) -> None:
    cfg = parse_config("""
version: 1
meters: [{id: users, event_name: login, aggregation: {type: unique_count, key: user}}]
products: [{id: p, charges: [{meter: users, unit_price: "1"}]}]
customers: [{id: c1, product: p}]
""")
    store = Store.open(None)
    logins = [event(f"u{i}", "c1", "login", "2026-10-05T00:00:00Z", user=u)
              for i, u in enumerate([5, 5.0, 50e-1, "5", "x"])]
    write_events(tmp_path / "e.jsonl", logins)
    store.ingest([str(tmp_path / "e.jsonl")])
    rows = explain_events(store, cfg, parse_month("2026-10"), "c1")
    quantity = explain(store, cfg, parse_month("2026-10"), "c1")["lines"][0]["quantity"]
    # 5, 5.0 and 5.0 are one number; "5" and "x" are text: 3 distinct values, as counted
    assert [r[6] for r in rows] == ["5", "5", "5", '"5"', '"x"']
    assert quantity == "3" == str(len({r[6] for r in rows}))
    store.close()


def test_explain_shows_the_arithmetic_of_each_line(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    images = [event(f"i{k}", "cus_a", "image.made", f"2026-10-07T00:{k // 60:02d}:{k % 60:02d}Z")
              for k in range(150)]
    tokens = [event("t1", "cus_a", "ai.tokens", "2026-10-08T00:00:00Z", n=120.5),
              event("t2", "cus_a", "ai.tokens", "2026-10-08T00:00:01Z")]  # no n: skipped
    write_events(tmp_path / "e.jsonl", images + tokens + calls("c", 3))
    run_cli(cli, "ingest", "e.jsonl")
    out = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a", "--meter", "images")
    # Graduated: 100 × 0.08 = 8.00, then 50 × 0.04 + 1.00 flat = 3.00; 8.00 + 3.00 = 11.00.
    assert out["lines"] == [{
        "kind": "usage", "meter_id": "images", "description": "Images",
        "aggregation": "count over image.made events", "filter": "none", "model": "graduated",
        "quantity": "150", "events": 150, "skipped": [], "free_units": "0",
        "billable_units": "150", "exact_amount": "11.00", "amount": "11.00",
        "steps": [{"tier": 1, "units": "100", "unit_price": "0.08", "flat_price": "0",
                   "amount": "8.00"},
                  {"tier": 2, "units": "50", "unit_price": "0.04", "flat_price": "1.00",
                   "amount": "3.00"}],
    }]
    full = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_a")
    tok = next(x for x in full["lines"] if x.get("meter_id") == "tokens")
    assert tok["skipped"] == [{"reason": "missing property 'n'", "events": 1}]
    assert tok["credits"] == "120.5" and tok["amount"] == "0.00"
    pool = next(x for x in full["lines"] if x["kind"] == "credit")
    # cus_a started 2026-09-01: September's 100 went unused, 50% rolled over. October opens
    # with 50 + 100 = 150; 120.5 drawn = 50 from rollover + 70.5 from the grant; no overage;
    # 50% of the 29.5 unused grant = 14.75 carries over.
    assert {k: pool[k] for k in ("opening_balance", "rolled_over", "consumed", "from_rollover",
                                 "from_grant", "overage_credits", "amount", "carries_over")} == {
        "opening_balance": "150", "rolled_over": "50", "consumed": "120.5",
        "from_rollover": "50", "from_grant": "70.5", "overage_credits": "0", "amount": "0.00",
        "carries_over": "14.75"}
    write_events(tmp_path / "b.jsonl", [event("tb", "cus_b", "ai.tokens",
                                               "2026-10-08T00:00:00Z", n=120.5)])
    run_cli(cli, "ingest", "b.jsonl")
    full_b = doc(cli, "explain", "--period", "2026-10", "--customer", "cus_b")
    pool_b = next(x for x in full_b["lines"] if x["kind"] == "credit")
    # cus_b's history starts with its first event: 100 granted, 120.5 drawn, 20.5 overage
    # × 0.01 = 0.2050 exactly (20.50 credits at the pool's precision), rounded half-up: 0.21.
    assert {k: pool_b[k] for k in ("opening_balance", "overage_credits", "exact_amount",
                                   "amount")} == {
        "opening_balance": "100", "overage_credits": "20.5", "exact_amount": "0.2050",
        "amount": "0.21"}
    text = run_cli(cli, "explain", "--period", "2026-10", "--customer", "cus_a").stdout
    assert "tier 2: 50 × 0.04 + 1.00 = 3.00" in text and "exact 11.00 → rounded 11.00" in text


def test_explain_events_lists_the_events_behind_the_lines(tmp_path: Path, cli: Any) -> None:
    setup(tmp_path)
    write_events(tmp_path / "e.jsonl", [
        event("c2", "cus_a", "api.call", "2026-10-05T10:00:00Z", status="ok"),
        event("c1", "cus_a", "api.call", "2026-10-05T10:00:00Z", status="ok"),
        event("c3", "cus_a", "api.call", "2026-10-04T10:00:00Z", status="ok"),
        event("t1", "cus_a", "ai.tokens", "2026-10-03T00:00:00Z", n=3),
        event("c4", "cus_a", "api.call", "2026-10-06T10:00:00Z", status="ok"),
    ])
    write_events(tmp_path / "fix.jsonl", [
        {"event_id": "f1", "void": "c4"},
        {"event_id": "f2", "amend": "t1", "metadata": {"n": 9}},
    ])
    run_cli(cli, "ingest", "e.jsonl", "fix.jsonl")
    result = run_cli(cli, "explain", "--period", "2026-10", "--customer", "cus_a",
                     "--events", "events.csv")
    assert result.exit_code == 0
    rows = list(csv.reader((tmp_path / "events.csv").open()))
    assert rows == [
        ["meter_id", "event_id", "file", "line", "run", "timestamp", "value", "corrected_by"],
        ["api_calls", "c3", "e.jsonl", "3", "1", "2026-10-04T10:00:00+00:00", "1", ""],
        ["api_calls", "c1", "e.jsonl", "2", "1", "2026-10-05T10:00:00+00:00", "1", ""],
        ["api_calls", "c2", "e.jsonl", "1", "1", "2026-10-05T10:00:00+00:00", "1", ""],
        ["tokens", "t1", "e.jsonl", "4", "1", "2026-10-03T00:00:00+00:00", "9", "f2"],
    ]


# -- Schema -------------------------------------------------------------------------------------


def test_a_database_from_before_runs_existed_opens_and_keeps_its_events(tmp_path: Path) -> None:
    path = str(tmp_path / "old.duckdb")
    with duckdb.connect(path) as con:  # schema version 1, as the first release wrote it
        _m001_core(con)
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute("""INSERT INTO events VALUES ('e1', 'cus_a', 'api.call',
            '2026-10-05 10:00:00+00', false, '{"status": "ok"}', 'old.jsonl', 1)""")
    store = Store.open(path)
    assert store.scalar("SELECT value FROM meta WHERE key = 'schema_version'") == str(
        SCHEMA_VERSION)
    assert store.scalar("SELECT run FROM events") == 1
    assert store.runs()[0]["run"] == 1 and store.runs()[0]["files"] == ["old.jsonl"]
    write_events(tmp_path / "new.jsonl", calls("n", 1))
    assert store.ingest([str(tmp_path / "new.jsonl")]).run == 2
    cfg = parse_config(CONFIG)
    report = usage_report(store, cfg, parse_period("2026-10"), customer="cus_a")
    assert [r.quantity for r in report.rows if r.meter_id == "api_calls"] == [Decimal(2)]
    store.close()


# -- Properties ---------------------------------------------------------------------------------

CFG = parse_config(CONFIG)
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

plain_events = st.lists(
    st.tuples(st.sampled_from(["cus_a", "cus_b"]),
              st.sampled_from(["api.call", "ai.tokens", "image.made"]),
              st.integers(1, 28), st.integers(0, 500)),
    min_size=1, max_size=25,
)


def _events(spec: list[tuple[str, str, int, int]]) -> list[dict]:
    return [event(f"e{i}", c, n, f"2026-10-{d:02d}T12:00:00Z", status="ok", n=v)
            for i, (c, n, d, v) in enumerate(spec)]


def _corrections(events: list[dict], picks: list[int]) -> list[dict]:
    out = []
    for k, i in enumerate(sorted(set(picks))):
        target = events[i % len(events)]["event_id"]
        if any(c.get("void") == target or c.get("amend") == target for c in out):
            continue
        out.append({"event_id": f"fix{k}", "void": target} if k % 2 else
                   {"event_id": f"fix{k}", "amend": target, "metadata": {"n": 1, "status": "ok"}})
    return out


def _ingest_pieces(tmp: Path, pieces: list[list[dict]]) -> Store:
    store = Store.open(None)
    for i, piece in enumerate(pieces):
        path = write_events(tmp / f"piece-{random.random()}-{i}.jsonl", piece)
        store.ingest([str(path)])
    return store


@SETTINGS
@given(plain_events, st.lists(st.integers(0, 100), max_size=6), st.randoms())
def test_any_split_and_order_of_events_and_corrections_gives_the_same_usage(
    tmp_path: Path, spec: list, picks: list[int], rnd: random.Random
) -> None:
    events = _events(spec)
    lines = events + _corrections(events, picks)
    whole = _ingest_pieces(tmp_path, [lines])
    shuffled = lines[:]
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.sample(range(1, len(shuffled)), k=min(2, len(shuffled) - 1)))
    pieces = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)])]
    split = _ingest_pieces(tmp_path, pieces)
    period = parse_period("2026-10")
    assert usage_report(split, CFG, period).to_json() == usage_report(whole, CFG, period).to_json()
    whole.close()
    split.close()


@SETTINGS
@given(plain_events)
def test_explained_steps_add_up_and_round_to_the_invoice_line(tmp_path: Path, spec: list) -> None:
    store = _ingest_pieces(tmp_path, [_events(spec)])
    month = parse_month("2026-10")
    invoice = build_invoices(store, CFG, month).to_json()
    for inv in invoice["invoices"]:
        shown = {(x["kind"], x.get("meter_id") or x.get("credit_id")): x["amount"]
                 for x in inv["lines"]}
        for line in explain(store, CFG, month, inv["customer_id"])["lines"]:
            if line["kind"] == "usage":
                assert sum(Decimal(s["amount"]) for s in line["steps"]) == Decimal(
                    line["exact_amount"])
            key = (line["kind"], line.get("meter_id") or line.get("credit_id"))
            rounded = round_money(Decimal(line["exact_amount"]), "USD")
            assert f"{rounded:.2f}" == line["amount"] == shown[key]
    store.close()


@SETTINGS
@given(plain_events, plain_events)
def test_as_of_n_equals_the_report_taken_right_after_run_n(
    tmp_path: Path, first: list, second: list
) -> None:
    store = Store.open(None)
    store.ingest([str(write_events(tmp_path / f"a{random.random()}.jsonl", _events(first)))])
    period, month = parse_period("2026-10"), parse_month("2026-10")
    usage_then = usage_report(store, CFG, period).to_json()
    invoice_then = build_invoices(store, CFG, month).to_json()
    later = [dict(e, event_id="z" + e["event_id"]) for e in _events(second)]
    store.ingest([str(write_events(tmp_path / f"b{random.random()}.jsonl", later))])
    assert usage_report(store, CFG, period, as_of=1).to_json() == usage_then
    assert build_invoices(store, CFG, month, as_of=1).to_json() == invoice_then
    store.close()


@SETTINGS
@given(plain_events, plain_events)
def test_adjustments_equal_current_minus_issued_line_by_line(
    tmp_path: Path, first: list, late: list
) -> None:
    store = Store.open(None)
    store.ingest([str(write_events(tmp_path / f"a{random.random()}.jsonl", _events(first)))])
    month = parse_month("2026-10")
    issued = close_period(store, CFG, month).to_json()["invoices"]
    more = [dict(e, event_id="late" + e["event_id"]) for e in _events(late)]
    store.ingest([str(write_events(tmp_path / f"b{random.random()}.jsonl", more))])
    current = build_invoices(store, CFG, month).to_json()["invoices"]
    adjusted = invoice_document(store, CFG, month).to_json()["adjustments"]
    def amounts(invoice: dict) -> dict[tuple[str, str], Decimal]:
        return {(x["kind"], x.get("meter_id") or x.get("credit_id") or ""): Decimal(x["amount"])
                for x in invoice["lines"]}

    expected = []
    for was, now in zip(issued, current):
        old, new = amounts(was), amounts(now)
        diffs = [(k, new[k] - old[k]) for k in new if new[k] != old[k]]
        if diffs:
            expected.append((now["customer_id"], diffs))
    got = [(a["customer_id"], [((x["kind"], x.get("meter_id") or x.get("credit_id") or ""),
                                Decimal(x["difference"])) for x in a["lines"]])
           for a in adjusted]
    assert got == expected
    store.close()
