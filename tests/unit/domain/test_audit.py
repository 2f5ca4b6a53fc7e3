"""domain.audit: event types, stable event ids, details and snapshot JSON."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from decimal import Decimal

import pytest

from domain.audit import (
    AUDIT_NAMESPACE,
    EXEC_EVENT_TYPES,
    REQUEST_EVENT_TYPES,
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


@pytest.mark.parametrize("msg_type", ["F", "G"])
def test_audit_record_request_carries_its_order_id(msg_type: str) -> None:
    """Issue 18: a cancel or cancel/replace may carry OrderID (37); its row keeps it."""
    request = order_request(msg_type, cl_ord_id="C2", orig_cl_ord_id="C1", order_id="V9")
    record = audit_record(request, quote())
    assert (record.order_id, record.cl_ord_id, record.orig_cl_ord_id) == ("V9", "C2", "C1")


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


def _reference_snapshot_json(q: Quote) -> str:
    fields = ("symbol", "bid", "bid_size", "ask", "ask_size", "ltp", "ltq", "volume", "ts", "seq")
    return json.dumps({f: getattr(q, f) for f in fields}, separators=(",", ":"))


def test_snapshot_json_equals_json_dumps_on_awkward_quotes() -> None:
    rng = random.Random(11)
    floats = [None, 0.0, -0.0, 0.1 + 0.2, 1e-7, 1e16, 1e22, -3.5, 123456789.125, 5e-324,
              float("nan"), float("inf"), float("-inf"), 100, True]  # fmt: skip
    symbols = ["AAPL", "BRK.B", 'Q"T', "é日本😀", "\x01"]
    for _ in range(5000):
        values = [rng.choice(floats) for _ in range(7)]
        ts, seq = rng.choice([0, 1_764_084_600_000, 2**63 - 1]), rng.randrange(0, 10**9)
        q = Quote(rng.choice(symbols), *values, ts, seq, 1, None, None, None, None)
        assert snapshot_json(q) == _reference_snapshot_json(q)


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


# -- the fast paths against the reference implementation -----------------------------------------
#
# `audit_record` formats event ids and details without uuid.uuid5 / json.dumps(sort_keys=True).
# Below is the straightforward implementation it replaced, kept as the reference: every record,
# over many generated events, must be equal field for field (same strings, byte for byte).


def _reference_details(fields: dict[str, object]) -> str:
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        out[key] = str(value) if isinstance(value, Decimal) else value
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def _reference_event_id(event_type: str, key: str) -> str:
    return str(uuid.uuid5(AUDIT_NAMESPACE, f"{event_type}|{key}"))


def _reference_raw(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")


def _reference_record(event: ExecutionReport | OrderRequest, snapshot: Quote | None) -> AuditRecord:
    if isinstance(event, ExecutionReport):
        event_type = EXEC_EVENT_TYPES[event.exec_type]
        details = _reference_details(
            {
                "exec_type": event.exec_type,
                "ord_status": event.ord_status,
                "order_qty": event.order_qty,
                "ord_type": event.ord_type,
                "price": event.price,
                "stop_px": event.stop_px,
                "last_qty": event.last_qty,
                "last_px": event.last_px,
                "cum_qty": event.cum_qty,
                "leaves_qty": event.leaves_qty,
                "avg_px": event.avg_px,
                "trd_match_id": event.trd_match_id,
                "exec_ref_id": event.exec_ref_id,
                "text": event.text,
                "poss_dup": event.poss_dup or None,
            }
        )
        return AuditRecord(
            event_id=_reference_event_id(event_type, f"exec:{event.exec_id}"),
            ts_event_us=event.ts_event // 1000,
            event_type=event_type,
            account=event.account or "",
            order_id=event.order_id or "",
            cl_ord_id=event.cl_ord_id or "",
            orig_cl_ord_id=event.orig_cl_ord_id or "",
            exec_id=event.exec_id,
            symbol=event.symbol,
            side=event.side,
            ord_type=event.ord_type or "",
            ord_status=event.ord_status,
            quantity=event.order_qty,
            price=event.price,
            last_qty=event.last_qty if event.last_qty is not None else Decimal(0),
            last_px=event.last_px if event.last_px is not None else Decimal(0),
            order_details=details,
            market_snapshot=snapshot_json(snapshot),
            raw_fix=_reference_raw(event.raw),
            source=event.source,
        )
    event_type = REQUEST_EVENT_TYPES[event.msg_type]
    details = _reference_details(
        {
            "msg_type": event.msg_type,
            "order_qty": event.order_qty,
            "ord_type": event.ord_type,
            "price": event.price,
            "stop_px": event.stop_px,
            "time_in_force": event.time_in_force,
            "expire_time": event.expire_time,
            "exec_inst": event.exec_inst,
            "peg_offset_value": event.peg_offset_value,
            "peg_offset_type": event.peg_offset_type,
        }
    )
    return AuditRecord(
        event_id=_reference_event_id(event_type, f"order:{event.msg_type}:{event.cl_ord_id}"),
        ts_event_us=event.ts_event // 1000,
        event_type=event_type,
        account=event.account or "",
        order_id=event.order_id or "",
        cl_ord_id=event.cl_ord_id,
        orig_cl_ord_id=event.orig_cl_ord_id or "",
        exec_id="",
        symbol=event.symbol,
        side=event.side,
        ord_type=event.ord_type or "",
        ord_status="",
        quantity=event.order_qty,
        price=event.price,
        last_qty=Decimal(0),
        last_px=Decimal(0),
        order_details=details,
        market_snapshot=snapshot_json(snapshot),
        raw_fix=_reference_raw(event.raw),
        source=event.source,
    )


_AWKWARD_TEXT = (
    "",
    "a",
    'q"uote',
    "back\\slash",
    "nl\nt\tab\r\x01\x00\x1f\x7f",
    "é ü 日本 😀 \u2028",
    "ORDER_FILLED|exec:E1",
    "|:",
)


def _maybe_decimal(rng: random.Random) -> Decimal | None:
    return rng.choice(
        [
            None,
            Decimal(0),
            Decimal("-0"),
            Decimal("0.0000000001"),
            Decimal("1E+3"),
            Decimal("123456.123456789"),
            Decimal(rng.randrange(-(10**12), 10**12)).scaleb(-rng.randrange(0, 12)),
            Decimal("NaN"),
            Decimal("-Infinity"),
        ]
    )


def _maybe_text(rng: random.Random) -> str | None:
    if rng.random() < 0.3:
        return None
    if rng.random() < 0.5:
        return rng.choice(_AWKWARD_TEXT)
    return "".join(
        chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x3000)]))
        for _ in range(rng.randrange(0, 12))
    )


def _random_event(rng: random.Random) -> ExecutionReport | OrderRequest:
    text = _maybe_text
    if rng.random() < 0.7:
        return exec_report(
            rng.choice(sorted(EXEC_EVENT_TYPES)),
            exec_id=text(rng) or "E",
            order_id=text(rng),
            cl_ord_id=text(rng),
            orig_cl_ord_id=text(rng),
            ord_status=rng.choice("0124568ACE"),
            account=text(rng),
            side=rng.choice("12"),
            order_qty=_maybe_decimal(rng),
            ord_type=text(rng),
            price=_maybe_decimal(rng),
            stop_px=_maybe_decimal(rng),
            last_qty=_maybe_decimal(rng),
            last_px=_maybe_decimal(rng),
            cum_qty=_maybe_decimal(rng),
            leaves_qty=_maybe_decimal(rng),
            avg_px=_maybe_decimal(rng),
            ts_event=rng.randrange(0, 2**63),
            trd_match_id=text(rng),
            exec_ref_id=text(rng),
            text=text(rng),
            poss_dup=rng.random() < 0.5,
            raw=rng.choice(
                [b"", b"8=FIX.4.4\x0135=8\x01", "é\x01".encode(), b"\xff\xfe bad", "str raw"]
            ),
            source=text(rng) or "",
        )
    return order_request(
        rng.choice(sorted(REQUEST_EVENT_TYPES)),
        cl_ord_id=text(rng) or "C",
        orig_cl_ord_id=text(rng),
        account=text(rng),
        side=rng.choice("12"),
        order_qty=_maybe_decimal(rng),
        ord_type=text(rng),
        price=_maybe_decimal(rng),
        stop_px=_maybe_decimal(rng),
        time_in_force=text(rng),
        ts_event=rng.randrange(0, 2**63),
        expire_time=rng.choice([None, 0, rng.randrange(0, 2**63)]),
        exec_inst=text(rng),
        peg_offset_value=_maybe_decimal(rng),
        peg_offset_type=text(rng),
        raw=rng.choice([b"", b"8=FIX.4.4\x0135=D\x01", b"\xc3"]),
        source=text(rng) or "",
        order_id=text(rng),
    )


def test_audit_record_equals_the_reference_on_generated_events() -> None:
    rng = random.Random(20261126)
    for _ in range(5000):
        event = _random_event(rng)
        snapshot = quote(event.symbol) if rng.random() < 0.2 else None
        got = audit_record(event, snapshot)
        want = _reference_record(event, snapshot)
        assert got == want, event
        assert [type(getattr(got, f.name)) for f in dataclasses.fields(got)] == [
            type(getattr(want, f.name)) for f in dataclasses.fields(want)
        ]


def test_audit_record_is_a_real_frozen_record() -> None:
    record = audit_record(exec_report(), None)
    assert type(record) is AuditRecord
    assert hash(record) == hash(_reference_record(exec_report(), None))
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.account = "X"  # type: ignore[misc]


def test_audit_event_id_equals_uuid5_on_many_names() -> None:
    rng = random.Random(7)
    names = [f"ORDER_FILLED|exec:{i}" for i in range(20_000)]
    names += ["", "|", "é", "日本", "😀", "\x00", "a" * 1000]
    names += [_maybe_text(rng) or "" for _ in range(5000)]
    for name in names:
        event_type, _, key = name.partition("|")
        assert audit_event_id(event_type, key) == _reference_event_id(event_type, key)
    # the fast formatting covers every variant digit
    assert {audit_event_id("T", str(i))[19] for i in range(200)} == set("89ab")
