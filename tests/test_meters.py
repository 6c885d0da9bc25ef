"""Meters and filters (SPEC §3), run for real: events ingested into DuckDB, one compiled query.

Every test writes its meters as YAML, ingests a handful of events and reads the usage
report, so the compiler, the SQL and the report are checked together."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from usagebill.config import Config
from usagebill.cycles import parse_period
from usagebill.meters import MeterCompiler, json_path
from usagebill.sql import Sql, quote_identifier
from usagebill.store import Store
from usagebill.usage import usage_report

from .conftest import config, event, write_events

Ingest = Callable[..., Any]


def meters(*lines: str) -> Config:
    """A config holding just these meters (one YAML flow mapping per line)."""
    return config("version: 1\nmeters:\n" + "".join(f"  - {line}\n" for line in lines))


def report(store: Store, cfg: Config, period: str = "2026-10", **kw: Any) -> dict[str, Any]:
    return usage_report(store, cfg, parse_period(period), **kw).to_json()


def quantities(store: Store, cfg: Config, customer: str = "cus_a") -> dict[str, str]:
    """meter id -> quantity for one customer."""
    return {
        r["meter_id"]: r["quantity"]
        for r in report(store, cfg)["rows"]
        if r["customer_id"] == customer
    }


def skipped(store: Store, cfg: Config) -> dict[tuple[str | None, str], int]:
    return {(s["meter_id"], s["reason"]): s["events"] for s in report(store, cfg)["skipped"]}


def on_days(values: dict[str, Any]) -> list[dict[str, Any]]:
    """One event per entry, each on its own day of October, with `v` set to the value
    (`...` leaves it out)."""
    return [
        event(f"evt_{name}", ts=f"2026-10-{day:02d}T12:00:00Z", **({} if v is ... else {"v": v}))
        for day, (name, v) in enumerate(values.items(), 1)
    ]


def matching(store: Store, clause: str, values: dict[str, Any]) -> list[str]:
    """Which of the `on_days(values)` events a one-clause filter lets through: one
    `--by day` report names them."""
    names = list(values)
    cfg = meters(
        "{id: m, event_name: api.call, aggregation: {type: count}, "
        f"filter: {{clauses: [{clause}]}}}}",
    )
    rows = report(store, cfg, by_day=True)["rows"]
    assert all(r["quantity"] == "1" for r in rows)
    return [names[int(r["day"][-2:]) - 1] for r in rows]


# -- aggregations -----------------------------------------------------------------------------


def test_count_counts_events_of_the_meters_event_name(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("e1"),
            event("e2"),
            event("e3", name="API.CALL"),  # event names match case-sensitively
            event("e4", name="other"),
        ]
    )
    cfg = meters("{id: calls, event_name: api.call, aggregation: {type: count}}")
    rows = report(store, cfg)["rows"]
    assert rows == [
        {"customer_id": "cus_a", "meter_id": "calls", "quantity": "2", "events": 2, "unit": None}
    ]


def test_sum_is_an_exact_decimal(store: Store, ingest: Ingest) -> None:
    # 0.1 added ten times is exactly 1 (as binary floats it is 0.9999999999999999)
    ingest([event(f"e{i}", tokens=0.1) for i in range(10)])
    cfg = meters("{id: t, event_name: api.call, aggregation: {type: sum, key: tokens}}")
    assert quantities(store, cfg) == {"t": "1"}


def test_sum_keeps_twelve_decimals_and_large_integers(store: Store, ingest: Ingest) -> None:
    # 0.000000000001 + 12345678901234567890 + -1.5 = 12345678901234567888.500000000001
    ingest(
        [
            event("e1", v=0.000000000001),
            event("e2", v=12345678901234567890),
            event("e3", v=-1.5),
        ]
    )
    cfg = meters("{id: s, event_name: api.call, aggregation: {type: sum, key: v}}")
    assert quantities(store, cfg) == {"s": "12345678901234567888.500000000001"}


def test_decimals_keep_every_digit_up_to_fifteen_significant_ones(
    store: Store, ingest: Ingest
) -> None:
    # DuckDB's JSON reader keeps integers exactly (of any size) and decimals as the nearest
    # double, which holds every decimal of up to 15 significant digits exactly; the README
    # documents that longer decimals (1234567.123456789012) are stored as that double.
    path = store.tmp + "/precise.jsonl"
    Path(path).write_text(
        '{"event_id": "p", "customer_id": "cus_a", "event_name": "api.call", '
        '"timestamp": "2026-10-05T00:00:00Z", "metadata": {"v": 1234567.12345678}}\n'
        '{"event_id": "q", "customer_id": "cus_a", "event_name": "api.call", '
        '"timestamp": "2026-10-05T00:00:00Z", "metadata": {"v": 0.000000000001}}\n'
    )
    store.ingest([path])
    cfg = meters("{id: s, event_name: api.call, aggregation: {type: sum, key: v}}")
    assert quantities(store, cfg) == {"s": "1234567.123456780001"}


def test_max_and_min(store: Store, ingest: Ingest) -> None:
    ingest([event("e1", v=3), event("e2", v=-2.5), event("e3", v=10.25), event("e4", v=7)])
    cfg = meters(
        "{id: hi, event_name: api.call, aggregation: {type: max, key: v}}",
        "{id: lo, event_name: api.call, aggregation: {type: min, key: v}}",
    )
    assert quantities(store, cfg) == {"hi": "10.25", "lo": "-2.5"}


def test_last_takes_the_latest_timestamp_whatever_the_file_order(
    store: Store, ingest: Ingest
) -> None:
    ingest(
        [
            event("e1", ts="2026-10-20T00:00:00Z", gb=30),
            event("e2", ts="2026-10-02T00:00:00Z", gb=10),
            event("e3", ts="2026-10-10T00:00:00+02:00", gb=20),
        ]
    )
    cfg = meters("{id: gb, event_name: api.call, aggregation: {type: last, key: gb}}")
    assert quantities(store, cfg) == {"gb": "30"}


def test_last_breaks_a_timestamp_tie_by_the_greatest_event_id(store: Store, ingest: Ingest) -> None:
    ts = "2026-10-20T00:00:00Z"
    # "evt_b" > "evt_a2" > "evt_a10" as strings: evt_b's value wins
    ingest(
        [event("evt_a10", ts=ts, gb=1), event("evt_b", ts=ts, gb=2), event("evt_a2", ts=ts, gb=3)]
    )
    cfg = meters("{id: gb, event_name: api.call, aggregation: {type: last, key: gb}}")
    assert quantities(store, cfg) == {"gb": "2"}


def test_last_ignores_later_events_without_a_usable_value(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("e1", ts="2026-10-02T00:00:00Z", gb=10),
            event("e2", ts="2026-10-03T00:00:00Z", gb="lots"),
            event("e3", ts="2026-10-04T00:00:00Z"),
        ]
    )
    cfg = meters("{id: gb, event_name: api.call, aggregation: {type: last, key: gb}}")
    assert quantities(store, cfg) == {"gb": "10"}


def test_unique_count_counts_distinct_json_values(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("e1", user="u1"),
            event("e2", user="u1"),
            event("e3", user="u2"),
            event("e4", user=5),
            event("e5", user=5.0),  # the same number as 5
            event("e6", user="5"),  # a string, not the number 5
            event("e7", user=True),
            event("e8", user={"id": 1}),
            event("e9", user=None),  # null: skipped, not a value
            event("e10"),  # missing: skipped
        ]
    )
    cfg = meters("{id: users, event_name: api.call, aggregation: {type: unique_count, key: user}}")
    # u1, u2, 5, "5", true, {"id": 1}
    assert quantities(store, cfg) == {"users": "6"}
    assert skipped(store, cfg) == {
        ("users", "missing property 'user'"): 1,
        ("users", "'user' is null"): 1,
    }


def test_unique_count_tells_64_bit_ids_apart(store: Store, ingest: Ingest) -> None:
    # These differ by 1 but are the same IEEE double (1.2345678901234568e18): counted as
    # doubles they would be one user.
    ingest([event("e1", user=1234567890123456789), event("e2", user=1234567890123456788)])
    cfg = meters("{id: users, event_name: api.call, aggregation: {type: unique_count, key: user}}")
    assert quantities(store, cfg) == {"users": "2"}


def test_a_meter_without_events_has_quantity_zero(store: Store, ingest: Ingest) -> None:
    ingest([event("e1", name="other")])
    cfg = meters(
        "{id: calls, event_name: api.call, aggregation: {type: count}}",
        "{id: gb, event_name: api.call, aggregation: {type: max, key: gb}}",
    )
    # cus_a has events, none of them api.call: both meters are 0 (max of nothing is 0 too)
    assert quantities(store, cfg) == {"calls": "0", "gb": "0"}


# -- skipped events ---------------------------------------------------------------------------


def test_events_without_a_usable_value_are_counted_as_skipped_per_reason(
    store: Store, ingest: Ingest
) -> None:
    ingest(
        [
            event("ok1", region="eu", tokens=100),
            event("ok2", region="eu", tokens=2.5),
            event("missing1", region="eu"),
            event("missing2", region="eu", other=1),
            event("string", region="eu", tokens="100"),
            event("null", region="eu", tokens=None),
            event("bool", region="eu", tokens=True),
            event("object", region="eu", tokens={"n": 1}),
            event("too_precise", region="eu", tokens=0.1234567890123),  # 13 decimals
            event("filtered_out", region="us", tokens="x"),  # fails the filter: not skipped
            event("other_name", name="other", tokens="x"),  # no meter counts it
        ]
    )
    cfg = meters(
        "{id: t, event_name: api.call, aggregation: {type: sum, key: tokens}, "
        "filter: {clauses: [{key: region, operator: equals, value: eu}]}}",
    )
    rep = report(store, cfg)
    # 100 + 2.5 = 102.5 from the two usable events
    assert [(r["quantity"], r["events"]) for r in rep["rows"]] == [("102.5", 2)]
    assert {(s["meter_id"], s["reason"]): s["events"] for s in rep["skipped"]} == {
        ("t", "missing property 'tokens'"): 2,
        ("t", "'tokens' is not a number"): 4,  # "100", null, true, {"n": 1}
        ("t", (
            "'tokens' is not an exact decimal (over 12 decimal places or 26 digits, or a "
            "fraction over 15 significant digits)"
        )): 1,
        (None, "no meter counts event_name 'other'"): 1,
    }


def test_skipped_counts_add_up_over_customers(store: Store, ingest: Ingest) -> None:
    ingest([event("a1", "cus_a"), event("b1", "cus_b"), event("b2", "cus_b", gb="x")])
    cfg = meters("{id: gb, event_name: api.call, aggregation: {type: max, key: gb}}")
    assert skipped(store, cfg) == {
        ("gb", "missing property 'gb'"): 2,
        ("gb", "'gb' is not a number"): 1,
    }


def test_count_meters_skip_nothing(store: Store, ingest: Ingest) -> None:
    ingest([event("e1"), event("e2", x=None)])
    cfg = meters("{id: calls, event_name: api.call, aggregation: {type: count}}")
    assert report(store, cfg)["skipped"] == []


# -- filters ----------------------------------------------------------------------------------

VALUES = {
    "int5": 5,
    "float5": 5.0,
    "str5": "5",
    "int7": 7,
    "neg": -1,
    "text": "success",
    "upper": "SUCCESS",
    "true": True,
    "null": None,
    "list": [5],
    "obj": {"a": 5},
    "missing": ...,
}


@pytest.fixture(scope="module")
def values_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The VALUES events, ingested once for every filter test that only reads them."""
    tmp = tmp_path_factory.mktemp("values")
    s = Store.open(tmp / "values.duckdb")
    s.ingest([str(write_events(tmp / "values.jsonl", on_days(VALUES)))])
    yield s
    s.close()


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        # equals compares JSON values: 5 equals 5.0, the string "5" is not the number 5
        ("{key: v, operator: equals, value: 5}", ["int5", "float5"]),
        ("{key: v, operator: equals, value: 5.0}", ["int5", "float5"]),
        ('{key: v, operator: equals, value: "5"}', ["str5"]),
        ("{key: v, operator: equals, value: success}", ["text"]),  # case-sensitive
        ("{key: v, operator: equals, value: true}", ["true"]),
        ("{key: v, operator: equals, value: null}", ["null"]),
        # not_equals holds for every present value that differs (null and other types
        # included), never for a missing property
        (
            "{key: v, operator: not_equals, value: 5}",
            ["str5", "int7", "neg", "text", "upper", "true", "null", "list", "obj"],
        ),
        (
            '{key: v, operator: not_equals, value: "5"}',
            ["int5", "float5", "int7", "neg", "text", "upper", "true", "null", "list", "obj"],
        ),
        # comparisons hold only when both sides are numbers ("5" is not 5)
        ("{key: v, operator: greater_than, value: 5}", ["int7"]),
        ("{key: v, operator: greater_than_or_equals, value: 5}", ["int5", "float5", "int7"]),
        ("{key: v, operator: less_than, value: 5}", ["neg"]),
        ("{key: v, operator: less_than_or_equals, value: 5}", ["int5", "float5", "neg"]),
        ("{key: v, operator: less_than, value: 0.5}", ["neg"]),
        # contains holds only when both sides are strings, case-sensitively
        ("{key: v, operator: contains, value: ucc}", ["text"]),
        ('{key: v, operator: contains, value: "5"}', ["str5"]),  # not the number 5 or [5]
        ("{key: v, operator: does_not_contain, value: ucc}", ["str5", "upper"]),
    ],
)
def test_filter_operators(values_store: Store, clause: str, expected: list[str]) -> None:
    assert matching(values_store, clause, VALUES) == expected


