"""Config loading: typed models, exact decimals, every mistake at once with FILE:LINE:COL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from usagebill.config import load_config, parse_config
from usagebill.errors import ConfigError, InputError

from .conftest import DATA, ROOT

MINIMAL = """\
version: 1
currency: USD
meters:
  - id: api_calls
    event_name: api.call
    aggregation: {type: count}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "meters.yaml")
    return e.value.lines()


def test_the_example_config_is_valid_and_is_what_init_writes() -> None:
    cfg = load_config(ROOT / "meters.yaml.example")
    assert len(cfg.customers) == 19
    starter = (ROOT / "usagebill" / "data" / "meters.yaml").read_text()
    assert (ROOT / "meters.yaml.example").read_text() == starter


def test_a_file_with_only_meters_is_enough() -> None:
    cfg = parse_config(MINIMAL)
    assert [m.id for m in cfg.meters] == ["api_calls"]
    assert cfg.products == [] and cfg.customers == [] and cfg.timezone == "UTC"


def test_prices_are_taken_exactly_as_written() -> None:
    cfg = parse_config(
        MINIMAL
        + """\
products:
  - id: p
    base_price: 0.10
    charges:
      - {meter: api_calls, unit_price: 0.000000000001}
"""
    )
    assert cfg.products[0].base_price == Decimal("0.10")
    assert str(cfg.products[0].base_price) == "0.10"  # not the binary float 0.1000000000000000055
    assert cfg.products[0].charges[0].unit_price == Decimal("1E-12")


def test_more_than_twelve_decimals_is_an_error() -> None:
    out = problems(
        MINIMAL
        + """\
products:
  - id: p
    charges:
      - {meter: api_calls, unit_price: "0.0000000000001"}
"""
    )
    assert out == [
        "meters.yaml:10:40: products[0].charges[0].unit_price: has more than 12 decimal places"
    ]


def test_every_mistake_is_reported_at_once_with_line_and_column() -> None:
    out = problems("""\
version: 1
currency: USX
timezone: Europe/Berln
meters:
  - id: API
    event_name: api.call
    aggregation: {type: sum}
products:
  - id: pro
    charges:
      - meter: api_cals
        unit_prise: "0.02"
      - meter: api
        model: graduated
        tiers:
          - {up_to: 10, unit_price: "0.1"}
customers:
  - {id: c1, product: pr0}
""")
    assert out == [
        "meters.yaml:2:11: currency: unknown ISO 4217 currency 'USX'; did you mean 'USD'?",
        "meters.yaml:3:11: timezone: unknown IANA time zone 'Europe/Berln'; "
        "did you mean 'Europe/Berlin'?",
        "meters.yaml:5:9: meters[0].id: must use only lowercase letters, digits and underscores",
        "meters.yaml:12:9: products[0].charges[0].unit_prise: unknown field; "
        "did you mean 'unit_price'?",
        "meters.yaml:13:16: products[0].charges[1].meter: unknown meter 'api'",
        "meters.yaml:16:21: products[0].charges[1].tiers[0].up_to: the last tier must be "
        "unbounded: up_to: null",
        "meters.yaml:18:23: customers[0].product: unknown product 'pr0'; did you mean 'pro'?",
    ]


def test_aggregation_keys_and_filter_values_are_checked() -> None:
    out = problems("""\
version: 1
meters:
  - id: a
    event_name: x
    aggregation: {type: sum}
  - id: b
    event_name: x
    aggregation: {type: count, key: n}
  - id: c
    event_name: x
    aggregation: {type: count}
    filter:
      clauses:
        - {key: n, operator: greater_than, value: "5"}
        - {key: s, operator: contains, value: 5}
        - conjunction: or
          clauses: []
""")
    assert out == [
        "meters.yaml:5:18: meters[0].aggregation.key: sum needs a key: the metadata property "
        "to aggregate",
        "meters.yaml:8:37: meters[1].aggregation.key: count takes no key (it counts events); "
        "remove it or use unique_count",
        "meters.yaml:14:51: meters[2].filter.clauses[0].value: greater_than compares numbers: "
        "value must be a number",
        "meters.yaml:15:47: meters[2].filter.clauses[1].value: contains compares text: value "
        "must be a string",
        "meters.yaml:17:20: meters[2].filter.clauses[2].clauses: a filter group needs at least "
        "one clause",
    ]


def test_a_filter_value_of_no_allowed_type_is_one_line() -> None:
    out = problems("""\
version: 1
meters:
  - {id: a, event_name: x, aggregation: {type: count},
     filter: {clauses: [{key: k, operator: equals, value: [1, 2]}]}}
  - {id: b, event_name: x, aggregation: {type: count},
     filter: {clauses: [{key: k, operator: equals, value: 2026-10-01}]}}
""")
    assert out == [
        "meters.yaml:4:59: meters[0].filter.clauses[0].value: must be text, a number, true, "
        "false or null",
        "meters.yaml:6:59: meters[1].filter.clauses[0].value: must be text, a number, true, "
        'false or null: write it in quotes, e.g. "2026-10-01"',
    ]


