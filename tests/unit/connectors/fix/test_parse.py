import random
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import simplefix

import connectors.fix.parse.batch as fix_parse
from connectors.fix.codec import decode, tokenize_chunk
from connectors.fix.parse import decode_lines, parse_message
from connectors.fix.timefmt import parse_utc_timestamp
from domain.errors import FieldError
from domain.events import (
    BookDamaged,
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    MdEntry,
    OrderRequest,
)

SOH = b"\x01"
SENT = "20240102-14:30:05.250"
SENT_NS = int(datetime(2024, 1, 2, 14, 30, 5, tzinfo=UTC).timestamp()) * 10**9 + 250_000_000


def fix(*pairs: tuple[int, object], begin: str = "FIX.4.4") -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, begin)
    for tag, value in pairs:
        msg.append_pair(tag, value)
    return msg.encode()


def header(msg_type: str) -> list[tuple[int, object]]:
    return [(35, msg_type), (49, "SIMEX"), (56, "BROKERFLOW"), (34, 7), (52, SENT)]


def parse(raw: bytes) -> list:
    """Parse through both paths and check they agree (order events carry raw and source)."""
    slow = parse_message(decode(raw), source="test:1", raw=raw)
    batch = decode_lines([raw], "test", 1)
    assert batch.dead_letters == []
    assert batch.events == slow
    return slow


def field_error(raw: bytes) -> FieldError:
    with pytest.raises(FieldError) as caught:
        parse_message(decode(raw))
    batch = decode_lines([raw], "test", 1)
    [letter] = batch.dead_letters
    assert (letter.error, letter.reason, letter.tag) == (
        "FieldError",
        caught.value.reason,
        caught.value.tag,
    )
    return caught.value


def test_parse_snapshot_w() -> None:
    raw = fix(
        *header("W"),
        (55, "AAPL"),
        (268, 3),
        (269, 0),
        (270, "189.23"),
        (271, 300),
        (269, 1),
        (270, "189.25"),
        (271, 200),
        (269, "B"),
        (271, 90000),
    )
    [snap] = parse(raw)
    assert snap == MarketDataSnapshot(
        "AAPL",
        SENT_NS,
        (
            MdEntry("0", "0", 189.23, 300.0),
            MdEntry("1", "0", 189.25, 200.0),
            MdEntry("B", "0", None, 90000.0),
        ),
    )


def test_parse_incremental_x_deletes_out_of_order_and_symbols() -> None:
    raw = fix(
        *header("X"),
        (268, 4),
        (279, 2),
        (269, 1),
        (278, "O1"),
        (55, "MSFT"),
        (270, "410.5"),
        (279, 0),
        (269, 0),
        (55, "AAPL"),
        (270, "189.2"),
        (271, 100),
        (279, 1),
        (269, 1),
        (55, "MSFT"),
        (270, "410.4"),
        (271, 5),
        (279, 0),
        (269, 2),  # no 55: inherited from the previous entry (MSFT)
        (270, "410.45"),
        (271, 7),
    )
    events = parse(raw)
    assert [event.symbol for event in events] == ["MSFT", "AAPL"]
    msft, aapl = events
    assert isinstance(msft, MarketDataIncrement)
    assert msft.entries == (
        MdEntry("1", "2", 410.5, None, "O1"),
        MdEntry("1", "1", 410.4, 5.0),
        MdEntry("2", "0", 410.45, 7.0),
    )
    assert aapl.entries == (MdEntry("0", "0", 189.2, 100.0),)
    assert msft.ts_event == aapl.ts_event == SENT_NS


def test_parse_incremental_symbol_inherited_binance_style_and_269_before_279() -> None:
    raw = fix(
        *header("X"),
        (268, 3),
        (279, 0),
        (269, 2),
        (270, "10"),
        (55, "BNBBUSD"),
        (279, 0),
        (269, 2),
        (270, "11"),
        # an entry opened by 269 alone (no 279): action defaults to new
        (269, 2),
        (270, "12"),
    )
    [event] = parse(raw)
    assert event.symbol == "BNBBUSD"
    assert [(e.action, e.price) for e in event.entries] == [("0", 10.0), ("0", 11.0), ("0", 12.0)]


def test_parse_incremental_message_level_symbol() -> None:
    raw = fix(*header("X"), (55, "BTC/USD"), (268, 1), (279, 2), (269, 1), (278, "O3"))
    [event] = parse(raw)
    assert event.symbol == "BTC/USD"
    assert event.entries == (MdEntry("1", "2", None, None, "O3"),)


def test_parse_incremental_no_entries_gives_nothing() -> None:
    assert parse(fix(*header("X"), (268, 0))) == []


def test_parse_event_time_transact_time_first() -> None:
    entry = [(268, 1), (269, 0), (270, 1), (273, "13:42:27.208")]
    [event] = parse(fix(*header("W"), (55, "X"), (60, "20240102-01:02:03.500"), *entry))
    day = int(datetime(2024, 1, 2, tzinfo=UTC).timestamp()) * 10**9
    assert event.ts_event == day + 3723 * 10**9 + 500_000_000
    # 273 on the date of 52
    [event] = parse(fix(*header("W"), (55, "X"), *entry))
    assert event.ts_event == day + (13 * 3600 + 42 * 60 + 27) * 10**9 + 208_000_000
    # 273 on its own 272
    [event] = parse(fix(*header("W"), (55, "X"), *entry, (272, "20080724")))
    day_272 = int(datetime(2008, 7, 24, tzinfo=UTC).timestamp()) * 10**9
    assert event.ts_event == day_272 + (13 * 3600 + 42 * 60 + 27) * 10**9 + 208_000_000
    # in-group 60 (Binance) when there is no 273
    [event] = parse(
        fix(*header("X"), (268, 1), (269, 2), (55, "B"), (270, 1), (60, "20240102-00:00:01.000"))
    )
    assert event.ts_event == day + 10**9
    # else 52
    [event] = parse(fix(*header("X"), (268, 1), (269, 2), (55, "B"), (270, 1)))
    assert event.ts_event == SENT_NS


def test_parse_entry_time_just_before_midnight_sent_after() -> None:
    raw = fix(
        (35, "X"),
        (52, "20240102-00:00:00.100"),
        (268, 1),
        (269, 0),
        (55, "A"),
        (273, "23:59:59.900"),
    )
    [event] = parse(raw)
    before_midnight = int(datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC).timestamp()) * 10**9
    assert event.ts_event == before_midnight + 900_000_000


