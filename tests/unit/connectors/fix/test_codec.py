import random

import pytest
import simplefix
from simplefix.data import RAW_DATA_TAGS, RAW_LEN_TAGS

from connectors.fix.codec import (
    FixMessage,
    decode,
    extract_message,
    frame_lines,
    tokenize_chunk,
)
from connectors.fix.tags import DATA_LENGTH_TAGS, DATA_TAGS
from domain.errors import DecodeError

SOH = b"\x01"


def fix(*pairs: tuple[int, object], begin: str = "FIX.4.4") -> bytes:
    """Encode a message with simplefix (it computes BodyLength (9) and CheckSum (10))."""
    msg = simplefix.FixMessage()
    msg.append_pair(8, begin)
    for tag, value in pairs:
        msg.append_pair(tag, value)
    return msg.encode()


def reframe(body_fields: bytes, begin: bytes = b"FIX.4.4", length: bytes | None = None) -> bytes:
    """Build `8|9|body|10` by hand with a right checksum; `length` overrides the 9 value."""
    head = b"8=" + begin + SOH + b"9=" + (length or b"%d" % len(body_fields)) + SOH
    return head + body_fields + b"10=%03d" % (sum(head + body_fields) % 256) + SOH


HEARTBEAT = fix((35, "0"), (49, "TW"), (56, "ISLD"), (34, 3), (52, "20000426-12:05:06"))


def reason_of(raw: bytes) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    return caught.value.reason


def test_decode_heartbeat_fields_in_order() -> None:
    msg = decode(HEARTBEAT)
    assert isinstance(msg, FixMessage)
    assert msg.begin_string == "FIX.4.4"
    assert msg.msg_type == "0"
    assert [tag for tag, _ in msg.fields] == [8, 9, 35, 49, 56, 34, 52, 10]
    assert msg.get(49) == b"TW"
    assert msg.get(999) is None
    assert msg.raw == HEARTBEAT


def test_decode_keeps_repeats_and_equals_inside_values() -> None:
    raw = fix((35, "W"), (461, "RCSXX=0"), (268, 2), (269, 0), (270, 1), (269, 1), (270, 2))
    msg = decode(raw)
    assert msg.get(461) == b"RCSXX=0"
    assert msg.get_all(269) == [b"0", b"1"]
    assert msg.get(269) == b"0"


def test_decode_zero_padded_body_length_accepted() -> None:
    body = b"35=0\x0134=1\x01"
    msg = decode(reframe(body, length=b"%07d" % len(body)))
    assert msg.get(9) == b"%07d" % len(body)


