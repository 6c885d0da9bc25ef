"""The `usagebill` command: parse flags, call the library, render, map errors to exit codes.

Each command is a few lines over the library (the sqlite-utils habit): everything here can be
done from Python too. Errors are caught once, in `App.main`. Heavy modules (duckdb, pydantic)
are imported inside the commands so that `usagebill --help` answers at once.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import signal
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from .errors import OptionError, UsagebillError
from .money import count

if TYPE_CHECKING:
    from rich.console import Console

    from .config import Config
    from .store import Store

EXIT_INTERNAL = 3


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"  # documents: `invoice --format html|pdf --output DIR` only
    pdf = "pdf"


DOCUMENT_FORMATS = (Format.html, Format.pdf)


class App(TyperGroup):
    """Catches every error once: one or two plain lines on stderr and the SPEC §7 exit code."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except UsagebillError as e:
            for line in e.lines():
                _err(line)
            code = e.exit_code
        except typer.TyperException as e:  # click's usage errors: bad flags, missing arguments
            code = _usage_error(e, self.commands, sys.argv[1:] if args is None else args)
        except (_Interrupted, KeyboardInterrupt):
            code = _interrupted()
        except BrokenPipeError:
            code = 0
        except Exception as e:  # a bug: say so plainly, no traceback unless asked
            if str(e) == "Query interrupted":  # Ctrl-C (or SIGTERM) while DuckDB works
                code = _interrupted()
            elif os.environ.get("USAGEBILL_DEBUG"):
                raise
            else:
                code = _unexpected(e)
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # typer would turn it into a silent exit 130
            raise _Interrupted from None


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM during a command."""


_SIGNAL = [2]  # the signal that stopped the command: SIGINT unless `_terminate` saw SIGTERM


def _interrupted() -> int:
    """Every command is one transaction (or stores nothing): stopped, it leaves no trace."""
    _err("interrupted: nothing of this command was stored")
    return 128 + _SIGNAL[0]


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM stops a command as Ctrl-C does: rolled back, temporary files removed."""
    _SIGNAL[0] = signum
    raise KeyboardInterrupt


def _unexpected(e: Exception) -> int:
    """A damaged database file is the user's to mend (exit 2); anything else is a bug."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if "Corrupt database file" in str(e):  # DuckDB finds the damage when it reads a block
        _err(f"the database file is damaged: {first}")
        _err("Restore it from a backup, or ingest the event files into a new database.")
        return 2
    if type(e).__name__ == "OutOfMemoryException":  # a report's query, past the limit
        _err(f"out of memory: {first}")
        _err("Nothing was stored. Raise USAGEBILL_MEMORY_LIMIT (default 512MB).")
        return 2
    _err(f"internal error: {type(e).__name__}: {e}")
    _err("This is a bug in usagebill; set USAGEBILL_DEBUG=1 to see where it happened.")
    return EXIT_INTERNAL


def _usage_error(e: Exception, commands: Any, args: Any) -> int:
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        command = ctx.command_path
    else:  # the option parser's errors (an option without its value) come without a context
        given = next((a for a in args if a in commands), None)
        command = f"usagebill {given}" if given else "usagebill"
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
        typer.echo(ctx.get_help(), err=True)
        return 2
    # The command path begins with the program's name: no `usagebill:` prefix before it.
    print(f"{command}: {message}\nTry '{command} --help'.", file=sys.stderr)
    return int(getattr(e, "exit_code", 2))


def _err(line: str) -> None:
    print(f"usagebill: {line}" if not line.startswith("  ") else line, file=sys.stderr)


app = typer.Typer(
    cls=App,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no rich import, so --help answers at once
    help="Usage-based billing over local files: meters in YAML, events in JSON Lines, "
    "DuckDB underneath.",
)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="USAGEBILL_CONFIG", help="Meters, products, customers."),
]
DbOpt = Annotated[Path, typer.Option("--db", envvar="USAGEBILL_DB", help="The DuckDB database.")]


def _tabular_only(ctx: typer.Context, value: Format | None) -> Format | None:
    """--format html|pdf is for invoices (documents); every other report is table/json/csv."""
    if value in DOCUMENT_FORMATS:
        assert value is not None
        raise OptionError(
            f"--format {value.value}: `usagebill {ctx.info_name}` writes table, json or csv",
            hint="HTML and PDF invoices: `usagebill invoice --format html|pdf --output DIR`; "
            "a usage page: `usagebill report --period P --output FILE.html`.",
        )
    return value


FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="table, json or csv.", callback=_tabular_only)
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report here instead of stdout.")
]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="Only what runs 1..RUN stored (or runs ended by a timestamp)."),
]
DEFAULT_CONFIG = Path("meters.yaml")
DEFAULT_DB = Path("usagebill.duckdb")


# -- helpers ----------------------------------------------------------------------------------


def _config(path: Path) -> Config:
    from .config import load_config

    return load_config(path)


def _store(path: Path, *, write: bool = False) -> Store:
    from .store import Store

    return Store.open(path, read_only=not write)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _emit(text: str, output: Path | None) -> None:
    """The report goes to stdout (or --output), and only the report."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OptionError(f"--output {output}: cannot write ({e.strerror})") from None


