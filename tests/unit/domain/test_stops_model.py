"""Stop trigger engine against a naive O(n) reference model on random streams, and pickling."""

from __future__ import annotations

import pickle
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.stops import (
    NS_PER_DAY,
    Accepted,
    Cancelled,
    ChildOrder,
    Expired,
    Rejected,
    Replaced,
    StopBook,
    StopOrder,
    Triggered,
    book,
    heaps,
    ladders,
)
from tests.unit.domain.stops_support import DAY0, HOUR, D, _book_at, _trail

# -- the naive O(n) reference model --------------------------------------------------------


@dataclass
class _NaiveOrder:
    order: StopOrder
    seq: int
    ref: str
    expire_ns: int
    mark: Decimal | None = None  # trailing: high/low-water; None while not active
    oco: str | None = None


@dataclass
class _NaiveBook:
    """What `StopBook` must do, by scanning every order on every event."""

    gtc_days: int
    close_ns: int
    window_ns: int
    orders: dict[str, _NaiveOrder] = field(default_factory=dict)
    prices: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    seq: int = 0

    @staticmethod
    def buy(order: StopOrder) -> bool:
        return order.side == "1"

    def stop(self, rec: _NaiveOrder) -> Decimal | None:
        o = rec.order
        if o.ord_type != "P":
            return o.stop_px
        if rec.mark is None:
            return None
        off = o.peg_offset_value
        if o.peg_offset_type == "1":
            r = off / D(10000)
            return rec.mark * (1 + r) if self.buy(o) else rec.mark * (1 - r)
        return rec.mark + off if self.buy(o) else rec.mark - off

    def expire(self, ts: int) -> list:
        out = []
        for rec in sorted(self.orders.values(), key=lambda r: (r.expire_ns, r.seq)):
            if rec.expire_ns <= ts:
                self.leave(rec, rec.expire_ns)
                out.append(Expired(rec.order.cl_ord_id, rec.expire_ns))
        return out

    def leave(self, rec: _NaiveOrder, ts: int) -> None:
        cid = rec.order.cl_ord_id
        del self.orders[cid]
        self.done[cid] = ts
        if rec.oco is not None:
            self.lists[rec.oco].remove(cid)
            if not self.lists[rec.oco]:
                del self.lists[rec.oco]

    def taken(self, cid: str, ts: int) -> bool:
        return cid in self.orders or (cid in self.done and ts - self.done[cid] < self.window_ns)

    def current(self, symbol: str, ref: str) -> Decimal | None:
        if ref != "mid":
            return self.prices.get((symbol, ref))
        # The mid of the bid and ask quoted now (as written when they last changed).
        bid, ask = self.prices.get((symbol, "bid")), self.prices.get((symbol, "ask"))
        return None if bid is None or ask is None else (bid + ask) / 2

    def through(self, order: StopOrder, ref: str) -> str | None:
        cur = self.current(order.symbol, ref)
        if order.ord_type == "P" or cur is None:
            return None
        if self.buy(order) and order.stop_px <= cur:
            return f"buy stop {order.stop_px} is at or below the {ref} price {cur}"
        if not self.buy(order) and order.stop_px >= cur:
            return f"sell stop {order.stop_px} is at or above the {ref} price {cur}"
        return None

    def make(self, order: StopOrder, ts: int) -> tuple[_NaiveOrder | None, str | None]:
        if self.taken(order.cl_ord_id, ts):
            return None, f"duplicate ClOrdID {order.cl_ord_id}"
        if order.time_in_force == "6" and order.expire_time <= ts:
            return None, f"ExpireTime(126) {order.expire_time} is not after the event time {ts}"
        ref = order.reference or "last"
        if order.time_in_force == "6":
            exp = order.expire_time
        elif order.time_in_force == "1":
            exp = ts + self.gtc_days * NS_PER_DAY
        else:
            exp = ts // NS_PER_DAY * NS_PER_DAY + self.close_ns
            exp += NS_PER_DAY if exp <= ts else 0
        self.seq += 1
        rec = _NaiveOrder(order, self.seq, ref, exp)
        cur = self.current(order.symbol, ref)
        act = order.activation_px
        if order.ord_type == "P" and cur is not None:
            if act is None or (cur <= act if self.buy(order) else cur >= act):
                rec.mark = cur
        return rec, self.through(order, ref)

    def submit(self, order: StopOrder, ts: int) -> list:
        out = self.expire(ts)
        rec, reason = self.make(order, ts)
        if reason:
            return [*out, Rejected(order.cl_ord_id, reason, ts)]
        self.orders[order.cl_ord_id] = rec
        return [*out, Accepted(order.cl_ord_id, ts)]

    def submit_oco(self, legs: list[StopOrder], list_id: str, ts: int) -> list:
        out = self.expire(ts)
        recs = []
        for leg in legs:
            rec, reason = self.make(leg, ts)
            if reason:
                return out + [
                    Rejected(x.cl_ord_id, f"list {list_id} rejected: {leg.cl_ord_id}: {reason}", ts)
                    for x in legs
                ]
            recs.append(rec)  # fmt: skip
        self.lists[list_id] = [leg.cl_ord_id for leg in legs]
        for rec in recs:
            rec.oco = list_id
            self.orders[rec.order.cl_ord_id] = rec
            out.append(Accepted(rec.order.cl_ord_id, ts))
        return out

    def cancel_legs(self, list_id: str, reason: str, ts: int, out: list) -> None:
        for cid in list(self.lists.pop(list_id, [])):
            rec = self.orders[cid]
            rec.oco = None
            self.leave(rec, ts)
            out.append(Cancelled(cid, reason, ts))

    def cancel(self, cid: str, ts: int) -> list:
        out = self.expire(ts)
        rec = self.orders.get(cid)
        if rec is None:
            return [*out, Rejected(cid, f"unknown ClOrdID {cid}", ts)]
        self.leave(rec, ts)
        return [*out, Cancelled(cid, "cancel requested", ts)]

    def replace(self, orig: str, new_id: str, ts: int, side: str | None, **terms: object) -> list:
        out = self.expire(ts)
        rec = self.orders.get(orig)
        reason = None
        if rec is None:
            reason = f"unknown ClOrdID {orig}"
        elif side is not None and side != rec.order.side:
            reason = f"replace changes Side(54) from {rec.order.side} to {side}"
        elif new_id != orig and self.taken(new_id, ts):
            reason = f"duplicate ClOrdID {new_id}"
        else:
            terms = {k: v for k, v in terms.items() if v is not None}
            new = replace(rec.order, cl_ord_id=new_id, **terms)
            reason = self.through(new, rec.ref)
        if reason:
            return [*out, Rejected(new_id, reason, ts)]
        del self.orders[orig]
        if new_id != orig:
            self.done[orig] = ts
        self.seq += 1
        rec.order, rec.seq = new, self.seq
        self.orders[new_id] = rec
        if rec.oco is not None:
            legs = self.lists[rec.oco]
            legs[legs.index(orig)] = new_id
        return [*out, Replaced(new_id, orig, ts)]

    def quote(self, symbol: str, ts: int, bid: Decimal | None, ask: Decimal | None,
              last: Decimal | None) -> list:  # fmt: skip
        out = self.expire(ts)
        changed = {}
        for ref, px in (("last", last), ("bid", bid), ("ask", ask)):
            if px is not None and px != self.prices.get((symbol, ref)):
                self.prices[(symbol, ref)] = changed[ref] = px
        b, a = self.prices.get((symbol, "bid")), self.prices.get((symbol, "ask"))
        if b is not None and a is not None and (b + a) / 2 != self.prices.get((symbol, "mid")):
            self.prices[(symbol, "mid")] = changed["mid"] = (b + a) / 2
        fired = []
        for rec in sorted(self.orders.values(), key=lambda r: r.seq):
            o = rec.order
            if o.symbol != symbol or rec.ref not in changed:
                continue
            px = changed[rec.ref]
            buy = self.buy(o)
            if o.ord_type == "P":
                if rec.mark is None:
                    act = o.activation_px
                    if act is None or (px <= act if buy else px >= act):
                        rec.mark = px
                    continue
                rec.mark = min(rec.mark, px) if buy else max(rec.mark, px)
            stop = self.stop(rec)
            if (px >= stop) if buy else (px <= stop):
                fired.append((rec, stop, px))
        for rec, stop, px in fired:
            o = rec.order
            if self.orders.get(o.cl_ord_id) is not rec:
                continue
            limit = o.ord_type == "4"
            child = ChildOrder(
                o.cl_ord_id + ".T",
                o.symbol,
                o.side,
                o.order_qty,
                "2" if limit else "1",
                o.price if limit else None,
                o.account,
            )
            out.append(Triggered(o, stop, px, rec.ref, ts, child))  # fmt: skip
            oco = rec.oco
            self.leave(rec, ts)
            if oco is not None:
                self.cancel_legs(oco, f"OCO sibling {o.cl_ord_id} triggered", ts, out)
        return out

    def fill(self, cid: str, cum: Decimal, qty: Decimal, ts: int) -> list:
        out = self.expire(ts)
        rec = self.orders.get(cid)
        if rec is None or not cum > 0:
            return out
        if rec.oco is not None:
            oco = rec.oco
            self.lists[oco].remove(cid)
            rec.oco = None
            self.cancel_legs(oco, f"OCO sibling {cid} filled", ts, out)
        if cum >= qty:
            self.leave(rec, ts)
        return out


