"""Issue 7, faults: kill -9 during an ingest, two processes on one database, a full disk, an
unwritable path, a database from a newer usagebill. Each leaves the database exactly as it
was before the failed run, says so plainly and exits 2; the next ingest works.

The processes are real ones (`python -m usagebill`), so that a kill or a resource limit hits
exactly what a user's shell would."""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from usagebill.store import SCHEMA_VERSION, Store

ENV = {k: v for k, v in os.environ.items() if not k.startswith("USAGEBILL_")}
TABLES = {
    "events": "event_id",
    "rejects": "run, file, line",
    "runs": "run",
    "corrections": "event_id",
    "issued": "period, customer_id",
    "meta": "key",
}


def usagebill(*args: str, cwd: Path, **kw: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "usagebill", *args],
        cwd=cwd,
        env=ENV,
        stdin=kw.pop("stdin", subprocess.DEVNULL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def run(*args: str, cwd: Path, **kw: object) -> tuple[int, str, str]:
    p = usagebill(*args, cwd=cwd, **kw)
    out, err = p.communicate(timeout=600)
    assert "Traceback" not in err.decode()
    return p.returncode, out.decode(), err.decode()


def checksum(db: Path, *, times: bool = True) -> str:
    """Everything usagebill stores, as one digest. `times=False` leaves out the runs' start
    and end times, to compare runs made at different moments."""
    h = hashlib.sha256()
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table, order in TABLES.items():
            cols = "*" if times or table != "runs" else "* EXCLUDE (started_at, ended_at)"
            rows = con.execute(f"SELECT {cols} FROM {table} ORDER BY {order}").fetchall()
            h.update(f"{table}:{len(rows)}:{rows!r}".encode())
    finally:
        con.close()
    return h.hexdigest()


def locked(db: Path) -> bool:
    """Whether some process holds a lock on the database file (Linux: /proc/locks)."""
    try:
        inode = db.stat().st_ino
    except FileNotFoundError:
        return False
    with open("/proc/locks") as f:
        return any(line.split()[5].endswith(f":{inode}") for line in f if len(line.split()) > 5)


def wait_until(cond: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 120
    while not cond():
        assert proc.poll() is None, f"the process ended before {what}: {proc.stderr.read()!r}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


def events_text(n: int, prefix: str = "e", customers: int = 50) -> str:
    """n event lines, fast to make: a format string, not json.dumps per line."""
    template = (
        '{{"event_id": "{p}{i}", "customer_id": "cus_{c}", "event_name": "api.call", '
        '"timestamp": "2026-10-{d:02d}T{h:02d}:00:00Z", "metadata": {{"n": {i}, '
        '"status": "ok", "region": "eu", "path": "/v1/items/{i}"}}}}\n'
    )
    return "".join(
        template.format(p=prefix, i=i, c=i % customers, d=1 + i % 28, h=i % 24) for i in range(n)
    )


def seeded(db_dir: Path) -> Path:
    """A database with one run already in it: events, a duplicate and two rejects."""
    db_dir.mkdir(parents=True, exist_ok=True)
    src = db_dir / "first.jsonl"
    src.write_text(events_text(1000, "old") + "{bad\n" + events_text(3, "old") + "[]\n")
    db = db_dir / "u.duckdb"
    code, _, err = run("ingest", "--db", str(db), str(src), cwd=db_dir)
    assert code == 0, err
    return db


def big_input(directory: Path, n: int) -> list[str]:
    """Three files: most of the events, a few repeats and bad lines, and a gzip file."""
    import gzip

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "a.jsonl").write_text(events_text(n, "big") + "not json\n")
    (directory / "b.jsonl").write_text(events_text(50, "big") + events_text(20, "old"))
    (directory / "c.jsonl.gz").write_bytes(
        gzip.compress((events_text(5000, "gz") + '{"event_id": "x"}\n').encode())
    )
    return [str(directory / name) for name in ("a.jsonl", "b.jsonl", "c.jsonl.gz")]


# -- kill -9 -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_the_database_as_before(tmp_path: Path) -> None:
    """A 300,000-event ingest killed at several moments, each after it took the database:
    every time the database is exactly as before the run (or, if the kill came after the
    commit, exactly as after it); the next ingest then works."""
    db = seeded(tmp_path / "db")
    inputs = big_input(tmp_path / "in", 300_000)
    before = checksum(db)
    # The reference: the same run, not killed, on a copy.
    ref = tmp_path / "ref" / "u.duckdb"
    ref.parent.mkdir()
    shutil.copy(db, ref)
    p = usagebill("ingest", "--db", str(ref), *inputs, cwd=tmp_path)
    wait_until(lambda: locked(ref), p, "the database locked")
    started = time.monotonic()
    _, err = p.communicate(timeout=600)
    length = time.monotonic() - started
    assert p.returncode == 0, err
    assert "read 305,072 lines from 3 files: 305,000 accepted, 70 duplicates, 2 rejected" in (
        err.decode()
    )
    after = checksum(ref, times=False)

    outcomes = []
    rng = random.Random(7)
    for fraction in (0.05, 0.25, 0.5, 0.75, 0.95, rng.random()):
        p = usagebill("ingest", "--db", str(db), *inputs, cwd=tmp_path)
        wait_until(lambda: locked(db), p, "the database locked")
        time.sleep(fraction * length)
        p.send_signal(signal.SIGKILL)
        p.wait()
        now = checksum(db)
        if now == before:
            outcomes.append("before")
        else:  # killed after the commit, while closing: the whole run is there
            assert checksum(db, times=False) == after, f"a kill at {fraction:.2f} left a mix"
            outcomes.append("after")
            break
    assert outcomes.count("before") >= 3, outcomes  # most kills landed inside the run

    if outcomes[-1] == "before":
        code, _, err = run("ingest", "--db", str(db), *inputs, cwd=tmp_path)
        assert code == 0, err
    assert checksum(db, times=False) == after
    # and the database is still a working one
    code, _, err = run("ingest", "--db", str(db), inputs[1], cwd=tmp_path)
    assert code == 0 and "0 accepted, 70 duplicates" in err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_rolls_back_says_so_and_cleans_up(
    tmp_path: Path, sig: int, code: int
) -> None:
    # Typer turned Ctrl-C into a silent exit 130; SIGTERM left the copy of stdin behind.
    db = seeded(tmp_path / "db")
    before = checksum(db)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", "usagebill", "ingest", "--db", str(db), "-"], cwd=tmp_path,
        env={**ENV, "TMPDIR": str(tmp)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdin is not None
    p.stdin.write(events_text(1000, "late").encode())
    p.stdin.flush()
    wait_until(lambda: locked(db), p, "the database locked")
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert (p.returncode, out) == (code, b"")
    assert err.decode() == "usagebill: interrupted: nothing of this command was stored\n"
    assert checksum(db) == before and list(tmp.iterdir()) == []


def test_a_query_stopped_by_ctrl_c_is_no_internal_error(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def stopped(*args: object, **kw: object) -> None:
        raise RuntimeError("Query interrupted")  # what DuckDB raises when SIGINT stops a query

    monkeypatch.setattr(Store, "ingest", stopped)
    (tmp_path / "e.jsonl").write_text(events_text(3))
    result = cli("ingest", "--db", str(tmp_path / "u.duckdb"), str(tmp_path / "e.jsonl"))
    assert result.exit_code == 130
    assert result.stderr == "usagebill: interrupted: nothing of this command was stored\n"


def test_a_report_out_of_memory_says_what_to_raise(
    tmp_path: Path, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An invoice query past the memory limit was "a bug in usagebill" (exit 3).
    def measure(*args: object, **kw: object) -> None:
        raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block\nmore")

    monkeypatch.setattr("usagebill.invoices.measure_plans", measure)
    (tmp_path / "meters.yaml").write_text(
        "version: 1\nmeters:\n  - {id: calls, event_name: api.call, aggregation: {type: count}}\n"
        "products:\n  - {id: p, charges: [{meter: calls, unit_price: '0.01'}]}\n"
        "customers:\n  - {id: cus_1, product: p}\n"
    )
    db = str(tmp_path / "u.duckdb")
    Store.open(db).close()
    result = cli("invoice", "--period", "2026-10", "--db", db, "-c", str(tmp_path / "meters.yaml"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "usagebill: out of memory: Out of Memory Error: could not allocate block",
        "usagebill: Nothing was stored. Raise USAGEBILL_MEMORY_LIMIT (default 512MB).",
    ]


@pytest.mark.parametrize("limit", ["abc", "", "0", "1KB"])
def test_a_memory_limit_duckdb_cannot_take_is_a_plain_error(tmp_path: Path, limit: str) -> None:
    (tmp_path / "e.jsonl").write_text(events_text(3))
    p = subprocess.run(
        [sys.executable, "-m", "usagebill", "ingest", "e.jsonl"], cwd=tmp_path,
        env={**ENV, "USAGEBILL_MEMORY_LIMIT": limit}, capture_output=True, text=True,
    )
    assert p.returncode == 2 and "internal error" not in p.stderr
    first, hint = p.stderr.splitlines()
    assert first.startswith(f"usagebill: memory limit {limit!r} (USAGEBILL_MEMORY_LIMIT): ")
    assert hint == "usagebill: Give a size such as 512MB or 2GB."
    assert not (tmp_path / "usagebill.duckdb").exists()  # no empty database left behind


def test_spill_files_a_killed_run_left_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    db = seeded(tmp_path / "db")
    spills = Path(f"{db}.tmp")
    spills.mkdir(exist_ok=True)
    left = [spills / f"duckdb_temp_4242_0_{n}" for n in ("owner", "storage_DEFAULT-0.tmp")]
    for f in left:
        f.write_bytes(bytes(1000))
    (spills / "notes.txt").write_text("not DuckDB's")
    (tmp_path / "e.jsonl").write_text(events_text(3, "new"))
    assert run("runs", "--db", str(db), cwd=tmp_path)[0] == 0  # a reader leaves them
    assert all(f.exists() for f in left)
    assert run("ingest", "--db", str(db), "e.jsonl", cwd=tmp_path)[0] == 0
    assert sorted(p.name for p in spills.iterdir()) == ["notes.txt"]
    # through a link to the database: DuckDB spills next to the file the link leads to
    left[1].write_bytes(bytes(1000))
    (tmp_path / "link.duckdb").symlink_to(db)
    assert run("ingest", "--db", "link.duckdb", "e.jsonl", cwd=tmp_path)[0] == 0
    assert sorted(p.name for p in spills.iterdir()) == ["notes.txt"]


# -- two processes -----------------------------------------------------------------------------


@pytest.fixture
def held(tmp_path: Path):
    """A database held by an `ingest -` waiting on its stdin, as a long ingest would."""
    db = seeded(tmp_path / "db")
    before = checksum(db)
    holder = usagebill("ingest", "--db", str(db), "-", cwd=tmp_path, stdin=subprocess.PIPE)
    wait_until(lambda: locked(db), holder, "the database locked")
    yield db, holder, before
    if holder.poll() is None:
        holder.kill()
        holder.wait()


def test_a_second_ingest_is_refused_while_one_runs(tmp_path: Path, held) -> None:
    db, holder, _ = held
    (tmp_path / "more.jsonl").write_text(events_text(10, "more"))
    code, out, err = run("ingest", "--db", str(db), "more.jsonl", cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"usagebill: {db}: in use by another process (PID {holder.pid})",
        "usagebill: Wait for it to finish, then try again (an ingest holds the database while "
        "it runs; a report holds it against ingests).",
    ]
    # the first one carries on and finishes; nothing of the refused one is stored
    out, err = holder.communicate(events_text(5, "held").encode(), timeout=120)
    assert holder.returncode == 0, err
    with Store.open(db, read_only=True) as s:
        assert s.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'more%'") == 0
        assert s.scalar("SELECT count(*) FROM events WHERE event_id LIKE 'held%'") == 5
        assert s.latest_run() == 2


@pytest.mark.parametrize(
    "command",
    [
        ["usage", "--period", "2026-10"],
        ["invoice", "--period", "2026-10"],
        ["rejects"],
        ["runs"],
    ],
)
def test_a_report_while_an_ingest_runs_exits_2(tmp_path: Path, held, command: list[str]) -> None:
    db, holder, _ = held
    (tmp_path / "meters.yaml").write_text(
        "version: 1\nmeters:\n  - {id: calls, event_name: api.call, aggregation: {type: count}}\n"
        "products:\n  - {id: p, charges: [{meter: calls, unit_price: '0.01'}]}\n"
        "customers:\n  - {id: cus_1, product: p}\n"
    )
    code, out, err = run(*command, "--db", str(db), cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.splitlines()[0] == (
        f"usagebill: {db}: in use by another process (PID {holder.pid})"
    )
    holder.communicate(b"", timeout=120)
    assert holder.returncode == 0
    code, out, err = run(*command, "--db", str(db), cwd=tmp_path)  # and now it answers
    assert code == 0, err


def test_a_killed_holder_leaves_the_database_usable(tmp_path: Path, held) -> None:
    db, holder, before = held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert checksum(db) == before
    (tmp_path / "more.jsonl").write_text(events_text(10, "more"))
    code, _, err = run("ingest", "--db", str(db), "more.jsonl", cwd=tmp_path)
    assert code == 0 and "10 accepted" in err


# -- a full disk -------------------------------------------------------------------------------


def limited(limit: int) -> Callable[[], None]:
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


def test_a_full_disk_stores_nothing_and_exits_2(tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands in for a full disk: every write past the limit fails. At each limit
    the ingest either fails cleanly (exit 2, database as before) or succeeds whole."""
    db0 = seeded(tmp_path / "seed")
    inputs = big_input(tmp_path / "in", 30_000)
    before = checksum(db0)
    ref = tmp_path / "ref" / "u.duckdb"
    ref.parent.mkdir()
    shutil.copy(db0, ref)
    assert run("ingest", "--db", str(ref), *inputs, cwd=tmp_path)[0] == 0
    after = checksum(ref, times=False)

    size = db0.stat().st_size
    failed = 0
    for i, extra in enumerate((0, 512 << 10, 4 << 20, 64 << 20)):
        db = tmp_path / f"try{i}" / "u.duckdb"
        db.parent.mkdir()
        shutil.copy(db0, db)
        code, out, err = run(
            "ingest", "--db", str(db), *inputs, cwd=tmp_path, preexec_fn=limited(size + extra)
        )
        assert out == ""
        if code == 0:
            assert checksum(db, times=False) == after
            continue
        failed += 1
        assert code == 2, err
        lines = err.splitlines()
        assert len(lines) == 2, err
        assert lines[0].startswith(f"usagebill: {db}: cannot write: ")
        assert "File too large" in lines[0]
        assert lines[1] == (
            "usagebill: Nothing was stored. Free disk space or check permissions, "
            "then ingest again."
        )
        assert checksum(db) == before
        # with room again, the same ingest works
        assert run("ingest", "--db", str(db), *inputs, cwd=tmp_path)[0] == 0
        assert checksum(db, times=False) == after
    assert failed >= 2  # the tight limits did fail


# -- unwritable paths --------------------------------------------------------------------------


def make_unwritable(path: Path) -> Callable[[], None]:
    """Make an existing file unwritable even for root (chattr +i), or skip."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        path.parent.chmod(0o555)
        return lambda: (path.parent.chmod(0o755), path.chmod(0o644))
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a file unwritable as root here: {done.stderr!r}")
    return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_read_only_database_exits_2_and_stays_as_it_was(tmp_path: Path) -> None:
    db = seeded(tmp_path / "db")
    (tmp_path / "more.jsonl").write_text(events_text(10, "more"))
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    undo = make_unwritable(db)
    try:
        code, out, err = run("ingest", "--db", str(db), "more.jsonl", cwd=tmp_path)
        assert code == 2 and out == ""
        first, second = err.splitlines()
        assert first.startswith(f"usagebill: {db}: cannot open the database: ")
        assert second == "usagebill: Check the path and its permissions."
        assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
    finally:
        undo()
    assert run("ingest", "--db", str(db), "more.jsonl", cwd=tmp_path)[0] == 0


@pytest.mark.parametrize(
    "where",
    ["parent is a file", "no such directory", "a directory usagebill cannot create in"],
)
def test_an_unwritable_database_path_exits_2(tmp_path: Path, where: str) -> None:
    (tmp_path / "e.jsonl").write_text(events_text(3))
    (tmp_path / "file.txt").write_text("x")
    db = {
        "parent is a file": tmp_path / "file.txt" / "u.duckdb",
        "no such directory": tmp_path / "missing" / "u.duckdb",
        "a directory usagebill cannot create in": Path("/proc/usagebill-test.duckdb"),
    }[where]
    code, out, err = run("ingest", "--db", str(db), "e.jsonl", cwd=tmp_path)
    assert code == 2 and out == ""
    first, second = err.splitlines()
    assert first.startswith(f"usagebill: {db}: cannot open the database: ")
    assert second == "usagebill: Check the path and its permissions."
    assert not db.exists()


# -- databases usagebill did not write ---------------------------------------------------------


def test_a_database_from_a_newer_usagebill_is_refused(tmp_path: Path) -> None:
    db = seeded(tmp_path / "db")
    con = duckdb.connect(str(db))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 7)])
    con.close()
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    (tmp_path / "meters.yaml").write_text(
        "version: 1\nmeters:\n  - {id: calls, event_name: api.call, aggregation: {type: count}}\n"
    )
    (tmp_path / "more.jsonl").write_text(events_text(3, "more"))
    for command in (["ingest", "more.jsonl"], ["usage", "-p", "2026-10"], ["rejects"]):
        code, out, err = run(*command, "--db", str(db), cwd=tmp_path)
        assert code == 2 and out == "", command
        assert err.splitlines() == [
            f"usagebill: {db}: written by a newer usagebill (schema {SCHEMA_VERSION + 7}; this "
            f"one knows up to {SCHEMA_VERSION})",
            "usagebill: Upgrade usagebill to read it.",
        ]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_duckdb_file_of_something_else_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE events (x INTEGER)")
    con.close()
    (tmp_path / "e.jsonl").write_text(events_text(3))
    code, _, err = run("ingest", "--db", str(other), "e.jsonl", cwd=tmp_path)
    assert code == 2
    assert err.splitlines() == [
        f"usagebill: {other}: this DuckDB file is not a usagebill database",
        "usagebill: Pass --db with another path.",
    ]


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ("CREATE TABLE meta (k VARCHAR, v VARCHAR)", "not a usagebill database, or a damaged one"),
        ("CREATE TABLE meta (key VARCHAR, value VARCHAR)", "this DuckDB file is not a usagebill"),
    ],
)
def test_a_duckdb_file_with_a_meta_table_of_its_own_is_refused(
    tmp_path: Path, table: str, why: str
) -> None:
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute(table)
    (tmp_path / "e.jsonl").write_text(events_text(3))
    for args in (["ingest", "--db", str(other), "e.jsonl"], ["runs", "--db", str(other)]):
        code, _, err = run(*args, cwd=tmp_path)
        assert code == 2 and err.startswith(f"usagebill: {other}: {why}"), err
        assert len(err.splitlines()) == 2


def test_a_damaged_database_file_is_a_plain_error(tmp_path: Path) -> None:
    db = tmp_path / "usagebill.duckdb"
    (tmp_path / "e.jsonl").write_text(events_text(3000))
    assert run("ingest", "--db", str(db), "e.jsonl", cwd=tmp_path)[0] == 0
    data = bytearray(db.read_bytes())
    data[len(data) // 2:len(data) // 2 + 200_000] = bytes(200_000)  # a block wiped
    db.write_bytes(bytes(data))
    code, _, err = run("runs", "--db", str(db), cwd=tmp_path)
    assert code == 2 and "internal error" not in err and "damaged" in err
    assert len(err.splitlines()) == 2


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("x.csv", b"a,b\n1,2\n"),
        ("events.jsonl", b'{"event_id": "e1"}\n'),
        ("x.parquet", b"PAR1" + bytes(20) + b"PAR1"),
        ("x.sqlite", b"SQLite format 3\x00" + bytes(100)),
    ],
)
def test_a_db_path_naming_another_kind_of_file_stores_nothing_there(
    tmp_path: Path, name: str, content: bytes
) -> None:
    # DuckDB opened these as an empty in-memory database: the ingest said "accepted" and
    # everything vanished at exit.
    other = tmp_path / name
    other.write_bytes(content)
    (tmp_path / "e.jsonl").write_text(events_text(3))
    for args in (["ingest", "--db", str(other), "e.jsonl"], ["runs", "--db", str(other)]):
        code, out, err = run(*args, cwd=tmp_path)
        assert (code, out) == (2, "")
        assert err.splitlines() == [
            f"usagebill: {other}: cannot open the database: this file is not a DuckDB database",
            "usagebill: Pass --db with a usagebill database, or a new file name.",
        ]
    assert other.read_bytes() == content


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("just some text, not a database\n" * 100)
    (tmp_path / "e.jsonl").write_text(events_text(3))
    code, _, err = run("ingest", "--db", str(bogus), "e.jsonl", cwd=tmp_path)
    assert code == 2
    assert err.startswith(f"usagebill: {bogus}: cannot open the database: ")
    assert bogus.read_text() == "just some text, not a database\n" * 100
