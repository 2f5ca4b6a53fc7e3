"""Edge layer (pure): client messages in, server frames out (CONTRACT.md, "WebSocket edge").

Client -> server, one JSON object per text message:
    {"action": "subscribe", "symbols": ["AAPL", ...], "mode": "ltp" | "quote" | "full"}
        (mode defaults to quote; subscribing again to a held symbol changes its mode)
    {"action": "unsubscribe", "symbols": [...]}
    {"action": "watch.add" | "watch.remove", "symbols": [...]}   -> {"type":"watch","symbols":[...]}
    {"action": "ping"}
    {"action": "resume", "last_alert_id": "..."}   (same as the `last_alert_id` query parameter)
    {"action": "alert.create", "symbol", "condition", "value"[, "account"]}
        -> {"type":"alert.created",...}; {"action": "alert.list"} -> {"type":"alert.list",...};
        {"action": "alert.delete", "id": N} -> {"type":"alert.deleted","id":N}
        (traders' price alerts, `edge.price_alerts`; fields checked there, by the domain)

Server -> client frames are built from the bytes Redis holds without parsing them: a quote
frame is the `quote:{SYMBOL}` JSON with `"type":"quote",` spliced in after its `{`, built once per
update and shared by every subscriber; the modes (docs/edge.md, "Subscription modes") are parts of
that JSON (`mode_frame`): `quote` cuts the full-only tail that starts at `"open"`, `full` adds the
price band, `ltp` is rebuilt from the parsed document (built once per update and mode). When a
client is behind, the quotes pending for it go in one frame
`{"type":"quotes","quotes":[<quote frame>, ...]}` (the latest per symbol only).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:\-]{0,31}")
_STREAM_ID_RE = re.compile(r"\d{1,20}-\d{1,20}")


class ProtocolError(ValueError):
    """A client message we cannot act on; its text goes back in an `error` frame."""


LTP = "ltp"
QUOTE = "quote"
FULL = "full"
MODES = (LTP, QUOTE, FULL)


@dataclass(frozen=True, slots=True)
class Subscribe:
    symbols: tuple[str, ...]
    mode: str = QUOTE


@dataclass(frozen=True, slots=True)
class Watch:
    """watch.add (`add`) or watch.remove of symbols in the user's `watchlist:{user}`."""

    add: bool
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Resume:
    last_alert_id: str


@dataclass(frozen=True, slots=True)
class AlertCreate:
    """alert.create: the fields as sent; `edge.price_alerts` checks them (naming the field)."""

    symbol: object
    condition: object
    value: object
    account: object = None


@dataclass(frozen=True, slots=True)
class AlertList:
    pass


@dataclass(frozen=True, slots=True)
class AlertDelete:
    id: int


PRICE_ALERT_ACTIONS = (AlertCreate, AlertList, AlertDelete)
Action = Subscribe | Unsubscribe | Ping | Resume | Watch | AlertCreate | AlertList | AlertDelete


def _symbols(doc: dict, action: str, max_symbols: int) -> tuple[str, ...]:
    symbols = doc.get("symbols")
    if not isinstance(symbols, list) or not symbols:
        msg = f"{action}: symbols must be a non-empty list"
        raise ProtocolError(msg)
    if len(symbols) > max_symbols:
        msg = f"{action}: symbols has {len(symbols)} in one message, the limit is {max_symbols}"
        raise ProtocolError(msg)
    for symbol in symbols:
        if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
            msg = f"{action}: symbols: {str(symbol)[:40]!r} is not a symbol"
            raise ProtocolError(msg)
    return tuple(dict.fromkeys(symbols))  # duplicates once, order kept


