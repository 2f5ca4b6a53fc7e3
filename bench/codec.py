"""Benchmark: FIX decode rates of `decode_lines` against a bare simplefix parse loop.

Usage:
    python -m bench.codec FILE            # rates over FILE (one FIX message per line)
    python -m bench.codec --generate FILE [--count N] [--seed S]
                                          # first write N simulated 35=X/35=W lines to FILE

Both contenders read the same lines from memory (file I/O is not timed); each rate is the best
of several repetitions, with the garbage collector off while timing. `decode_lines` gets the
lines as the file source reads them (with their newline, ~256 KiB per batch), so it measures
the chunk fast path the flow takes.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable
from pathlib import Path

import simplefix

from connectors.fix.parse import decode_lines

BATCH_SIZE = 1_400  # about the lines of one 256 KiB chunk of the file source
REPEATS = 5


def generate_market_data(count: int, seed: int = 1) -> list[bytes]:
    """Return `count` simulated market-data lines: 90% 35=X, 10% 35=W, 1-4 entries each."""
    rng = random.Random(seed)
    symbols = [f"SYM{i:03d}" for i in range(50)]
    mids = {symbol: rng.uniform(10, 500) for symbol in symbols}
    lines = []
    start_ns = 1_718_000_000 * 1_000_000_000
    for seq in range(1, count + 1):
        symbol = rng.choice(symbols)
        mids[symbol] *= 1 + rng.gauss(0, 0.0005)
        mid = mids[symbol]
        msg = simplefix.FixMessage()
        msg.append_pair(8, "FIX.4.4")
        incremental = rng.random() < 0.9
        msg.append_pair(35, "X" if incremental else "W")
        msg.append_pair(49, "SIMEX")
        msg.append_pair(56, "BROKERFLOW")
        msg.append_pair(34, seq)
        ts = start_ns + seq * 37_000
        stamp = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(ts // 1_000_000_000))
        msg.append_pair(52, f"{stamp}.{ts // 1_000 % 1_000_000:06d}")
        if not incremental:
            msg.append_pair(55, symbol)
        entries = rng.randint(1, 4)
        msg.append_pair(268, entries)
        for _ in range(entries):
            if incremental:
                msg.append_pair(279, rng.choice("0112"))
            kind = rng.choice("0012")
            msg.append_pair(269, kind)
            if incremental:
                msg.append_pair(55, symbol)
            offset = {"0": -0.01, "1": 0.01, "2": 0.0}[kind] * rng.randint(1, 5)
            msg.append_pair(270, f"{mid + offset:.2f}")
            msg.append_pair(271, rng.randint(1, 50) * 100)
        lines.append(msg.encode())
    return lines


def _best_rate(count: int, run_once: Callable[[], object]) -> float:
    best = float("inf")
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(REPEATS):
            started = time.perf_counter()
            run_once()
            best = min(best, time.perf_counter() - started)
    finally:
        if gc_was_enabled:
            gc.enable()
    return count / best


def run(path: str) -> dict:
    """Measure decode rates over the FIX log at `path`.

    Returns:
        {"file", "messages", "simplefix_msgs_per_s", "decode_lines_msgs_per_s", "events",
        "dead_letters", "batch_size"}: (a) simplefix.FixParser, append_buffer + get_message
        per message (framing by 10=, no checksum or typed parsing), (b) our `decode_lines` in
        batches of BATCH_SIZE lines (framing by 9, checksum, typed domain events).
    """
    lines = [line for line in Path(path).read_bytes().splitlines(keepends=True) if line.strip()]
    soh_lines = [line if b"\x01" in line else line.replace(b"|", b"\x01") for line in lines]
    soh_lines = [line.rstrip(b"\r\n") for line in soh_lines]

    def simplefix_loop() -> None:
        parser = simplefix.FixParser()
        for line in soh_lines:
            parser.append_buffer(line)
            parser.get_message()

    batches = [lines[i : i + BATCH_SIZE] for i in range(0, len(lines), BATCH_SIZE)]

    def decode_loop() -> None:
        for number, batch in enumerate(batches):
            decode_lines(batch, path, 1 + number * BATCH_SIZE)

    events = dead_letters = 0
    for number, batch in enumerate(batches):
        decoded = decode_lines(batch, path, 1 + number * BATCH_SIZE)
        events += len(decoded.events)
        dead_letters += len(decoded.dead_letters)
    return {
        "file": path,
        "messages": len(lines),
        "batch_size": BATCH_SIZE,
        "simplefix_msgs_per_s": round(_best_rate(len(lines), simplefix_loop)),
        "decode_lines_msgs_per_s": round(_best_rate(len(lines), decode_loop)),
        "events": events,
        "dead_letters": dead_letters,
    }


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.codec")
    parser.add_argument("file")
    parser.add_argument("--generate", action="store_true", help="write simulated lines first")
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.generate:
        lines = generate_market_data(args.count, args.seed)
        Path(args.file).write_bytes(b"".join(line + b"\n" for line in lines))
    result = run(args.file)
    for key, value in result.items():
        print(f"{key:>26}: {value:,}" if isinstance(value, int) else f"{key:>26}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
