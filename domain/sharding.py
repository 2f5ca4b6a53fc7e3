"""Domain layer: the symbol shards, the unit of parallel work of every symbol-keyed step.

One function places a symbol: the quote coalescer, the stop engine, the surveillance symbol
models and the margin marks all keep a symbol in shard `symbol_shard(symbol)`, and the gateway
publishes it to Kafka partition `symbol_shard(symbol) % partitions`. So each shard's messages
come from one partition, in the gateway's order, and a shard sees the same events in a replay,
in one process or in many: what the shard decides does not depend on how the work was spread.
"""

from __future__ import annotations

import zlib

SYMBOL_SHARDS = 16
"""Shards of the symbol-keyed steps: also the most partitions a symbol-keyed topic can use."""


def symbol_shard(symbol: str) -> int:
    return zlib.crc32(symbol.encode()) % SYMBOL_SHARDS


def used_partitions(partitions: int) -> int:
    """How many of a symbol-keyed topic's partitions hold shards: one shard per partition at
    most, so partitions past `SYMBOL_SHARDS` stay empty."""
    return min(partitions, SYMBOL_SHARDS)


def partition_shards(partition: int, partitions: int) -> tuple[int, ...]:
    """The symbol shards whose messages partition `partition` of `partitions` carries."""
    return tuple(s for s in range(SYMBOL_SHARDS) if s % partitions == partition)
