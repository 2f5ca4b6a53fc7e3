"""Execution reports (35=8): quantity and price checks, order-request checks, and the
execution-report plans against the careful path."""

import random
from decimal import Decimal

import pytest

import connectors.fix.parse.batch as fix_parse
from connectors.fix.codec import decode, tokenize_chunk
from connectors.fix.parse import decode_lines, parse_message
from domain.events import ExecutionReport
from tests.unit.connectors.fix.parse_cases import (
    _PLANNED_REPORTS,
    SOH,
    _assert_same_as_careful,
    _er,
    _odd_lines,
    _odd_order_lines,
    _odd_reports,
    _order_flow_lines,
    _random_reports,
    field_error,
    fix,
    header,
    parse,
)


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
