"""HTML and PDF invoices: the JSON invoice's numbers on a page, escaped, in safe files."""

from __future__ import annotations

import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from usagebill.cli import app
from usagebill.documents import file_stems, group_digits

from .conftest import write_events
from .pages import PERIOD, SAMPLE_CONFIG, Page, invoice_json, plain, run, sample_db


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample data billed once: its JSON document and its HTML invoices."""
    base = tmp_path_factory.mktemp("sample")
    db = sample_db(base)
    out = base / "invoices"
    result = run("invoice", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db, "-f", "html", "-o", out)
    return {"db": db, "json": invoice_json(db), "out": out, "stderr": result.stderr}


def test_every_invoice_gets_a_file_named_by_its_invoice_number(sample: dict) -> None:
    doc = sample["json"]
    assert len(doc["invoices"]) == 18  # every configured customer with a cycle in 2026-10
    expected = {f"INV-{PERIOD}-{i['customer_id']}.html" for i in doc["invoices"]}
    assert {p.name for p in sample["out"].iterdir()} == expected | {"index.html"}
    assert "wrote 18 HTML invoices and index.html to" in sample["stderr"]
    for inv in doc["invoices"]:
        page = Page((sample["out"] / f"INV-{PERIOD}-{inv['customer_id']}.html").read_text())
        assert page.by_id["invoice-number"] == f"INV-{PERIOD}-{inv['customer_id']}"


def test_amounts_and_totals_on_each_page_are_the_json_invoices(sample: dict) -> None:
    for inv in sample["json"]["invoices"]:
        page = Page((sample["out"] / f"INV-{PERIOD}-{inv['customer_id']}.html").read_text())
        assert [plain(a) for a in page.by_class["amount"]] == [li["amount"] for li in inv["lines"]]
        assert page.by_id["total"] == f"USD {group_digits(inv['total'])}"
        text = page.all_text
        assert inv["customer_name"] in text
        for line in inv["lines"]:
            if line["kind"] == "usage":  # quantity, free units and billable units, as written
                for key in ("quantity", "free_units", "billable_units"):
                    assert group_digits(line[key]) in text
                if "credits" in line:
                    assert f"{group_digits(line['credits'])} credits" in text
            if line["kind"] == "credit":  # credits drawn and remaining
                assert f"Used {group_digits(line['consumed'])}" in text
                assert f"remaining {group_digits(line['remaining'])}" in text


def test_a_page_shows_issuer_customer_period_and_prices(sample: dict) -> None:
    page = Page((sample["out"] / f"INV-{PERIOD}-cus_acme.html").read_text())
    text = page.all_text
    for expected in (
        "Example Cloud Ltd",
        "10 Market Street, London",
        "Tax ID GB123456789",
        "Acme Inc",
        "billing@acme.example",
        "1 Main St, Springfield",
        "1 Oct 2026 – 31 Oct 2026",
        "0.001 per call",  # the per-unit price, with at least the currency's decimals
        "5.00 per GB",
        "1,000 tokens = 1 credit",
        "500 rolled over + 1,000 granted",
    ):
        assert expected in text, expected
    blue = Page((sample["out"] / f"INV-{PERIOD}-cus_blue.html").read_text()).all_text
    assert "Europe/Berlin" in blue  # the period in the customer's own time zone
    assert "Tier 1: 215 × 0.001 = 0.215" in blue  # a tier breakdown
    assert "0.90 per 100 messages" in blue  # a package price
    gale = Page((sample["out"] / f"INV-{PERIOD}-cus_gale.html").read_text()).all_text
    assert "31 Oct 2026 – 29 Nov 2026" in gale  # anchor 31: the last day is the 29th


def test_the_index_lists_every_invoice_with_its_total_and_the_grand_total(sample: dict) -> None:
    doc = sample["json"]
    index = Page((sample["out"] / "index.html").read_text())
    links = [a["href"] for tag, a in index.tags if tag == "a" and a.get("href")]
    assert links == [f"INV-{PERIOD}-{i['customer_id']}.html" for i in doc["invoices"]]
    assert all((sample["out"] / str(link)).is_file() for link in links)
    assert [plain(t) for t in index.by_class["total"]] == [i["total"] for i in doc["invoices"]]
    grand = sum(Decimal(i["total"]) for i in doc["invoices"])
    assert plain(index.by_id["grand-total"]) == f"USD {grand}"
    for w in doc["warnings"]:
        assert w["message"] in index.all_text


def test_pages_are_self_contained_and_the_same_every_run(sample: dict, tmp_path: Path) -> None:
    again = tmp_path / "again"
    run(
        "invoice",
        "-p",
        PERIOD,
        "-c",
        SAMPLE_CONFIG,
        "--db",
        sample["db"],
        "-f",
        "html",
        "-o",
        again,
    )
    for path in sample["out"].iterdir():
        html = path.read_text()
        assert html == (again / path.name).read_text()
        lowered = html.lower()
        for forbidden in ("<script", "<link", "<img", "<iframe", "src=", "@import", "url("):
            assert forbidden not in lowered, (path.name, forbidden)
        assert not re.search(r"""href=["']?(https?:|//)""", lowered), path.name
        assert "@media print" in html and "@page" in html


