"""The simulator's book-integrity features (issue 21): RptSeq (83) per symbol, lost incrementals
(`--drop-incrementals`) and periodic snapshots (`--snapshot-every`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokerflow.cli import main
from simulator.market import MarketSimulator

_HEADER = {b"9", b"10", b"34"}  # differ once a message is left out (length, checksum, number)


def _fields(line: bytes) -> list[tuple[bytes, bytes]]:
    return [tuple(f.split(b"=", 1)) for f in line.rstrip(b"\n\x01").split(b"\x01")]  # type: ignore[misc]


def _rpt_seqs(line: bytes) -> list[tuple[bytes, int]]:
    """(symbol, RptSeq) of each entry of a 35=X, or of the body of a 35=W."""
    out, symbol = [], b""
    for tag, value in _fields(line):
        if tag == b"55":
            symbol = value
        elif tag == b"83":
            out.append((symbol, int(value)))
    return out


def _body(line: bytes) -> tuple:
    return tuple(f for f in _fields(line) if f[0] not in _HEADER)


def _lines(**kwargs) -> list[bytes]:
    sim = MarketSimulator(4, seed=11, **kwargs)
    return [m for _, m in sim.messages(until_ns=sim.start_ns + 20 * 1_000_000_000)]


def test_rptseq_is_contiguous_per_symbol_from_the_snapshot() -> None:
    last: dict[bytes, int] = {}
    entries = 0
    for line in _lines():
        if b"\x0135=W\x01" in line:
            ((symbol, rpt),) = _rpt_seqs(line)
            assert rpt == last.get(symbol, 0)  # the opening snapshot: 0, nothing included yet
            last[symbol] = rpt
            continue
        seqs = _rpt_seqs(line)
        assert len(seqs) == line.count(b"\x01279=")  # one per entry
        for symbol, rpt in seqs:
            assert rpt == last[symbol] + 1
            last[symbol] = rpt
            entries += 1
    assert len(last) == 4 and entries > 500


def test_dropped_incrementals_leave_a_gap_in_rptseq_exactly_where_lines_are_missing() -> None:
    full = _lines()
    dropped = _lines(drop_incrementals=10)
    assert dropped == _lines(drop_incrementals=10)  # deterministic for a seed
    by_body = [_body(line) for line in dropped]
    # The dropped file is the full one minus some 35=X messages, in the same order.
    missing: list[bytes] = []
    i = 0
    for line in full:
        if i < len(by_body) and _body(line) == by_body[i]:
            i += 1
        else:
            missing.append(line)
    assert i == len(dropped)
    assert all(b"\x0135=X\x01" in line for line in missing)
    assert 0.05 < len(missing) / len(full) < 0.15
    lost = {pair for line in missing for pair in _rpt_seqs(line)}
    seen: dict[bytes, int] = {}
    gaps = set()
    for line in dropped:
        if b"\x0135=W\x01" in line:
            continue
        for symbol, rpt in _rpt_seqs(line):
            gaps.update((symbol, n) for n in range(seen.get(symbol, 0) + 1, rpt))
            seen[symbol] = rpt
    assert gaps == {(s, n) for s, n in lost if n <= seen[s]}  # (the last lost ones: no later)
    # MsgSeqNum stays contiguous: the venue's session never had the lost messages.
    assert [int(dict(_fields(line))[b"34"]) for line in dropped] == list(range(1, len(dropped) + 1))
    other = MarketSimulator(4, seed=12, drop_incrementals=10)
    assert [m for _, m in other.messages(limit=200)] != dropped[:200]


def test_periodic_snapshots_carry_the_book_and_rptseq_of_the_messages_before_them() -> None:
    lines = _lines(snapshot_every_s=5)
    plain = _lines()
    snapshots = [line for line in lines if b"\x0135=W\x01" in line]
    times = sorted({dict(_fields(line))[b"52"] for line in snapshots})
    assert times == [b"20261125-14:30:%02d.000" % s for s in (0, 5, 10, 15)]
    assert len(snapshots) == 4 * 4
    # Without them the same market: the other messages are those of the plain run.
    assert [_body(x) for x in lines if b"\x0135=W\x01" not in x] == [
        _body(x) for x in plain if b"\x0135=W\x01" not in x
    ]
    # Each snapshot's RptSeq is the last its symbol's entries reached before it, and its best
    # bid the last one sent.
    last: dict[bytes, int] = {}
    bid: dict[bytes, bytes] = {}
    for line in lines:
        fields = _fields(line)
        if b"\x0135=W\x01" in line:
            ((symbol, rpt),) = _rpt_seqs(line)
            assert rpt == last.get(symbol, 0)
            entry = fields.index((b"269", b"0"))
            if symbol in bid:
                assert fields[entry + 1] == (b"270", bid[symbol])
            continue
        symbol = b""
        for n, (tag, value) in enumerate(fields):
            if tag == b"55":
                symbol = value
            elif tag == b"83":
                last[symbol] = int(value)
            elif tag == b"269" and value == b"0" and fields[n - 1] != (b"279", b"2"):
                assert fields[n + 1][0] == b"55" and fields[n + 2][0] == b"270"  # 279 269 55 270
                bid[fields[n + 1][1]] = fields[n + 2][1]


def test_simulate_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d.fix"
    argv = ["simulate", "--symbols", "3", "--minutes", "0.2", "--out", str(out)]
    assert main([*argv, "--drop-incrementals", "5", "--snapshot-every", "3"]) == 0
    err = capsys.readouterr().err
    assert "incrementals dropped (--drop-incrementals)" in err
    assert out.read_bytes().count(b"\x0135=W\x01") == 3 * 4  # 0, 3, 6, 9 s
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--drop-incrementals", "120"])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--drop-incrementals" in lines[0] and "percentage" in lines[0]