def test_duplicate_ids_and_keys() -> None:
    out = problems(
        MINIMAL
        + """\
  - id: api_calls
    event_name: other
    event_name: again
    aggregation: {type: count}
"""
    )
    assert out == [
        "meters.yaml:7:9: meters[1].id: duplicate id 'api_calls': already used by meters[0]",
        "meters.yaml:9:5: meters[1].event_name: duplicate key: each key may appear once",
    ]


def test_charge_model_fields() -> None:
    out = problems(
        MINIMAL
        + """\
credits:
  - {id: pool, per_cycle: 10}
products:
  - id: p
    charges:
      - {meter: api_calls, model: package, unit_price: "1"}
  - id: q
    charges:
      - {meter: api_calls, credit: pool, unit_price: "1"}
"""
    )
    assert out == [
        "meters.yaml:12:9: products[0].charges[0].package_price: the package model needs "
        "package_price",
        "meters.yaml:12:9: products[0].charges[0].package_size: the package model needs "
        "package_size",
        "meters.yaml:12:56: products[0].charges[0].unit_price: not used by the package model",
        "meters.yaml:15:54: products[1].charges[0].unit_price: a charge drawing on credits has "
        "no money price",
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "version: 1\nmeters: !!python/object:os.system {}\n",
            "meters.yaml:2:9: not valid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'; only plain YAML is allowed (no !!python "
            "or other tags)",
        ),
        (
            "version: 1\nx: &a [1]\ny: *a\n",
            "meters.yaml:3:4: not valid YAML: YAML aliases (*name) are not supported: write the "
            "value out",
        ),
        (
            "version: 1\nmeters: [\n",
            "meters.yaml:3:1: not valid YAML: while parsing a flow "
            "node expected the node content, but found '<stream end>'",
        ),
        ("", "meters.yaml:1:1: the file is empty; run `usagebill init` for a commented starter"),
        (  # a date that does not exist: a mistake at its place, not a crash
            "version: 1\ncustomers:\n  - {id: c1, product: p, start_date: 2026-02-30}\n",
            "meters.yaml:3:38: '2026-02-30' is not a real date or time: write dates as 2026-09-01",
        ),
        (
            "version: 1\nmeters:\n  - {id: m, event_name: \"a\x01b\"}\n",
            "meters.yaml:3:27: not valid YAML: the control character U+0001 is not allowed; "
            "remove it, or write it as \\x.. in a double-quoted string",
        ),
        (
            "- 1\n",
            "meters.yaml:1:1: the config must be a mapping with version, currency, meters, ...",
        ),
    ],
)
def test_unsafe_or_broken_yaml_is_refused_with_its_position(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_ids_written_as_numbers_must_be_quoted() -> None:
    out = problems(MINIMAL + "products: [{id: p}]\ncustomers:\n  - {id: 12345, product: p}\n")
    assert out == [
        'meters.yaml:9:10: customers[0].id: must be text: write it in quotes, e.g. "12345"'
    ]


def test_a_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_config(tmp_path / "nope.yaml")
    assert e.value.lines() == [
        f"{tmp_path / 'nope.yaml'}: config file not found",
        "Run `usagebill init` to write a starter, or pass --config PATH.",
    ]


def test_ten_thousand_meters_validate() -> None:
    lines = ["version: 1", "meters:"]
    for i in range(10_000):
        lines.append(f"  - {{id: m{i}, event_name: e{i}, aggregation: {{type: count}}}}")
    cfg = parse_config("\n".join(lines) + "\n")
    assert len(cfg.meters) == 10_000


def test_fixture_configs_are_valid() -> None:
    for path in DATA.glob("*.yaml"):
        load_config(path)


def test_time_zones_come_from_the_tzdata_package() -> None:
    # The system's zone files differ between machines (and lag): every machine must cut the
    # same cycles, so zones are read from the `tzdata` package usagebill installs.
    import tzdata

    from usagebill.config import zone

    berlin = zone("Europe/Berlin")
    assert berlin is zone("Europe/Berlin") and berlin.key == "Europe/Berlin"
    packaged = Path(tzdata.__file__).parent / "zoneinfo" / "America" / "Vancouver"
    with packaged.open("rb") as f:
        expected = ZoneInfo.from_file(f, key="America/Vancouver")
    when = dt.datetime(2026, 11, 15, 12)
    assert zone("America/Vancouver").utcoffset(when) == expected.utcoffset(when)
    for bad in ("Mars/Olympus", "../../etc/passwd"):
        with pytest.raises((ZoneInfoNotFoundError, ValueError)):
            zone(bad)
