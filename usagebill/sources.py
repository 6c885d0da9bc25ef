"""Where events come from: files, directories, globs, `.gz` and stdin.

The fast path hands each file straight to DuckDB. When DuckDB's reader refuses a file
(invalid UTF-8, a line over the size limit, a stray carriage return, a truncated gzip),
`sanitize` walks it once in Python, blanks out the lines it cannot take (so line numbers stay
exact) and says why, and DuckDB reads the cleaned copy. Only broken files pay for that walk.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

EVENT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
# Longer lines are rejected. DuckDB's own default (2,000,000 bytes, and a line of exactly
# max_line_size is refused) differs: `ingest.STAGE_SQL` passes MAX_LINE_BYTES + 1, so the
# reader and `sanitize` agree on every length (a mismatch made the run retry forever).
MAX_LINE_BYTES = 2 * 1024 * 1024
STDIN = "<stdin>"


@dataclass(frozen=True)
class Source:
    """One input: `label` is what users see and what is stored; `path` is what is read."""

    label: str
    path: str

    @property
    def gzipped(self) -> bool:
        return self.path.lower().endswith(".gz")  # as DuckDB's reader decides

    @property
    def size(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str
    raw: str


def expand(inputs: list[str], workdir: str, skip: Sequence[str] = ()) -> list[Source]:
    """Files, directories (searched for event files), globs and `-`, in the order of their
    real paths (links resolved), then stdin: neither the order they are given in nor how a
    path is written (`./b`, `/abs/b`, `../x/b`, a link) changes which copy of an event is read
    first. A file named twice, in any spelling, is read once. `skip`: files never read as
    events (a snapshot kept beside the logs it checks)."""
    found: dict[str, Source] = {}

    def add(p: str) -> None:  # keyed by the file itself; the label is the first spelling
        found.setdefault(os.path.realpath(p), Source(p, p))

    for item in inputs:
        if item == "-":
            if STDIN not in found:  # `-` twice is stdin once, like any input given twice
                found[STDIN] = _read_stdin(workdir)
            continue
        path = Path(item)
        if path.is_dir():
            files = _event_files(path)
            if not files:
                raise InputError(
                    f"{item}: no event files in this directory",
                    hint="Event files end in " + ", ".join(EVENT_SUFFIXES) + ".",
                )
            for p in files:
                add(str(p))
        elif path.is_file():
            add(str(path))
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{item}: no files match this pattern")
            for p in matches:
                add(p)
        elif path.exists():
            raise InputError(f"{item}: not a regular file",
                             hint="To read a pipe, give - and send it to stdin: cmd | usagebill "
                             "ingest -")
        else:
            raise InputError(
                f"{item}: no such file or directory",
                hint="Check the path; use - to read events from stdin.",
            )
    skipped = {os.path.realpath(p) for p in skip}
    found = {real: s for real, s in found.items() if real not in skipped}  # (stdin's: STDIN)
    for source in found.values():
        if not os.access(source.path, os.R_OK):
            raise InputError(f"{source.label}: permission denied",
                             hint="Make the file readable for this user, or leave it out.")
    order = sorted(found.items(), key=lambda kv: (kv[1].label == STDIN, kv[0]))
    return [_literal(s, workdir, n) for n, (_, s) in enumerate(order)]


def _literal(source: Source, workdir: str, n: int) -> Source:
    """DuckDB reads every path as a pattern (and `~` at its start as home): a file named
    `events[1].jsonl` would read `events1.jsonl`. The real path is read (`link/../a.jsonl` is
    where the link leads, as the OS has it), and a file whose path has `*`, `?` or `[` through
    a link with a plain name (a copy where links cannot be made)."""
    path = os.path.realpath(source.path)
    if not glob.has_magic(path):
        return Source(source.label, path)
    link = os.path.join(workdir, f"input-{n}" + (".jsonl.gz" if source.gzipped else ".jsonl"))
    try:
        os.symlink(path, link)
    except OSError:
        shutil.copyfile(path, link)
    return Source(source.label, link)


def _event_files(directory: Path) -> list[Path]:
    """The event files under a directory, hidden ones skipped, linked folders followed (each
    folder once); a folder that cannot be read or a link to nothing is an error, not a
    silent gap."""

    def refuse(e: OSError) -> None:
        raise InputError(f"{e.filename}: cannot read this directory ({e.strerror})")

    files, seen = [], set()
    for root, dirs, names in os.walk(directory, onerror=refuse, followlinks=True):
        if (real := os.path.realpath(root)) in seen:  # a link back to a folder already read
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in names:
            path = os.path.join(root, n)
            if n.startswith("."):
                continue
            if not os.path.exists(path):  # a link to a folder or file not there (unmounted?)
                raise InputError(f"{path}: a link that leads nowhere (missing, or a loop)",
                                 hint="Restore what it points to, or remove the link.")
            if n.endswith(EVENT_SUFFIXES) and os.path.isfile(path):
                files.append(Path(path))
    return sorted(files)


def _read_stdin(workdir: str) -> Source:
    """DuckDB reads files, so stdin is copied to one first (in chunks, not lines)."""
    data = sys.stdin.buffer
    head = data.read(2)
    suffix = ".jsonl.gz" if head == b"\x1f\x8b" else ".jsonl"
    path = os.path.join(workdir, "stdin" + suffix)
    try:
        with open(path, "wb") as out:
            out.write(head)
            shutil.copyfileobj(data, out, 1 << 20)
    except OSError as e:  # a full disk, a file-size limit
        raise InputError(
            f"{STDIN}: cannot copy the events to {workdir} ({e.strerror}); nothing was stored",
            hint="Free space there or point TMPDIR at a disk with room, or pass the file itself.",
        ) from None
    return Source(STDIN, path)


def _chunks(source: Source) -> Iterator[bytes]:
    """The file's bytes; for gzip every member, raising `_Truncated` where the data stops early."""
    with open(source.path, "rb") as f:
        if not source.gzipped:
            yield from iter(lambda: f.read(1 << 20), b"")
            return
        decomp, fed, members = zlib.decompressobj(wbits=47), False, 0
        while block := f.read(1 << 20):
            while block:
                if not fed and members and not block.strip(b"\0"):
                    break  # zero padding after the last member, as gzip(1) allows
                fed = True
                try:
                    yield decomp.decompress(block)
                except zlib.error as e:
                    raise _Truncated(f"the gzip data is corrupt ({e})", corrupt=True) from None
                block = b""
                if decomp.eof:
                    block, decomp, fed = decomp.unused_data, zlib.decompressobj(wbits=47), False
                    members += 1
        if fed:
            yield decomp.flush()
            raise _Truncated("the gzip file is truncated: it ends before its last line")


