"""Sinks layer: outbound orders appended to a FIX file (`replay --orders-out FILE`), once each.

Items are `(cl_ord_id, order)` pairs; the writer encodes each new one with the encoder it is
given (the connectors layer's), numbering MsgSeqNum (34) after the lines already in the file.
Exactly once by ClOrdID: on open the file is scanned for the ClOrdIDs (11) it already holds,
and a batch writes only new ones, then flushes and fsyncs before `write_batch` returns, so an
order is on disk before Bytewax may snapshot past it, and a replay after a crash skips what
was already sent. One writer per file: `sinks.stops.StopOutputSink` owns it, in its single
partition.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_CL_ORD_ID = re.compile(rb"(?:^|\x01)11=([^\x01]*)\x01")
Counter = Callable[[str, int], None]


def sent_cl_ord_ids(path: Path) -> set[str]:
    """The ClOrdIDs of the 35=D messages already in `path` (none if it does not exist)."""
    if not path.exists():
        return set()
    out: set[str] = set()
    with path.open("rb") as fh:
        for line in fh:
            match = _CL_ORD_ID.search(line)
            if match:
                out.add(match[1].decode("utf-8", "replace"))
    return out


class OrderFileWriter:
    """Appends orders to a file, one message per line, skipping ClOrdIDs already written.

    Args:
        path: the file (created with its directory if missing).
        encode: `encode(order, seq) -> message bytes` (the connectors layer's encoder, passed
            in so this layer stays free of FIX); MsgSeqNum continues after the file's lines.
        count: called as `count("orders_out", n)` after each write.
    """

    def __init__(
        self,
        path: Path,
        encode: Callable[[Any, int], bytes],
        count: Counter | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sent = sent_cl_ord_ids(self.path)
        self._fh = self.path.open("ab")
        self._encode = encode
        self._count = count

    @property
    def sent(self) -> int:
        return len(self._sent)

    def write(self, items: Sequence[tuple[str, Any]]) -> int:
        """Append the orders not yet written; return how many (durable on return)."""
        lines = []
        for cl_ord_id, order in items:
            if cl_ord_id in self._sent:
                continue
            self._sent.add(cl_ord_id)
            lines.append(self._encode(order, len(self._sent)) + b"\n")
        if lines:
            self._fh.write(b"".join(lines))
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if self._count is not None:
                self._count("orders_out", len(lines))
        return len(lines)

    def close(self) -> None:
        self._fh.close()


def cl_ord_id_of(message: bytes) -> str:
    """ClOrdID (11) of an encoded message; ValueError if it has none."""
    match = _CL_ORD_ID.search(message)
    if match is None:
        msg = "outbound message without ClOrdID(11)"
        raise ValueError(msg)
    return match[1].decode("utf-8", "replace")
