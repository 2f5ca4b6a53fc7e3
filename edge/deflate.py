"""Edge layer: permessage-deflate (RFC 7692) for the clients that ask for it.

Off by default: quote frames are ~200 bytes, where compressing costs more CPU than it saves on the
wire. A client opts in with the `compress=1` query parameter *and* the usual
`Sec-WebSocket-Extensions: permessage-deflate` offer (browsers always send the offer, hence the
parameter). Both directions use no context takeover, so each message is compressed on its own.
"""

from __future__ import annotations

import zlib

_TAIL = b"\x00\x00\xff\xff"
RESPONSE_HEADER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def offered(extensions_header: str | None) -> bool:
    """Return whether the client's Sec-WebSocket-Extensions offers permessage-deflate."""
    if not extensions_header:
        return False
    return any(
        part.split(";", 1)[0].strip().lower() == "permessage-deflate"
        for part in extensions_header.split(",")
    )


def compress(payload: bytes, level: int = 6) -> bytes:
    """The compressed payload of one message (to send with RSV1 set)."""
    engine = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = engine.compress(payload) + engine.flush(zlib.Z_SYNC_FLUSH)
    return data[:-4] if data.endswith(_TAIL) else data


def decompress(payload: bytes, max_bytes: int) -> bytes:
    """The payload of a compressed client message, refusing to inflate past `max_bytes`.

    Raises:
        ValueError: not valid deflate data, or it inflates past `max_bytes`.
    """
    engine = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        data = engine.decompress(payload + _TAIL, max_bytes + 1)
    except zlib.error as exc:
        msg = f"bad compressed message ({exc})"
        raise ValueError(msg) from None
    if len(data) > max_bytes:
        msg = f"compressed message inflates past the {max_bytes}-byte limit"
        raise ValueError(msg)
    return data
