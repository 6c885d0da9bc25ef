"""SQL on usagebill's database: `usagebill ingest`, then one hand-written SQL aggregation
of the same meters over the `events` table it stored, instead of
`usagebill invoice`. This is the comparison the invoice issue names: the invoice against a
raw query of the same meters on the same database.

    python -m bench.store_sql aggregate DB OUT

The query is the fastest form found: the stored metadata is parsed once per event (one
`json_extract_string` of every path used; `->>` per path parses it once per path and took
0.75–1.0 s against 0.37–0.59 s at 1M events). The events are de-duplicated by ingest
already. It checks nothing: a string where a number belongs fails the cast, and fractions
are read from their stored text.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import HI_TEXT, LO_TEXT, Answer, read_answer, sql_answer
from bench.contender import Contender, Phase
from bench.proc import python
from bench.usagebill_cli import database, ingest_phase

AGGREGATE = f"""
WITH e AS (
    SELECT customer_id, event_name, ts, event_id,
        json_extract_string(metadata, ['status', 'region', 'quality', 'gb', '$.usage.tokens',
                                       'latency_ms', 'user_id']) AS p
    FROM events
    WHERE ts >= TIMESTAMPTZ '{LO_TEXT}+00' AND ts < TIMESTAMPTZ '{HI_TEXT}+00'
)
SELECT customer_id,
    count(*) FILTER (WHERE event_name = 'api.call' AND p[1] = 'success' AND p[2] IN ('eu', 'us'))
        AS api_calls,
    count(*) FILTER (WHERE event_name = 'image.generated' AND p[3] = 'hd') AS images_hd,
    count(*) FILTER (WHERE event_name = 'sms.sent') AS sms,
    sum(p[4]::DECIMAL(38, 12)) FILTER (WHERE event_name = 'data.processed') AS data_gb,
    sum(p[5]::DECIMAL(38, 12)) FILTER (WHERE event_name = 'ai.completion') AS ai_tokens,
    max(p[6]::DECIMAL(38, 12)) FILTER (WHERE event_name = 'api.call') AS peak_latency_ms,
    arg_max(p[4]::DECIMAL(38, 12), (ts, event_id))
        FILTER (WHERE event_name = 'data.processed' AND p[4] IS NOT NULL) AS last_batch_gb,
    count(DISTINCT p[7]) FILTER (WHERE event_name = 'api.call') AS active_users
FROM e
GROUP BY customer_id
ORDER BY customer_id
"""


def aggregate(db: str, out: str) -> None:
    sql_answer(AGGREGATE, db, out)


def phases(events: Path, config: Path, work: Path) -> list[Phase]:
    db = str(database(work))
    return [
        ingest_phase(events, work),
        Phase("aggregate", python("bench.store_sql", "aggregate", db, str(work / "a.json"))),
    ]


def answer(work: Path) -> Answer:
    return read_answer(work / "a.json")


CONTENDER = Contender("store_sql", "SQL on usagebill's db", phases, answer)

if __name__ == "__main__":
    {"aggregate": aggregate}[sys.argv[1]](*sys.argv[2:])
