"""The benchmark's machinery works: on ~2,000 events every contender runs as a process and
they all bill the same quantities. No timings are asserted (a test machine is too noisy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import contenders, data, harness, report, targets
from bench.common import METERS, differences, to_answer
from usagebill.config import load_config

TINY = 2000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> harness.SizeResult:
    work = tmp_path_factory.mktemp("bench")
    return harness.measure(TINY, contenders.available(), repeat=1, work=work, log=False)


def test_core_contenders_agree(tiny: harness.SizeResult) -> None:
    for name in ("usagebill", "duckdb", "store_sql", "python"):
        assert name in tiny.results
        assert tiny.results[name].mismatches == [], tiny.results[name].mismatches
    answer = tiny.results["duckdb"].answer
    assert len(answer) > 100  # customers with events: the check compared something real
    assert sum(int(q["api_calls"]) for q in answer.values()) > 0


@pytest.mark.parametrize("name,package", [("polars", "polars"), ("chdb", "chdb")])
def test_optional_contender_agrees(tiny: harness.SizeResult, name: str, package: str) -> None:
    pytest.importorskip(package)
    assert tiny.results[name].mismatches == [], tiny.results[name].mismatches


def test_each_run_is_measured(tiny: harness.SizeResult) -> None:
    ub = tiny.results["usagebill"]
    assert list(ub.phases) == ["ingest", "invoice"]
    for runs in ub.phases.values():
        assert runs.median > 0 and runs.peak > 10 * 2**20  # a Python process: over 10 MB
    assert tiny.lines == TINY + TINY // data.RETRY_EVERY
    text = report.table(tiny)
    assert "answers agree" in text and "usagebill" in text and "DuckDB alone" in text
    found = targets.evaluate(tiny, tiny, [], None, [0.1])
    assert {t.name for t in found} >= {
        "ingest vs DuckDB read_json load",
        "invoice vs one raw SQL aggregation on usagebill's database",
        "usagebill --help",
    }


def test_a_wrong_answer_is_caught() -> None:
    good = to_answer({"cus_1": {"data_gb": "1.50", "sms": 3}})
    assert differences(good, to_answer({"cus_1": {"data_gb": "1.5", "sms": 3}})) == []
    bad = differences(good, to_answer({"cus_1": {"data_gb": "1.500000000001", "sms": 3}}))
    assert bad == ["cus_1 data_gb: expected 1.5, got 1.500000000001"]
    assert differences(good, {}) != []  # a missing customer is all zeros, not a match


def test_hand_written_meters_match_the_config(tmp_path: Path) -> None:
    """bench/meters.yaml and the hand-written contenders describe the same meters."""
    config = load_config(data.config_file(tmp_path))
    assert tuple(m.id for m in config.meters) == METERS
    assert len(config.customers) == data.CUSTOMERS
    for product in config.products:  # every meter is priced, so invoices show every quantity
        assert {c.meter for c in product.charges} == set(METERS)


def test_the_corrections_benchmark_corrects_one_event_in_a_hundred(tmp_path: Path) -> None:
    """bench.corrections' input: every correction names a distinct stored event, half void
    and half amend, and usagebill applies all of them."""
    from bench.corrections import corrections_file
    from usagebill.ingest import ingest
    from usagebill.store import Store

    events = data.events_file(TINY, tmp_path, log=False)
    fixes = corrections_file(events, tmp_path)
    lines = [json.loads(x) for x in fixes.read_text(encoding="utf-8").splitlines()]
    targets_ = [x.get("void") or x.get("amend") for x in lines]
    assert len(targets_) == len(set(targets_)) == TINY // 100
    assert sum("void" in x for x in lines) == sum("amend" in x for x in lines)
    with Store.open(tmp_path / "u.duckdb") as store:
        ingest(store, [str(events), str(fixes)])
        statuses = store.query("SELECT count(*) FROM corrections WHERE target_run IS NOT NULL")
    assert statuses == [(TINY // 100,)]
