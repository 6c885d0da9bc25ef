"""`usage`, `invoice` and `credits` end to end through the CLI on real files: exact stdout,
warnings on stderr, exit codes (SPEC §6, §7)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from .conftest import DATA, event, write_events

Cli = Callable[..., Any]


def spec_events(directory: Path) -> list[Path]:
    """The events behind the SPEC §6 example, in two files: 2,500 API calls and 12 × 100,000
    = 1,200,000 tokens for cus_abc in October 2026."""
    calls = [
        event(f"call-{i:04d}", "cus_abc", "api.call", f"2026-10-{1 + i % 31:02d}T12:00:00Z")
        for i in range(2500)
    ]
    tokens = [
        event(
            f"tok-{i:02d}", "cus_abc", "ai.tokens", f"2026-10-{1 + i:02d}T08:00:00Z", tokens=100000
        )
        for i in range(12)
    ]
    return [
        write_events(directory / "calls.jsonl", calls),
        write_events(directory / "tokens.jsonl", tokens),
    ]


@pytest.fixture(scope="module")
def spec_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SPEC §6 config and its events ingested, built once per module."""
    from typer.testing import CliRunner

    from usagebill.cli import app

    built = tmp_path_factory.mktemp("spec")
    shutil.copy(DATA / "core_spec_example.yaml", built / "meters.yaml")
    files = spec_events(built)
    result = CliRunner().invoke(
        app, ["ingest", "--db", str(built / "usagebill.duckdb"), *map(str, files)]
    )
    assert result.exit_code == 0, result.stderr
    return built


@pytest.fixture
def spec(spec_built: Path, tmp_path: Path) -> Path:
    """The working directory (the test's tmp_path) holding a copy of `spec_built`'s
    meters.yaml and usagebill.duckdb: the defaults every command reads."""
    for name in ("meters.yaml", "usagebill.duckdb", "calls.jsonl", "tokens.jsonl"):
        shutil.copy(spec_built / name, tmp_path / name)
    return tmp_path


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def fails(result: Any, code: int = 2) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr
    assert 1 <= len(result.stderr.strip().splitlines()) <= 2  # one or two plain lines
    return result.stderr


# -- the SPEC §6 invoice ----------------------------------------------------------------------


def test_the_spec_invoice_document_exactly(spec: Path, cli: Cli) -> None:
    # base 49.00 + api_calls (2,500 − 1,000 free) × 0.02 = 30.00 + tokens 1,200,000 / 1,000
    # = 1,200 credits drawn (a usage line of 0.00 with its credits) + credit line: 1,000
    # granted, 1,200 consumed, 200 overage × 0.01 = 2.00 → 49.00 + 30.00 + 0.00 + 2.00 = 81.00.
    # The SPEC's sample leaves out the tokens usage line and the §8 fields status/adjustments.
    result = ok(cli("invoice", "--period", "2026-10", "--format", "json"))
    assert result.stdout == (DATA / "core_spec_invoice.json").read_text(encoding="utf-8")
    assert result.stderr == ""  # no warnings