def _emit_table(draw: Any, output: Path | None) -> None:
    from .render import console

    if output is None:
        draw(console())
        return
    text = io.StringIO()
    draw(console(text))
    _emit(text.getvalue(), output)


def _report(
    format: Format,
    output: Path | None,
    *,
    json: Callable[[], Any],
    csv: Callable[[], str],
    table: Callable[[Console], Any],
) -> None:
    """A report in the chosen format: only the chosen one is built."""
    from .render import to_json

    if format is Format.json:
        _emit(to_json(json()), output)
    elif format is Format.csv:
        _emit(csv(), output)
    else:
        _emit_table(table, output)


def _warn(lines: list[str]) -> None:
    for line in lines:
        _err(f"warning: {line}")


def _fail(message: str, hint: str | None = None) -> NoReturn:
    raise OptionError(message, hint=hint)


# -- commands ---------------------------------------------------------------------------------


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write meters.yaml.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter meters.yaml."""
    from importlib.resources import files

    target = directory / "meters.yaml"
    if target.exists() and not force:
        _fail(f"{target} already exists", "Use --force to overwrite it.")
    if directory.exists() and not directory.is_dir():
        _fail(f"{directory}: is a file, not a directory", "Give a directory: `usagebill init DIR`.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(files("usagebill").joinpath("data/meters.yaml").read_text("utf-8"),
                          "utf-8")
    except OSError as e:
        _fail(f"{e.filename or target}: cannot write ({e.strerror})",
              "Give a directory you can write to: `usagebill init DIR`.")
    _err(f"wrote {target}; check it with `usagebill validate -c {target}`")


@app.command()
def validate(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Check the config and list its meters, credit pools, products and customers."""
    from .render import config_summary, console

    cfg = _config(config)
    config_summary(cfg, console())
    _err(
        f"{config}: OK: {count(len(cfg.meters), 'meter')}, "
        f"{count(len(cfg.credits), 'credit pool')}, {count(len(cfg.products), 'product')}, "
        f"{count(len(cfg.customers), 'customer')}"
    )


@app.command()
def ingest(
    paths: Annotated[
        list[str], typer.Argument(help="Files, directories, globs, .gz, or - for stdin.")
    ],
    db: DbOpt = DEFAULT_DB,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="If any line would be rejected, store nothing (exit 1)."),
    ] = False,
) -> None:
    """Store events from JSON Lines files as one run (one transaction)."""
    from .store import Store

    store = Store.open(db)
    try:
        result = _with_progress(lambda cb: store.ingest(paths, strict=strict, progress=cb), paths)
    finally:
        store.close()
    _err(f"run {result.run}: {_ingest_summary(result)}")
    if result.rejected:
        _err(f"rejected lines are kept: see `usagebill rejects --run {result.run}`")
    for period, n in result.closed.items():
        _err(
            f"warning: stored {count(n, 'event')} for closed period {period}; "
            f"`usagebill invoice --period {period}` shows the adjustments"
        )