# -- random streams ------------------------------------------------------------------------

SYMBOLS = ("AAPL", "MSFT")
GTC_DAYS = 1
CLOSE = time(21, 0)
WINDOW = 6 * HOUR


TICK = D("0.25")


def _random_order(rnd: random.Random, cid: str, ts: int, symbol: str, level: Decimal) -> StopOrder:
    side = rnd.choice("1122225")
    kind = rnd.choice("334PP")
    tif = rnd.choice("0016")
    kw: dict = dict(cl_ord_id=cid, symbol=symbol, side=side, order_qty=D(rnd.randint(1, 5)),
                    ord_type=kind, time_in_force=tif,
                    reference=rnd.choice([None, None, "last", "bid", "ask", "mid"]))  # fmt: skip
    if tif == "6":
        kw["expire_time"] = ts + rnd.randint(-1, 30) * HOUR // 4
    if kind == "P":
        if rnd.random() < 0.5:
            kw["peg_offset_value"] = TICK * rnd.randint(1, 8)
        else:
            kw.update(peg_offset_value=D(rnd.choice([25, 50, 100, 150])), peg_offset_type="1")
        if rnd.random() < 0.3:
            kw["activation_px"] = _near(rnd, level)
    else:
        kw["stop_px"] = _stop_px(rnd, side, level)
        if kind == "4":
            kw["price"] = _near(rnd, level)
    return StopOrder(**kw)