def contains_byte(source: Source, byte: bytes) -> bool:
    """Whether the file's data holds `byte` anywhere (a search of whole chunks, not lines)."""
    try:
        return any(byte in chunk for chunk in _chunks(source))
    except _Truncated:
        return True  # broken data: let `sanitize` say where


class _Truncated(Exception):
    """The data stops early (`corrupt`: at data that fails gzip's checks); `partial` is the
    incomplete last line, if any."""

    partial = b""

    def __init__(self, why: str, corrupt: bool = False) -> None:
        super().__init__(why)
        self.corrupt = corrupt


def check_gzip(source: Source, stop: threading.Event | None = None) -> None:
    """Raise `InputError` when a gzip file's data fails its checks (CRC, length, deflate).
    DuckDB's reader does not check them: a damaged file read as garbled lines, and a garbled
    line may still be a valid event with wrong figures. A truncated file is no error here: its
    complete lines count (see `sanitize`)."""
    try:
        for _ in _chunks(source):
            if stop is not None and stop.is_set():  # the run was stopped: no verdict needed
                return
    except _Truncated as e:
        if e.corrupt:
            raise _damaged(source, str(e)) from None


def _damaged(source: Source, why: str) -> InputError:
    return InputError(
        f"{source.label}: {why}: no line of it can be trusted, so nothing was stored",
        hint="Check it with `gzip -t`, get an intact copy and ingest again.",
    )


def _lines(source: Source) -> Iterator[bytes]:
    """Physical lines without their end of line; the last one may lack a newline."""
    rest = b""
    try:
        for chunk in _chunks(source):
            rest += chunk
            *complete, rest = rest.split(b"\n")
            yield from complete
    except _Truncated as e:
        e.partial = rest
        raise
    if rest:
        yield rest


def _problem(line: bytes) -> str | None:
    """Why DuckDB's line reader cannot take this line, in plain words (None: it can)."""
    if len(line) > MAX_LINE_BYTES:
        return f"line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB ({len(line):,} bytes)"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 (bad byte at column {e.start + 1})"
    if "\r" in text:
        return "invalid JSON: a carriage return (\\r) inside the line"
    if "\x01" in text:
        return "invalid JSON: control character U+0001"
    return None


def sanitize(source: Source, workdir: str) -> tuple[Source, list[BadLine]]:
    """Copy `source` with every line DuckDB cannot read replaced by an empty line (so line
    numbers stay exact), and say why each was replaced."""
    bad: list[BadLine] = []
    fd, path = tempfile.mkstemp(suffix=".jsonl", dir=workdir)
    n = 0
    with os.fdopen(fd, "wb") as out:
        try:
            for n, line in enumerate(_lines(source), 1):
                # The copy ends every line in \n alone: a file mixing \r\n and \n is one
                # DuckDB's reader refuses whole, so the copy must not keep any \r\n.
                line = line.removesuffix(b"\r")
                reason = _problem(line)
                if reason is None:
                    out.write(line + b"\n")
                else:
                    out.write(b"\n")
                    bad.append(BadLine(n, reason, _printable(line)))
        except _Truncated as e:
            if e.corrupt:
                raise _damaged(source, str(e)) from None
            # The line where the data stops (complete or not, we cannot know) is rejected.
            out.write(b"\n")
            bad.append(BadLine(n + 1, str(e), _printable(e.partial)))
    return Source(source.label, path), bad


def _printable(line: bytes) -> str:
    return line[:65536].decode("utf-8", "replace")


def read_lines(source: Source, wanted: set[int]) -> dict[int, str]:
    """The raw text of a few lines (for rejects found after parsing)."""
    out: dict[int, str] = {}
    if not wanted:
        return out
    last = max(wanted)
    try:
        for n, line in enumerate(_lines(source), 1):
            if n in wanted:
                out[n] = line.rstrip(b"\r").decode("utf-8", "replace")
            if n >= last:
                break
    except _Truncated:
        pass
    return out
