"""Sinks layer: outbound orders appended to a FIX file (`replay --orders-out FILE`), once each.

Items are encoded messages (the connectors layer builds them); ClOrdID (11) is read back.
Exactly once by ClOrdID: on open the file is scanned for the ClOrdIDs (11) it already holds,
and a batch writes only new ones, then flushes and fsyncs before `write_batch` returns, so an
order is on disk before Bytewax may snapshot past it, and a replay after a crash skips what
was already sent. One writer per file: the sink has a single partition.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

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
    """Appends messages to a file, one per line, skipping ClOrdIDs already written."""

    def __init__(self, path: Path, count: Counter | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sent = sent_cl_ord_ids(self.path)
        self._fh = self.path.open("ab")
        self._count = count

    @property
    def sent(self) -> int:
        return len(self._sent)

    def write(self, items: list[tuple[str, bytes]]) -> int:
        """Append the new ones; return how many were written (durable on return)."""
        lines = []
        for cl_ord_id, message in items:
            if cl_ord_id in self._sent:
                continue
            self._sent.add(cl_ord_id)
            lines.append(message + b"\n")
        if lines:
            self._fh.write(b"".join(lines))
            self._fh.flush()
            os.fsync(self._fh.fileno())
            if self._count is not None:
                self._count("orders_out", len(lines))
        return len(lines)

    def close(self) -> None:
        self._fh.close()


PARTITION = "orders-out"


class _OrderFilePartition(StatefulSinkPartition[bytes, None]):
    def __init__(self, writer: OrderFileWriter) -> None:
        self._writer = writer

    def write_batch(self, values: list[bytes]) -> None:
        self._writer.write([(cl_ord_id_of(message), message) for message in values])

    def snapshot(self) -> None:
        return None  # the file is the state: it is re-scanned on resume

    def close(self) -> None:
        self._writer.close()


def cl_ord_id_of(message: bytes) -> str:
    """ClOrdID (11) of an encoded message; ValueError if it has none."""
    match = _CL_ORD_ID.search(message)
    if match is None:
        msg = "outbound message without ClOrdID(11)"
        raise ValueError(msg)
    return match[1].decode("utf-8", "replace")


class OrderFileSink(FixedPartitionedSink[bytes, None]):
    """Bytewax sink appending encoded outbound orders to one file.

    One partition (`PARTITION`), so Bytewax routes every order to the one worker that owns the
    file whatever worker produced it; items are `(PARTITION, message)` pairs.
    """

    def __init__(self, path: Path, count: Counter | None = None) -> None:
        self._path = Path(path)
        self._count = count

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[bytes, None]:
        return _OrderFilePartition(OrderFileWriter(self._path, self._count))
