"""Load `meters.yaml` into typed models, reporting every mistake at once with FILE:LINE:COL.

YAML is parsed with a safe loader that (a) reads numbers with a fraction as `Decimal` exactly
as written, (b) refuses aliases and duplicate keys, and (c) remembers where every value stands,
so that pydantic's errors and our own cross-checks can point at the line to fix.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
)

from .errors import ConfigError, ConfigIssue, InputError, Location
from .money import CURRENCIES

Path_ = tuple[str | int, ...]

# ---------------------------------------------------------------------------------------------
# YAML with positions


class _Loader(yaml.SafeLoader):
    """Safe loader: Decimal for fractions, no aliases, positions recorded per path."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                problem="YAML aliases (*name) are not supported: write the value out",
                problem_mark=event.start_mark,
            )
        return super().compose_node(parent, index)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    special = {".inf": "Infinity", "+.inf": "Infinity", "-.inf": "-Infinity", ".nan": "NaN"}
    text = special.get(text.lower(), text)
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - YAML's float regex only matches numbers
        raise yaml.MarkedYAMLError(
            problem=f"cannot read {text!r} as a number", problem_mark=node.start_mark
        ) from None


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's composer: ten times faster on a file of 1,000 customers."""


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """A date-like value that is no real date (2026-02-30) is a mistake at its line, not a
    crash."""
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        raise _NotADate(
            problem=f"{node.value!r} is not a real date or time: write dates as 2026-09-01",
            problem_mark=node.start_mark,
        ) from None


class _NotADate(yaml.MarkedYAMLError):
    """Valid YAML whose date does not exist."""


for _loader in (_Loader, _FastLoader):
    _loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _compose(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's node tree, by libyaml when it takes the file without an alias; a file
    it refuses goes through `_Loader`, so that users see the same messages and alias check."""
    if getattr(yaml, "__with_libyaml__", False):
        fast = _FastLoader(text)
        try:
            node = fast.get_single_node()
            if "&" not in text or not _shares_nodes(node):  # an alias needs an anchor, `&`
                return fast, node
        except yaml.YAMLError:
            pass
        fast.dispose()
    loader = _Loader(text)
    return loader, loader.get_single_node()


def _shares_nodes(node: yaml.Node | None) -> bool:
    """An alias makes libyaml put one node in two places."""
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            return True
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            stack.extend(x for pair in n.value for x in pair)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return False


def _positions(
    node: yaml.Node,
) -> tuple[dict[Path_, yaml.Node], dict[Path_, yaml.Node], list[tuple[Path_, yaml.Node]]]:
    """Map each path to the node of its value (and of its key); collect duplicate keys.
    Nodes, not locations: `_at` makes a location only for a problem (a location for each of
    a config's thousands of values was a fifth of loading it)."""
    values: dict[Path_, yaml.Node] = {}
    keys: dict[Path_, yaml.Node] = {}
    duplicates: list[tuple[Path_, yaml.Node]] = []

    def walk(n: yaml.Node, path: Path_) -> None:
        values[path] = n
        if isinstance(n, yaml.MappingNode):
            seen: set[Any] = set()
            for k, v in n.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else str(k)
                if name in seen:
                    duplicates.append(((*path, name), k))
                seen.add(name)
                keys[(*path, name)] = k
                walk(v, (*path, name))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*path, i))

    walk(node, ())
    return values, keys, duplicates


def _at(node: yaml.Node | None) -> Location | None:
    """Where a node stands (1-based), or None."""
    if node is None:
        return None
    return Location("", node.start_mark.line + 1, node.start_mark.column + 1)


# ---------------------------------------------------------------------------------------------
# Models

