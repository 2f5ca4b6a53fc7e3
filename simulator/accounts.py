"""Simulator layer: the order-flow simulator's accounts, orders and fills, and its ledger.

The ledger (`expected_ledger`), which a consumer of the file must reproduce exactly (no
commissions; cash and prices are exact cents; ``avg_price`` is rounded half-even to 6 places):

* buy fill: ``cash -= qty*px``; ``avg = round6((held*avg + qty*px) / (held + qty))``;
  ``held += qty``.
* sell fill: ``cash += qty*px``; ``held -= qty``; ``avg`` unchanged.
* bust of a buy: ``cash += qty*px``; ``avg = round6((held*avg - qty*px) / (held - qty))`` when
  ``held - qty > 0`` (else unchanged); ``held -= qty``.
* bust of a sell: ``cash -= qty*px``; ``held += qty``; ``avg`` unchanged.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.symbols import LOT, TICKS_PER_UNIT

if TYPE_CHECKING:
    from simulator.market import MarketSimulator

DEFAULT_INITIAL_MARGIN = Decimal("0.50")
DEFAULT_MAINTENANCE_MARGIN = Decimal("0.30")
_AVG_PLACES = Decimal("0.000001")
_CENT = Decimal("0.01")

BUY, SELL = b"1", b"2"  # Side (54)


def round_avg(value: Decimal) -> Decimal:
    """Round an average price the way the ledger does: half-even to 6 decimal places.

    Args:
        value: the exact average.

    Returns:
        The rounded average.
    """
    return value.quantize(_AVG_PLACES, rounding=ROUND_HALF_EVEN)


def cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def avg_text(notional_cents: int, qty: int) -> bytes:
    """AvgPx (6): notional / qty, 6 places half-even, trailing zeros cut to 2 places."""
    if not qty:
        return b"0"
    text = str(round_avg(Decimal(notional_cents) / qty / TICKS_PER_UNIT))
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return ("%s.%s" % (whole, frac.ljust(2, "0"))).encode()


@dataclass(frozen=True, slots=True)
class AccountLedger:
    """One account's ledger after the messages emitted so far.

    Attributes:
        account: Account (1).
        owner: the account's owner.
        cash: cash balance.
        holdings: ``{symbol: (quantity, avg_price)}``, quantities > 0 only.
    """

    account: str
    owner: str
    cash: Decimal
    holdings: dict[str, tuple[int, Decimal]]


@dataclass(slots=True)
class Holding:
    qty: int = 0
    avg: Decimal = Decimal(0)


@dataclass(slots=True)
class Account:
    account: bytes
    owner: str
    session: int
    cash: int  # cents
    holdings: dict[bytes, Holding] = field(default_factory=dict)
    reserved_cash: int = 0  # cents held by working buys
    reserved_qty: dict[bytes, int] = field(default_factory=dict)  # shares held by working sells
    working: dict[bytes, int] = field(default_factory=dict)  # working orders per symbol
    last_fill: dict[bytes, Fill | None] = field(default_factory=dict)


@dataclass(slots=True)
class Order:
    cl_ord_id: bytes
    account: Account
    symbol_idx: int
    symbol: bytes
    side: bytes
    qty: int
    ord_type: bytes
    price: int  # limit price in ticks, 0 for market orders
    order_id: bytes = b""
    cum: int = 0
    notional: int = 0  # sum of last_qty * last_px, cents
    status: bytes = b"0"
    reserve_px: int = 0  # cents reserved per open share (buys)
    reserved: int = 0  # cents (buys) or shares (sells) this order holds
    pending: bool = False  # a cancel or replace is in flight: no fills until answered
    rested: bool = False  # has rested on the book: fills at its limit from now on
    done: bool = False
    version: int = 0  # bumped when the work chain restarts; stale work events are dropped


@dataclass(slots=True)
class Fill:
    order: Order
    qty: int
    px: int
    exec_id: bytes
    match_id: bytes


def open_accounts(
    rng: random.Random, market: MarketSimulator, symbols: list[bytes], count: int, sessions: int
) -> list[Account]:
    """The opening population: owners of one to three accounts, each with cash, a client
    session and a few positions priced near the market's opening quotes (`rng` drawn in order).
    """
    out: list[Account] = []
    owner = 0
    left_for_owner = 0
    for n in range(1, count + 1):
        if not left_for_owner:
            owner += 1
            r = rng.random()
            left_for_owner = 1 if r < 0.75 else 2 if r < 0.92 else 3
        left_for_owner -= 1
        dollars = round(2.0 ** rng.uniform(14.3, 20.9))  # about 20k .. 2M
        account = Account(
            account=b"ACC%05d" % n,
            owner=f"OWN{owner:04d}",
            session=rng.randrange(sessions),
            cash=dollars * 100,
        )
        for _ in range(rng.randint(0, 5)):
            idx = rng.randrange(len(symbols))
            quote = market.top_of_book(idx)
            assert quote is not None  # the market has not started
            avg_ticks = max(1, round(quote[4] * rng.uniform(0.7, 1.3)))
            account.holdings[symbols[idx]] = Holding(
                LOT * rng.randint(1, 20), Decimal(avg_ticks).scaleb(-2)
            )
        out.append(account)
    return out


def apply_fill(account: Account, symbol: bytes, side: bytes, qty: int, px: int) -> None:
    cost = qty * px
    holding = account.holdings.get(symbol)
    if holding is None:
        holding = account.holdings[symbol] = Holding()
    if side == BUY:
        account.cash -= cost
        total = holding.qty + qty
        holding.avg = round_avg((holding.avg * holding.qty + cents(cost)) / total)
        holding.qty = total
    else:
        account.cash += cost
        holding.qty -= qty


def reverse_fill(account: Account, symbol: bytes, side: bytes, qty: int, px: int) -> None:
    cost = qty * px
    holding = account.holdings[symbol]
    if side == BUY:
        account.cash += cost
        left = holding.qty - qty
        if left:
            holding.avg = round_avg((holding.avg * holding.qty - cents(cost)) / left)
        holding.qty = left
    else:
        account.cash -= cost
        holding.qty += qty


#: An account's opening state: (account, owner, cash in cents, {symbol: (quantity, avg_price)}).
OpeningAccount = tuple[str, str, int, dict[bytes, tuple[int, Decimal]]]


def write_accounts_csv(path: str | Path, initial: list[OpeningAccount]) -> None:
    """Write opening accounts as ``account,owner,cash,initial_margin,maintenance_margin``."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["account", "owner", "cash", "initial_margin", "maintenance_margin"])
        for account, owner, cash, _ in initial:
            writer.writerow(
                [account, owner, cents(cash), DEFAULT_INITIAL_MARGIN,
                 DEFAULT_MAINTENANCE_MARGIN]
            )  # fmt: skip


def write_positions_csv(path: str | Path, initial: list[OpeningAccount]) -> None:
    """Write opening positions as ``account,symbol,quantity,avg_price``."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["account", "symbol", "quantity", "avg_price"])
        for account, _, _, holdings in initial:
            for symbol, (qty, avg) in sorted(holdings.items()):
                writer.writerow([account, symbol.decode(), qty, avg])
