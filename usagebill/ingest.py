"""Ingest: JSON Lines files into the events table, one run in one transaction.

The work is set-based, in DuckDB:

1. *Stage.* DuckDB's CSV reader splits a batch of files into lines (one VARCHAR column, so
   every physical line, blank ones included, keeps its place and its line number comes from
   the staging row id); DuckDB's JSON functions parse each line once and SQL checks it,
   giving each bad line its reason.
2. *De-duplicate.* An event_id seen before (earlier in the batch, or stored) is a duplicate
   when its content is the same, a rejected "conflicting duplicate" when not.
3. *Store* the new events and corrections, and every rejected line with its file, line,
   reason and raw text.

Python never loops over lines on this path. Files DuckDB's reader refuses (invalid UTF-8,
a line over 2 MiB, a stray carriage return, a truncated gzip) go through `sources.sanitize`
first: only broken files pay for that.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb

from . import sources
from .errors import DatabaseError, DataError, InputError
from .sources import Source

if TYPE_CHECKING:
    from .store import Store

BATCH_BYTES = 256 << 20  # files are staged together up to this much input

# Every top-level field we read, as raw JSON text (so types are checked, never coerced).
FIELDS = (
    "event_id",
    "customer_id",
    "event_name",
    "timestamp",
    "metadata",
    "void",
    "amend",
    "reason",
)
STRUCTURE = "{" + ", ".join(f'"{f}": "JSON"' for f in FIELDS) + "}"
_WS = "' \t\r\n'"
# Only white space, Unicode's included (no-break, ideographic, zero-width spaces, BOM).
_BLANK_ID = r"'[\s\p{Z}\x{200B}-\x{200D}\x{2060}\x{FEFF}]*'"


def _text(f: str) -> str:
    """A JSON string field as SQL text (NULL when absent or not a string). Unescaping is paid
    only by strings that contain a backslash."""
    r = f"r_{f}"
    return (
        f"CASE WHEN starts_with({r}, '\"') THEN CASE WHEN contains({r}, '\\') "
        f"THEN {r}::JSON ->> '$' ELSE substring({r}, 2, length({r}) - 2) END END"
    )


def _given(f: str) -> str:
    """An optional field counts as given unless absent or JSON null."""
    return f"coalesce(r_{f} <> 'null', false)"


def _id_checks(f: str, what: str) -> str:
    too_long = (
        f"WHEN length({f}) > 255 THEN '{f} is longer than 255 characters' "
        if f == "event_id"
        else ""
    )
    return (
        f"WHEN r_{f} IS NULL THEN 'missing {f}' "
        f"WHEN NOT starts_with(r_{f}, '\"') THEN '{f} must be a string ({what})' "
        f"WHEN regexp_full_match({f}, {_BLANK_ID}) THEN '{f} is empty' " + too_long
    )


# ISO 8601 as written in events: a date, or a date and time with an optional fraction and an
# optional offset of at most 23:59. DuckDB's cast alone also takes time zone names and offsets
# like +99:99 (which it applies: four days off). The usual `...T14:03:00Z` skips the regex.
_ISO = (
    "[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?"
    "(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?"
)
_TS_IN_RANGE = (
    "ts >= TIMESTAMPTZ '0001-01-01 00:00:00+00' AND ts < TIMESTAMPTZ '10000-01-01 00:00:00+00'"
)
_TS_CHECKS = (
    f"WHEN {_given('timestamp')} AND NOT starts_with(r_timestamp, '\"') "
    "THEN 'timestamp must be an ISO 8601 string' "
    f"WHEN {_given('timestamp')} AND regexp_matches(ts_text, '^[+-]?[0-9]{{5,}}-') "
    "THEN 'timestamp out of range (years 0001 to 9999)' "
    f"WHEN {_given('timestamp')} AND ts IS NULL "
    "THEN 'unparseable timestamp ' || to_json(left(ts_text, 60)) "
    "|| ': use ISO 8601, e.g. 2026-10-05T14:03:00Z' "
    f"WHEN {_given('timestamp')} AND NOT ({_TS_IN_RANGE}) "
    "THEN 'timestamp out of range (years 0001 to 9999)' "
)
# DuckDB's JSON reader takes NaN and Infinity (any case), which JSON has not: a filter would
# find NaN greater than every number. The metadata comes back minified with those tokens as
# written, so a cheap look right after `:`, `,` or `[` finds the candidates; only those pay
# for reading past the strings.
_NON_FINITE = r"regexp_matches(r_metadata, '(?i)[:,\[]-?(nan|inf)')"
_MD_CHECK = (
    f"WHEN {_given('metadata')} AND NOT starts_with(r_metadata, '{{') "
    "THEN 'metadata must be a JSON object' "
    f"WHEN {_given('metadata')} AND {_NON_FINITE} AND regexp_matches(regexp_replace("
    """r_metadata, '"(?:[^"\\\\]|\\\\.)*"', '', 'g'), '(?i)nan|inf') """
    "THEN 'metadata has NaN or Infinity, which are not JSON numbers' "
)
# What almost every line is: an event with plain string ids, a good timestamp (or none) and
# object metadata (or none). Only the other lines pay for the detailed checks.
_CLEAN = f"""(j IS NOT NULL AND starts_with(l, '{{') AND r_void IS NULL AND r_amend IS NULL
    AND starts_with(r_event_id, '"') AND starts_with(r_customer_id, '"')
    AND starts_with(r_event_name, '"') AND ascii(event_id) BETWEEN 33 AND 126
    AND ascii(customer_id) BETWEEN 33 AND 126 AND ascii(event_name) BETWEEN 33 AND 126
    AND length(event_id) <= 255
    AND (NOT {_given("timestamp")} OR coalesce({_TS_IN_RANGE}, false))
    AND (NOT {_given("metadata")} OR (starts_with(r_metadata, '{{') AND NOT {_NON_FINITE})))"""
_CORRECTION_CHECKS = f"""
    {_id_checks("event_id", "the correction’s own id")}
    WHEN coalesce(void, amend) IS NULL
        THEN '"void"/"amend" must be a string: the event_id to correct'
    WHEN trim(coalesce(void, amend), {_WS}) = ''
        THEN '"void"/"amend" is empty: give the event_id to correct'
    WHEN coalesce(void, amend) = event_id THEN 'a correction cannot correct itself'
    WHEN {_given("reason")} AND creason IS NULL THEN 'reason must be a string'
    WHEN r_amend IS NOT NULL AND NOT ({_given("customer_id")} OR {_given("event_name")}
        OR {_given("timestamp")} OR {_given("metadata")})
        THEN 'amend changes nothing: give customer_id, event_name, timestamp or metadata'
    WHEN r_amend IS NOT NULL AND {_given("customer_id")}
        AND coalesce(trim(customer_id, {_WS}), '') = ''
        THEN 'customer_id must be a non-empty string'
    WHEN r_amend IS NOT NULL AND {_given("event_name")}
        AND coalesce(trim(event_name, {_WS}), '') = ''
        THEN 'event_name must be a non-empty string'
    {_TS_CHECKS} {_MD_CHECK}"""
_EVENT_CHECKS = f"""
    {_id_checks("event_id", "the idempotency key")}
    {_id_checks("customer_id", "who used it")}
    {_id_checks("event_name", "what happened")}
    {_TS_CHECKS} {_MD_CHECK}"""
_RAW_COLUMNS = ", ".join(f"j.{f}::VARCHAR AS r_{f}" for f in FIELDS)
_TEXT_COLUMNS = ", ".join(
    f"{_text(f)} AS {f}" for f in ("event_id", "customer_id", "event_name", "void", "amend")
)

# DuckDB's reader refuses most lines over its max_line_size, but not every one (it depends on
# where its buffers fall): the lines it does read are measured here, as `sources` measures.
_TOO_LONG = (
    f"'line is longer than {sources.MAX_LINE_BYTES // (1024 * 1024)} MiB (' "
    "|| format('{:,}', strlen(l)) || ' bytes)'"
)

STAGE_SQL = f"""
CREATE OR REPLACE TEMP TABLE _stage AS
WITH src AS (
    SELECT file_index::INTEGER AS fi, l, try(json_transform(l, ?)) AS j
    FROM read_csv(?::VARCHAR[], columns = {{'l': 'VARCHAR'}}, delim = chr(1), quote = '',
                  escape = '', header = false, auto_detect = false, compression = 'auto',
                  max_line_size = {sources.MAX_LINE_BYTES + 1}, store_rejects = true,
                  rejects_table = '_csv_rejects', rejects_scan = '_csv_scans')
), raw AS (
    SELECT fi, l, j, {_RAW_COLUMNS} FROM src
), fields AS (
    SELECT *, {_TEXT_COLUMNS}, {_text("reason")} AS creason, {_text("timestamp")} AS ts_text,
        CASE WHEN ts_text LIKE '____-__-__T__:__:__Z' OR regexp_full_match(ts_text, '{_ISO}')
             THEN TRY_CAST(ts_text AS TIMESTAMPTZ) END AS ts,
        CASE WHEN starts_with(l, '{{') THEN false WHEN l IS NULL THEN true
             ELSE trim(l, {_WS}) = '' END AS blank
    FROM raw
), checked AS (
    SELECT *, CASE WHEN strlen(l) > {sources.MAX_LINE_BYTES} THEN {_TOO_LONG}
        WHEN {_CLEAN} OR blank THEN NULL
        WHEN j IS NULL THEN CASE WHEN json_valid(l) THEN 'not a JSON object'
                                 ELSE 'invalid JSON' END
        WHEN NOT starts_with(ltrim(l, {_WS}), '{{') THEN 'not a JSON object'
        WHEN r_void IS NOT NULL AND r_amend IS NOT NULL
            THEN 'a correction has "void" or "amend", not both'
        WHEN r_void IS NOT NULL OR r_amend IS NOT NULL THEN CASE {_CORRECTION_CHECKS} END
        ELSE CASE {_EVENT_CHECKS} END
        END AS problem
    FROM fields
)
SELECT fi, blank,
    CASE WHEN r_void IS NOT NULL THEN 'void' WHEN r_amend IS NOT NULL THEN 'amend'
         ELSE 'event' END AS kind,
    event_id, customer_id, event_name, ts, {_given("timestamp")} AS ts_given,
    CASE WHEN {_given("metadata")} THEN j.metadata END AS metadata,
    coalesce(void, amend) AS target, creason,
    problem AS reason, CASE WHEN problem IS NOT NULL THEN
        CASE WHEN strlen(l) > {sources.MAX_LINE_BYTES} THEN left(l, 65536) ELSE l END END AS raw,
    CAST(NULL AS VARCHAR) AS status
