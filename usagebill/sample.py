"""Deterministic sample events: the README's `sample_data/` and the benchmarks' big files.

    python -m usagebill.sample --events 1000000 --out bench/work/events.jsonl
    python -m usagebill.sample --sample sample_data/      # the committed sample month

The same arguments always write the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MONTH_START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
MONTH_SECONDS = 31 * 24 * 3600

# event name, share of events, metadata maker
_REGIONS = ("eu", "us", "ap")
_ENDPOINTS = ("/v1/search", "/v1/items", "/v1/orders", "/v1/users")
_MODELS = ("small", "medium", "large")


def _api(r: random.Random) -> dict[str, Any]:
    return {
        "status": "success" if r.random() < 0.95 else "error",
        "region": r.choice(_REGIONS),
        "endpoint": r.choice(_ENDPOINTS),
        "latency_ms": r.randint(5, 900),
        "user_id": f"u{r.randint(1, 400)}",
    }


def _image(r: random.Random) -> dict[str, Any]:
    return {"quality": "hd" if r.random() < 0.3 else "standard", "size": r.choice(("512", "1024"))}


def _data(r: random.Random) -> dict[str, Any]:
    return {"gb": float(f"{r.uniform(0.001, 0.6):.3f}"), "region": r.choice(_REGIONS)}


def _sms(r: random.Random) -> dict[str, Any]:
    return {"country": r.choice(("DE", "US", "GB", "FR", "JP"))}


def _ai(r: random.Random) -> dict[str, Any]:
    return {"model": r.choice(_MODELS), "usage": {"tokens": r.randint(50, 4000)}}


KINDS = (
    ("api.call", 0.62, _api),
    ("image.generated", 0.10, _image),
    ("data.processed", 0.08, _data),
    ("sms.sent", 0.10, _sms),
    ("ai.completion", 0.10, _ai),
)


def events(n: int, customers: list[str], seed: int = 1) -> Iterator[dict[str, Any]]:
    """`n` events over October 2026, in time order, customers weighted unevenly."""
    r = random.Random(seed)
    weights = [1 + (i * 7919) % 13 for i in range(len(customers))]
    names = [k[0] for k in KINDS]
    shares = [k[1] for k in KINDS]
    makers = dict((k[0], k[2]) for k in KINDS)
    step = MONTH_SECONDS / max(n, 1)
    for i in range(n):
        name = r.choices(names, shares)[0]
        at = MONTH_START + dt.timedelta(seconds=int(i * step + r.random() * step))
        yield {
            "event_id": f"evt_{seed:02d}_{i:09d}",
            "customer_id": r.choices(customers, weights)[0],
            "event_name": name,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "metadata": makers[name](r),
        }


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":")) + "\n"


def write(path: Path, n: int, customers: int, seed: int) -> None:
    ids = [f"cus_{i:05d}" for i in range(1, customers + 1)]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:  # type: ignore[operator]
        buf: list[str] = []
        for event in events(n, ids, seed):
            buf.append(_line(event))
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


SAMPLE_CUSTOMERS = [
    "cus_acme",
    "cus_blue",
    "cus_cedar",
    "cus_delta",
    "cus_echo",
    "cus_fjord",
    "cus_gale",
    "cus_harbor",
    "cus_iris",
    "cus_juno",
    "cus_kite",
    "cus_lumen",
    "cus_maple",
    "cus_nova",
    "cus_orbit",
    "cus_pine",
    "cus_quill",
    "cus_river",
    "cus_sol",
]


def write_sample(directory: Path, n: int = 15000, seed: int = 7) -> None:
    """The README's month: one file a day (the last one gzipped), a customer missing from the
    config, a few retried (duplicate) events, one conflicting duplicate, a few bad lines, and
    a small file of corrections."""
    directory.mkdir(parents=True, exist_ok=True)
    r = random.Random(seed)
    customers = [*SAMPLE_CUSTOMERS, "cus_unknown"]
    by_day: dict[int, list[str]] = {}
    sent: list[dict[str, Any]] = []
    starters = {"cus_echo", "cus_harbor", "cus_iris", "cus_maple", "cus_pine", "cus_river"}
    for event in events(n, customers, seed):
        if event["event_name"] == "ai.completion" and event["customer_id"] in starters:
            continue  # only cus_cedar (Starter) sends AI events its plan does not price
        day = int(event["timestamp"][8:10])
        by_day.setdefault(day, []).append(_line(event))
        sent.append(event)
    for _ in range(12):  # retries: the same event sent again a day later
        event = sent[r.randrange(len(sent) - 2000)]
        by_day[min(int(event["timestamp"][8:10]) + 1, 31)].append(_line(event))
    other = "cus_echo" if sent[100]["customer_id"] != "cus_echo" else "cus_iris"
    clash = dict(sent[100], customer_id=other)  # same event_id, other content
    by_day[2].append(_line(clash))
    by_day[5].append('{"event_id":"evt_bad_1","customer_id":"cus_acme","event_name":"api.call"\n')
    by_day[9].append(
        '{"event_id":"evt_bad_2","event_name":"sms.sent","timestamp":"2026-10-09T10:00:00Z"}\n'
    )
    by_day[17].append(
        '{"event_id":"evt_bad_3","customer_id":"cus_nova","event_name":"sms.sent",'
        '"timestamp":"17/10/2026 10:00"}\n'
    )
    by_day[23].append("\n")
    for day, lines in by_day.items():
        name = f"events-2026-10-{day:02d}.jsonl"
        if day == 31:
            with gzip.GzipFile(directory / (name + ".gz"), "wb", mtime=0) as f:
                f.write("".join(lines).encode())
        else:
            (directory / name).write_text("".join(lines), encoding="utf-8")
    first_api = next(
        e for e in sent if e["event_name"] == "api.call" and e["customer_id"] == "cus_acme"
    )
    first_img = next(
        e for e in sent if e["event_name"] == "image.generated" and e["customer_id"] == "cus_nova"
    )
    fixes = [
        {"event_id": "fix-001", "void": first_api["event_id"], "reason": "load-test traffic"},
        {
            "event_id": "fix-002",
            "amend": first_img["event_id"],
            "metadata": {**first_img["metadata"], "quality": "standard"},
            "reason": "misreported as HD",
        },
    ]
    (directory / "corrections.jsonl").write_text("".join(_line(f) for f in fixes), "utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m usagebill.sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="a .jsonl or .jsonl.gz file to write")
    parser.add_argument("--sample", type=Path, help="write the sample month into this folder")
    args = parser.parse_args(argv)
    if args.sample:
        write_sample(args.sample)
    elif args.out:
        write(args.out, args.events, args.customers, args.seed)
    else:
        parser.error("give --out FILE or --sample DIR")
    print(f"wrote {args.sample or args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
