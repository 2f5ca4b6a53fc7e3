"""`decode_lines` on batches: mixed batches, the market-data fast path and the chunk fast path
against the careful path, truncations and framing."""

import random

import pytest

import connectors.fix.parse.batch as fix_parse
from connectors.fix.codec import decode, tokenize_chunk
from connectors.fix.parse import decode_lines, parse_message
from connectors.fix.timefmt import parse_utc_timestamp
from domain.errors import FieldError
from domain.events import (
    BookDamaged,
    MarketDataSnapshot,
)
from tests.unit.connectors.fix.parse_cases import (
    SENT_NS,
    SOH,
    _assert_same_as_careful,
    _odd_lines,
    _odd_order_lines,
    _order_flow_lines,
    _simulator_lines,
    _undated,
    fix,
    header,
)


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