@pytest.mark.parametrize(
    ("pairs", "tag", "reason"),
    [
        ([(35, "W"), (52, SENT), (268, 1), (269, 0)], 55, "Symbol(55) missing"),
        ([(35, "X"), (52, SENT), (268, 1), (269, 0)], 55, "Symbol(55) missing"),
        (
            [(35, "W"), (52, SENT), (55, "A"), (268, 1), (269, 0), (270, "abc")],
            270,
            "MDEntryPx(270) was 'abc', not a number",
        ),
        (
            [(35, "W"), (52, SENT), (55, "A"), (268, 1), (269, 0), (271, "nan")],
            271,
            "MDEntrySize(271) was 'nan', not a number",
        ),
        (
            [(35, "X"), (52, SENT), (55, "A"), (268, 3), (269, 0), (269, 1)],
            268,
            "NoMDEntries(268) was 3, found 2 entries",
        ),
        ([(35, "X"), (52, SENT), (55, "A"), (269, 0)], 268, "NoMDEntries(268) missing"),
        (
            [(35, "X"), (52, SENT), (55, "A"), (268, 1), (279, 0), (270, 1)],
            269,
            "MDEntryType(269) missing in a NoMDEntries(268) entry",
        ),
        (
            [(35, "W"), (55, "A"), (268, 1), (269, 0)],
            52,
            "SendingTime(52) missing, and no TransactTime(60) or MDEntryTime(273)",
        ),
        (
            [(35, "W"), (52, "20110909"), (55, "A"), (268, 1), (269, 0)],
            52,
            "SendingTime(52) was '20110909', not a UTCTimestamp",
        ),
        (
            [(35, "W"), (52, SENT), (55, "A"), (268, 1), (269, 0), (273, "7:30")],
            273,
            "MDEntryTime(273) was '7:30', not a UTCTimeOnly",
        ),
        ([(35, "AE"), (52, SENT)], 35, "MsgType(35)=AE not supported"),
        ([(35, "E"), (52, SENT)], 66, "ListID(66) missing"),
    ],
)
def test_parse_field_errors(pairs: list, tag: int, reason: str) -> None:
    error = field_error(fix(*pairs))
    assert (error.tag, error.reason) == (tag, reason)


def test_parse_admin_messages_give_no_events() -> None:
    for msg_type in ("0", "1", "2", "3", "4", "5", "A"):
        raw = fix(*header(msg_type))
        assert parse_message(decode(raw)) == []
        batch = decode_lines([raw], "test", 1)
        assert (batch.events, batch.dead_letters, batch.admin, batch.messages) == ([], [], 1, 1)


def test_parse_execution_report_fix44_fill() -> None:
    raw = fix(
        *header("8"),
        (37, "O-1"),
        (11, "C-1"),
        (17, "E-1"),
        (150, "F"),
        (39, "1"),
        (1, "ACC1"),
        (55, "AAPL"),
        (54, "1"),
        (38, "100"),
        (40, "2"),
        (44, "189.50"),
        (32, "40"),
        (31, "189.45"),
        (14, "40"),
        (151, "60"),
        (6, "189.45"),
        (60, "20240102-14:30:05.000"),
        (880, "M-9"),
        (43, "Y"),
    )
    [report] = parse(raw)
    assert isinstance(report, ExecutionReport)
    assert (report.exec_type, report.last_qty, report.last_px, report.leaves_qty) == (
        "F",
        Decimal(40),
        Decimal("189.45"),
        Decimal(60),
    )
    assert (report.trd_match_id, report.poss_dup, report.price) == ("M-9", True, Decimal("189.50"))
    assert report.ts_event == SENT_NS - 250_000_000


@pytest.mark.parametrize(
    ("begin", "extra", "exec_type"),
    [
        ("FIX.4.2", [(150, "2"), (39, "2"), (32, "10"), (31, "5")], "F"),
        ("FIX.4.2", [(150, "1"), (39, "1"), (32, "10"), (31, "5")], "F"),
        # QuickFIX/J FIX.4.1 Executor: 150=2 on an ack with LastQty 0 -> from OrdStatus
        ("FIX.4.1", [(150, "2"), (39, "0"), (32, "0"), (31, "0")], "0"),
        # FIX 4.0: no 150 at all
        ("FIX.4.0", [(20, "0"), (39, "2"), (32, "10"), (31, "5")], "F"),
        ("FIX.4.0", [(20, "0"), (39, "4")], "4"),
        ("FIX.4.0", [(20, "1"), (39, "2"), (32, "10"), (31, "5")], "H"),
    ],
)
def test_parse_execution_report_exec_type_normalised(
    begin: str, extra: list, exec_type: str
) -> None:
    base = [(35, "8"), (52, SENT), (37, "O"), (17, "E"), (55, "A"), (54, "1"), (14, "0")]
    raw = fix(*base, (6, "0"), (151, "0"), *extra, begin=begin)
    [report] = parse(raw)
    assert report.exec_type == exec_type


def test_parse_execution_report_fill_without_last_qty() -> None:
    base = [(35, "8"), (52, SENT), (37, "O"), (17, "E"), (55, "A"), (54, "1"), (14, "5")]
    error = field_error(fix(*base, (6, "1"), (151, "0"), (150, "2"), (39, "2"), (31, "1")))
    assert (error.tag, error.reason) == (32, "LastQty(32) missing")
    error = field_error(fix(*base, (6, "x"), (151, "0"), (150, "0"), (39, "0")))
    assert (error.tag, error.reason) == (6, "AvgPx(6) was 'x', not a number")


def test_parse_order_requests() -> None:
    new = fix(
        *header("D"),
        (11, "C-1"),
        (1, "ACC1"),
        (55, "AAPL"),
        (54, "2"),
        (38, "100"),
        (40, "P"),
        (18, "a"),
        (211, "-0.50"),
        (59, "0"),
        (60, "20240102-14:30:05.250"),
    )
    [order] = parse(new)
    assert isinstance(order, OrderRequest)
    assert (order.msg_type, order.ord_type, order.exec_inst, order.peg_offset_value) == (
        "D",
        "P",
        "a",
        Decimal("-0.50"),
    )
    assert order.ts_event == SENT_NS
    stop = fix(
        *header("G"), (11, "C-2"), (41, "C-1"), (55, "AAPL"), (54, "2"), (40, "4"), (99, 180)
    )
    [order] = parse(stop)
    assert (order.orig_cl_ord_id, order.stop_px, order.ts_event) == ("C-1", Decimal(180), SENT_NS)
    error = field_error(fix(*header("F"), (11, "C-3"), (55, "AAPL"), (54, "1")))
    assert (error.tag, error.reason) == (41, "OrigClOrdID(41) missing")


