"""Compile meters and their filters to SQL. Pure: no connection, no execution.

One query computes every meter for every group (customer, cycle or day) in one pass over
the events: each metadata property the meters need is extracted once per event, each meter's
match (event name + filter) is one boolean column, and each meter contributes a few
`FILTER`ed aggregates. Config strings are always bound parameters; the only names pasted
into SQL are ones this module makes up (`m0_q`, `k1_json`, ...).

Everything engine-specific goes through `DuckDB` (the dialect): another engine is another
dialect class, not a rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from .config import Clause, Group, Meter
from .sql import Sql

NUMERIC_AGGREGATIONS = {"sum", "max", "min", "last"}
MATERIALIZE_OVER = 24  # meters in one query above which the per-property columns are stored


def json_path(key: str) -> str:
    """`usage.tokens` -> `$."usage"."tokens"`: every part quoted, so dots split and nothing else."""
    parts = (p.replace("\\", "\\\\").replace('"', '\\"') for p in key.split("."))
    return "$" + "".join(f'."{p}"' for p in parts)


class DuckDB:
    """The SQL functions the compiler needs, as DuckDB spells them."""

    def is_number(self, token: str) -> str:
        """A JSON number's text starts with '-' or a digit (ASCII 45, 48-57), and no other
        JSON value's does: cheaper than asking `json_type` for every event. Not `IN (...)`:
        DuckDB copies a column's expression into every use, and its IN-list optimizer, run
        on hundreds of copies, made planning take seconds."""
        code = f"ascii(({token})::VARCHAR)"
        return f"coalesce({code} = 45 OR {code} BETWEEN 48 AND 57, false)"

    decimal = "DECIMAL(38, 12)"

    def extract_paths(self, json: str, paths: list[str]) -> Sql:
        """All needed properties from one parse of the metadata, as a list of JSON values."""
        return Sql(f"json_extract({json}, ?::VARCHAR[])", (paths,))

    def item(self, lst: str, index: int) -> str:
        return f"{lst}[{index + 1}]"

    def json_type(self, expr: str) -> str:
        return f"json_type({expr})"

    def is_json_null(self, token: str) -> str:
        """JSON null, told by its text: json_extract writes it as `null`, and reading the
        text is cheaper than asking `json_type` for every event."""
        return f"({token})::VARCHAR = 'null'"

    def as_decimal(self, expr: str) -> str:
        return f"TRY_CAST(({expr})::VARCHAR AS {self.decimal})"

    def short_or_whole(self, token: str) -> str:
        """A JSON number written without an exponent, either without a fraction or in at
        most 14 characters (so at most 12 decimals and 13 digits). Such a number is exactly
        its DECIMAL(38, 12): DuckDB's JSON reader keeps integers exactly but carries
        fractions as doubles, so only a longer fraction may have been rounded on the way in
        and needs the double check."""
        text = f"({token})::VARCHAR"
        return (f"(NOT (contains({text}, 'e') OR contains({text}, 'E')) "
                f"AND (length({text}) <= 14 OR NOT contains({text}, '.')))")

    def significant_digits(self, number: str) -> str:
        return f"length(trim(replace(abs({number})::VARCHAR, '.', ''), '0'))"

    def as_double(self, expr: str) -> str:
        return f"TRY_CAST(({expr})::VARCHAR AS DOUBLE)"

    def string_value(self, expr: str) -> str:
        return f"({expr} ->> '$')"

    def contains(self, haystack: str) -> str:
        return f"contains({haystack}, ?)"

    def when(self, cond: str, value: str) -> str:
        return f"CASE WHEN {cond} THEN {value} END"

    def count_if(self, cond: str) -> str:
        return f"count(CASE WHEN {cond} THEN 1 END)"

    def last_order(self, cond: str) -> str:
        """An event's place in time for `last` (ties: the greatest event_id); NULL leaves
        the event out."""
        return f"CASE WHEN {cond} THEN (ts, event_id) END"

    def last(self, value: str, order: str) -> str:
        """The value of the event with the greatest `last_order`."""
        return f"arg_max({value}, {order})"

    def count_distinct(self, expr: str) -> str:
        return f"count(DISTINCT {expr})"


@dataclass(frozen=True)
class Key:
    """One metadata property: where its columns are in the compiled query."""

    index: int
    path: str

    @property
    def json(self) -> str:
        return f"k{self.index}_json"

    @property
    def type(self) -> str:
        return f"k{self.index}_type"

    @property
    def number(self) -> str:
        return f"k{self.index}_num"

    @property
    def exact(self) -> str:
        return f"k{self.index}_ok"

    @property
    def is_number(self) -> str:
        return f"k{self.index}_isnum"


# Why an event was not counted by a non-count meter; the usage report shows these.
SKIP_REASONS = {
    "missing": "missing property {key!r}",
    "not_number": "{key!r} is not a number",
    "not_exact": "{key!r} is not an exact decimal (over 12 decimal places or 26 digits, or a "
    "fraction over 15 significant digits)",
    "null": "{key!r} is null",
}
SKIP_CODES = {reason: n for n, reason in enumerate(SKIP_REASONS, 1)}


@dataclass(frozen=True)
class MeterColumns:
    """Where one meter's results are in each result row."""

    meter: Meter
    quantity: str
    events: str
    skips: dict[str, str] = field(default_factory=dict)  # reason code -> column
    matched: str | None = None  # without reasons: the events the meter matched


