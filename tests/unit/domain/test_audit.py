"""domain.audit: event types, stable event ids, details and snapshot JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from domain.audit import (
    AuditRecord,
    audit_event_id,
    audit_record,
    order_triggered,
    snapshot_json,
)
from domain.errors import FieldError, InvariantViolation
from domain.events import ExecutionReport, OrderRequest
from domain.quotes import Quote

TS = 1_700_000_000_123_456_789  # ns


def quote(symbol: str = "AAPL") -> Quote:
    return Quote(
        symbol,
        99.5,
        200.0,
        100.5,
        300.0,
        100.0,
        10.0,
        5000.0,
        TS // 1_000_000,
        7,
        19675,
        98.0,
        101.0,
        97.0,
        None,
    )


def exec_report(exec_type: str = "F", **overrides: object) -> ExecutionReport:
    values: dict[str, object] = dict(
        exec_id="E1",
        order_id="O1",
        cl_ord_id="C1",
        orig_cl_ord_id=None,
        exec_type=exec_type,
        ord_status="1",
        account="ACC1",
        symbol="AAPL",
        side="1",
        order_qty=Decimal(100),
        ord_type="2",
        price=Decimal("100.25"),
        stop_px=None,
        last_qty=Decimal(40),
        last_px=Decimal("100.2"),
        cum_qty=Decimal(40),
        leaves_qty=Decimal(60),
        avg_px=Decimal("100.2"),
        ts_event=TS,
        raw=b"8=FIX.4.4\x0135=8\x01",
        source="file:a.fix:3",
    )
    values.update(overrides)
    return ExecutionReport(**values)  # type: ignore[arg-type]


def order_request(msg_type: str = "D", **overrides: object) -> OrderRequest:
    values: dict[str, object] = dict(
        msg_type=msg_type,
        cl_ord_id="C1",
        orig_cl_ord_id=None,
        account="ACC1",
        symbol="AAPL",
        side="1",
        order_qty=Decimal(100),
        ord_type="2",
        price=Decimal("100.25"),
        stop_px=None,
        time_in_force="0",
        ts_event=TS,
        raw=b"8=FIX.4.4\x0135=D\x01",
        source="file:a.fix:1",
    )
    values.update(overrides)
    return OrderRequest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg_type", "event_type"),
    [("D", "ORDER_PLACED"), ("G", "ORDER_MODIFIED"), ("F", "ORDER_CANCEL_REQUESTED")],
)
def test_audit_record_request_event_types(msg_type: str, event_type: str) -> None:
    record = audit_record(order_request(msg_type), quote())
    assert record.event_type == event_type
    assert record.exec_id == "" and record.order_id == ""
    assert record.quantity == Decimal(100) and record.price == Decimal("100.25")


@pytest.mark.parametrize(
    ("exec_type", "event_type"),
    [
        ("0", "ORDER_ACCEPTED"),
        ("F", "ORDER_FILLED"),
        ("4", "ORDER_CANCELLED"),
        ("5", "ORDER_MODIFIED"),
        ("8", "ORDER_REJECTED"),
        ("C", "ORDER_EXPIRED"),
        ("H", "TRADE_CANCELLED"),
        ("G", "TRADE_CORRECTED"),
        ("D", "ORDER_RESTATED"),
        ("L", "ORDER_TRIGGERED"),
    ],
)
def test_audit_record_exec_event_types(exec_type: str, event_type: str) -> None:
    assert audit_record(exec_report(exec_type), None).event_type == event_type


def test_audit_record_unknown_exec_type_is_field_error() -> None:
    with pytest.raises(FieldError) as info:
        audit_record(exec_report("Z"), None)
    assert info.value.tag == 150


def test_audit_record_unknown_msg_type_is_field_error() -> None:
    with pytest.raises(FieldError) as info:
        audit_record(order_request("Q"), None)
    assert info.value.tag == 35


def test_audit_record_fill_fields_and_details() -> None:
    record = audit_record(exec_report(), quote())
    assert isinstance(record, AuditRecord)
    assert record.ts_event_us == TS // 1000
    assert (record.last_qty, record.last_px) == (Decimal(40), Decimal("100.2"))
    details = json.loads(record.order_details)
    assert details["ord_status"] == "1"  # partial fill
    assert details["cum_qty"] == "40" and details["leaves_qty"] == "60"
    assert "stop_px" not in details  # None fields are left out
    assert record.raw_fix == "8=FIX.4.4\x0135=8\x01"
    assert record.source == "file:a.fix:3"


def test_audit_record_snapshot_is_the_quote_json() -> None:
    snapshot = json.loads(audit_record(exec_report(), quote()).market_snapshot)
    assert snapshot == {
        "symbol": "AAPL",
        "bid": 99.5,
        "bid_size": 200.0,
        "ask": 100.5,
        "ask_size": 300.0,
        "ltp": 100.0,
        "ltq": 10.0,
        "volume": 5000.0,
        "ts": TS // 1_000_000,
        "seq": 7,
    }
    assert audit_record(exec_report(), None).market_snapshot == "{}"
    assert snapshot_json(None) == "{}"


def test_audit_record_snapshot_of_another_symbol_is_invariant_violation() -> None:
    with pytest.raises(InvariantViolation):
        audit_record(exec_report(), quote("MSFT"))


def test_audit_record_event_id_ignores_source_and_snapshot() -> None:
    first = audit_record(exec_report(source="file:a.fix:3"), quote())
    again = audit_record(exec_report(source="file:b.fix:99", poss_dup=True), None)
    assert first.event_id == again.event_id
    assert first.event_id == audit_event_id("ORDER_FILLED", "exec:E1")


def test_audit_record_event_id_differs_by_key_and_type() -> None:
    ids = {
        audit_record(exec_report(), None).event_id,
        audit_record(exec_report(exec_id="E2"), None).event_id,
        audit_record(exec_report("4"), None).event_id,
        audit_record(order_request("D"), None).event_id,
        audit_record(order_request("G"), None).event_id,
        audit_record(order_request("D", cl_ord_id="C2"), None).event_id,
    }
    assert len(ids) == 6


def test_order_triggered_generic_constructor() -> None:
    record = order_triggered(
        cl_ord_id="S1",
        account="ACC1",
        symbol="AAPL",
        side="2",
        ts_event=TS,
        snapshot=quote(),
        quantity=Decimal(10),
        details={"stop_px": Decimal("99.0"), "trigger_px": 98.9},
        source="stop_engine",
    )
    assert record.event_type == "ORDER_TRIGGERED"
    assert record.event_id == audit_event_id("ORDER_TRIGGERED", "trigger:S1")
    assert json.loads(record.order_details) == {"stop_px": "99.0", "trigger_px": 98.9}
    assert record.last_qty == 0 and record.raw_fix == ""