def _ingest_summary(result: Any) -> str:
    """The counts of an ingest (shared by `ingest` and `replay`)."""
    parts = [
        f"{result.accepted:,} accepted",
        count(result.duplicates, "duplicate"),
        f"{result.rejected:,} rejected",
        f"{result.timestamped:,} timestamped at ingest",
    ]
    if result.corrections:
        parts.append(f"{count(result.corrections, 'correction')} among them")
    return (
        f"read {count(result.read, 'line')} from {count(len(result.files), 'file')}"
        f": {', '.join(parts)} ({result.seconds:.2f} s, {result.per_second:,.0f} events/s)"
    )


def _with_progress(work: Any, paths: list[str]) -> Any:
    """A progress bar on a terminal for inputs over a few MB; nothing on a pipe."""
    if not sys.stderr.isatty():
        return work(None)
    total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    if total < 4 << 20 and all(os.path.isfile(p) for p in paths):
        return work(None)
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "ingest",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_stderr(),
        transient=True,
    ) as bar:
        task = bar.add_task("ingest", total=None)
        return work(lambda done, all_: bar.update(task, completed=done, total=all_))


@app.command()
def rejects(
    db: DbOpt = DEFAULT_DB,
    run: Annotated[int | None, typer.Option("--run", help="Only this run's rejects.")] = None,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Rejected lines: file, line, reason and raw text."""
    from .render import shorten, simple_table, to_csv

    with _store(db) as store:
        rows = store.rejects(run)
    _report(
        format,
        output,
        json=lambda: [{k: r[k] for k in ("file", "line", "reason", "raw")} for r in rows],
        csv=lambda: to_csv(
            ["file", "line", "reason", "raw", "run"],
            ([r["file"], r["line"], r["reason"], r["raw"], r["run"]] for r in rows),
        ),
        table=lambda out: simple_table(
            f"{len(rows):,} rejected lines",
            ["run", "file", "line", "reason", "raw"],
            ([r["run"], r["file"], r["line"], r["reason"], shorten(r["raw"])] for r in rows),
            out,
            right=["run", "line"],
        ),
    )


@app.command()
def usage(
    period: Annotated[
        str, typer.Option("--period", "-p", help="2026-10 or 2026-10-01..2026-10-15")
    ],
    customer: Annotated[str | None, typer.Option("--customer", help="One customer.")] = None,
    meter: Annotated[str | None, typer.Option("--meter", help="One meter.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="day: one row per local day.")] = None,
    as_of: AsOfOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Quantity per customer and meter (and day), with skipped-event counts."""
    from .cycles import parse_period
    from .render import usage_csv, usage_table
    from .usage import usage_report

    if by not in (None, "day"):
        _fail(f"--by {by}: only --by day is supported")
    cfg = _config(config)
    p = parse_period(period)
    with _store(db) as store:
        report = usage_report(
            store,
            cfg,
            p,
            customer=customer,
            meter=meter,
            by_day=by == "day",
            as_of=store.resolve_as_of(as_of),
        )
    _warn(
        [
            f"{count(s.events, 'event')} skipped by {s.meter_id or 'every meter'}: {s.reason}"
            for s in report.skipped
        ]
    )
    _report(
        format,
        output,
        json=report.to_json,
        csv=lambda: usage_csv(report),
        table=lambda out: usage_table(report, out),
    )


@app.command()
def invoice(
    period: Annotated[
        str, typer.Option("--period", "-p", help="The month cycles start in: 2026-10")
    ],
    customer: Annotated[str | None, typer.Option("--customer", help="One customer.")] = None,
    as_of: AsOfOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
    format: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="table, json or csv; html or pdf write one file per invoice and index.html "
            "into --output DIR.",
        ),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the report here instead of stdout (html, pdf: a directory).",
        ),
    ] = None,
) -> None:
    """One invoice per configured customer whose billing cycle starts in the period."""
    from .closing import as_issued, invoice_document
    from .cycles import parse_month

    cfg = _config(config)
    month = parse_month(period)
    if format in DOCUMENT_FORMATS:
        from .documents import check_options

        check_options(output, format.value)  # before any work: a missing extra, no --output
    with _store(db) as store:
        run = store.resolve_as_of(as_of)
        doc = invoice_document(store, cfg, month, customer=customer, as_of=run)
        if (closing := store.closing(str(month), run)) is not None:
            cfg = as_issued(cfg, closing)  # a closed period's documents: its issuer, its numbers
    _render_invoices(doc, format, output, cfg)