MeterId = Annotated[str, Field(pattern=r"^[a-z0-9_]+$", min_length=1, max_length=64)]
NonEmpty = Annotated[str, Field(min_length=1)]
Price = Annotated[Decimal, Field(ge=0, max_digits=38, decimal_places=12, allow_inf_nan=False)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=38, decimal_places=12, allow_inf_nan=False)]
Positive = Annotated[Decimal, Field(gt=0, max_digits=38, decimal_places=12, allow_inf_nan=False)]
Operator = Literal[
    "equals",
    "not_equals",
    "greater_than",
    "greater_than_or_equals",
    "less_than",
    "less_than_or_equals",
    "contains",
    "does_not_contain",
]
COMPARISONS = {"greater_than", "greater_than_or_equals", "less_than", "less_than_or_equals"}
FilterValue = StrictBool | StrictInt | Decimal | StrictStr | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Clause(_Model):
    key: NonEmpty
    operator: Operator
    value: FilterValue


def _clause_or_group(v: Any) -> str:
    """Validation sees dicts, serialization sees the models."""
    return "Group" if isinstance(v, Group) or (isinstance(v, dict) and "clauses" in v) else "Clause"


class Group(_Model):
    conjunction: Literal["and", "or"] = "and"
    clauses: list[
        Annotated[
            Annotated[Clause, Tag("Clause")] | Annotated[Group, Tag("Group")],
            Discriminator(_clause_or_group),
        ]
    ]  # an empty group is refused in `_check_group`, so the rest of its meter is checked too


class Aggregation(_Model):
    type: Literal["count", "sum", "max", "min", "last", "unique_count"]
    key: NonEmpty | None = None


class Meter(_Model):
    id: MeterId
    name: NonEmpty | None = None
    event_name: NonEmpty
    aggregation: Aggregation
    unit: str | None = None
    filter: Group | None = None

    @property
    def title(self) -> str:
        return self.name or self.id


class Tier(_Model):
    up_to: Positive | None
    unit_price: Price = Decimal(0)
    flat_price: Price = Decimal(0)


class Charge(_Model):
    meter: NonEmpty
    model: Literal["per_unit", "package", "graduated", "volume"] = "per_unit"
    unit_price: Price | None = None
    free_units: Amount = Decimal(0)
    package_size: Positive | None = None
    package_price: Price | None = None
    tiers: list[Tier] | None = None
    credit: NonEmpty | None = None
    units_per_credit: Positive | None = None


class CreditPool(_Model):
    id: MeterId
    name: NonEmpty | None = None
    per_cycle: Amount
    precision: int = Field(default=2, ge=0, le=12)
    rollover_percent: Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)] | None = None
    overage_unit_price: Price | None = None

    @property
    def title(self) -> str:
        return self.name or self.id


class Product(_Model):
    id: MeterId
    name: NonEmpty | None = None
    base_price: Price | None = None
    charges: list[Charge] = []

    @property
    def title(self) -> str:
        return self.name or self.id


class Customer(_Model):
    id: NonEmpty
    name: NonEmpty | None = None
    product: NonEmpty
    billing_anchor: int = Field(default=1, ge=1, le=31)
    timezone: NonEmpty | None = None
    start_date: dt.date | None = None
    email: str | None = None
    address: str | None = None

    @property
    def title(self) -> str:
        return self.name or self.id


class Issuer(_Model):
    name: NonEmpty | None = None
    address: str | None = None
    tax_id: str | None = None
    invoice_prefix: NonEmpty = "INV"


