"""Surveillance state stays flat over a long run: six simulated days of order flow through the
symbol and account models, state measured at the end of each day. Every window expires in event
time (self-match seconds, spoofing 15 s and resting orders a day, round trips and order-to-trade
a day, pump and dump 48 h), so after the longest window the state stops growing."""

from __future__ import annotations

import random
from decimal import Decimal

from bench.surveillance import state_sizes
from domain.events import ExecutionReport
from flows.surveillance import AccountModels, SymbolModels

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S
START_NS = 20_400 * DAY_NS  # a day at midnight UTC
OPEN_S, CLOSE_S = 14.5 * 3600, 21 * 3600


def report(n: int, exec_type: str, account: str, symbol: str, side: str, qty: int, px: str,
           ts: int, cl: str) -> ExecutionReport:  # fmt: skip
    fill = exec_type == "F"
    return ExecutionReport(
        exec_id=f"X{n}", order_id=f"O{cl}", cl_ord_id=cl, orig_cl_ord_id=None,
        exec_type=exec_type, ord_status="2" if fill else exec_type, account=account,
        symbol=symbol, side=side, order_qty=Decimal(qty), ord_type="2", price=Decimal(px),
        stop_px=None, last_qty=Decimal(qty if fill else 0), last_px=Decimal(px if fill else 0),
        cum_qty=Decimal(qty if fill else 0), leaves_qty=Decimal(0 if fill else qty),
        avg_px=Decimal(px if fill else 0), ts_event=ts,
    )  # fmt: skip


def day_of_flow(rng: random.Random, day: int, orders: int) -> list:
    """One trading day: new orders, most filled or cancelled within a minute, a tenth left
    resting with no end ever reported; market trades in every symbol."""
    items: list[tuple[int, int, object]] = []
    base = START_NS + day * DAY_NS
    for i in range(orders):
        ts = base + int(rng.uniform(OPEN_S, CLOSE_S) * NS_PER_S)
        account, symbol = f"A{rng.randrange(2_000)}", f"S{rng.randrange(50)}"
        side, qty, px = rng.choice("12"), rng.randrange(1, 10) * 100, f"{rng.uniform(10, 20):.2f}"
        cl = f"D{day}C{i}"
        items.append((ts, 0, report(2 * i, "0", account, symbol, side, qty, px, ts, cl)))
        end = rng.random()
        later = ts + int(rng.uniform(1, 60) * NS_PER_S)
        if end < 0.6:
            items.append((later, 1, report(2 * i + 1, "F", account, symbol, side, qty, px, later,
                                           cl)))  # fmt: skip
        elif end < 0.9:
            items.append((later, 1, report(2 * i + 1, "4", account, symbol, side, qty, px, later,
                                           cl)))  # fmt: skip
        if i % 4 == 0:
            items.append((ts, 2, (symbol, 5_000.0, ts, None)))  # the market trades too
        if i % 40 == 0:  # and the venue reports the symbol's day volume (269=B)
            items.append((ts, 2, (symbol, 0.0, ts, 1_000_000.0 + i)))
    items.sort(key=lambda item: (item[0], item[1]))
    return [item for _, _, item in items]


def test_state_stops_growing_after_the_longest_window():
    rng = random.Random(3)
    owners = {f"A{i}": f"owner{i // 2}" for i in range(2_000)}
    symbols, accounts = SymbolModels(owners), AccountModels(owners)
    sizes = []
    for day in range(6):
        for item in day_of_flow(rng, day, 8_000):
            symbols.on(item)
            if type(item) is ExecutionReport:
                accounts.on(item)
        sizes.append(state_sizes([symbols], [accounts]))
        # The day volumes (trades seen, the venue's figures) are per symbol and day: 50 at most.
        assert len(symbols.close._volume) <= 50 and len(symbols.pump._volume) <= 50
    grown = {name: [s[name] for s in sizes] for name in sizes[0]}
    # The state is real (the flow does keep things between events) ...
    assert grown["spoofing_resting"][0] > 500 and grown["pump_accumulations"][0] > 500
    # ... and flat once the longest window (48 h) has passed: days 4-6 within 10 % of day 3.
    for name, series in grown.items():
        ceiling = max(series[2], 10) * 1.10
        assert max(series[3:]) <= ceiling, f"{name} keeps growing: {series}"
