"""The exchange simulator's pure core: what a 35=V gets, how a 35=D fills against the book."""

from __future__ import annotations

from simulator.exchange import ExchangeCore, split_message

T0 = 1_800_000_000 * 1_000_000_000
ME = ("FIX.4.4", "SIMX", "BROKERFLOW")


def _core(**kwargs) -> ExchangeCore:
    core = ExchangeCore(3, T0, seed=4, rate_per_symbol=20, orders_per_minute=0, **kwargs)
    core.advance(T0)  # the feed's opening snapshots: the books are known from here on
    return core


def _book(core: ExchangeCore, symbol: bytes) -> tuple[int, ...]:
    return core.market.top_of_book(core.symbols.index(symbol))


def test_a_subscription_gets_a_snapshot_per_symbol_from_the_current_book():
    core = _core()
    aapl, msft = core.symbols[:2]
    replies, streamed = core.market_data_request(
        [(262, b"R1"), (263, b"1"), (146, b"2"), (55, aapl), (55, msft)]
    )
    assert [t for t, _ in replies] == [b"W", b"W"] and streamed == [aapl, msft]
    body = replies[0][1]
    bid, bid_size, ask, ask_size, last = _book(core, aapl)
    # The top of book and the last trade, with the RptSeq (83) of the last entry included (a
    # held-back incremental it already includes is then a duplicate); no MDEntryID (FIX 4.4's
    # snapshot group has none)
    assert body[:4] == [(262, b"R1"), (55, aapl), (83, b"%d" % core.market.rpt_seq(0)),
                        (268, b"3")]  # fmt: skip
    assert body[4:] == [
        (269, b"0"), (270, f"{bid / 100:.2f}".encode()), (271, b"%d" % bid_size),
        (269, b"1"), (270, f"{ask / 100:.2f}".encode()), (271, b"%d" % ask_size),
        (269, b"2"), (270, f"{last / 100:.2f}".encode()), (271, b"100"),
    ]  # fmt: skip


def test_a_snapshot_only_request_streams_nothing_and_a_bad_one_is_rejected():
    core = _core()
    replies, streamed = core.market_data_request([(262, b"R"), (263, b"0"), (55, b"AAPL")])
    assert [t for t, _ in replies] == [b"W"] and streamed == []
    assert core.snapshot_requests == [(b"R", (b"AAPL",))] and core.stats.snapshot_requests == 1
    replies, streamed = core.market_data_request([(262, b"R"), (263, b"1"), (55, b"NOPE")])
    assert replies[0][0] == b"Y" and b"NOPE" in dict(replies[0][1])[58] and streamed == []


def test_incrementals_come_in_time_order_and_filter_to_the_subscribed_symbols():
    core = _core()
    routed = core.advance(T0 + 2_000_000_000)
    incrementals = [r for r in routed if r.msg_type == b"X"]
    assert len(incrementals) > 20
    only = {core.symbols[0]}
    for item in incrementals:
        body = core.filter_incremental(item.body, only)
        if core.symbols[0] not in item.symbols:
            assert body is None
        else:
            assert {v for t, v in body if t == 55} == only
            assert dict(body)[268] == b"%d" % sum(1 for t, _ in body if t == 279)
    assert not any(t == 60 for r in incrementals for t, _ in r.body)  # not FIX 4.4 in 35=X


def test_a_market_buy_fills_at_the_ask_and_a_sell_at_the_bid():
    core = _core()
    symbol = core.symbols[0]
    bid, _, ask, _, _ = _book(core, symbol)
    for side, px in ((b"1", ask), (b"2", bid)):
        out = core.new_order(ME, [(11, b"C" + side), (1, b"ACC1"), (55, symbol), (54, side),
                                  (38, b"300"), (40, b"1")], T0)  # fmt: skip
        ack, fill = (dict(r.body) for r in out)
        assert all(r.to == ME and r.msg_type == b"8" for r in out)
        assert (ack[150], ack[39]) == (b"0", b"0")
        assert (fill[150], fill[39], fill[32], fill[151]) == (b"F", b"2", b"300", b"0")
        assert fill[31] == f"{px / 100:.2f}".encode() and fill[11] == b"C" + side