class Config(_Model):
    version: Literal[1]
    currency: str = "USD"
    timezone: NonEmpty = "UTC"
    meters: list[Meter] = []
    credits: list[CreditPool] = []
    products: list[Product] = []
    customers: list[Customer] = []
    issuer: Issuer | None = None
    source: str = Field(default="meters.yaml", exclude=True)

    @cached_property
    def meter(self) -> dict[str, Meter]:
        return {m.id: m for m in self.meters}

    @cached_property
    def product(self) -> dict[str, Product]:
        return {p.id: p for p in self.products}

    @cached_property
    def credit(self) -> dict[str, CreditPool]:
        return {c.id: c for c in self.credits}

    @cached_property
    def customer(self) -> dict[str, Customer]:
        return {c.id: c for c in self.customers}

    def customer_timezone(self, customer: Customer) -> ZoneInfo:
        return zone(customer.timezone or self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def invoice_prefix(self) -> str:
        return self.issuer.invoice_prefix if self.issuer else "INV"


_ZONE_KEY = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*")


@cache
def zone(key: str) -> ZoneInfo:
    """A time zone from the `tzdata` package usagebill depends on, not the system's files:
    those differ from machine to machine and lag (a system with 2025b puts Vancouver's
    November 2026 an hour off 2026f's), and every machine must bill the same cycles. A key
    the package lacks is looked up as usual. One object per key: datetimes in one zone
    compare as local times."""
    if _ZONE_KEY.fullmatch(key):
        try:
            with resources.files("tzdata").joinpath("zoneinfo", *key.split("/")).open("rb") as f:
                return ZoneInfo.from_file(f, key=key)
        except (OSError, ValueError, ModuleNotFoundError):
            pass
    return ZoneInfo(key)


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise `ConfigError` listing every mistake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            f"{path}: config file not found",
            hint="Run `usagebill init` to write a starter, or pass --config PATH.",
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the config file ({e})") from None
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "meters.yaml") -> Config:
    """Validate config text. `source` names the file in error messages."""
    try:
        return _parse_config(text, source)
    except RecursionError:  # PyYAML and the walks below recurse once per level of nesting
        raise ConfigError([ConfigIssue(
            Location(source, 1, 1), "",
            "the file nests too deeply (hundreds of levels): a config is never that deep")]
        ) from None


def _parse_config(text: str, source: str) -> Config:

    def issue(loc: Location | None, path: str, message: str) -> ConfigIssue:
        loc = loc or Location("", 1, 1)
        return ConfigIssue(Location(source, loc.line, loc.col), path, message)

    loader: Any = None
    try:
        loader, node = _compose(text)
        if node is None:
            raise ConfigError(
                [issue(None, "", "the file is empty; run `usagebill init` for a commented starter")]
            )
        values, keys, duplicates = _positions(node)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = Location("", mark.line + 1, mark.column + 1) if mark else None
        what = " ".join(x for x in (e.context, e.problem) if x)
        if "could not determine a constructor" in what:
            what = f"{what}; only plain YAML is allowed (no !!python or other tags)"
        if not isinstance(e, _NotADate):
            what = f"not valid YAML: {what}"
        raise ConfigError([issue(loc, "", what)]) from None
    except yaml.reader.ReaderError as e:  # a control character: it knows only its offset
        pos = e.position
        loc = Location("", text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos))
        what = (f"not valid YAML: the control character U+{e.character:04X} is not allowed; "
                "remove it, or write it as \\x.. in a double-quoted string")
        raise ConfigError([issue(loc, "", what)]) from None
    except yaml.YAMLError as e:
        raise ConfigError([issue(None, "", f"not valid YAML: {e}")]) from None
    finally:
        if loader is not None:
            loader.dispose()

    def where(path: Path_) -> Location | None:
        for i in range(len(path), -1, -1):
            if path[:i] in values:
                return _at(values[path[:i]])
        return None

    issues = [
        issue(_at(key), _dotted(p), "duplicate key: each key may appear once")
        for p, key in duplicates
    ]
    if not isinstance(data, dict):
        raise ConfigError(
            [
                issue(
                    where(()),
                    "",
                    "the config must be a mapping with version, currency, meters, ...",
                )
            ]
        )
    config, schema_errors, kept = _validate(data, source)
    said: set[Path_] = set()
    for err in schema_errors:
        path = tuple(p for p in err["loc"] if p not in ("Clause", "Group"))
        if len(path) > 1 and path[-2] == "value" and path[-1] in _VALUE_TYPES:
            path = path[:-1]  # a filter value fits none of its types: one line, not four
            if path not in said:
                said.add(path)
                value = err.get("input")
                hint = (f': write it in quotes, e.g. "{value}"'
                        if isinstance(value, (dt.date, dt.datetime)) else "")
                issues.append(issue(where(path), _dotted(path),
                                    "must be text, a number, true, false or null" + hint))
            continue
        if err["type"] == "recursion_depth_exceeded" and "filter" in path:
            path = path[: path.index("filter") + 1]  # not a path of hundreds of parts
        if err["type"] == "invalid_key":  # `1: x` or `null: y`: the key as the file has it
            spelled = ("null", "~", "None") if path[-1] == "None" else (str(path[-1]),)
            found = [_at(keys[k]) for k in ((*path[:-1], x) for x in spelled) if k in keys]
            issues.append(issue(found[0] if found else where(path[:-1]), _dotted(path[:-1]),
                                f"key {spelled[0]} is not a field name"))
            continue
        loc = _at(keys.get(path)) if err["type"] == "extra_forbidden" else where(path)
        issues.append(issue(loc, _dotted(path), _explain(err, path)))
    if config is not None:
        known = {
            s: {str(item.get("id")) for item in data.get(s) or [] if isinstance(item, dict)}
            for s in SECTIONS
            if isinstance(data.get(s), list)
        }
        for p, msg in _check(config, known):
            p = _original_path(p, kept)
            issues.append(issue(where(p), _dotted(p), msg))
    if issues or config is None:
        raise ConfigError(issues)
    return config


