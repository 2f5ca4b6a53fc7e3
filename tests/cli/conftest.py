"""Fixtures of the command-line tests."""

from tests.kafka.conftest import kafka_bootstrap  # noqa: F401 - the gateway's Kafka
