"""Builders of FIX lines shared by the decoder tests (test_parse*.py): messages, odd lines the
fast paths must decline, simulated flows, and the comparison with the careful path."""

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import simplefix

import connectors.fix.parse.batch as fix_parse
from connectors.fix.codec import decode
from connectors.fix.parse import decode_lines, parse_message
from domain.errors import FieldError
from domain.events import (
    BookDamaged,
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


def _er(**tags: object) -> bytes:
    """An execution report: a partial fill of 100 (40 done, 60 open) unless `tags` change it."""
    fields = {37: "O-1", 17: "E-1", 55: "AAPL", 54: "1", 6: "10", 150: "F", 39: "1", 38: "100"}
    fields.update({14: "40", 151: "60", 32: "40", 31: "10"})
    fields.update({int(tag[1:]): value for tag, value in tags.items()})
    pairs = [(tag, value) for tag, value in fields.items() if value is not None]
    return fix(*header("8"), *pairs)


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
