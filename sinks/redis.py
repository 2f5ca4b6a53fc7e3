"""Sinks layer: coalesced quotes to Redis, in pipelined batches.

Per batch: one round trip that reads the last written version of symbols this process has not
written yet (only after a start), then one pipeline with an XADD per update to `stream:quotes`, one
MSET of the latest `quote:{SYMBOL}` values and a SET with TTL per touched `ohlc:{SYMBOL}:{day}`.

Idempotent: a quote is written only if its (ts, seq) is newer than what Redis holds for the
symbol, so replaying the same input again (or Bytewax replaying after a crash) changes nothing,
and a replay of older data never overwrites a newer quote. One writer per symbol is guaranteed by
the flow's partitioning by symbol, so the check needs no server-side script.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from domain.quotes import Quote
from sinks.retry import RetryPolicy, retry_policy_call

QUOTE_STREAM = "stream:quotes"
OHLC_TTL_S = 7 * 86_400
RETRY_ON = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)

_symbol_json: dict[str, str] = {}
_day_names: dict[int, str] = {}


def _sym(symbol: str) -> str:
    s = _symbol_json.get(symbol)
    if s is None:
        s = _symbol_json[symbol] = json.dumps(symbol)
    return s


def _num(x: float | None) -> str:
    return "null" if x is None else repr(x)


def day_name(day: int) -> str:
    """`YYYY-MM-DD` of a day number (days since 1970-01-01, UTC)."""
    name = _day_names.get(day)
    if name is None:
        name = _day_names[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return name


_QUOTE_FMT = (
    '{"symbol":%s,"bid":%r,"bid_size":%r,"ask":%r,"ask_size":%r,"ltp":%r,"ltq":%r,'
    '"volume":%r,"ts":%d,"seq":%d}'
)


def quote_json(q: Quote) -> str:
    """The contract's `quote:{SYMBOL}` JSON.

    Hand-formatted, 3x faster than json.dumps: one `%` when every field is set (the common
    case); sizes are written as JSON numbers such as `300.0`.
    """
    if None in q[1:8]:
        return _quote_json_with_nulls(q)
    return _QUOTE_FMT % (_sym(q[0]), q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9])


def _quote_json_with_nulls(q: Quote) -> str:
    return (
        '{"symbol":%s,"bid":%s,"bid_size":%s,"ask":%s,"ask_size":%s,"ltp":%s,"ltq":%s,'
        '"volume":%s,"ts":%d,"seq":%d}'
        % (_sym(q.symbol), *map(_num, q[1:8]), q.ts, q.seq)
    )


def ohlc_json(q: Quote) -> str:
    """The contract's `ohlc:{SYMBOL}:{day}` JSON."""
    return '{"open":%s,"high":%s,"low":%s,"close":%s,"volume":%r}' % (
        _num(q.open),
        _num(q.high),
        _num(q.low),
        _num(q.close),
        q.volume,
    )


