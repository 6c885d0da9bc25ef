"""Contender 2, DuckDB alone: the floor usagebill builds on.

    python -m bench.duckdb_alone load EVENTS DB        # CREATE TABLE t AS read_json(EVENTS)
    python -m bench.duckdb_alone aggregate DB OUT      # one hand-written SQL aggregation

The load is DuckDB's own `read_json` with its type detection, nothing checked. The
aggregation is what someone fluent in SQL writes for bench/meters.yaml: de-duplicate by
event_id, keep the period, one FILTERed aggregate per meter. Money-grade exactness needs the
DOUBLE that read_json detects for `gb` cast to DECIMAL.

De-duplication keeps each event_id's first row (lowest rowid: CTAS keeps file order) with a
semi-join on `min(rowid)`: on 1M events it took 1.1 s of CPU where `DISTINCT ON (event_id)`
took 2.6 s and `QUALIFY row_number()` 2.1 s, so the reference is DuckDB at its fastest.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import HI_TEXT, LO_TEXT, Answer, read_answer, sql_answer
from bench.contender import Contender, Phase
from bench.proc import python

AGGREGATE = f"""
WITH first AS (SELECT min(rowid) AS r FROM t GROUP BY event_id),
    e AS (SELECT t.* FROM t SEMI JOIN first ON t.rowid = first.r)
SELECT customer_id,
    count(*) FILTER (WHERE event_name = 'api.call' AND metadata.status = 'success'
                     AND metadata.region IN ('eu', 'us')) AS api_calls,
    count(*) FILTER (WHERE event_name = 'image.generated' AND metadata.quality = 'hd')
        AS images_hd,
    count(*) FILTER (WHERE event_name = 'sms.sent') AS sms,
    sum(metadata.gb::DECIMAL(38, 12)) FILTER (WHERE event_name = 'data.processed') AS data_gb,
    sum(metadata.usage.tokens) FILTER (WHERE event_name = 'ai.completion') AS ai_tokens,
    max(metadata.latency_ms) FILTER (WHERE event_name = 'api.call') AS peak_latency_ms,
    arg_max(metadata.gb::DECIMAL(38, 12), (timestamp, event_id))
        FILTER (WHERE event_name = 'data.processed' AND metadata.gb IS NOT NULL)
        AS last_batch_gb,
    count(DISTINCT metadata.user_id) FILTER (WHERE event_name = 'api.call') AS active_users
FROM e
WHERE timestamp >= TIMESTAMPTZ '{LO_TEXT}+00' AND timestamp < TIMESTAMPTZ '{HI_TEXT}+00'
GROUP BY customer_id
ORDER BY customer_id
"""


def load(events: str, db: str) -> None:
    import duckdb

    con = duckdb.connect(db)
    con.execute("CREATE TABLE t AS SELECT * FROM read_json(?)", [events])
    con.close()


def aggregate(db: str, out: str) -> None:
    sql_answer(AGGREGATE, db, out)


def phases(events: Path, config: Path, work: Path) -> list[Phase]:
    db = str(work / "raw.duckdb")
    return [
        Phase("load", python("bench.duckdb_alone", "load", str(events), db)),
        Phase("aggregate", python("bench.duckdb_alone", "aggregate", db, str(work / "a.json"))),
    ]


def answer(work: Path) -> Answer:
    return read_answer(work / "a.json")


CONTENDER = Contender("duckdb", "DuckDB alone", phases, answer)

if __name__ == "__main__":
    {"load": load, "aggregate": aggregate}[sys.argv[1]](*sys.argv[2:])