@dataclass(frozen=True)
class CompiledQuery:
    sql: Sql
    group_by: tuple[str, ...]
    meters: tuple[MeterColumns, ...]
    unmetered: str = "unmetered_events"


class MeterCompiler:
    """Turns meters into one aggregate query over a source relation of events.

    The source must provide `event_name`, `ts`, `event_id`, `metadata` and the group-by
    columns. It is given as `Sql`, so its own parameters travel with it.
    """

    def __init__(self, meters: Sequence[Meter], dialect: DuckDB | None = None) -> None:
        self.meters = list(meters)
        self.d = dialect or DuckDB()
        paths: dict[str, Key] = {}
        for m in self.meters:
            for key in _keys(m):
                paths.setdefault(key, Key(len(paths), json_path(key)))
        self.keys = paths
        # Keys that need their exact decimal: numeric aggregations, unique_count (distinct
        # numbers are told apart exactly, not as doubles) and clauses comparing numbers.
        self.numeric_keys = {
            m.aggregation.key
            for m in self.meters
            if m.aggregation.type in NUMERIC_AGGREGATIONS | {"unique_count"}
        } | {c.key for m in self.meters for c in _clauses(m) if _is_number(c.value)}

    def _relations(self, source: Sql, carry: Sequence[str], restrict: bool = False) -> Sql:
        """`WITH src, x, y`: y has, per event, the `carry` columns, ts, event_id, each needed
        property (value, JSON type, exact decimal) and each meter's match."""
        d = self.d
        cols_carried = ", ".join(carry)
        names = sorted({m.event_name for m in self.meters})
        metered = (
            Sql("event_name IN (" + ", ".join("?" * len(names)) + ")", tuple(names))
            if names
            else Sql("false")
        )
        # 1. One JSON parse per event: every property any meter needs.
        extract = (
            d.extract_paths("metadata", [k.path for k in self.keys.values()])
            if self.keys
            else Sql("NULL")
        )
        x = (
            Sql(f"SELECT {cols_carried}, event_name, ts, event_id, ")
            + metered
            + " AS metered, "
            + extract
            + " AS props FROM src"
        )
        if restrict:  # only these meters' events (a query for some of many meters)
            x = x + " WHERE " + metered
        # 2. Per property: value, JSON type and (for numeric aggregations) exact decimal.
        cols: list[Sql] = []
        for key, k in self.keys.items():
            item = d.item("props", k.index)
            cols.append(Sql(f"{item} AS {k.json}, {d.json_type(item)} AS {k.type}, "
                            f"{d.is_number(item)} AS {k.is_number}"))
            if key not in self.numeric_keys:
                continue
            number = f"CASE WHEN {k.is_number} THEN "  # only JSON numbers
            cols.append(Sql(f"{number}{d.as_decimal(item)} END AS {k.number}"))
            # Exact: an integer that fits (the reader keeps integers exactly), or a fraction
            # the decimal holds without rounding (same double) in at most 15 significant
            # digits. Integers and short fractions, the usual cases, skip the double work.
            cols.append(Sql(
                f"CASE WHEN {k.number} IS NULL THEN false "
                f"WHEN {d.short_or_whole(item)} THEN true "
                f"ELSE coalesce({k.number}::DOUBLE = {d.as_double(item)} AND "
                f"{d.significant_digits(k.number)} <= 15, false) END AS {k.exact}"))
        # 3. Per meter: does the event count toward it (name + filter)?
        matches = []
        for i, m in enumerate(self.meters):
            cond = Sql("(event_name = ?", (m.event_name,))
            if m.filter is not None:
                cond = cond + " AND " + self._group(m.filter)
            matches.append(cond + f") AS m{i}_match")
        # The properties' columns are made in `k` and only named in `y`.
        k = Sql.join(
            [Sql(f"SELECT {cols_carried}, event_name, ts, event_id, metered"), *cols], ", "
        ) + " FROM x"
        names = "".join(f", {c}" for key, ki in self.keys.items()
                        for c in ([ki.json, ki.type, ki.is_number] + ([ki.number, ki.exact]
                                                       if key in self.numeric_keys else [])))
        y = Sql.join(
            [Sql(f"SELECT {cols_carried}, ts, event_id, metered{names}"), *matches], ", "
        ) + " FROM k"
        # DuckDB copies a CTE's column expressions into every use and then spends its time
        # finding the common ones again: past a couple dozen meters, planning took seconds.
        # Materializing `k` keeps each property computed once and referenced by name.
        materialized = " MATERIALIZED" if len(self.meters) > MATERIALIZE_OVER else ""
        return (Sql("WITH src AS (") + source + "), x AS (" + x + f"), k AS{materialized} ("
                + k + "), y AS (" + y + ") ")

    def compile(
        self, source: Sql, group_by: Sequence[str], restrict: bool = False, reasons: bool = True
    ) -> CompiledQuery:
        """One aggregate query: every meter for every group. With `restrict`, only events of
        these meters' names are read (and none counts as unmetered). Without `reasons`, a
        meter that counts values gives only how many events it matched, not why some were
        skipped: finding the reason for every event cost 7% of the query, and most
        periods skip nothing (`usage.measure` asks again with reasons when one does).

        Each meter's inputs (its value, why an event was skipped) are made in `z`, one or two
        narrow columns per meter, and the aggregates read only those: a unique_count makes
        DuckDB store the aggregate's input for a second pass, and that input is small."""
        groups = ", ".join(group_by)
        inputs: list[str] = []
        aggs = [f"{self.d.count_if('NOT metered')} AS unmetered_events"]
        layout = []
        for i, m in enumerate(self.meters):
            cols_in, agg, cols_i = self._aggregate(i, m, reasons)
            inputs += cols_in
            aggs += agg
            layout.append(cols_i)
        z = f"SELECT {groups}, metered" + "".join(f", {c}" for c in inputs) + " FROM y"
        sql = (
            self._relations(source, group_by, restrict)
            + f", z AS ({z}) SELECT {groups}, "
            + ", ".join(aggs)
            + f" FROM z GROUP BY {groups} ORDER BY {groups}"
        )
        return CompiledQuery(sql, tuple(group_by), tuple(layout))

    def compile_rows(self, source: Sql, carry: Sequence[str]) -> Sql:
        """The events each meter counts, one row per (event, meter), with the value it
        counted: what `explain --events` exports. Columns: meter index `m`, the `carry`
        columns, ts, event_id, value (text)."""
        parts = []
        for i, m in enumerate(self.meters):
            kind = m.aggregation.type
            if kind == "count":
                value, ok = "'1'", f"m{i}_match"
            else:
                k = self.keys[m.aggregation.key or ""]
                if kind == "unique_count":
                    value = f"{k.json}::VARCHAR"
                    ok = f"m{i}_match AND NOT {self.d.is_json_null(k.json)}"
                else:
                    value, ok = f"{k.number}::VARCHAR", f"m{i}_match AND {k.exact}"
            parts.append(
                f"SELECT {i} AS m, {', '.join(carry)}, ts, event_id, {value} AS value "
                f"FROM y WHERE {ok}"
            )
        body = " UNION ALL ".join(parts) if parts else "SELECT NULL WHERE false"
        return self._relations(source, carry) + body + " ORDER BY m, ts, event_id"

    def _aggregate(
        self, i: int, m: Meter, reasons: bool = True
    ) -> tuple[list[str], list[str], MeterColumns]:
        """The meter's columns in `z` and its aggregates over them. Conditional aggregates
        are `agg(CASE WHEN cond THEN x END)`, not `FILTER (WHERE cond)`: DuckDB updates a
        FILTERed aggregate in a pass of its own, so with hundreds of meters FILTER grew with
        the square of their number; CASE stays linear.

        An event a meter matches but cannot count gets a reason code in `m{i}_why` (the
        `SKIP_CODES`), so one small column carries every reason."""
        d, match, kind = self.d, f"m{i}_match", m.aggregation.type
        q, e, v, why = f"m{i}_q", f"m{i}_events", f"m{i}_v", f"m{i}_why"
        if kind == "count":
            return [match], [f"{d.count_if(match)} AS {q}", f"{q} AS {e}"], MeterColumns(m, q, e)
        k = self.keys[m.aggregation.key or ""]
        if kind == "unique_count":
            # Numbers by value (5 and 5.0 are one value), exactly where they fit the decimal
            # type: 64-bit ids that doubles cannot tell apart stay distinct.
            # One flat CASE: a nested one (and json_type for every event) made this meter's
            # input cost a tenth of the query.
            is_null = d.is_json_null(k.json)
            counted = f"{match} AND NOT {is_null}"
            counted_value = (
                f"CASE WHEN NOT {match} OR {is_null} THEN NULL "
                f"WHEN {k.is_number} AND {k.exact} THEN 'n:' || {k.number}::VARCHAR "
                f"WHEN {k.is_number} THEN 'd:' || {d.as_double(k.json)}::VARCHAR "
                f"ELSE {k.json}::VARCHAR END"
            )
            why_codes = [("missing", f"{k.json} IS NULL"), ("null", is_null)]
            func = d.count_distinct(v)
        else:
            counted = f"{match} AND {k.exact}"
            counted_value = d.when(counted, k.number)
            why_codes = [
                ("missing", f"{k.json} IS NULL"),
                ("not_number", f"NOT {k.is_number}"),
                ("not_exact", f"NOT {k.exact}"),
            ]
            func = {
                "sum": f"sum({v})",
                "max": f"max({v})",
                "min": f"min({v})",
                "last": d.last(v, f"m{i}_at"),
            }[kind]
        inputs = [f"{counted_value} AS {v}"]
        if kind == "last":
            inputs.append(f"{d.last_order(counted)} AS m{i}_at")
        aggs = [f"{func} AS {q}", f"count({v}) AS {e}"]
        if not reasons:
            matched = f"m{i}_matched"
            return ([*inputs, match], [*aggs, f"{d.count_if(match)} AS {matched}"],
                    MeterColumns(m, q, e, matched=matched))
        whens = " ".join(f"WHEN {cond} THEN {SKIP_CODES[r]}" for r, cond in why_codes)
        inputs.append(
            f"CASE WHEN {match} AND NOT coalesce({counted}, false) THEN (CASE {whens} END) END "
            f"AS {why}"
        )
        skips = {r: f"m{i}_skip_{r}" for r, _ in why_codes}
        aggs += [
            f"{d.count_if(f'{why} = {SKIP_CODES[r]}')} AS {col}" for r, col in skips.items()
        ]
        return inputs, aggs, MeterColumns(m, q, e, skips)

    # -- filters ------------------------------------------------------------------------------

    def _group(self, group: Group) -> Sql:
        parts = [self._group(c) if isinstance(c, Group) else self._clause(c) for c in group.clauses]
        return Sql("(") + Sql.join(parts, f" {group.conjunction.upper()} ") + ")"

    def _clause(self, c: Clause) -> Sql:
        """A clause is false when the property is missing, whatever the operator (SPEC §3)."""
        d, k = self.d, self.keys[c.key]
        op = c.operator
        if op in ("equals", "not_equals"):
            same = self._equals(k, c.value)
            body = same if op == "equals" else Sql(f"{k.json} IS NOT NULL AND NOT ") + same
        elif op in ("contains", "does_not_contain"):
            neg = "" if op == "contains" else "NOT "
            body = Sql(
                f"{k.type} = 'VARCHAR' AND {neg}{d.contains(d.string_value(k.json))}", (c.value,)
            )
        else:
            sym = {
                "greater_than": ">",
                "greater_than_or_equals": ">=",
                "less_than": "<",
                "less_than_or_equals": "<=",
            }[op]
            body = self._compare_number(k, sym, c.value)
        return Sql("coalesce((") + body + "), false)"

    def _compare_number(self, k: Key, sym: str, value: Decimal | int) -> Sql:
        """A number property against a config number: as exact decimals when both fit the
        decimal type (so 64-bit ids compare exactly), else as doubles."""
        d = self.d
        if not _fits_decimal(value):
            return Sql(
                f"{k.is_number} AND {d.as_double(k.json)} {sym} CAST(? AS DOUBLE)",
                (str(value),),
            )
        return Sql(
            f"{k.is_number} AND CASE WHEN {k.exact} "
            f"THEN {k.number} {sym} CAST(? AS {d.decimal}) "
            f"ELSE {d.as_double(k.json)} {sym} CAST(? AS DOUBLE) END",
            (f"{Decimal(value):f}", str(value)),
        )

    def _equals(self, k: Key, value: Any) -> Sql:
        """JSON equality: 5 equals 5.0; the string "5" does not equal the number 5."""
        if value is None:
            return Sql(f"coalesce({self.d.is_json_null(k.json)}, false)")
        if isinstance(value, bool):
            return Sql(
                f"coalesce({k.type} = 'BOOLEAN' AND {k.json}::VARCHAR = ?, false)",
                ("true" if value else "false",),
            )
        if isinstance(value, (int, Decimal)):
            return Sql("coalesce(") + self._compare_number(k, "=", value) + ", false)"
        # json_extract writes each value canonically, as to_json writes the config's string:
        # equal texts are equal strings, and no event pays for unescaping its value.
        return Sql(f"coalesce({k.json}::VARCHAR = to_json(?::VARCHAR)::VARCHAR, false)", (value,))


