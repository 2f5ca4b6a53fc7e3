"""What the ClickHouse contract tests share: the small book of the report tests (`scenario`),
generated ticks and audit rows with awkward values, and a hand-written fake of
clickhouse-connect's client (no server can run here).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from decimal import Decimal
from typing import Any

from domain.audit import AuditRecord, audit_record
from domain.events import ExecutionReport, OrderRequest
from domain.quotes import Quote

UTC = dt.UTC


def ns(text: str) -> int:
    """UTC 'YYYY-MM-DD HH:MM:SS' → epoch nanoseconds."""
    when = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000_000


def quote(
    symbol: str,
    bid: float | None,
    ask: float | None,
    when: str,
    ltp: float = 0.0,
    volume: float = 0.0,
    seq: int = 1,
) -> Quote:
    ts = ns(when) // 1_000_000
    return Quote(
        symbol,
        bid,
        100.0,
        ask,
        100.0,
        ltp or None,
        100.0 if ltp else None,
        volume,
        ts,
        seq,
        ts // 86_400_000,
        None,
        None,
        None,
        None,
    )


def request(
    msg_type: str,
    cl_ord_id: str,
    account: str,
    symbol: str,
    side: str,
    when: str,
    qty: str = "100",
    orig: str | None = None,
) -> OrderRequest:
    raw = f"8=FIX.4.4\x0135={msg_type}\x011={account}\x0111={cl_ord_id}\x01".encode()
    return OrderRequest(
        msg_type,
        cl_ord_id,
        orig,
        account,
        symbol,
        side,
        Decimal(qty),
        "2",
        Decimal("101"),
        None,
        "0",
        ns(when),
        raw=raw,
        source="file:t.fix:1",
    )


def execution(
    exec_type: str,
    exec_id: str,
    order_id: str,
    cl_ord_id: str,
    account: str,
    symbol: str,
    side: str,
    when: str,
    last_qty: str = "0",
    last_px: str = "0",
    ord_status: str = "0",
    exec_ref_id: str | None = None,
    source: str = "file:t.fix:2",
) -> ExecutionReport:
    raw = f"8=FIX.4.4\x0135=8\x011={account}\x0117={exec_id}\x01".encode()
    return ExecutionReport(
        exec_id,
        order_id,
        cl_ord_id,
        None,
        exec_type,
        ord_status,
        account,
        symbol,
        side,
        Decimal(100),
        "2",
        Decimal("101"),
        None,
        Decimal(last_qty),
        Decimal(last_px),
        Decimal(last_qty),
        Decimal(0),
        Decimal(last_px),
        ns(when),
        exec_ref_id=exec_ref_id,
        raw=raw,
        source=source,
    )


def fill_f1(source: str = "file:t.fix:2") -> ExecutionReport:
    """The scenario's fill F1 (ACC1 buys 60 AAPL @ 100.20), as delivered by `source`."""
    return execution(
        "F", "F1", "O1", "C1b", "ACC1", "AAPL", "1", "2024-03-04 10:00:05", "60", "100.20", "1",
        source=source,
    )  # fmt: skip


def scenario() -> tuple[list[AuditRecord], list[Quote]]:
    """The small book of the report tests; the expected figures are worked out in each test."""
    aapl_0 = quote("AAPL", 100.00, 100.20, "2024-03-04 10:00:00")  # arrival mid 100.10
    aapl_1 = quote("AAPL", 100.10, 100.30, "2024-03-04 10:00:01")  # mid 100.20 (later)
    msft = quote("MSFT", 400.0, 401.0, "2024-03-04 10:59:00")  # mid 400.5
    D, F, G = "D", "F", "G"
    records = [
        audit_record(request(D, "C1", "ACC1", "AAPL", "1", "2024-03-04 10:00:00"), aapl_0),
        audit_record(
            execution("0", "A0", "O1", "C1", "ACC1", "AAPL", "1", "2024-03-04 10:00:01"), aapl_1
        ),
        audit_record(
            request(G, "C1b", "ACC1", "AAPL", "1", "2024-03-04 10:00:03", orig="C1"), aapl_1
        ),
        audit_record(
            execution("5", "R1", "O1", "C1b", "ACC1", "AAPL", "1", "2024-03-04 10:00:04"), aapl_1
        ),
        audit_record(fill_f1(), aapl_1),
        audit_record(
            execution(
                "F",
                "F2",
                "O1",
                "C1b",
                "ACC1",
                "AAPL",
                "1",
                "2024-03-04 10:00:10",
                "40",
                "100.30",
                "2",
            ),
            aapl_1,
        ),
        audit_record(request(D, "C2", "ACC2", "MSFT", "2", "2024-03-04 10:59:00", "50"), msft),
        audit_record(
            execution(
                "F",
                "F3",
                "O2",
                "C2",
                "ACC2",
                "MSFT",
                "2",
                "2024-03-04 11:00:00",
                "50",
                "400.00",
                "2",
            ),
            msft,
        ),
        audit_record(request(D, "C3", "ACC1", "AAPL", "2", "2024-03-04 11:59:00", "10"), None),
        audit_record(
            execution(
                "F",
                "F4",
                "O3",
                "C3",
                "ACC1",
                "AAPL",
                "2",
                "2024-03-04 12:00:00",
                "10",
                "100.50",
                "2",
            ),
            None,
        ),
        audit_record(
            execution(
                "H",
                "F4X",
                "O3",
                "C3",
                "ACC1",
                "AAPL",
                "2",
                "2024-03-04 12:05:00",
                "10",
                "100.50",
                "2",
                exec_ref_id="F4",
            ),
            None,
        ),
        audit_record(request(D, "C7", "ACC1", "AAPL", "1", "2024-03-04 13:00:00"), None),
        audit_record(request(F, "C9", "ACC1", "AAPL", "1", "2024-03-04 13:01:00", orig="C7"), None),
        audit_record(
            execution(
                "F",
                "F5",
                "O5",
                "C5",
                "ACC1",
                "AAPL",
                "2",
                "2024-03-20 15:00:00",
                "30",
                "99.00",
                "2",
            ),
            None,
        ),
        audit_record(
            execution(
                "F",
                "F6",
                "O6",
                "C6",
                "ACC1",
                "AAPL",
                "1",
                "2024-04-25 15:00:00",
                "30",
                "98.00",
                "2",
            ),
            None,
        ),
        audit_record(
            execution(
                "F",
                "F7",
                "O7",
                "C7x",
                "ACC2",
                "AAPL",
                "1",
                "2024-03-21 15:00:00",
                "5",
                "99.50",
                "2",
            ),
            None,
        ),
    ]
    # AAPL tape of 2024-03-04, cumulative day volume.
    ticks = [
        quote("AAPL", 99.9, 100.1, "2024-03-04 09:59:00", 100.00, 1000, 1),  # before arrival
        quote("AAPL", 100.0, 100.2, "2024-03-04 10:00:02", 100.10, 1100, 2),  # +100 @ 100.10
        quote("AAPL", 100.1, 100.3, "2024-03-04 10:00:04", 100.10, 1100, 3),  # quote only
        quote("AAPL", 100.1, 100.3, "2024-03-04 10:00:05", 100.20, 1400, 4),  # +300 @ 100.20
        quote("AAPL", 100.2, 100.4, "2024-03-04 10:00:08", 100.40, 1500, 5),  # +100 @ 100.40
        quote("AAPL", 100.2, 100.4, "2024-03-04 10:00:10", 100.30, 1600, 6),  # +100 @ 100.30
        quote("AAPL", 100.4, 100.6, "2024-03-04 10:00:20", 100.50, 2000, 7),  # after the fills
    ]
    return records, ticks


