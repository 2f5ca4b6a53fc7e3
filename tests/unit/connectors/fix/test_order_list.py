"""NewOrderList (35=E) -> `OrderList`: OCO and OTO lists, the NoOrders (73) group, dead letters."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import simplefix

import connectors.fix.parse.batch as fix_parse
from connectors.fix.codec import decode, tokenize_chunk
from connectors.fix.parse import decode_lines, parse_message, parse_order_list
from domain.errors import FieldError
from domain.events import MarketDataIncrement, OrderList, OrderRequest

SOH = b"\x01"
SENT = "20240102-14:30:05.250"
SENT_NS = int(datetime(2024, 1, 2, 14, 30, 5, tzinfo=UTC).timestamp()) * 10**9 + 250_000_000
TRANSACT = "20240102-14:30:04.000"
TRANSACT_NS = SENT_NS - 1_250_000_000


def fix(*pairs: tuple[int, object], begin: str = "FIX.4.4") -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, begin)
    for tag, value in pairs:
        msg.append_pair(tag, value)
    return msg.encode()


def header(msg_type: str) -> list[tuple[int, object]]:
    return [(35, msg_type), (49, "CLIENT"), (56, "BROKERFLOW"), (34, 9), (52, SENT)]


def order_list_factory(
    entries: list[list[tuple[int, object]]],
    *,
    list_id: str = "L-1",
    contingency_type: str | None = "1",
    count: object = None,
    total: object = None,
    head: tuple[tuple[int, object], ...] = (),
) -> bytes:
    """A 35=E with these NoOrders (73) entries (each opening with its ClOrdID (11))."""
    pairs = header("E")
    if list_id is not None:
        pairs.append((66, list_id))
    if contingency_type is not None:
        pairs.append((1385, contingency_type))
    pairs += [(394, 3), (68, len(entries) if total is None else total), *head]
    pairs.append((73, len(entries) if count is None else count))
    for entry in entries:
        pairs += entry
    return fix(*pairs)


def stop_sell(cl_ord_id: str, stop_px: str, seq: int, symbol: str = "AAPL") -> list:
    return [(11, cl_ord_id), (67, seq), (55, symbol), (54, "2"), (38, "100"), (40, "3"),
            (99, stop_px), (59, "1")]  # fmt: skip


def limit(cl_ord_id: str, side: str, price: str, seq: int, qty: str = "100") -> list:
    return [(11, cl_ord_id), (67, seq), (55, "AAPL"), (54, side), (38, qty), (40, "2"),
            (44, price), (59, "0")]  # fmt: skip


def request_factory(cl_ord_id: str, raw: bytes, source: str = "test:1", **changes) -> OrderRequest:
    fields = {
        "msg_type": "D",
        "cl_ord_id": cl_ord_id,
        "orig_cl_ord_id": None,
        "account": None,
        "symbol": "AAPL",
        "side": "2",
        "order_qty": Decimal(100),
        "ord_type": "3",
        "price": None,
        "stop_px": None,
        "time_in_force": "1",
        "ts_event": SENT_NS,
        "raw": raw,
        "source": source,
    }
    fields.update(changes)
    return OrderRequest(**fields)


def parse(raw: bytes) -> OrderList:
    """Parse through every path (message, chunk tokens, careful lines) and check they agree."""
    [slow] = parse_message(decode(raw), source="test:1", raw=raw)
    batch = decode_lines([raw + b"\n"], "test", 1)
    careful = fix_parse._decode_lines_careful([raw + b"\n"], "test", 1, "decode_fix", 0, None)
    assert batch.dead_letters == careful.dead_letters == []
    assert batch.events == careful.events == [slow]
    assert isinstance(slow, OrderList)
    return slow


def field_error(raw: bytes) -> FieldError:
    with pytest.raises(FieldError) as caught:
        parse_message(decode(raw))
    for batch in (
        decode_lines([raw + b"\n"], "test", 1),
        fix_parse._decode_lines_careful([raw + b"\n"], "test", 1, "decode_fix", 0, None),
    ):
        [letter] = batch.dead_letters
        assert (letter.error, letter.reason, letter.tag, letter.raw) == (
            "FieldError",
            caught.value.reason,
            caught.value.tag,
            raw,
        )
        assert batch.events == []
    return caught.value


def test_parse_order_list_oco_of_two_sell_stops() -> None:
    raw = order_list_factory([stop_sell("S-1", "180", 1), stop_sell("S-2", "175.5", 2)])
    orders = parse(raw)
    assert orders == OrderList(
        list_id="L-1",
        contingency_type="1",
        orders=(
            request_factory("S-1", raw, stop_px=Decimal(180)),
            request_factory("S-2", raw, stop_px=Decimal("175.5")),
        ),
        ts_event=SENT_NS,
        raw=raw,
        source="test:1",
    )
    assert orders.symbol == "AAPL"


def test_parse_order_list_oto_bracket_entry_first() -> None:
    raw = order_list_factory(
        [
            [*limit("ENTRY", "1", "100.00", 1), (60, TRANSACT)],
            limit("TP", "2", "110.00", 2),
            stop_sell("SL", "95.00", 3),
        ],
        list_id="BRK-7",
        contingency_type="2",
    )
    orders = parse(raw)
    assert (orders.list_id, orders.contingency_type, orders.ts_event) == ("BRK-7", "2", SENT_NS)
    entry, take_profit, stop_loss = orders.orders
    assert (entry.cl_ord_id, entry.side, entry.ord_type, entry.price, entry.time_in_force) == (
        "ENTRY",
        "1",
        "2",
        Decimal("100.00"),
        "0",
    )
    assert entry.ts_event == TRANSACT_NS  # its own TransactTime (60); the others take the list's
    assert (take_profit.cl_ord_id, take_profit.side, take_profit.price) == (
        "TP",
        "2",
        Decimal("110.00"),
    )
    assert (stop_loss.cl_ord_id, stop_loss.ord_type, stop_loss.stop_px, stop_loss.price) == (
        "SL",
        "3",
        Decimal("95.00"),
        None,
    )
    assert {order.msg_type for order in orders.orders} == {"D"}
    assert (take_profit.ts_event, stop_loss.ts_event) == (SENT_NS, SENT_NS)
    assert all((o.raw, o.source) == (raw, "test:1") for o in orders.orders)


def test_parse_order_list_account_inherited_from_message_level() -> None:
    entries = [stop_sell("S-1", "180", 1), [*stop_sell("S-2", "175", 2), (1, "OWN")]]
    inherited = parse(order_list_factory(entries, head=((1, "ACC-9"),)))
    assert [order.account for order in inherited.orders] == ["ACC-9", "OWN"]
    none = parse(order_list_factory(entries))
    assert [order.account for order in none.orders] == [None, "OWN"]


def test_parse_order_list_transact_time_of_the_message_dates_the_list() -> None:
    raw = order_list_factory([stop_sell("S-1", "180", 1)], head=((60, TRANSACT),))
    orders = parse(raw)
    assert (orders.ts_event, orders.orders[0].ts_event) == (TRANSACT_NS, TRANSACT_NS)


def test_parse_order_list_in_list_seq_no_order() -> None:
    raw = order_list_factory([stop_sell("S-2", "175", 2), stop_sell("S-1", "180", 1)])
    assert [order.cl_ord_id for order in parse(raw).orders] == ["S-1", "S-2"]
    # without ListSeqNo (67): wire order
    entries = [[pair for pair in stop_sell(c, "170", 0) if pair[0] != 67] for c in ("B", "A")]
    assert [order.cl_ord_id for order in parse(order_list_factory(entries)).orders] == ["B", "A"]


def test_parse_order_list_across_symbols_kept_and_keyed_by_the_first() -> None:
    raw = order_list_factory([stop_sell("S-1", "180", 1), stop_sell("S-2", "410", 2, "MSFT")])
    orders = parse(raw)
    assert [order.symbol for order in orders.orders] == ["AAPL", "MSFT"]
    assert orders.symbol == "AAPL"


def test_parse_order_list_plain_list_without_contingency_type() -> None:
    raw = order_list_factory([stop_sell("S-1", "180", 1)], contingency_type=None)
    assert parse(raw).contingency_type is None


def test_parse_order_list_parties_group_inside_an_entry_is_ignored() -> None:
    parties = [(453, 2), (448, "TRADER1"), (447, "D"), (452, 11), (448, "FIRM"), (447, "D"),
               (452, 1)]  # fmt: skip
    raw = order_list_factory([[*stop_sell("S-1", "180", 1), *parties], stop_sell("S-2", "17", 2)])
    assert [order.cl_ord_id for order in parse(raw).orders] == ["S-1", "S-2"]


def _without(entry: list, tag: int) -> list:
    return [pair for pair in entry if pair[0] != tag]


def _replaced(entry: list, tag: int, value: object) -> list:
    return [(t, value if t == tag else v) for t, v in entry]


OCO = [stop_sell("S-1", "180", 1), stop_sell("S-2", "175", 2)]


@pytest.mark.parametrize(
    ("raw", "tag", "reason"),
    [
        (order_list_factory(OCO, count=3), 73, "NoOrders(73) was 3, found 2 entries"),
        (order_list_factory(OCO, count=1), 73, "NoOrders(73) was 1, found 2 entries"),
        (order_list_factory(OCO, count="two"), 73, "NoOrders(73) was 'two', not a number"),
        (
            fix(*header("E"), (66, "L-1"), (1385, 1), *OCO[0], *OCO[1]),
            73,
            "NoOrders(73) missing",
        ),
        (order_list_factory([]), 73, "NoOrders(73) was 0, a list needs at least one order"),
        (order_list_factory(OCO, list_id=None), 66, "ListID(66) missing"),
        (
            order_list_factory(OCO, contingency_type="3"),
            1385,
            "ContingencyType(1385)=3 not supported",
        ),
        (
            order_list_factory([OCO[0], _replaced(OCO[1], 38, "1O0")]),
            38,
            "NoOrders(73) entry 2: OrderQty(38) was '1O0', not a number",
        ),
        (
            order_list_factory([OCO[0], _replaced(OCO[1], 99, "-5")]),
            99,
            "NoOrders(73) entry 2: StopPx(99) was -5, not positive",
        ),
        (
            order_list_factory([_without(OCO[0], 38), OCO[1]]),
            38,
            "NoOrders(73) entry 1: OrderQty(38) missing",
        ),
        (
            order_list_factory([OCO[0], _without(OCO[1], 54)]),
            54,
            "NoOrders(73) entry 2: Side(54) missing",
        ),
        (
            order_list_factory([OCO[0], _replaced(OCO[1], 54, "Z")]),
            54,
            "NoOrders(73) entry 2: Side(54) was 'Z', not a FIX Side value",
        ),
        (
            order_list_factory([OCO[0], _without(OCO[1], 55)]),
            55,
            "NoOrders(73) entry 2: Symbol(55) missing",
        ),
        (
            order_list_factory([OCO[0], _without(OCO[1], 11)]),
            11,
            "NoOrders(73) entry 2: ClOrdID(11) missing, ListSeqNo(67) received before it",
        ),
        (
            order_list_factory([_without(OCO[0], 11), OCO[1]]),
            11,
            "NoOrders(73) entry 1: ClOrdID(11) missing, ListSeqNo(67) received before it",
        ),
        (
            order_list_factory([OCO[0], [*OCO[1], (60, "2024-01-02")]]),
            60,
            "NoOrders(73) entry 2: TransactTime(60) was '2024-01-02', not a UTCTimestamp",
        ),
        (
            order_list_factory([OCO[0], _replaced(OCO[1], 67, 1)]),
            67,
            "NoOrders(73) entry 2: ListSeqNo(67) was 1, as in entry 1",
        ),
        (
            order_list_factory([OCO[0], _replaced(OCO[1], 67, "2nd")]),
            67,
            "NoOrders(73) entry 2: ListSeqNo(67) was '2nd', not an integer",
        ),
        (
            order_list_factory([_without(OCO[0], 67), OCO[1]]),
            67,
            "NoOrders(73) entry 1: ListSeqNo(67) missing, other entries have one",
        ),
        (
            order_list_factory(OCO, total=3),
            68,
            "TotNoOrders(68) was 3, found 2 orders in the message",
        ),
        (
            order_list_factory(OCO, total="x"),
            68,
            "TotNoOrders(68) was 'x', not a number",
        ),
    ],
)
def test_parse_order_list_field_errors(raw: bytes, tag: int, reason: str) -> None:
    error = field_error(raw)
    assert (error.tag, error.reason) == (tag, reason)


def test_decode_lines_order_lists_in_a_batch_in_order_bad_one_a_dead_letter() -> None:
    quote = fix(*header("X"), (268, 1), (269, 2), (55, "AAPL"), (270, "181.5"), (271, 10))
    oco = order_list_factory([stop_sell("S-1", "180", 1), stop_sell("S-2", "175", 2)])
    bad = order_list_factory(
        [stop_sell("B-1", "180", 1), _replaced(stop_sell("B-2", "175", 2), 38, "1e2")]
    )
    single = fix(*header("D"), (11, "C-1"), (55, "AAPL"), (54, "1"), (38, 5), (40, "1"))
    bracket = order_list_factory(
        [limit("E", "1", "100", 1), limit("TP", "2", "110", 2), stop_sell("SL", "95", 3)],
        contingency_type="2",
    )
    lines = [quote, oco, bad, fix(*header("0")), single, bracket]
    plain = [line + b"\n" for line in lines]
    # a log prefix and "|" delimiters: the careful path, line by line
    logged = [b"IN " + line.replace(SOH, b"|") + b"\n" for line in lines]
    for batch in (
        decode_lines(plain, "file:day.fix", 20, "decode_fix", 42),
        decode_lines(logged, "file:day.fix", 20, "decode_fix", 42),
    ):
        assert [type(event) for event in batch.events] == [
            MarketDataIncrement,
            OrderList,
            OrderRequest,
            OrderList,
        ]
        _, first, _, second = batch.events
        assert (first.list_id, first.source, second.source) == (
            "L-1",
            "file:day.fix:21",
            "file:day.fix:25",
        )
        assert [order.cl_ord_id for order in second.orders] == ["E", "TP", "SL"]
        [letter] = batch.dead_letters
        assert (letter.source, letter.error, letter.tag, letter.reason, letter.ts_init) == (
            "file:day.fix:22",
            "FieldError",
            38,
            "NoOrders(73) entry 2: OrderQty(38) was '1e2', not a number",
            42,
        )
        assert (batch.admin, batch.messages) == (1, 6)


def test_decode_lines_order_list_takes_the_chunk_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [order_list_factory([stop_sell(f"S-{n}", "180", 1)]) + b"\n" for n in range(20)]
    assert tokenize_chunk(lines) is not None
    expected = fix_parse._decode_lines_careful(lines, "c", 1, "decode_fix", 0, None)
    calls: list = []
    monkeypatch.setattr(fix_parse, "_decode_lines_careful", lambda *args: calls.append(args))
    batch = decode_lines(lines, "c", 1)
    assert calls == []
    assert batch.events == expected.events
    assert len(batch.events) == 20


def test_decode_lines_order_list_refused_whole_when_a_symbol_is_not_configured() -> None:
    raw = order_list_factory([stop_sell("S-1", "180", 1), stop_sell("S-2", "410", 2, "TSLA")])
    for instruments, kept in ((frozenset(["AAPL", "TSLA"]), 1), (frozenset(["AAPL"]), 0)):
        batch = decode_lines([raw + b"\n"], "f", 1, instruments=instruments)
        careful = fix_parse._decode_lines_careful(
            [raw + b"\n"], "f", 1, "decode_fix", 0, instruments
        )
        assert (batch.events, batch.dead_letters) == (careful.events, careful.dead_letters)
        assert len(batch.events) == kept
        assert [letter.tag for letter in batch.dead_letters] == [55] * (1 - kept)
    [letter] = decode_lines([raw + b"\n"], "f", 1, instruments=frozenset(["AAPL"])).dead_letters
    assert letter.reason == "Symbol(55) 'TSLA' is not in the configured instrument list"


def _simplefix_entries(raw: bytes) -> tuple[simplefix.FixMessage, list[dict[bytes, bytes]]]:
    """The reference split: simplefix parses, each ClOrdID (11) opens an entry.

    Returns the message and one {tag: value} per entry, entries[0] being the message level.
    """
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    message = parser.get_message()
    entries: list[dict[bytes, bytes]] = [{}]
    for tag, value in message.pairs:
        if tag == b"11":
            entries.append({})
        entries[-1].setdefault(tag, value)
    return message, entries


def _random_list(rng: random.Random) -> bytes:
    entries = []
    for seq in range(1, rng.randint(1, 4) + 1):
        entry = [(11, f"C{seq}-{rng.randint(0, 999)}"), (67, seq),
                 (55, rng.choice(["AAPL", "MSFT"])), (54, rng.choice("12")),
                 (38, rng.choice(["1", "100", "2.5"])), (40, rng.choice("1234"))]  # fmt: skip
        if rng.random() < 0.6:
            entry.append((44, f"{rng.uniform(1, 500):.{rng.randint(0, 4)}f}"))
        if rng.random() < 0.5:
            entry.append((99, f"{rng.uniform(1, 500):.2f}"))
        if rng.random() < 0.4:
            entry.append((59, rng.choice("016")))
        if rng.random() < 0.3:
            entry.append((1, rng.choice(["A1", "A2"])))
        if rng.random() < 0.05:
            entry = _replaced(entry, 38, rng.choice(["x", "0", "-1"]))
        entries.append(entry)
    if rng.random() < 0.5:
        rng.shuffle(entries)
    return order_list_factory(
        entries,
        list_id=f"L{rng.randint(0, 99)}",
        contingency_type=rng.choice(["1", "2", None, "3"] if rng.random() < 0.1 else ["1", "2"]),
        count=len(entries) + (rng.random() < 0.05),
        head=((1, "ACC"),) if rng.random() < 0.3 else (),
    )


def test_parse_order_list_agrees_with_simplefix() -> None:
    rng = random.Random(73)
    raws = [_random_list(rng) for _ in range(300)]
    parsed = 0
    for raw in raws:
        message, (head, *entries) = _simplefix_entries(raw)
        try:
            orders = parse_order_list(decode(raw), raw=raw)
        except FieldError:
            continue
        parsed += 1
        assert message.message_type == b"E"
        assert orders.list_id.encode() == message.get(66) == head[b"66"]
        assert int(message.get(73)) == len(orders.orders) == len(entries)
        assert (orders.contingency_type or "").encode() == (message.get(1385) or b"")
        by_seq = sorted(entries, key=lambda entry: int(entry[b"67"]))
        for order, entry in zip(orders.orders, by_seq, strict=True):
            assert order.cl_ord_id.encode() == entry[b"11"]
            assert order.symbol.encode() == entry[b"55"]
            assert order.side.encode() == entry[b"54"]
            assert order.order_qty == Decimal(entry[b"38"].decode())
            assert order.ord_type.encode() == entry[b"40"]
            for value, tag in ((order.price, b"44"), (order.stop_px, b"99")):
                assert value == (Decimal(entry[tag].decode()) if tag in entry else None)
            assert (order.time_in_force or "").encode() == entry.get(b"59", b"")
            assert (order.account or "").encode() == entry.get(b"1", head.get(b"1", b""))
    assert 200 < parsed < len(raws)  # some lists are refused, each for one reason
    # and every path gives the same events and dead letters
    lines = [raw + b"\n" for raw in raws]
    fast = decode_lines(lines, "gen", 1)
    careful = fix_parse._decode_lines_careful(lines, "gen", 1, "decode_fix", 0, None)
    assert (fast.events, fast.dead_letters) == (careful.events, careful.dead_letters)
    assert len(fast.events) == parsed