def test_decode_two_digit_checksum_rejected_even_when_numerically_right() -> None:
    raw = HEARTBEAT
    at = raw.rindex(b"10=")
    total = sum(raw[:at]) % 256
    body = b"35=0\x01" + b"58=x" * 0
    # Find a body whose checksum is below 100, then write it with two digits.
    for filler in range(256):
        body = b"35=0\x0158=" + bytes([65 + filler % 26]) * (1 + filler // 26) + SOH
        candidate = reframe(body)
        at = candidate.rindex(b"10=")
        total = sum(candidate[:at]) % 256
        if 10 <= total < 100:
            break
    two_digit = candidate[:at] + b"10=%d\x01" % total
    assert (
        reason_of(two_digit) == f"CheckSum(10) was '{total}', not 3 digits (computed {total:03d})"
    )


@pytest.mark.parametrize(
    ("raw", "reason", "tag"),
    [
        (b"9=5\x0135=0\x0110=000\x01", "BeginString(8) missing or not first", 8),
        (b"8=FIX.4.2\x0135=0\x019=5\x0110=000\x01", "BodyLength(9) missing or not second", 9),
        (b"8=FIX.4.2\x019=10xyz\x0135=X\x01108=30\x0110=036\x01", None, 9),
        (b"8=FIX.4.2\x019=5\x0134=1\x0110=000\x01", "MsgType(35) missing or not third", 35),
        (b"8=FIX.4.2\x019=12\x0135=X\x01108=30\x01", "CheckSum(10) missing", 10),
        (
            b"8=FIX.4.2\x019=10\x0135=X\x01108=30\x0110=036\x01",
            "BodyLength(9) was 10, counted 12",
            9,
        ),
        (b"8=\x019=5\x0135=0\x0110=000\x01", "BeginString(8) has an empty value", 8),
    ],
)
def test_decode_structure_errors_name_the_tag(raw: bytes, reason: str | None, tag: int) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert caught.value.tag == tag
    if reason is not None:
        assert caught.value.reason == reason
    assert f"({tag})" in caught.value.reason


def test_decode_bad_checksum_reason() -> None:
    raw = HEARTBEAT[: HEARTBEAT.rindex(b"10=")]
    computed = sum(raw) % 256
    wrong = (computed + 1) % 256
    assert reason_of(raw + b"10=%03d\x01" % wrong) == (
        f"CheckSum(10) was {wrong:03d}, computed {computed:03d}"
    )


def test_decode_garbled_tag_named() -> None:
    raw = reframe(b"35=0\x0134=3\x0149garbled=TW\x0156=ISLD\x01")
    with pytest.raises(DecodeError) as caught:
        decode(raw)
    assert caught.value.reason == 'tag "49garbled" is not a number'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"35=0\x0158=\x01", "Text(58) has an empty value"),
        (b"35=0\x01abc\x01", 'field "abc" has no "="'),
        (b"35=0\x01=x\x01", 'tag "" is not a number'),
        (b"35=0\x01049=A\x01", 'tag "049" is not a positive number without a leading 0'),
        (b"35=0\x010=A\x01", 'tag "0" is not a positive number without a leading 0'),
        (b"35=0\x0135=1\x01", "MsgType(35) appears again inside the body"),
        (b"35=0\x0110=123\x0134=1\x01", "CheckSum(10) appears again inside the body"),
        (b"35=A\x0196=abc\x01", "RawData(96) without RawDataLength(95) before it"),
        (
            b"35=A\x0195=5\x0196=abc\x01",
            "RawData(96) is not the 5 bytes RawDataLength(95) announced",
        ),
        (b"35=A\x0195=x\x0196=abc\x01", "RawDataLength(95) was 'x', not a number"),
    ],
)
def test_decode_field_errors(body: bytes, reason: str) -> None:
    assert reason_of(reframe(body)) == reason


def test_decode_nothing_after_checksum() -> None:
    assert reason_of(HEARTBEAT + b"58=x\x01") == (
        "CheckSum(10) is not the last field: 5 bytes follow it"
    )


def test_decode_tolerates_missing_final_soh() -> None:
    assert decode(HEARTBEAT[:-1]).fields == decode(HEARTBEAT).fields


def test_decode_raw_data_with_soh_and_embedded_message() -> None:
    inner = fix((35, "8"), (55, "ES"))
    raw = reframe(b"35=n\x0149=CME\x01212=%d\x01213=%s\x0158=after\x01" % (len(inner), inner))
    msg = decode(raw)
    assert msg.get(213) == inner
    assert msg.get(58) == b"after"
    assert [tag for tag, _ in msg.fields] == [8, 9, 35, 49, 212, 213, 58, 10]


def test_decode_every_truncation_raises_only_decode_error() -> None:
    raws = [
        HEARTBEAT,
        fix((35, "X"), (268, 2), (279, 0), (269, 0), (55, "AAPL"), (270, "1.5"), (271, 100)),
        reframe(b"35=n\x01212=9\x01213=8=F\x01X\x0110=\x0158=z\x01"),
    ]
    for raw in raws:
        for cut in range(len(raw)):
            for piece in (raw[:cut], raw[cut:]):
                try:
                    decode(piece)
                except DecodeError:
                    continue
                # only a whole message (or the full one without its final SOH) decodes
                assert piece in (raw, raw[:-1])


def test_extract_message_log_lines() -> None:
    soh = HEARTBEAT
    pipe = soh.replace(SOH, b"|")
    assert extract_message(soh + b"\n") == (soh, soh)
    assert extract_message(pipe + b"\r\n") == (soh, pipe)
    prefixed = b"2024-01-02 14:30:00.123 <incoming> " + pipe
    assert extract_message(prefixed) == (soh, pipe)
    assert extract_message(b"20121105-23:24:42 : " + soh) == (soh, soh)
    assert extract_message(b"") is None
    assert extract_message(b"   \n") is None
    assert extract_message(b"# 8=FIX.4.4|9=5|...") is None
    assert extract_message(b"  # indented comment") is None
    with pytest.raises(DecodeError) as caught:
        extract_message(b"this is not FIX at all")
    assert caught.value.reason == "no BeginString (8=) on the line"


def test_extract_message_soh_line_keeps_pipes_in_values() -> None:
    raw = fix((35, "0"), (58, "a|b"))
    assert extract_message(raw) == (raw, raw)
    assert decode(raw).get(58) == b"a|b"


