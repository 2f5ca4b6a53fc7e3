"""Events and rows that cross between processes pickle as their values and come back equal."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from domain.alerts import make_alert
from domain.dead_letters import DeadLetter
from domain.events import (
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    MdEntry,
    OrderList,
    OrderRequest,
)
from domain.pickling import tuple_pickled

D = Decimal


def _samples() -> list:
    entry = MdEntry("2", "0", 187.25, 100.0, "T1")
    report = ExecutionReport(
        "E1", "O1", "C1", None, "F", "2", "ACC1", "AAPL", "1", D(100), "2", D("187.3"), None,
        D(100), D("187.25"), D(100), D(0), D("187.25"), 1_795_617_000_000_000_000,
        trd_match_id="M1", raw=b"8=FIX.4.4\x01", source="kafka:fix:7",
    )  # fmt: skip
    order = OrderRequest("D", "C2", None, "ACC1", "AAPL", "2", D(50), "3", None, D(180), "1",
                         1_795_617_000_000_000_001)  # fmt: skip
    return [
        entry,
        MarketDataIncrement("AAPL", 1_795_617_000_000_000_000, (entry, entry)),
        MarketDataSnapshot("AAPL", 1_795_617_000_000_000_000, (entry,)),
        report,
        order,
        OrderList("L1", "1", [order, order], 1_795_617_000_000_000_002, "ACC1", "AAPL"),
        make_alert("MARGIN_CALL", "ACC1:1", "HIGH", 1_795_617_000_000_000_000, account="ACC1"),
        DeadLetter("kafka:fix:9", "Symbol(55) missing", b"8=FIX", "decode_fix", "FieldError",
                   55, 0),  # fmt: skip
    ]


@pytest.mark.parametrize("value", _samples(), ids=lambda v: type(v).__name__)
def test_pickles_as_its_values_and_comes_back_equal(value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert pickle.loads(data) == value
    assert type(value).__reduce__ is not object.__reduce__  # not dataclasses' slow state


def test_a_class_with_fields_outside_init_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Odd:
        a: int
        b: list = field(default_factory=list, init=False)

    with pytest.raises(TypeError, match="outside __init__"):
        tuple_pickled(Odd)
