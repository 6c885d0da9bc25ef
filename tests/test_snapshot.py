"""Snapshots: canonical files, checks that pass on their own output and fail, naming the
customer and the line, after any one change; and the project's own committed snapshot."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usagebill.render import canonical_json
from usagebill.snapshot import Difference, diff_periods, load_snapshot

from .conftest import DATA, ROOT, event
from .test_replay import ok, setup_logs

SAMPLE_SNAPSHOT = DATA / "sample-2026-10.snapshot.json"


# -- the project guards itself ----------------------------------------------------------------


def test_the_sample_invoices_match_the_committed_snapshot(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If this fails after an intended change, run from the repository root:
    usagebill replay sample_data --period 2026-10 -c meters.yaml.example \\
        --write tests/data/sample-2026-10.snapshot.json
    and commit the new snapshot with the change (its git diff is the review)."""
    monkeypatch.chdir(ROOT)  # the paths as the README's CI job gives them
    result = cli(
        "replay",
        "sample_data",
        "--period",
        "2026-10",
        "-c",
        "meters.yaml.example",
        "--check",
        "tests/data/sample-2026-10.snapshot.json",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.endswith(
        "usagebill: tests/data/sample-2026-10.snapshot.json: matches the 18 invoices of 2026-10\n"
    )


def test_the_committed_snapshot_is_canonical() -> None:
    text = SAMPLE_SNAPSHOT.read_text(encoding="utf-8")
    assert text == canonical_json(json.loads(text))
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "\r" not in text


# -- writing ----------------------------------------------------------------------------------


def test_write_is_canonical_and_the_same_from_replay_and_database(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    ok(cli("replay", str(logs), "-p", "2026-10", "--write", "snaps/replayed.json"))
    ok(cli("ingest", str(logs), "--db", "billing.duckdb"))
    written = ok(
        cli("snapshot", "write", "-p", "2026-10", "--db", "billing.duckdb", "snaps/db.json")
    )
    assert written.stderr.endswith("usagebill: wrote snaps/db.json: 3 invoices\n")
    replayed = (tmp_path / "snaps" / "replayed.json").read_text()
    assert replayed == (tmp_path / "snaps" / "db.json").read_text()
    # The same document as `--format json`, with sorted keys, indent 2 and a final newline.
    shown = ok(cli("replay", str(logs), "-p", "2026-10", "-f", "json")).stdout
    assert replayed == canonical_json(json.loads(shown))
    assert replayed.startswith('{\n  "adjustments": [],\n  "currency": "USD",\n')
    # Written atomically: no temporary file is left beside them.
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == ["db.json", "replayed.json"]


def test_several_periods_in_one_snapshot(cli: Any, tmp_path: Path) -> None:
    logs, _ = setup_logs(tmp_path)
    ok(cli("replay", str(logs), "-p", "2026-09..2026-10", "--write", "q.json"))
    doc = json.loads((tmp_path / "q.json").read_text())
    assert list(doc) == ["periods"]
    assert [p["period"] for p in doc["periods"]] == ["2026-09", "2026-10"]
    ok(cli("replay", str(logs), "-p", "2026-10", "-p", "2026-09", "--check", "q.json"))
    fewer = ok(cli("replay", str(logs), "-p", "2026-10", "--check", "q.json"), 1)
    assert "  2026-09: period in the snapshot but not in these invoices" in fewer.stderr
    more = ok(cli("replay", str(logs), "-p", "2026-08..2026-10", "--check", "q.json"), 1)
    assert "  2026-08: period not in the snapshot" in more.stderr


# -- checking ---------------------------------------------------------------------------------


@pytest.fixture
def snapshot(cli: Any, tmp_path: Path) -> tuple[Path, Path]:
    """Logs and their October snapshot, also ingested into billing.duckdb."""
    logs, _ = setup_logs(tmp_path)
    ok(cli("ingest", str(logs), "--db", "billing.duckdb"))
    ok(cli("snapshot", "write", "--period", "2026-10", "--db", "billing.duckdb", "snap.json"))
    return logs, tmp_path / "snap.json"


def test_a_check_passes_on_its_own_output(cli: Any, snapshot: tuple[Path, Path]) -> None:
    logs, snap = snapshot
    by_db = ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", str(snap)))
    assert by_db.stdout == ""
    assert by_db.stderr.endswith(f"usagebill: {snap}: matches the 3 invoices of 2026-10\n")
    by_replay = ok(cli("replay", str(logs), "-p", "2026-10", "--check", str(snap)))
    assert by_replay.stdout == ""
    assert by_replay.stderr.endswith(f"usagebill: {snap}: matches the 3 invoices of 2026-10\n")


def _edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(canonical_json(doc))


def _invoice(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(i for i in doc["invoices"] if i["customer_id"] == cid)


def _line(doc: dict[str, Any], cid: str, meter: str) -> dict[str, Any]:
    return next(x for x in _invoice(doc, cid)["lines"] if x.get("meter_id") == meter)


def _bump(doc: dict[str, Any], cid: str, meter: str, field: str, by: str) -> None:
    line = _line(doc, cid, meter)
    line[field] = str(Decimal(line[field]) + Decimal(by))


# Each edit of the snapshot, and a line of the diff the check must print for it. The snapshot
# is what was expected; the invoices are what is actual.
EDITS = {
    "amount": (
        lambda d: _bump(d, "cus_a", "data_gb", "amount", "-0.40"),
        "  2026-10 cus_a usage data_gb amount: expected 2.10, actual 2.50 (+0.40)",
    ),
    "quantity": (
        lambda d: _bump(d, "cus_a", "data_gb", "quantity", "1"),
        "  2026-10 cus_a usage data_gb quantity: expected 3.5, actual 2.5 (-1.0)",
    ),
    "credit figure": (
        lambda d: _invoice(d, "cus_a")["lines"][-1].update(consumed="99"),
        "  2026-10 cus_a credit ai_credits consumed: expected 99, actual 12.34 (-86.66)",
    ),
    "line removed from the snapshot": (
        lambda d: _invoice(d, "cus_a")["lines"].pop(1),
        "  2026-10 cus_a usage api_calls: line added (amount 0.00)",
    ),
    "line added to the snapshot": (
        lambda d: _invoice(d, "cus_b")["lines"].append(
            {"kind": "usage", "meter_id": "sms", "amount": "1.00", "quantity": "100"}
        ),
        "  2026-10 cus_b usage sms: line removed (amount 1.00)",
    ),
    "invoice removed from the snapshot": (
        lambda d: d["invoices"].pop(0),
        "  2026-10 cus_a: invoice added (total 13.67)",
    ),
    "invoice added to the snapshot": (
        lambda d: d["invoices"].append({**copy.deepcopy(d["invoices"][0]), "customer_id": "cus_z"}),
        "  2026-10 cus_z: invoice removed (total 13.67)",
    ),
    "total": (
        lambda d: _invoice(d, "cus_c").update(total="1.00"),
        "  2026-10 cus_c total: expected 1.00, actual 10.00 (+9.00)",
    ),
    "warning": (
        lambda d: d["warnings"].clear(),
        "  2026-10 cus_nobody: warning added: 1 event from customer 'cus_nobody'",
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_check_fails_naming_customer_and_line(
    cli: Any, snapshot: tuple[Path, Path], edit: str
) -> None:
    logs, snap = snapshot
    change, expected_line = EDITS[edit]
    _edit(snap, change)
    for args in (
        ["snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", str(snap)],
        ["replay", str(logs), "-p", "2026-10", "--check", str(snap)],
    ):
        result = ok(cli(*args), 1)
        assert result.stdout == ""
        assert f"usagebill: {snap}: " in result.stderr
        assert "difference" in result.stderr
        assert expected_line in result.stderr, result.stderr
    # The hint is the command that rewrites the snapshot, ready to paste.
    assert (
        f"usagebill: If the change is intended, rewrite the snapshot: usagebill replay {logs} "
        f"--period 2026-10 --write {snap}\n"
    ) in result.stderr


def test_the_rewrite_hint_keeps_strict(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "meters.yaml").write_text(
        "version: 1\nmeters:\n  - {id: calls, event_name: api.call, aggregation: {type: count}}\n"
        "products:\n  - {id: p, charges: [{meter: calls, unit_price: '0.01'}]}\n"
        "customers:\n  - {id: cus_1, product: p}\n"
    )
    config, logs, snap = tmp_path / "meters.yaml", tmp_path / "e.jsonl", tmp_path / "s.json"
    logs.write_text(json.dumps(event("e1", "cus_1")) + "\n")
    common = [str(logs), "-p", "2026-10", "-c", str(config), "--strict"]
    ok(cli("replay", *common, "--write", str(snap)))
    logs.write_text(json.dumps(event("e1", "cus_1")) + "\n" + json.dumps(event("e2", "cus_1")))
    result = ok(cli("replay", *common, "--check", str(snap)), 1)
    assert (f"usagebill replay {logs} --period 2026-10 -c {config} --strict --write {snap}"
            in result.stderr)


def test_the_whole_diff_reads_like_a_ci_log(cli: Any, snapshot: tuple[Path, Path]) -> None:
    _logs, snap = snapshot

    def change(d: dict[str, Any]) -> None:
        _bump(d, "cus_a", "data_gb", "amount", "0.10")
        _invoice(d, "cus_a")["total"] = "13.77"

    _edit(snap, change)
    result = ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", str(snap)), 1)
    assert result.stderr.splitlines()[-4:] == [
        f"usagebill: {snap}: 2 differences from the snapshot (expected: the snapshot; "
        "actual: the invoices of 2026-10)",
        "  2026-10 cus_a usage data_gb amount: expected 2.60, actual 2.50 (-0.10)",
        "  2026-10 cus_a total: expected 13.77, actual 13.67 (-0.10)",
        "usagebill: If the change is intended, rewrite the snapshot: usagebill snapshot write "
        f"--period 2026-10 --db billing.duckdb {snap}",
    ]


def test_a_missing_snapshot_is_a_usage_error(cli: Any, snapshot: tuple[Path, Path]) -> None:
    logs, _ = snapshot
    result = ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", "no.json"), 2)
    assert result.stderr == (
        "usagebill: no.json: no such snapshot\n"
        "usagebill: Write it first: usagebill snapshot write --period 2026-10 "
        "--db billing.duckdb no.json\n"
    )
    result = ok(cli("replay", str(logs), "-p", "2026-10", "--check", "no.json"), 2)
    assert result.stderr == (
        "usagebill: no.json: no such snapshot\n"
        f"usagebill: Write it first: usagebill replay {logs} --period 2026-10 --write no.json\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"period": "2026-10", ', "not.json:1:23: not a usagebill snapshot: Expecting"),
        ("[1, 2]", "not.json: not a usagebill snapshot (expected an invoice document"),
        ('{"periods": [{"period": "2026-10"}]}', "not.json: not a usagebill snapshot"),
        ('{"period": "2026-10", "invoices": null}', "not.json: not a usagebill snapshot"),
        ('{"period": "2026-10", "invoices": {}}', "not.json: not a usagebill snapshot"),
        ('{"periods": []}', "not.json: not a usagebill snapshot"),
    ],
)
def test_a_malformed_snapshot_is_a_usage_error(
    cli: Any, snapshot: tuple[Path, Path], text: str, message: str
) -> None:
    Path("not.json").write_text(text)
    result = ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", "not.json"), 2)
    assert result.stderr.startswith(f"usagebill: {message}")
    assert "usagebill: Rewrite it: usagebill snapshot write" in result.stderr


def test_a_snapshot_kept_beside_the_logs_is_not_read_as_events(
    cli: Any, snapshot: tuple[Path, Path]
) -> None:
    logs, _snap = snapshot
    inside = logs / "2026-10.json"  # a directory scan would take it for an event file
    written = ok(cli("replay", str(logs), "-p", "2026-10", "--write", str(inside)))
    checked = ok(cli("replay", str(logs), "-p", "2026-10", "--check", str(inside)))
    for result in (written, checked):
        assert "read 16 lines from 3 files: 14 accepted, 0 duplicates, 2 rejected" in (
            result.stderr)  # the logs' own two bad lines, nothing of the snapshot


def test_a_snapshot_path_without_a_file_name_is_a_usage_error(
    cli: Any, snapshot: tuple[Path, Path]
) -> None:
    result = ok(cli("snapshot", "write", "-p", "2026-10", "--db", "billing.duckdb", ""), 2)
    assert "cannot write the snapshot (give a file name, not a folder)" in result.stderr


def test_a_snapshot_need_not_be_canonical_to_be_checked(
    cli: Any, snapshot: tuple[Path, Path]
) -> None:
    """Values are compared, not bytes: `replay --format json > FILE` is a valid snapshot."""
    logs, _snap = snapshot
    shown = ok(cli("replay", str(logs), "-p", "2026-10", "-f", "json")).stdout
    Path("shown.json").write_text(shown)
    ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", "shown.json"))


def test_snapshots_honour_closed_periods(cli: Any, snapshot: tuple[Path, Path]) -> None:
    """From the database a snapshot is what `invoice` prints: once a period is closed, its
    issued invoices with status "closed" and the adjustments for what arrived since."""
    _logs, snap = snapshot
    ok(cli("close", "-p", "2026-10", "--db", "billing.duckdb"))
    closed = ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", str(snap)), 1)
    assert "  2026-10 status: expected draft, actual closed" in closed.stderr
    Path("late.jsonl").write_text(
        '{"event_id": "late", "customer_id": "cus_a", "event_name": "api.call", '
        '"timestamp": "2026-10-30T00:00:00Z"}\n'
    )
    ok(cli("ingest", "late.jsonl", "--db", "billing.duckdb"))
    late = ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", str(snap)), 1)
    assert "  2026-10 cus_a: adjustment added (total_difference 0.10)" in late.stderr
    ok(cli("snapshot", "write", "-p", "2026-10", "--db", "billing.duckdb", "closed.json"))
    doc = json.loads(Path("closed.json").read_text())
    assert doc["status"] == "closed"
    assert doc["adjustments"][0]["lines"][0]["difference"] == "0.10"
    ok(cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", "closed.json"))
    # An adjustment that moves is named down to its line.
    _edit(Path("closed.json"), lambda d: d["adjustments"][0]["lines"][0].update(current="0.60"))
    moved = ok(
        cli("snapshot", "check", "-p", "2026-10", "--db", "billing.duckdb", "closed.json"), 1
    )
    assert "  2026-10 cus_a adjustment usage api_calls current: expected 0.60, actual 0.10" in (
        moved.stderr
    )


# -- the diff, property-tested on the sample snapshot -----------------------------------------

SAMPLE = load_snapshot(SAMPLE_SNAPSHOT, "usagebill snapshot write")


def _label(line: dict[str, Any]) -> str:
    ident = line.get("meter_id") or line.get("credit_id")
    return f"{line['kind']} {ident}" if ident else line["kind"]


NUMERIC = ("amount", "quantity", "free_units", "billable_units", "credits", "granted", "consumed")


@st.composite
def one_change(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    """The sample document with one amount, quantity, line or invoice changed, added or
    removed, and the words the diff must contain to name it."""
    doc = copy.deepcopy(SAMPLE["2026-10"])
    invoices = doc["invoices"]
    i = draw(st.integers(0, len(invoices) - 1))
    inv = invoices[i]
    cid = inv["customer_id"]
    kind = draw(
        st.sampled_from(["number", "remove line", "add line", "remove invoice", "add invoice"])
    )
    if kind == "remove invoice":
        invoices.pop(i)
        return doc, f"2026-10 {cid}: invoice", "removed"
    if kind == "add invoice":
        new = {**copy.deepcopy(inv), "customer_id": cid + "_new"}
        invoices.append(new)
        return doc, f"2026-10 {cid}_new: invoice", "added"
    j = draw(st.integers(0, len(inv["lines"]) - 1))
    line = inv["lines"][j]
    where = f"2026-10 {cid} {_label(line)}"
    if kind == "remove line":
        inv["lines"].pop(j)
        return doc, where + ": line", "removed"
    if kind == "add line":
        meter = draw(st.sampled_from(["new_meter", "other_meter"]))
        inv["lines"].insert(
            j, {"kind": "usage", "meter_id": meter, "description": "x", "amount": "1.00"}
        )
        return doc, f"2026-10 {cid} usage {meter}: line", "added"
    field = draw(st.sampled_from([f for f in NUMERIC if f in line]))
    delta = draw(st.sampled_from(["0.01", "-0.01", "1", "1000", "0.001"]))
    line[field] = str(Decimal(line[field]) + Decimal(delta))
    return doc, f"{where} {field}: expected", f"actual {line[field]}"


@settings(max_examples=200, deadline=None)
@given(one_change())
def test_any_one_change_is_found_and_named(change: tuple[dict[str, Any], str, str]) -> None:
    changed, where, what = change
    # The changed document as the invoices (actual), the sample as the snapshot (expected).
    forward = [str(d) for d in diff_periods(SAMPLE, {"2026-10": changed})]
    assert any(where in d and what in d for d in forward), forward
    # And the other way round: an addition reads as a removal, a number swaps sides.
    backward = [str(d) for d in diff_periods({"2026-10": changed}, SAMPLE)]
    assert len(backward) == len(forward)
    opposite = {"added": "removed", "removed": "added"}.get(what)
    if opposite:
        assert any(where in d and opposite in d for d in backward), backward
    else:
        assert any(where in d and what.replace("actual", "expected") in d for d in backward)


def test_no_change_no_difference() -> None:
    assert diff_periods(SAMPLE, copy.deepcopy(SAMPLE)) == []


def test_differences_read_plainly() -> None:
    where = ("2026-10", "cus_abc", "usage", "api_calls")
    assert (
        str(Difference(where, "amount", "30.00", "30.40"))
        == "2026-10 cus_abc usage api_calls amount: expected 30.00, actual 30.40 (+0.40)"
    )
    assert str(Difference(where, "description", "API calls", "Calls")) == (
        "2026-10 cus_abc usage api_calls description: expected API calls, actual Calls"
    )
    absent = Difference(where, "credits", actual="28.01")
    assert str(absent) == "2026-10 cus_abc usage api_calls credits: expected (absent), actual 28.01"
    assert str(Difference(("2026-10", "cus_abc"), note="invoice removed (total 81.00)")) == (
        "2026-10 cus_abc: invoice removed (total 81.00)"
    )
    assert str(Difference(where, "events", 3, None)) == (
        "2026-10 cus_abc usage api_calls events: expected 3, actual null"
    )


def test_warnings_are_matched_whole_message_included() -> None:
    """A skipped-events warning keeps its reason only in its message ('missing property' ->
    'is not a number'): a check must fail whenever rewriting the snapshot would change it."""
    doc = copy.deepcopy(SAMPLE)
    warning = next(w for w in doc["2026-10"]["warnings"] if w["kind"] == "unknown_customer")
    warning["message"] = warning["message"].replace("not billed", "billed")
    assert [str(d).split(":")[:2] for d in diff_periods(SAMPLE, doc)] == [
        ["2026-10 cus_unknown", " warning removed"],
        ["2026-10 cus_unknown", " warning added"],
    ]
    doc = copy.deepcopy(SAMPLE)
    next(w for w in doc["2026-10"]["warnings"] if w["kind"] == "unknown_customer")["events"] += 1
    assert len(diff_periods(SAMPLE, doc)) == 2


def test_an_id_with_a_newline_stays_on_its_line() -> None:
    where = ("2026-10", "x\nusagebill: snap.json: matches")
    shown = str(Difference(where, "total", "1.00", "2.00"))
    assert "\n" not in shown and shown.startswith("2026-10 x\\nusagebill: snap.json")
    assert str(Difference(where, note="invoice added")).count("\n") == 0


def test_a_difference_of_large_amounts_is_exact() -> None:
    big = "99999999999999999999999999000000000000.00"
    assert str(Difference(("2026-10", "a"), "total", "99999999999999999999999999.00", big)) == (
        f"2026-10 a total: expected 99999999999999999999999999.00, actual {big} "
        "(+99999999999899999999999999000000000001.00)"
    )
