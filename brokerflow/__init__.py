"""brokerflow: FIX market data and order events through Bytewax dataflows into Redis, PostgreSQL
and ClickHouse. This package holds the command line, configuration and embedded services."""

__version__ = "0.1.0"
