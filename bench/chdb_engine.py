"""Contender 5, chDB: ClickHouse embedded in Python (the engine Lago and OpenMeter run on).

    python -m bench.chdb_engine load EVENTS DIR        # MergeTree table from file(JSONEachRow)
    python -m bench.chdb_engine aggregate DIR OUT      # one hand-written aggregation

ClickHouse infers `metadata` as a named tuple; the aggregation de-duplicates with
`LIMIT 1 BY event_id` and uses the `-If` combinators, one per meter.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

from bench.common import HI_TEXT, LO_TEXT, METERS, Answer, read_answer, write_answer
from bench.contender import Contender, Phase
from bench.proc import python

AGGREGATE = f"""
SELECT customer_id,
    countIf(event_name = 'api.call' AND metadata.status = 'success'
            AND metadata.region IN ('eu', 'us')) AS api_calls,
    countIf(event_name = 'image.generated' AND metadata.quality = 'hd') AS images_hd,
    countIf(event_name = 'sms.sent') AS sms,
    sumIf(toDecimal128(metadata.gb, 12), event_name = 'data.processed') AS data_gb,
    sumIf(metadata.usage.tokens, event_name = 'ai.completion') AS ai_tokens,
    maxIf(metadata.latency_ms, event_name = 'api.call') AS peak_latency_ms,
    argMaxIf(toDecimal128(metadata.gb, 12), (timestamp, event_id),
             event_name = 'data.processed' AND metadata.gb IS NOT NULL) AS last_batch_gb,
    uniqExactIf(metadata.user_id, event_name = 'api.call') AS active_users
FROM (SELECT * FROM t LIMIT 1 BY event_id)
WHERE timestamp >= toDateTime('{LO_TEXT}', 'UTC') AND timestamp < toDateTime('{HI_TEXT}', 'UTC')
GROUP BY customer_id
ORDER BY customer_id
"""


def load(events: str, directory: str) -> None:
    from chdb import session

    s = session.Session(directory)
    path = str(Path(events).resolve()).replace("'", "\\'")
    s.query(
        "CREATE TABLE t ENGINE = MergeTree ORDER BY tuple() AS "
        f"SELECT * FROM file('{path}', JSONEachRow)"
    )
    s.close()


def aggregate(directory: str, out: str) -> None:
    from chdb import session

    s = session.Session(directory)
    text = s.query(AGGREGATE, "TabSeparated").bytes().decode("utf-8")
    s.close()
    rows = {}
    for line in text.splitlines():
        customer, *values = line.split("\t")
        rows[customer] = {m: None if v == "\\N" else Decimal(v) for m, v in zip(METERS, values)}
    write_answer(out, rows)


def phases(events: Path, config: Path, work: Path) -> list[Phase]:
    directory = str(work / "chdb")
    return [
        Phase("load", python("bench.chdb_engine", "load", str(events), directory)),
        Phase(
            "aggregate",
            python("bench.chdb_engine", "aggregate", directory, str(work / "a.json")),
        ),
    ]


def answer(work: Path) -> Answer:
    return read_answer(work / "a.json")


CONTENDER = Contender("chdb", "chDB (ClickHouse)", phases, answer, needs="chdb")

if __name__ == "__main__":
    {"load": load, "aggregate": aggregate}[sys.argv[1]](*sys.argv[2:])
