"""Acceptance: every published FIX sample line is handled as its manifest implies.

The samples live outside the repository (`../shared/fix-samples`, or `$BROKERFLOW_SHARED_DIR/
fix-samples`) and are not copied in. Each `X.fix` has an `X.manifest.tsv` saying, per line,
whether BodyLength (9) and CheckSum (10) are right ("True"/"False", "None" when the line cannot
even be framed).
"""

import csv
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import simplefix

from connectors.fix.codec import decode
from connectors.fix.parse import ADMIN_MSG_TYPES, decode_lines, parse_message
from domain.errors import DecodeError, FieldError

SOH = b"\x01"


def _samples_dir() -> Path:
    shared = os.environ.get("BROKERFLOW_SHARED_DIR")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3].parent / "shared"
    return base / "fix-samples"


SAMPLES = _samples_dir()


@dataclass(frozen=True)
class Sample:
    file: str
    line_no: int
    msg_type: str
    bodylength_ok: bool | None
    checksum_ok: bool | None
    raw: bytes

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line_no}"


_FLAG = {"True": True, "False": False, "None": None}


def _load() -> list[Sample]:
    samples = []
    for fix_file in sorted(SAMPLES.glob("*.fix")):
        lines = fix_file.read_bytes().split(b"\n")
        manifest = fix_file.with_name(fix_file.stem + ".manifest.tsv")
        with manifest.open(newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                line_no = int(row["line"])
                samples.append(
                    Sample(
                        fix_file.name,
                        line_no,
                        row["msgtype"],
                        _FLAG[row["bodylength_ok"]],
                        _FLAG[row["checksum_ok"]],
                        lines[line_no - 1],
                    )
                )
    return samples


ALL = _load() if SAMPLES.is_dir() else []
pytestmark = pytest.mark.skipif(
    not ALL,
    reason=f"FIX samples not found at {SAMPLES} (set BROKERFLOW_SHARED_DIR to the shared dir)",
)


def test_samples_manifest_covers_every_line() -> None:
    assert len(ALL) == 93
    for fix_file in SAMPLES.glob("*.fix"):
        lines = [line for line in fix_file.read_bytes().split(b"\n") if line]
        assert len(lines) == sum(1 for sample in ALL if sample.file == fix_file.name)


@pytest.mark.parametrize("sample", ALL, ids=[sample.id for sample in ALL])
def test_sample_handled_as_manifest_implies(sample: Sample) -> None:
    if sample.bodylength_ok is False:
        with pytest.raises(DecodeError, match=re.escape("BodyLength(9)")):
            decode(sample.raw)
    elif sample.checksum_ok is False:
        with pytest.raises(DecodeError, match=re.escape("CheckSum(10)")):
            decode(sample.raw)
    elif sample.bodylength_ok is None or sample.checksum_ok is None:
        with pytest.raises(DecodeError):
            decode(sample.raw)
    else:
        msg = decode(sample.raw)
        assert msg.msg_type == sample.msg_type
        try:
            events = parse_message(msg)
        except FieldError as error:
            assert sample.msg_type in ("W", "X", "8", "D", "F", "G") or error.tag == 35
        else:
            if sample.msg_type in ADMIN_MSG_TYPES:
                assert events == []
            else:
                assert events
                assert all(event.ts_event is not None for event in events)


@pytest.mark.parametrize("sample", ALL, ids=[sample.id for sample in ALL])
def test_sample_decode_lines_matches_decode(sample: Sample) -> None:
    batch = decode_lines([sample.raw + b"\n"], sample.file, sample.line_no)
    assert batch.messages == 1
    try:
        msg = decode(sample.raw)
        expected = (
            []
            if msg.msg_type in ADMIN_MSG_TYPES
            else parse_message(msg, source=sample.id, raw=sample.raw)
        )
    except (DecodeError, FieldError) as error:
        [letter] = batch.dead_letters
        assert (letter.source, letter.reason, letter.error, letter.tag) == (
            sample.id,
            error.reason,
            type(error).__name__,
            error.tag,
        )
        assert letter.raw == sample.raw
    else:
        assert batch.dead_letters == []
        assert batch.events == expected
        assert batch.admin == (1 if msg.msg_type in ADMIN_MSG_TYPES else 0)


def _simplefix_pairs(raw: bytes) -> list[tuple[int, bytes]]:
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    parsed = parser.get_message()
    assert parsed is not None
    return [(int(tag), value) for tag, value in parsed.pairs]


DECODABLE = [s for s in ALL if s.bodylength_ok and s.checksum_ok]


@pytest.mark.parametrize("sample", DECODABLE, ids=[sample.id for sample in DECODABLE])
def test_sample_fields_agree_with_simplefix(sample: Sample) -> None:
    assert decode(sample.raw).fields == _simplefix_pairs(sample.raw)


# -- repaired samples: 9 and 10 recomputed (as `fixcheck.py --repair` does), then parsed --

_FRAME = re.compile(rb"^(8=[^\x01]*\x01)9=([^\x01]*)\x01(.*\x01)10=([^\x01]*)\x01?$", re.S)


def repair(raw: bytes) -> bytes:
    """Recompute BodyLength (9) and CheckSum (10) of a framed sample; our own helper."""
    match = _FRAME.match(raw)
    assert match is not None, raw
    head, _, body, _ = match.groups()
    prefix = head + b"9=%d" % len(body) + SOH + body
    return prefix + b"10=%03d" % (sum(prefix) % 256) + SOH


# (file, line) -> what the repaired message parses into:
#   ("md", symbol, entry count, first price) per event, ("er", symbol, exec_type, last_px),
#   ("order", msg_type, symbol, price), ("field", tag), or [] for no events.
REPAIRED = {
    ("framing_edge_cases.fix", 6): ("field", 268),
    ("framing_edge_cases.fix", 7): ("field", 268),
    ("framing_edge_cases.fix", 8): ("field", 268),
    ("execution_report_8.fix", 3): [("er", "ES", "F", Decimal(208700))],
    ("execution_report_8.fix", 7): [("er", "ETFC", "4", Decimal(0))],
    ("execution_report_8.fix", 10): [("er", "LTCBNB", "0", Decimal(0))],
    ("market_data_incremental_X.fix", 2): [],
    ("market_data_incremental_X.fix", 4): [("md", "BTC/USD", 2, 30300.7)],
    ("market_data_incremental_X.fix", 5): [("md", "PF_ETHUSD", 1, 2372.7)],
    ("market_data_incremental_X.fix", 6): [("md", "PF_ETHUSD", 1, 2044.8)],
    ("market_data_snapshot_W.fix", 1): [("md", "BNBBUSD", 0, None)],
    ("market_data_snapshot_W.fix", 2): [("md", "EUR/USD", 2, 1.57844)],
    ("market_data_snapshot_W.fix", 3): [("md", "EUR/USD", 2, 1.57844)],
    ("market_data_snapshot_W.fix", 4): [("md", "EUR/USD", 8, 1.38898)],
    ("market_data_snapshot_W.fix", 5): [("md", "[N/A]", 2, 97.625)],
    ("market_data_snapshot_W.fix", 10): [("md", "sym", 1, None)],
    ("market_data_snapshot_W.fix", 11): ("field", 55),
    ("market_data_snapshot_W.fix", 12): [("md", "EURUSD", 20, 1.13161)],
    ("market_data_snapshot_W.fix", 13): [("md", "ETH-USD", 8, 1320.43)],
    ("orders_D_F_G.fix", 2): [("order", "D", "LTCBNB", Decimal(10))],
    ("orders_D_F_G.fix", 7): ("field", 41),
    ("orders_D_F_G.fix", 8): [("order", "F", "TEST_55", None)],
}

BAD_BUSINESS = [
    s
    for s in ALL
    if s.msg_type in ("W", "X", "8", "D", "F", "G")
    and (s.bodylength_ok is False or s.checksum_ok is False)
]


def test_repaired_table_covers_every_bad_business_sample() -> None:
    assert {(s.file, s.line_no) for s in BAD_BUSINESS} == set(REPAIRED)


def _summary(event: object) -> tuple:
    kind = type(event).__name__
    if kind in ("MarketDataSnapshot", "MarketDataIncrement"):
        first = event.entries[0].price if event.entries else None
        return ("md", event.symbol, len(event.entries), first)
    if kind == "ExecutionReport":
        return ("er", event.symbol, event.exec_type, event.last_px)
    return ("order", event.msg_type, event.symbol, event.price)


@pytest.mark.parametrize("sample", BAD_BUSINESS, ids=[sample.id for sample in BAD_BUSINESS])
def test_repaired_sample_parses_into_events(sample: Sample) -> None:
    repaired = repair(sample.raw)
    msg = decode(repaired)
    assert msg.fields[3:-1] == [field for field in _simplefix_pairs(repaired)][3:-1]
    expected = REPAIRED[(sample.file, sample.line_no)]
    if isinstance(expected, tuple):
        with pytest.raises(FieldError) as caught:
            parse_message(msg)
        assert caught.value.tag == expected[1]
        return
    events = parse_message(msg, source=sample.id, raw=repaired)
    assert [_summary(event) for event in events] == expected
    assert decode_lines([repaired], sample.file, sample.line_no).events == events