def _render_invoices(
    doc: Any, format: Format, output: Path | None, config: Config | None = None
) -> None:
    from .render import invoice_csv, invoice_table

    _warn([w.message for w in doc.warnings])
    if format in DOCUMENT_FORMATS:
        if config is None:  # a caller that has no issuer to print
            _fail(f"--format {format.value}: only `usagebill invoice` writes documents")
        from .documents import write_documents

        written = write_documents(doc, config, output, format.value)
        n = len(written) - 1
        _err(
            f"wrote {n} {format.value.upper()} invoice{'s' if n != 1 else ''} and "
            f"{written[-1].name} to {written[-1].parent}"
        )
    else:
        _report(
            format,
            output,
            json=doc.to_json,
            csv=lambda: invoice_csv(doc),
            table=lambda out: invoice_table(doc, out),
        )


@app.command()
def credits(
    period: Annotated[
        str | None,
        typer.Option(
            "--period",
            "-p",
            help="Up to the cycle starting in this month (default: the month of the latest event).",
        ),
    ] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="One customer.")] = None,
    as_of: AsOfOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Credit pool ledgers, cycle by cycle: granted, rolled over, consumed, expired, overage."""
    import datetime as dt

    from .cycles import Month, parse_month
    from .invoices import credit_ledgers, ledger_json
    from .render import simple_table, to_csv

    cfg = _config(config)
    with _store(db) as store:
        if period is None:  # the month of the latest event, or this month before any
            latest = store.scalar("SELECT max(ts) FROM events") or dt.datetime.now(dt.timezone.utc)
            local = latest.astimezone(cfg.tz)
            month = Month(local.year, local.month)
        else:
            month = parse_month(period)
        ledgers = credit_ledgers(
            store, cfg, month, customer=customer, as_of=store.resolve_as_of(as_of)
        )
    rows = [r for c, pool, entries in ledgers for r in ledger_json(c, pool, entries, cfg.currency)]
    header = list(rows[0]) if rows else ["customer_id", "credit_id", "cycle_start"]
    shown = ["customer_id", "credit_id", "cycle_start", "balance_before", "rolled_over",
             "granted", "consumed", "expired", "overage_credits", "carried", "balance_after"]
    _report(
        format,
        output,
        json=lambda: rows,
        csv=lambda: to_csv(header, ([r[h] for h in header] for r in rows)),
        table=lambda out: simple_table(
            f"Credit ledgers up to {month}", shown, ([r[h] for h in shown] for r in rows), out,
            right=shown[3:]),
    )


@app.command()
def close(
    period: Annotated[str, typer.Option("--period", "-p", help="The month to close: 2026-10")],
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """Issue the period's invoices: store them as they are now; later changes become
    adjustments."""
    from .closing import close_period
    from .cycles import parse_month

    cfg = _config(config)
    month = parse_month(period)
    if output is not None:  # closing cannot be undone: find out first that the output works
        _emit("", output)
    with _store(db, write=True) as store:
        doc = close_period(store, cfg, month)
        run = store.latest_run()
    _render_invoices(doc, format, output)
    _err(f"closed {month}: {count(len(doc.invoices), 'invoice')} issued, reflecting runs 1 to "
         f"{run}")


@app.command()
def explain(
    period: Annotated[str, typer.Option("--period", "-p", help="The month the cycle starts in.")],
    customer: Annotated[str, typer.Option("--customer", help="The customer to explain.")],
    meter: Annotated[str | None, typer.Option("--meter", help="Only this meter's line.")] = None,
    events: Annotated[
        Path | None, typer.Option("--events", help="Also write the events behind the lines "
                                  "to this CSV file.")
    ] = None,
    as_of: AsOfOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
    format: FormatOpt = Format.table,
    output: OutputOpt = None,
) -> None:
    """How each invoice line came about: events, free units, each pricing step, rounding."""
    from . import explain as ex
    from .cycles import parse_month
    from .render import to_csv, to_json

    if format is Format.csv:
        _fail("explain --format csv: use --events FILE for a spreadsheet of the events")
    cfg = _config(config)
    month = parse_month(period)
    with _store(db) as store:
        run = store.resolve_as_of(as_of)
        doc = ex.explain(store, cfg, month, customer, meter=meter, as_of=run)
        rows = (ex.explain_events(store, cfg, month, customer, meter=meter, as_of=run)
                if events else None)
    if events is not None and rows is not None:
        try:
            events.write_text(to_csv(ex.EVENTS_HEADER, rows), encoding="utf-8")
        except OSError as e:
            _fail(f"--events {events}: cannot write ({e.strerror})")
        _err(f"wrote {count(len(rows), 'event')} to {events}")
    if format is Format.json:
        _emit(to_json(doc), output)
    else:
        _emit("\n".join(ex.explain_text(doc)) + "\n", output)


@app.command()
def runs(
    db: DbOpt = DEFAULT_DB, format: FormatOpt = Format.table, output: OutputOpt = None
) -> None:
    """Every ingest run: when, which files, how many lines of each kind."""
    from .render import simple_table, to_csv

    with _store(db) as store:
        rows = store.runs()
    docs = [{**r, "started_at": r["started_at"].isoformat() if r["started_at"] else None,
             "ended_at": r["ended_at"].isoformat() if r["ended_at"] else None} for r in rows]
    header = ["run", "started_at", "ended_at", "files", "lines_read", "accepted", "duplicates",
              "rejected", "timestamped", "corrections"]
    def files(names: list[str] | None) -> str:
        names = names or []
        return ", ".join(names) if len(names) <= 2 else f"{names[0]} and {len(names) - 1} more"

    _report(
        format,
        output,
        json=lambda: docs,
        csv=lambda: to_csv(header, ([*(d[h] for h in header[:3]), " ".join(d["files"] or []),
                                     *(d[h] for h in header[4:])] for d in docs)),
        table=lambda out: simple_table(
            "Ingest runs", header,
            ([d["run"], (d["started_at"] or "")[:19], (d["ended_at"] or "")[:19],
              files(d["files"]), *(d[h] for h in header[4:])] for d in docs),
            out, right=["run", *header[4:]]),
    )


@app.command()
def corrections(
    db: DbOpt = DEFAULT_DB, format: FormatOpt = Format.table, output: OutputOpt = None
) -> None:
    """Corrections (void / amend) and whether each has found its target yet."""
    from .render import simple_table, to_csv

    with _store(db) as store:
        rows = store.corrections()
    header = ["event_id", "action", "target", "reason", "file", "line", "run", "status"]
    _report(
        format,
        output,
        json=lambda: rows,
        csv=lambda: to_csv(header, ([r[h] for h in header] for r in rows)),
        table=lambda out: simple_table(
            "Corrections", header, ([r[h] for h in header] for r in rows), out,
            right=["line", "run"]),
    )


# -- replay and snapshots ---------------------------------------------------------------------
# The engineers' and CI jobs' workflow (SPEC §6): bill raw logs in a throwaway in-memory
# database, check invoices against a committed snapshot, preview a price change.

PeriodsOpt = Annotated[
    list[str],
    typer.Option(
        "--period",
        "-p",
        help="A month cycles start in (2026-10) or a range of months (2026-07..2026-09); "
        "repeat for several.",
    ),
]
MAX_REJECTS_SHOWN = 10


def _again(*words: Any) -> str:
    """A command line a user can paste (for hints)."""
    import shlex

    return shlex.join(["usagebill", *(str(w) for w in words)])


def _periods_args(period: list[str]) -> list[str]:
    return [w for p in period for w in ("--period", p)]


def _config_args(config: Path) -> list[str]:
    return [] if config == DEFAULT_CONFIG else ["-c", str(config)]


def _period_warnings(docs: list[Any]) -> None:
    many = len(docs) > 1
    for doc in docs:
        _warn([f"{doc.period}: {w.message}" if many else w.message for w in doc.warnings])


def _render_periods(docs: list[Any], format: Format, output: Path | None) -> None:
    """One period renders exactly as `invoice` does; several: one table per period, one CSV
    (its `period` column tells them apart), or `{"periods": [...]}` as JSON."""
    from .render import invoice_csv, invoice_table
    from .snapshot import snapshot_json

    if len(docs) == 1:
        _render_invoices(docs[0], format, output)
        return
    _period_warnings(docs)
    def csv() -> str:
        texts = [invoice_csv(d) for d in docs]
        return texts[0] + "".join(t.split("\n", 1)[1] for t in texts[1:])

    _report(
        format,
        output,
        json=lambda: snapshot_json(docs),
        csv=csv,
        table=lambda out: [invoice_table(d, out) for d in docs],
    )


def _replay_report(result: Any, store: Store) -> None:
    """What `ingest` says, plus the rejected lines themselves: the database goes away."""
    _err(f"replay: {_ingest_summary(result)}")
    if result.rejected:
        rows = store.rejects()
        _err(f"{len(rows):,} rejected lines are not billed:")
        for r in rows[:MAX_REJECTS_SHOWN]:
            _err(f"  {r['file']}:{r['line']}: {r['reason']}")
        if len(rows) > MAX_REJECTS_SHOWN:
            _err(
                f"  … and {len(rows) - MAX_REJECTS_SHOWN:,} more "
                "(`usagebill ingest` the files, then `usagebill rejects` lists them all)"
            )
    if result.timestamped:
        _warn(
            [
                f"{result.timestamped:,} events have no timestamp and were stamped with the "
                "time of this replay: their invoices depend on when it runs"
            ]
        )


@app.command()
def replay(
    paths: Annotated[
        list[str], typer.Argument(help="Event files, directories, globs, .gz, or - for stdin.")
    ],
    period: PeriodsOpt,
    check: Annotated[
        Path | None,
        typer.Option(
            "--check",
            metavar="SNAPSHOT",
            help="Compare with this snapshot: exit 1 with a diff when they differ.",
        ),
    ] = None,
    write: Annotated[
        Path | None,
        typer.Option("--write", metavar="SNAPSHOT", help="Write the invoices as a snapshot."),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            metavar="CONFIG",
            help="A second config: old and new total per customer.",
        ),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="If any line would be rejected, exit 1.")
    ] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    format: Annotated[
        Format | None,
        typer.Option("--format", "-f", help="table, json or csv.", callback=_tabular_only),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Bill event logs without touching any database: ingest them into memory, then print the
    invoices, check them against a snapshot, write a snapshot, or compare two configs."""
    from . import snapshot as snap
    from .cycles import parse_months
    from .render import to_csv, to_json
    from .store import Store

    modes = [n for n, v in (("--check", check), ("--write", write), ("--compare", compare)) if v]
    if len(modes) > 1:
        _fail(f"{' and '.join(modes)}: use one at a time")
    if (check or write) and (format or output):
        _fail(f"{modes[0]} prints no report: drop --format and --output")
    cfg = _config(config)
    other = _config(compare) if compare else None
    months = parse_months(period)
    args = [*paths, *_periods_args(period), *_config_args(config),
            *(["--strict"] if strict else [])]
    rewrite = _again("replay", *args, "--write", check) if check else ""
    expected = snap.load_snapshot(check, rewrite) if check else None
    snapshots = [str(p) for p in (check, write) if p is not None]  # never read as events
    with Store.open(None) as store:
        result = _with_progress(lambda cb: store.ingest(
            paths, strict=strict, progress=cb, skip=snapshots), paths)
        _replay_report(result, store)
        docs = snap.invoice_documents(store, cfg, months)
        new = snap.invoice_documents(store, other, months) if other else None
    if check is not None and expected is not None:
        _period_warnings(docs)
        ok = snap.check_snapshot(check, expected, docs, rewrite)
        _err(f"{check}: matches the {ok.invoices:,} invoices of {', '.join(ok.periods)}")
    elif write is not None:
        _period_warnings(docs)
        snap.write_snapshot(write, docs)
        _err(f"wrote {write}: {sum(len(d.invoices) for d in docs):,} invoices")
    elif compare is not None and new is not None:
        _period_warnings(docs)
        for base, changed in zip(docs, new):  # the other config's own warnings, once
            seen = {(w.kind, w.customer_id, w.meter_id, w.events) for w in base.warnings}
            _warn(
                [
                    f"{compare}: {base.period}: {w.message}"
                    for w in changed.warnings
                    if (w.kind, w.customer_id, w.meter_id, w.events) not in seen
                ]
            )
        items = snap.comparisons(docs, new)
        fmt = format or Format.table
        if fmt is Format.json:
            _emit(to_json(snap.comparison_json(items)), output)
        elif fmt is Format.csv:
            _emit(to_csv(snap.COMPARISON_CSV_HEADER, snap.comparison_rows(items)), output)
        else:
            _emit_table(
                lambda out: snap.comparison_table(items, str(config), str(compare), out), output
            )
    else:
        _render_periods(docs, format or Format.table, output)