def test_parse_order_request_cancel_keeps_order_id() -> None:
    """Issue 18: an F or G may carry the venue's OrderID (37); both decode paths keep it."""
    cancel = fix(*header("F"), (11, "Q-1"), (41, "C-1"), (37, "V-9"), (55, "AAPL"), (54, "1"))
    [order] = parse(cancel)
    assert (order.msg_type, order.order_id) == ("F", "V-9")
    batch = decode_lines([cancel + b"\n"], "test", 1)
    careful = fix_parse._decode_lines_careful([cancel + b"\n"], "test", 1, "decode_fix", 0, None)
    assert [e.order_id for e in batch.events] == [e.order_id for e in careful.events] == ["V-9"]
    [new] = parse(fix(*header("D"), (11, "C-1"), (55, "AAPL"), (54, "1"), (38, "10")))
    assert new.order_id is None


def test_decode_lines_mixed_batch() -> None:
    good = fix(*header("X"), (268, 1), (269, 0), (55, "A"), (270, 1), (271, 2))
    bad_checksum = good[: good.rindex(b"10=")] + b"10=000\x01"
    lines = [
        b"# a comment\n",
        b"\n",
        b"2024-01-02 14:30:05 IN " + good.replace(SOH, b"|") + b"\n",
        b"garbage\n",
        bad_checksum + b"\n",
        fix(*header("0")) + b"\n",
        fix(*header("W"), (268, 0)) + b"\n",
    ]
    batch = decode_lines(lines, "file:day.fix", 10, step_id="decode_md", ts_init=42)
    assert batch.messages == 5
    assert batch.admin == 1
    # the damaged 35=X still names its symbol: its book is damaged, in the line's place
    assert [type(event).__name__ for event in batch.events] == [
        "MarketDataIncrement",
        "BookDamaged",
    ]
    assert batch.events[1] == BookDamaged("A", SENT_NS, "dead_letter", batch.dead_letters[1].reason)
    assert batch.lines == [2, 4]
    sources = [(d.source, d.error, d.tag, d.step_id, d.ts_init) for d in batch.dead_letters]
    assert sources == [
        ("file:day.fix:13", "DecodeError", 8, "decode_md", 42),
        ("file:day.fix:14", "DecodeError", 10, "decode_md", 42),
        ("file:day.fix:16", "FieldError", 55, "decode_md", 42),
    ]
    assert batch.dead_letters[0].reason == "no BeginString (8=) on the line"
    assert batch.dead_letters[1].reason.startswith("CheckSum(10) was 000, computed ")
    assert batch.dead_letters[1].raw == bad_checksum


def _random_md(rng: random.Random) -> bytes:
    incremental = rng.random() < 0.7
    pairs: list[tuple[int, object]] = header("X" if incremental else "W")
    if not incremental or rng.random() < 0.3:
        pairs.append((55, rng.choice(["AAPL", "MSFT", "EUR/USD"])))
    if rng.random() < 0.2:
        pairs.append((60, "20240102-14:30:05.123456"))
    rpt_seq = rng.randint(0, 10**6)  # RptSeq (83): the W body's, each X entry's (issue 21)
    if not incremental and rng.random() < 0.4:
        pairs.append((83, rpt_seq if rng.random() < 0.95 else "1x"))
    count = rng.randint(0, 5)
    pairs.append((268, count))
    for index in range(count):
        if incremental and rng.random() < 0.8:
            pairs.append((279, rng.choice("0125")))
        pairs.append((269, rng.choice("0124578BZ")))
        if incremental and (index == 0 or rng.random() < 0.5):
            pairs.append((55, rng.choice(["AAPL", "MSFT"])))
        if rng.random() < 0.9:
            pairs.append((270, f"{rng.uniform(1, 500):.{rng.randint(0, 6)}f}"))
        if rng.random() < 0.8:
            pairs.append((271, rng.randint(1, 10**6)))
        if rng.random() < 0.2:
            pairs.append((278, f"id{index}"))
        if rng.random() < 0.2:
            pairs.append((273, "14:30:05.000"))
        if rng.random() < 0.1:
            pairs.append((5041, rng.randint(1, 10**9)))
        if incremental and rng.random() < 0.5:
            rpt_seq += rng.choice((1, 1, 1, 2))
            pairs.append((83, rpt_seq if rng.random() < 0.97 else rng.choice(("-1", "x", "1.5"))))
    return fix(*pairs)


def test_decode_lines_fast_path_matches_decode_and_parse_message() -> None:
    rng = random.Random(7)
    raws = [_random_md(rng) for _ in range(400)]
    batch = decode_lines(raws, "gen", 1)
    expected_events, expected_errors = [], []
    for line_no, raw in enumerate(raws, 1):
        msg = decode(raw)
        try:
            events = parse_message(msg)
        except FieldError as error:
            expected_errors.append((f"gen:{line_no}", error.reason))
            # the lost update still names its symbols: each one's book is damaged, at the
            # message's TransactTime (60), else its SendingTime (52)
            values = msg.first_values()
            ts = parse_utc_timestamp(values.get(60) or values[52])
            symbols = dict.fromkeys(value.decode() for tag, value in msg.fields if tag == 55)
            expected_events += [BookDamaged(s, ts, "dead_letter", error.reason) for s in symbols]
            continue
        expected_events += events
        if events and type(events[0]) is MarketDataSnapshot and events[0].crossed:
            expected_errors.append((f"gen:{line_no}", "crossed"))
    assert batch.events == expected_events
    reasons = [
        (d.source, "crossed" if " is crossed: " in d.reason or " is locked: " in d.reason
         else d.reason)
        for d in batch.dead_letters
    ]  # fmt: skip
    assert reasons == expected_errors
    assert any(reason == "crossed" for _, reason in expected_errors)
    assert batch.messages == 400


def test_decode_lines_every_truncation_is_a_dead_letter_never_an_exception() -> None:
    raws = [
        fix(*header("X"), (268, 2), (279, 0), (269, 0), (55, "A"), (270, 1), (279, 2), (269, 1)),
        fix(*header("W"), (55, "A"), (268, 1), (269, 0), (270, "1.5"), (271, 100)),
    ]
    for raw in raws:
        pieces = [raw[:cut] for cut in range(1, len(raw) - 1)]
        pieces += [raw[cut:] for cut in range(1, len(raw))]
        batch = decode_lines(pieces, "cut", 1)
        assert len(batch.dead_letters) == batch.messages == len(pieces)
        assert {letter.error for letter in batch.dead_letters} == {"DecodeError"}
        # No event but the damage to A's book, at most once per piece, and only from a piece
        # that still holds the whole Symbol (55) field
        assert {(type(e), e.symbol, e.reason) for e in batch.events} == {
            (BookDamaged, "A", "dead_letter")
        }
        assert len(set(batch.lines)) == len(batch.lines)
        assert all(b"55=A\x01" in pieces[line] for line in batch.lines)
        whole = [
            line
            for line, piece in enumerate(pieces)
            if b"\x0155=A\x01" in piece and (b"\x0135=X\x01" in piece or b"\x0135=W\x01" in piece)
        ]
        assert set(whole) <= set(batch.lines)