def test_a_limit_order_rests_until_the_market_reaches_it_and_can_be_cancelled():
    core = _core()
    symbol = core.symbols[0]
    bid, _, ask, _, _ = _book(core, symbol)
    far = f"{(bid - 500) / 100:.2f}".encode()  # five dollars under the bid: rests
    out = core.new_order(ME, [(11, b"L1"), (55, symbol), (54, b"1"), (38, b"100"), (40, b"2"),
                              (44, far)], T0)  # fmt: skip
    assert [dict(r.body)[150] for r in out] == [b"0"]
    marketable = f"{(ask + 5) / 100:.2f}".encode()
    out = core.new_order(ME, [(11, b"L2"), (55, symbol), (54, b"1"), (38, b"100"), (40, b"2"),
                              (44, marketable)], T0)  # fmt: skip
    assert [dict(r.body)[150] for r in out] == [b"0", b"F"]
    assert dict(out[1].body)[31] == f"{ask / 100:.2f}".encode()  # the touch, not the limit
    cancelled = core.cancel_order(ME, [(11, b"L1C"), (41, b"L1")], T0)
    assert dict(cancelled[0].body)[150] == b"4" and dict(cancelled[0].body)[41] == b"L1"
    again = core.cancel_order(ME, [(11, b"L1D"), (41, b"L1")], T0)
    assert again[0].msg_type == b"9"


def test_bad_orders_are_rejected_with_the_reason_and_a_resent_clordid_is_ignored():
    core = _core()
    out = core.new_order(ME, [(11, b"X1"), (55, b"NOPE"), (54, b"1"), (38, b"100"),
                              (40, b"1")], T0)  # fmt: skip
    report = dict(out[0].body)
    assert (report[150], report[39]) == (b"8", b"8") and b"unknown symbol" in report[58]
    order = [(11, b"D1"), (55, core.symbols[1]), (54, b"2"), (38, b"100"), (40, b"1")]
    assert len(core.new_order(ME, order, T0)) == 2
    assert core.new_order(ME, order, T0) == [] and core.stats.duplicates == 1
    assert core.stats.fills == 1


def test_the_synthetic_flow_sends_execution_reports_as_drop_copies():
    core = ExchangeCore(3, T0, seed=4, rate_per_symbol=5, accounts=20, orders_per_minute=600)
    routed = core.advance(T0 + 30_000_000_000)
    reports = [r for r in routed if r.msg_type == b"8"]
    assert reports and all(r.to is None for r in reports)
    assert {dict(r.body)[150] for r in reports} >= {b"0", b"F"}
    assert not any(t == 880 for r in reports for t, _ in r.body)


def test_split_message_drops_the_header_and_trailer():
    raw = b"8=FIX.4.4\x019=20\x0135=D\x0134=7\x0149=A\x0156=B\x0152=x\x0111=C\x0110=000\x01"
    assert split_message(raw) == (b"D", [(11, b"C")])


def test_lost_incrementals_skip_rptseq_and_periodic_snapshots_go_out():
    """`drop_incrementals`: the subscribers see a gap in a symbol's RptSeq (83); a request's
    snapshot carries the RptSeq the market reached (lost numbers included); with
    `snapshot_every_s`, the market's 35=W go out (no MDEntryID: not FIX 4.4 in 35=W)."""
    core = _core(drop_incrementals=20, snapshot_every_s=1)
    routed = core.advance(T0 + 3_500_000_000)
    last: dict[bytes, int] = {}
    gaps = 0
    for item in routed:
        if item.msg_type != b"X":
            continue
        symbol = b""
        for tag, value in item.body:
            if tag == 55:
                symbol = value
            elif tag == 83:
                gaps += int(value) > last.get(symbol, 0) + 1
                last[symbol] = int(value)
    assert gaps > 0 and core.market.dropped > 0
    snapshots = [r for r in routed if r.msg_type == b"W"]
    assert len(snapshots) == 3 * 3  # 1, 2 and 3 s, each symbol
    assert all(t != 278 for r in snapshots for t, _ in r.body)
    (reply,), _ = core.market_data_request([(262, b"R"), (263, b"0"), (55, b"AAPL")])
    assert (
        dict(reply[1])[83] == b"%d" % core.market.rpt_seq(0)
        and core.market.rpt_seq(0) >= (last[b"AAPL"])
    )
