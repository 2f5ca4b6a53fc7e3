"""Domain layer: alerts (stops triggered, margin calls, surveillance findings) and their ids.

Pure and stdlib only. `alert_id` is a UUIDv5 of the alert kind and a key derived from the input
that raised it (the stop's ClOrdID, the margin episode, the exec IDs of a wash trade), never of
when or where it was computed, so a replay adds no second alert anywhere (contract: "replaying
the same input twice adds no second row anywhere").

The JSON of an alert (`Alert.to_json`) is what `stream:alerts` carries in its `data` field and
the WebSocket edge forwards: `{"alert_id","kind","severity","account","owner","symbol",
"event_time","details","status"}` with `event_time` in epoch milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.pickling import tuple_pickled

ALERT_NAMESPACE = uuid.UUID("0b6c7f0e-2a4d-5b8e-9c1f-616c65727473")
"""Namespace of alert ids. Never change it: every stored `alert_id` depends on it."""

STOP_TRIGGERED = "STOP_TRIGGERED"
MARGIN_CALL = "MARGIN_CALL"
MARGIN_CALL_CURED = "MARGIN_CALL_CURED"
LIQUIDATION = "LIQUIDATION"
CONCENTRATION = "CONCENTRATION"
WASH_TRADE = "WASH_TRADE"
PUMP_AND_DUMP = "PUMP_AND_DUMP"
SPOOFING = "SPOOFING"
# A trader's own price alert that fired (domain.price_alerts): a notice to the traders of its
# account, never merged into an episode, never in the analysts' queue (edge.roles).
PRICE_ALERT = "PRICE_ALERT"
CIRCUIT_BREAKER = "CIRCUIT_BREAKER"  # the index circuit breaker tripped (market-wide; issue 19)

SEVERITIES = ("INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")


_NAMESPACE_BYTES = ALERT_NAMESPACE.bytes
_VERSION_5 = (~(0xC000 << 48) & ~(0xF000 << 64), (0x8000 << 48) | (5 << 76))


def alert_id(kind: str, key: str) -> str:
    """Return the id of the alert of `kind` raised by the input identified by `key`:
    `str(uuid.uuid5(ALERT_NAMESPACE, f"{kind}|{key}"))`, its steps written out (SHA-1 of the
    namespace and the name, the variant and version bits, the 8-4-4-4-12 hex form) without the
    UUID object in between (one per margin call and cure, stop trigger, finding).

    >>> alert_id("STOP_TRIGGERED", "stop:C1") == alert_id("STOP_TRIGGERED", "stop:C1")
    True
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{kind}|{key}".encode()).digest()
    clear, bits = _VERSION_5
    h = f"{int.from_bytes(digest[:16], 'big') & clear | bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _plain(value: Any) -> Any:
    """JSON-safe evidence: decimals as strings (no digit lost), containers recursively."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return value


@tuple_pickled
@dataclass(frozen=True, slots=True)
class Alert:
    """One alert with its evidence.

    Attributes:
        alert_id: `alert_id(kind, key)`.
        kind: STOP_TRIGGERED, MARGIN_CALL, WASH_TRADE, ... (the constants of this module).
        severity: one of `SEVERITIES`, or a surveillance score "0".."100".
        account: the account it concerns, if any.
        owner: the account's owner, if known.
        symbol: the symbol it concerns, if any.
        event_time: int UTC nanoseconds of the input event that raised it.
        details: the evidence (exec IDs, windows, thresholds, figures), JSON-able; decimals are
            kept as strings.
    """

    alert_id: str
    kind: str
    severity: str
    account: str | None
    owner: str | None
    symbol: str | None
    event_time: int
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity in SEVERITIES:
            return
        if not (self.severity.isdigit() and 0 <= int(self.severity) <= 100):
            msg = f"severity {self.severity!r} is not one of {', '.join(SEVERITIES)} or 0..100"
            raise ValueError(msg)

    def details_json(self) -> str:
        return json.dumps(_plain(self.details), separators=(",", ":"), sort_keys=True)

    def to_json(self) -> str:
        """The alert as `stream:alerts` and the edge carry it."""
        doc = {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "severity": self.severity,
            "account": self.account,
            "owner": self.owner,
            "symbol": self.symbol,
            "event_time": self.event_time // 1_000_000,
            "details": _plain(self.details),
            "status": "OPEN",
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def make_alert(
    kind: str,
    key: str,
    severity: str,
    event_time: int,
    *,
    account: str | None = None,
    owner: str | None = None,
    symbol: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Alert:
    """Build an alert whose id is derived from `kind` and the input `key`."""
    return Alert(
        alert_id(kind, key), kind, severity, account, owner, symbol, event_time, details or {}
    )