def _near(rnd: random.Random, level: Decimal) -> Decimal:
    return level + TICK * rnd.randint(-12, 12)


def _stop_px(rnd: random.Random, side: str, level: Decimal) -> Decimal:
    # Mostly on the resting side of the market (sell below, buy above), sometimes through it.
    away = TICK * rnd.randint(-2, 16)
    return level + away if side == "1" else level - away


def _random_ops(rnd: random.Random, n: int, slow_clock: bool = False) -> list[tuple]:
    """A stream of events for both books: (method, args), timestamps increasing.

    Prices random-walk on a 0.25 grid (ties and repeated values are common). Cancels, replaces
    and fills mostly name recent ClOrdIDs, so they often find the order. `slow_clock` lets
    hundreds of orders rest at once (compaction paths), with a rare jump past a close.
    """
    ts = DAY0 + 18 * HOUR
    steps = [0, 1, 1, 2, 3, HOUR // 1000] if slow_clock else [0, 0, 1, HOUR // 8, HOUR // 2,
                                                                2 * HOUR]  # fmt: skip
    level = {symbol: D(100) for symbol in SYMBOLS}
    ops: list[tuple] = []
    ids: list[str] = []

    def target() -> str:
        if not ids:
            return "x"
        return rnd.choice(ids[-30:] if rnd.random() < 0.8 else ids)

    for i in range(n):
        ts += rnd.choice(steps) if rnd.random() > 0.002 else 3 * HOUR
        symbol = rnd.choice(SYMBOLS)
        r = rnd.random()
        if r < 0.45:
            px = level[symbol] = max(D(50), level[symbol] + TICK * rnd.randint(-2, 2))
            last = px + TICK * rnd.randint(-1, 1)
            fields = [rnd.choice([None, v]) for v in (px - TICK, px + TICK, last)]
            ops.append(("quote", symbol, ts, *fields))
        elif r < 0.7:
            cid = f"o{i}" if not ids or rnd.random() < 0.9 else rnd.choice(ids)
            ids.append(cid)
            ops.append(("submit", _random_order(rnd, cid, ts, symbol, level[symbol]), ts))
        elif r < 0.77:
            legs = [_random_order(rnd, f"o{i}{leg}", ts, symbol, level[symbol]) for leg in "ab"]
            ids += [f"o{i}a", f"o{i}b"]
            ops.append(("oco", legs, f"L{i}", ts))
        elif r < 0.85:
            ops.append(("cancel", target(), ts))
        elif r < 0.95:
            orig = target()
            side = rnd.choice([None, None, None, None, None, "1", "2"])
            terms = {"stop_px": rnd.choice([None, _stop_px(rnd, rnd.choice("12"), level[symbol])]),
                     "order_qty": rnd.choice([None, D(7)])}  # fmt: skip
            ops.append(("replace", orig, f"r{i}", ts, side, terms))
        else:
            ops.append(("fill", target(), rnd.choice([D(1), D(9)]), D(5), ts))
    return ops


