"""`usagebill replay`: raw logs billed in a throwaway in-memory database.

Replay must say exactly what `ingest` + `invoice` would (same bytes, same warnings, same exit
codes), leave no file behind, give the same bytes whatever the order of its inputs, and price
the same usage under two configs with `--compare`.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, event, write_events

CONFIG = """\
version: 1
currency: USD
timezone: UTC
meters:
  - {id: api_calls, name: API calls, event_name: api.call, aggregation: {type: count}}
  - id: data_gb
    name: Data
    event_name: data.processed
    aggregation: {type: sum, key: gb}
  - id: tokens
    name: Tokens
    event_name: ai.completion
    aggregation: {type: sum, key: tokens}
credits:
  - {id: ai_credits, name: AI credits, per_cycle: 10, overage_unit_price: "0.50"}
products:
  - id: pro
    name: Pro
    base_price: "10.00"
    charges:
      - {meter: api_calls, unit_price: "0.10", free_units: 2}
      - {meter: data_gb, unit_price: "1.00"}
      - {meter: tokens, credit: ai_credits, units_per_credit: 100}
  - id: basic
    name: Basic
    charges:
      - {meter: api_calls, unit_price: "0.05"}
customers:
  - {id: cus_a, name: Alpha, product: pro}
  - {id: cus_b, name: Beta, product: basic, billing_anchor: 15}
  - {id: cus_c, name: Gamma, product: pro, timezone: America/New_York}