FROM checked
"""

# Line numbers: a staged row's id minus its file's first row id, plus one.
BASES_SQL = (
    "CREATE OR REPLACE TEMP TABLE _bases AS SELECT fi, min(rowid) AS base FROM _stage GROUP BY fi"
)
_LINE = "(s.rowid - b.base + 1)"
_FILE = "(?::VARCHAR[])[s.fi + 1]"  # the batch's labels, bound as one list

# The rows still to be stored: checked, not duplicates, not blank.
STAGED = f"""(SELECT s.rowid AS rid, s.fi, {_LINE} AS line, {_FILE} AS file, s.kind, s.event_id,
    s.customer_id, s.event_name, s.ts, s.ts_given, s.metadata, s.target, s.creason AS reason,
    CASE s.kind WHEN 'event' THEN NULL ELSE s.kind END AS action
    FROM _stage s JOIN _bases b ON b.fi = s.fi
    WHERE s.reason IS NULL AND s.status IS NULL AND NOT s.blank)"""

# Same content (SPEC §1): customer, name, timestamp (or both stamped at ingest), metadata.
# Metadata texts that differ may still hold the same JSON (key order, 1.0 for 1): such
# `near` pairs are rare and settled in Python by `same_json` (see `_mark`).
SAME_FIELDS = """(a.customer_id IS NOT DISTINCT FROM b.customer_id
    AND a.event_name IS NOT DISTINCT FROM b.event_name
    AND CASE WHEN a.ts_given AND b.ts_given THEN a.ts = b.ts ELSE a.ts_given = b.ts_given END)"""
MD_A, MD_B = ("coalesce(a.metadata::VARCHAR, '{}')", "coalesce(b.metadata::VARCHAR, '{}')")
CORRECTION_FIELDS = """(a.action = b.action AND a.target = b.target
    AND a.customer_id IS NOT DISTINCT FROM b.customer_id
    AND a.event_name IS NOT DISTINCT FROM b.event_name
    AND a.ts IS NOT DISTINCT FROM b.ts
    AND a.reason IS NOT DISTINCT FROM b.reason)"""
SAME_CORRECTION = (f"({CORRECTION_FIELDS} "
                   "AND a.metadata::VARCHAR IS NOT DISTINCT FROM b.metadata::VARCHAR)")
# For a pair of rows a (first) and b (repeat): same, near (all but the metadata text), texts.
# An amend's absent metadata keeps the target's, so it is near only to another given one.
_NEAR = f"""coalesce(CASE WHEN a.kind = 'event' AND b.kind = 'event' THEN {SAME_FIELDS}
        WHEN a.kind <> 'event' AND b.kind <> 'event' THEN {CORRECTION_FIELDS}
            AND a.metadata IS NOT NULL AND b.metadata IS NOT NULL END
        AND {MD_A} <> {MD_B}, false)"""
_VERDICT = f"""CASE WHEN a.kind = 'event' AND b.kind = 'event'
        THEN {SAME_FIELDS} AND {MD_A} = {MD_B}
        WHEN a.kind <> 'event' AND b.kind <> 'event' THEN {SAME_CORRECTION}
        ELSE false END AS same,
    {_NEAR} AS near,
    CASE WHEN {_NEAR} THEN {MD_A} END AS md_a, CASE WHEN {_NEAR} THEN {MD_B} END AS md_b"""
_CONFLICT = (
    "'conflicting duplicate of ' || d.file || ':' || d.line || ' (event_id ' "
    "|| d.event_id || ' was first sent with other content)'"
)
MARK_SQL = f"""UPDATE _stage SET
    status = CASE WHEN d.same THEN 'duplicate' ELSE 'conflict' END,
    reason = CASE WHEN d.same THEN NULL ELSE {_CONFLICT} END
    FROM _matches d WHERE _stage.rowid = d.rid"""
# The rows whose event_id is staged more than once, fetched once: at 10M events the staged
# table has spilled to disk, and reading it on both sides of the self-join took 2.7 s
# against 1.6 s.
REPEATED_SQL = "CREATE OR REPLACE TEMP TABLE _repeated AS " + STAGED.replace(
    "AND NOT s.blank)", "AND NOT s.blank AND s.event_id IN (SELECT event_id FROM _repeats))"
)
# Repeats within the batch: each compared with the first occurrence (files in path order).
IN_BATCH = f"""SELECT b.rid, a.file, a.line, a.event_id, {_VERDICT}
    FROM _repeated a JOIN _repeated b ON a.event_id = b.event_id AND a.rid < b.rid
    QUALIFY row_number() OVER (PARTITION BY b.rid ORDER BY a.rid) = 1"""
# Repeats of what is stored (earlier batches of this run included: same transaction).
STORED = f"""SELECT b.rid, a.file, a.line, a.event_id, {_VERDICT}
    FROM {STAGED} b JOIN (SELECT event_id, customer_id, event_name, ts,
        NOT ts_at_ingest AS ts_given, metadata, file, line, 'event' AS kind,
        NULL AS action, NULL AS target, NULL AS reason FROM events
        UNION ALL SELECT event_id, customer_id, event_name, ts, ts IS NOT NULL, metadata, file,
        line, action, action, target, reason FROM corrections) a
      ON a.event_id = b.event_id"""

INSERT_EVENTS = f"""INSERT INTO events
    SELECT event_id, customer_id, event_name, coalesce(ts, ?), NOT ts_given, metadata, file,
           line, ? FROM {STAGED} WHERE kind = 'event'"""
INSERT_REJECTS = f"""INSERT INTO rejects
    SELECT {_FILE}, {_LINE}, s.reason, s.raw, ?
    FROM _stage s JOIN _bases b ON b.fi = s.fi WHERE s.reason IS NOT NULL"""
COUNT_SQL = """SELECT
    count(*) FILTER (WHERE NOT blank),
    count(*) FILTER (WHERE reason IS NULL AND status IS NULL AND NOT blank),
    count(*) FILTER (WHERE status = 'duplicate'),
    count(*) FILTER (WHERE reason IS NOT NULL),
    count(*) FILTER (WHERE reason IS NULL AND status IS NULL AND NOT blank AND kind = 'event'
                     AND NOT ts_given),
    count(*) FILTER (WHERE reason IS NULL AND status IS NULL AND NOT blank AND kind <> 'event')
    FROM _stage"""
# The event_ids staged more than once: only their rows are compared with each other.
# Counting 64-bit hashes first keeps the big grouping small (it spilled at 10M events: 1.4 s
# against 1.15 s); a collision only adds a candidate, which the exact grouping of the few
# candidates then drops.
_KEPT = "FROM _stage WHERE reason IS NULL AND status IS NULL AND NOT blank"  # not a CTE:
# DuckDB would store it
REPEATS_SQL = f"""CREATE OR REPLACE TEMP TABLE _repeats AS SELECT event_id {_KEPT}
    AND hash(event_id) IN (SELECT hash(event_id) {_KEPT} GROUP BY 1 HAVING count(*) > 1)
    GROUP BY event_id HAVING count(*) > 1"""
COUNTS = ("read", "accepted", "duplicates", "rejected", "timestamped", "corrections")

# A correction is refused when its target is a correction, or already corrected by another
# (stored, or the batch's first correction of it: a repeat of that one is a duplicate).
CHECK_CORRECTIONS = f"""UPDATE _stage SET reason = d.why FROM (
    SELECT s.rid, CASE
        WHEN c.event_id IS NOT NULL THEN 'cannot correct a correction: ' || s.target
            || ' is itself a correction (' || c.file || ':' || c.line || ')'
        WHEN p.event_id IS NOT NULL THEN 'cannot correct a correction: ' || s.target
            || ' is itself a correction (' || p.file || ':' || p.line || ')'
        WHEN t.event_id IS NOT NULL THEN s.target || ' is already corrected by '
            || t.event_id || ' (' || t.file || ':' || t.line || ')'
        WHEN q.event_id IS NOT NULL THEN s.target || ' is already corrected by '
            || q.event_id || ' (' || q.file || ':' || q.line || ')'
        END AS why
    FROM {STAGED} s
    LEFT JOIN corrections c ON c.event_id = s.target
    LEFT JOIN (SELECT event_id, arg_min(file, rid) AS file, arg_min(line, rid) AS line
        FROM {STAGED} WHERE kind <> 'event' GROUP BY event_id) p ON p.event_id = s.target
    LEFT JOIN corrections t ON t.target = s.target
    LEFT JOIN (SELECT target, min(rid) AS rid, arg_min(event_id, rid) AS event_id,
            arg_min(file, rid) AS file, arg_min(line, rid) AS line
        FROM {STAGED} WHERE kind <> 'event' GROUP BY target) q
      ON q.target = s.target AND q.rid < s.rid AND q.event_id <> s.event_id
    WHERE s.kind <> 'event'
    QUALIFY row_number() OVER (PARTITION BY s.rid ORDER BY q.rid NULLS FIRST) = 1) d
    WHERE _stage.rowid = d.rid AND d.why IS NOT NULL"""
# Corrections are stored merged with their target when it is already there.
INSERT_CORRECTIONS = f"""INSERT INTO corrections
    SELECT s.event_id, s.action, s.target, s.customer_id, s.event_name, s.ts, s.metadata,
           s.reason, s.file, s.line, ?, e.run, e.file, e.line,
           coalesce(s.customer_id, e.customer_id), coalesce(s.event_name, e.event_name),
           coalesce(s.ts, e.ts), coalesce(s.metadata, e.metadata)
    FROM {STAGED} s LEFT JOIN events e ON e.event_id = s.target WHERE s.kind <> 'event'"""
# ... and corrections that arrived before their target apply once it is stored.
RESOLVE_WAITING = """UPDATE corrections SET target_run = e.run, target_file = e.file,
        target_line = e.line,
        eff_customer_id = coalesce(corrections.customer_id, e.customer_id),
        eff_event_name = coalesce(corrections.event_name, e.event_name),
        eff_ts = coalesce(corrections.ts, e.ts),
        eff_metadata = coalesce(corrections.metadata, e.metadata)
    FROM events e
    WHERE corrections.target_run IS NULL AND e.run = ? AND e.event_id = corrections.target"""
# Closed periods this run stored events (or corrections) for.
# An amend can touch two periods (where its target was, where it now is); it counts once in
# each.
CLOSED_TOUCHED = """WITH touched AS (
        SELECT event_id AS id, customer_id, ts FROM events WHERE run = ?
        UNION ALL SELECT event_id, eff_customer_id, eff_ts FROM corrections
            WHERE run = ? AND target_run IS NOT NULL
        UNION ALL SELECT c.event_id, e.customer_id, e.ts FROM corrections c
            JOIN events e ON e.event_id = c.target WHERE c.run = ?)
    SELECT i.period, count(DISTINCT t.id) FROM touched t JOIN issued i
      ON i.customer_id = t.customer_id AND t.ts >= i.period_start AND t.ts < i.period_end
    GROUP BY i.period ORDER BY i.period"""


@dataclass
class IngestResult:
    run: int
    files: list[str]
    read: int = 0  # non-blank lines
    accepted: int = 0  # new events and corrections
    duplicates: int = 0
    rejected: int = 0
    timestamped: int = 0  # accepted events stamped with the ingest time
    corrections: int = 0  # of the accepted, how many are corrections
    seconds: float = 0.0
    rejects: list[tuple[str, int, str]] = field(default_factory=list)  # the first few
    closed: dict[str, int] = field(default_factory=dict)  # closed period -> events stored

    @property
    def per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class _Refused(Exception):
    """DuckDB's reader refused a batch; the run restarts with its files read more carefully."""

    def __init__(self, labels: list[str], why: str = "") -> None:
        self.labels = labels
        self.why = why