def _apply(book: StopBook, op: tuple) -> list:
    kind = op[0]
    if kind == "quote":
        _, symbol, ts, bid, ask, last = op
        return book.on_quote(symbol, ts, bid=bid, ask=ask, last=last)
    if kind == "submit":
        return book.submit(op[1], op[2])
    if kind == "oco":
        return book.submit_list(op[1], 1, op[2], op[3])
    if kind == "cancel":
        return book.cancel(op[1], op[2])
    if kind == "replace":
        _, orig, new_id, ts, side, terms = op
        return book.replace(orig, new_id, ts, side=side, **_fit_terms(book.get(orig), terms))
    _, cid, cum, qty, ts = op
    return book.on_fill(cid, cum, qty, ts)


def _fit_terms(order: StopOrder | None, terms: dict) -> dict:
    # A trailing stop is replaced by a new offset, not a stop price.
    if order is not None and order.ord_type == "P" and terms["stop_px"] is not None:
        offset = abs(terms["stop_px"] - 100) + TICK
        return {"peg_offset_value": offset, "order_qty": terms["order_qty"]}
    return terms


def _apply_naive(model: _NaiveBook, op: tuple, book: StopBook) -> list:
    kind = op[0]
    if kind == "quote":
        symbol, ts, *fields = op[1:]
        return model.quote(symbol, ts, *(D(repr(v)) if type(v) is float else v for v in fields))
    if kind == "submit":
        return model.submit(op[1], op[2])
    if kind == "oco":
        return model.submit_oco(op[1], op[2], op[3])
    if kind == "cancel":
        return model.cancel(op[1], op[2])
    if kind == "replace":
        _, orig, new_id, ts, side, terms = op
        order = model.orders[orig].order if orig in model.orders else None
        return model.replace(orig, new_id, ts, side, **_fit_terms(order, terms))
    _, cid, cum, qty, ts = op
    return model.fill(cid, cum, qty, ts)


def _new_books() -> tuple[StopBook, _NaiveBook]:
    book = StopBook(session_close=CLOSE, gtc_days=GTC_DAYS, dedup_window_ns=WINDOW)
    model = _NaiveBook(GTC_DAYS, 21 * HOUR, WINDOW)
    return book, model