HOSTILE = """\
version: 1
currency: JPY
meters:
  - {id: calls, name: "Calls <b>bold</b>", event_name: api.call, aggregation: {type: count}}
products:
  - id: p
    name: "Plan & <i>co</i>"
    base_price: 1000
    charges:
      - {meter: calls, unit_price: 1500}
customers:
  - id: "../../evil/<x>"
    name: "<script>alert(1)</script>"
    product: p
    email: '"><img src=x onerror=alert(1)>'
    address: "Line 1\\nLine 2 & more"
  - {id: "a/b", name: Slash, product: p}
  - {id: "a_b", name: Underscore, product: p}
issuer:
  name: "Evil <Corp>"
  invoice_prefix: "Q&A"
"""


def test_hostile_names_are_text_and_file_names_stay_in_the_directory(tmp_path: Path) -> None:
    config = tmp_path / "hostile.yaml"
    config.write_text(HOSTILE)
    events = [
        {
            "event_id": f"e{i}",
            "customer_id": cid,
            "event_name": "api.call",
            "timestamp": "2026-10-05T12:00:00Z",
        }
        for i, cid in enumerate(["../../evil/<x>", "../../evil/<x>", "a/b", "a_b"] * 1000)
    ]
    write_events(tmp_path / "events.jsonl", events)
    db = tmp_path / "h.duckdb"
    run("ingest", tmp_path / "events.jsonl", "--db", db)
    out = tmp_path / "out" / "docs"
    run("invoice", "-p", PERIOD, "-c", config, "--db", db, "-f", "html", "-o", out)

    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 4 and all(p.is_file() for p in out.iterdir())  # nothing elsewhere
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["docs"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.html", f) for f in files)
    assert f"Q&A-{PERIOD}-a_b.html" not in files  # "&" is replaced: every stem has a hash
    doc = invoice_json(db, config)
    index = Page((out / "index.html").read_text())
    links = [a["href"] for tag, a in index.tags if tag == "a" and a.get("href")]
    assert sorted(links) == sorted(f for f in files if f != "index.html")
    numbers = [t for t in index.text if t.startswith("Q&A-")]
    assert sorted(numbers) == sorted(f"Q&A-{PERIOD}-{i['customer_id']}" for i in doc["invoices"])

    evil = next(i for i in doc["invoices"] if i["customer_id"] == "../../evil/<x>")
    link = links[[i["customer_id"] for i in doc["invoices"]].index("../../evil/<x>")]
    html = (out / str(link)).read_text()
    page = Page(html)
    assert page.by_id["invoice-number"] == "Q&A-2026-10-../../evil/<x>"  # the number, exact
    assert "<script>alert(1)</script>" in page.all_text  # shown as text ...
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # ... because it is escaped
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "Evil <Corp>" in page.all_text and "Plan & <i>co</i>" in page.all_text
    # JPY has no minor unit: amounts are whole yen, as the JSON writes them
    assert page.by_id["total"] == f"JPY {group_digits(evil['total'])}"
    assert "." not in evil["total"]
    assert "1,500 per call" in page.all_text or "1,500 each" in page.all_text


def test_file_stems_are_safe_distinct_and_keep_plain_numbers() -> None:
    numbers = [
        "INV-2026-10-cus_abc",
        "INV-2026-10-a/b",
        "INV-2026-10-a_b",
        "INV-2026-10-A_B",
        "INV-2026-10-..",
        "INV-2026-10-" + "x" * 300,
        "INV-2026-10-café",
    ]
    stems = file_stems(numbers)
    assert stems[0] == "INV-2026-10-cus_abc" and stems[2] == "INV-2026-10-a_b"
    assert len({s.lower() for s in stems}) == len(stems)  # distinct, even where case folds
    for s in stems:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", s) and len(s) < 140
    assert stems[1].startswith("INV-2026-10-a_b-")  # a/b: sanitized, with a hash of the number


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("0", "0"),
        ("999", "999"),
        ("1000", "1,000"),
        ("1471.99", "1,471.99"),
        ("-1234567.125", "-1,234,567.125"),
        ("0.000001", "0.000001"),
        ("n/a", "n/a"),
    ],
)
def test_digits_are_grouped_never_rounded(text: str, shown: str) -> None:
    assert group_digits(text) == shown


