"""Console layer: an alert's evidence drawn from ClickHouse — the symbol's market around the
alert (`market_ticks`) and the orders and fills of the accounts concerned (`audit_log`), for
the alert page's chart, its order table and links to the audit trail.

The window covers every instant the evidence names (the occurrences of an episode, a pump's
first buy, a spoofer's fill and cancels), padded on both sides. Ticks are thinned to at most
`MAX_POINTS` (the last quote of each interval), so a 48-hour pump draws as fast as a spoof.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from console.tables import records

NS_PER_MS = 1_000_000
MIN_PAD_NS = 60 * 1_000_000_000
MAX_SPAN_NS = 3 * 86_400 * 1_000_000_000
MAX_POINTS = 1500
MAX_EVENTS = 5000
# Keys ending `_ns` that are lengths of time, not instants.
_DURATIONS = ("window_ns", "within_ns", "gap_ns", "max_resting_ns", "close_ns_of_day")


def _instants(value: Any, key: str = "") -> Iterable[int]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _instants(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _instants(v, key)
    elif (isinstance(value, int) and not isinstance(value, bool) and key.endswith("_ns")
          and key not in _DURATIONS and value > 10**17):  # fmt: skip
        yield value


MIN_BAND_NS = 60 * 1_000_000_000


def band(details: Mapping[str, Any], event_ns: int) -> tuple[int, int] | None:
    """The model's look-back window ending at the alert, when it is a minute or longer (marking
    the close's last 30 minutes): shaded on the chart. Shorter windows (a spoof's 15 s, a
    self-match's second) would be a line, not a band."""
    length = details.get("window_ns")
    if isinstance(length, int) and not isinstance(length, bool) and length >= MIN_BAND_NS:
        return event_ns - length, event_ns
    return None


def window(details: Mapping[str, Any], event_ns: int) -> tuple[int, int]:
    """The chart's [start, end) in epoch ns: every instant of the evidence, padded."""
    shaded = band(details, event_ns)
    times = [event_ns, *_instants(details), *(shaded or ())]
    first, last = min(times), max(times)
    if last - first > MAX_SPAN_NS:  # an old instant (a week-old buy): keep the alert's end
        first = last - MAX_SPAN_NS
    pad = max(MIN_PAD_NS, (last - first) // 4)
    return first - pad, last + pad


def accounts_of(alert: Mapping[str, Any]) -> list[str]:
    """The accounts whose orders belong on the chart: the alert's, or those the evidence
    names (an owner's wash trade across accounts)."""
    named = alert.get("details", {}).get("accounts") or []
    accounts = {a for a in named if isinstance(a, str) and a}
    if alert.get("account"):
        accounts.add(alert["account"])
    return sorted(accounts)


_TICKS = """
SELECT toUnixTimestamp64Milli(max(ts)) AS t, argMax(bid, (ts, seq)) AS bid,
       argMax(ask, (ts, seq)) AS ask, argMax(ltp, (ts, seq)) AS ltp, max(volume) AS volume
FROM market_ticks FINAL
WHERE symbol = {symbol:String}
  AND ts >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND ts < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
GROUP BY intDiv(toUnixTimestamp64Micro(ts), {bucket_us:Int64})
ORDER BY t
"""

_EVENTS = """
SELECT toUnixTimestamp64Milli(timestamp) AS t, event_type, account, side, order_id, cl_ord_id,
       orig_cl_ord_id, exec_id, ord_status, quantity, price, last_qty, last_px,
       toString(event_id) AS event_id
FROM audit_log FINAL
WHERE has(splitByChar(',', {accounts:String}), account) AND symbol = {symbol:String}
  AND timestamp >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND timestamp < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
  AND event_type != 'ANALYST_ACTION'
ORDER BY timestamp, event_id
LIMIT {limit:UInt32}
"""


def chart_data(store: Any, alert: Mapping[str, Any], event_ns: int) -> dict[str, Any]:
    """The market and the orders around an alert, for its page.

    Returns `{"from_ms","to_ms","ticks":{"t","bid","ask","ltp","volume"} (columns),
    "events":[{t, event_type, side, cl_ord_id, …, event_id}], "band": {"from_ms","to_ms",
    "minutes"} or None}`; empty lists when the alert has no symbol.
    """
    details = alert.get("details") or {}
    start, end = window(details, event_ns)
    shaded = band(details, event_ns)
    out: dict[str, Any] = {"from_ms": start // NS_PER_MS, "to_ms": end // NS_PER_MS,
                           "ticks": {"t": [], "bid": [], "ask": [], "ltp": [], "volume": []},
                           "events": [], "band": None}  # fmt: skip
    if shaded is not None:
        out["band"] = {"from_ms": shaded[0] // NS_PER_MS, "to_ms": shaded[1] // NS_PER_MS,
                       "minutes": (shaded[1] - shaded[0]) // (60 * 1_000_000_000)}  # fmt: skip
    symbol = alert.get("symbol")
    if not symbol:
        return out
    span_us = (end - start) // 1000
    bounds = {"symbol": symbol, "start_us": start // 1000, "end_us": end // 1000}
    _, rows = store.query(
        _TICKS, {**bounds, "bucket_us": max(1000, span_us // MAX_POINTS)}, readonly=True
    )
    ticks = out["ticks"]
    for t, bid, ask, ltp, volume in rows:
        ticks["t"].append(int(t))
        ticks["bid"].append(bid)
        ticks["ask"].append(ask)
        ticks["ltp"].append(ltp)
        ticks["volume"].append(volume)
    accounts = accounts_of(alert)
    if accounts:
        columns, rows = store.query(
            _EVENTS, {**bounds, "accounts": ",".join(accounts), "limit": MAX_EVENTS}, readonly=True
        )
        out["events"] = records(columns, rows)
    return out


# The alias `event_id` (a String) is what the WHERE compares the parameter with.
_AUDIT_ROW = """
SELECT toString(event_id) AS event_id, timestamp, event_type, account, order_id, cl_ord_id,
       orig_cl_ord_id, exec_id, symbol, side, ord_type, ord_status, quantity, price, last_qty,
       last_px, order_details, market_snapshot, raw_fix, source
FROM audit_log FINAL WHERE event_id = {event_id:String} LIMIT 1
"""


def audit_row(store: Any, event_id: str) -> dict[str, Any] | None:
    """One row of the audit trail by its event id, or None."""
    columns, rows = store.query(_AUDIT_ROW, {"event_id": event_id}, readonly=True)
    if not rows:
        return None
    return records(columns, rows)[0]
