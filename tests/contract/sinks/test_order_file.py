"""Outbound orders to a FIX file: byte-exact 35=D from simplefix, once per ClOrdID."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import simplefix

from connectors.fix import decode
from connectors.fix.encode import LIMIT, MARKET, OutboundOrder, new_order_single
from sinks.order_file import OrderFileWriter, cl_ord_id_of, sent_cl_ord_ids

T = 1_764_081_000_123_000_000


def order(cl_ord_id: str, ord_type: str = MARKET, price: Decimal | None = None) -> OutboundOrder:
    return OutboundOrder(cl_ord_id, "ACC1", "ACME", "2", Decimal(100), ord_type, price, T)


def test_new_order_single_is_valid_fix_with_the_orders_fields() -> None:
    raw = new_order_single(order("C1.T", LIMIT, Decimal("99.25")), seq=7)
    msg = decode(raw)  # our decoder checks BodyLength and CheckSum
    assert msg.msg_type == "D"
    fields = msg.first_values()
    assert fields[11] == b"C1.T" and fields[1] == b"ACC1" and fields[55] == b"ACME"
    assert (fields[54], fields[38], fields[40], fields[44]) == (b"2", b"100", b"2", b"99.25")
    assert fields[34] == b"7" and fields[60] == fields[52] == b"20251125-14:30:00.123"
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    assert parser.get_message().get(11) == b"C1.T"
    # Same input, same bytes.
    assert new_order_single(order("C1.T", LIMIT, Decimal("99.25")), seq=7) == raw
    assert b"\x0144=" not in new_order_single(order("C2.T"), seq=8)
    with pytest.raises(ValueError, match="no price"):
        new_order_single(order("C3.T", LIMIT), seq=9)


def test_order_file_writes_each_cl_ord_id_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "out" / "orders.fix"
    orders = [order(f"C{i}.T") for i in range(1, 4)]
    messages = [new_order_single(o, seq=i) for i, o in enumerate(orders, 1)]
    writer = OrderFileWriter(path, new_order_single)
    assert writer.write([(o.cl_ord_id, o) for o in orders[:2]]) == 2
    writer.close()
    # A restart replays the last batch and goes on; MsgSeqNum continues after the file.
    writer = OrderFileWriter(path, new_order_single)
    assert writer.sent == 2
    assert writer.write([(o.cl_ord_id, o) for o in orders[1:]]) == 1
    writer.close()
    assert path.read_bytes().splitlines() == messages
    assert [cl_ord_id_of(m) for m in messages] == ["C1.T", "C2.T", "C3.T"]
    assert sent_cl_ord_ids(path) == {"C1.T", "C2.T", "C3.T"}


def test_order_cancel_request_is_valid_fix_naming_the_leg() -> None:
    from connectors.fix.encode import OutboundCancel, encode_outbound

    cancel = OutboundCancel("TP1.C", "TP1", "ACC1", "ACME", "2", Decimal(100), T)
    raw = encode_outbound(cancel, seq=4)
    fields = decode(raw).first_values()
    assert (fields[35], fields[11], fields[41], fields[54], fields[38]) == (
        b"F", b"TP1.C", b"TP1", b"2", b"100"
    )
    assert encode_outbound(order("C1.T"), seq=5) == new_order_single(order("C1.T"), seq=5)
