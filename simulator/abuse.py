"""Surveillance patterns compressed for a live exchange: each a list of timed 35=8 drop copies.

`simulator/surveillance.py` writes a labelled day for back-testing (patterns spread over
hours); a live demo or `simulate-exchange --abuse` needs them within seconds, so here each
pattern is a list of `Step(delay_s, body)`: the execution reports (35=8 bodies, the exchange adds
the header) to send `delay_s` after the pattern starts. Pure: no sockets, no clock.

Patterns (what the models should alert):
    wash        one account on both sides of the same price and size at once (WASH_TRADE,
                self-match without a TrdMatchID: FIX 4.4 has no 880 in its drop copies here)
    layering    sell orders at three prices, 30 x a buy fill that follows, all cancelled 2 s
                after the fill (SPOOFING, layering)
    round-trips 12 buys and sells of the same size one second apart (WASH_TRADE, round trips)
    otr         60 orders and 2 fills (EXCESSIVE_OTR, judged when the day is over)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.market import format_price

Body = list[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class Step:
    delay_s: float
    body: Body


class _Reports:
    """Execution reports of one pattern: ids unique within `prefix`."""

    def __init__(self, prefix: str, account: str, symbol: str) -> None:
        self.prefix = prefix.encode()
        self.account = account.encode()
        self.symbol = symbol.encode()
        self.n = 0

    def _id(self, kind: bytes) -> bytes:
        self.n += 1
        return self.prefix + b"-" + kind + b"%d" % self.n

    def new(self, cl: bytes, side: bytes, qty: int, px: int) -> Body:
        return self._body(cl, b"0", b"0", side, qty, px, leaves=qty)

    def cancel(self, cl: bytes, side: bytes, qty: int, px: int) -> Body:
        return self._body(cl, b"4", b"4", side, qty, px, leaves=0)

    def fill(self, cl: bytes, side: bytes, qty: int, px: int) -> Body:
        return self._body(cl, b"F", b"2", side, qty, px, leaves=0, last=(qty, px))

    def order_id(self) -> bytes:
        return self._id(b"C")

    def _body(self, cl: bytes, exec_type: bytes, status: bytes, side: bytes, qty: int,
              px: int, leaves: int, last: tuple[int, int] | None = None) -> Body:  # fmt: skip
        price = format_price(px).encode()
        body: Body = [
            (37, b"O" + cl), (11, cl), (17, self._id(b"E")), (150, exec_type), (39, status),
            (1, self.account), (55, self.symbol), (54, side), (38, b"%d" % qty), (40, b"2"),
            (44, price),
        ]  # fmt: skip
        if last is not None:
            body += [(32, b"%d" % last[0]), (31, format_price(last[1]).encode())]
        filled = last[0] if last is not None else 0
        body += [(14, b"%d" % filled), (151, b"%d" % leaves),
                 (6, format_price(last[1]).encode() if last else b"0")]  # fmt: skip
        return body


def wash(prefix: str, account: str, symbol: str, px: int) -> list[Step]:
    r = _Reports(prefix, account, symbol)
    return [Step(0.0, r.fill(r.order_id(), side, 500, px)) for side in (b"1", b"2")]


def layering(prefix: str, account: str, symbol: str, px: int) -> list[Step]:
    r = _Reports(prefix, account, symbol)
    sells = [(r.order_id(), px + ticks) for ticks in (5, 6, 7)]
    steps = [Step(0.0, r.new(cl, b"2", 1_000, price)) for cl, price in sells]
    steps.append(Step(1.0, r.fill(r.order_id(), b"1", 100, px)))
    steps += [Step(3.0, r.cancel(cl, b"2", 1_000, price)) for cl, price in sells]
    return steps


def round_trips(prefix: str, account: str, symbol: str, px: int) -> list[Step]:
    r = _Reports(prefix, account, symbol)
    steps = []
    for k in range(12):
        steps.append(Step(2.0 * k, r.fill(r.order_id(), b"1", 300, px)))
        steps.append(Step(2.0 * k + 1, r.fill(r.order_id(), b"2", 300, px + 1)))
    return steps


def otr(prefix: str, account: str, symbol: str, px: int) -> list[Step]:
    r = _Reports(prefix, account, symbol)
    orders = [r.order_id() for _ in range(60)]
    steps = [Step(0.1 * i, r.new(cl, b"1", 100, px - 10)) for i, cl in enumerate(orders)]
    steps += [Step(6.0 + i, r.fill(cl, b"1", 100, px - 10)) for i, cl in enumerate(orders[:2])]
    return steps


PATTERNS: dict[str, Callable[[str, str, str, int], list[Step]]] = {
    "wash": wash,
    "layering": layering,
    "round-trips": round_trips,
    "otr": otr,
}
"""Pattern name -> builder `(id prefix, account, symbol, price in ticks) -> steps`."""
