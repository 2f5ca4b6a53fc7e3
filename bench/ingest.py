"""The ingest benchmark: a simulated day of market data replayed end to end into Redis.

Printed in one run, next to each other:
    end to end      parse -> book -> coalesce -> Redis, through the Bytewax flow (`replay`)
    simplefix       the bare simplefix parse loop over the same file (what the library gives)
    decoder alone   our `decode_lines` over the same file (the parse ceiling)
    redis loop      a bare pipelined XADD+SET loop for as many updates as the flow published
    with data quality  end to end again with the Great Expectations step on (`quality/`): its
                    rate, its cost against the first run, and the share of rows it validated
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import simplefix

from bench.common import DATA_DIR, write_result
from brokerflow.commands.replay import replay
from brokerflow.runner import tuned_gc
from brokerflow.services import ensure_services
from brokerflow.settings import Settings
from connectors.fix import decode_lines
from simulator.market import MarketSimulator

GOAL_MSGS_PER_S = 100_000
BENCH_REDIS_DB = 15  # the benchmark flushes this database of the configured Redis
SYMBOLS = 100


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_file(messages: int, symbols: int = SYMBOLS) -> Path:
    """Return the cached simulated file of `messages` messages, generating it if needed."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"ingest-{messages}-{symbols}.fix"
    if path.exists():
        return path
    _say(f"generating {messages:,} simulated messages for {symbols} symbols -> {path}")
    tmp = path.with_suffix(".tmp")
    sim = MarketSimulator(symbols, seed=1)
    sim.write_file(tmp, max_messages=messages)
    tmp.rename(path)
    return path


def _lines(path: Path) -> list[bytes]:
    """The file's lines with their newline, as the file source hands them to the decoder."""
    with path.open("rb") as fh:
        return fh.readlines()


def simplefix_rate(lines: list[bytes]) -> float:
    """Messages/s of simplefix's parser alone (append_buffer + get_message per message)."""
    parser = simplefix.FixParser()
    t0 = time.perf_counter()
    n = 0
    for line in lines:
        parser.append_buffer(line.rstrip(b"\r\n"))
        if parser.get_message() is not None:
            n += 1
    return n / (time.perf_counter() - t0)


def _chunks(lines: list[bytes], chunk_bytes: int = 256 * 1024) -> list[tuple[int, list[bytes]]]:
    """Split lines into ~256 KiB batches (with first line numbers), like the file source."""
    chunks: list[tuple[int, list[bytes]]] = []
    start, size = 0, 0
    for i, line in enumerate(lines):
        size += len(line)
        if size >= chunk_bytes:
            chunks.append((start + 1, lines[start : i + 1]))
            start, size = i + 1, 0
    if start < len(lines):
        chunks.append((start + 1, lines[start:]))
    return chunks


def decoder_rate(lines: list[bytes]) -> tuple[float, int]:
    """Messages/s of our decoder alone over the same lines, in the file source's chunks."""
    chunks = _chunks(lines)
    with tuned_gc():  # the collector settings of the flow, for a fair ratio
        t0 = time.perf_counter()
        events = 0
        for first_line_no, batch in chunks:
            events += len(decode_lines(batch, "bench", first_line_no).events)
        seconds = time.perf_counter() - t0
    return len(lines) / seconds, events


