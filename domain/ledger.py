"""Domain layer: position and cash arithmetic of the ledger (pure, stdlib only, no I/O).

Conventions (weighted-average cost):
- A buy adds quantity; the average price is weighted by cost.
- A sell reduces a long at an unchanged average price; realised P&L = (px - avg) x qty.
- A fill through zero closes the old position (realising its P&L) and opens the remainder on the
  other side at the fill price. Short positions are negative quantities; covering a short
  realises (avg - px) x qty.
- Cash: -qty x px for a buy, +qty x px for a sell. Commission (12) is ignored unless the
  execution report carries it; then it is subtracted from cash (both sides) and kept apart from
  realised P&L and from the average price (see `commission_from_raw`).

All quantities and prices are `Decimal`; never `float`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from domain.errors import FieldError

ZERO = Decimal(0)
AVG_PRICE_QUANTUM = Decimal("0.000001")
"""Average prices are kept to 6 places, rounded half-even at every change, as brokers state
average cost; cash and realised P&L stay exact."""


def round_avg(value: Decimal) -> Decimal:
    """Round an average price to `AVG_PRICE_QUANTUM`, half-even.

    >>> round_avg(Decimal(1) / Decimal(3))
    Decimal('0.333333')
    """
    return value.quantize(AVG_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)

# Side (54) -> +1 (buy) or -1 (sell). 3 buy minus, 4 sell plus, 5 sell short, 6 sell short
# exempt, B as defined: all move the position the same way as a plain buy or sell.
SIDE_SIGN: dict[str, int] = {"1": 1, "3": 1, "2": -1, "4": -1, "5": -1, "6": -1, "B": -1}


@dataclass(frozen=True, slots=True)
class Holding:
    """A position in one symbol of one account.

    Attributes:
        quantity: signed; negative is a short.
        avg_price: weighted-average cost per unit of the open position; 0 when flat.
        realised_pnl: realised P&L accumulated on this symbol (commission excluded).
    """

    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realised_pnl: Decimal = ZERO


FLAT = Holding()


def is_buy(side: str | None) -> bool:
    """Whether Side (54) adds to a position: 1 buy and 3 buy minus. Every other value, a sell
    or one that is neither (7 undisclosed, 8 cross), is not a buy. The one answer for the
    ledger, surveillance and the alerts' words.

    >>> is_buy("1"), is_buy("3"), is_buy("2"), is_buy("7"), is_buy(None)
    (True, True, False, False, False)
    """
    return SIDE_SIGN.get(side or "", 0) > 0


def side_sign(side: str) -> int:
    """Return +1 for a buy side, -1 for a sell side.

    >>> side_sign("1"), side_sign("5")
    (1, -1)

    Raises:
        FieldError: Side (54) is neither a buy nor a sell (e.g. 7 undisclosed, 8 cross).
    """
    sign = SIDE_SIGN.get(side)
    if sign is None:
        msg = f"Side(54) '{side}' is not a buy or a sell"
        raise FieldError(54, msg)
    return sign


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def apply_fill(
    holding: Holding, side: str, qty: Decimal, px: Decimal, commission: Decimal = ZERO
) -> tuple[Holding, Decimal, Decimal]:
    """Apply one fill to a holding.

    Args:
        holding: the position before the fill.
        side: Side (54).
        qty: LastQty (32), positive.
        px: LastPx (31).
        commission: Commission (12) in cash terms; subtracted from cash.

    Returns:
        `(holding, cash_delta, realised_pnl)`: the new position (its `realised_pnl` includes
        this fill's), the change of cash, and the P&L this fill realised.

    >>> h, cash, pnl = apply_fill(FLAT, "1", Decimal(10), Decimal("100"))
    >>> h.quantity, h.avg_price, cash, pnl
    (Decimal('10'), Decimal('100'), Decimal('-1000'), Decimal('0'))
    >>> h, cash, pnl = apply_fill(h, "1", Decimal(10), Decimal("110"))
    >>> h.quantity, h.avg_price
    (Decimal('20'), Decimal('105'))
    >>> h, cash, pnl = apply_fill(h, "2", Decimal(5), Decimal("120"))
    >>> h.quantity, h.avg_price, cash, pnl
    (Decimal('15'), Decimal('105'), Decimal('600'), Decimal('75'))
    >>> h, cash, pnl = apply_fill(h, "2", Decimal(20), Decimal("100"))
    >>> h.quantity, h.avg_price, pnl
    (Decimal('-5'), Decimal('100'), Decimal('-75'))
    """
    sign = side_sign(side)
    signed = qty * sign
    cash_delta = -signed * px - commission
    quantity, avg = holding.quantity, holding.avg_price
    held = _sign(quantity)
    if held == 0 or held == sign:
        new_qty = quantity + signed
        new_avg = round_avg((abs(quantity) * avg + qty * px) / abs(new_qty)) if new_qty else ZERO
        return Holding(new_qty, new_avg, holding.realised_pnl), cash_delta, ZERO
    closing = min(qty, abs(quantity))
    realised = (px - avg) * closing * held
    new_qty = quantity + signed
    if new_qty == 0:
        new_avg = ZERO
    elif _sign(new_qty) == held:
        new_avg = avg
    else:
        new_avg = px  # through zero: the remainder opens a position at the fill price
    return Holding(new_qty, new_avg, holding.realised_pnl + realised), cash_delta, realised


def reverse_fill(
    holding: Holding,
    side: str,
    qty: Decimal,
    px: Decimal,
    realised_pnl: Decimal,
    commission: Decimal = ZERO,
) -> tuple[Holding, Decimal, Decimal]:
    """Undo a fill applied earlier (ExecType H trade cancel, or the first half of G).

    Quantity, cash and realised P&L are restored exactly. The average price (kept to 6 places)
    is restored to within that rounding when the fill is the last one applied to the holding;
    after later fills the reversed lot's cost is removed at its own price (weighted-average
    accounting cannot do better).

    Args:
        holding: the position now.
        side, qty, px, commission: those of the original fill.
        realised_pnl: what the original fill realised (kept in its execution row).

    Returns:
        `(holding, cash_delta, realised_delta)`; `realised_delta` is `-realised_pnl`.

    >>> h, _, _ = apply_fill(FLAT, "1", Decimal(10), Decimal(100))
    >>> h2, cash, pnl = apply_fill(h, "2", Decimal(4), Decimal(90))
    >>> back, cash_back, pnl_back = reverse_fill(h2, "2", Decimal(4), Decimal(90), pnl)
    >>> back == h, cash_back == -cash, pnl_back == -pnl
    (True, True, True)
    """
    sign = side_sign(side)
    signed = qty * sign
    cash_delta = signed * px + commission
    quantity, avg = holding.quantity, holding.avg_price
    new_qty = quantity - signed
    held, restored = _sign(quantity), _sign(new_qty)
    if new_qty == 0:
        new_avg = ZERO
    elif restored == held and sign == held:
        # The fill added to this position: take its lot out of the weighted average.
        new_avg = round_avg((abs(quantity) * avg - qty * px) / abs(new_qty))
    elif restored == held:
        # The fill reduced this position, which a reduction leaves at the same average.
        new_avg = avg
    else:
        # The fill closed (or went through) the old position: its P&L tells the old average,
        # realised = (px - old_avg) x |new_qty| x sign(new_qty).
        new_avg = px - realised_pnl / (abs(new_qty) * restored)
    return (
        Holding(new_qty, new_avg, holding.realised_pnl - realised_pnl),
        cash_delta,
        -realised_pnl,
    )


# Commission (12) and CommType (13) as top-level fields of a raw message, SOH or '|' delimited.
_COMMISSION = re.compile(rb"(?:^|[\x01|])12=([^\x01|]*)")
_COMM_TYPE = re.compile(rb"(?:^|[\x01|])13=([^\x01|]*)")


def commission_from_raw(raw: bytes, qty: Decimal, px: Decimal) -> Decimal:
    """Return the commission of an execution report in cash terms; 0 when Commission (12) is absent.

    CommType (13): 1 per unit (x LastQty), 2 percent of LastQty x LastPx, 3 absolute (and any
    other or missing value: absolute).

    >>> commission_from_raw(b"8=FIX.4.4|35=8|12=1.5|13=3|", Decimal(10), Decimal(100))
    Decimal('1.5')
    >>> commission_from_raw(b"8=FIX.4.4\\x0112=0.01\\x0113=1\\x01", Decimal(200), Decimal(5))
    Decimal('2.00')
    >>> commission_from_raw(b"35=8|", Decimal(1), Decimal(1))
    Decimal('0')

    Raises:
        FieldError: Commission (12) is not a number, or negative.
    """
    if b"12=" not in raw:
        return ZERO
    match = _COMMISSION.search(raw)
    if match is None:
        return ZERO
    text = match[1].decode("ascii", "replace")
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        msg = f"Commission(12) was '{text}', not a non-negative number"
        raise FieldError(12, msg)
    kind = _COMM_TYPE.search(raw)
    comm_type = kind[1] if kind is not None else b"3"
    if comm_type == b"1":
        return value * qty
    if comm_type == b"2":
        return qty * px * value / 100
    return value
