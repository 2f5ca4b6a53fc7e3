"""Rows and columns of the ClickHouse tables from domain values: `audit_log` from
`AuditRecord`s, `market_ticks` from `Quote`s, `alerts` from `Alert`s; one tuple per row (`*_rows`)
or one sequence per column (`*_columns`, what the pipelined sinks insert)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

from domain.audit import AuditRecord
from domain.quotes import Quote

AUDIT_COLUMNS = (
    "event_id",
    "timestamp",
    "event_type",
    "account",
    "order_id",
    "cl_ord_id",
    "orig_cl_ord_id",
    "exec_id",
    "symbol",
    "side",
    "ord_type",
    "ord_status",
    "quantity",
    "price",
    "last_qty",
    "last_px",
    "order_details",
    "market_snapshot",
    "raw_fix",
    "source",
)
"""`audit_log` columns in the order of `audit_rows`."""

TICK_COLUMNS = (
    "symbol",
    "ts",
    "seq",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "ltp",
    "ltq",
    "volume",
)
"""`market_ticks` columns in the order of `tick_rows`."""

ALERT_COLUMNS = (
    "alert_id", "event_time", "kind", "severity", "account", "owner", "symbol", "details",
)  # fmt: skip


def audit_rows(records: Iterable[AuditRecord]) -> list[tuple[Any, ...]]:
    """Return `audit_log` rows (in `AUDIT_COLUMNS` order); `timestamp` as epoch microseconds."""
    return [
        (
            r.event_id,
            r.ts_event_us,
            r.event_type,
            r.account,
            r.order_id,
            r.cl_ord_id,
            r.orig_cl_ord_id,
            r.exec_id,
            r.symbol,
            r.side,
            r.ord_type,
            r.ord_status,
            r.quantity,
            r.price,
            r.last_qty,
            r.last_px,
            r.order_details,
            r.market_snapshot,
            r.raw_fix,
            r.source,
        )
        for r in records
    ]


def tick_rows(quotes: Iterable[Quote]) -> list[tuple[Any, ...]]:
    """Return `market_ticks` rows (in `TICK_COLUMNS` order); `ts` as epoch microseconds."""
    return [
        (q.symbol, q.ts * 1000, q.seq, q.bid, q.bid_size, q.ask, q.ask_size, q.ltp, q.ltq, q.volume)
        for q in quotes
    ]


# `AuditRecord` attributes in `AUDIT_COLUMNS` order (`timestamp` is `ts_event_us`).
_AUDIT_ROW = attrgetter(*("ts_event_us" if c == "timestamp" else c for c in AUDIT_COLUMNS))


def audit_columns(records: Sequence[AuditRecord]) -> list[Sequence[Any]]:
    """Return the values of `audit_rows(records)` one sequence per column (`AUDIT_COLUMNS`).

    One C-level `attrgetter` per record and one transposition: no Python loop per value.
    """
    if not records:
        return [() for _ in AUDIT_COLUMNS]
    return list(zip(*map(_AUDIT_ROW, records), strict=True))


def tick_columns(quotes: Sequence[Quote]) -> list[Sequence[Any]]:
    """Return the values of `tick_rows(quotes)` one sequence per column (`TICK_COLUMNS`).

    A `Quote` is a tuple, so one transposition (in C) gives every field's column; only `ts`
    (epoch ms -> µs) is computed per value. The fields after `seq` are not stored.
    """
    if not quotes:
        return [() for _ in TICK_COLUMNS]
    symbol, bid, bid_size, ask, ask_size, ltp, ltq, volume, ts, seq, *_ = zip(*quotes, strict=True)
    return [symbol, [t * 1000 for t in ts], seq, bid, bid_size, ask, ask_size, ltp, ltq, volume]


def alert_rows(alerts: Iterable[Any]) -> list[tuple[Any, ...]]:
    """`alerts` rows (in `ALERT_COLUMNS` order) from `domain.alerts.Alert`s."""
    return [
        (a.alert_id, a.event_time // 1000, a.kind, a.severity, a.account or "", a.owner or "",
         a.symbol or "", a.details_json())
        for a in alerts
    ]  # fmt: skip


def alert_columns(alerts: Sequence[Any]) -> list[Sequence[Any]]:
    """Return the values of `alert_rows(alerts)` one sequence per column (`ALERT_COLUMNS`)."""
    if not alerts:
        return [() for _ in ALERT_COLUMNS]
    return list(zip(*alert_rows(alerts), strict=True))