"""

# The same customers, dearer API calls, and a meter that now counts only successful calls:
# the second config re-meters the same stored events.
CONFIG_NEW = (
    CONFIG.replace('unit_price: "0.10", free_units: 2', 'unit_price: "0.12", free_units: 1')
    .replace(
        "  - {id: api_calls, name: API calls, event_name: api.call, aggregation: {type: count}}",
        "  - id: api_calls\n    name: API calls\n    event_name: api.call\n"
        "    aggregation: {type: count}\n"
        "    filter: {clauses: [{key: status, operator: not_equals, value: error}]}",
    )
    .replace("product: basic, billing_anchor: 15}", "product: pro, billing_anchor: 15}")
)


def setup_logs(tmp_path: Path) -> tuple[Path, list[Path]]:
    """Three log files whose order would matter if replay did not sort them: a conflicting
    duplicate across files, a correction filed before its target, a bad line, an unknown
    customer and September as well as October usage."""
    (tmp_path / "meters.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(CONFIG_NEW, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    a = write_events(
        logs / "a.jsonl",
        [
            event("e1", "cus_a", ts="2026-10-01T10:00:00Z", status="ok"),
            event("e2", "cus_a", ts="2026-10-02T10:00:00Z", status="error"),
            event("e3", "cus_a", ts="2026-10-03T10:00:00Z", status="ok"),
            event("e4", "cus_a", "data.processed", ts="2026-10-03T11:00:00Z", gb=1.25),
            event("e5", "cus_a", "ai.completion", ts="2026-10-04T11:00:00Z", tokens=1234),
            "{not json",
            event("dup", "cus_b", ts="2026-10-16T00:00:00Z", status="ok"),
        ],
    )
    b = write_events(
        logs / "b.jsonl",
        [
            event("dup", "cus_b", ts="2026-10-17T00:00:00Z", status="error"),  # conflicting
            event("e6", "cus_b", ts="2026-10-20T00:00:00Z", status="ok"),
            event("e7", "cus_b", ts="2026-10-10T00:00:00Z", status="ok"),  # September cycle
            event("e8", "cus_c", ts="2026-10-01T03:00:00Z", status="ok"),  # Sept in New York
            event("e9", "cus_c", ts="2026-10-01T05:00:00Z", status="ok"),
            event("x1", "cus_nobody", ts="2026-10-05T00:00:00Z"),
            event("e10", "cus_a", "ai.completion", ts="2026-09-20T00:00:00Z", tokens=250),
        ],
    )
    c = write_events(
        logs / "0-corrections.jsonl",
        [
            {"event_id": "fix1", "void": "e3", "reason": "test traffic"},
            {"event_id": "fix2", "amend": "e4", "metadata": {"gb": 2.5}, "reason": "resent"},
        ],
    )
    return logs, [a, b, c]


def ok(result: Any, code: int = 0) -> Any:
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("usagebill: warning:")]


# -- replay equals ingest + invoice -----------------------------------------------------------


@pytest.mark.parametrize("format", ["json", "csv", "table"])
def test_replay_equals_ingest_plus_invoice(cli: Any, tmp_path: Path, format: str) -> None:
    logs, _ = setup_logs(tmp_path)
    replayed = ok(cli("replay", str(logs), "--period", "2026-10", "--format", format))
    ok(cli("ingest", str(logs), "--db", "billing.duckdb"))
    invoiced = ok(cli("invoice", "--period", "2026-10", "--db", "billing.duckdb", "-f", format))
    assert replayed.stdout == invoiced.stdout
    assert warnings(replayed.stderr) == warnings(invoiced.stderr)
    assert len(warnings(replayed.stderr)) == 1  # cus_nobody, reported, not billed


def test_replay_of_the_sample_data_equals_ingest_plus_invoice(cli: Any, tmp_path: Path) -> None:
    """Real logs: gzip, corrections, duplicates and rejects, 19 customers in 8 time zones."""
    args = ["-c", str(ROOT / "meters.yaml.example"), "--period", "2026-10", "-f", "json"]
    replayed = ok(cli("replay", str(ROOT / "sample_data"), *args))
    ok(cli("ingest", str(ROOT / "sample_data"), "--db", "sample.duckdb"))
    invoiced = ok(cli("invoice", "--db", "sample.duckdb", *args))
    assert replayed.stdout == invoiced.stdout
    assert len(json.loads(replayed.stdout)["invoices"]) == 18


def test_replay_reports_what_ingest_reports(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    result = ok(cli("replay", str(logs), "-p", "2026-10", "-f", "json"))
    assert result.stderr.startswith(
        "usagebill: replay: read 16 lines from 3 files: 14 accepted, 0 duplicates, "
        "2 rejected, 0 timestamped at ingest, 2 corrections among them ("
    )
    # The database goes away, so the rejected lines are shown rather than pointed to.
    assert "usagebill: 2 rejected lines are not billed:\n" in result.stderr
    assert f"  {logs / 'a.jsonl'}:6: invalid JSON\n" in result.stderr
    assert f"  {logs / 'b.jsonl'}:1: conflicting duplicate of {logs / 'a.jsonl'}:7" in (
        result.stderr
    )
    assert "usagebill rejects" not in result.stderr
    json.loads(result.stdout)  # stdout holds only the report


def test_many_rejects_are_cut_short(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "meters.yaml").write_text(CONFIG)
    write_events(tmp_path / "bad.jsonl", [f"{{bad {i}" for i in range(25)])
    result = ok(cli("replay", "bad.jsonl", "-p", "2026-10"))
    assert result.stderr.count(": invalid JSON") == 10
    assert "  … and 15 more (`usagebill ingest` the files, then `usagebill rejects`" in (
        result.stderr
    )


def test_events_without_a_timestamp_are_flagged(cli: Any, tmp_path: Path) -> None:
    """Their cycle depends on when the replay runs: a snapshot of them cannot be stable."""
    (tmp_path / "meters.yaml").write_text(CONFIG)
    write_events(tmp_path / "e.jsonl", [event("e1", "cus_a", ts=None)])
    result = ok(cli("replay", "e.jsonl", "-p", "2026-10"))
    assert "warning: 1 events have no timestamp and were stamped with the time of this replay" in (
        result.stderr
    )


def test_replay_reads_stdin(cli: Any, tmp_path: Path) -> None:
    _logs, files = setup_logs(tmp_path)
    text = "".join(f.read_text() for f in files)
    from_stdin = ok(cli("replay", "-", "-p", "2026-10", "-f", "json", input=text))
    assert json.loads(from_stdin.stdout)["invoices"]


def test_exit_codes(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    # Rejected lines without --strict: done (0); with --strict: the data said no (1).
    ok(cli("replay", str(logs), "-p", "2026-10"))
    strict = ok(cli("replay", str(logs), "-p", "2026-10", "--strict"), 1)
    assert strict.stdout == ""
    # The user must fix something (2): a missing input, a bad period, a missing --period,
    # a bad config, two modes at once, a report format with --check.
    assert ok(cli("replay", "nope.jsonl", "-p", "2026-10"), 2).stderr.startswith(
        "usagebill: nope.jsonl: no such file or directory"
    )
    assert (
        "--period 2026-13: not a month" in ok(cli("replay", str(logs), "-p", "2026-13"), 2).stderr
    )
    assert "Missing option '--period'" in ok(cli("replay", str(logs)), 2).stderr
    (tmp_path / "broken.yaml").write_text("version: 1\ncurrency: XXX\nmeters: []\n")
    ok(cli("replay", str(logs), "-p", "2026-10", "-c", "broken.yaml"), 2)
    both = ok(
        cli("replay", str(logs), "-p", "2026-10", "--check", "s.json", "--write", "s.json"), 2
    )
    assert "--check and --write: use one at a time" in both.stderr
    fmt = ok(cli("replay", str(logs), "-p", "2026-10", "--write", "s.json", "-f", "json"), 2)
    assert "--write prints no report" in fmt.stderr
    assert not (tmp_path / "s.json").exists()


def test_config_errors_come_before_any_ingest(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("version: 1\ncurrency: XXX\nmeters: []\n")
    result = ok(cli("replay", "does-not-exist.jsonl", "-p", "2026-10", "-c", "broken.yaml"), 2)
    assert "broken.yaml:2" in result.stderr
    assert "does-not-exist" not in result.stderr


# -- no file behind ---------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def test_replay_leaves_no_file_behind(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs, _ = setup_logs(tmp_path)
    ok(cli("ingest", str(logs), "--db", "billing.duckdb"))
    db = tmp_path / "billing.duckdb"
    before_bytes = db.read_bytes()
    monkeypatch.setenv("USAGEBILL_DB", str(db))  # even when a database is configured
    scratch = tmp_path.parent / f"{tmp_path.name}-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    before = _tree(tmp_path)
    for args in (["--period", "2026-09", "-f", "csv"], ["--compare", "new.yaml"], ["--strict"]):
        cli("replay", str(logs), "--period", "2026-10", *args)
    assert _tree(tmp_path) == before
    assert db.read_bytes() == before_bytes
    assert not (tmp_path / "usagebill.duckdb").exists()
    assert list(scratch.iterdir()) == []  # its spill and stdin directory is gone too


# -- input order ------------------------------------------------------------------------------


def test_input_order_does_not_change_a_byte(cli: Any, tmp_path: Path) -> None:
    logs, files = setup_logs(tmp_path)
    outputs = set()
    for order in itertools.permutations(files):
        result = ok(cli("replay", *map(str, order), "-p", "2026-09..2026-10", "-f", "json"))
        outputs.add((result.stdout, tuple(warnings(result.stderr))))
    # A directory, a glob and a file named twice are the same inputs too.
    for inputs in ([str(logs)], [str(logs / "*.jsonl")], [str(logs), str(files[0])]):
        result = ok(cli("replay", *inputs, "-p", "2026-10", "-p", "2026-09", "-f", "json"))
        outputs.add((result.stdout, tuple(warnings(result.stderr))))
    assert len(outputs) == 1


@pytest.mark.parametrize("format", ["csv", "table"])
def test_input_order_does_not_change_a_byte_of_csv_or_tables(
    cli: Any, tmp_path: Path, format: str
) -> None:
    _, files = setup_logs(tmp_path)
    forward = ok(cli("replay", *map(str, files), "-p", "2026-10", "-f", format))
    backward = ok(cli("replay", *map(str, reversed(files)), "-p", "2026-10", "-f", format))
    assert forward.stdout == backward.stdout


def test_the_first_file_by_name_wins_a_conflicting_duplicate(cli: Any, tmp_path: Path) -> None:
    _logs, files = setup_logs(tmp_path)
    doc = json.loads(
        ok(cli("replay", str(files[1]), str(files[0]), "-p", "2026-10", "-f", "json")).stdout
    )
    cus_b = next(i for i in doc["invoices"] if i["customer_id"] == "cus_b")
    # a.jsonl's "dup" (Oct 16, ok) stands over b.jsonl's (Oct 17, error): 2 calls from Oct 15.
    assert cus_b["lines"][0]["quantity"] == "2"


# -- several periods --------------------------------------------------------------------------


def test_several_periods(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    ranged = ok(cli("replay", str(logs), "-p", "2026-09..2026-10", "-f", "json"))
    listed = ok(cli("replay", str(logs), "-p", "2026-10", "-p", "2026-09", "-f", "json"))
    assert ranged.stdout == listed.stdout
    doc = json.loads(ranged.stdout)
    assert list(doc) == ["periods"]
    assert [p["period"] for p in doc["periods"]] == ["2026-09", "2026-10"]
    for p in doc["periods"]:  # each entry is exactly the single-period document
        single = ok(cli("replay", str(logs), "-p", p["period"], "-f", "json"))
        assert json.loads(single.stdout) == p
    # Warnings name their period when there are several.
    assert "usagebill: warning: 2026-10: 1 event from customer 'cus_nobody'" in ranged.stderr


def test_several_periods_as_csv_and_table(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    both = ok(cli("replay", str(logs), "-p", "2026-09..2026-10", "-f", "csv")).stdout
    sept = ok(cli("replay", str(logs), "-p", "2026-09", "-f", "csv")).stdout
    octo = ok(cli("replay", str(logs), "-p", "2026-10", "-f", "csv")).stdout
    assert both == sept + octo.split("\n", 1)[1]  # one header
    table = ok(cli("replay", str(logs), "-p", "2026-09..2026-10")).stdout
    assert "invoices for 2026-09 (draft)" in table
    assert "invoices for 2026-10 (draft)" in table


# -- price-change preview ---------------------------------------------------------------------


def _totals(stdout: str) -> dict[str, Decimal]:
    return {i["customer_id"]: Decimal(i["total"]) for i in json.loads(stdout)["invoices"]}


def test_compare_matches_the_difference_of_two_replays(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    old = _totals(ok(cli("replay", str(logs), "-p", "2026-10", "-f", "json")).stdout)
    new = _totals(
        ok(cli("replay", str(logs), "-p", "2026-10", "-f", "json", "-c", "new.yaml")).stdout
    )
    result = ok(cli("replay", str(logs), "-p", "2026-10", "--compare", "new.yaml", "-f", "json"))
    doc = json.loads(result.stdout)
    assert doc["period"] == "2026-10"
    assert doc["currency"] == "USD"
    assert [c["customer_id"] for c in doc["customers"]] == sorted(old)
    for c in doc["customers"]:
        cid = c["customer_id"]
        assert Decimal(c["old_total"]) == old[cid]
        assert Decimal(c["new_total"]) == new[cid]
        assert Decimal(c["difference"]) == new[cid] - old[cid]
    assert Decimal(doc["old_total"]) == sum(old.values())
    assert Decimal(doc["new_total"]) == sum(new.values())
    assert Decimal(doc["difference"]) == sum(new.values()) - sum(old.values())
    assert Decimal(doc["difference"]) != 0


def test_compare_as_csv_and_table(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    args = ["replay", str(logs), "-p", "2026-10", "--compare", "new.yaml"]
    doc = json.loads(ok(cli(*args, "-f", "json")).stdout)
    rows = ok(cli(*args, "-f", "csv")).stdout.splitlines()
    assert (
        rows[0] == "period,kind,customer_id,customer_name,old_total,new_total,difference,currency"
    )
    assert len(rows) == 1 + len(doc["customers"]) + 1
    assert rows[-1] == (
        f"2026-10,total,,,{doc['old_total']},{doc['new_total']},{doc['difference']},USD"
    )
    table = ok(cli(*args)).stdout
    assert "2026-10: meters.yaml → new.yaml (USD)" in table
    assert "Total" in table and f"{Decimal(doc['new_total']):,.2f}" in table


def test_compare_over_several_periods(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    both = json.loads(
        ok(
            cli(
                "replay", str(logs), "-p", "2026-09..2026-10", "--compare", "new.yaml", "-f", "json"
            )
        ).stdout
    )
    assert [p["period"] for p in both["periods"]] == ["2026-09", "2026-10"]
    octo = json.loads(
        ok(cli("replay", str(logs), "-p", "2026-10", "--compare", "new.yaml", "-f", "json")).stdout
    )
    assert both["periods"][1] == octo


def test_compare_with_customers_on_one_side_only(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    fewer = CONFIG.replace(
        "  - {id: cus_c, name: Gamma, product: pro, timezone: America/New_York}\n", ""
    )
    (tmp_path / "fewer.yaml").write_text(fewer)
    doc = json.loads(
        ok(
            cli("replay", str(logs), "-p", "2026-10", "--compare", "fewer.yaml", "-f", "json")
        ).stdout
    )
    gamma = next(c for c in doc["customers"] if c["customer_id"] == "cus_c")
    assert gamma["new_total"] is None
    assert Decimal(gamma["difference"]) == -Decimal(gamma["old_total"])


def test_compare_refuses_two_currencies(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    (tmp_path / "eur.yaml").write_text(CONFIG.replace("currency: USD", "currency: EUR"))
    result = ok(cli("replay", str(logs), "-p", "2026-10", "--compare", "eur.yaml"), 2)
    assert "different currencies (USD and EUR)" in result.stderr


def test_every_command_has_help(cli: Any) -> None:
    for args in (["replay"], ["snapshot"], ["snapshot", "write"], ["snapshot", "check"]):
        result = ok(cli(*args, "--help"))
        assert "Usage:" in result.stdout


def test_paths_given_on_disk_are_untouched(cli: Any, tmp_path: Path) -> None:
    logs, files = setup_logs(tmp_path)
    stat = {f: (f.read_bytes(), os.stat(f).st_mtime_ns) for f in files}
    ok(cli("replay", str(logs), "-p", "2026-10"))
    assert stat == {f: (f.read_bytes(), os.stat(f).st_mtime_ns) for f in files}
