"""`flows.placement` knows where Bytewax runs a key and reads a partition: checked against
Bytewax itself, 3 workers in one process."""

from __future__ import annotations

import threading

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import cluster_main

from flows.placement import key_on, partition_workers, plan

WORKERS = 3
PARTS = [f"fix.events/{n}" for n in range(16)] + ["fix.unrouted/0"]


class _Part(StatefulSourcePartition):
    def __init__(self, name: str) -> None:
        self.name, self.done = name, False

    def next_batch(self) -> list:
        if self.done:
            raise StopIteration
        self.done = True
        return [("read", (self.name, threading.get_ident()))]

    def snapshot(self) -> None:
        return None


class _Source(FixedPartitionedSource):
    def list_parts(self) -> list[str]:
        return PARTS

    def build_part(self, step_id: str, for_part: str, resume_state: object) -> _Part:
        return _Part(for_part)


class _Sink(DynamicSink):
    def __init__(self, seen: list) -> None:
        self.seen = seen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> StatelessSinkPartition:
        seen = self.seen

        class Part(StatelessSinkPartition):
            def write_batch(self, items: list) -> None:
                seen.extend((item, worker_index, threading.get_ident()) for item in items)

        return Part()


def test_keys_and_partitions_land_where_placement_says() -> None:
    wanted = {key_on(f"k{n}", n % WORKERS, WORKERS): n % WORKERS for n in range(12)}
    seen: list = []
    flow = Dataflow("placement")
    read = op.input("in", flow, _Source())
    op.output("reads", op.key_rm("unkey", read), _Sink(seen))
    keyed = op.input("keys", flow, _KeySource(list(wanted)))
    placed = op.stateful_map("place", keyed, lambda s, v: (None, threading.get_ident()))
    op.output("keys_out", placed, _Sink(seen))
    cluster_main(flow, [], 0, worker_count_per_proc=WORKERS)
    worker_of_thread = {tid: w for _, w, tid in seen}
    reads = {item[0]: worker_of_thread[item[1]] for item, _, _ in seen if type(item[1]) is int
             and isinstance(item[0], str) and item[0] in PARTS}  # fmt: skip
    assert reads == partition_workers(PARTS, WORKERS)
    keys = {item[0]: worker_of_thread[item[1]] for item, _, _ in seen if item[0] in wanted}
    assert keys == wanted


class _KeySource(FixedPartitionedSource):
    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def list_parts(self) -> list[str]:
        return ["only"]

    def build_part(self, step_id: str, for_part: str, resume_state: object) -> _Part:
        keys = self.keys

        class Part(_Part):
            def next_batch(self) -> list:
                if self.done:
                    raise StopIteration
                self.done = True
                return [(k, 1) for k in keys]

        return Part(for_part)


def test_a_symbol_shards_keys_go_to_the_reader_of_its_partition() -> None:
    placed = plan(PARTS, WORKERS, margin_shards=8, account_shards=8)
    readers = partition_workers(PARTS, WORKERS)
    for shard, key in enumerate(placed.symbol):
        assert key_on(str(shard), readers[f"fix.events/{shard}"], WORKERS) == key
    assert len(set(placed.margin_account)) == 8 and len(placed.surveil_symbol) == 16
