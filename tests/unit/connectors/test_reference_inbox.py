"""Drop files of reference changes -> FIX lines (connectors.reference_inbox), and how the
gateway routes those lines (connectors.kafka.route_line)."""

from __future__ import annotations

import pytest

from connectors.fix import decode_lines
from connectors.kafka import FIX_TOPIC, UNROUTED_TOPIC, route_line
from connectors.reference_inbox import InboxFileError, convert_file
from domain.events import AccountChanged, CashMoved

TS = 1_764_081_000_000_000_000


def test_rows_become_messages_the_decoder_reads_back() -> None:
    accounts = convert_file(b"account,owner,cash\nNEW1,nina,5000\nNEW2,nina,0\n", TS)
    cash = convert_file(b"account,amount,movement_id\nNEW1,-250.5,W-1\n", TS)
    batch = decode_lines(accounts + cash, "inbox:x", 1)
    assert batch.dead_letters == []
    assert [type(e) for e in batch.events] == [AccountChanged, AccountChanged, CashMoved]
    first, _, moved = batch.events
    assert (first.account, first.owner, str(first.opening_cash), first.ts_event) == (
        "NEW1", "nina", "5000", TS
    )  # fmt: skip
    assert (moved.account, str(moved.amount), moved.movement_id) == ("NEW1", "-250.5", "W-1")


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"account,cash\nA,1\n", 1, "header account,cash: expected"),
        (b"account,amount,movement_id\n", 1, "no rows"),
        (b"account,amount,movement_id\nA,1,M1\nA,x,M2\n", 3, "amount 'x' is not a number"),
        (b"account,amount,movement_id\nA,1,M1\nB,2,M1\n", 3, "movement_id M1 is on line 2 too"),
        (b"account,amount,movement_id\nA,0,M1\n", 2, "amount is 0"),
        (b"account,amount,movement_id\nA,1\n", 2, "3 columns expected"),
        (b"account,owner,cash\nA|B,o,1\n", 2, "account 'A|B' contains '|'"),
        (b"account,owner,cash\n,o,1\n", 2, "account is empty"),
        (b"account,owner,cash,initial_margin,maintenance_margin\nA,o,1,0.3,0.5\n", 2,
         "MaintenanceMarginRate(5003) was 0.5"),
    ],
)  # fmt: skip
def test_a_bad_row_refuses_the_file_naming_line_and_reason(data, line, reason) -> None:
    with pytest.raises(InboxFileError) as caught:
        convert_file(data, TS)
    assert caught.value.line == line and caught.value.reason.startswith(reason)


def test_reference_changes_are_keyed_by_account() -> None:
    [line] = convert_file(b"account,amount,movement_id\nACC7,10,M1\n", TS)
    route = route_line(line)
    assert (route.topic, route.key) == (FIX_TOPIC, b"ACC7")
    bare = b"8=FIX.4.4|9=5|35=UC|5010=1|10=000|\n"
    assert route_line(bare).topic == UNROUTED_TOPIC


def test_a_chunk_mixing_fix_and_reference_lines_keeps_their_order() -> None:
    [opening] = convert_file(b"account,owner,cash\nNEW1,nina,0\n", TS)
    body = (b"35=8\x0149=V\x0156=B\x0134=2\x0152=20251125-14:30:00\x0137=O1\x0111=C1\x0117=E1\x01"
            b"150=F\x0139=2\x011=NEW1\x0155=IBM\x0154=1\x0138=1\x0132=1\x0131=10\x0114=1\x01"
            b"151=0\x016=10\x01")  # fmt: skip
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    fill = head + body + b"10=%03d\x01\n" % (sum(head + body) % 256)
    batch = decode_lines([fill, opening, fill], "file:x", 1)
    assert batch.dead_letters == []
    assert [type(e).__name__ for e in batch.events] == [
        "ExecutionReport", "AccountChanged", "ExecutionReport"
    ]  # fmt: skip
    assert batch.lines == [0, 1, 2]


def test_a_gateway_that_stops_early_ends_its_input_too(tmp_path) -> None:
    import threading

    from brokerflow.commands.gateway import FileInput
    from connectors.reference_inbox import InboxInput

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    day = tmp_path / "day.fix"
    day.write_bytes(b"8=FIX.4.4|9=5|35=0|10=000|\n" * 2000)
    source = FileInput([day], chunk_bytes=64)
    chunks = InboxInput(source, inbox).chunks()
    assert next(chunks).lines
    chunks.close()  # as when publishing fails
    assert source.stop.is_set()
    assert not [t for t in threading.enumerate() if t.name == "gateway-input"]
