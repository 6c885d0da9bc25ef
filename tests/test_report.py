"""The usage report page and the terminal's sparklines: the figures are those of `usage`."""

from __future__ import annotations

import io
import json
import re
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from usagebill.cli import app
from usagebill.config import load_config
from usagebill.cycles import parse_period
from usagebill.documents import group_digits
from usagebill.money import fmt_number
from usagebill.render import sparkline, usage_table
from usagebill.report import COMBINE, change_percent, combine
from usagebill.store import Store
from usagebill.usage import usage_report

from .conftest import event, write_events
from .pages import PERIOD, SAMPLE_CONFIG, Page, invoice_json, plain, run, sample_db

pytest.importorskip("matplotlib", reason="the report needs usagebill[report]")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("report")
    db = sample_db(base)
    out = base / "report.html"
    result = run("report", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db, "-o", out)

    def usage(*extra: str) -> dict:
        args = ("usage", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db, "-f", "json", *extra)
        return json.loads(run(*args).stdout)

    return {
        "db": db,
        "html": out.read_text(),
        "stderr": result.stderr,
        "usage": usage(),
        "daily": usage("--by", "day"),
        "invoices": invoice_json(db),
    }


def _kinds() -> dict[str, str]:
    return {m.id: COMBINE[m.aggregation.type] for m in load_config(SAMPLE_CONFIG).meters}


def test_each_meters_total_is_the_usage_commands(sample: dict) -> None:
    page = Page(sample["html"])
    per_meter: dict[str, list[Decimal]] = defaultdict(list)
    for row in sample["usage"]["rows"]:
        per_meter[row["meter_id"]].append(Decimal(row["quantity"]))
    kinds = _kinds()
    assert set(per_meter) == set(kinds)
    for meter, values in per_meter.items():
        shown = page.by_id[f"total-{meter}"].split()[0]
        assert plain(shown) == fmt_number(combine(kinds[meter], values)), meter
    assert sample["stderr"].startswith("usagebill: wrote ")


def test_the_daily_figures_are_usage_by_day(sample: dict) -> None:
    kinds = _kinds()
    per_day: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for row in sample["daily"]["rows"]:
        per_day[(row["meter_id"], row["day"])].append(Decimal(row["quantity"]))
    tables = re.findall(
        r'<table class="daily" data-meter="([a-z0-9_]+)">(.*?)</table>', sample["html"], re.S
    )
    assert [m for m, _ in tables] == list(kinds)
    for meter, body in tables:
        rows = re.findall(r"<td[^>]*>([0-9-]{10})</td><td[^>]*>([^<]*)</td>", body)
        assert len(rows) == 31  # every day of October, the quiet ones as 0
        for day, shown in rows:
            expected = combine(kinds[meter], per_day.get((meter, day), []))
            assert plain(shown) == fmt_number(expected), (meter, day)


def test_one_chart_per_meter_as_inline_svg_without_scripts(sample: dict) -> None:
    html = sample["html"]
    assert html.count("<svg ") == len(_kinds())
    assert 'aria-label="Daily API calls"' in html
    lowered = html.lower()
    for forbidden in ("<script", "<link", "<img", "<iframe", "src=", "@import", "url(http"):
        assert forbidden not in lowered, forbidden
    assert not re.search(r"""href=["']?(https?:|//)""", lowered)
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_top_customers_by_usage_and_by_amount(sample: dict) -> None:
    page = Page(sample["html"])
    api_calls = sorted(
        (
            (-Decimal(r["quantity"]), r["customer_id"])
            for r in sample["usage"]["rows"]
            if r["meter_id"] == "api_calls"
        ),
    )[:5]
    section = sample["html"].split('id="meter-api_calls"')[1].split("</section>")[0]
    top = Page(section.split('class="top usage"')[1].split("</table>")[0])
    names = {c.id: c.title for c in load_config(SAMPLE_CONFIG).customers}
    shown = [t for t in top.by_class["num"] if t and "%" not in t]
    assert shown == [group_digits(fmt_number(-q)) for q, _ in api_calls]
    for _, cid in api_calls:
        assert names.get(cid, cid) in top.all_text
    assert "cus_unknown not in the config" in top.all_text  # usage, but never billed

    invoices = sorted(sample["invoices"]["invoices"], key=lambda i: -Decimal(i["total"]))[:5]
    amounts = (
        sample["html"].split('class="top amounts"')[1].split("<tbody>")[1].split("</tbody>")[0]
    )
    assert [plain(t) for t in Page(amounts).by_class["num"] if "%" not in t][:5] == [
        i["total"] for i in invoices
    ]
    grand = sum(Decimal(i["total"]) for i in sample["invoices"]["invoices"])
    assert plain(page.by_id["invoices-total"]) == f"USD {grand}"