def test_documents_need_an_output_directory(sample: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["invoice", "-p", PERIOD, "-c", str(SAMPLE_CONFIG), "--db", str(sample["db"])]
    result = runner.invoke(app, [*base, "-f", "html"])
    assert result.exit_code == 2
    assert result.stderr.startswith("usagebill: --format html writes one file per invoice")
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, [*base, "-f", "html", "-o", str(tmp_path / "file")])
    assert result.exit_code == 2 and "not a directory" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["usage", "-p", PERIOD], ["rejects"], ["credits", "-p", PERIOD], ["runs"]],
)
@pytest.mark.parametrize("fmt", ["html", "pdf"])
def test_other_commands_refuse_html_and_pdf(sample: dict, args: list[str], fmt: str) -> None:
    config = [] if args[0] in ("rejects", "runs") else ["-c", str(SAMPLE_CONFIG)]
    result = CliRunner().invoke(app, [*args, *config, "--db", str(sample["db"]), "-f", fmt])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"usagebill: --format {fmt}: `usagebill {args[0]}` writes table, json or csv"
    )
    assert result.stdout == ""


def test_pdf_without_weasyprint_names_the_extra(
    sample: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint -> ImportError
    result = CliRunner().invoke(
        app,
        [
            "invoice",
            "-p",
            PERIOD,
            "-c",
            str(SAMPLE_CONFIG),
            "--db",
            str(sample["db"]),
            "-f",
            "pdf",
            "-o",
            str(tmp_path / "pdf"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "usagebill: --format pdf needs WeasyPrint, which is not installed\n"
        "usagebill: Install it with: pip install 'usagebill[pdf]'\n"
    )
    assert not (tmp_path / "pdf").exists()


def _weasyprint_works() -> bool:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@pytest.mark.skipif(not _weasyprint_works(), reason="WeasyPrint (usagebill[pdf]) is not usable")
def test_pdf_invoices_parse_back_to_the_json_totals(sample: dict, tmp_path: Path) -> None:
    from pypdf import PdfReader

    out = tmp_path / "pdf"
    for customer in ("cus_acme", "cus_blue"):  # two, to keep the test quick
        run(
            "invoice",
            "-p",
            PERIOD,
            "-c",
            SAMPLE_CONFIG,
            "--db",
            sample["db"],
            "--customer",
            customer,
            "-f",
            "pdf",
            "-o",
            out,
        )
        inv = next(i for i in sample["json"]["invoices"] if i["customer_id"] == customer)
        reader = PdfReader(out / f"INV-{PERIOD}-{customer}.pdf")
        assert len(reader.pages) == 1  # one clean page
        text = " ".join(reader.pages[0].extract_text().split())
        assert f"USD {group_digits(inv['total'])}" in text
        assert f"INV-{PERIOD}-{customer}" in text
        for line in inv["lines"]:
            assert group_digits(line["amount"]) in text
    index = Page((out / "index.html").read_text())
    assert [a["href"] for t, a in index.tags if t == "a"] == [f"INV-{PERIOD}-cus_blue.pdf"]


def test_a_closed_period_shows_no_draft_tag_and_its_adjustments(tmp_path: Path) -> None:
    from .pages import SAMPLE_DATA

    db = tmp_path / "closed.duckdb"
    early = sorted(SAMPLE_DATA.glob("events-2026-10-0*.jsonl"))
    late = sorted(SAMPLE_DATA.glob("events-2026-10-1*.jsonl"))
    run("ingest", *early, "--db", db)
    run("close", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db)
    run("ingest", *late, "--db", db)
    out = tmp_path / "out"
    run("invoice", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db, "-f", "html", "-o", out)
    doc = invoice_json(db)
    assert doc["status"] == "closed" and doc["adjustments"]
    adj = doc["adjustments"][0]
    page = Page((out / f"INV-{PERIOD}-{adj['customer_id']}.html").read_text())
    assert "Draft" not in page.all_text
    assert "Adjustments since this invoice was issued" in page.all_text
    assert f"Total difference {group_digits(adj['total_difference'])}" in page.all_text
    issued = next(i for i in doc["invoices"] if i["customer_id"] == adj["customer_id"])
    assert page.by_id["total"] == f"USD {group_digits(issued['total'])}"  # as issued