def ingest(
    store: Store, inputs: list[str], *, strict: bool = False, progress: Progress | None = None,
    skip: Sequence[str] = (),
) -> IngestResult:
    """Store events from files, directories, globs or `-` as one run. With `strict`, a run
    that would reject any line stores nothing and raises `DataError` (exit 1)."""
    files = sources.expand(inputs, store.tmp, skip)
    started = time.perf_counter()
    stamp = dt.datetime.now(dt.timezone.utc)
    solo: set[str] = set()  # staged one file at a time, to find the one DuckDB refuses
    exact: set[str] = set()  # read through `sources.sanitize`
    while True:
        try:
            result = _run(store, files, stamp, solo, exact, progress, strict)
            break
        except _Refused as e:  # a failed statement aborted the transaction: start over
            if len(e.labels) == 1 and e.labels[0] in exact:  # even its cleaned copy: give up
                raise InputError(f"{e.labels[0]}: cannot read: {e.why}") from None
            (exact if len(e.labels) == 1 else solo).update(e.labels)
    result.seconds = time.perf_counter() - started
    if strict and result.rejected:
        n = result.rejected
        raise DataError(
            f"--strict: {n:,} line{'s' if n != 1 else ''} would be rejected; nothing was stored",
            details=[f"  {file}:{line}: {reason}" for file, line, reason in result.rejects],
            hint="Fix the lines, or ingest without --strict to keep them as rejects.",
        )
    return result