@pytest.mark.parametrize(
    "operator",
    [
        "equals",
        "not_equals",
        "greater_than",
        "greater_than_or_equals",
        "less_than",
        "less_than_or_equals",
        "contains",
        "does_not_contain",
    ],
)
def test_a_clause_on_a_missing_property_is_false_whatever_the_operator(
    values_store: Store, operator: str
) -> None:
    # No event has `v.deep` (v is absent, a scalar, a list, null or an object without
    # `deep`): the clause is false for each, even for not_equals and does_not_contain.
    value = "x" if "contain" in operator else "1"
    assert (
        matching(values_store, f"{{key: v.deep, operator: {operator}, value: {value}}}", VALUES)
        == []
    )


def test_numbers_compare_exactly_beyond_double_precision(store: Store, ingest: Ingest) -> None:
    # 2^53 + 1 = 9007199254740993 is not a double: compared as doubles it equals 2^53
    values = {"two53": 9007199254740992, "two53_1": 9007199254740993, "big": 10**20}
    ingest(on_days(values))
    assert matching(store, "{key: v, operator: equals, value: 9007199254740993}", values) == [
        "two53_1"
    ]


def test_comparisons_of_big_integers_are_exact(store: Store, ingest: Ingest) -> None:
    values = {"two53": 9007199254740992, "two53_1": 9007199254740993, "big": 10**30}
    ingest(on_days(values))
    got = matching(store, "{key: v, operator: greater_than, value: 9007199254740992}", values)
    assert got == ["two53_1", "big"]  # 10^30 has 31 digits: compared as a double, still greater