def make_ticks(n: int) -> list[Quote]:
    """`n` quotes of 7 symbols, some sides missing, awkward floats included."""
    rng = random.Random(5)
    out = []
    for i in range(n):
        bid = rng.choice([None, 0.1 + 0.2, 1e-7, 123456789.125, float(i)])
        ask = None if bid is None else bid + rng.choice([0.01, 1 / 3])
        ts = 1_709_546_400_000 + i * 7
        out.append(
            Quote(f"S{i % 7}", bid, rng.choice([None, 100.0]), ask, 5e5, rng.choice([None, 9.99]),
                  rng.choice([None, 10.0]), float(i), ts, i, ts // 86_400_000, None, 1.0, 2.0,
                  None)
        )  # fmt: skip
    return out


def transposed(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)]


def rows_of(data: list[list[Any]]) -> list[tuple[Any, ...]]:
    return list(zip(*data, strict=True))


AWKWARD_STRINGS = (
    "",
    "8=FIX.4.4\x01 \"quoted\" 'single' tab\t nl\n cr\r backslash\\ \x00\x1f\x7f",
    "é ü 日本 😀 𝄞 \u2028\u2029 \ufeff",
    "{}",
    '{"a":"b\\"c"}',
)


def generated_audit_rows(n: int) -> list[tuple[Any, ...]]:
    rng = random.Random(42)
    rows = []
    for i in range(n):
        text = rng.choice(AWKWARD_STRINGS) + str(i)
        rows.append(
            (
                rng.choice([str(uuid.UUID(int=rng.getrandbits(128))), uuid.UUID(int=i)]),
                rng.choice(
                    [
                        rng.randrange(1_700_000_000_000_000, 1_705_000_000_000_000),
                        1_709_546_400_000_001,
                        dt.datetime(2024, 3, 4, 10, 0, 0, i % 1_000_000, tzinfo=UTC),
                    ]
                ),
                rng.choice(["ORDER_FILLED", "ORDER_ACCEPTED"]),
                text,
                rng.choice(AWKWARD_STRINGS),
                f"C{i}",
                "",
                f"E{i}",
                "AAPL",
                "1",
                "2",
                "F",
                rng.choice([None, Decimal("0.0000000001"), Decimal(i)]),
                rng.choice([None, Decimal("123456.123456789"), Decimal("-1E+5")]),
                rng.choice([Decimal(0), Decimal("1.5"), Decimal("-0.0000000001")]),
                rng.choice([Decimal(0), Decimal("99999999999.9999999999")]),
                rng.choice(AWKWARD_STRINGS),
                "{}",
                text,
                f"file:t.fix:{i}",
            )
        )
    return rows


class Result:
    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.column_names = columns
        self.result_rows = rows


class FakeClient:
    """Records what `ServerStore` asks of clickhouse-connect's `Client`."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def command(self, sql: str, parameters: dict[str, Any]) -> None:
        self.calls.append(("command", sql, parameters))

    def query(self, sql: str, parameters: dict[str, Any], settings: Any) -> Result:
        self.calls.append(("query", sql, parameters, settings))
        return Result(["a"], [(1,)])

    def insert(
        self, table: str, data: Any, column_names: list[str], column_oriented: bool = False
    ) -> None:
        kind = "insert_columns" if column_oriented else "insert"
        self.calls.append((kind, table, list(data), column_names))

    def close(self) -> None:
        self.calls.append(("close",))
