"""Issue 21 in the decoder: RptSeq (83), crossed snapshots, and the books a dead letter damages.

Each test writes a FIX log file and decodes its lines as the file source hands them over
(`decode_lines`), and checks the chunk fast path against the careful path.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest

import connectors.fix.parse.batch as fix_parse
from connectors.fix.parse import DecodedBatch, decode_lines
from domain.events import BookDamaged, MarketDataIncrement, MarketDataSnapshot, MdEntry

SOH = b"\x01"
T0 = datetime(2026, 11, 25, 14, 30, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 10**9


def ns(ms: int) -> int:
    return T0_NS + ms * 1_000_000


def stamp(ms: int) -> str:
    return f"20261125-14:30:{ms // 1000:02d}.{ms % 1000:03d}"


def fix(*pairs: tuple[int, object]) -> bytes:
    body = b"".join(b"%d=%s\x01" % (tag, str(value).encode()) for tag, value in pairs)
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


def header(msg_type: str, seq: int, ms: int) -> list[tuple[int, object]]:
    return [(35, msg_type), (49, "VENUE"), (56, "BROKER"), (34, seq), (52, stamp(ms))]


def quote(symbol: str | None, side: int, px: str, rpt: int | None, action: int = 0) -> list:
    entry: list[tuple[int, object]] = [(279, action), (269, side)]
    if symbol is not None:
        entry.append((55, symbol))
    entry += [(270, px), (271, 100)]
    if rpt is not None:
        entry.append((83, rpt))
    return entry


def snapshot(seq: int, ms: int, symbol: str, bid: str, ask: str, rpt: int | None) -> bytes:
    body = [*header("W", seq, ms), (55, symbol)]
    if rpt is not None:
        body.append((83, rpt))
    body += [(268, 2), (269, 0), (270, bid), (271, 300), (269, 1), (270, ask), (271, 200)]
    return fix(*body)


def write_log(tmp_path: Path, messages: list[bytes]) -> list[bytes]:
    """The messages as a log file, read back as the file source reads it."""
    path = tmp_path / "day.fix"
    path.write_bytes(b"".join(message + b"\n" for message in messages))
    with path.open("rb") as fh:
        return fh.readlines()


def decode(lines: list[bytes], instruments: frozenset[str] | None = None) -> DecodedBatch:
    """`decode_lines`, checked against the careful path (same events, lines, dead letters)."""
    batch = decode_lines(lines, "file:day.fix", 1, "decode_fix", 42, instruments)
    careful = fix_parse._decode_lines_careful(
        lines, "file:day.fix", 1, "decode_fix", 42, instruments
    )
    assert (batch.events, batch.lines, batch.dead_letters) == (
        careful.events,
        careful.lines,
        careful.dead_letters,
    )
    return batch


def test_rpt_seq_per_symbol_on_x_and_on_the_w_body(tmp_path: Path) -> None:
    lines = write_log(
        tmp_path,
        [
            snapshot(1, 0, "IBM", "101.10", "101.20", rpt=40),
            # IBM 41, MSFT 7 and 8, IBM 42: each symbol's first and last
            fix(
                *header("X", 2, 100),
                (268, 4),
                *quote("IBM", 0, "101.11", 41),
                *quote("MSFT", 1, "410.50", 7),
                *quote(None, 1, "410.49", 8),  # inherits MSFT
                *quote("IBM", 1, "101.19", 42),
            ),
            fix(*header("X", 3, 200), (268, 1), *quote("IBM", 0, "101.12", None)),
        ],
    )
    batch = decode(lines)
    assert batch.dead_letters == []
    w, ibm, msft, ibm_plain = batch.events
    assert type(w) is MarketDataSnapshot and (w.rpt_seq, w.crossed) == (40, False)
    assert (ibm.symbol, ibm.rpt_seq) == ("IBM", (41, 42))
    assert ibm.entries == (
        MdEntry("0", "0", 101.11, 100.0),
        MdEntry("1", "0", 101.19, 100.0),
    )
    assert (msft.symbol, msft.rpt_seq) == ("MSFT", (7, 8))
    assert (ibm_plain.symbol, ibm_plain.rpt_seq) == ("IBM", None)
    assert batch.lines == [0, 1, 1, 2]


def test_the_fast_path_parses_rpt_seq_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    messages = [snapshot(1, 0, "IBM", "101.10", "101.20", rpt=5)]
    messages += [
        fix(*header("X", n, n * 10), (268, 1), *quote("IBM", n % 2, "101.1%d" % (n % 10), n + 5))
        for n in range(2, 60)
    ]
    lines = write_log(tmp_path, messages)
    expected = fix_parse._decode_lines_careful(lines, "file:day.fix", 1, "decode_fix", 42, None)
    monkeypatch.setattr(fix_parse, "_careful_lines", lambda *args: pytest.fail("careful path"))
    batch = decode_lines(lines, "file:day.fix", 1, "decode_fix", 42)
    assert batch.events == expected.events
    assert [event.rpt_seq for event in batch.events] == [5] + [(n + 5, n + 5) for n in range(2, 60)]


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ((83, "x1"), "RptSeq(83) was 'x1', not a sequence number"),
        ((83, "-3"), "RptSeq(83) was '-3', not a sequence number"),
        ((83, "+3"), "RptSeq(83) was '+3', not a sequence number"),
        ((83, "1.0"), "RptSeq(83) was '1.0', not a sequence number"),
    ],
)
def test_a_bad_rpt_seq_is_a_dead_letter_and_damages_the_book(
    tmp_path: Path, field: tuple[int, object], reason: str
) -> None:
    good = fix(*header("X", 2, 100), (268, 1), *quote("IBM", 0, "101.11", 41))
    bad = fix(*header("X", 3, 200), (268, 1), *quote("IBM", 0, "101.12", None), field)
    batch = decode(write_log(tmp_path, [good, bad]))
    [letter] = batch.dead_letters
    assert (letter.source, letter.reason, letter.tag) == ("file:day.fix:2", reason, 83)
    assert batch.events[1] == BookDamaged("IBM", ns(200), "dead_letter", reason)


def test_a_crossed_snapshot_is_flagged_kept_and_named_in_a_dead_letter(tmp_path: Path) -> None:
    lines = write_log(
        tmp_path,
        [
            snapshot(1, 0, "IBM", "101.5", "101.2", rpt=9),
            snapshot(2, 10, "MSFT", "410.5", "410.5", rpt=None),  # locked
            snapshot(3, 20, "AAPL", "189.2", "189.3", rpt=None),  # sound
        ],
    )
    batch = decode(lines)
    ibm, msft, aapl = batch.events
    assert (ibm.symbol, ibm.crossed, ibm.rpt_seq) == ("IBM", True, 9)
    assert ibm.entries[0].price == 101.5 and ibm.entries[1].price == 101.2
    assert (msft.crossed, aapl.crossed) == (True, False)
    assert [(d.source, d.reason, d.raw) for d in batch.dead_letters] == [
        ("file:day.fix:1", "35=W of IBM is crossed: bid 101.5 >= ask 101.2", lines[0][:-1]),
        ("file:day.fix:2", "35=W of MSFT is locked: bid 410.5 >= ask 410.5", lines[1][:-1]),
    ]
    # a symbol outside the instrument list: that dead letter only
    batch = decode(lines, frozenset(["MSFT", "AAPL"]))
    assert [e.symbol for e in batch.events] == ["MSFT", "AAPL"]
    assert [d.reason for d in batch.dead_letters] == [
        "Symbol(55) 'IBM' is not in the configured instrument list",
        "35=W of MSFT is locked: bid 410.5 >= ask 410.5",
    ]


def test_a_snapshot_crossed_only_through_levels_replaced_by_entry_id(tmp_path: Path) -> None:
    # bid 101.5 (id B1) is replaced by 101.0 with the same MDEntryID: the book's best bid is
    # 101.0 < ask 101.2, not crossed
    body = [*header("W", 1, 0), (55, "IBM"), (268, 3), (269, 0), (270, "101.5"), (278, "B1")]
    body += [(269, 0), (270, "101.0"), (278, "B1"), (269, 1), (270, "101.2"), (278, "A1")]
    batch = decode(write_log(tmp_path, [fix(*body)]))
    assert batch.events[0].crossed is False and batch.dead_letters == []


def flip_bit(message: bytes, find: bytes) -> bytes:
    """`message` with the low bit of the first byte of `find` flipped (the checksum then fails)."""
    at = message.index(find)
    return message[:at] + bytes([message[at] ^ 1]) + message[at + 1 :]


def test_a_damaged_x_that_names_its_symbols_damages_their_books_in_place(tmp_path: Path) -> None:
    two = fix(
        *header("X", 3, 200),
        (60, stamp(150)),
        (268, 2),
        *quote("IBM", 0, "101.12", 43),
        *quote("MSFT", 1, "410.40", 9),
    )
    cut = fix(
        *header("X", 5, 400),
        (268, 2),
        *quote("AAPL", 0, "189.20", 3),
        *quote("MSFT", 1, "1", 1, action=1),
    )
    messages = [
        fix(*header("X", 2, 100), (268, 1), *quote("IBM", 0, "101.11", 42)),
        flip_bit(two, b"101.12"),  # 101.12 -> 001.12: a bit flipped in a price
        fix(*header("X", 4, 300), (268, 1), *quote("IBM", 0, "101.13", 44)),
        cut[: cut.index(b"\x01279=1")],  # truncated after AAPL's entry
        fix(*header("X", 6, 500), (268, 1), *quote("AAPL", 0, "189.21", 4)),
    ]
    batch = decode(write_log(tmp_path, messages))
    flipped, truncated = batch.dead_letters
    assert (flipped.source, flipped.error, flipped.tag) == ("file:day.fix:2", "DecodeError", 10)
    assert flipped.reason.startswith("CheckSum(10) was ")
    assert (truncated.source, truncated.reason) == ("file:day.fix:4", "CheckSum(10) missing")
    assert [(type(e).__name__, e.symbol) for e in batch.events] == [
        ("MarketDataIncrement", "IBM"),
        ("BookDamaged", "IBM"),
        ("BookDamaged", "MSFT"),
        ("MarketDataIncrement", "IBM"),
        ("BookDamaged", "AAPL"),
        ("MarketDataIncrement", "AAPL"),
    ]
    assert batch.lines == [0, 1, 1, 2, 3, 4]
    # the message's TransactTime (60) when it has one, else its SendingTime (52)
    assert batch.events[1] == BookDamaged("IBM", ns(150), "dead_letter", flipped.reason)
    assert batch.events[2] == BookDamaged("MSFT", ns(150), "dead_letter", flipped.reason)
    assert batch.events[4] == BookDamaged("AAPL", ns(400), "dead_letter", "CheckSum(10) missing")


def test_a_dead_letter_without_a_readable_symbol_damages_no_book(tmp_path: Path) -> None:
    x = fix(*header("X", 2, 100), (268, 1), *quote("IBM", 0, "101.11", 42))
    report = fix(*header("8", 3, 200), (37, "O1"), (17, "E1"), (39, "0"), (55, "IBM"), (54, "1"))
    messages = [
        flip_bit(x, b"55=IBM"),  # 55 -> 45: no Symbol left
        x[: x.index(b"55=IBM") + 5],  # cut inside the symbol: "IB" is not a symbol
        b"garbage with no fields",
        report[:-4] + b"000\x01",  # not market data: no book
    ]
    batch = decode(write_log(tmp_path, messages))
    assert batch.events == []
    assert [d.source for d in batch.dead_letters] == [f"file:day.fix:{n}" for n in (1, 2, 3, 4)]


def test_a_damaged_line_without_a_time_takes_its_neighbours(tmp_path: Path) -> None:
    x = fix(*header("X", 2, 100), (268, 1), *quote("IBM", 0, "101.11", 42))
    # a bit flipped in SendingTime (52): neither the message nor its time can be trusted
    no_time = flip_bit(x, b"-14:30")
    later = fix(*header("X", 3, 700), (268, 1), *quote("MSFT", 0, "410.1", 1))
    # after an event: the previous event's time
    batch = decode(write_log(tmp_path, [x, no_time]))
    reason = batch.dead_letters[0].reason
    assert batch.events[1] == BookDamaged("IBM", ns(100), "dead_letter", reason)
    # first in the batch: the next event's time
    batch = decode(write_log(tmp_path, [no_time, later]))
    assert batch.events[0] == BookDamaged("IBM", ns(700), "dead_letter", reason)
    # alone: the time the batch was decoded (ts_init)
    batch = decode(write_log(tmp_path, [no_time]))
    assert batch.events == [BookDamaged("IBM", 42, "dead_letter", reason)]


def test_a_damaged_line_whose_time_is_far_from_the_stream_takes_its_neighbours(
    tmp_path: Path,
) -> None:
    x = fix(*header("X", 2, 100), (268, 1), *quote("IBM", 0, "101.11", 42))
    late = fix(*header("X", 3, 59_000), (268, 1), *quote("IBM", 0, "101.12", 43))
    # a flipped bit in the date that still parses: 20261125 -> 20261124, a day early
    day_early = flip_bit(late, b"5-14:30:59")
    # a damaged line within a minute of the stream keeps its own time
    batch = decode(write_log(tmp_path, [x, day_early, late[:-4] + b"000\x01"]))
    damage = [event.ts_event for event in batch.events if type(event) is BookDamaged]
    assert damage == [ns(100), ns(59_000)]
    # alone in its batch there is nothing to compare with: its own time
    [alone] = decode(write_log(tmp_path, [day_early])).events
    assert alone.ts_event == ns(59_000) - 86_400 * 10**9


def test_a_damaged_line_of_a_symbol_not_configured_damages_no_book(tmp_path: Path) -> None:
    x = fix(
        *header("X", 2, 100), (268, 2), *quote("IBM", 0, "101.11", 42), *quote("ZZZ", 0, "5", 1)
    )
    batch = decode(write_log(tmp_path, [x[:-4] + b"000\x01"]), frozenset(["IBM"]))
    assert [(type(e), e.symbol) for e in batch.events] == [(BookDamaged, "IBM")]
    assert len(batch.dead_letters) == 1  # the checksum; no "not configured" letter for ZZZ


def test_pipe_delimited_damaged_line_names_its_symbol(tmp_path: Path) -> None:
    x = fix(*header("X", 2, 100), (268, 1), *quote("IBM", 0, "101.11", 42))
    line = x.replace(SOH, b"|")[:-8]  # "|" delimiters, checksum cut off
    batch = decode(write_log(tmp_path, [line]))
    assert batch.events == [BookDamaged("IBM", ns(100), "dead_letter", "CheckSum(10) missing")]
    assert isinstance(decode(write_log(tmp_path, [x])).events[0], MarketDataIncrement)