def test_decode_lines_body_length_too_large_on_market_data() -> None:
    raw = fix(*header("W"), (55, "A"), (268, 1), (269, 0), (270, "1.5"))
    length = raw.split(SOH)[1]
    too_long = raw.replace(length, b"9=%d" % (int(length[2:]) + 50), 1)
    [letter] = decode_lines([too_long], "x", 1).dead_letters
    assert letter.reason == f"BodyLength(9) was {int(length[2:]) + 50}, counted {int(length[2:])}"


# -- the chunk fast path (tokenize_chunk + market-data plans) against the careful path --------


def _odd_lines() -> list[bytes]:
    """Messages each fast-path check must decline or get exactly right (SOH, no newline)."""
    x = [*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (270, "1.5"), (271, 100)]
    good = fix(*x)
    body_length = good.split(SOH)[1]
    at = good.rindex(b"10=")
    checksum = int(good[at + 3 : at + 6])
    entry = [(269, 0), (55, "A"), (270, 1)]
    return [
        good,
        good[:at] + b"10=%03d\x01" % ((checksum + 1) % 256),  # bad CheckSum
        good.replace(body_length, body_length + b"0", 1),  # BodyLength too large
        good.replace(body_length, b"9=0" + body_length[2:], 1),  # zero padded: careful path
        fix(*header("X"), (268, "01"), (279, 0), *entry),  # 268 with a leading 0
        fix(*header("X"), (268, 2), (279, 0), *entry),  # 268 disagrees
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (270, "-1")),
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (270, "0")),
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (271, "nan")),
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (270, "abc")),
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (270, "1e3")),
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (55, "A"), (271, "1e999")),
        fix(*header("X"), (268, 2), (279, 0), *entry, (279, 1), (269, 1), (270, "-2")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "14:30:05.250")),  # = time of 52
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "14:30:05.249")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "14:30:05")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "14:30:05.250"), (272, "20240101")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "14:30:05.250"), (272, "2024011")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "25:30:05.250")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (273, "7:30")),
        fix(*header("X"), (268, 1), (60, "20240102-14:30:05.1"), (279, 0), *entry),
        fix(*header("X"), (268, 1), (279, 0), *entry, (60, "20240102-14:30:05.100")),
        fix((35, "X"), (52, "20240102-00:00:00.100"), (268, 1), *entry, (273, "23:59:59.900")),
        fix((35, "X"), (52, "20240102-23:59:59.100"), (268, 1), *entry, (273, "00:00:00.900")),
        fix((35, "X"), (52, "2024-0102-14:30:05.250"), (268, 1), *entry, (273, "14:30:05.250")),
        fix((35, "X"), (52, "20241302-14:30:05.250"), (268, 1), *entry, (273, "14:30:05.250")),
        fix((35, "X"), (268, 1), *entry, (273, "14:30:05.250")),  # nothing to date 273
        fix((35, "X"), (268, 1), *entry),  # no time at all
        fix(*header("X"), (268, 1), (279, 0), (269, 0), (270, 1)),  # no Symbol
        fix(*header("X"), (268, 1), (279, 0), (55, "A"), (270, 1)),  # no MDEntryType
        fix(*header("X"), (268, 0)),
        fix(*header("W"), (55, "A"), (268, 0)),
        fix(*header("W"), (268, 1), (269, 0), (270, 1)),
        fix(*header("W"), (55, "A"), (55, "B"), (268, 1), (269, 0), (270, 1), (52, SENT)),
        fix(*header("X"), (268, 1), (279, 0), *entry, (95, 3), (96, "abc")),  # data field
        fix(*header("X"), (268, 1), (279, 0), *entry, (35, "X")),  # header tag repeated
        fix(*header("X"), (268, 1), (279, 0), *entry, (7, "x"), (5041, 7)),
        # RptSeq (83): per entry in 35=X, the body's in 35=W; crossed snapshots (issue 21)
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, 7)),
        fix(
            *header("X"), (268, 2), (279, 0), *entry, (83, 7), (279, 1), (269, 1), (270, 2), (83, 8)
        ),
        fix(*header("X"), (268, 2), (279, 0), *entry, (279, 0), (269, 1), (55, "B"), (83, 3)),
        fix(
            *header("X"),
            (268, 2),
            (279, 0),
            *entry,
            (83, 7),
            (279, 0),
            (269, 1),
            (55, "B"),
            (83, 3),
        ),  # fmt: skip
        fix(
            *header("X"),
            (268, 3),
            (279, 0),
            *entry,
            (83, 7),
            (279, 0),
            (269, 1),
            (55, "B"),
            (83, 3),
            (279, 0),
            (269, 1),
            (55, "A"),
            (270, 3),
            (83, 8),
        ),  # fmt: skip
        fix(
            *header("X"),
            (268, 2),
            (279, 0),
            *entry,
            (83, "x"),
            (279, 0),
            (269, 1),
            (55, "B"),
            (83, 3),
        ),  # fmt: skip
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, 7), (83, 9)),  # the entry's last
        fix(*header("X"), (83, 5), (268, 1), (279, 0), *entry),  # before the group: not read
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, "x")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, "-1")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, "+1")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, "007")),
        fix(*header("X"), (268, 1), (279, 0), *entry, (83, "99999999999999999999")),
        fix(*header("W"), (55, "A"), (83, 12), (268, 2), (269, 0), (270, 1), (269, 1), (270, 2)),
        fix(*header("W"), (55, "A"), (83, "1e3"), (268, 1), (269, 0), (270, 1)),
        fix(*header("W"), (55, "A"), (268, 1), (269, 0), (270, 1), (83, "x")),  # entry's: unread
        fix(*header("W"), (55, "A"), (268, 2), (269, 0), (270, 2), (269, 1), (270, 1)),  # crossed
        fix(*header("W"), (55, "A"), (268, 2), (269, 0), (270, 2), (269, 1), (270, 2)),  # locked
        fix(
            *header("W"),
            (55, "A"),
            (268, 3),
            (269, 0),
            (270, 2),
            (278, "b"),
            (269, 0),
            (270, 1),
            (278, "b"),
            (269, 1),
            (270, "1.5"),
        ),  # fmt: skip
        fix(*header("X"), (268, 1), (279, 0), *entry, (278, "é")),
        fix(*header("X"), (268, 1), (279, "Z"), (269, "Q"), (55, "Ü"), (270, 1)),
        good.replace(b"\x0149=", b"\x01049=", 1),  # tag with a leading 0 (checksum off too)
        good.replace(b"\x0149=", b"\x014x=", 1),
        fix(*header("0")),
        fix(*header("8"), (37, "O"), (17, "E"), (39, "0"), (55, "A"), (54, "1"), (14, 0)),
        fix(*header("D"), (11, "C"), (55, "A"), (54, "1"), (38, 10), (40, "1")),
        fix(*header("AE"), (571, "T")),
        b"2024-01-02 14:30:05 IN " + good,  # log prefix
        b"# " + good,  # a comment that looks like a message
        good.replace(b"8=FIX.4.4", b"8=FIXT.1.1"),  # checksum now off
        fix(*[pair for pair in x if pair[0] != 34], begin="FIX.4.2"),
    ]


