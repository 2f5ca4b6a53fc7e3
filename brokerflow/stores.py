"""Application layer: the stores a run writes to, started (embedded where unconfigured) and
migrated before the dataflow starts, so that sinks never create schemas themselves."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from brokerflow.services import Endpoints, ensure_services
from brokerflow.settings import Settings, load_settings
from sinks.postgres import migrate

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore


def migrate_clickhouse_store(settings: Settings) -> list[str]:
    """Create or update the ClickHouse schema (chdb under the data dir unless configured), with
    the audit trail's retention (`audit_retention_years`)."""
    from sinks.clickhouse import migrate_clickhouse, open_store, set_audit_retention

    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        applied = migrate_clickhouse(store)
        set_audit_retention(store, settings.audit_retention_years)
        return applied
    finally:
        store.close()


def prepare_stores(settings: Settings, flows: Iterable[str], process_id: int = 0) -> Endpoints:
    """Start Redis and PostgreSQL if needed, apply the migrations the chosen flows need.

    `process_id`: this process's index in a cluster; ClickHouse is migrated only where it may
    be opened (`sinks.clickhouse.opens_store`: embedded chdb by the first process alone).
    """
    from sinks.clickhouse import opens_store

    endpoints = ensure_services(settings, {"redis", "postgres"})
    migrate(endpoints.postgres_dsn)
    may_open = opens_store(settings.clickhouse_url, process_id)
    if {"audit", "surveillance"} & set(flows) and may_open:
        migrate_clickhouse_store(settings)
    return endpoints


def open_clickhouse(args: argparse.Namespace) -> ClickHouseStore:
    """Open the configured ClickHouse store (the command's --config and --data-dir) and bring
    its schema up to date; shared by `report`, `sql clickhouse`, `audit` and `gdpr`."""
    from sinks.clickhouse import migrate_clickhouse, open_store

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        migrate_clickhouse(store)  # schemas are created on first use
    except BaseException:
        store.close()
        raise
    return store