def test_the_warnings_of_the_period_are_on_the_page(sample: dict) -> None:
    text = Page(sample["html"]).all_text
    for w in sample["invoices"]["warnings"]:
        assert w["message"] in text
    assert "1,377 events from customer 'cus_unknown'" in text


@pytest.mark.parametrize(
    ("current", "previous", "shown"),
    [
        ("15", "10", "+50.0 %"),
        ("5", "10", "−50.0 %"),
        ("10", "10", "±0.0 %"),
        ("1", "3", "−66.7 %"),
        ("7", "0", "new"),
        ("0", "0", "—"),
        ("0", "4", "−100.0 %"),
        ("30000", "1", "+2,999,900.0 %"),
    ],
)
def test_change_in_percent(current: str, previous: str, shown: str) -> None:
    assert change_percent(Decimal(current), Decimal(previous)) == shown


SMALL = """\
version: 1
timezone: Europe/Berlin
meters:
  - {id: calls, name: API calls, event_name: api.call, aggregation: {type: count}, unit: calls}
  - {id: gb, name: '<b>Data</b>" onload="alert(2)', event_name: data,
     aggregation: {type: sum, key: gb}}
  - {id: peak, name: Peak, event_name: api.call, aggregation: {type: max, key: ms}}
products:
  - {id: p, name: Plan, base_price: "10.00", charges: [{meter: calls, unit_price: "1.00"}]}
customers:
  - {id: c1, name: "<script>alert(1)</script>", product: p}
  - {id: c2, name: Two, product: p}
"""


