"""Which held leg parts each netted silo transfer carries, and what a transfer costs.

Pure functions. A saga's moves into a silo hold back (in `<dest>:in_transit`) what must
physically arrive there; the netted transfers (`rebalancer.silo_plan`) bring it. Each transfer
into a silo takes the held legs into that silo in plan order until its amount is covered, so
landing a transfer makes exactly its own share available and a failed transfer returns exactly
its share to the legs' sources.
"""

from __future__ import annotations

from decimal import Decimal

from actors.silo.records import HeldLeg

CASINO_WITHDRAW_FEE = 500_000
"""The casino's fee on every withdrawal ($0.50), debited on top of the amount."""

CASINO_REVIEW_ABOVE = 1_000_000_000
"""Casino withdrawals over $1,000 wait for a manual review (the funds are debited at once)."""

CASINO_MIN_DEPOSIT = 500_000
CASINO_MIN_WITHDRAW = 1_000_000
SWAP_FEE = Decimal("0.005")
"""0.5 %: only when a deposit is swapped; the executor sends USDC on Base, which is not swapped."""

HOPS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("wallet", "casino"): (("wallet", "casino"),),
    ("wallet", "trading"): (("wallet", "trading"),),
    ("casino", "wallet"): (("casino", "wallet"),),
    ("trading", "wallet"): (("trading", "wallet"),),
    ("casino", "trading"): (("casino", "wallet"), ("wallet", "trading")),
    ("trading", "casino"): (("trading", "wallet"), ("wallet", "casino")),
}
"""The venue operations a transfer takes: casino and trading meet only through the wallet."""

NO_API_HOPS: dict[tuple[str, str], str] = {
    ("trading", "wallet"): "the trading venue has no collateral withdrawal API",
}
"""Hops no venue call can make: a transfer that needs one is always returned (`docs/rebalancing.md`)."""


def impossible_transfer(from_silo: str, to_silo: str) -> str | None:
    """Why no transfer from `from_silo` to `to_silo` can be made (a hop of it has no API), or None."""
    if from_silo == to_silo:
        return None
    return next((f"the {a} -> {b} transfer has no API ({NO_API_HOPS[(a, b)]})"
                 for a, b in HOPS[(from_silo, to_silo)] if (a, b) in NO_API_HOPS), None)


def assign_legs(held: list[HeldLeg], transfers: list[tuple[str, str, int]], home: dict[str, str]
                ) -> list[list[HeldLeg]]:
    """Per transfer (from, to, amount), the held leg parts it carries.

    `held` lists, in plan order, every leg with a held part (`held` > 0); `home` maps a bucket to
    its silo. A leg may be split between two transfers into the same silo. Held money no transfer
    covers (a move of the plan that did not happen changed the netting) is left out."""
    left = [[g, g.held] for g in held]
    out = []
    for _src, dst, amount in transfers:
        carried, need = [], amount
        for item in left:
            g, remaining = item
            if need <= 0:
                break
            if remaining <= 0 or home[g.dest] != dst:
                continue
            take = min(remaining, need)
            carried.append(HeldLeg(g.leg, g.source, g.dest, take))
            item[1] -= take
            need -= take
        out.append(carried)
    return out


def transfer_fees(from_silo: str, to_silo: str, amount: int) -> int:
    """The fees the venues will keep for moving `amount` (micro-USD), known in advance: the casino
    withdrawal fee on each hop out of the casino. Gas is paid in the chain's coin and reported
    only by some sends; swap fees only on swapped (non-USDC) deposits."""
    return sum(CASINO_WITHDRAW_FEE for a, _b in HOPS[(from_silo, to_silo)] if a == "casino")


def weigh_moves(moves, holds: list[int], origins: list[str], home: dict[str, str], surplus: dict[str, int],
                max_fee_bp: int | None) -> tuple[list[int], list[bool], dict[str, int], list[str]]:
    """Weigh each planned move's physical cost.

    `moves` (source, dest, amount), `holds` (what each must wait for, from the netting) and
    `origins` (the silo each leaves from). `surplus[silo]`: what the silo holds beyond its buckets
    at the last reconciliation; `max_fee_bp` None: no fee check. Returns (new holds, keep per
    move, surplus used per silo, why each change): a held part the destination's surplus covers
    needs no transfer (its hold drops), and a move whose fees exceed `max_fee_bp` of it is not made."""
    new_holds, keep, used, why = list(holds), [True] * len(moves), {s: 0 for s in surplus}, []
    left = dict(surplus)
    for i, m in enumerate(moves):
        src, dst = origins[i], home[m.dest]
        if src == dst or holds[i] <= 0:
            continue
        fee = transfer_fees(src, dst, holds[i])
        if max_fee_bp is not None and fee * 10_000 > holds[i] * max_fee_bp:
            keep[i] = False
            why.append(f"{m.source} -> {m.dest} {_usd(m.amount)}: the {src} -> {dst} transfer's fees "
                       f"({_usd(fee)}) exceed {max_fee_bp / 100:.2f} % of it")
            continue
        cover = min(left.get(dst, 0), holds[i])
        if cover > 0:
            left[dst] -= cover
            used[dst] = used.get(dst, 0) + cover
            new_holds[i] -= cover
            why.append(f"{src} -> {dst} transfer of {_usd(cover)} skipped: the {dst} silo already holds that much "
                       f"beyond its buckets")
    return new_holds, keep, used, why


def _usd(micros: int) -> str:
    from messages.money import format_usd

    return format_usd(micros)


def cover_transfers(transfers: list[tuple[str, str, int]], covered: dict[str, int]) -> list[tuple[str, str, int]]:
    """The netted transfers less what each destination's surplus covered (`weigh_moves`)."""
    left, out = dict(covered), []
    for src, dst, amount in transfers:
        cut = min(left.get(dst, 0), amount)
        left[dst] = left.get(dst, 0) - cut
        if amount - cut > 0:
            out.append((src, dst, amount - cut))
    return out