def test_nested_groups_combine_and_or_to_any_depth(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("eu_ok", status="success", region="eu", size=10),
            event("us_ok", status="success", region="us", size=10),
            event("ap_ok", status="success", region="ap", size=10),
            event("eu_fail", status="error", region="eu", size=10),
            event("eu_small", status="success", region="eu", size=1),
            event("vip", status="success", region="ap", tier="vip"),
        ]
    )
    # status = success AND ((region = eu OR region = us) AND size > 5 OR tier = vip)
    cfg = meters(
        "{id: m, event_name: api.call, aggregation: {type: unique_count, key: status}, filter: "
        "{conjunction: and, clauses: [{key: status, operator: equals, value: success}, "
        "{conjunction: or, clauses: ["
        "{conjunction: and, clauses: [{conjunction: or, clauses: ["
        "{key: region, operator: equals, value: eu}, {key: region, operator: equals, value: us}]},"
        " {key: size, operator: greater_than, value: 5}]}, "
        "{key: tier, operator: equals, value: vip}]}]}}",
        "{id: n, event_name: api.call, aggregation: {type: count}, filter: "
        "{conjunction: and, clauses: [{key: status, operator: equals, value: success}, "
        "{conjunction: or, clauses: ["
        "{conjunction: and, clauses: [{conjunction: or, clauses: ["
        "{key: region, operator: equals, value: eu}, {key: region, operator: equals, value: us}]},"
        " {key: size, operator: greater_than, value: 5}]}, "
        "{key: tier, operator: equals, value: vip}]}]}}",
    )
    # eu_ok, us_ok and vip pass
    assert quantities(store, cfg) == {"m": "1", "n": "3"}