def _batches(files: list[Source], solo: set[str]) -> Iterator[list[Source]]:
    batch: list[Source] = []
    size = 0
    for f in files:
        if batch and (size + f.size > BATCH_BYTES or f.label in solo or batch[-1].label in solo):
            yield batch
            batch, size = [], 0
        batch.append(f)
        size += f.size
    if batch:
        yield batch


def _run(
    store: Store,
    files: list[Source],
    stamp: dt.datetime,
    solo: set[str],
    exact: set[str],
    progress: Progress | None,
    strict: bool,
) -> IngestResult:
    """One transaction: every batch, then the run's record. Any failure rolls all back."""
    con = store.con
    run = store.latest_run() + 1
    result = IngestResult(run, [f.label for f in files])
    total, done = sum(f.size for f in files), 0
    if progress:
        progress(0, total)  # the bar shows the size from the start
    con.execute("BEGIN")
    try:
        for batch in _batches(files, solo):
            size = sum(f.size for f in batch)

            def tick(fraction: float, done: int = done, size: int = size) -> None:
                if progress:
                    progress(done + int(fraction * size), total)

            counts = _batch(store, batch, run, stamp, exact, tick)
            for k, v in counts.items():
                setattr(result, k, getattr(result, k) + v)
            done += size
            if progress:
                progress(done, total)
        result.rejects = [
            (r[0], r[1], r[2])
            for r in con.execute(
                "SELECT file, line, reason FROM rejects WHERE run = ? ORDER BY file, line LIMIT 10",
                [run],
            ).fetchall()
        ]
        if strict and result.rejected:
            con.execute("ROLLBACK")
            return result
        if store.scalar("SELECT count(*) > 0 FROM issued"):
            result.closed = {
                p: int(n) for p, n in con.execute(CLOSED_TOUCHED, [run, run, run]).fetchall()
            }
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run,
                stamp,
                dt.datetime.now(dt.timezone.utc),
                result.files,
                result.read,
                result.accepted,
                result.duplicates,
                result.rejected,
                result.timestamped,
                result.corrections,
            ],
        )
        con.execute("COMMIT")
    except BaseException as e:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        # A full disk fails a write (IOException) or, when it is the log's, the commit.
        unwritten = isinstance(e, duckdb.TransactionException) and "commit" in str(e).lower()
        if isinstance(e, duckdb.IOException) or unwritten:
            raise DatabaseError(
                f"{store.path}: cannot write: {_first_line(e)}",
                hint="Nothing was stored. Free disk space or check permissions, then ingest again.",
            ) from None
        if isinstance(e, duckdb.OutOfMemoryException):
            raise DatabaseError(
                f"out of memory: {_first_line(e)}",
                hint="Nothing was stored. Raise USAGEBILL_MEMORY_LIMIT.",
            ) from None
        raise
    return result