def _clauses(meter: Meter) -> list[Clause]:
    """Every clause of the meter's filter, nested groups included."""
    out: list[Clause] = []

    def walk(g: Group) -> None:
        for c in g.clauses:
            if isinstance(c, Group):
                walk(c)
            else:
                out.append(c)

    if meter.filter is not None:
        walk(meter.filter)
    return out


def _keys(meter: Meter) -> list[str]:
    keys = [meter.aggregation.key] if meter.aggregation.key else []
    return keys + [c.key for c in _clauses(meter)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def _fits_decimal(value: Decimal | int) -> bool:
    """Whether a config number is exactly a DECIMAL(38, 12): at most 12 decimals, 26 digits
    before the point."""
    with localcontext() as ctx:
        ctx.prec = 80
        n = Decimal(value).normalize()
        exponent = n.as_tuple().exponent
        return n.is_finite() and isinstance(exponent, int) and exponent >= -12 and n.adjusted() < 26


def describe_filter(group: Group | None) -> str:
    """The filter in words, for `explain`: status equals "success" and (region equals "eu" ...)."""
    if group is None:
        return "none"

    def value(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace('"', '\\"') + '"'
        return str(v)

    def walk(g: Group, top: bool) -> str:
        parts = [
            walk(c, False)
            if isinstance(c, Group)
            else f"{c.key} {c.operator.replace('_', ' ')} {value(c.value)}"
            for c in g.clauses
        ]
        text = f" {g.conjunction} ".join(parts)
        return text if top or len(parts) == 1 else f"({text})"

    return walk(group, True)


def describe_meter(meter: Meter) -> str:
    """`sum of tokens over ai.tokens events`."""
    agg = meter.aggregation
    what = "count" if agg.type == "count" else f"{agg.type.replace('_', ' ')} of {agg.key}"
    return f"{what} over {meter.event_name} events"