def _check_against_model(ops: list[tuple]) -> Counter:
    book, model = _new_books()
    outcomes: Counter = Counter()
    resting: set[str] = set()
    for op in ops:
        got = _apply(book, op)
        assert got == _apply_naive(model, op, book), op
        for o in got:
            outcomes[type(o).__name__] += 1
            # Each accepted order fires at most once: a trigger needs it resting, and ends that.
            if type(o) is Accepted:
                assert o.cl_ord_id not in resting
                resting.add(o.cl_ord_id)
            elif type(o) is Replaced:
                resting.remove(o.orig_cl_ord_id)
                resting.add(o.cl_ord_id)
            elif type(o) is Triggered:
                resting.remove(o.order.cl_ord_id)
            elif type(o) is not Rejected:
                resting.remove(o.cl_ord_id)
        if op[0] == "fill" and op[2] >= op[3]:
            resting.discard(op[1])  # a fully filled leg leaves without an outcome
        assert len(book) == len(model.orders) == len(resting)
    for cid, rec in model.orders.items():
        assert book.stop_px(cid) == model.stop(rec)
    return outcomes


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 80))
def test_stop_book_matches_naive_model(seed: int, n: int) -> None:
    _check_against_model(_random_ops(random.Random(seed), n))


def _with_quote_runs(rnd: random.Random, ops: list[tuple]) -> list[tuple]:
    # After each quote, a run of up to 12 more on the same symbol and event time: long runs
    # inside the bands, which the trailing ladders catch up with lazily. Some values come as
    # floats, as the flow passes them (exact on this grid; the model reads them as Decimals).
    out = []
    level = {symbol: D(100) for symbol in SYMBOLS}
    for op in ops:
        out.append(op)
        if op[0] == "quote":
            symbol, ts = op[1], op[2]
            for _ in range(rnd.randint(0, 12)):
                px = level[symbol] = max(D(50), level[symbol] + TICK * rnd.randint(-2, 2))
                last = px + TICK * rnd.randint(-1, 1)
                fields = [rnd.choice([None, v, float(v)]) for v in (px - TICK, px + TICK, last)]
                out.append(("quote", symbol, ts, *fields))
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 150))
def test_stop_book_matches_naive_model_through_quote_runs(seed: int, n: int) -> None:
    rnd = random.Random(seed)
    _check_against_model(_with_quote_runs(rnd, _random_ops(rnd, n)))


@pytest.mark.parametrize("slack", [64, 0])
@pytest.mark.parametrize("seed", range(3))
def test_stop_book_matches_naive_model_long_stream(
    seed: int, slack: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slack 0: the lazy-deletion heaps and the trailing ladders compact all the time.
    for module in (heaps, ladders, book):  # each structure that compacts
        monkeypatch.setattr(module, "_COMPACT_SLACK", slack)
    outcomes = _check_against_model(_random_ops(random.Random(seed), 3000, slow_clock=True))
    assert {"Triggered", "Cancelled", "Expired", "Replaced", "Rejected"} <= outcomes.keys()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 120), st.data())
def test_stop_book_pickle_round_trip_mid_stream(seed: int, n: int, data: st.DataObject) -> None:
    ops = _random_ops(random.Random(seed), n)
    cut = data.draw(st.integers(0, n))
    book, _ = _new_books()
    for op in ops[:cut]:
        _apply(book, op)
    restored = pickle.loads(pickle.dumps(book))
    assert restored.snapshot() == book.snapshot()
    for op in ops[cut:]:
        assert _apply(restored, op) == _apply(book, op)
    assert restored.snapshot() == book.snapshot()


def test_stop_book_pickles_large_trailing_state() -> None:
    book = _book_at()
    for i in range(3000):
        book.submit(_trail(f"t{i}", offset=str(1 + i % 7)), 2 + i)
        book.on_quote("AAPL", 2 + i, last=D(100) + D(i) / 100)
    restored = pickle.loads(pickle.dumps(book))
    assert restored.snapshot() == book.snapshot()
    assert len(restored.on_quote("AAPL", 10**5, last=D(110))) == len(
        book.on_quote("AAPL", 10**5, last=D(110))
    )
