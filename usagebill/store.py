"""The DuckDB database: schema and migrations, opening and locking, the events as they
count (corrections applied), and the listings of rejects, runs and corrections.

Ingest lives in `ingest.py`; this module only hands it the connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from .errors import DatabaseError, DataError, UsagebillError
from .sql import Sql

if TYPE_CHECKING:
    from .ingest import IngestResult, Progress

SCHEMA_VERSION = 2
DEFAULT_MEMORY_LIMIT = os.environ.get("USAGEBILL_MEMORY_LIMIT", "512MB")

# ---------------------------------------------------------------------------------------------
# Schema: ordered migrations; the database records how many have run (simonw/llm's habit).


def _m001_core(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("""
        CREATE TABLE events (
            event_id VARCHAR NOT NULL, customer_id VARCHAR NOT NULL,
            event_name VARCHAR NOT NULL, ts TIMESTAMPTZ NOT NULL,
            ts_at_ingest BOOLEAN NOT NULL, metadata JSON,
            file VARCHAR NOT NULL, line BIGINT NOT NULL)""")
    con.execute("CREATE TABLE rejects (file VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR)")


def _m002_audit(con: duckdb.DuckDBPyConnection) -> None:
    """Runs, corrections and issued invoices (SPEC §8). Events stored before run tracking
    become run 1, so nothing stored is lost or asked for again."""
    con.execute("""
        CREATE TABLE runs (
            run INTEGER PRIMARY KEY, started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ,
            files VARCHAR[], lines_read BIGINT, accepted BIGINT, duplicates BIGINT,
            rejected BIGINT, timestamped BIGINT, corrections BIGINT)""")
    con.execute("ALTER TABLE events ADD COLUMN run INTEGER DEFAULT 1")
    con.execute("ALTER TABLE rejects ADD COLUMN run INTEGER DEFAULT 1")
    old = con.execute(
        "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM rejects)"
    ).fetchone()[0]
    if old:
        con.execute("""
            INSERT INTO runs SELECT 1, NULL, NULL,
                (SELECT list(DISTINCT file ORDER BY file) FROM events),
                NULL, (SELECT count(*) FROM events), NULL,
                (SELECT count(*) FROM rejects), NULL, 0""")
    con.execute("""
        CREATE TABLE corrections (
            event_id VARCHAR NOT NULL, action VARCHAR NOT NULL, target VARCHAR NOT NULL,
            customer_id VARCHAR, event_name VARCHAR, ts TIMESTAMPTZ, metadata JSON,
            reason VARCHAR, file VARCHAR, line BIGINT, run INTEGER,
            -- the target once it is stored, merged with the amendment:
            target_run INTEGER, target_file VARCHAR, target_line BIGINT,
            eff_customer_id VARCHAR, eff_event_name VARCHAR, eff_ts TIMESTAMPTZ,
            eff_metadata JSON)""")
    # A closed period and, per customer, the invoice issued for it (a full record: prices,
    # steps and credit figures as they were, so later config edits never change it).
    con.execute("""
        CREATE TABLE closings (
            period VARCHAR PRIMARY KEY, run INTEGER, closed_at TIMESTAMPTZ, document JSON)""")
    con.execute("""
        CREATE TABLE issued (
            period VARCHAR NOT NULL, customer_id VARCHAR NOT NULL,
            period_start TIMESTAMPTZ NOT NULL, period_end TIMESTAMPTZ NOT NULL,
            record JSON NOT NULL)""")


MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = [_m001_core, _m002_audit]
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(con: duckdb.DuckDBPyConnection, upto: int = SCHEMA_VERSION) -> None:
    """Bring a database to schema version `upto`, one recorded migration at a time."""
    version = schema_version(con)
    for number in range(version, upto):
        con.execute("BEGIN")
        MIGRATIONS[number](con)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(number + 1)])
        con.execute("COMMIT")


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main'"
        ).fetchall()
    }
    if "meta" not in tables:
        return -1 if tables else 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else -1  # a `meta` table that is not ours


class Store:
    """An open usagebill database. `Store.open(None)` is a fresh in-memory one (replay)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str | None, read_only: bool):
        self.con = con
        self.path = path
        self.read_only = read_only
        self.tmp = tempfile.mkdtemp(prefix="usagebill-")  # stdin copies, cleaned files, spills

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None,
        *,
        read_only: bool = False,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> Store:
        """Open (creating and migrating as needed). Reports open read-only, so that they can
        run side by side and never take the writer's lock."""
        name = None if path is None else str(path)
        if name is not None and read_only and not os.path.exists(name):
            raise DatabaseError(
                f"{name}: no database here yet",
                hint="Run `usagebill ingest FILES` first, or pass --db PATH.",
            )
        created = name is not None and not os.path.exists(name)
        con = _connect(name, read_only)
        try:
            try:
                version = schema_version(con)
            except (duckdb.Error, ValueError) as e:  # a foreign `meta` table, a damaged file
                raise DatabaseError(
                    f"{name}: not a usagebill database, or a damaged one: {_first_line(e)}",
                    hint="Pass --db with another path, or restore the file from a backup.",
                ) from None
            if version == -1:
                raise DatabaseError(
                    f"{name}: this DuckDB file is not a usagebill database",
                    hint="Pass --db with another path.",
                )
            if version > SCHEMA_VERSION:
                raise DatabaseError(
                    f"{name}: written by a newer usagebill (schema {version}; this one "
                    f"knows up to {SCHEMA_VERSION})",
                    hint="Upgrade usagebill to read it.",
                )
            if version < SCHEMA_VERSION:
                if read_only:
                    con.close()
                    upgrade = _connect(name, False)
                    with contextlib.closing(upgrade):
                        migrate(upgrade)
                    con = _connect(name, True)
                else:
                    migrate(con)
            store = cls(con, name, read_only)
            try:
                store._configure(memory_limit)
            except BaseException:
                shutil.rmtree(store.tmp, ignore_errors=True)
                raise
            return store
        except BaseException:
            con.close()
            if created:  # a database this call made and could not set up holds nothing
                for leftover in (name, f"{name}.wal"):
                    with contextlib.suppress(OSError):
                        os.unlink(leftover)
            raise

    def _configure(self, memory_limit: str) -> None:
        self.con.execute("SET TimeZone = 'UTC'")
        try:
            self.con.execute(f"SET memory_limit = '{_setting(memory_limit)}'")
        except duckdb.Error as e:  # a size DuckDB cannot read, or one too small to work in
            raise _option(
                f"memory limit {memory_limit!r} (USAGEBILL_MEMORY_LIMIT): {_first_line(e)}",
                "Give a size such as 512MB or 2GB.",
            ) from None
        if self.path is None or self.read_only:
            self.con.execute(f"SET temp_directory = '{_setting(self.tmp)}'")
        else:  # the writer spills to `<db>.tmp`: remove what a killed run left there
            mine = f"duckdb_temp_{os.getpid()}_"
            spills = os.path.realpath(self.path) + ".tmp"  # (where DuckDB puts them)
            for spill in glob.glob(os.path.join(glob.escape(spills), "duckdb_temp_*")):
                if not os.path.basename(spill).startswith(mine):
                    with contextlib.suppress(OSError):
                        os.unlink(spill)
        # DuckDB 2.0 pushes partial aggregates below the join of events to billing cycles;
        # for meters without a DISTINCT aggregate that made invoices 6-8 times slower
        # (measured: 0.8 s against 5.8-7 s on 1,000,000 events, 1,000 customers).
        self.con.execute("SET disabled_optimizers = 'partial_aggregate_pushdown'")

    def close(self) -> None:
        with contextlib.suppress(duckdb.Error):
            self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ------------------------------------------------------------------------------

    def query(self, sql: Sql | str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple]:
        if isinstance(sql, Sql):
            sql, params = sql.text, sql.params
        try:
            return self.con.execute(sql, list(params)).fetchall()
        except duckdb.OutOfRangeException as e:
            raise DataError(
                "a meter's value or total has more than 26 digits before the decimal point, "
                f"too large to compute exactly ({_first_line(e)[:80]}...)",
                hint="Check the meters' keys for very large values; `--meter ID` narrows it down.",
            ) from None
        except duckdb.IOException as e:
            raise DatabaseError(f"{self.path}: {_first_line(e)}") from None

    def query_named(self, sql: Sql) -> tuple[list[str], list[tuple]]:
        """Rows with their column names (for compiled queries whose columns are generated)."""
        rows = self.query(sql)
        return [d[0] for d in self.con.description or []], rows

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        return self.query(sql, params or [])[0][0]

    @property
    def has_corrections(self) -> bool:
        return bool(self.scalar("SELECT count(*) > 0 FROM corrections"))

    def effective_events(self, lo: dt.datetime, hi: dt.datetime, as_of: int | None = None) -> Sql:
        """Events as they count, with corrections applied (void gone, amend merged), in
        `[lo, hi)`, limited to runs 1..as_of. Columns: event_id, customer_id, event_name, ts,
        metadata, file, line, run, corrected_by."""
        run = Sql("") if as_of is None else Sql(" AND run <= ?", (as_of,))
        plain = (
            Sql(
                "SELECT event_id, customer_id, event_name, ts, metadata, file, line, run, "
                "CAST(NULL AS VARCHAR) AS corrected_by FROM events "
                "WHERE ts >= ? AND ts < ?",
                (lo, hi),
            )
            + run
        )
        if not self.has_corrections:
            return plain
        applied = Sql("target_run IS NOT NULL") + (
            Sql("") if as_of is None else Sql(" AND run <= ? AND target_run <= ?", (as_of, as_of))
        )
        return (
            plain
            + " AND event_id NOT IN (SELECT target FROM corrections WHERE "
            + applied
            + ") UNION ALL SELECT target, eff_customer_id, eff_event_name, "
            "eff_ts, eff_metadata, target_file, target_line, target_run, event_id "
            "FROM corrections WHERE action = 'amend' AND "
            + applied
            + Sql(" AND eff_ts >= ? AND eff_ts < ?", (lo, hi))
        )

    def latest_run(self) -> int:
        return int(self.scalar("SELECT coalesce(max(run), 0) FROM runs"))

    def resolve_as_of(self, text: str | None) -> int | None:
        """`--as-of` is a run number, or an ISO timestamp: the runs that ended by then."""
        if text is None:
            return None
        if text.strip().isascii() and text.strip().isdigit():  # not "²" or "١"
            run = int(text)
            if run < 1 or run > self.latest_run():
                raise _option(
                    f"--as-of {text}: no such run (runs are 1 to {self.latest_run()})",
                    "See `usagebill runs`.",
                )
            return run
        try:
            when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _option(
                f"--as-of {text}: give a run number or an ISO timestamp",
                "e.g. --as-of 3 or --as-of 2026-11-02T09:00:00Z",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return int(
            self.scalar("SELECT coalesce(max(run), 0) FROM runs WHERE ended_at <= ?", [when])
        )

    # -- listings -----------------------------------------------------------------------------

    def rejects(self, run: int | None = None) -> list[dict[str, Any]]:
        where = "" if run is None else "WHERE run = ?"
        rows = self.query(
            f"SELECT file, line, reason, raw, run FROM rejects {where} ORDER BY run, file, line",
            [] if run is None else [run],
        )
        return [dict(zip(("file", "line", "reason", "raw", "run"), r)) for r in rows]

    def runs(self) -> list[dict[str, Any]]:
        cols = (
            "run",
            "started_at",
            "ended_at",
            "files",
            "lines_read",
            "accepted",
            "duplicates",
            "rejected",
            "timestamped",
            "corrections",
        )
        rows = self.query(f"SELECT {', '.join(cols)} FROM runs ORDER BY run")
        return [dict(zip(cols, r)) for r in rows]

    def corrections(self) -> list[dict[str, Any]]:
        rows = self.query("""SELECT event_id, action, target, reason, file, line, run,
            CASE WHEN target_run IS NULL THEN 'waiting' ELSE 'applied' END
            FROM corrections ORDER BY run, file, line""")
        cols = ("event_id", "action", "target", "reason", "file", "line", "run", "status")
        return [dict(zip(cols, r)) for r in rows]

    # -- closed periods -----------------------------------------------------------------------

    def closing(self, period: str, as_of: int | None = None) -> dict[str, Any] | None:
        """The closing of `period`, if it happened (by run `as_of`)."""
        rows = self.query("SELECT run, closed_at, document->>'currency', "
                          "(document->'issuer')::VARCHAR FROM closings WHERE period = ?"
                          + ("" if as_of is None else " AND run <= ?"),
                          [period] if as_of is None else [period, as_of])
        if not rows:
            return None
        run, closed_at, currency, issuer = rows[0]
        out = {"run": run, "closed_at": closed_at, "currency": currency}
        if issuer is not None:  # closings made before the issuer was kept have none
            out["issuer"] = json.loads(issuer)
        return out

    def issued(self, period: str) -> list[dict[str, Any]]:
        """The invoice records issued when `period` was closed."""
        rows = self.query("SELECT record FROM issued WHERE period = ? ORDER BY customer_id",
                          [period])
        return [json.loads(r[0]) for r in rows]

    def issued_before(self, customer_id: str, period: str,
                      as_of: int | None = None) -> dict[str, Any] | None:
        """The latest invoice record issued to a customer for a period before `period` (by
        billing period: a time zone or anchor edited since may have moved the cycles)."""
        rows = self._issued("i.customer_id = ? AND i.period < ?", [customer_id, period],
                            as_of, "i.period DESC LIMIT 1")
        return rows[0][1] if rows else None

    def issued_up_to(self, period: str, as_of: int | None = None) -> list[tuple[str, Any]]:
        """(customer_id, record) of every invoice issued for a period up to `period`, oldest
        cycle first."""
        return self._issued("i.period <= ?", [period], as_of, "i.customer_id, i.period_end")

    def _issued(self, where: str, params: list[Any], as_of: int | None,
                order: str) -> list[tuple[str, Any]]:
        """Issued records of closings made by run `as_of` (all when None). `where` and
        `order` are this module's constants; values are bound."""
        if as_of is not None:
            where, params = f"{where} AND c.run <= ?", [*params, as_of]
        rows = self.query(f"SELECT i.customer_id, i.record FROM issued i JOIN closings c "
                          f"ON c.period = i.period WHERE {where} ORDER BY {order}", params)
        return [(r[0], json.loads(r[1])) for r in rows]

    def write_closing(self, period: str, run: int, document: dict[str, Any],
                      records: list[tuple[str, dt.datetime, dt.datetime, dict[str, Any]]]) -> None:
        """Store a period's issued invoices, all or nothing."""
        self.con.execute("BEGIN")
        try:
            self.con.execute("INSERT INTO closings VALUES (?, ?, ?, ?)",
                             [period, run, dt.datetime.now(dt.timezone.utc), json.dumps(document)])
            for customer_id, start, end, record in records:
                self.con.execute("INSERT INTO issued VALUES (?, ?, ?, ?, ?)",
                                 [period, customer_id, start, end, json.dumps(record)])
            self.con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            raise

    # -- ingest -------------------------------------------------------------------------------

    def ingest(
        self, inputs: list[str], *, strict: bool = False, progress: Progress | None = None,
        skip: Sequence[str] = (),
    ) -> IngestResult:
        """Store events from files, directories, globs or `-` (stdin) as one run; files in
        `skip` are left out even when a directory or glob finds them."""
        if self.read_only:  # pragma: no cover - the CLI never asks this
            raise DatabaseError("the database is open read-only")
        from .ingest import ingest  # reports never load the ingest pipeline

        return ingest(self, inputs, strict=strict, progress=progress, skip=skip)


# ---------------------------------------------------------------------------------------------


def _connect(path: str | None, read_only: bool) -> duckdb.DuckDBPyConnection:
    # DuckDB opens a CSV, JSON or Parquet file as an empty in-memory database (an ingest
    # into it vanished at exit) and a SQLite file by downloading an extension: a file
    # without DuckDB's magic bytes is refused first.
    if path is not None and os.path.isfile(path) and os.path.getsize(path) > 0:
        with open(path, "rb") as f:
            if f.read(12)[8:] != b"DUCK":
                raise DatabaseError(
                    f"{path}: cannot open the database: this file is not a DuckDB database",
                    hint="Pass --db with a usagebill database, or a new file name.",
                )
    try:
        if path is None:
            return duckdb.connect(":memory:")
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as e:
        text = str(e)
        if "lock" in text.lower():
            pid = text.split("(PID ")[-1].split(")")[0] if "(PID " in text else "?"
            raise DatabaseError(
                f"{path}: in use by another process (PID {pid})",
                hint="Wait for it to finish, then try again (an ingest holds the database "
                "while it runs; a report holds it against ingests).",
            ) from None
        raise DatabaseError(
            f"{path}: cannot open the database: {_first_line(e)}",
            hint="Check the path and its permissions.",
        ) from None
    except duckdb.Error as e:
        raise DatabaseError(
            f"{path}: cannot open the database: {_first_line(e)}",
            hint="Is it a DuckDB file written by this version?",
        ) from None


def _setting(value: str) -> str:
    """Settings cannot be bound parameters; these come from our own code or env."""
    return value.replace("'", "''")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _option(message: str, hint: str) -> UsagebillError:
    from .errors import OptionError

    return OptionError(message, hint=hint)