def _batch(
    store: Store,
    batch: list[Source],
    run: int,
    stamp: dt.datetime,
    exact: set[str],
    tick: Callable[[float], None],
) -> dict[str, int]:
    con = store.con
    labels = [f.label for f in batch]
    gzipped = [f for f in batch if f.gzipped and f.label not in exact]  # (`sanitize` checks)
    pool, stop = ThreadPoolExecutor(1), threading.Event()
    try:  # zlib checks the gzip files while DuckDB stages
        checked = pool.submit(lambda: [sources.check_gzip(f, stop) for f in gzipped])
        with _polling(con, tick):
            _stage(store, batch, exact)
        checked.result()  # a damaged file: InputError, the run rolls back
    finally:
        stop.set()  # stopped early (Ctrl-C, a refused batch): no need to wait for the check
        pool.shutdown(wait=False)
    con.execute(BASES_SQL)
    # Every repeat of a stored event_id is compared with the stored version; then corrections
    # are checked; only then are the batch's own repeats compared with their first accepted
    # occurrence (a line rejected before is no first version).
    _mark(con, STORED, [labels])
    corrections = store.scalar("SELECT count(*) > 0 FROM _stage WHERE kind <> 'event'")
    if corrections:
        con.execute(CHECK_CORRECTIONS, [labels] * 3)
    con.execute(REPEATS_SQL)
    if store.scalar("SELECT count(*) > 0 FROM _repeats"):
        con.execute(REPEATED_SQL, [labels])
        _mark(con, IN_BATCH, [])
    _raw_of_late_rejects(store, batch)
    con.execute(INSERT_EVENTS, [stamp, run, labels])
    if corrections:
        con.execute(INSERT_CORRECTIONS, [run, labels])
    if store.scalar("SELECT count(*) > 0 FROM corrections WHERE target_run IS NULL"):
        con.execute(RESOLVE_WAITING, [run])
    con.execute(INSERT_REJECTS, [labels, run])
    return dict(zip(COUNTS, (int(x) for x in con.execute(COUNT_SQL).fetchone())))


