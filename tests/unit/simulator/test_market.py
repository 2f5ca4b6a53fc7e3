"""Tests of the market-data simulator: wire validity, determinism, book invariants, burst shape.

The checks parse the file themselves (no project codec) so the simulator is judged independently.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator.market import DEFAULT_START_NS, MarketSimulator, symbol_names

SOH = b"\x01"
STAMP = re.compile(rb"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{3}$")
TIME_ONLY = re.compile(rb"^\d{2}:\d{2}:\d{2}\.\d{3}$")
PRICE = re.compile(rb"^\d+\.\d{2}$")


def simulator_factory(symbols: int = 5, seed: int = 1, **kwargs: object) -> MarketSimulator:
    return MarketSimulator(symbols=symbols, seed=seed, **kwargs)


def fields_of(line: bytes) -> list[tuple[bytes, bytes]]:
    assert line.endswith(SOH)
    return [tuple(f.split(b"=", 1)) for f in line[:-1].split(SOH)]  # type: ignore[misc]


def verify_framing(line: bytes) -> list[tuple[bytes, bytes]]:
    """Check BeginString, BodyLength (9) and CheckSum (10) by hand; return the fields."""
    fields = fields_of(line)
    assert fields[0] == (b"8", b"FIX.4.4")
    assert fields[1][0] == b"9"
    assert fields[2][0] == b"35"
    assert fields[-1][0] == b"10"
    body_start = line.index(SOH, line.index(b"9=")) + 1
    checksum_at = line.rindex(b"10=")
    assert int(fields[1][1]) == checksum_at - body_start
    assert fields[-1][1] == b"%03d" % (sum(line[:checksum_at]) % 256)
    return fields


def ts_ns_of(stamp: bytes) -> int:
    parsed = datetime.strptime(stamp.decode(), "%Y%m%d-%H:%M:%S.%f").replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1_000


def entries_of(fields: list[tuple[bytes, bytes]], first_tag: bytes) -> list[dict[bytes, bytes]]:
    """Split the NoMDEntries (268) group: a new entry starts at each ``first_tag``."""
    start = next(i for i, (tag, _) in enumerate(fields) if tag == b"268")
    count = int(fields[start][1])
    entries: list[dict[bytes, bytes]] = []
    for tag, value in fields[start + 1 : -1]:
        if tag == first_tag:
            entries.append({})
        assert entries, f"field {tag!r} before the first {first_tag!r} of the group"
        assert tag not in entries[-1], f"tag {tag!r} twice in one entry"
        entries[-1][tag] = value
    assert len(entries) == count
    return entries


class ReferenceBook:
    """A naive L1 consumer: applies entries by MDEntryID (278), as the docstring prescribes."""

    def __init__(self) -> None:
        self.sides: dict[bytes, tuple[int, int, bytes] | None] = {b"0": None, b"1": None}
        self.ltp = self.ltq = self.volume = self.volume_reported = 0
        self.open = self.high = self.low = 0
        self.ts = 0

    def apply(self, entry: dict[bytes, bytes]) -> None:
        kind = entry[b"269"]
        action = entry.get(b"279", b"0")
        price = round(float(entry[b"270"]) * 100) if b"270" in entry else None
        size = int(entry[b"271"]) if b"271" in entry else None
        if kind in (b"0", b"1"):
            assert price is not None and price > 0 and size is not None and size > 0
            assert size % 100 == 0
            current = self.sides[kind]
            if action == b"0":
                self.sides[kind] = (price, size, entry[b"278"])
            elif action == b"1":
                assert current is not None and current[2] == entry[b"278"]
                self.sides[kind] = (price, size, current[2])
            elif action == b"2":
                # A delete after the new level (out of order) names the old MDEntryID.
                if current is not None and current[2] == entry[b"278"]:
                    self.sides[kind] = None
            else:
                pytest.fail(f"unexpected 279={action!r}")
        elif kind == b"2":
            assert action == b"0" and price and size and size % 100 == 0
            self.ltp, self.ltq = price, size
            self.volume += size
        elif kind == b"4":
            self.open = price  # type: ignore[assignment]
        elif kind == b"7":
            self.high = price  # type: ignore[assignment]
        elif kind == b"8":
            self.low = price  # type: ignore[assignment]
        elif kind == b"B":
            assert size is not None
            self.volume_reported = size
            if action == b"0":  # 35=W: the day volume so far, the opening print included
                self.volume = size
        else:
            pytest.fail(f"unexpected 269={kind!r}")

    def check(self) -> None:
        bid, ask = self.sides[b"0"], self.sides[b"1"]
        assert bid is not None and ask is not None, "a side is empty after a message"
        assert 0 < bid[0] < ask[0], f"crossed or non-positive book {bid} {ask}"
        assert self.low <= self.ltp <= self.high


def replay(lines: list[bytes]) -> dict[str, ReferenceBook]:
    """Verify every line and apply it to reference books; return them by symbol."""
    books: dict[str, ReferenceBook] = {}
    for line in lines:
        fields = verify_framing(line)
        header = dict(fields[:7])
        ts_ns = ts_ns_of(header[b"52"])
        msg_type = header[b"35"]
        if msg_type == b"W":
            symbol = dict(fields)[b"55"].decode()
            assert symbol not in books
            book = books[symbol] = ReferenceBook()
            for entry in entries_of(fields, b"269"):
                entry[b"279"] = b"0"
                book.apply(entry)
            book.ts = ts_ns // 1_000_000
            book.check()
            continue
        assert msg_type == b"X"
        touched = set()
        for entry in entries_of(fields, b"279"):
            symbol = entry[b"55"].decode()
            touched.add(symbol)
            books[symbol].apply(entry)
        for symbol in touched:
            books[symbol].ts = ts_ns // 1_000_000
            books[symbol].check()
    return books


@pytest.fixture(scope="module")
def session_lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    path = tmp_path_factory.mktemp("sim") / "session.fix"
    simulator_factory(symbols=8, seed=3).write_file(path, minutes=1.0)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def test_symbol_names_deterministic_then_generated() -> None:
    names = symbol_names(70)
    assert names[:3] == ["AAPL", "MSFT", "NVDA"]
    assert names[-1] == "SYM0069"
    assert len(set(names)) == 70


def test_write_file_same_seed_identical_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.fix", tmp_path / "b.fix", tmp_path / "c.fix"
    simulator_factory(seed=11).write_file(a, minutes=0.5)
    simulator_factory(seed=11).write_file(b, minutes=0.5)
    simulator_factory(seed=12).write_file(c, minutes=0.5)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_messages_stream_matches_file(tmp_path: Path) -> None:
    path = tmp_path / "s.fix"
    simulator_factory(seed=5).write_file(path, max_messages=500)
    streamed = [msg for _, msg in simulator_factory(seed=5).messages(limit=500)]
    assert path.read_bytes() == b"".join(m + b"\n" for m in streamed)


def test_messages_continue_across_calls() -> None:
    whole = [m for _, m in simulator_factory(seed=2).messages(limit=300)]
    sim = simulator_factory(seed=2)
    parts = [m for _, m in sim.messages(limit=100)] + [m for _, m in sim.messages(limit=200)]
    assert parts == whole


def test_every_line_framing_and_header(session_lines: list[bytes]) -> None:
    seqs = []
    for line in session_lines:
        fields = verify_framing(line)
        assert [tag for tag, _ in fields[3:7]] == [b"49", b"56", b"34", b"52"]
        assert fields[3][1] == b"SIMX" and fields[4][1] == b"BROKERFLOW"
        assert STAMP.match(fields[6][1])
        seqs.append(int(fields[5][1]))
    assert seqs == list(range(1, len(session_lines) + 1))


def test_snapshots_first_one_per_symbol(session_lines: list[bytes]) -> None:
    types = [dict(fields_of(line))[b"35"] for line in session_lines]
    assert types[:8] == [b"W"] * 8
    assert set(types[8:]) == {b"X"}
    symbols = [dict(fields_of(line))[b"55"].decode() for line in session_lines[:8]]
    assert symbols == symbol_names(8)
    for line in session_lines[:8]:
        fields = fields_of(line)
        assert dict(fields)[b"262"]
        kinds = {e[b"269"] for e in entries_of(fields, b"269")}
        assert {b"0", b"1"} <= kinds


def test_incremental_entries_well_formed(session_lines: list[bytes]) -> None:
    for line in session_lines[8:]:
        fields = fields_of(line)
        for entry in entries_of(fields, b"279"):
            assert next(iter(entry)) == b"279"
            assert list(entry)[1:3] == [b"269", b"55"]
            assert TIME_ONLY.match(entry[b"273"])
            assert entry[b"273"] == dict(fields)[b"52"][9:]
            if b"270" in entry:
                assert PRICE.match(entry[b"270"]) and float(entry[b"270"]) > 0
            if entry[b"269"] in (b"0", b"1"):
                assert b"278" in entry
        if any(e[b"269"] == b"2" for e in entries_of(fields, b"279")):
            assert dict(fields)[b"60"] == dict(fields)[b"52"]


def test_book_invariants_hold_after_every_message(session_lines: list[bytes]) -> None:
    books = replay(session_lines)
    assert len(books) == 8


def test_event_time_monotonic(session_lines: list[bytes]) -> None:
    times = [ts_ns_of(dict(fields_of(line))[b"52"]) for line in session_lines]
    assert times == sorted(times)
    assert times[0] == DEFAULT_START_NS
    assert times[-1] < DEFAULT_START_NS + 60 * 1_000_000_000


def test_feed_mix_and_burst_shape(session_lines: list[bytes]) -> None:
    by_symbol: dict[str, list[int]] = defaultdict(list)
    actions: set[tuple[bytes, bytes]] = set()
    two_symbol = out_of_order = trades = 0
    for line in session_lines[8:]:
        fields = fields_of(line)
        ts = ts_ns_of(dict(fields)[b"52"])
        entries = entries_of(fields, b"279")
        symbols = list(dict.fromkeys(e[b"55"] for e in entries))
        two_symbol += len(symbols) == 2
        for symbol in symbols:
            by_symbol[symbol.decode()].append(ts)
        for i, e in enumerate(entries):
            actions.add((e[b"279"], e[b"269"]))
            trades += e[b"269"] == b"2"
            later = entries[i + 1 :]
            if e[b"279"] == b"0" and e[b"269"] in (b"0", b"1"):
                out_of_order += any(
                    x[b"279"] == b"2" and x[b"269"] == e[b"269"] and x[b"55"] == e[b"55"]
                    for x in later
                )
    assert {(b"1", b"0"), (b"1", b"1"), (b"2", b"0"), (b"0", b"1"), (b"0", b"2")} <= actions
    assert (b"1", b"B") in actions
    assert trades > 100
    assert two_symbol > 0
    assert out_of_order > 0
    close_pairs = sum(
        1
        for times in by_symbol.values()
        for a, b in zip(times, times[1:], strict=False)
        if b - a <= 5_000_000
    )
    assert close_pairs > 100  # bursts: a trade then book changes within a few ms
    # Poisson at R=5/s per symbol, 1-4 messages per event: ~8-12 messages/s/symbol.
    rate = (len(session_lines) - 8) / 8 / 60
    assert 6 < rate < 15


def test_expected_final_quotes_match_reference_consumer(session_lines: list[bytes]) -> None:
    sim = simulator_factory(symbols=8, seed=3)
    list(sim.messages(until_ns=DEFAULT_START_NS + 60 * 1_000_000_000))
    books = replay(session_lines)
    expected = sim.expected_final_quotes()
    assert set(expected) == set(books)
    for symbol, book in books.items():
        want = expected[symbol]
        bid, ask = book.sides[b"0"], book.sides[b"1"]
        assert bid is not None and ask is not None
        got = {
            "bid": bid[0] / 100, "bid_size": bid[1], "ask": ask[0] / 100, "ask_size": ask[1],
            "ltp": book.ltp / 100, "ltq": book.ltq, "volume": book.volume,
            "volume_reported": book.volume_reported, "open": book.open / 100,
            "high": book.high / 100, "low": book.low / 100, "close": book.ltp / 100,
            "ts": book.ts, "symbol": symbol,
        }  # fmt: skip
        assert got == want


def test_expected_final_quotes_after_partial_stream() -> None:
    sim = simulator_factory(symbols=3)
    lines = [m for _, m in sim.messages(limit=2)]
    assert set(sim.expected_final_quotes()) == {"AAPL", "MSFT"}
    lines += [m for _, m in sim.messages(limit=1000)]
    books = replay(lines)
    for symbol, want in sim.expected_final_quotes().items():
        assert want["ltp"] == books[symbol].ltp / 100
        assert want["volume"] == books[symbol].volume


def test_summary_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.fix"
    summary = simulator_factory(symbols=4).write_file(path, minutes=0.25)
    lines = path.read_bytes().splitlines()
    assert summary.messages == len(lines)
    assert summary.by_type == {"W": 4, "X": len(lines) - 4}
    assert summary.symbols == 4
    assert summary.bytes_written == path.stat().st_size
    assert summary.first_event_ns == DEFAULT_START_NS
    assert summary.last_event_ns == ts_ns_of(dict(fields_of(lines[-1]))[b"52"])
    trades = sum(line.count(b"\x01269=2\x01") for line in lines[4:])
    assert summary.trades == trades


def test_rate_and_start_change_the_session() -> None:
    start = DEFAULT_START_NS + 86_400 * 1_000_000_000
    slow = list(simulator_factory(rate_per_symbol=1.0).messages(until_ns=DEFAULT_START_NS + 10**10))
    fast = list(
        simulator_factory(rate_per_symbol=10.0).messages(until_ns=DEFAULT_START_NS + 10**10)
    )
    assert len(fast) > 4 * len(slow)
    first_ts, first = next(iter(simulator_factory(start_ns=start).messages(limit=1)))
    assert first_ts == start
    assert b"52=20261126-14:30:00.000" in first


def test_a_feed_that_joins_mid_session_reports_the_day_volume_so_far() -> None:
    """Joining at 20:30, six hours after the open: the snapshots' TradeVolume (269=B) counts
    the session's trades so far, about six hours at each symbol's own rate; every message
    without a 269=B entry is that of the feed that starts at the open, byte for byte."""
    start = DEFAULT_START_NS + 6 * 3600 * 1_000_000_000
    until = start + 600 * 1_000_000_000
    joined = [m for _, m in simulator_factory(start_ns=start, session_open_ns=DEFAULT_START_NS)
              .messages(until_ns=until)]  # fmt: skip
    opened = [m for _, m in simulator_factory(start_ns=start).messages(until_ns=until)]
    volume = b"\x01269=B\x01"
    assert [m for m in joined if volume not in m] == [m for m in opened if volume not in m]
    traded: dict[bytes, int] = defaultdict(int)  # each symbol's trades in the ten minutes
    for line in opened[5:]:
        entry_type = symbol = b""
        for tag, value in fields_of(line):
            if tag == b"269":
                entry_type = value
            elif tag == b"55":
                symbol = value
            elif tag == b"271" and entry_type == b"2":
                traded[symbol] += int(value)
    for w_joined, w_opened in zip(joined[:5], opened[:5], strict=True):
        symbol = dict(fields_of(w_joined))[b"55"]
        opening_print = int(fields_of(w_opened)[-3][1])  # 269=B 271=... 273=... 10=...
        before_the_feed = int(fields_of(w_joined)[-3][1]) - opening_print
        six_hours_at_its_rate = traded[symbol] * 36
        assert 0.5 < before_the_feed / six_hours_at_its_rate < 2, symbol


@pytest.mark.parametrize(
    ("kwargs", "problem"), [({"symbols": 0}, "symbols"), ({"rate_per_symbol": 0.0}, "rate")]
)
def test_simulator_bad_arguments_raise(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MarketSimulator(**{"symbols": 2, **kwargs})  # type: ignore[arg-type]
