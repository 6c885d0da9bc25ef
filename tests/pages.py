"""Helpers for the tests of pages people read (invoices, the usage report): the sample data in
a database, the CLI on it, and a small HTML reader that returns text the way a browser would
show it (entities decoded), found by element id or class."""

from __future__ import annotations

import json
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from usagebill.cli import app
from usagebill.store import Store

from .conftest import ROOT

SAMPLE_CONFIG = ROOT / "meters.yaml.example"
SAMPLE_DATA = ROOT / "sample_data"
PERIOD = "2026-10"


def sample_db(directory: Path) -> Path:
    """The sample events ingested into a fresh database in `directory`."""
    db = directory / "sample.duckdb"
    with Store.open(db) as store:
        store.ingest([str(SAMPLE_DATA)])
    return db


def run(*args: str | Path) -> Any:
    """The CLI, as a user runs it; fails the test with stderr if it does not exit 0."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    return result


def invoice_json(db: Path, config: Path = SAMPLE_CONFIG, period: str = PERIOD) -> dict:
    out = run("invoice", "--period", period, "-c", config, "--db", db, "--format", "json")
    return json.loads(out.stdout)


class Page(HTMLParser):
    """Text by id, and texts by class (in document order), of one HTML page."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.by_id: dict[str, str] = {}
        self.by_class: dict[str, list[str]] = defaultdict(list)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._open: list[tuple[str, str | None, list[str], list[str]]] = []
        self.feed(html)
        self.close()

    BLOCKS = frozenset(
        {"td", "th", "tr", "div", "p", "li", "h1", "h2", "h3", "br", "table", "section", "header"}
    )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self.text.append(" ")  # cells and blocks are apart on the screen, so in the text
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in self.VOID:
            return
        classes = (a.get("class") or "").split()
        self._open.append((tag, a.get("id"), classes, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self.text.append(" ")
        while self._open:
            name, ident, classes, parts = self._open.pop()
            text = " ".join("".join(parts).split())
            if ident:
                self.by_id[ident] = text
            for c in classes:
                self.by_class[c].append(text)
            if self._open:
                self._open[-1][3].extend(parts)
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1][0] in ("style", "script", "title"):
            return
        self.text.append(data)
        if self._open:
            self._open[-1][3].append(data)

    @property
    def all_text(self) -> str:
        return " ".join("".join(self.text).split())


def plain(text: str) -> str:
    """A figure as the JSON writes it: without the thousands separators pages add."""
    return text.replace(",", "")