class QuoteWriter:
    """Writes batches of quotes to one Redis; keeps the versions it wrote to skip stale ones.

    Args:
        client: a redis-py client (decode_responses=False).
        stream_maxlen: approximate cap of `stream:quotes`.
        count: called with ("quotes_published" | "quotes_stale", n) after each batch.
        policy: how hard to retry a batch while Redis is unreachable, before raising.
    """

    def __init__(
        self,
        client: redis.Redis,
        stream_maxlen: int = 100_000,
        count: Callable[[str, int], None] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.stream_maxlen = stream_maxlen
        self.policy = policy or RetryPolicy()
        self._maxlen = b"%d" % stream_maxlen
        self._written: dict[str, tuple[int, int]] = {}
        self._count = count

    def _load_versions(self, symbols: list[str]) -> None:
        values = self.client.mget([f"quote:{s}" for s in symbols])
        written = self._written
        for symbol, raw in zip(symbols, values, strict=True):
            if raw is None:
                written[symbol] = (-1, -1)
                continue
            try:
                doc = json.loads(raw)
                written[symbol] = (int(doc["ts"]), int(doc["seq"]))
            except (ValueError, KeyError, TypeError):
                written[symbol] = (-1, -1)  # not ours or corrupt: overwrite it

    def write(self, quotes: list[Quote]) -> int:
        """Write the quotes newer than what Redis holds; return how many were written."""
        written = self._written
        unknown = list({q.symbol for q in quotes if q.symbol not in written})
        if unknown:
            retry_policy_call(lambda: self._load_versions(unknown), self.policy, RETRY_ON)
        fresh: list[Quote] = []
        for q in quotes:
            version = (q.ts, q.seq)
            if version > written[q.symbol]:
                written[q.symbol] = version
                fresh.append(q)
        if fresh:
            retry_policy_call(lambda: self._send(fresh), self.policy, RETRY_ON)
        if self._count:
            self._count("quotes_published", len(fresh))
            self._count("quotes_stale", len(quotes) - len(fresh))
        return len(fresh)

    def _send(self, fresh: list[Quote]) -> None:
        latest: dict[str, bytes] = {}
        bars: dict[str, Quote] = {}
        stream_args: list[bytes] = []
        add = stream_args.append
        for q in fresh:
            data = quote_json(q).encode()
            symbol = q.symbol
            add(symbol.encode())
            add(data)
            latest[symbol] = data
            if q.open is not None:
                bars[f"ohlc:{symbol}:{day_name(q.day)}"] = q
        # One EVAL sets the latest quotes and appends every update to the stream server-side
        # (redis-py packs ~1 µs per argument per command, so a command per XADD cost more than
        # the rest of the flow), atomically: a retry after a lost reply finds the batch applied
        # and adds nothing to the stream.
        latest_args = [x for s, d in latest.items() for x in (b"quote:" + s.encode(), d)]
        commands = [
            [b"EVAL", _PUBLISH_BATCH, b"1", _QUOTE_STREAM_KEY, self._maxlen,
             b"%d" % len(latest), *latest_args, *stream_args],
        ]  # fmt: skip
        for key, q in bars.items():
            commands.append([b"SET", key.encode(), ohlc_json(q).encode(), b"EX", _OHLC_TTL])
        connection = self.client.connection_pool.get_connection()
        try:
            connection.send_packed_command([b"".join(map(pack_command, commands))])
            errors = []
            for _ in commands:
                try:
                    connection.read_response()
                except redis.ResponseError as exc:
                    errors.append(exc)
        except BaseException:
            connection.disconnect()  # the reply stream is out of step; start clean next time
            raise
        finally:
            self.client.connection_pool.release(connection)
        if errors:
            raise errors[0]


def read_quotes(url: str, symbols: list[str], chunk: int = 10_000) -> dict[str, dict]:
    """The current `quote:{SYMBOL}` documents of `symbols` (those Redis has), MGET in chunks."""
    out: dict[str, dict] = {}
    client = redis.Redis.from_url(url)
    try:
        for start in range(0, len(symbols), chunk):
            names = symbols[start : start + chunk]
            for symbol, raw in zip(names, client.mget([f"quote:{s}" for s in names]), strict=True):
                if raw:
                    out[symbol] = json.loads(raw)
    finally:
        client.close()
    return out


def pack_command(args: list[bytes]) -> bytes:
    """Encode one command in RESP (a bulk string per argument)."""
    parts = [b"*%d\r\n" % len(args)]
    parts += [b"$%d\r\n%s\r\n" % (len(a), a) for a in args]
    return b"".join(parts)


# ARGV: stream cap, n, n (quote key, latest JSON) pairs, then (symbol, JSON) stream entries.
# A batch whose first latest quote is already stored was applied (quotes only move forward and
# each symbol has one writer): skip it. Trimmed once per batch: the cap is approximate anyway.
_PUBLISH_BATCH = b"""
local n = tonumber(ARGV[2])
if n > 0 and redis.call('GET', ARGV[3]) == ARGV[4] then
  return 0
end
for i = 3, 2 + 2 * n, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1])
end
for i = 3 + 2 * n, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'symbol', ARGV[i], 'data', ARGV[i + 1])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return (#ARGV - 2 - 2 * n) / 2
"""
_QUOTE_STREAM_KEY = QUOTE_STREAM.encode()
_OHLC_TTL = b"%d" % OHLC_TTL_S


class _QuotePartition(StatelessSinkPartition[list[Quote]]):
    def __init__(self, writer: QuoteWriter) -> None:
        self._writer = writer

    def write_batch(self, items: list[list[Quote]]) -> None:
        quotes = items[0] if len(items) == 1 else [q for batch in items for q in batch]
        self._writer.write(quotes)

    def close(self) -> None:
        self._writer.client.close()


class RedisQuoteSink(DynamicSink[list[Quote]]):
    """Bytewax sink of quote batches; each worker opens its own connection in `build`."""

    def __init__(
        self,
        url: str,
        stream_maxlen: int = 100_000,
        count: Callable[[str, int], None] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._url = url
        self._stream_maxlen = stream_maxlen
        self._count = count
        self._policy = policy

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _QuotePartition:
        client = redis.Redis.from_url(self._url, socket_timeout=30)
        writer = QuoteWriter(client, self._stream_maxlen, self._count, self._policy)
        return _QuotePartition(writer)
