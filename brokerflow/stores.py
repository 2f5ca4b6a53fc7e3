"""Application layer: the stores a run writes to, started (embedded where unconfigured) and
migrated before the dataflow starts, so that sinks never create schemas themselves."""

from __future__ import annotations

from collections.abc import Iterable

from brokerflow.services import Endpoints, ensure_services
from brokerflow.settings import Settings
from sinks.postgres import migrate


def migrate_clickhouse_store(settings: Settings) -> list[str]:
    """Create or update the ClickHouse schema (chdb under the data dir unless configured)."""
    from sinks.clickhouse import migrate_clickhouse, open_store

    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        return migrate_clickhouse(store)
    finally:
        store.close()


def prepare_stores(
    settings: Settings, flows: Iterable[str], clickhouse: bool = True
) -> Endpoints:
    """Start Redis and PostgreSQL if needed, apply the migrations the chosen flows need.

    `clickhouse`: this process may open ClickHouse. The other processes of a cluster on
    embedded chdb must not (one process per directory): the first one migrates it before the
    cluster starts, and writes it (`flows.context.FlowContext.clickhouse_here`).
    """
    from sinks.clickhouse import is_embedded

    endpoints = ensure_services(settings, {"redis", "postgres"})
    migrate(endpoints.postgres_dsn)
    may_open = clickhouse or not is_embedded(settings.clickhouse_url)
    if {"audit", "surveillance"} & set(flows) and may_open:
        migrate_clickhouse_store(settings)
    return endpoints