def parse_client_message(raw: bytes, max_bytes: int, max_symbols: int) -> Action:
    """Parse one client text message.

    Raises:
        ProtocolError: oversize, not JSON, not an object, an unknown action or bad symbols.

    >>> parse_client_message(b'{"action":"subscribe","symbols":["AAPL"]}', 4096, 100)
    Subscribe(symbols=('AAPL',))
    """
    if len(raw) > max_bytes:
        msg = f"message of {len(raw)} bytes is over the {max_bytes}-byte limit"
        raise ProtocolError(msg)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        msg = "message is not JSON"
        raise ProtocolError(msg) from None
    if not isinstance(doc, dict):
        msg = "message must be a JSON object with an action"
        raise ProtocolError(msg)
    action = doc.get("action")
    if action == "subscribe":
        mode = doc.get("mode", QUOTE)
        if mode not in MODES:
            msg = f"mode: unknown value {str(mode)[:40]!r} (ltp, quote or full)"
            raise ProtocolError(msg)
        return Subscribe(_symbols(doc, action, max_symbols), mode)
    if action == "watch.add" or action == "watch.remove":
        return Watch(action == "watch.add", _symbols(doc, action, max_symbols))
    if action == "unsubscribe":
        return Unsubscribe(_symbols(doc, action, max_symbols))
    if action == "ping":
        return Ping()
    if action == "resume":
        return Resume(check_alert_cursor(doc.get("last_alert_id")))
    if action == "alert.create":
        return AlertCreate(doc.get("symbol"), doc.get("condition"), doc.get("value"),
                           doc.get("account"))  # fmt: skip
    if action == "alert.list":
        return AlertList()
    if action == "alert.delete":
        alert_id = doc.get("id")
        if isinstance(alert_id, bool) or not isinstance(alert_id, int) or alert_id <= 0:
            msg = f"id: {str(alert_id)[:40]!r} is not a price alert id (a positive integer)"
            raise ProtocolError(msg)
        return AlertDelete(alert_id)
    msg = (
        f"unknown action {str(action)[:40]!r} (subscribe, unsubscribe, ping, resume, "
        "watch.add, watch.remove, alert.create, alert.list, alert.delete)"
    )
    raise ProtocolError(msg)


def check_alert_cursor(value: object) -> str:
    """Return a `last_alert_id` if it is an alert id or a `stream:alerts` entry id."""
    if not isinstance(value, str) or not (0 < len(value) <= 64):
        msg = "last_alert_id must be an alert_id or a stream_id"
        raise ProtocolError(msg)
    return value


def is_stream_id(value: str) -> bool:
    """Return whether `value` is a Redis stream entry id (`<ms>-<n>`)."""
    return _STREAM_ID_RE.fullmatch(value) is not None


