"""What the flows left in the stores, for comparing two runs: `bench.stores_digest` holds it
(the scale-out benchmark compares the same contents), re-exported here for the Kafka tests."""

from __future__ import annotations

from bench.stores_digest import (
    CH_TABLES,
    PG_TABLES,
    WRITTEN_COLUMNS,
    clear_clickhouse,
    clickhouse_rows,
    postgres_rows,
    redis_contents,
)

__all__ = [
    "CH_TABLES", "PG_TABLES", "WRITTEN_COLUMNS", "clear_clickhouse", "clickhouse_rows",
    "postgres_rows", "redis_contents",
]  # fmt: skip
