"""alert.* client messages and the price_alert frame (edge.protocol, pure)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from domain.price_alerts import LTP_BELOW, PriceAlert, PriceAlertFired
from edge import protocol
from edge.claims import Claims
from edge.roles import alert_visible


def parse(doc: dict) -> protocol.Action:
    return protocol.parse_client_message(json.dumps(doc).encode(), 4096, 50)


def test_alert_actions_parse_with_their_fields_as_sent() -> None:
    create = parse({"action": "alert.create", "symbol": "aapl", "condition": "ltp_above",
                    "value": "1.5"})  # fmt: skip
    assert create == protocol.AlertCreate("aapl", "ltp_above", "1.5", None)
    assert parse({"action": "alert.list"}) == protocol.AlertList()
    assert parse({"action": "alert.delete", "id": 7}) == protocol.AlertDelete(7)


@pytest.mark.parametrize("bad", ["7", 0, -1, True, None, 1.5])
def test_alert_delete_needs_a_positive_integer_id(bad: object) -> None:
    with pytest.raises(protocol.ProtocolError, match="^id: "):
        parse({"action": "alert.delete", "id": bad})


def test_price_alert_frame_from_the_stream_entry() -> None:
    alert = PriceAlert(42, "tom", "K1", "MSFT", LTP_BELOW, Decimal("99.5"))
    data = PriceAlertFired(alert, 99.25, 99.5, 1_764_000_000_123).to_alert().to_json().encode()
    frame = json.loads(protocol.price_alert_frame(b"5-1", data))
    assert frame == {"type": "price_alert", "id": 42, "symbol": "MSFT", "condition": "ltp_below",
                     "value": 99.5, "ltp": 99.25, "ts": 1_764_000_000_123, "account": "K1",
                     "stream_id": "5-1"}  # fmt: skip


def test_price_alerts_reach_the_traders_of_their_account_only() -> None:
    tom = Claims("tom", "trader", frozenset({"K1"}), 0)
    ann = Claims("ann", "analyst", frozenset(), 0)
    assert alert_visible(tom, "PRICE_ALERT", "K1")
    assert not alert_visible(tom, "PRICE_ALERT", "K2")
    assert not alert_visible(ann, "PRICE_ALERT", "K1")