def stream_id_key(stream_id: bytes | str) -> tuple[int, int]:
    """Order of a stream entry id: `b"5-1"` -> (5, 1)."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)


_FULL_TAIL = b',"open":'  # where the quote JSON's fields of mode full start (sinks.redis)
_STALE = b',"stale":true'  # a stale book's flag, before the full-only tail (sinks.redis)
_NO_CHANGE = b',"prev_close":null,"change":null,"change_pct":null}'
_NO_FULL = b',"open":null,"high":null,"low":null'
_NO_BAND = b',"lower_band":null,"upper_band":null}'


def quote_frame(data: bytes, kind: bytes = b"quote") -> bytes:
    """Mode quote's `{"type":"quote",...}` from the quote JSON as Redis holds it (an object):
    the JSON up to its full-only tail (`"open"` on), which the flow writes last. A quote written
    before the change fields existed gets them as null."""
    if len(data) <= 2:
        return b'{"type":"' + kind + b'"}'
    cut = data.rfind(_FULL_TAIL)
    if cut > 0:
        return b'{"type":"' + kind + b'",' + data[1:cut] + b"}"
    if b'"change_pct":' not in data:
        return b'{"type":"' + kind + b'",' + data[1:-1] + _NO_CHANGE
    return b'{"type":"' + kind + b'",' + data[1:]


def full_frame(data: bytes, kind: bytes = b"quote") -> bytes:
    """Mode full: the whole quote JSON, with the price band (null until the venue sends one)."""
    if len(data) <= 2:
        return b'{"type":"' + kind + b'"}'
    body = data[1:-1]
    if b'"change_pct":' not in data:
        body += _NO_CHANGE[:-1]
    if data.rfind(_FULL_TAIL) < 0:
        body += _NO_FULL
    if b'"lower_band":' in data:
        return b'{"type":"' + kind + b'",' + body + b"}"
    return b'{"type":"' + kind + b'",' + body + _NO_BAND


def _number_at(data: bytes, name: bytes) -> bytes | None:
    """The text of a number (or null) field of a flat JSON object, as written; None if absent
    or not plainly written (the caller then parses the JSON)."""
    at = data.find(name)
    if at < 0:
        return None
    start = at + len(name)
    end = data.find(b",", start)
    close = data.find(b"}", start)
    if end < 0 or 0 <= close < end:
        end = close
    if end < 0:
        return None
    value = data[start:end]
    return value if value and value.strip(b"-+.eE0123456789") in (b"", b"null") else None


def _stale_part(data: bytes) -> bytes | None:
    """`,"stale":true,"stale_reason":..,"stale_since":..` of the flow's quote JSON (a stale
    book, docs/book-integrity.md), b"" when sound; None when not plainly written."""
    at = data.find(_STALE)
    if at < 0:
        return b""
    end = data.find(_FULL_TAIL, at)
    return data[at:end] if end > 0 else None


def ltp_frame(data: bytes, kind: bytes = b"quote") -> bytes:
    """Mode ltp: symbol, ltp, ts and seq of the quote JSON (sliced from the flow's JSON, whose
    symbol comes first; parsed when it is not plainly written), and the stale flag with its
    reason and time when the quote has them."""
    if data.startswith(b'{"symbol":"'):
        end = data.find(b'"', 11)
        symbol = data[10 : end + 1]
        ltp = _number_at(data, b'"ltp":')
        ts = _number_at(data, b'"ts":')
        seq = _number_at(data, b'"seq":')
        stale = _stale_part(data)
        if end > 11 and b"\\" not in symbol and ltp and ts and seq and stale is not None:
            return (b'{"type":"' + kind + b'","symbol":' + symbol + b',"ltp":' + ltp
                    + b',"ts":' + ts + b',"seq":' + seq + stale + b"}")  # fmt: skip
    try:
        doc = json.loads(data)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    frame = {"type": kind.decode(), "symbol": doc.get("symbol"), "ltp": doc.get("ltp"),
             "ts": doc.get("ts"), "seq": doc.get("seq")}  # fmt: skip
    if doc.get("stale") is True:
        frame.update(stale=True, stale_reason=doc.get("stale_reason"),
                     stale_since=doc.get("stale_since"))  # fmt: skip
    return json.dumps(frame, separators=(",", ":")).encode()


def mode_frame(data: bytes, mode: str, kind: bytes = b"quote") -> bytes:
    """The frame of subscription `mode` (ltp, quote or full) from the quote JSON."""
    if mode == QUOTE:
        return quote_frame(data, kind)
    if mode == FULL:
        return full_frame(data, kind)
    return ltp_frame(data, kind)


def quotes_frame(frames: list[bytes]) -> bytes:
    """One frame for a client that is behind: the latest quote frame of each symbol."""
    if len(frames) == 1:
        return frames[0]
    return b'{"type":"quotes","quotes":[' + b",".join(frames) + b"]}"


def alert_frame(stream_id: bytes, data: bytes) -> bytes:
    """`{"type":"alert","stream_id":..., <alert fields>}`; `stream_id` is the resume cursor."""
    return b'{"type":"alert","stream_id":"' + stream_id + b'",' + data[1:]


def orders_frame(hashes: list[dict[bytes, bytes]]) -> bytes:
    """`{"type":"orders","orders":[<order frame>, …]}` of open-order hashes (ClOrdID -> frame
    JSON, `orders:open:{account}`), oldest first (by `ts`, then ClOrdID)."""
    frames = []
    for table in hashes:
        for cl_ord_id, data in table.items():
            try:
                ts = json.loads(data).get("ts") or 0
            except (ValueError, AttributeError):
                continue  # not a frame: nothing to show
            frames.append((ts if isinstance(ts, int) else 0, cl_ord_id, data))
    frames.sort(key=lambda f: (f[0], f[1]))
    return b'{"type":"orders","orders":[' + b",".join(f[2] for f in frames) + b"]}"


def price_alert_frame(stream_id: bytes, data: bytes) -> bytes:
    """A PRICE_ALERT entry of `stream:alerts` as the trader's `{"type":"price_alert","id",
    "symbol","condition","value","ltp","ts"}` (plus its `account` and `stream_id`, the resume
    cursor, as alert frames carry it). Parsed: a trader's price alerts are few."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        doc = {}
    details = doc.get("details")
    if not isinstance(details, dict):
        details = {}
    return json_frame(
        "price_alert", id=details.get("id"), symbol=doc.get("symbol"),
        condition=details.get("condition"), value=_number(details.get("value")),
        ltp=_number(details.get("ltp")), ts=doc.get("event_time"), account=doc.get("account"),
        stream_id=stream_id.decode(),
    )  # fmt: skip


def _number(value: object) -> object:
    """A decimal the alert JSON carries as a string (exact), as a JSON number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def json_frame(kind: str, **fields: object) -> bytes:
    """A small control frame: pong, error, hello, unsubscribed, health."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":")).encode()


def error_frame(message: str, **fields: object) -> bytes:
    return json_frame("error", message=message, **fields)
