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
# repr of the floats seen, and None -> null. Quotes repeat a few prices and sizes, and a float's
# repr costs ~6 dict lookups; bounded: cleared when full (volumes are new with every trade).
_texts: dict[float | None, str] = {None: "null"}
_TEXTS_MAX = 1 << 17


def _sym(symbol: str) -> str:
    s = _symbol_json.get(symbol)
    if s is None:
        s = _symbol_json[symbol] = json.dumps(symbol)
    return s


def _text(x: float | None) -> str:
    """JSON of a quote's number (`repr`, the shortest round-trip form) or null; remembered.

    Ints (not from the decoder, which makes floats) are written as `repr` too, and not
    remembered; an int equal to a remembered float is written as that float (`100.0`), the
    same JSON number.
    """
    if x is None:
        return "null"
    text = repr(x)
    if type(x) is float:
        if len(_texts) >= _TEXTS_MAX:
            _texts.clear()
            _texts[None] = "null"
        _texts[x] = text
    return text


def day_name(day: int) -> str:
    """`YYYY-MM-DD` of a day number (days since 1970-01-01, UTC)."""
    name = _day_names.get(day)
    if name is None:
        name = _day_names[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return name


def quote_json(q: Quote) -> str:
    """The contract's `quote:{SYMBOL}` JSON: `{"symbol","bid","bid_size","ask","ask_size","ltp",
    "ltq","volume","ts","seq"}` and then (docs/edge.md) `"prev_close","change","change_pct",
    "open","high","low"` and, once the venue sent a band (35=f), `"lower_band","upper_band"`,
    numbers as `repr` writes them (sizes such as `300.0`), no spaces. A quote of a stale book
    (docs/book-integrity.md) has `"stale":true,"stale_reason","stale_since"` (epoch ms) after
    `change_pct`, where every subscription mode of the edge keeps them; a sound one has none.

    `change` is ltp - prev_close rounded to 8 decimals (the float noise of the subtraction
    removed), `change_pct` that in percent of prev_close rounded to 2 decimals; both null
    before the day's first trade (no `open`) or without a previous close. The edge serves each
    subscription mode a part of this document (`edge.protocol.mode_frame`): keep the field
    order, `open` starts the part only mode `full` gets.

    Hand-formatted (one f-string, the numbers' texts remembered by value, the change text
    remembered by (ltp, prev_close)): 3x faster than a `%r` per number, 6x faster than
    json.dumps.
    """
    t = _texts.get
    s, b, bs, a, az, lp, lq, v, ts, seq, _day, o, h, low, _c, pc, lb, ub, stale, since = q
    if pc is None:
        change = _NO_CHANGE
    elif o is None or lp is None:
        change = f'"prev_close":{t(pc) or _text(pc)},"change":null,"change_pct":null'
    else:
        change = _changes.get((lp, pc)) or _change_text(lp, pc)
    return (
        f'{{"symbol":{_sym(s)},"bid":{t(b) or _text(b)},"bid_size":{t(bs) or _text(bs)},'
        f'"ask":{t(a) or _text(a)},"ask_size":{t(az) or _text(az)},"ltp":{t(lp) or _text(lp)},'
        f'"ltq":{t(lq) or _text(lq)},"volume":{t(v) or _text(v)},"ts":{ts},"seq":{seq},'
        f"{change}{'' if stale is None else _stale_text(stale, since)},"
        f'"open":{t(o) or _text(o)},"high":{t(h) or _text(h)},'
        f'"low":{t(low) or _text(low)}'
        f"{_NO_BAND if lb is None and ub is None else _band_text(lb, ub)}}}"
    )


_NO_BAND = ""  # no band: the fields are left out (the edge's mode full shows them as null)


def _band_text(low: float | None, high: float | None) -> str:
    return f',"lower_band":{_text(low)},"upper_band":{_text(high)}'


def _stale_text(reason: str, since: int | None) -> str:
    return (
        f',"stale":true,"stale_reason":{json.dumps(reason)},'
        f'"stale_since":{"null" if since is None else int(since)}'
    )


_NO_CHANGE = '"prev_close":null,"change":null,"change_pct":null'
# (ltp, prev_close) -> the `"prev_close":..,"change":..,"change_pct":..` text; bounded as _texts.
_changes: dict[tuple[float, float], str] = {}


def change_of(ltp: float, prev_close: float) -> tuple[float, float | None]:
    """(change, change_pct) of a last price against the previous close (docs/edge.md)."""
    diff = ltp - prev_close
    pct = round(diff * 100 / prev_close, 2) if prev_close else None
    return round(diff, 8) + 0.0, (None if pct is None else pct + 0.0)  # + 0.0: no -0.0


def _change_text(ltp: float, prev_close: float) -> str:
    change, pct = change_of(ltp, prev_close)
    text = (
        f'"prev_close":{_text(prev_close)},"change":{change!r},'
        f'"change_pct":{"null" if pct is None else repr(pct)}'
    )
    if len(_changes) >= _TEXTS_MAX:
        _changes.clear()
    _changes[ltp, prev_close] = text
    return text


def ohlc_json(q: Quote) -> str:
    """The contract's `ohlc:{SYMBOL}:{day}` JSON."""
    t = _texts.get
    o, h, low, c = q[11:15]
    v = q[7]
    return (
        f'{{"open":{t(o) or _text(o)},"high":{t(h) or _text(h)},"low":{t(low) or _text(low)},'
        f'"close":{t(c) or _text(c)},"volume":{t(v) or _text(v)}}}'
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
        unknown = list({q[0] for q in quotes if q[0] not in written})
        if unknown:
            retry_policy_call(lambda: self._load_versions(unknown), self.policy, RETRY_ON)
        payload, replies, fresh = self._pack(quotes, written)
        if fresh:
            retry_policy_call(lambda: self._send_packed(payload, replies), self.policy, RETRY_ON)
        if self._count:
            self._count("quotes_published", fresh)
            self._count("quotes_stale", len(quotes) - fresh)
        return fresh

    def _send(self, fresh: list[Quote]) -> None:
        """Write `fresh` (all newer than what Redis holds) in one round trip."""
        payload, replies, _ = self._pack(fresh, dict.fromkeys([q[0] for q in fresh], (-1, -1)))
        self._send_packed(payload, replies)

    def _pack(
        self, quotes: list[Quote], written: dict[str, tuple[int, int]]
    ) -> tuple[bytes, int, int]:
        """The batch's commands in RESP, how many replies they get, and how many quotes they
        write: those newer (ts, seq) than `written[symbol]`, which is updated.

        One EVAL sets the latest quotes and appends every update to the stream server-side
        (redis-py packs ~1 µs per argument per command, so a command per XADD cost more than the
        rest of the flow), atomically: a retry after a lost reply finds the batch applied and
        adds nothing to the stream. Then a SET with TTL per touched `ohlc:{SYMBOL}:{day}`. Built
        here as one str (keys and JSON; the JSON is ASCII, so its length is its byte length)
        and encoded once: `pack_command` per argument cost as much as the rest of the sink.
        """
        bulks = _symbol_bulks
        latest: dict[str, str] = {}
        bars: dict[tuple[str, int], Quote] = {}
        entries: list[str] = []
        add = entries.append
        for q in quotes:
            s, ts, seq, day, open_ = q[0], q[8], q[9], q[10], q[11]
            version = (ts, seq)
            if version <= written[s]:
                continue  # stale: Redis holds this or a newer quote of the symbol
            written[s] = version
            bulk = bulks.get(s) or _symbol_bulk(s)
            data = quote_json(q)
            add(f"{bulk[0]}${len(data)}\r\n{data}\r\n")
            latest[s] = data
            if open_ is not None:  # the day has a trade
                bars[s, day] = q
        if not entries:
            return b"", 0, 0
        parts = [
            f"*{6 + 2 * len(latest) + 2 * len(entries)}\r\n",
            _EVAL_HEAD,
            f"${len(self._maxlen)}\r\n{self._maxlen.decode()}\r\n",
            f"${len(str(len(latest)))}\r\n{len(latest)}\r\n",
        ]
        parts += [f"{bulks[s][1]}${len(d)}\r\n{d}\r\n" for s, d in latest.items()]
        parts += entries
        for (symbol, day), q in bars.items():
            key = f"ohlc:{symbol}:{day_name(day)}"
            data = ohlc_json(q)
            parts.append(
                f"*5\r\n$3\r\nSET\r\n${len(key.encode())}\r\n{key}\r\n"
                f"${len(data)}\r\n{data}\r\n$2\r\nEX\r\n{_OHLC_TTL_BULK}"
            )
        return "".join(parts).encode(), 1 + len(bars), len(entries)

    def _send_packed(self, payload: bytes, replies: int) -> None:
        connection = self.client.connection_pool.get_connection()
        try:
            connection.send_packed_command([payload])
            errors = []
            for _ in range(replies):
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


PREV_CLOSE_LOOKBACK_DAYS = OHLC_TTL_S // 86_400  # the ohlc: keys Redis still holds


class PrevCloseReader:
    """Previous closes from the `ohlc:{SYMBOL}:{YYYY-MM-DD}` keys the quote sink wrote: the
    close of the latest day before the trading day that Redis holds (a Monday finds Friday's),
    for symbols the flow sees for the first time; one MGET per batch of new symbols, never a
    read per quote. Connects on first use.
    """

    def __init__(self, url: str, policy: RetryPolicy | None = None) -> None:
        self._url = url
        self._policy = policy or RetryPolicy()
        self._client: redis.Redis | None = None

    def read(self, wanted: list[tuple[str, int]]) -> dict[str, float]:
        """{symbol: previous close} of (symbol, trading day) pairs; symbols without one left out."""
        if not wanted:
            return {}
        if self._client is None:
            self._client = redis.Redis.from_url(self._url, socket_timeout=30)
        client = self._client
        days = PREV_CLOSE_LOOKBACK_DAYS
        keys = [f"ohlc:{s}:{day_name(d - back)}" for s, d in wanted for back in range(1, days + 1)]
        values = retry_policy_call(lambda: client.mget(keys), self._policy, RETRY_ON)
        out: dict[str, float] = {}
        for i, (symbol, _day) in enumerate(wanted):
            for raw in values[i * days : (i + 1) * days]:
                close = _close_of(raw)
                if close is not None:
                    out[symbol] = close
                    break
        return out

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _close_of(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    try:
        close = json.loads(raw).get("close")
    except (ValueError, AttributeError):
        return None
    return float(close) if isinstance(close, int | float) and not isinstance(close, bool) else None


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
# The EVAL's first arguments after the count: the command, the script, 1 key, the stream.
_EVAL_HEAD = pack_command([b"EVAL", _PUBLISH_BATCH, b"1", _QUOTE_STREAM_KEY])[
    len(b"*4\r\n") :
].decode()
_OHLC_TTL_BULK = f"${len(_OHLC_TTL)}\r\n{_OHLC_TTL.decode()}\r\n"
# symbol -> its RESP bulk string and that of its quote:{SYMBOL} key (lengths in UTF-8 bytes)
_symbol_bulks: dict[str, tuple[str, str]] = {}


def _symbol_bulk(symbol: str) -> tuple[str, str]:
    key = "quote:" + symbol
    bulk = _symbol_bulks[symbol] = (
        f"${len(symbol.encode())}\r\n{symbol}\r\n",
        f"${len(key.encode())}\r\n{key}\r\n",
    )
    return bulk


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