def _simulator_lines(count: int) -> list[bytes]:
    from simulator.market import MarketSimulator

    simulator = MarketSimulator(20, seed=3)
    return [message for _, message in simulator.messages(limit=count)]


def _order_flow_lines(count: int) -> list[bytes]:
    """Market data merged with client orders (35=D/F/G) and execution reports (35=8)."""
    from simulator.market import MarketSimulator
    from simulator.orders import OrderFlowSimulator

    simulator = OrderFlowSimulator(MarketSimulator(5, seed=4), accounts=30, orders_per_minute=3000)
    return [message for _, message in simulator.messages(limit=count)]


def _odd_order_lines() -> list[bytes]:
    """Order messages the token path must decline or get exactly right."""
    report = [*header("8"), (37, "O"), (11, "C"), (17, "E"), (150, "F"), (39, "1"), (1, "A1"),
              (55, "A"), (54, "1"), (38, 10), (32, 4), (31, "1.5"), (14, 4), (151, 6),
              (6, "1.5")]  # fmt: skip
    return [
        fix(*report),
        fix(*[pair for pair in report if pair[0] != 17]),  # no ExecID
        fix(*report[:-1], (6, "x")),  # AvgPx not a number
        fix(*report, (95, 2), (96, "ab")),  # data field: careful path
        fix(*report, (35, "8")),  # header tag repeated
        fix(*report).replace(b"\x0155=", b"\x01055=", 1),  # tag with a leading 0
        fix(*header("D"), (11, "C"), (55, "A"), (54, "1"), (38, 10), (40, "2")),  # no Price
        fix(*header("F"), (11, "C2"), (41, "C"), (55, "A"), (54, "1")),
        fix(*header("G"), (11, "C3"), (41, "C"), (55, "A"), (54, "1"), (38, 5), (40, "1")),
    ]


def _undated(events: list) -> list:
    return [replace(e, ts_event=0) if type(e) is BookDamaged else e for e in events]


def _assert_same_as_careful(lines: list[bytes], instruments: frozenset[str] | None) -> None:
    fast = decode_lines(lines, "chunk", 100, "step", 7, instruments)
    careful = fix_parse._decode_lines_careful(lines, "chunk", 100, "step", 7, instruments)
    assert fast.events == careful.events
    assert fast.lines == careful.lines and len(fast.lines) == len(fast.events)
    assert fast.dead_letters == careful.dead_letters
    assert (fast.admin, fast.messages) == (careful.admin, careful.messages)


@pytest.mark.parametrize("instruments", [None, frozenset(["A", "AAPL", "MSFT", "SYM0001"])])
def test_decode_lines_chunk_fast_path_matches_careful_path(
    instruments: frozenset[str] | None,
) -> None:
    rng = random.Random(11)
    messages = (
        _simulator_lines(3_000)
        + [_random_md(rng) for _ in range(2_000)]
        + _odd_lines()
        + _order_flow_lines(3_000)
        + _odd_order_lines()
    )
    rng.shuffle(messages)
    lines = [message + b"\n" for message in messages]
    assert tokenize_chunk(lines) is not None  # the whole chunk took the fast path
    _assert_same_as_careful(lines, instruments)
    # Each event's line: decoded alone, that line gives exactly the events credited to it.
    batch = decode_lines(lines, "chunk", 100, instruments=instruments)
    by_line: dict[int, list] = {}
    for event, index in zip(batch.events, batch.lines, strict=True):
        by_line.setdefault(index, []).append(event)
    assert list(by_line) == sorted(by_line)  # events stay in line order
    for index, events in list(by_line.items())[::7]:
        alone = decode_lines([lines[index]], "chunk", 100 + index, instruments=instruments)
        # (a BookDamaged of a line without a time takes its neighbour's: none when alone)
        assert _undated(alone.events) == _undated(events)
        assert alone.lines == [0] * len(events)
    # and against the message-by-message reference, per line
    for line_no, line in enumerate(lines[:500], 100):
        batch = decode_lines([line], "chunk", line_no)
        careful = fix_parse._decode_lines_careful([line], "chunk", line_no, "decode_fix", 0, None)
        assert (batch.events, batch.dead_letters) == (careful.events, careful.dead_letters)


@pytest.mark.parametrize("make_lines", [_simulator_lines, _order_flow_lines])
def test_decode_lines_chunk_fast_path_parses_simulator_lines_without_careful_path(
    monkeypatch: pytest.MonkeyPatch, make_lines
) -> None:
    lines = [message + b"\n" for message in make_lines(2_000)]
    expected = fix_parse._decode_lines_careful(lines, "sim", 1, "decode_fix", 0, None)
    calls = []
    monkeypatch.setattr(fix_parse, "_decode_lines_careful", lambda *args: calls.append(args))
    batch = decode_lines(lines, "sim", 1)
    assert calls == []
    assert batch.events == expected.events
    assert (batch.dead_letters, batch.messages) == ([], 2_000)


@pytest.mark.parametrize(
    "odd",
    [
        b"8=FIX.4.4|9=5|35=0|10=000|",  # "|" delimiters
        fix(*header("X"), (268, 1), (269, 0), (55, "A"), (270, 1), (58, "a=b")),  # "=" in a value
        b"8=FIX.4.4\x019=5\x0135=0\x0158=\x0110=000\x01",  # empty value
        b"\n",  # blank line
        b"8=FIX.4.4\x0110=0\x01",  # too short to hold a message
    ],
)
def test_decode_lines_chunk_not_plain_takes_careful_path(odd: bytes) -> None:
    lines = [message + b"\n" for message in _simulator_lines(50)]
    lines.insert(20, odd if odd.endswith(b"\n") else odd + b"\n")
    assert tokenize_chunk(lines) is None
    _assert_same_as_careful(lines, None)
    assert decode_lines(lines, "c", 1).messages == 50 + (odd != b"\n")