snapshot_app = typer.Typer(
    no_args_is_help=True,
    help="Canonical invoice snapshots for CI, from the database (see also `replay --check`).",
)
app.add_typer(snapshot_app, name="snapshot")


@snapshot_app.command("write")
def snapshot_write(
    file: Annotated[Path, typer.Argument(help="The snapshot file to write (JSON).")],
    period: PeriodsOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Write the period's invoices as canonical JSON (sorted keys, indent 2, final newline)."""
    from . import snapshot as snap
    from .cycles import parse_months

    cfg = _config(config)
    months = parse_months(period)
    with _store(db) as store:
        docs = snap.invoice_documents(store, cfg, months)
    _period_warnings(docs)
    snap.write_snapshot(file, docs)
    _err(f"wrote {file}: {sum(len(d.invoices) for d in docs):,} invoices")


@snapshot_app.command("check")
def snapshot_check(
    file: Annotated[Path, typer.Argument(help="The snapshot file to compare with.")],
    period: PeriodsOpt,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Compare the period's invoices with a snapshot: exit 0 when equal, exit 1 with a diff
    (period, customer, line, field: expected, actual) when not."""
    from . import snapshot as snap
    from .cycles import parse_months

    cfg = _config(config)
    months = parse_months(period)
    db_args = [] if db == DEFAULT_DB else ["--db", str(db)]
    args = [*_periods_args(period), *_config_args(config), *db_args]
    hint = _again("snapshot", "write", *args, file)
    expected = snap.load_snapshot(file, hint)
    with _store(db) as store:
        docs = snap.invoice_documents(store, cfg, months)
    _period_warnings(docs)
    ok = snap.check_snapshot(file, expected, docs, hint)
    _err(f"{file}: matches the {ok.invoices:,} invoices of {', '.join(ok.periods)}")


@app.command()
def report(
    period: Annotated[
        str, typer.Option("--period", "-p", help="2026-10 or 2026-10-01..2026-10-15")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
    top: Annotated[
        int, typer.Option("--top", min=1, help="How many customers to list per table.")
    ] = 5,
    as_of: AsOfOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    db: DbOpt = DEFAULT_DB,
) -> None:
    """One self-contained HTML page: per meter a daily chart, the top customers, the change
    against the previous period, and the period's warnings."""
    from .cycles import parse_period
    from .report import build_report, require_matplotlib, write_report

    require_matplotlib()  # before any work: say at once that the extra is missing
    cfg = _config(config)
    p = parse_period(period)
    with _store(db) as store:
        page = build_report(store, cfg, p, as_of=store.resolve_as_of(as_of), top=top)
    write_report(page, output)
    _err(f"wrote {output}: {len(page.meters)} meters, {page.period_label}")


def main() -> NoReturn:
    """Console-script entry point. The process ends with `os._exit` once the output is
    flushed: by then every file and the database are closed (context managers), and tearing
    the interpreter down (DuckDB, pydantic, typer, rich) took about 0.1 s of every command.
    The cycle collector runs every 50,000 allocations, not 700: a command builds objects that
    live to its end (modules, the config, the invoices), and the default passes over them
    again and again took 6% of an invoice of 1,000 customers (cycles are still collected)."""
    signal.signal(signal.SIGTERM, _terminate)
    gc.set_threshold(50_000)
    code = app(standalone_mode=False)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone (`| head`): no loss
            stream.flush()
    os._exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
