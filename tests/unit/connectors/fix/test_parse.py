"""Single messages through `parse_message` and `decode_lines`: market data, execution reports,
order requests."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

import connectors.fix.parse.batch as fix_parse
from connectors.fix.codec import decode
from connectors.fix.parse import decode_lines, parse_message
from domain.events import (
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    MdEntry,
    OrderRequest,
)
from tests.unit.connectors.fix.parse_cases import SENT, SENT_NS, field_error, fix, header, parse


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