def test_decode_lines_chunk_last_line_without_newline_takes_careful_path() -> None:
    lines = [message + b"\n" for message in _simulator_lines(10)]
    lines[-1] = lines[-1].rstrip(b"\n")
    assert tokenize_chunk(lines) is None
    _assert_same_as_careful(lines, None)


# -- order events for the ledger: validation, raw and source ---------------------------------


def _er(**tags: object) -> bytes:
    """An execution report: a partial fill of 100 (40 done, 60 open) unless `tags` change it."""
    fields = {37: "O-1", 17: "E-1", 55: "AAPL", 54: "1", 6: "10", 150: "F", 39: "1", 38: "100"}
    fields.update({14: "40", 151: "60", 32: "40", 31: "10"})
    fields.update({int(tag[1:]): value for tag, value in tags.items()})
    pairs = [(tag, value) for tag, value in fields.items() if value is not None]
    return fix(*header("8"), *pairs)


@pytest.mark.parametrize(
    ("tags", "tag", "reason"),
    [
        ({"t17": None}, 17, "ExecID(17) missing"),
        ({"t14": "150", "t151": "0"}, 14, "CumQty(14) was 150, more than OrderQty(38) 100"),
        (
            {"t39": "2", "t14": "100", "t151": "10"},
            151,
            "LeavesQty(151) was 10, expected OrderQty(38) - CumQty(14) = 0",
        ),
        (
            {"t150": "0", "t39": "0", "t14": "0", "t151": "0", "t32": None, "t31": None},
            151,
            "LeavesQty(151) was 0, expected OrderQty(38) - CumQty(14) = 100",
        ),
        (
            {"t150": "4", "t39": "4", "t151": "60", "t32": "0", "t31": "0"},
            151,
            "LeavesQty(151) was 60, expected 0 with OrdStatus(39) 4",
        ),
        ({"t150": "8", "t39": "8", "t14": "0", "t151": "100", "t32": None}, 151, None),
        ({"t150": "C", "t39": "C", "t151": "1", "t32": None}, 151, None),
        ({"t150": "3", "t39": "3", "t151": "1", "t32": None}, 151, None),
        ({"t31": "-10"}, 31, "LastPx(31) was -10, negative"),
        ({"t44": "-1.5"}, 44, "Price(44) was -1.5, negative"),
        ({"t99": "-2"}, 99, "StopPx(99) was -2, negative"),
        ({"t6": "-1"}, 6, "AvgPx(6) was -1, negative"),
        ({"t150": "0", "t39": "0", "t14": "0", "t151": "100", "t32": "-1"}, 32, None),
        ({"t32": "0"}, 32, "LastQty(32) was 0, not positive on a fill (ExecType(150) F)"),
        ({"t31": "0"}, 31, "LastPx(31) was 0, not positive on a fill (ExecType(150) F)"),
    ],
)
def test_parse_execution_report_invalid_quantities_and_prices(
    tags: dict, tag: int, reason: str | None
) -> None:
    raw = _er(**tags)
    error = field_error(raw)
    assert error.tag == tag
    if reason is not None:
        assert error.reason == reason


@pytest.mark.parametrize(
    "tags",
    [
        {},  # the partial fill itself
        {"t39": "2", "t14": "100", "t151": "0"},  # filled
        {"t150": "0", "t39": "0", "t14": "0", "t151": "100", "t32": None, "t31": None},
        {"t150": "4", "t39": "4", "t151": "0", "t32": "0", "t31": "0"},  # canceled after a fill
        {"t150": "5", "t39": "5", "t38": "80", "t151": "40", "t32": None, "t31": None},
        {"t150": "6", "t39": "6", "t151": "7", "t32": None, "t31": None},  # pending: unchecked
        {"t38": None, "t151": "5"},  # no OrderQty: LeavesQty unchecked
        {"t38": "100.00", "t151": "60.0"},  # numerically equal
        {"t44": "0", "t99": "0"},  # zero prices on an execution report are not negative
    ],
)
def test_parse_execution_report_consistent_quantities_accepted(tags: dict) -> None:
    [report] = parse(_er(**tags))
    assert isinstance(report, ExecutionReport)


def test_parse_execution_report_fix41_leaves_qty_unchecked() -> None:
    # QuickFIX/J's FIX.4.1 Executor acks with 151=0 (see the shared session-log sample).
    raw = fix(
        *header("8"),
        (37, "O"),
        (17, "E"),
        (55, "A"),
        (54, "1"),
        (6, "0"),
        (150, "2"),
        (39, "0"),
        (38, 100),
        (14, 0),
        (151, 0),
        (32, 0),
        (31, 0),
        begin="FIX.4.1",
    )
    [report] = parse(raw)
    assert (report.exec_type, report.leaves_qty) == ("0", Decimal(0))


@pytest.mark.parametrize(
    ("pairs", "tag", "reason"),
    [
        ([(38, "0")], 38, "OrderQty(38) was 0, not positive"),
        ([(38, "-5")], 38, "OrderQty(38) was -5, not positive"),
        ([(44, "0")], 44, "Price(44) was 0, not positive"),
        ([(44, "-1.25")], 44, "Price(44) was -1.25, not positive"),
        ([(99, "0")], 99, "StopPx(99) was 0, not positive"),
    ],
)
@pytest.mark.parametrize("msg_type", ["D", "G"])
def test_parse_order_request_invalid(msg_type: str, pairs: list, tag: int, reason: str) -> None:
    base = [*header(msg_type), (11, "C-2"), (41, "C-1"), (55, "AAPL"), (54, "1")]
    error = field_error(fix(*base, *pairs))
    assert (error.tag, error.reason) == (tag, reason)


@pytest.mark.parametrize("msg_type", ["D", "G"])
def test_parse_order_request_side_not_a_fix_value(msg_type: str) -> None:
    raw = fix(*header(msg_type), (11, "C-2"), (41, "C-1"), (55, "AAPL"), (54, "Z"), (38, 1))
    error = field_error(raw)
    assert (error.tag, error.reason) == (54, "Side(54) was 'Z', not a FIX Side value")


