"""What a person sees: headless Chromium renders every sample invoice and the usage report.

They need Debian's `chromium` package, which `.ci/run` installs (without it they are skipped,
saying so); `pytest -m browser` runs only them. For each page the tests read the rendered DOM
(`--dump-dom`), take a screenshot (not blank; the total painted inside the first screen: the
same page with the total hidden gives another picture) and print it to PDF (one page for an
invoice, its total in the text).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from usagebill.documents import group_digits

from .pages import PERIOD, SAMPLE_CONFIG, Page, invoice_json, plain, run, sample_db

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
A4_WINDOW = "900,1273"  # a page's proportions at a screen's width
WORKERS = 4  # Chromium mostly waits while it starts: a few at once save most of the time

if CHROMIUM is None:
    pytest.skip(
        "headless Chromium not found: install Debian's chromium package (.ci/run does)",
        allow_module_level=True,
    )


def chromium(*args: str, url: Path) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="usagebill-chromium-") as profile:
        done = subprocess.run(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args, url.as_uri()],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


def render(page: Path, png: Path, pdf: Path | None = None, window: str = A4_WINDOW) -> str:
    """One Chromium run: the rendered DOM (returned), a screenshot and, if asked, a PDF."""
    args = ["--dump-dom", f"--screenshot={png}", f"--window-size={window}"]
    if pdf is not None:
        args += [f"--print-to-pdf={pdf}", "--no-pdf-header-footer"]
    dom = chromium(*args, url=page).stdout.decode()
    assert png.is_file() and (pdf is None or pdf.is_file())
    return dom


def pixels(png: Path) -> tuple[tuple[int, int], bytes]:
    from PIL import Image

    with Image.open(png) as im:
        rgb = im.convert("RGB")
        return rgb.size, rgb.tobytes()


def ink(png: Path) -> float:
    """The share of pixels darker than the page's light greys: 0 for a blank screenshot."""
    from PIL import Image

    with Image.open(png) as im:
        grey = im.convert("L")
        histogram = grey.histogram()
    return sum(histogram[:160]) / (grey.width * grey.height)


def hidden(page: Path, selector: str, target: Path) -> Path:
    """The same page with one element made invisible (its space kept)."""
    html = page.read_text().replace(
        "</head>", f"<style>{selector} {{ visibility: hidden !important; }}</style></head>", 1
    )
    target.write_text(html)
    return target


def pdf_text(path: Path) -> tuple[int, str]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    return len(reader.pages), " ".join(
        " ".join((p.extract_text() or "").split()) for p in reader.pages
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample invoices and report, each rendered by Chromium in every way the tests read."""
    base = tmp_path_factory.mktemp("browser")
    db = sample_db(base)
    out = base / "invoices"
    run("invoice", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db, "-f", "html", "-o", out)
    report = base / "report.html"
    run("report", "-p", PERIOD, "-c", SAMPLE_CONFIG, "--db", db, "-o", report)
    doc = invoice_json(db)
    shots = base / "shots"
    shots.mkdir()

    def render_invoice(inv: dict) -> dict:
        page = out / f"INV-{PERIOD}-{inv['customer_id']}.html"
        stem = inv["customer_id"]
        png, pdf, png_without_total = (shots / f"{stem}{x}" for x in (".png", ".pdf", "-h.png"))
        dom = render(page, png, pdf)
        render(hidden(page, "#total", shots / f"{stem}-hidden.html"), png_without_total)
        return {
            "json": inv,
            "dom": dom,
            "png": png,
            "pdf": pdf,
            "png_without_total": png_without_total,
        }

    def render_report() -> dict:
        png, pdf = shots / "report.png", shots / "report.pdf"
        return {"dom": render(report, png, pdf, "960,1600"), "png": png, "pdf": pdf}

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        report_job = pool.submit(render_report)
        invoices = list(pool.map(render_invoice, doc["invoices"]))
        rendered_report = report_job.result()
    return {"invoices": invoices, "report": rendered_report, "doc": doc}


def test_chromium_renders_every_sample_invoice_with_the_json_figures(rendered: dict) -> None:
    assert len(rendered["invoices"]) == 18
    for r in rendered["invoices"]:
        inv = r["json"]
        page = Page(r["dom"])
        assert page.by_id["invoice-number"] == f"INV-{PERIOD}-{inv['customer_id']}"
        assert page.by_id["total"] == f"USD {group_digits(inv['total'])}"
        assert [plain(a) for a in page.by_class["amount"]] == [li["amount"] for li in inv["lines"]]
        assert inv["customer_name"] in page.all_text


def test_every_invoice_screenshot_shows_a_page_with_its_total(rendered: dict) -> None:
    for r in rendered["invoices"]:
        assert ink(r["png"]) > 0.005, r["json"]["customer_id"]  # text was drawn: not blank
        size, shown = pixels(r["png"])
        size_hidden, without = pixels(r["png_without_total"])
        assert size == size_hidden
        assert shown != without, f"{r['json']['customer_id']}: the total is not on the screen"


def test_every_invoice_prints_on_one_page_with_its_total(rendered: dict) -> None:
    for r in rendered["invoices"]:
        inv = r["json"]
        pages, text = pdf_text(r["pdf"])
        assert pages == 1, inv["customer_id"]
        assert f"USD {group_digits(inv['total'])}" in text
        assert f"INV-{PERIOD}-{inv['customer_id']}" in text


def test_chromium_renders_the_report_with_its_charts(rendered: dict) -> None:
    r = rendered["report"]
    page = Page(r["dom"])
    assert page.by_id["total-api_calls"] == "8,825 calls"
    grand = sum(Decimal(i["total"]) for i in rendered["doc"]["invoices"])
    assert plain(page.by_id["invoices-total"]) == f"USD {grand}"
    assert r["dom"].count("<svg ") == 8
    assert ink(r["png"]) > 0.01
    from PIL import Image

    with Image.open(r["png"]) as im:  # the charts' bars are painted (#2f6fa8)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert sum(n for n, c in colours if c == (0x2F, 0x6F, 0xA8)) > 2000
    pages, text = pdf_text(r["pdf"])
    assert 1 <= pages <= 8
    assert "Usage report" in text and "API calls" in text
