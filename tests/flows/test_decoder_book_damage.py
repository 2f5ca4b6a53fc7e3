"""Issue 21: the decode step's BookDamaged events keep their line's place and sequence number,
and travel with their symbol's market data (the sharder, a Kafka partition's own shards).

No server is needed: the decode step and the sharder are plain functions.
"""

from __future__ import annotations

from pathlib import Path

from brokerflow.settings import Settings
from connectors.kafka import FIX_TOPIC, SequencedChunk, symbol_partition
from connectors.raw import RawChunk
from domain.events import BookDamaged, MarketDataIncrement
from domain.quotes import CoalescePolicy, QuoteCoalescer
from domain.sharding import symbol_shard
from flows.context import FlowContext
from flows.operators import KAFKA_SOURCE, make_decoder
from flows.quotes import QUOTE_SHARDS, make_sharder


def fix(*pairs: tuple[int, object]) -> bytes:
    body = b"".join(b"%d=%s\x01" % (tag, str(value).encode()) for tag, value in pairs)
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


def increment(seq: int, *symbols: str) -> bytes:
    entries: list[tuple[int, object]] = []
    for n, symbol in enumerate(symbols):
        entries += [(279, 0), (269, 0), (55, symbol), (270, f"10{n}.5"), (271, 100), (83, seq)]
    return fix(
        (35, "X"), (49, "V"), (56, "B"), (34, seq), (52, f"20261125-14:30:{seq:02d}.000"),
        (268, len(symbols)), *entries,
    )  # fmt: skip


def damaged(message: bytes) -> bytes:
    return message[: message.rindex(b"10=")] + b"10=000\x01"  # a wrong CheckSum (10)


def context() -> FlowContext:
    return FlowContext(Settings(), "redis://unused", "postgresql://unused")


def test_a_file_chunk_places_book_damage_at_its_line_and_shards_it_with_its_symbol(
    tmp_path: Path,
) -> None:
    path = tmp_path / "day.fix"
    path.write_bytes(
        b"".join(
            line + b"\n"
            for line in (
                increment(1, "IBM"),
                increment(2, "AAPL"),
                damaged(increment(3, "IBM", "AAPL")),
                increment(4, "IBM"),
            )
        )
    )
    with path.open("rb") as fh:
        lines = fh.readlines()
    ctx = context()
    batch = make_decoder(ctx)(RawChunk(f"file:{path}", 41, lines))
    assert [(type(e).__name__, e.symbol) for e in batch.events] == [
        ("MarketDataIncrement", "IBM"),
        ("MarketDataIncrement", "AAPL"),
        ("BookDamaged", "IBM"),
        ("BookDamaged", "AAPL"),
        ("MarketDataIncrement", "IBM"),
    ]
    assert batch.seqs == [41, 42, 43, 43, 44]  # each event's line number
    [letter] = batch.dead_letters
    assert letter.source == f"file:{path}:43"
    assert batch.events[2].detail == letter.reason

    # sharded like W/X: each symbol's damage in its shard, in stream order
    sharded = dict(make_sharder(QUOTE_SHARDS, ctx.stats, with_orders=False)(batch))
    for symbol in ("IBM", "AAPL"):
        part = sharded[str(symbol_shard(symbol) % QUOTE_SHARDS)]
        mine = [(type(e), seq) for e, seq in zip(part.events, part.seqs, strict=True)
                if e.symbol == symbol]  # fmt: skip
        if symbol == "IBM":
            assert mine == [(MarketDataIncrement, 41), (BookDamaged, 43), (MarketDataIncrement, 44)]
        else:
            assert mine == [(MarketDataIncrement, 42), (BookDamaged, 43)]

    # a consumer that does not use it yet passes it by
    coalescer = QuoteCoalescer(CoalescePolicy(interval_ns=0, min_move_bps=0.0))
    quotes = coalescer.apply(batch.events)
    assert {quote.symbol for quote in quotes} == {"IBM", "AAPL"}


def test_a_kafka_partition_keeps_the_damage_of_its_own_symbols() -> None:
    home = symbol_partition(b"IBM", 4)
    assert symbol_partition(b"AAPL", 4) != home
    lines = [increment(1, "IBM"), damaged(increment(2, "IBM", "AAPL")), increment(3, "IBM")]
    chunk = SequencedChunk(
        f"{FIX_TOPIC}/{home}", 4, [7, 19, 33], [line + b"\n" for line in lines], watermark=33,
        shard_partitions=4,
    )  # fmt: skip
    batch = make_decoder(context())(chunk)
    assert [d.source for d in batch.dead_letters] == [f"{KAFKA_SOURCE}:19"]
    assert [(type(e).__name__, e.symbol) for e in batch.events] == [
        ("MarketDataIncrement", "IBM"),
        ("BookDamaged", "IBM"),  # AAPL's is its own partition's (which gets the line too)
        ("MarketDataIncrement", "IBM"),
    ]
    assert batch.seqs == [7, 19, 33]
