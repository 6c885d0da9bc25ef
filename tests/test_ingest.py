"""Ingest (SPEC §1, §6): every reject reason with its physical line number, duplicates
identical and conflicting (in one file, across the files of one run, across runs), `.gz`,
directories, globs, stdin, `--strict`, re-ingest, and the `rejects` listing."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from usagebill.errors import DataError, InputError
from usagebill.store import Store

from .conftest import event, write_events


def line(e: dict[str, Any]) -> str:
    return json.dumps(e)


def rejects(store: Store) -> list[tuple[str, int, str]]:
    """(file name, line, reason) of every reject, in order."""
    return [(Path(r["file"]).name, r["line"], r["reason"]) for r in store.rejects()]


def stored(store: Store) -> list[tuple]:
    return store.query("SELECT event_id, customer_id, file, line FROM events ORDER BY event_id")


def counts(result: Any) -> tuple[int, int, int, int]:
    return result.read, result.accepted, result.duplicates, result.rejected


def state(db: Path | Store) -> list[list[tuple]]:
    """Everything an ingest may write, to compare before and after."""
    con = db.con if isinstance(db, Store) else duckdb.connect(str(db), read_only=True)
    return [
        con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        for table in ("events", "rejects", "runs", "corrections")
    ]


GOOD = line(event("ok-1"))
LONG_ID = "x" * 256

# (line text, reason); the lines go into one file between good ones and blank lines.
REASONS = [
    ("{not json", "invalid JSON"),
    ('{"event_id": "a", "customer_id": "c", "event_name": "n",}x', "invalid JSON"),
    ("[1, 2, 3]", "not a JSON object"),
    ("42", "not a JSON object"),
    ('"just a string"', "not a JSON object"),
    ("null", "not a JSON object"),
    ('{"customer_id": "c", "event_name": "n"}', "missing event_id"),
    (
        '{"event_id": 7, "customer_id": "c", "event_name": "n"}',
        "event_id must be a string (the idempotency key)",
    ),
    ('{"event_id": "", "customer_id": "c", "event_name": "n"}', "event_id is empty"),
    ('{"event_id": " \\t ", "customer_id": "c", "event_name": "n"}', "event_id is empty"),
    (
        '{"event_id": "' + LONG_ID + '", "customer_id": "c", "event_name": "n"}',
        "event_id is longer than 255 characters",
    ),
    ('{"event_id": "b", "event_name": "n"}', "missing customer_id"),
    (
        '{"event_id": "b", "customer_id": ["c"], "event_name": "n"}',
        "customer_id must be a string (who used it)",
    ),
    ('{"event_id": "b", "customer_id": "", "event_name": "n"}', "customer_id is empty"),
    ('{"event_id": "c", "customer_id": "c"}', "missing event_name"),
    (
        '{"event_id": "c", "customer_id": "c", "event_name": null}',
        "missing event_name",
    ),
    (
        '{"event_id": "c", "customer_id": "c", "event_name": {"a": 1}}',
        "event_name must be a string (what happened)",
    ),
    ('{"event_id": "c", "customer_id": "c", "event_name": "  "}', "event_name is empty"),
    (
        '{"event_id": "d", "customer_id": "c", "event_name": "n", "timestamp": 1759000000}',
        "timestamp must be an ISO 8601 string",
    ),
    (
        '{"event_id": "d", "customer_id": "c", "event_name": "n", "timestamp": "yesterday"}',
        'unparseable timestamp "yesterday": use ISO 8601, e.g. 2026-10-05T14:03:00Z',
    ),
    (
        '{"event_id": "d", "customer_id": "c", "event_name": "n", "timestamp": "2026-02-30"}',
        'unparseable timestamp "2026-02-30": use ISO 8601, e.g. 2026-10-05T14:03:00Z',
    ),
    (
        '{"event_id": "d", "customer_id": "c", "event_name": "n", "timestamp": "0000-01-01"}',
        "timestamp out of range (years 0001 to 9999)",
    ),
    (
        '{"event_id": "e", "customer_id": "c", "event_name": "n", "metadata": [1]}',
        "metadata must be a JSON object",
    ),
    (
        '{"event_id": "e", "customer_id": "c", "event_name": "n", "metadata": "{}"}',
        "metadata must be a JSON object",
    ),
    (
        '{"event_id": "e", "customer_id": "c", "event_name": "n", "metadata": {"v": NaN}}',
        "metadata has NaN or Infinity, which are not JSON numbers",
    ),
]

# Timestamps DuckDB's cast alone takes (and for +99:99 applies: four days off) but that are not
# ISO 8601: offsets beyond 23:59, zone names, fields not written in full.
REASONS += [
    (
        line({"event_id": "d", "customer_id": "c", "event_name": "n", "timestamp": ts}),
        f'unparseable timestamp "{ts}": use ISO 8601, e.g. 2026-10-05T14:03:00Z',
    )
    for ts in ("2026-10-05T14:03:00+99:99", "2026-10-05T14:03:00+24:00",
               "2026-10-05T14:03:00 Europe/Berlin", "2026-10-5T1:3:0Z")
]

def test_every_reject_reason_with_its_physical_line_number(store: Store, tmp_path: Path) -> None:
    # good, blank, bad, good, bad, blank, ... : blank lines count in the numbering
    text, expected, n = "", [], 0
    for i, (bad, reason) in enumerate(REASONS):
        text += line(event(f"good-{i}")) + "\n" + ("\n" if i % 2 else "  \t\n") + bad + "\n"
        n += 3
        expected.append(("mixed.jsonl", n, reason))
    (tmp_path / "mixed.jsonl").write_text(text + GOOD + "\n")
    result = store.ingest([str(tmp_path / "mixed.jsonl")])
    assert rejects(store) == expected
    assert counts(result) == (2 * len(REASONS) + 1, len(REASONS) + 1, 0, len(REASONS))
    # the raw text is kept exactly as it was in the file
    assert [r["raw"] for r in store.rejects()] == [bad for bad, _ in REASONS]


def test_line_numbers_are_physical_whatever_the_line_endings(store: Store, tmp_path: Path) -> None:
    body = b"\n\r\n   \n" + GOOD.encode() + b"\r\n\r\n{broken\r\n" + line(event("b")).encode()
    (tmp_path / "crlf.jsonl").write_bytes(body)  # no final newline either
    result = store.ingest([str(tmp_path / "crlf.jsonl")])
    assert rejects(store) == [("crlf.jsonl", 6, "invalid JSON")]
    assert [(e, line_no) for e, _, _, line_no in stored(store)] == [("b", 7), ("ok-1", 4)]
    assert counts(result) == (3, 2, 0, 1)


# -- duplicates -------------------------------------------------------------------------------


def test_an_identical_repeat_in_one_file_is_a_duplicate(store: Store, ingest: Any) -> None:
    result = ingest([event("e1"), event("e2"), event("e1")], name="a.jsonl")
    assert counts(result) == (3, 2, 1, 0)
    assert [(e, ln) for e, _, _, ln in stored(store)] == [("e1", 1), ("e2", 2)]
    assert rejects(store) == []


def test_a_different_repeat_in_one_file_is_rejected_and_names_the_first(
    store: Store, ingest: Any, tmp_path: Path
) -> None:
    result = ingest([event("e1"), "", event("e1", customer="cus_b")], name="a.jsonl")
    assert counts(result) == (2, 1, 0, 1)
    assert rejects(store) == [
        (
            "a.jsonl",
            3,
            f"conflicting duplicate of {tmp_path / 'a.jsonl'}:1 "
            "(event_id e1 was first sent with other content)",
        )
    ]
    assert store.rejects()[0]["raw"] == line(event("e1", customer="cus_b"))
    assert stored(store)[0][1] == "cus_a"  # the first version stands


@pytest.mark.parametrize(
    "change",
    [
        {"customer": "cus_b"},
        {"name": "other.event"},
        {"ts": "2026-10-05T12:00:01Z"},
        {"ts": None},
        {"n": 2},
    ],
)
def test_any_change_of_content_is_a_conflict(
    store: Store, ingest: Any, change: dict[str, Any]
) -> None:
    ingest([event("e1", n=1)])
    result = ingest([event("e1", **{"n": 1, **change})])
    assert counts(result) == (1, 0, 0, 1)
    assert rejects(store)[0][2].startswith("conflicting duplicate of ")


def test_the_same_instant_in_another_offset_is_the_same_event(store: Store, ingest: Any) -> None:
    ingest([event("e1", ts="2026-10-05T12:00:00Z")])
    result = ingest([event("e1", ts="2026-10-05T14:00:00+02:00")])
    assert counts(result) == (1, 0, 1, 0)


def test_events_without_timestamps_repeat_as_duplicates(store: Store, ingest: Any) -> None:
    ingest([event("e1", ts=None)])
    result = ingest([event("e1", ts=None)])
    assert counts(result) == (1, 0, 1, 0)


def test_the_same_metadata_written_otherwise_is_a_duplicate(store: Store, tmp_path: Path) -> None:
    head = '{"event_id":"e1","customer_id":"c","event_name":"n","metadata":'
    (tmp_path / "a.jsonl").write_text(
        head
        + '{"a":1,"b":{"c":[2.5,"x"]}}}\n'
        + head
        + '{"b":{"c":[2.50,"x"]},"a":1.0}}\n'  # keys in another order, 1.0 for 1
        + head
        + ' { "a" : 1e0 , "b" : { "c" : [ 25e-1 , "x" ] } } }\n'
        + head
        + '{"a":true,"b":{"c":[2.5,"x"]}}}\n'  # true is not 1
        + head
        + '{"a":"1","b":{"c":[2.5,"x"]}}}\n'  # "1" is not 1
        + head
        + '{"a":1,"b":{"c":["x",2.5]}}}\n'  # arrays keep their order
    )
    result = store.ingest([str(tmp_path / "a.jsonl")])
    assert counts(result) == (6, 1, 2, 3)
    assert [line for _, line, _ in rejects(store)] == [4, 5, 6]


def test_repeats_across_the_files_of_one_run_keep_the_first_in_name_order(
    store: Store, tmp_path: Path
) -> None:
    b = write_events(tmp_path / "b.jsonl", [event("e1", customer="cus_b"), event("e2")])
    a = write_events(tmp_path / "a.jsonl", [event("x"), event("e1"), event("e2")])
    result = store.ingest([str(b), str(a)])  # given in any order: read in name order
    assert counts(result) == (5, 3, 1, 1)
    assert rejects(store) == [
        (
            "b.jsonl",
            1,
            f"conflicting duplicate of {a}:2 (event_id e1 was first sent with other content)",
        )
    ]
    assert [(e, c, Path(f).name, ln) for e, c, f, ln in stored(store)] == [
        ("e1", "cus_a", "a.jsonl", 2),
        ("e2", "cus_a", "a.jsonl", 3),
        ("x", "cus_a", "a.jsonl", 1),
    ]


@pytest.mark.parametrize("spelling", ["b", "./b/", "{abs}/b", "a/../b", "b/*.jsonl"])
def test_how_a_path_is_written_never_changes_which_copy_is_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    # Sorted as typed, `/abs/b` came before `a/` and its copy of e1 won instead.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_events(tmp_path / "a" / "early.jsonl", [event("e1", customer="cus_a")])
    write_events(tmp_path / "b" / "late.jsonl", [event("e1", customer="cus_b")])
    with Store.open(None) as store:
        b = spelling.format(abs=tmp_path)
        result = store.ingest([b, "a", "a/early.jsonl", str(tmp_path / "a" / "early.jsonl")])
        assert counts(result) == (2, 1, 0, 1)  # early.jsonl, named three ways, is read once
        assert [(e, c) for e, c, *_ in stored(store)] == [("e1", "cus_a")]


def test_links_never_change_which_copy_is_first_or_which_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sorted by the first spelling's path, a link to z.jsonl named b_link came before m.jsonl
    # and its copy won; `dirlink/../a.jsonl` read ./a.jsonl, not where the link leads.
    monkeypatch.chdir(tmp_path)
    write_events(tmp_path / "z.jsonl", [event("e1", customer="cus_z")])
    write_events(tmp_path / "m.jsonl", [event("e1", customer="cus_m")])
    (tmp_path / "b_link.jsonl").symlink_to(tmp_path / "z.jsonl")
    (tmp_path / "other" / "sub").mkdir(parents=True)
    write_events(tmp_path / "other" / "a.jsonl", [event("there")])
    (tmp_path / "w").mkdir()
    write_events(tmp_path / "w" / "a.jsonl", [event("here")])
    (tmp_path / "w" / "dirlink").symlink_to(tmp_path / "other" / "sub")
    for order in (["b_link.jsonl", "m.jsonl", "z.jsonl"], ["z.jsonl", "m.jsonl", "b_link.jsonl"]):
        with Store.open(None) as store:
            store.ingest(order)
            assert [(e, c) for e, c, *_ in stored(store)] == [("e1", "cus_m")]
    with Store.open(None) as store:
        store.ingest(["w/dirlink/../a.jsonl"])
        assert [e for e, *_ in stored(store)] == ["there"]


def test_repeats_across_runs(store: Store, tmp_path: Path) -> None:
    first = write_events(tmp_path / "first.jsonl", [event("e1"), event("e2")])
    store.ingest([str(first)])
    later = write_events(
        tmp_path / "later.jsonl", [event("e2"), event("e1", customer="cus_z"), event("e3")]
    )
    result = store.ingest([str(later)])
    assert counts(result) == (3, 1, 1, 1)
    assert rejects(store) == [
        (
            "later.jsonl",
            2,
            f"conflicting duplicate of {first}:1 (event_id e1 was first sent with other content)",
        )
    ]
    assert [e for e, *_ in stored(store)] == ["e1", "e2", "e3"]


def test_iso_8601_timestamps_in_their_usual_forms(store: Store, ingest: Any) -> None:
    at = dt.datetime(2026, 10, 5, 14, 3, tzinfo=dt.timezone.utc)
    forms = {
        "2026-10-05T14:03:00Z": at,
        "2026-10-05T16:03:00+02:00": at,
        "2026-10-05T09:03:00-0500": at,
        "2026-10-05T15:03:00+01": at,
        "2026-10-05T14:03:00.250Z": at + dt.timedelta(milliseconds=250),
        "2026-10-05 14:03:00": at,  # no offset: UTC
        "2026-10-05T14:03": at,
        "2026-10-05": at.replace(hour=0, minute=0),
    }
    result = ingest([event(f"e{i}", ts=ts) for i, ts in enumerate(forms)])
    assert counts(result) == (8, 8, 0, 0)
    got = dict(store.query("SELECT event_id, ts FROM events"))
    assert [got[f"e{i}"] for i in range(len(forms))] == list(forms.values())


def test_repeats_of_a_stored_event_are_compared_with_the_stored_version(
    store: Store, tmp_path: Path
) -> None:
    first = write_events(tmp_path / "first.jsonl", [event("k1", n=1)])
    store.ingest([str(first)])
    # Both changed repeats conflict with the stored event (the second is not a duplicate of
    # the first, which was rejected); the last is the stored one written otherwise.
    later = write_events(tmp_path / "later.jsonl", [event("k1", n=2), event("k1", n=2),
                                                    event("k1", n=1.0)])
    assert counts(store.ingest([str(later)])) == (3, 0, 1, 2)
    conflict = f"conflicting duplicate of {first}:1 (event_id k1 was first sent with other content)"
    assert rejects(store) == [("later.jsonl", 1, conflict), ("later.jsonl", 2, conflict)]


def test_a_refused_correction_is_no_first_version_for_its_repeats(
    store: Store, ingest: Any
) -> None:
    result = ingest([
        event("t1"),
        {"event_id": "f1", "void": "t1"},
        {"event_id": "f2", "void": "t1"},  # t1 is f1's: refused
        {"event_id": "f2", "void": "t1"},  # refused again, not a duplicate of a refused line
        {"event_id": "f1", "void": "t1"},  # a retry of f1: a duplicate
    ])
    assert counts(result) == (5, 2, 1, 2)
    name, path = rejects(store)[0][0], store.rejects()[0]["file"]
    refused = f"t1 is already corrected by f1 ({path}:2)"
    assert rejects(store) == [(name, 3, refused), (name, 4, refused)]
    # refused corrections keep their raw text like every reject
    assert [r["raw"] for r in store.rejects()] == ['{"event_id": "f2", "void": "t1"}'] * 2


def test_a_correction_of_a_correction_names_the_first_line_of_its_target(
    store: Store, tmp_path: Path
) -> None:
    first = write_events(tmp_path / "a.jsonl", [event("t1"), {"event_id": "f1", "void": "t1"}])
    write_events(tmp_path / "b.jsonl", [{"event_id": "f1", "void": "t1"}])  # a duplicate
    write_events(tmp_path / "c.jsonl", [{"event_id": "f7", "void": "f1"}])
    store.ingest([str(tmp_path / n) for n in ("a.jsonl", "b.jsonl", "c.jsonl")])
    assert rejects(store) == [
        ("c.jsonl", 1, f"cannot correct a correction: f1 is itself a correction ({first}:2)")]


def test_a_correction_sent_again_with_its_metadata_written_otherwise_is_a_duplicate(
    store: Store, ingest: Any
) -> None:
    amend = {"event_id": "fix", "amend": "t1", "metadata": {"v": 5, "w": 1}, "reason": "m"}
    ingest([event("t1"), amend])
    again = [{**amend, "metadata": {"w": 1, "v": 5}}, {**amend, "metadata": {"v": 5.0, "w": 1}},
             {**amend, "metadata": {"v": 6, "w": 1}}]
    assert counts(ingest(again)) == (3, 0, 2, 1)
    assert rejects(store)[0][1:] == (
        3, f"conflicting duplicate of {store.query('SELECT file FROM corrections')[0][0]}:2 "
        "(event_id fix was first sent with other content)")


def test_a_rejected_line_does_not_claim_its_event_id(store: Store, ingest: Any) -> None:
    ingest(['{"event_id": "e1", "customer_id": "c"}'])  # missing event_name: rejected
    result = ingest([event("e1")])
    assert counts(result) == (1, 1, 0, 0)


def test_ingesting_the_same_files_again_changes_nothing(store: Store, tmp_path: Path) -> None:
    files = [
        write_events(tmp_path / "a.jsonl", [event(f"a{i}", n=i) for i in range(50)] + ["{bad"]),
        write_events(tmp_path / "b.jsonl", [event(f"b{i}", ts=None) for i in range(20)]),
    ]
    first = store.ingest([str(f) for f in files])
    before = state(store)
    again = store.ingest([str(f) for f in reversed(files)])
    after = state(store)
    assert counts(first) == (71, 70, 0, 1)
    # the bad line is rejected again (and recorded for this run); nothing else changes
    assert counts(again) == (71, 0, 70, 1)
    assert after[0] == before[0]  # events: the same rows, the same run numbers
    assert after[1] == sorted(before[1] + [(*r[:4], 2) for r in before[1]])
    assert after[3] == before[3] and len(after[2]) == 2


# -- sources: .gz, directories, globs, stdin ---------------------------------------------------


def test_gzip_files_are_read_like_plain_ones(store: Store, tmp_path: Path) -> None:
    text = "\n".join([GOOD, "", "{bad", line(event("ok-2"))]) + "\n"
    (tmp_path / "e.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    result = store.ingest([str(tmp_path / "e.jsonl.gz")])
    assert counts(result) == (3, 2, 0, 1)
    assert rejects(store) == [("e.jsonl.gz", 3, "invalid JSON")]


def test_a_gzip_file_of_several_members(store: Store, tmp_path: Path) -> None:
    data = gzip.compress((GOOD + "\n").encode()) + gzip.compress(
        (line(event("ok-2")) + "\n{bad\n").encode()
    )
    (tmp_path / "m.jsonl.gz").write_bytes(data)
    result = store.ingest([str(tmp_path / "m.jsonl.gz")])
    assert counts(result) == (3, 2, 0, 1)
    assert rejects(store) == [("m.jsonl.gz", 3, "invalid JSON")]


def test_a_directory_is_searched_for_event_files(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "logs"
    (d / "2026" / "10").mkdir(parents=True)
    (d / ".hidden").mkdir()
    write_events(d / "2026" / "10" / "a.jsonl", [event("a")])
    write_events(d / "b.ndjson", [event("b")])
    (d / "c.json.gz").write_bytes(gzip.compress((line(event("c")) + "\n").encode()))
    write_events(d / "notes.txt", ["not events"])
    write_events(d / ".hidden" / "h.jsonl", [event("h")])
    write_events(d / ".dot.jsonl", [event("dot")])
    result = store.ingest([str(d)])
    assert sorted(Path(f).name for f in result.files) == ["a.jsonl", "b.ndjson", "c.json.gz"]
    assert [e for e, *_ in stored(store)] == ["a", "b", "c"]


def test_a_linked_folder_is_searched_once_and_a_broken_link_is_an_error(
    store: Store, tmp_path: Path
) -> None:
    # Linked folders were skipped without a word, and so was a link to a missing file.
    archive = tmp_path / "archive"
    archive.mkdir()
    write_events(archive / "old.jsonl", [event("old")])
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    write_events(logs / "new.jsonl", [event("new")])
    (logs / "archive").symlink_to(archive)
    (logs / "sub" / "up").symlink_to(logs)  # a loop: each folder is read once
    (logs / "sub" / "gone.jsonl").symlink_to(tmp_path / "missing.jsonl")
    with pytest.raises(InputError) as e:
        store.ingest([str(logs)])
    assert e.value.message == (
        f"{logs / 'sub' / 'gone.jsonl'}: a link that leads nowhere (missing, or a loop)")
    (logs / "sub" / "gone.jsonl").unlink()
    result = store.ingest([str(logs)])
    assert [Path(f).name for f in result.files] == ["old.jsonl", "new.jsonl"]
    assert [e for e, *_ in stored(store)] == ["new", "old"]


def test_a_linked_folder_that_leads_nowhere_is_an_error(store: Store, tmp_path: Path) -> None:
    # (an unmounted archive: its events were missing without a word)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_events(logs / "a.jsonl", [event("a")])
    (logs / "2026-09").symlink_to(tmp_path / "mnt" / "archive")
    with pytest.raises(InputError) as e:
        store.ingest([str(logs)])
    assert e.value.message == f"{logs / '2026-09'}: a link that leads nowhere (missing, or a loop)"
    assert state(store) == [[], [], [], []]


def test_a_glob_is_expanded_and_files_given_twice_are_read_once(
    store: Store, tmp_path: Path
) -> None:
    for name in ("x1.jsonl", "x2.jsonl", "y.jsonl"):
        write_events(tmp_path / name, [event(name)])
    result = store.ingest([str(tmp_path / "x*.jsonl"), str(tmp_path / "x1.jsonl")])
    assert [Path(f).name for f in result.files] == ["x1.jsonl", "x2.jsonl"]
    assert counts(result) == (2, 2, 0, 0)


def test_a_file_named_like_a_pattern_is_read_as_itself(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB reads every path as a pattern: `e[1].jsonl` read e1.jsonl (twice, as
    # duplicates) and lost its own events; `x*.jsonl` read two files as one; `~` was home.
    monkeypatch.chdir(tmp_path)
    names = ["e[1].jsonl", "e1.jsonl", "x*.jsonl", "x1.jsonl", "g?.jsonl", "~t.jsonl"]
    for name in names:
        write_events(tmp_path / name, [event(name)])
    (tmp_path / "z[2].jsonl.gz").write_bytes(gzip.compress((line(event("z")) + "\n").encode()))
    result = store.ingest([".", *names[:1], "~t.jsonl"])
    assert counts(result) == (7, 7, 0, 0)
    assert sorted((e, Path(f).name) for e, _, f, _ in stored(store)) == sorted(
        [(n, n) for n in names] + [("z", "z[2].jsonl.gz")])


def test_stdin_that_cannot_be_copied_stores_nothing_and_says_why(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("shutil.copyfileobj", full)
    result = cli("ingest", "--db", "u.duckdb", "-", input=(GOOD + "\n").encode())
    assert result.exit_code == 2 and "internal error" not in result.stderr
    assert "<stdin>: cannot copy the events to " in result.stderr
    assert "(No space left on device); nothing was stored" in result.stderr


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nothing-*.jsonl", "no files match this pattern"),
        (lambda p: p / "missing.jsonl", "no such file or directory"),
        (
            lambda p: (p / "empty-dir").mkdir() or p / "empty-dir",
            "no event files in this directory",
        ),
    ],
)
def test_inputs_that_name_nothing_fail_before_anything_is_stored(
    store: Store, tmp_path: Path, make: Any, message: str
) -> None:
    good = write_events(tmp_path / "good.jsonl", [event("e1")])
    with pytest.raises(InputError) as e:
        store.ingest([str(good), str(make(tmp_path))])
    assert message in e.value.message
    assert state(store) == [[], [], [], []]


def test_stdin_on_the_cli(tmp_path: Path, cli: Any) -> None:
    text = "\n".join([GOOD, "{bad", line(event("ok-2"))]) + "\n"
    result = cli("ingest", "--db", "u.duckdb", "-", input=text.encode())
    assert result.exit_code == 0, result.stderr
    assert "read 3 lines from 1 file: 2 accepted, 0 duplicates, 1 rejected" in result.stderr
    out = cli("rejects", "--db", "u.duckdb", "--format", "json")
    assert json.loads(out.stdout) == [
        {"file": "<stdin>", "line": 2, "reason": "invalid JSON", "raw": "{bad"}
    ]


def test_stdin_given_twice_is_read_once(tmp_path: Path, cli: Any) -> None:
    # like any input given twice; reading it again found it empty and lost the events
    result = cli("ingest", "--db", "u.duckdb", "-", "-", input=(GOOD + "\n").encode())
    assert result.exit_code == 0, result.stderr
    assert "read 1 line from 1 file: 1 accepted" in result.stderr


def test_a_directory_that_cannot_be_read_is_an_error_not_a_gap(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    write_events(d / "a.jsonl", [event("a")])
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:  # as for a folder without read permission (tests run as root)
        if isinstance(path, (str, os.PathLike)) and Path(path).name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InputError) as e:
        store.ingest([str(d)])
    assert e.value.lines() == [f"{d / 'sub'}: cannot read this directory (Permission denied)"]
    assert stored(store) == []


def test_an_unreadable_file_says_what_to_do(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = write_events(tmp_path / "locked.jsonl", [event("a")])
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(locked)  # as for chmod 000
                        and real_access(p, mode))
    with pytest.raises(InputError) as e:
        store.ingest([str(locked)])
    assert e.value.lines() == [f"{locked}: permission denied",
                               "Make the file readable for this user, or leave it out."]


def test_gzipped_stdin_on_the_cli(tmp_path: Path, cli: Any) -> None:
    data = gzip.compress((GOOD + "\n" + line(event("ok-2")) + "\n").encode())
    result = cli("ingest", "--db", "u.duckdb", "-", input=data)
    assert result.exit_code == 0, result.stderr
    assert "2 accepted" in result.stderr
    with Store.open("u.duckdb", read_only=True) as s:
        assert {f for _, _, f, _ in stored(s)} == {"<stdin>"}


# -- --strict ----------------------------------------------------------------------------------


def test_strict_stores_nothing_and_exits_1(tmp_path: Path, cli: Any) -> None:
    write_events(tmp_path / "before.jsonl", [event("old")])
    assert cli("ingest", "--db", "s.duckdb", "before.jsonl").exit_code == 0
    before = state(tmp_path / "s.duckdb")
    write_events(tmp_path / "new.jsonl", [event("e1"), "{bad", event("e2"), event("old", n=9)])
    result = cli("ingest", "--db", "s.duckdb", "--strict", "new.jsonl")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "usagebill: --strict: 2 lines would be rejected; nothing was stored",
        "  new.jsonl:2: invalid JSON",
        "  new.jsonl:4: conflicting duplicate of before.jsonl:1 (event_id old was first sent "
        "with other content)",
        "usagebill: Fix the lines, or ingest without --strict to keep them as rejects.",
    ]
    assert state(tmp_path / "s.duckdb") == before


def test_strict_with_clean_input_stores_as_usual(store: Store, ingest: Any, tmp_path: Path) -> None:
    path = write_events(tmp_path / "clean.jsonl", [event("e1"), event("e1"), event("e2")])
    result = store.ingest([str(path)], strict=True)
    assert counts(result) == (3, 2, 1, 0)
    with pytest.raises(DataError):
        store.ingest([str(write_events(tmp_path / "bad.jsonl", ["[]"]))], strict=True)
    assert len(stored(store)) == 2 and store.latest_run() == 1


# -- the rejects listing -----------------------------------------------------------------------


def test_rejects_as_json_is_a_list_of_file_line_reason_raw(tmp_path: Path, cli: Any) -> None:
    write_events(tmp_path / "a.jsonl", [event("e1"), "[1]", "", '{"event_id": "x"}'])
    (tmp_path / "b.jsonl").write_bytes(b'{"event_id": "\xff"}\n')
    assert cli("ingest", "--db", "r.duckdb", "a.jsonl").exit_code == 0
    assert cli("ingest", "--db", "r.duckdb", "b.jsonl").exit_code == 0
    result = cli("rejects", "--db", "r.duckdb", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {"file": "a.jsonl", "line": 2, "reason": "not a JSON object", "raw": "[1]"},
        {"file": "a.jsonl", "line": 4, "reason": "missing customer_id", "raw": '{"event_id": "x"}'},
        {
            "file": "b.jsonl",
            "line": 1,
            "reason": "not valid UTF-8 (bad byte at column 15)",
            "raw": '{"event_id": "\ufffd"}',
        },
    ]
    only = cli("rejects", "--db", "r.duckdb", "--run", "2", "--format", "json")
    assert [r["file"] for r in json.loads(only.stdout)] == ["b.jsonl"]
    table = cli("rejects", "--db", "r.duckdb")
    assert table.exit_code == 0 and "3 rejected lines" in table.stdout


def test_the_summary_line_counts_everything(tmp_path: Path, cli: Any) -> None:
    write_events(
        tmp_path / "a.jsonl",
        [event("e1"), event("e1"), event("e2", ts=None), "", "oops", event("e1", n=1)],
    )
    result = cli("ingest", "--db", "x.duckdb", "a.jsonl")
    assert result.exit_code == 0
    assert result.stdout == ""
    first, second = result.stderr.splitlines()
    assert first.startswith(
        "usagebill: run 1: read 5 lines from 1 file: 2 accepted, 1 duplicate, 2 rejected, "
        "1 timestamped at ingest ("
    )
    assert second == "usagebill: rejected lines are kept: see `usagebill rejects --run 1`"