def _stage(store: Store, batch: list[Source], exact: set[str]) -> None:
    """Fill `_stage` from the batch. A refusal by the reader raises `_Refused` (the caller
    restarts the run: a failed statement aborts the transaction, and DuckDB has no
    savepoints); lines it refuses one by one send their files through `sources.sanitize`."""
    con = store.con
    clean: dict[str, Source] = {}
    bad: dict[str, list[sources.BadLine]] = {}
    try:
        while True:
            paths = [clean[f.label].path if f.label in clean else f.path for f in batch]
            for f in batch:
                if f.label in exact and f.label not in clean:
                    clean[f.label], bad[f.label] = sources.sanitize(f, store.tmp)
                    paths = [clean[g.label].path if g.label in clean else g.path for g in batch]
            try:
                con.execute("DROP TABLE IF EXISTS _csv_rejects")
                con.execute("DROP TABLE IF EXISTS _csv_scans")
                con.execute(STAGE_SQL, [STRUCTURE, paths])
            except duckdb.IOException as e:
                plain = [f for f in batch if not f.gzipped]
                if len(batch) == 1 and plain:
                    raise InputError(f"{batch[0].label}: cannot read: {_first_line(e)}") from None
                raise _Refused([f.label for f in batch], _first_line(e)) from None
            except (duckdb.InvalidInputException, duckdb.ConversionException) as e:
                raise _Refused([f.label for f in batch], _first_line(e)) from None
            refused = con.execute(
                "SELECT file_id, line, error_message FROM _csv_rejects ORDER BY ALL"
            ).fetchall()
            if not refused:
                # A line of nothing but the delimiter (chr(1)) is read as a blank line, not
                # refused: only files with blank lines are searched for one (a byte scan).
                hidden = [
                    batch[int(r[0])].label
                    for r in con.execute("SELECT DISTINCT fi FROM _stage WHERE blank").fetchall()
                    if batch[int(r[0])].label not in clean
                    and sources.contains_byte(batch[int(r[0])], b"\x01")
                ]
                if not hidden:
                    break
                exact.update(hidden)
                continue
            again = [r for r in refused if batch[int(r[0])].label in clean]
            if again:  # `sanitize` let through a line the reader refuses: never loop on it
                f, line, why = again[0]
                raise InputError(f"{batch[int(f)].label}:{line}: cannot read: {why}")
            exact.update(batch[int(r[0])].label for r in refused)
    finally:
        for c in clean.values():
            with contextlib.suppress(OSError):
                os.unlink(c.path)
    lines = [
        {"fi": i, "line": b.line, "reason": b.reason, "raw": b.raw}
        for i, f in enumerate(batch)
        for b in bad.get(f.label, [])
    ]
    if lines:  # the lines sanitize blanked: rejected where they stand
        con.execute(BASES_SQL)
        con.execute(
            """UPDATE _stage SET reason = x.reason, raw = x.raw, blank = false
            FROM (SELECT unnest(?, recursive := true)) x, _bases b
            WHERE b.fi = x.fi AND _stage.rowid = b.base + x.line - 1""",
            [lines],
        )


