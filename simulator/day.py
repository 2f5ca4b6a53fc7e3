"""Simulator layer: one trading day with every flow's input, for the whole pipeline at once.

`PipelineDaySimulator` is `OrderFlowSimulator` (market data, retail order flow and the broker's
execution reports) over books that look like a broker's, with more inputs merged in event time.

Books (the opening `accounts_csv` / `positions_csv`): one profile per account, valued at the
opening prints, each book worth $50,000 to $3,000,000 (log-uniform):
    diversified   8-15 holdings of about equal value (none above 20 % of the book when the
                  market has 8 symbols or more); cash 3-25 % of the book
    margin        a diversified book partly bought on a margin loan (negative cash): equity
                  40-75 % of the position value
    concentrated  4-8 holdings, one of them 30-55 % of the book (past the 25 % concentration
                  threshold from the open); cash as diversified
    near_call     a diversified margin book whose equity is 30.05-30.6 % of the position value:
                  a fall of a few tenths of a percent takes it below the 30 % maintenance line
Contingent lists: `oco` (35=E, ContingencyType (1385) 1: a sell stop-loss and a sell
take-profit limit) and `bracket` (1385=2: a marketable buy limit entry, then a take-profit limit
and a stop-loss that wait for its fill; the broker fills the entry a few ms later, 35=8).
Surveillance patterns (`plant`): the compressed patterns of `simulator.abuse` (wash, layering,
round trips, order storm) by one account each, a self-match between two accounts of one owner,
and two on thin stocks that only a second venue prints (OTCX, trade prints): a pump and dump
(the price climbs 40 % over the day; one account buys early, more than 5 % of the volume, and
sells near the top) and marking the close (one account buys 8 % of the stock's volume in the
last minutes before the close).
`at(ns, make)` merges a caller's own messages (the pipeline benchmark's stop orders) in event
time, built with the market as it stands then.

Nothing reads the wall clock; the same arguments and calls give the same bytes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from decimal import Decimal

import simplefix

from simulator.abuse import PATTERNS, _Reports
from simulator.accounts import Account, Holding, apply_fill
from simulator.market import MarketSimulator
from simulator.orders import (
    DEFAULT_ACCOUNTS,
    DEFAULT_ORDERS_PER_MINUTE,
    OrderFlowSimulator,
    _px,
)

#: Share of the accounts of each profile but "diversified", which takes the rest.
DEFAULT_MIX = {"near_call": 0.0075, "concentrated": 0.03, "margin": 0.15}
CLIENT, BROKER_IN, VENUE = b"CLIENT", b"BROKERFLOW", b"OTCX"
#: The thin stocks of the venue patterns: (symbol, opening price in ticks, shares a print).
PUMP_STOCK = ("OTC1", 200, 1_000)
CLOSE_STOCK = ("OTC2", 1_200, 2_000)
VENUE_PRINTS = 60  # trade prints of a thin stock over the day
#: pattern -> (thin stock, price rise over the day, the account's fills: (% of the day, side,
#: shares)). Pump and dump: buys of 3 x 1,000 at a fifth of the day (over 5 % of the volume so
#: far, once it is past the model's 10,000-share floor), all sold at 95 % of the day, ~28 %
#: above the average buy. Marking the close: buys of 3 x 3,200 (8 % of the 120,000 shares
#: printed in the day) in its last 3 % (the model looks at the last 30 minutes before the close).
VENUE_PATTERNS = {
    "pump-and-dump": (PUMP_STOCK, 0.40, [(20, b"1", 1_000), (21, b"1", 1_000),
                                         (22, b"1", 1_000), (95, b"2", 3_000)]),
    "marking-the-close": (CLOSE_STOCK, 0.01, [(97, b"1", 3_200), (98, b"1", 3_200),
                                              (99, b"1", 3_200)]),
}  # fmt: skip
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_BUY, _SELL = b"1", b"2"


def _message(msg_type: bytes, sender: bytes, seq: int, stamp: bytes, pairs: list) -> bytes:
    m = simplefix.FixMessage()
    m.append_pair(8, b"FIX.4.4")
    m.append_pair(35, msg_type)
    m.append_pair(49, sender)
    m.append_pair(56, BROKER_IN)
    m.append_pair(34, b"%d" % seq)
    m.append_pair(52, stamp)
    for tag, value in pairs:
        m.append_pair(tag, value)
    return m.encode()


def leg(cl_ord_id: bytes, account: bytes, symbol: bytes, side: bytes, qty: int, ord_type: bytes,
        stamp: bytes, stop: int = 0, limit: int = 0) -> list[tuple[int, bytes]]:  # fmt: skip
    """One NoOrders (73) entry of a 35=E, ClOrdID (11) first; prices in ticks (0: none)."""
    out = [(11, cl_ord_id), (1, account), (55, symbol), (54, side), (60, stamp),
           (38, b"%d" % qty), (40, ord_type)]  # fmt: skip
    if stop:
        out.append((99, _px(stop)))
    if limit:
        out.append((44, _px(limit)))
    out.append((59, b"0"))
    return out


class PipelineDaySimulator(OrderFlowSimulator):
    """A day of market data, order flow over realistic books, contingent lists and patterns.

    Example:
        >>> sim = PipelineDaySimulator(MarketSimulator(symbols=10, seed=3), accounts=200)
        >>> sorted(set(sim.profiles.values()))
        ['concentrated', 'diversified', 'margin', 'near_call']
    """

    def __init__(
        self,
        market: MarketSimulator,
        accounts: int = DEFAULT_ACCOUNTS,
        orders_per_minute: float = DEFAULT_ORDERS_PER_MINUTE,
        mix: dict[str, float] | None = None,
    ) -> None:
        """Set up the books; nothing is generated yet.

        Args:
            market: a fresh market (see `OrderFlowSimulator`).
            accounts: how many accounts.
            orders_per_minute: mean retail orders (35=D) a simulated minute.
            mix: share of accounts per profile but "diversified" (default `DEFAULT_MIX`); a
                profile with a share gets at least one account.
        """
        self._mix = dict(DEFAULT_MIX if mix is None else mix)
        self.profiles: dict[str, str] = {}
        self.owners: dict[str, str] = {}
        self.holders: dict[str, list[str]] = {}  # symbol -> accounts holding it at the open
        self._seqs = {CLIENT: 0, VENUE: 0}
        super().__init__(market, accounts=accounts, orders_per_minute=orders_per_minute)
        self._by_name = {a.account.decode(): a for a in self._accounts}
        self._plants = random.Random(f"brokerflow-day:{self.seed}")
        self._patterns = 0

    # ---------------------------------------------------------------- books

    def _open_accounts(self, count: int) -> list[Account]:
        accounts = super()._open_accounts(count)  # owners and sessions; the holdings are redone
        rng = random.Random(f"brokerflow-books:{self.seed}")
        order = list(range(count))
        rng.shuffle(order)
        profile_of = ["diversified"] * count
        taken = 0
        for profile in ("near_call", "concentrated", "margin"):
            share = self._mix.get(profile, 0.0)
            n = min(count - taken, max(1, round(count * share)) if share > 0 else 0)
            for i in order[taken : taken + n]:
                profile_of[i] = profile
            taken += n
        opening = [self.market.top_of_book(i)[4] for i in range(len(self._symbols))]
        for account, profile in zip(accounts, profile_of, strict=True):
            self._book(account, profile, rng, opening)
            name = account.account.decode()
            self.profiles[name] = profile
            self.owners[name] = account.owner
            for symbol in account.holdings:
                self.holders.setdefault(symbol.decode(), []).append(name)
        return accounts

    def _book(self, account: Account, profile: str, rng: random.Random, opening: list[int]) -> None:
        dollars = 2.0 ** rng.uniform(math.log2(50_000), math.log2(3_000_000))
        n_symbols = len(opening)
        if profile == "concentrated":
            k = min(rng.randint(4, 8), n_symbols)
            big = rng.uniform(0.30, 0.55)
            rest = [rng.uniform(0.75, 1.25) for _ in range(k - 1)]
            weights = [big] + [(1 - big) * w / sum(rest) for w in rest] if rest else [1.0]
        else:
            k = min(rng.randint(8, 15), n_symbols)
            raw = [rng.uniform(0.8, 1.2) for _ in range(k)]
            weights = [w / sum(raw) for w in raw]
        holdings = {}
        value = 0  # cents at the opening prints
        for idx, weight in zip(rng.sample(range(n_symbols), k), weights, strict=True):
            px = opening[idx]
            qty = max(1, round(dollars * 100 * weight / px))
            avg = Decimal(max(1, round(px * rng.uniform(0.8, 1.2)))).scaleb(-2)
            holdings[self._symbols[idx]] = Holding(qty, avg)
            value += qty * px
        if profile == "margin":
            cash = round(value * (rng.uniform(0.40, 0.75) - 1))  # equity = cash + value
        elif profile == "near_call":
            cash = round(value * (rng.uniform(0.3005, 0.306) - 1))
        else:
            cash = round(value * rng.uniform(0.03, 0.25))
        account.holdings, account.cash = holdings, cash

    # ---------------------------------------------------------------- merging

    def at(self, ns: int, make: Callable[[int], bytes | None]) -> None:
        """Emit `make(ns)` (a message, or None) at event time `ns`, merged into the stream.

        `make` runs when the stream gets there, so `self.market.top_of_book` is the market then.
        """
        self._schedule(ns, make)

    def stamp(self, ns: int) -> bytes:
        """SendingTime (52) / TransactTime (60) text of event time `ns`."""
        return self._clock.timestamp(ns // _NS_PER_MS)

    def client_seq(self) -> int:
        """The next MsgSeqNum (34) of the client session CLIENT -> BROKERFLOW."""
        self._seqs[CLIENT] += 1
        return self._seqs[CLIENT]

    def _drop_copy(self, ns: int, account: Account, body: list) -> bytes:
        return self._encode(b"8", account, ns, body)

    def _order_list(self, ns: int, list_id: bytes, contingency: bytes, legs: list) -> bytes:
        pairs = [(66, list_id), (1385, contingency), (60, self.stamp(ns)), (73, b"%d" % len(legs))]
        for n, entry in enumerate(legs, 1):
            pairs += [entry[0], (67, b"%d" % n), *entry[1:]]
        return _message(b"E", CLIENT, self.client_seq(), self.stamp(ns), pairs)

    def _last(self, symbol: str) -> int:
        top = self.market.top_of_book(self._symbol_idx[symbol.encode()])
        assert top is not None  # every symbol has its 35=W at the start
        return top[4]

    # ---------------------------------------------------------------- contingent lists

    def oco(self, ns: int, list_id: str, account: str, symbol: str, stop_distance: float,
            profit_distance: float) -> None:  # fmt: skip
        """At `ns`: an OCO of a sell stop-loss `stop_distance` below the last trade and a sell
        take-profit limit `profit_distance` above it (100 shares each)."""

        def make(ns: int) -> bytes:
            last = self._last(symbol)
            stamp, sym, acc = self.stamp(ns), symbol.encode(), account.encode()
            stop = max(1, min(last - 1, round(last * (1 - stop_distance))))
            limit = max(last + 1, round(last * (1 + profit_distance)))
            legs = [leg(b"%s.SL" % list_id.encode(), acc, sym, _SELL, 100, b"3", stamp, stop=stop),
                    leg(b"%s.TP" % list_id.encode(), acc, sym, _SELL, 100, b"2", stamp,
                        limit=limit)]  # fmt: skip
            return self._order_list(ns, list_id.encode(), b"1", legs)

        self.at(ns, make)

    def bracket(self, ns: int, list_id: str, account: str, symbol: str, size: int,
                profit_distance: float, stop_distance: float) -> None:  # fmt: skip
        """At `ns`: a bracket (OTO): a buy limit at the ask for `size` shares (fewer if the
        account's free cash does not cover them), then a take-profit limit
        `profit_distance` above and a stop-loss `stop_distance` below it; the broker fills the
        entry 2-20 ms later (one 35=8), which activates both."""
        acc_obj = self._by_name[account]
        rng = self._plants

        def make(ns: int) -> bytes:
            ask = self.market.top_of_book(self._symbol_idx[symbol.encode()])[2]
            stamp, sym, acc = self.stamp(ns), symbol.encode(), account.encode()
            lid = list_id.encode()
            entry = b"%s.E" % lid
            qty = max(1, min(size, (acc_obj.cash - acc_obj.reserved_cash) // ask))  # no loan
            legs = [
                leg(entry, acc, sym, _BUY, qty, b"2", stamp, limit=ask),
                leg(b"%s.TP" % lid, acc, sym, _SELL, qty, b"2", stamp,
                    limit=max(ask + 1, round(ask * (1 + profit_distance)))),
                leg(b"%s.SL" % lid, acc, sym, _SELL, qty, b"3", stamp,
                    stop=max(1, min(ask - 1, round(ask * (1 - stop_distance))))),
            ]  # fmt: skip
            fill_ns = ns + rng.randint(2, 20) * _NS_PER_MS
            body = _Reports(list_id, account, symbol).fill(entry, _BUY, qty, ask)
            self.at(fill_ns, lambda at: self._entry_fill(at, acc_obj, sym, qty, ask, body))
            return self._order_list(ns, lid, b"2", legs)

        self.at(ns, make)

    def _entry_fill(self, ns: int, account: Account, symbol: bytes, qty: int, px: int,
                    body: list) -> bytes:  # fmt: skip
        apply_fill(account, symbol, _BUY, qty, px)  # the simulated broker's books follow
        return self._drop_copy(ns, account, body)

    # ---------------------------------------------------------------- surveillance patterns

    def plant(self, pattern: str, ns: int, end_ns: int, accounts: list[str],
              symbol: str = "") -> dict:  # fmt: skip
        """Plant one surveillance pattern starting at `ns`; return what was planted.

        Args:
            pattern: a `simulator.abuse` pattern ("wash", "layering", "round-trips", "otr"),
                "owner-wash" (a self-match between two accounts of one owner: `accounts` holds
                both), "pump-and-dump" or "marking-the-close" (thin stocks, `ns` to `end_ns`).
            ns: when it starts.
            end_ns: the end of the day (the close).
            accounts: the account (two for "owner-wash").
            symbol: the symbol of the `abuse` patterns and "owner-wash".
        """
        self._patterns += 1
        prefix = f"PAT{self._patterns}"
        if pattern in PATTERNS:
            self.at(ns, lambda at: self._abuse(at, pattern, prefix, accounts[0], symbol))
        elif pattern == "owner-wash":
            self.at(ns, lambda at: self._owner_wash(at, prefix, accounts, symbol))
        elif pattern in VENUE_PATTERNS:
            symbol = self._venue_pattern(ns, end_ns, pattern, prefix, accounts[0])
        else:
            msg = f"unknown pattern {pattern!r}"
            raise ValueError(msg)
        return {"pattern": pattern, "accounts": accounts, "symbol": symbol,
                "at": self.stamp(ns).decode()}  # fmt: skip

    def _abuse(self, ns: int, pattern: str, prefix: str, account: str, symbol: str) -> None:
        acc = self._by_name[account]
        for step in PATTERNS[pattern](prefix, account, symbol, self._last(symbol)):
            at_ns = ns + round(step.delay_s * _NS_PER_S)
            self.at(at_ns, lambda at, b=step.body: self._drop_copy(at, acc, b))

    def _owner_wash(self, ns: int, prefix: str, accounts: list[str], symbol: str) -> None:
        px = self._last(symbol)
        for account, side in zip(accounts, (_BUY, _SELL), strict=True):
            r = _Reports(f"{prefix}{side.decode()}", account, symbol)
            body = r.fill(r.order_id(), side, 700, px)
            acc = self._by_name[account]
            self.at(ns, lambda at, a=acc, b=body: self._drop_copy(at, a, b))

    def _venue_prints(self, start_ns: int, end_ns: int, stock: tuple[str, int, int],
                      rise: float) -> Callable[[int], int]:  # fmt: skip
        """Schedule `VENUE_PRINTS` trade prints of a thin stock from `start_ns` to `end_ns`, its
        price moving linearly by `rise` (a fraction) plus noise; return price-at-time (ticks)."""
        symbol, p0, qty = stock
        span = end_ns - start_ns
        rng = self._plants

        def price(ns: int) -> int:
            return round(p0 * (1 + rise * (ns - start_ns) / span))

        for k in range(VENUE_PRINTS):
            t = start_ns + span * k // VENUE_PRINTS + _NS_PER_MS
            px = max(1, price(t) + rng.randint(-1, 1))
            self.at(t, lambda at, p=px: self._venue_print(at, symbol, qty, p))
        return price

    def _venue_print(self, ns: int, symbol: str, qty: int, px: int) -> bytes:
        self._seqs[VENUE] += 1
        ms = ns // _NS_PER_MS
        pairs = [(60, self.stamp(ns)), (268, b"1"), (279, b"0"), (269, b"2"),
                 (55, symbol.encode()), (270, _px(px)), (271, b"%d" % qty),
                 (273, self._clock.time_only(ms))]  # fmt: skip
        return _message(b"X", VENUE, self._seqs[VENUE], self.stamp(ns), pairs)

    def _thin_fill(self, ns: int, prefix: str, account: str, symbol: str, side: bytes, qty: int,
                   px: int) -> None:  # fmt: skip
        r = _Reports(prefix, account, symbol)
        body = r.fill(r.order_id(), side, qty, px)
        acc = self._by_name[account]
        self.at(ns, lambda at: self._drop_copy(at, acc, body))

    def _venue_pattern(self, start_ns: int, end_ns: int, pattern: str, prefix: str,
                       account: str) -> str:  # fmt: skip
        """The thin stock's prints over the day and the account's fills at points of it."""
        stock, rise, trades = VENUE_PATTERNS[pattern]
        price = self._venue_prints(start_ns, end_ns, stock, rise)
        span = end_ns - start_ns
        for k, (percent, side, qty) in enumerate(trades):
            t = start_ns + span * percent // 100 + 2 * _NS_PER_MS
            self._thin_fill(t, f"{prefix}T{k}", account, stock[0], side, qty, price(t))
        return stock[0]