def test_two_filtered_meters_on_one_event_name(store: Store, ingest: Ingest) -> None:
    # image generation priced by quality: one event name, two meters
    ingest(
        [
            event("i1", name="image.generated", quality="standard"),
            event("i2", name="image.generated", quality="hd"),
            event("i3", name="image.generated", quality="hd"),
            event("i4", name="image.generated"),
        ]
    )
    cfg = meters(
        "{id: std, event_name: image.generated, aggregation: {type: count}, "
        "filter: {clauses: [{key: quality, operator: equals, value: standard}]}}",
        "{id: hd, event_name: image.generated, aggregation: {type: count}, "
        "filter: {clauses: [{key: quality, operator: equals, value: hd}]}}",
    )
    assert quantities(store, cfg) == {"std": "1", "hd": "2"}


# -- keys, paths and quoting ------------------------------------------------------------------


def test_dot_paths_reach_nested_properties(store: Store, ingest: Ingest) -> None:
    ingest(
        [
            event("e1", usage={"tokens": 100, "model": {"name": "big"}}),
            event("e2", usage={"tokens": 50, "model": {"name": "small"}}),
            event("e3", usage=7),  # usage.tokens is missing: usage is not an object
            event("e4", **{"usage.tokens": 1000}),  # a flat key with a dot is not the path
        ]
    )
    cfg = meters(
        "{id: t, event_name: api.call, aggregation: {type: sum, key: usage.tokens}}",
        "{id: big, event_name: api.call, aggregation: {type: sum, key: usage.tokens}, "
        "filter: {clauses: [{key: usage.model.name, operator: equals, value: big}]}}",
    )
    assert quantities(store, cfg) == {"t": "150", "big": "100"}
    assert skipped(store, cfg) == {("t", "missing property 'usage.tokens'"): 2}