@pytest.mark.parametrize("count", [3, 40])  # below and above the numpy threshold
def test_frame_lines_checksums_match_python_sum(count: int) -> None:
    rng = random.Random(count)
    lines = []
    for i in range(count):
        raw = fix((35, "0"), (58, "x" * rng.randint(1, 30)), (34, i))
        lines.append(raw.replace(SOH, b"|") + b"\n" if i % 2 else raw)
    lines.insert(1, b"garbage line\n")
    lines.insert(2, b"\n")
    framed = frame_lines(lines)
    assert framed.line_indexes[:3] == [0, 1, 3]
    assert framed.messages[1] is None
    for message, checksum in zip(framed.messages, framed.checksums, strict=True):
        if message is None:
            assert checksum == -1
            continue
        at = message.rindex(b"\x0110=") + 1
        assert checksum == sum(message[:at]) % 256
        decode(message, checksum)


def test_tokenize_chunk_tokens_and_checksums_per_line() -> None:
    rng = random.Random(5)
    raws = [fix((35, "0"), (58, "x" * rng.randint(1, 300)), (34, i)) for i in range(50)]
    chunk = tokenize_chunk([raw + b"\n" for raw in raws])
    assert chunk is not None
    assert len(chunk.firsts) == len(raws) + 1
    for index, raw in enumerate(raws):
        tokens = chunk.tokens[chunk.firsts[index] : chunk.firsts[index + 1]]
        assert tokens[-1] == b""  # the newline
        assert tokens[:-1] == raw.replace(b"=", SOH).split(SOH)[:-1]
        at = raw.rindex(b"\x0110=") + 1
        assert chunk.checksums[index] == sum(raw[:at]) % 256


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [HEARTBEAT],  # no newline
        [HEARTBEAT + b"\r\n"],
        [HEARTBEAT + b"\n", HEARTBEAT.replace(SOH, b"|") + b"\n"],
        [HEARTBEAT + b"\n", b"\n"],
        [HEARTBEAT[:-1] + b"\n\n"],  # two newlines in one line
        [fix((35, "0"), (58, "a=b")) + b"\n"],
        [fix((35, "0"), (58, "")) + b"\n"],
    ],
)
def test_tokenize_chunk_declines_lines_that_are_not_plain(lines: list[bytes]) -> None:
    assert tokenize_chunk(lines) is None


# -- differential: our decoder and simplefix's parser agree on the (tag, value) sequence --

# simplefix knows more (FIX Latest) data tags than we frame by length; keep those out.
_RESERVED = {8, 9, 10, 35, *DATA_LENGTH_TAGS, *DATA_TAGS, *RAW_LEN_TAGS, *RAW_DATA_TAGS}
_VALUE_CHARS = "abcXYZ0129 .-=:/|_"


def _random_message(rng: random.Random) -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, rng.choice(["FIX.4.2", "FIX.4.4", "FIXT.1.1"]))
    msg.append_pair(35, rng.choice(["0", "8", "D", "W", "X", "AE", "n"]))

    def value() -> str:
        return "".join(rng.choice(_VALUE_CHARS) for _ in range(rng.randint(1, 12)))

    for _ in range(rng.randint(0, 12)):
        tag = rng.randint(1, 20_000)
        if tag in _RESERVED:
            continue
        msg.append_pair(tag, value())
    if rng.random() < 0.4:  # a repeating group
        count = rng.randint(0, 4)
        msg.append_pair(268, count)
        for _ in range(count):
            msg.append_pair(269, rng.choice("0127B"))
            msg.append_pair(270, f"{rng.uniform(0, 1000):.4f}")
            if rng.random() < 0.5:
                msg.append_pair(271, rng.randint(1, 10_000))
    if rng.random() < 0.2:  # raw data with SOH and "=" inside
        data = bytes(rng.choice(b"ab=\x01|9") for _ in range(rng.randint(1, 20)))
        msg.append_pair(95, len(data))
        msg.append_pair(96, data)
    return msg.encode()


def _simplefix_pairs(raw: bytes) -> list[tuple[int, bytes]]:
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    parsed = parser.get_message()
    assert parsed is not None
    return [(int(tag), value) for tag, value in parsed.pairs]


def test_decode_agrees_with_simplefix_on_generated_messages() -> None:
    rng = random.Random(20240611)
    for _ in range(600):
        raw = _random_message(rng)
        assert decode(raw).fields == _simplefix_pairs(raw), raw