def test_parse_order_request_every_fix_side_accepted_and_cancel_unchecked() -> None:
    for side in "123456789ABCDEFGH":
        [order] = parse(fix(*header("D"), (11, "C"), (55, "A"), (54, side), (38, 1), (44, 2)))
        assert order.side == side
    # A cancel (35=F) echoes the order it cancels: its 38/44 are not judged here.
    [cancel] = parse(fix(*header("F"), (11, "C-3"), (41, "C-1"), (55, "A"), (54, "1"), (38, 0)))
    assert cancel.order_qty == Decimal(0)


def test_decode_lines_order_events_carry_raw_as_received_and_source() -> None:
    order = fix(*header("D"), (11, "C-1"), (55, "AAPL"), (54, "1"), (38, 100), (40, "1"))
    report = _er()
    lines = [
        b"2024-01-02 14:30:05 IN " + order.replace(SOH, b"|") + b"\n",
        report + b"\n",
        fix(*header("X"), (268, 1), (269, 0), (55, "A"), (270, 1)) + b"\n",
    ]
    batch = decode_lines(lines, "file:day.fix", 41)
    new, fill, _ = batch.events
    assert (new.raw, new.source) == (order.replace(SOH, b"|"), "file:day.fix:41")
    assert (fill.raw, fill.source) == (report, "file:day.fix:42")
    # the same bytes a dead letter of that line carries
    bad = decode_lines([lines[0].replace(b"|54=1|", b"|54=Z|")], "file:day.fix", 41)
    [letter] = bad.dead_letters
    assert letter.raw == new.raw.replace(b"|54=1|", b"|54=Z|")
    # parse_message leaves them empty unless told
    [plain] = parse_message(decode(report))
    assert (plain.raw, plain.source) == (b"", "")


# -- execution-report plans (35=8 from the chunk tokens): same events and dead letters -------


def _er_without(*drop: int, **tags: object) -> bytes:
    """`_er` without the header or body tags in `drop` (e.g. SendingTime (52))."""
    fields = {37: "O-1", 17: "E-1", 55: "AAPL", 54: "1", 6: "10", 150: "F", 39: "1", 38: "100"}
    fields.update({14: "40", 151: "60", 32: "40", 31: "10"})
    fields.update({int(tag[1:]): value for tag, value in tags.items()})
    pairs = [*header("8"), *((tag, value) for tag, value in fields.items() if value is not None)]
    return fix(*(pair for pair in pairs if pair[0] not in drop))


# Execution reports the plan itself must turn into the same event as the careful path.
_PLANNED_REPORTS = [
    {},
    {"t11": "C-1", "t41": "C-0", "t1": "ACC1", "t40": "2", "t44": "10.5", "t99": "9"},
    {"t150": "1"},  # FIX 4.2 partial fill -> F
    {"t150": "2", "t39": "2", "t14": "100", "t151": "0"},  # FIX 4.2 fill -> F
    {"t150": "2", "t39": "0", "t14": "0", "t151": "100", "t32": "0", "t31": "0"},  # ack, 150=2
    {"t150": "1", "t39": "4", "t151": "0", "t32": "0"},  # 150=1 without a fill: from 39
    {"t150": "2", "t39": "Z", "t14": "0", "t151": "100", "t32": "0", "t31": "0"},  # -> "I"
    {"t150": None, "t20": "1"},  # FIX 4.0 style: ExecTransType -> H
    {"t150": None, "t20": "3", "t32": None, "t31": None},
    {"t150": None, "t20": "0"},  # positive LastQty -> F
    {"t150": None, "t39": "0", "t14": "0", "t151": "100", "t32": None, "t31": None, "t6": None},
    {"t150": None, "t39": "6", "t32": "0", "t31": "0"},
    {"t150": "0", "t39": "0", "t14": "0", "t151": "100", "t32": None, "t31": None, "t6": None},
    {"t150": "4", "t39": "4", "t151": "0", "t32": "0", "t31": "0"},
    {"t150": "5", "t39": "5", "t38": "80", "t151": "40", "t32": None, "t31": None},
    {"t150": "6", "t39": "6", "t151": "7", "t32": None, "t31": None},
    {"t38": None, "t151": "5"},
    {"t38": "100.00", "t151": "60.0", "t14": "40.", "t32": "40.0", "t31": "010"},
    {"t44": "0", "t99": "0", "t6": "-0"},
    {"t12": "1.25", "t13": "3", "t479": "USD"},  # Commission and friends: not read
    {"t880": "T-1", "t19": "E-0", "t58": "partial fill, venue X"},  # TrdMatchID, ExecRefID, Text
    {"t43": "Y", "t97": "Y"},  # PossDupFlag
    {"t43": "N"},
    {"t58": "caf\u00e9"},
    {"t60": "20240102-14:30:06"},  # TransactTime before SendingTime
    {"t60": "20240102-14:30:06.123456789", "t55": "BRK.B"},
]