def console_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `usagebill` (what a user types), with Python's output buffered as it is
    by default: `main` ends the process with os._exit, so unflushed output would be lost."""
    script = Path(sys.executable).parent / "usagebill"
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "usagebill"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [*exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_console_script_writes_every_byte_before_it_exits(spec: Path) -> None:
    done = console_script("invoice", "--period", "2026-10", "--format", "json", cwd=spec)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (DATA / "core_spec_invoice.json").read_text(encoding="utf-8")
    listed = console_script("rejects", cwd=spec)
    assert listed.returncode == 0, listed.stderr


def test_the_console_script_names_a_bad_flag_once(spec: Path) -> None:
    done = console_script("invoice", "--no-such-flag", cwd=spec)
    assert done.returncode == 2 and done.stdout == ""
    first, second = done.stderr.splitlines()
    assert first.endswith("invoice: No such option: --no-such-flag")
    assert "usagebill: usagebill" not in first and second.startswith("Try '")


def test_an_option_without_its_value_names_the_command(spec: Path, cli: Cli) -> None:
    assert fails(cli("usage", "--period")) == (
        "usagebill usage: Option '--period' requires an argument.\n"
        "Try 'usagebill usage --help'.\n")


def test_the_invoice_does_not_depend_on_the_order_of_input_files(
    spec: Path, cli: Cli, tmp_path: Path
) -> None:
    first = ok(cli("invoice", "--period", "2026-10", "--format", "json")).stdout
    other = tmp_path / "reversed"
    other.mkdir()
    files = spec_events(other)
    ok(cli("ingest", "--db", str(other / "db.duckdb"), *map(str, reversed(files))))
    second = ok(
        cli("invoice", "--period", "2026-10", "--format", "json", "--db", str(other / "db.duckdb"))
    ).stdout
    assert first == second


def test_the_invoice_as_csv(spec: Path, cli: Cli) -> None:
    result = ok(cli("invoice", "--period", "2026-10", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["kind"], r["meter_id"], r["credit_id"], r["amount"]) for r in rows] == [
        ("base", "", "", "49.00"),
        ("usage", "api_calls", "", "30.00"),
        ("usage", "tokens", "", "0.00"),
        ("credit", "", "ai_credits", "2.00"),
    ]
    usage = rows[1]
    assert (usage["customer_id"], usage["period"], usage["quantity"], usage["free_units"]) == (
        "cus_abc",
        "2026-10",
        "2500",
        "1000",
    )
    assert (usage["billable_units"], usage["unit_price"], usage["currency"]) == (
        "1500",
        "0.02",
        "USD",
    )
    # the lines add up to the invoice total, 81.00
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("81.00")


def test_the_invoice_as_a_table(spec: Path, cli: Cli) -> None:
    out = ok(cli("invoice", "--period", "2026-10")).stdout
    assert "cus_abc" in out and "Acme Inc" in out
    for text in ("49.00", "2,500", "1,000", "1,500", "30.00", "2.00", "81.00"):
        assert text in out
    assert "1 invoice for 2026-10 (draft), total USD 81.00" in out
    assert "\x1b[" not in out  # no colour codes into a pipe


def test_output_file_holds_the_report_and_stdout_stays_empty(spec: Path, cli: Cli) -> None:
    target = spec / "out.json"
    result = ok(cli("invoice", "--period", "2026-10", "--format", "json", "--output", str(target)))
    assert result.stdout == ""
    assert target.read_text() == (DATA / "core_spec_invoice.json").read_text()


def test_init_into_something_that_is_not_a_writable_directory(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "afile").write_text("x")
    (tmp_path / "d" / "meters.yaml").mkdir(parents=True)
    assert fails(cli("init", str(tmp_path / "afile"))) == (
        f"usagebill: {tmp_path / 'afile'}: is a file, not a directory\n"
        "usagebill: Give a directory: `usagebill init DIR`.\n")
    err = fails(cli("init", str(tmp_path / "d"), "--force"))
    assert err.startswith(f"usagebill: {tmp_path / 'd' / 'meters.yaml'}: cannot write (")


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
@pytest.mark.parametrize("command", ["invoice", "credits", "usage"])
def test_an_output_file_that_cannot_be_written_is_a_plain_error(
    spec: Path, cli: Cli, command: str, fmt: str
) -> None:
    target = spec / "no-such-directory" / "out.txt"
    err = fails(cli(command, "--period", "2026-10", "-f", fmt, "--output", str(target)))
    assert err == f"usagebill: --output {target}: cannot write (No such file or directory)\n"


def test_customer_option_on_the_cli(spec: Path, cli: Cli) -> None:
    doc = json.loads(
        ok(cli("invoice", "--period", "2026-10", "--customer", "cus_abc", "-f", "json")).stdout
    )
    assert [i["total"] for i in doc["invoices"]] == ["81.00"]
    err = fails(cli("invoice", "--period", "2026-10", "--customer", "cus_ab"))
    assert "cus_ab" in err and "did you mean 'cus_abc'" in err


def test_a_period_with_no_events_still_bills_the_base_price(spec: Path, cli: Cli) -> None:
    doc = json.loads(ok(cli("invoice", "--period", "2026-11", "-f", "json")).stdout)
    inv = doc["invoices"][0]
    # 49.00 base; 0 calls; 0 tokens; the pool's line is there with nothing consumed
    assert [line["amount"] for line in inv["lines"]] == ["49.00", "0.00", "0.00", "0.00"]
    assert inv["lines"][-1]["consumed"] == "0" and inv["lines"][-1]["remaining"] == "1000"
    assert inv["total"] == "49.00"


# -- warnings ---------------------------------------------------------------------------------


def test_warnings_go_to_stderr_and_into_the_json(spec: Path, cli: Cli) -> None:
    write_events(
        spec / "more.jsonl",
        [
            event("g1", "cus_ghost", "api.call", "2026-10-02T00:00:00Z"),
            event("g2", "cus_ghost", "ai.tokens", "2026-10-03T00:00:00Z", tokens=5),
            event("p1", "cus_abc", "page.view", "2026-10-03T00:00:00Z"),
        ],
    )
    ok(cli("ingest", str(spec / "more.jsonl")))
    result = ok(cli("invoice", "--period", "2026-10", "--format", "json"))
    doc = json.loads(result.stdout)  # stdout is exactly one JSON document
    kinds = {(w["kind"], w["customer_id"], w.get("events")) for w in doc["warnings"]}
    assert ("unknown_customer", "cus_ghost", 2) in kinds
    assert ("unmetered_events", "cus_abc", 1) in kinds
    assert doc["invoices"][0]["total"] == "81.00"  # none of it billed
    stderr = result.stderr.splitlines()
    assert len(stderr) == len(doc["warnings"])
    assert all(line.startswith("usagebill: warning: ") for line in stderr)
    assert any("cus_ghost" in line and "2" in line for line in stderr)


def test_usage_on_an_unpriced_meter_is_warned_on_the_cli(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "meters.yaml").write_text(
        (DATA / "core_spec_example.yaml").read_text() + "  # an extra meter no product prices\n"
    )
    text = (
        (DATA / "core_spec_example.yaml")
        .read_text()
        .replace(
            "credits:",
            "  - {id: sms, event_name: sms.sent, aggregation: {type: count}}\n\ncredits:",
            1,
        )
    )
    (tmp_path / "meters.yaml").write_text(text)
    write_events(
        tmp_path / "e.jsonl",
        [event(f"s{i}", "cus_abc", "sms.sent", "2026-10-02T00:00:00Z") for i in range(3)],
    )
    ok(cli("ingest", str(tmp_path / "e.jsonl")))
    result = ok(cli("invoice", "--period", "2026-10", "-f", "json"))
    warnings = json.loads(result.stdout)["warnings"]
    assert [(w["kind"], w["meter_id"], w["events"]) for w in warnings] == [
        ("unpriced_meter", "sms", 3)
    ]
    assert "sms" in result.stderr and "3" in result.stderr


# -- usage and credits ------------------------------------------------------------------------


def test_usage_json_on_the_cli(spec: Path, cli: Cli) -> None:
    result = ok(cli("usage", "--period", "2026-10", "--format", "json"))
    assert json.loads(result.stdout) == {
        "period_start": "2026-10-01T00:00:00+00:00",
        "period_end": "2026-11-01T00:00:00+00:00",
        "rows": [
            {
                "customer_id": "cus_abc",
                "meter_id": "api_calls",
                "quantity": "2500",
                "events": 2500,
                "unit": "calls",
            },
            {
                "customer_id": "cus_abc",
                "meter_id": "tokens",
                "quantity": "1200000",
                "events": 12,
                "unit": "tokens",
            },
        ],
        "skipped": [],
    }
    assert result.stderr == ""


def test_usage_by_day_csv_and_a_date_range(spec: Path, cli: Cli) -> None:
    out = ok(
        cli(
            "usage",
            "--period",
            "2026-10-01..2026-10-03",
            "--by",
            "day",
            "--meter",
            "api_calls",
            "-f",
            "csv",
        )
    ).stdout
    # calls go round the 31 days of October: 2,500 = 80 × 31 + 20, so days 1–20 have 81
    assert out == (
        "customer_id,day,meter_id,quantity,events,unit\n"
        "cus_abc,2026-10-01,api_calls,81,81,calls\n"
        "cus_abc,2026-10-02,api_calls,81,81,calls\n"
    )


def test_usage_table_and_skipped_warnings(spec: Path, cli: Cli) -> None:
    write_events(spec / "bad.jsonl", [event("b", "cus_abc", "ai.tokens", "2026-10-02T00:00:00Z")])
    ok(cli("ingest", str(spec / "bad.jsonl")))
    result = ok(cli("usage", "--period", "2026-10", "--customer", "cus_abc"))
    assert "2,500" in result.stdout and "1,200,000" in result.stdout
    assert "Skipped events" in result.stdout
    (line,) = result.stderr.splitlines()  # one warning line: 1 event, missing its key
    assert line.startswith("usagebill: warning: 1 ")
    assert line.endswith("skipped by tokens: missing property 'tokens'")


def test_credits_ledger_on_the_cli(spec: Path, cli: Cli) -> None:
    rows = json.loads(ok(cli("credits", "--period", "2026-10", "-f", "json")).stdout)
    assert rows == [
        {
            "customer_id": "cus_abc",
            "credit_id": "ai_credits",
            "cycle_start": "2026-10-01T00:00:00+00:00",
            "cycle_end": "2026-11-01T00:00:00+00:00",
            "balance_before": "1000",
            "rolled_over": "0",
            "granted": "1000",
            "consumed": "1200",
            "from_rollover": "0",
            "from_grant": "1000",
            "overage_credits": "200",
            "overage_amount": "2.00",
            "expired": "0",
            "carried": "0",
            "balance_after": "0",
        }
    ]
    table = ok(cli("credits", "--customer", "cus_abc")).stdout
    assert "ai_credits" in table and "1200" in table


def test_credits_before_any_event_run_to_this_month(tmp_path: Path, cli: Cli) -> None:
    import datetime as dt

    shutil.copy(DATA / "core_spec_example.yaml", tmp_path / "meters.yaml")
    write_events(tmp_path / "none.jsonl", [])
    ok(cli("ingest", "--db", str(tmp_path / "u.duckdb"), str(tmp_path / "none.jsonl")))
    table = ok(cli("credits", "-c", str(tmp_path / "meters.yaml"),
                   "--db", str(tmp_path / "u.duckdb"))).stdout
    # not 1970-01: the month of the latest event, and before any, this one
    assert f"Credit ledgers up to {dt.datetime.now(dt.timezone.utc):%Y-%m}" in table


# -- errors and exit codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["invoice", "--period", "2026-13"], "--period 2026-13"),
        (["invoice", "--period", "October"], "YYYY-MM"),
        (["invoice", "--period", "2026-10-01..2026-10-15"], "--period"),  # months only
        (["usage", "--period", "2026-10-15..2026-10-01"], "ends before it starts"),
        (["usage", "--period", "2026-10", "--by", "week"], "--by week"),
        (["usage", "--period", "2026-10", "--meter", "api_call"], "api_calls"),
        (["invoice", "--period", "2026-10", "--format", "xml"], "xml"),
        (["invoice"], "--period"),
        (["credits", "--period", "soon"], "--period soon"),
        (["credits", "--customer", "nobody"], "nobody"),
    ],
)
def test_bad_options_exit_2_with_a_plain_message(
    spec: Path, cli: Cli, args: list[str], needle: str
) -> None:
    assert needle in fails(cli(*args))


@pytest.mark.parametrize("command", ["invoice", "usage", "credits"])
def test_a_missing_config_exits_2(tmp_path: Path, cli: Cli, command: str) -> None:
    err = fails(cli(command, "--period", "2026-10", "--config", str(tmp_path / "nope.yaml")))
    assert "nope.yaml" in err


@pytest.mark.parametrize("command", ["invoice", "usage", "credits"])
def test_a_missing_database_exits_2(tmp_path: Path, cli: Cli, command: str) -> None:
    shutil.copy(DATA / "core_spec_example.yaml", tmp_path / "meters.yaml")
    err = fails(cli(command, "--period", "2026-10", "--db", str(tmp_path / "nope.duckdb")))
    assert "nope.duckdb" in err


def test_a_broken_config_exits_2_with_its_position(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "meters.yaml").write_text("version: 1\ncurrency: USD\nmeters:\n  - id: X\n")
    result = cli("invoice", "--period", "2026-10")
    assert result.exit_code == 2
    assert "meters.yaml:4:" in result.stderr and "Traceback" not in result.stderr


def test_config_and_db_come_from_the_environment(
    spec: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (spec / "meters.yaml").rename(elsewhere / "billing.yaml")
    (spec / "usagebill.duckdb").rename(elsewhere / "billing.duckdb")
    monkeypatch.setenv("USAGEBILL_CONFIG", str(elsewhere / "billing.yaml"))
    monkeypatch.setenv("USAGEBILL_DB", str(elsewhere / "billing.duckdb"))
    result = ok(cli("invoice", "--period", "2026-10", "-f", "json"))
    assert json.loads(result.stdout)["invoices"][0]["total"] == "81.00"


@pytest.mark.parametrize("command", ["usage", "invoice", "credits"])
def test_every_report_has_help(cli: Cli, command: str) -> None:
    result = ok(cli(command, "--help"))
    assert "--period" in result.stdout and "--format" in result.stdout