def test_keys_and_values_with_quotes_are_data(store: Store, ingest: Ingest) -> None:
    nasty = 'it\'s "quoted" \\ ; DROP TABLE events; --'
    ingest(
        [
            event("e1", **{'we"ird': 5, "it's": nasty, "back\\slash": {'q"': 1}, "ü ß": 2}),
            event("e2", **{'we"ird': 7, "it's": "plain"}),
        ]
    )
    cfg = config(
        "version: 1\nmeters:\n"
        "  - id: m\n"
        "    event_name: api.call\n"
        "    aggregation: {type: sum, key: 'we\"ird'}\n"
        "    filter:\n"
        "      clauses:\n"
        '        - key: "it\'s"\n'
        "          operator: equals\n"
        f"          value: {_yaml_string(nasty)}\n"
    )
    assert quantities(store, cfg) == {"m": "5"}
    assert store.scalar("SELECT count(*) FROM events") == 2  # and nothing was dropped
    # a backslash, a quote inside a nested key, non-ASCII and spaces are data too
    other = config(
        "version: 1\nmeters:\n"
        "  - {id: b, event_name: api.call, aggregation: {type: sum, key: 'back\\slash.q\"'}}\n"
        "  - {id: u, event_name: api.call, aggregation: {type: sum, key: 'ü ß'}}\n"
    )
    assert quantities(store, other) == {"b": "1", "u": "2"}


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_config_strings_never_reach_the_sql_text() -> None:
    # Every string the user writes is a bound parameter; only generated names are in the text.
    cfg = config(
        "version: 1\nmeters:\n"
        "  - id: m\n"
        '    event_name: "ev\'il\\"name"\n'
        '    aggregation: {type: sum, key: "k\'ey"}\n'
        '    filter: {clauses: [{key: "fi\'lt", operator: contains, value: "va\'lue"}]}\n'
    )
    compiled = MeterCompiler(cfg.meters).compile(
        Sql("SELECT * FROM events WHERE customer_id = ?", ("cus'x",)), ["customer_id"]
    )
    for text in ("ev'il", "k'ey", "fi'lt", "va'lue", "cus'x"):
        assert text not in compiled.sql.text
    params = compiled.sql.params
    assert {"ev'il\"name", "va'lue", "cus'x"} <= {p for p in params if isinstance(p, str)}
    assert compiled.sql.text.count("?") == len(compiled.sql.params)


def test_quoting_helpers() -> None:
    assert quote_identifier('a"b') == '"a""b"'
    assert json_path("usage.tokens") == '$."usage"."tokens"'
    assert json_path('we"ird') == '$."we\\"ird"'
