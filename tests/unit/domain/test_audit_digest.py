"""The audit trail's digests without a store: the same row read two ways hashes the same, the
chain depends on every row, its order and its day, and `diff` names what changed."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal

from domain.audit_digest import (
    AUDIT_COLUMNS,
    chain,
    column_hashes,
    diff,
    row_encoding,
    row_hash,
    seal_rows,
)

UTC = dt.UTC


def row(n: int, account: str = "ACC1", last_px: str = "100.20") -> tuple:
    values = {
        "event_id": uuid.uuid5(uuid.NAMESPACE_OID, f"e{n}"),
        "timestamp": dt.datetime(2024, 3, 4, 10, 0, n, tzinfo=UTC),
        "event_type": "ORDER_FILLED",
        "account": account,
        "quantity": None,
        "price": Decimal("101"),
        "last_qty": Decimal("60"),
        "last_px": Decimal(last_px),
        "raw_fix": f"8=FIX.4.4\x011={account}\x01",
    }
    return tuple(values.get(c, f"{c}-{n}") for c in AUDIT_COLUMNS)


def test_the_same_row_read_from_parquet_or_clickhouse_hashes_the_same() -> None:
    from_store = row(1)
    # Parquet gives decimals at the column's scale, a zoneinfo UTC, and the id as text.
    from_file = list(from_store)
    from_file[0] = str(from_store[0])
    from_file[1] = from_store[1].replace(tzinfo=zoneinfo.ZoneInfo("UTC"))
    from_file[13] = Decimal("101.0000000000")
    from_file[15] = Decimal("100.2000000000")
    assert row_encoding(from_file) == row_encoding(from_store)
    assert row_hash(from_file) == row_hash(from_store)
    assert b'"2024-03-04T10:00:01.000000Z"' in row_encoding(from_store)
    assert row_hash(row(1, last_px="100.21")) != row_hash(from_store)
    assert len(column_hashes(from_store)) == 4 * len(AUDIT_COLUMNS)


def test_the_chain_depends_on_every_row_their_order_and_the_day() -> None:
    hashes = [row_hash(row(n)) for n in range(3)]
    digest = chain("2024-03-04", hashes)
    assert digest == chain("2024-03-04", list(hashes))
    assert chain("2024-03-04", hashes[:2]) != digest  # a row less
    assert chain("2024-03-04", [hashes[1], hashes[0], hashes[2]]) != digest  # reordered
    assert chain("2024-03-05", hashes) != digest  # the same rows under another day
    assert chain("2024-03-04", []) != chain("2024-03-05", [])


def test_diff_names_changed_deleted_and_added_rows_and_the_changed_columns() -> None:
    sealed = seal_rows([row(1), row(2), row(3)])
    current = seal_rows([row(1, account="ACC9"), row(3), row(4)])
    found = diff(sealed, current)
    by_id = {f.event_id: f for f in found}
    changed = by_id[str(row(1)[0])]
    assert changed.kind == "changed"
    assert changed.columns == ("account", "raw_fix")
    assert f"changed row {row(1)[0]} ORDER_FILLED at 2024-03-04T10:00:01.000000Z: account, " in (
        changed.line() + " "
    )
    assert by_id[str(row(2)[0])].kind == "deleted"
    assert by_id[str(row(4)[0])].kind == "added"
    assert str(row(3)[0]) not in by_id
    assert [f.kind for f in found] == ["changed", "deleted", "added"]  # in time order
    assert diff(sealed, seal_rows([row(1), row(2), row(3)])) == []