def _mark(con: duckdb.DuckDBPyConnection, matches: str, params: list[Any]) -> None:
    """Mark repeats of an accepted event_id: a duplicate when the content is the same, a
    rejected conflict when not. Pairs whose metadata differs only in its text are settled
    by `same_json` in Python (only those few rows are fetched)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _matches AS {matches}", params)
    near = con.execute("SELECT rid, md_a, md_b FROM _matches WHERE near").fetchall()
    same = [rid for rid, a, b in near if same_json(a, b)]
    if same:
        con.execute("UPDATE _matches SET same = true WHERE rid IN (SELECT unnest(?))", [same])
    con.execute(MARK_SQL)


def same_json(a: str, b: str) -> bool:
    """Whether two metadata texts hold the same JSON value: key order and the spelling of a
    number (1, 1.0, 1e0) do not make another event."""
    try:
        return _canonical(json.loads(a, parse_float=Decimal, parse_int=Decimal)) == _canonical(
            json.loads(b, parse_float=Decimal, parse_int=Decimal)
        )
    except ValueError:
        return False


def _canonical(v: Any) -> Any:
    if isinstance(v, dict):
        return ("object", frozenset((k, _canonical(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("array", tuple(_canonical(x) for x in v))
    return (type(v).__name__, v)  # true is not 1, "1" is not 1


def _raw_of_late_rejects(store: Store, batch: list[Source]) -> None:
    """Lines rejected after staging (conflicting duplicates, refused corrections) keep their
    raw text too, read back from the file (a rare path)."""
    con = store.con
    rows = con.execute(f"""SELECT s.fi, {_LINE} FROM _stage s JOIN _bases b ON b.fi = s.fi
        WHERE s.reason IS NOT NULL AND s.raw IS NULL""").fetchall()
    if not rows:
        return
    wanted: dict[int, set[int]] = {}
    for fi, line in rows:
        wanted.setdefault(int(fi), set()).add(int(line))
    raws = [
        {"fi": fi, "line": n, "raw": text}
        for fi, lines in wanted.items()
        for n, text in sources.read_lines(batch[fi], lines).items()
    ]
    con.execute(
        """UPDATE _stage SET raw = x.raw
        FROM (SELECT unnest(?, recursive := true)) x, _bases b
        WHERE b.fi = x.fi AND _stage.rowid = b.base + x.line - 1""",
        [raws],
    )


@contextlib.contextmanager
def _polling(con: duckdb.DuckDBPyConnection, tick: Callable[[float], None]) -> Iterator[None]:
    """Report DuckDB's progress on the running statement every 0.2 s."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.2):
            with contextlib.suppress(Exception):
                pct = con.query_progress()
                if pct is not None and pct >= 0:
                    tick(min(pct, 100.0) / 100.0)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