SECTIONS = ("meters", "credits", "products", "customers")
_VALUE_TYPES = {"bool", "int", "decimal", "str"}  # FilterValue's members, in errors


def _validate(
    data: dict[str, Any], source: str
) -> tuple[Config | None, list[Any], dict[Path_, list[int]]]:
    """Validate; on errors, validate again without the broken items (a meter, a customer, a
    product's charge) so that the cross-checks still run on everything else."""
    try:
        return Config.model_validate({**data, "source": source}), [], {}
    except ValidationError as e:
        errors = e.errors()
    broken: set[Path_] = set()
    cleaned: dict[str, Any] = dict(data)
    for err in errors:
        loc = err["loc"]
        if len(loc) > 1 and isinstance(loc[1], int):
            deep = len(loc) > 3 and loc[0] == "products" and loc[2] == "charges"
            broken.add(tuple(loc[:4]) if deep and isinstance(loc[3], int) else tuple(loc[:2]))
        else:
            cleaned.pop(loc[0], None)
    cleaned["version"] = 1
    cleaned.setdefault("currency", "USD")
    kept: dict[Path_, list[int]] = {}

    def keep(items: list[Any], path: Path_) -> list[Any]:
        kept[path] = [i for i in range(len(items)) if (*path, i) not in broken]
        return [items[i] for i in kept[path]]

    for section in SECTIONS:
        if isinstance(cleaned.get(section), list):
            cleaned[section] = keep(cleaned[section], (section,))
    products = cleaned.get("products") or []
    for j, (i, product) in enumerate(zip(kept.get(("products",), []), products)):
        if isinstance(product, dict) and isinstance(product.get("charges"), list):
            products[j] = {
                **product,
                "charges": keep(product["charges"], ("products", i, "charges")),
            }
    try:
        return Config.model_validate({**cleaned, "source": source}), errors, kept
    except ValidationError:
        return None, errors, kept


