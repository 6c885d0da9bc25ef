"""SQL as a value: text plus its bound parameters, composed without ever pasting data in.

Kept apart from the meter compiler so that the database layer can use it without importing
the config models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sql:
    """SQL text with its positional `?` parameters, composable with `+` and `join`."""

    text: str
    params: tuple[Any, ...] = ()

    def __add__(self, other: Sql | str) -> Sql:
        other = Sql(other) if isinstance(other, str) else other
        return Sql(self.text + other.text, self.params + other.params)

    @staticmethod
    def join(parts: Sequence[Sql], sep: str) -> Sql:
        return Sql(sep.join(p.text for p in parts), tuple(x for p in parts for x in p.params))


def quote_identifier(name: str) -> str:
    """Quote a name for SQL, doubling any `"` inside (sqlite-utils' habit). Config strings are
    never identifiers here (they are bound values); this is for names made from them."""
    return '"' + name.replace('"', '""') + '"'
