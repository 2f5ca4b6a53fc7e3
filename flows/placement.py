"""Flows layer: where Bytewax runs a keyed step's key, so that work can stay where its data is.

Bytewax 0.21.1 (pinned: its last release) places the key of a stateful step on worker
`siphash13(key + b"\\xff") % workers` (Rust's `DefaultHasher` over the `String`), and deals the
partitions of a `FixedPartitionedSource` to the workers in turn, in the sorted order of their
names. Left to itself, a symbol shard's key would often land on another worker, or another
process, than the Kafka partition it is read from: every decoded event of that shard would then
be pickled across (with 16 shards and 2 workers, 10 keys landed on one worker and 6 on the
other; 7 of 8 account shards on one). `key_on` picks, for each shard, a key name that Bytewax
places on the worker we want: the reader of its partition for a symbol shard, the next worker
in turn for an account shard. Only placement depends on it, never a result: were Bytewax to
place keys otherwise, the flows would give the same rows, only slower.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from connectors.kafka import FIX_TOPIC
from domain.sharding import SYMBOL_SHARDS, used_partitions
from flows.context import Placement

_M = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def _siphash13(data: bytes) -> int:
    """SipHash-1-3 with keys 0, 0 (Rust's `DefaultHasher::new()`)."""
    v0, v1 = 0x736F6D6570736575, 0x646F72616E646F6D
    v2, v3 = 0x6C7967656E657261, 0x7465646279746573

    def sipround() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _M
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _M
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _M
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _M
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    whole = len(data) // 8 * 8
    for i in range(0, whole, 8):
        (m,) = struct.unpack_from("<Q", data, i)
        v3 ^= m
        sipround()
        v0 ^= m
    last = (len(data) & 0xFF) << 56
    for i, byte in enumerate(data[whole:]):
        last |= byte << (8 * i)
    v3 ^= last
    sipround()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sipround()
    return v0 ^ v1 ^ v2 ^ v3


def worker_of_key(key: str, workers: int) -> int:
    """The worker Bytewax runs a stateful step's `key` on."""
    return _siphash13(key.encode() + b"\xff") % workers


def key_on(name: str, worker: int, workers: int) -> str:
    """`name`, or `name~k` for the least k, that Bytewax places on `worker`."""
    if workers <= 1 or worker_of_key(name, workers) == worker:
        return name
    k = 1
    while worker_of_key(f"{name}~{k}", workers) != worker:
        k += 1
    return f"{name}~{k}"


def partition_workers(parts: Iterable[str], workers: int) -> dict[str, int]:
    """The worker that reads each source partition: dealt in turn, in sorted name order."""
    return {part: i % workers for i, part in enumerate(sorted(parts))}


def spread_keys(prefix: str, count: int, workers: int) -> tuple[str, ...]:
    """Keys `prefix{n}` (as placed) for n < count, dealt to the workers in turn."""
    return tuple(key_on(f"{prefix}{n}", n % workers, workers) for n in range(count))


def plan(
    parts: list[str] | None, workers: int, margin_shards: int, account_shards: int
) -> Placement:
    """The `Placement` of a run of `workers` workers reading `parts` (None: not known).

    Reading `fix.events` partitions, each symbol shard's keys go to the worker that reads its
    partition (`connectors.kafka.symbol_partition`): its events are decoded and processed
    there, never pickled to another process. Otherwise, and for the account shards, keys are
    dealt to the workers in turn.
    """
    shards = range(SYMBOL_SHARDS)
    events = sorted(p for p in parts or () if p.rpartition("/")[0] == FIX_TOPIC)
    if events:
        readers = partition_workers(parts or (), workers)
        used = used_partitions(len(events))
        home = [readers[f"{FIX_TOPIC}/{s % used}"] for s in shards]
    else:
        home = [s % workers for s in shards]
    return Placement(
        symbol=tuple(key_on(str(s), home[s], workers) for s in shards),
        surveil_symbol=tuple(key_on(f"s{s}", home[s], workers) for s in shards),
        margin_account=spread_keys("a", margin_shards, workers),
        surveil_account=spread_keys("a", account_shards, workers),
    )