def _small(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    events = [
        *(event(f"s{i}", "c1", ts="2026-09-10T10:00:00Z", ms=5) for i in range(11)),
        *(event(f"o{i}", "c1", ts="2026-10-03T10:00:00Z", ms=7) for i in range(9)),
        *(event(f"t{i}", "c2", ts="2026-10-31T23:30:00Z", ms=9) for i in range(6)),  # Nov 1st
        event("g1", "c2", "data", ts="2026-10-04T10:00:00Z", gb=1.5),
        event("g2", "c2", "data", ts="2026-10-04T11:00:00Z"),  # no gb: skipped
        event("x1", "stranger", ts="2026-10-05T10:00:00Z"),
    ]
    write_events(tmp_path / "e.jsonl", events)
    db = tmp_path / "small.duckdb"
    run("ingest", tmp_path / "e.jsonl", "--db", db)
    return config, db


def test_change_skips_unknown_customers_escaping_and_local_days(tmp_path: Path) -> None:
    config, db = _small(tmp_path)
    out = tmp_path / "r.html"
    run("report", "-p", PERIOD, "-c", config, "--db", db, "-o", out)
    html = out.read_text()
    page = Page(html)
    # Berlin days: 23:30Z on Oct 31 is Nov 1st, so October has 9 + 1 (stranger) calls
    assert page.by_id["total-calls"] == "10 calls"
    assert "−9.1 %" in page.all_text  # against September's 11 (tenths, half-up)
    assert page.by_id["total-peak"] == "7"  # the highest customer, not a sum
    assert page.by_id["total-gb"] == "1.5"
    assert "<script>alert(1)</script>" in page.all_text and "<script" not in html
    assert "&lt;b&gt;Data&lt;/b&gt;" in html
    assert "<b>" not in html and 'onload="alert(2)' not in html  # the chart's label too
    assert "stranger" in page.all_text and "not in the config" in page.all_text
    assert "missing" in page.all_text.lower()  # the skipped event, with its reason
    assert "1 Oct 2026 – 31 Oct 2026 · days in Europe/Berlin" in page.all_text


def test_a_date_range_report_has_no_amounts(tmp_path: Path) -> None:
    config, db = _small(tmp_path)
    out = tmp_path / "r.html"
    run("report", "-p", "2026-10-01..2026-10-08", "-c", config, "--db", db, "-o", out)
    page = Page(out.read_text())
    assert page.by_id["total-calls"] == "10 calls"
    assert "Invoice amounts need a month" in page.all_text
    assert "compared with 24 Sep 2026 – 30 Sep 2026" in page.all_text
    assert "usage from customer 'stranger'" in page.all_text


def test_a_closed_month_reports_the_currency_it_was_issued_in(tmp_path: Path) -> None:
    config, db = _small(tmp_path)
    run("close", "-p", PERIOD, "-c", config, "--db", db)
    config.write_text(config.read_text().replace("version: 1\n", "version: 1\ncurrency: EUR\n"))
    out = tmp_path / "r.html"
    run("report", "-p", PERIOD, "-c", config, "--db", db, "-o", out)
    html = out.read_text()
    assert "(USD)" in html and "EUR" not in html


def test_the_same_figures_give_the_same_bytes(tmp_path: Path) -> None:
    config, db = _small(tmp_path)
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    run("report", "-p", PERIOD, "-c", config, "--db", db, "-o", a)
    run("report", "-p", PERIOD, "-c", config, "--db", db, "-o", b)
    assert a.read_bytes() == b.read_bytes()


def test_report_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(app, ["report", "-p", PERIOD, "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert result.stderr == (
        "usagebill: `usagebill report` draws its charts with matplotlib, which is not installed\n"
        "usagebill: Install it with: pip install 'usagebill[report]'\n"
    )


def test_report_needs_an_output_file() -> None:
    result = CliRunner().invoke(app, ["report", "-p", PERIOD])
    assert result.exit_code == 2 and "--output" in result.stderr


# -- the terminal -----------------------------------------------------------------------------


def test_sparkline_scales_to_the_largest_value() -> None:
    values = [Decimal(v) for v in ("0", "1", "2", "4", "8", "0.01", "-3")]
    assert sparkline(values) == "·▁▂▄█▁·"
    assert sparkline([Decimal(0)] * 3) == "···"
    assert sparkline([]) == ""


def test_usage_by_day_on_a_terminal_has_a_sparkline_per_customer_and_meter(
    tmp_path: Path,
) -> None:
    config, db = _small(tmp_path)
    cfg = load_config(config)
    with Store.open(db, read_only=True) as store:
        report = usage_report(store, cfg, parse_period(PERIOD), by_day=True)
    tty, pipe = io.StringIO(), io.StringIO()
    usage_table(report, Console(file=tty, force_terminal=True, width=120, color_system=None))
    usage_table(report, Console(file=pipe, width=120, no_color=True))
    assert "Daily usage" in tty.getvalue() and "Daily usage" not in pipe.getvalue()
    lines = {tuple(line.split()[:2]): line for line in tty.getvalue().splitlines() if "on " in line}
    c1 = lines[("c1", "calls")]
    spark = next(w for w in c1.split() if len(w) == 31)
    assert spark == "··█" + "·" * 28  # 9 calls on Oct 3rd, nothing else
    assert c1.rstrip().endswith("9 on 03 Oct")
    assert ("c2", "gb") in lines and ("stranger", "calls") in lines
