"""Credit pools: a ledger per customer and pool, one entry per billing cycle.

Each cycle opens with the credits rolled over from the previous one and the cycle's grant.
Draws take rolled-over credits first, then the grant; anything beyond is overage. At the end,
`rollover_percent` of the unused grant (rounded down) carries into the next cycle only; what
was rolled over and not used expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from .config import CreditPool
from .cycles import Cycle
from .money import CONTEXT, ZERO, round_down


@dataclass(frozen=True)
class LedgerEntry:
    cycle: Cycle
    rolled_over: Decimal  # carried in from the previous cycle
    granted: Decimal
    draws: Mapping[str, Decimal] = field(default_factory=dict)  # meter id -> credits
    from_rollover: Decimal = ZERO
    from_grant: Decimal = ZERO
    overage: Decimal = ZERO
    carried: Decimal = ZERO  # rolls into the next cycle
    overage_amount: Decimal = ZERO  # exact; 0 when the pool has no overage price

    @property
    def consumed(self) -> Decimal:
        """Every credit drawn, overage included."""
        return sum(self.draws.values(), ZERO)

    @property
    def balance_before(self) -> Decimal:
        return self.rolled_over + self.granted

    @property
    def remaining(self) -> Decimal:
        """The balance at the cycle's end, before rolled-over credits expire."""
        return self.rolled_over - self.from_rollover + self.granted - self.from_grant

    @property
    def expired(self) -> Decimal:
        return self.rolled_over - self.from_rollover


def entry(
    pool: CreditPool, cycle: Cycle, rolled_over: Decimal, draws: Mapping[str, Decimal]
) -> LedgerEntry:
    """One cycle of a pool, given what rolled in and what each charge drew."""
    with localcontext(CONTEXT):
        consumed = sum(draws.values(), ZERO)
        from_rollover = min(consumed, rolled_over)
        from_grant = min(consumed - from_rollover, pool.per_cycle)
        overage = consumed - from_rollover - from_grant
        unused = pool.per_cycle - from_grant
        share = (pool.rollover_percent or ZERO) / 100
        carried = round_down(unused * share, pool.precision)
        price = pool.overage_unit_price
        return LedgerEntry(
            cycle,
            rolled_over,
            pool.per_cycle,
            dict(draws),
            from_rollover,
            from_grant,
            overage,
            carried,
            overage * price if price is not None else ZERO,
        )


def ledger(
    pool: CreditPool, cycles: Iterable[tuple[Cycle, Mapping[str, Decimal]]], opening: Decimal = ZERO
) -> list[LedgerEntry]:
    """Cycle after cycle from the start of the pool's history; `opening` is what rolls into
    the first (the figures of a closed cycle, or nothing)."""
    out: list[LedgerEntry] = []
    rolled = opening
    for cycle, draws in cycles:
        out.append(entry(pool, cycle, rolled, draws))
        rolled = out[-1].carried
    return out