def _original_path(path: Path_, kept: dict[Path_, list[int]]) -> Path_:
    """Map a path in the cleaned config back to the file's indices."""
    out: Path_ = ()
    for part in path:
        if isinstance(part, int) and out in kept:
            part = kept[out][part]
        out = (*out, part)
    return out


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _explain(err: dict[str, Any], path: Path_) -> str:
    """Pydantic's error in plain words."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    field = path[-1] if path else ""
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field" + suggest(str(field), _fields_at(path[:-1]))
    if kind == "string_type":
        if isinstance(value, (int, Decimal, bool, dt.date)):
            return f'must be text: write it in quotes, e.g. "{value}"'
        return "must be text"
    if kind == "string_pattern_mismatch":
        return "must use only lowercase letters, digits and underscores"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("decimal_parsing", "decimal_type"):
        return f'must be a decimal number such as "0.02", not {value!r}'
    if kind == "recursion_depth_exceeded":
        return "nests too deeply (it is checked to a depth of about 250 groups): flatten it"
    if kind == "decimal_max_places":
        return "has more than 12 decimal places"
    if kind in ("decimal_max_digits", "decimal_whole_digits"):
        return "is too large: at most 26 digits before the decimal point"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "greater than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {words} {bound}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}; got {value!r}"
    if kind == "list_type":
        return "must be a list (lines starting with '- ')"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a mapping of key: value pairs"
    if kind in (
        "date_parsing",
        "date_type",
        "date_from_datetime_parsing",
        "date_from_datetime_inexact",
    ):
        return "must be a date like 2026-09-01"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "too_short":
        return "must not be empty"
    if kind == "union_tag_invalid":
        return "must be a clause (key, operator, value) or a group (conjunction, clauses)"
    msg = str(err.get("msg", kind))
    return msg.removeprefix("Value error, ")


def _fields_at(path: Path_) -> list[str]:
    """Field names allowed at `path`, found by walking the model annotations."""
    model: Any = Config
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return []
        model = _model_in(fields[part].annotation)
        if model is None:
            return []
    return [f for f in getattr(model, "model_fields", {}) if f != "source"]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def suggest(name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    if choices and len(choices) <= 12:
        return "; expected one of: " + ", ".join(choices)
    return ""


# ---------------------------------------------------------------------------------------------
# Cross-checks pydantic cannot make: each returns (path, message) pairs.

Problem = tuple[Path_, str]
Known = dict[str, set[str]]  # every id written in each section, valid or not


def _check_unique(config: Config, known: Known) -> Iterable[Problem]:
    for section in ("meters", "credits", "products", "customers"):
        first: dict[str, int] = {}
        for i, item in enumerate(getattr(config, section)):
            if item.id in first:
                yield (
                    (section, i, "id"),
                    (f"duplicate id {item.id!r}: already used by {section}[{first[item.id]}]"),
                )
            first.setdefault(item.id, i)


def _check_zones(config: Config, known: Known) -> Iterable[Problem]:
    if config.currency not in CURRENCIES:
        code = config.currency.upper()
        major = "USD EUR GBP JPY CHF CAD AUD CNY INR BRL MXN SEK NOK DKK PLN".split()
        near = (
            [c for c in major if c[:2] == code[:2]]
            or [c for c in CURRENCIES if c[:2] == code[:2]]
            or list(CURRENCIES)
        )
        yield ("currency",), f"unknown ISO 4217 currency {config.currency!r}" + suggest(code, near)
    places: list[tuple[Path_, str]] = [(("timezone",), config.timezone)]
    places += [
        (("customers", i, "timezone"), c.timezone)
        for i, c in enumerate(config.customers)
        if c.timezone
    ]
    for path, name in places:
        try:
            zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            import zoneinfo

            yield (
                path,
                f"unknown IANA time zone {name!r}"
                + suggest(name, sorted(zoneinfo.available_timezones())),
            )


def _check_meters(config: Config, known: Known) -> Iterable[Problem]:
    for i, m in enumerate(config.meters):
        agg = m.aggregation
        if agg.type == "count" and agg.key is not None:
            yield (
                ("meters", i, "aggregation", "key"),
                ("count takes no key (it counts events); remove it or use unique_count"),
            )
        if agg.type != "count" and agg.key is None:
            yield (
                ("meters", i, "aggregation", "key"),
                (f"{agg.type} needs a key: the metadata property to aggregate"),
            )
        if agg.key is not None and "" in agg.key.split("."):
            yield ("meters", i, "aggregation", "key"), "has an empty part between dots"
        if m.filter is not None:
            yield from _check_group(m.filter, ("meters", i, "filter"))


def _check_group(group: Group, path: Path_) -> Iterable[Problem]:
    if not group.clauses:
        yield (*path, "clauses"), "a filter group needs at least one clause"
    for j, c in enumerate(group.clauses):
        here = (*path, "clauses", j)
        if isinstance(c, Group):
            yield from _check_group(c, here)
            continue
        if "" in c.key.split("."):
            yield (*here, "key"), "has an empty part between dots"
        numeric = isinstance(c.value, (int, Decimal)) and not isinstance(c.value, bool)
        if c.operator in COMPARISONS and not numeric:
            yield (*here, "value"), f"{c.operator} compares numbers: value must be a number"
        if c.operator in ("contains", "does_not_contain") and not isinstance(c.value, str):
            yield (*here, "value"), f"{c.operator} compares text: value must be a string"
        if isinstance(c.value, Decimal) and not c.value.is_finite():
            yield (*here, "value"), "must be a finite number"


_MODEL_FIELDS = {
    "per_unit": {"unit_price"},
    "package": {"package_size", "package_price"},
    "graduated": {"tiers"},
    "volume": {"tiers"},
}


def _check_products(config: Config, known: Known) -> Iterable[Problem]:
    for i, p in enumerate(config.products):
        seen: dict[str, int] = {}
        for j, ch in enumerate(p.charges):
            here = ("products", i, "charges", j)
            if ch.meter not in known.get("meters", ()):
                yield (
                    (*here, "meter"),
                    f"unknown meter {ch.meter!r}" + suggest(ch.meter, config.meter),
                )
            if ch.meter in seen:
                yield (
                    (*here, "meter"),
                    (f"meter {ch.meter!r} is already charged by charges[{seen[ch.meter]}]"),
                )
            seen.setdefault(ch.meter, j)
            given = {
                f
                for f in ("unit_price", "package_size", "package_price", "tiers")
                if getattr(ch, f) is not None
            }
            if ch.credit is not None:
                if ch.credit not in known.get("credits", ()):
                    yield (
                        (*here, "credit"),
                        f"unknown credit pool {ch.credit!r}" + suggest(ch.credit, config.credit),
                    )
                for f in sorted(given):
                    yield (*here, f), "a charge drawing on credits has no money price"
                if "model" in ch.model_fields_set:
                    yield (*here, "model"), "a charge drawing on credits has no pricing model"
                continue
            if ch.units_per_credit is not None:
                yield (*here, "units_per_credit"), "only used with credit:"
            needed = _MODEL_FIELDS[ch.model]
            for f in sorted(needed - given):
                yield (*here, f), f"the {ch.model} model needs {f}"
            for f in sorted(given - needed):
                yield (*here, f), f"not used by the {ch.model} model"
            if ch.tiers is not None:
                yield from _check_tiers(ch.tiers, (*here, "tiers"))


def _check_tiers(tiers: list[Tier], path: Path_) -> Iterable[Problem]:
    if not tiers:
        yield path, "needs at least one tier"
        return
    previous: Decimal | None = None
    for k, t in enumerate(tiers):
        last = k == len(tiers) - 1
        if t.up_to is None and not last:
            yield (*path, k, "up_to"), "only the last tier may be unbounded (up_to: null)"
        if t.up_to is not None and last:
            yield (*path, k, "up_to"), "the last tier must be unbounded: up_to: null"
        if t.up_to is not None and previous is not None and t.up_to <= previous:
            yield (*path, k, "up_to"), f"must be greater than the previous tier's {previous}"
        if t.up_to is not None:
            previous = t.up_to


def _check_customers(config: Config, known: Known) -> Iterable[Problem]:
    for i, c in enumerate(config.customers):
        if c.product not in known.get("products", ()):
            yield (
                ("customers", i, "product"),
                f"unknown product {c.product!r}" + suggest(c.product, config.product),
            )


CHECKS: list[Callable[[Config, Known], Iterable[Problem]]] = [
    _check_unique,
    _check_zones,
    _check_meters,
    _check_products,
    _check_customers,
]


def _check(config: Config, known: Known) -> list[Problem]:
    return [problem for check in CHECKS for problem in check(config, known)]
