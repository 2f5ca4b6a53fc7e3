"""The `order` frame is valid JSON with exact numbers, whatever the venue put in its strings."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from domain.events import ExecutionReport
from domain.order_status import open_order_keys, order_frame, stop_frame


def report(**kw) -> ExecutionReport:
    fields = dict(exec_id="E1", order_id="O1", cl_ord_id="C1", orig_cl_ord_id=None,
                  exec_type="F", ord_status="1", account="ACC1", symbol="ACME", side="1",
                  order_qty=D(100), ord_type="2", price=D("10.5"), stop_px=None,
                  last_qty=D(40), last_px=D("10.50"), cum_qty=D(40), leaves_qty=D(60),
                  avg_px=D("10.50"), ts_event=1_764_081_000_123_456_789)  # fmt: skip
    fields.update(kw)
    return ExecutionReport(**fields)


@pytest.mark.parametrize("text", ['price "limit" breached', "back\\slash", "naïve – ünïcode",
                                  "tab\there", "line\nbreak", "\x01soh", ""])  # fmt: skip
def test_strings_of_any_kind_make_valid_json(text: str) -> None:
    frame = json.loads(order_frame(report(text=text, cl_ord_id=text or "C1", side=text or "1")))
    assert frame["reason"] == (text or None)
    assert frame["cl_ord_id"] == (text or "C1")


@pytest.mark.parametrize(
    "value", [D("1E+2"), D("0.00000001"), D("-0"), D("187.250"), D("12345678901234.5678")]
)
def test_quantities_and_prices_are_exact_json_numbers(value: D) -> None:
    text = order_frame(report(last_px=value, avg_px=value))
    frame = json.loads(text, parse_float=D, parse_int=D)
    assert frame["last_px"] == value and frame["avg_px"] == value
    assert "E" not in text.split('"last_px":')[1].split(",")[0]


def test_the_frame_names_status_type_and_side_and_keeps_event_time() -> None:
    frame = json.loads(order_frame(report(exec_type="5", ord_status="0", side="5")))
    assert (frame["status"], frame["exec_type"], frame["side"]) == ("REPLACED", "REPLACED",
                                                                   "SELL_SHORT")  # fmt: skip
    assert frame["ts"] == 1_764_081_000_123
    assert order_frame(report(account=None)) is None


@pytest.mark.parametrize(
    ("status", "cl_ord_id", "orig", "keys"),
    [
        ("NEW", "C1", None, ("C1", "", "")),
        ("PARTIALLY_FILLED", "C1", None, ("C1", "", "")),
        ("REPLACED", "C2", "C1", ("C2", "C1", "")),  # moved to the new ClOrdID
        ("PARTIALLY_FILLED", "C2", "C1", ("C2", "C1", "")),  # a fill after a replace
        ("PENDING_CANCEL", "C1-X", "C1", ("C1", "", "")),  # the order's id until answered
        ("PENDING_REPLACE", "C2", "C1", ("C1", "", "")),
        ("CANCELED", "C1-X", "C1", ("", "C1-X", "C1")),  # gone under both ids
        ("FILLED", "C1", None, ("", "C1", "")),
        ("REJECTED", "C9", None, ("", "C9", "")),
        ("EXPIRED", "C3", None, ("", "C3", "")),
        ("DONE_FOR_DAY", "C3", None, ("", "C3", "")),
        ("TRIGGERED", "S1", None, ("", "S1", "")),
        ("HELD", "S1.T", None, ("S1.T", "", "")),
    ],
)
def test_open_order_keys_keep_open_orders_and_drop_final_ones(status, cl_ord_id, orig, keys):
    assert open_order_keys(status, cl_ord_id, orig) == keys


def test_stop_frame_is_an_order_frame_with_the_stop_fields() -> None:
    text = stop_frame(
        status="HELD", account="A1", cl_ord_id="S1.T", symbol="ACME", side="1",
        quantity=D("100"), ts_ns=1_764_081_000_123_456_789, exec_id="held:S1.T",
        reason='kill switch (A1): "review"', extra={"stop_cl_ord_id": "S1", "stop_px": D("10.25")},
    )  # fmt: skip
    frame = json.loads(text)
    regular = json.loads(order_frame(report()))
    assert set(regular) <= set(frame)  # every field a client reads of an order frame
    assert (frame["status"], frame["exec_type"], frame["side"]) == ("HELD", "HELD", "BUY")
    assert (frame["reason"], frame["stop_cl_ord_id"]) == ('kill switch (A1): "review"', "S1")
    assert (frame["order_id"], frame["last_px"], frame["leaves_qty"]) == (None, None, 100)
    assert frame["stop_px"] == 10.25 and frame["ts"] == 1_764_081_000_123