def _odd_reports() -> list[bytes]:
    """35=8 lines the plan must decline or get exactly right (most are dead letters)."""
    variants: list[dict] = [
        {"t17": None},
        {"t37": None},
        {"t39": None},
        {"t55": None},
        {"t54": None},
        {"t14": None},
        {"t151": None},
        {"t6": None},  # CumQty 40: AvgPx required
        {"t150": "1", "t32": None},
        {"t150": "F", "t32": None},
        {"t150": "F", "t31": None},
        {"t150": None, "t20": "0", "t31": None},
        {"t14": "x"},
        {"t14": "1e3"},
        {"t14": "1_000"},
        {"t38": "NaN"},
        {"t32": "Infinity"},
        {"t31": "+10"},
        {"t6": " 10"},
        {"t151": "\u0661"},
        {"t44": "1.2.3"},
        {"t99": "-"},
        {"t14": "150", "t151": "0"},
        {"t39": "2", "t14": "100", "t151": "10"},
        {"t150": "4", "t39": "4", "t151": "60", "t32": "0", "t31": "0"},
        {"t150": "8", "t39": "8", "t14": "0", "t151": "100", "t32": None},
        {"t150": "C", "t39": "C", "t151": "1", "t32": None},
        {"t31": "-10"},
        {"t44": "-1.5"},
        {"t99": "-2"},
        {"t6": "-1"},
        {"t32": "-1", "t150": "0", "t39": "0", "t14": "0", "t151": "100"},
        {"t32": "0"},
        {"t31": "0"},
        {"t60": "20240102-14:30:6"},
        {"t60": "20241302-14:30:06"},
        {"t60": "20240102-14:30:06.12"},
        # OrderQty - CumQty rounds to 28 digits: 100 - 1e-30 is 100.000...
        {"t14": "0.000000000000000000000000000001", "t151": "99.999999999999999999999999999999"},
    ]
    lines = [_er(**tags) for tags in variants]
    lines += [
        _er_without(52, t60="20240102-14:30:07"),  # no SendingTime: TransactTime dates it
        _er_without(52),  # neither time
        _er_without(52, t60="garbage"),
        _er(t60="20240102-14:30:07").replace(SENT.encode(), b"bad-time"),  # 52 unused
        _er(t14="40").replace(b"\x0114=40\x01", b"\x0114=40\x0114=41\x01"),  # repeated tag
        _er().replace(b"\x0155=AAPL\x01", b"\x0155=AAPL\x0155=MSFT\x01"),
        _er().replace(b"\x0117=E-1\x01", b"\x0117=E-1\x0117=\xff\x01"),
        _er(t58="x").replace(b"\x0158=x\x01", b"\x0158=\xff\xfe\x01"),  # not UTF-8
        _er(t58="x").replace(b"\x0158=x\x01", b"\x0195=1\x0196=x\x01"),  # data field
        _er().replace(b"\x0154=1\x01", b"\x01054=1\x01"),  # leading 0 on a tag
        _er().replace(b"\x0154=1\x01", b"\x0154=1\x0135=8\x01"),  # header tag in the body
        fix(*header("8"), (37, "O"), (17, "E"), (55, "A"), (54, "1"), (6, "0"), (150, "2"),
            (39, "0"), (38, 100), (14, 0), (151, 0), (32, 0), (31, 0), begin="FIX.4.1"),
        fix(*header("8"), (37, "O"), (17, "E"), (55, "A"), (54, "1"), (6, "0"), (150, "0"),
            (39, "0"), (38, 100), (14, 0), (32, 0), (31, 0), begin="FIX.4.0"),
        fix(*header("8"), (37, "O"), (17, "E"), (55, "A"), (54, "1"), (6, "0"), (150, "0"),
            (39, "0"), (38, 100), (14, 0), (151, 100), begin="FIX.4.2"),
    ]  # fmt: skip
    return lines


def _random_reports(rng: random.Random, count: int) -> list[bytes]:
    """Execution reports with fields dropped, repeated or replaced by odd values at random."""
    pool = ["0", "1", "2", "4", "5", "8", "C", "F", "I", "Y", "N", "10", "40", "60", "100",
            "100.0", "-1", "0.5", "x", "1e2", ".5", "7.", "-0", "20240102-14:30:06"]  # fmt: skip
    tags = [17, 37, 39, 55, 54, 14, 151, 6, 38, 32, 31, 150, 20, 44, 99, 11, 41, 1, 40, 60,
            880, 19, 58, 43, 12]  # fmt: skip
    lines = []
    for _ in range(count):
        changes: dict[str, object] = {}
        for _ in range(rng.randint(0, 4)):
            tag = rng.choice(tags)
            changes[f"t{tag}"] = None if rng.random() < 0.3 else rng.choice(pool)
        line = _er(**changes)
        if rng.random() < 0.1:
            line = line.replace(b"\x0139=", b"\x0139=1\x0139=", 1)
        lines.append(line)
    return lines


@pytest.mark.parametrize("instruments", [None, frozenset(["AAPL", "BRK.B"])])
def test_decode_lines_execution_report_plan_matches_careful_path(
    instruments: frozenset[str] | None,
) -> None:
    rng = random.Random(8)
    messages = (
        [_er(**tags) for tags in _PLANNED_REPORTS]
        + _odd_reports()
        + _random_reports(rng, 1_500)
        + _order_flow_lines(500)
    )
    rng.shuffle(messages)
    lines = [message + b"\n" for message in messages]
    assert tokenize_chunk(lines) is not None
    _assert_same_as_careful(lines, instruments)
    for line_no, line in enumerate(lines, 100):  # and one line at a time
        batch = decode_lines([line], "chunk", line_no, "step", 7, instruments)
        careful = fix_parse._decode_lines_careful([line], "chunk", line_no, "step", 7, instruments)
        assert (batch.events, batch.dead_letters) == (careful.events, careful.dead_letters)


@pytest.mark.parametrize("tags", _PLANNED_REPORTS)
def test_decode_lines_execution_report_plan_parses_without_fallback(
    monkeypatch: pytest.MonkeyPatch, tags: dict
) -> None:
    lines = [_er(**tags) + b"\n", _er(**{**tags, "t17": "E-2"}) + b"\n"]
    careful = fix_parse._decode_lines_careful(lines, "chunk", 1, "decode_fix", 0, None)
    assert careful.dead_letters == []
    monkeypatch.setattr(fix_parse, "_parse_tokens", lambda *args: pytest.fail("fell back"))
    batch = decode_lines(lines, "chunk", 1)
    assert batch.events == careful.events
    assert [event.source for event in batch.events] == ["chunk:1", "chunk:2"]
    assert [event.raw for event in batch.events] == [line[:-1] for line in lines]


def test_decode_lines_execution_report_plan_normalises_like_parse_message() -> None:
    [fill] = parse(_er(t150="2", t39="2", t14="100", t151="0", t43="Y", t880="T-9", t12="1.5"))
    assert (fill.exec_type, fill.poss_dup, fill.trd_match_id) == ("F", True, "T-9")
    [ack] = parse(_er(t150="2", t39="0", t14="0", t151="100", t32="0", t31="0"))
    assert (ack.exec_type, ack.last_qty, ack.avg_px) == ("0", Decimal(0), Decimal(10))


def test_decode_lines_names_each_line_by_the_numbers_given() -> None:
    # A Kafka partition's messages carry sparse sequence numbers: dead letters and order
    # events name them, the fast path and the careful path alike.
    rng = random.Random(5)
    messages = _order_flow_lines(300) + _odd_lines() + _odd_order_lines()
    rng.shuffle(messages)
    lines = [message + b"\n" for message in messages]
    numbers = [10_000 + 7 * i for i in range(len(lines))]
    by_index = decode_lines(lines, "kafka:fix", 0)
    for batch in (
        decode_lines(lines, "kafka:fix", numbers),
        fix_parse._decode_lines_careful(lines, "kafka:fix", numbers, "decode_fix", 0, None),
    ):
        assert [d.source for d in batch.dead_letters] == [
            f"kafka:fix:{numbers[int(d.source.rsplit(':', 1)[1])]}" for d in by_index.dead_letters
        ]
        sources = [getattr(e, "source", None) for e in batch.events]
        assert sources == [
            None if s is None else f"kafka:fix:{numbers[int(s.rsplit(':', 1)[1])]}"
            for s in (getattr(e, "source", None) for e in by_index.events)
        ]
        assert any(sources) and batch.dead_letters