def redis_rate(url: str, updates: int, batch: int = 1_000) -> float:
    """Updates/s of a bare pipelined XADD + SET loop (the sink's floor for that many updates)."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    payload = (
        '{"symbol":"SYM0001","bid":101.25,"bid_size":300,"ask":101.27,"ask_size":500,'
        '"ltp":101.26,"ltq":100,"volume":123400,"ts":1764081000123,"seq":42}'
    )
    t0 = time.perf_counter()
    for start in range(0, updates, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(updates, start + batch)):
            symbol = f"SYM{i % SYMBOLS:04d}"
            pipe.execute_command(
                "XADD", "stream:quotes", "MAXLEN", "~", 100_000, "*", "symbol", symbol,
                "data", payload,
            )
            pipe.execute_command("SET", "quote:" + symbol, payload)
        pipe.execute()
    rate = updates / (time.perf_counter() - t0)
    client.flushdb()
    client.close()
    return rate


def _bench_redis_url(settings: Settings) -> str:
    base = urlsplit(ensure_services(settings, {"redis"}).redis_url)
    return urlunsplit(base._replace(path=f"/{BENCH_REDIS_DB}"))


def run(
    settings: Settings,
    messages: int = 1_000_000,
    simplefix_messages: int | None = None,
    profile: bool = False,
    say: Callable[[str], None] = _say,
) -> dict:
    """Run the benchmark; print the table; write bench/results/ingest.json; return the result."""
    path = ensure_file(messages)
    lines = _lines(path)
    redis_url = _bench_redis_url(settings)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    bench_settings = settings.model_copy(update={"redis_url": redis_url, "dq": False})

    say(f"end to end: replaying {len(lines):,} messages through the flow into {redis_url}")
    if profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            raise SystemExit(
                "error: --profile needs pyinstrument: pip install -e '.[profile]'"
            ) from None
        profiler = Profiler(interval=0.001)
        profiler.start()
    summary = replay([path], bench_settings, progress=False, flows=("quotes",))
    if profile:
        profiler.stop()
        report = DATA_DIR / "ingest-profile.txt"
        report.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        say(f"profile written to {report}")
    e2e = summary.as_dict()
    e2e_rate = e2e["messages"] / summary.seconds

    say("end to end again, with data quality (Great Expectations, sampled off the hot path)")
    from quality.validator import warm_up

    dq_import_s = warm_up()
    redis.Redis.from_url(redis_url).flushdb()
    with_dq = replay([path], bench_settings.model_copy(update={"dq": True}), progress=False,
                     flows=("quotes",))  # fmt: skip
    dq = with_dq.as_dict()["data_quality"]
    dq_rate = with_dq.as_dict()["messages"] / with_dq.seconds

    say("yardstick: our decoder alone")
    dec_rate, _ = decoder_rate(lines)
    sf_lines = lines if simplefix_messages is None else lines[:simplefix_messages]
    say(f"yardstick: simplefix parse loop over {len(sf_lines):,} messages")
    sf_rate = simplefix_rate(sf_lines)
    updates = max(1, e2e["quotes"])
    say(f"yardstick: pipelined Redis loop of {updates:,} updates")
    rd_rate = redis_rate(redis_url, updates)

    yardsticks = {
        "simplefix_parse_msgs_per_s": round(sf_rate),
        "decoder_only_msgs_per_s": round(dec_rate),
        "redis_pipeline_updates_per_s": round(rd_rate),
        "end_to_end_over_decoder_only": round(e2e_rate / dec_rate, 3),
        "quotes_published": e2e["quotes"],
        "coalescing_ratio_msgs_per_quote": round(e2e["messages"] / updates, 2),
        "dead_letters": e2e["dead_letters"],
        "with_dq_msgs_per_s": round(dq_rate),
        "with_dq_over_without": round(dq_rate / e2e_rate, 3),
        "dq_coverage_quotes": dq["coverage"].get("quotes", 0.0),
        "dq_coverage_fills": dq["coverage"].get("fills", 0.0),
        "dq_rows_validated": sum(dq["rows_validated"].values()),
        "dq_validator_cpu_s": dq["cpu_s"],
        "dq_gx_import_s": round(dq_import_s, 2),
    }
    out = write_result("ingest", "messages/s", round(e2e_rate), GOAL_MSGS_PER_S, yardsticks)
    rows = [
        ("end to end: parse -> book -> coalesce -> Redis", f"{e2e_rate:,.0f} msg/s",
         f"goal >= {GOAL_MSGS_PER_S:,}"),
        ("yardstick: simplefix parse loop", f"{sf_rate:,.0f} msg/s",
         f"{len(sf_lines):,} msgs"),
        ("yardstick: our decoder alone", f"{dec_rate:,.0f} msg/s", "parse ceiling"),
        ("yardstick: pipelined Redis XADD+SET", f"{rd_rate:,.0f} upd/s",
         f"{updates:,} updates"),
        ("end to end / decoder alone", f"{e2e_rate / dec_rate:.2f}", ""),
        ("end to end / simplefix", f"{e2e_rate / sf_rate:.1f}x", ""),
        ("with data quality (GX, sampled)", f"{dq_rate:,.0f} msg/s",
         f"{dq_rate / e2e_rate:.2f} of without"),
        ("  data quality coverage (quotes, fills)",
         f"{dq['coverage'].get('quotes', 0):.1%}, {dq['coverage'].get('fills', 0):.1%}",
         f"{sum(dq['rows_validated'].values()):,} rows, {dq['cpu_s']:.2f} s CPU"),
        ("messages per published quote", f"{e2e['messages'] / updates:.2f}",
         f"{e2e['quotes']:,} quotes"),
    ]
    print(f"ingest: {len(lines):,} messages, {path.name}")
    for name, value, note in rows:
        print(f"  {name:<48} {value:>16}  {note}")
    verdict = "meets" if e2e_rate >= GOAL_MSGS_PER_S else "MISSES"
    speed = json.loads(out.read_text())["python_loop_mops"]
    print(f"  machine speed: {speed} M Python loop iterations/s (shared machines drift)")
    print(f"  {verdict} the goal; results in {out}")
    return {"end_to_end": e2e_rate, **yardsticks}
