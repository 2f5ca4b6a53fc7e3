"""Persisted session state: the next sequence numbers and the application messages sent.

`MemoryStore` keeps them in memory (tests, the acceptance acceptor); `FileStore` keeps one
small file with both sequence numbers (rewritten, atomically, only by `flush()`: the engine
flushes once per batch of received bytes, not per message) and one append-only file of the
sent application messages, so a restarted session continues its numbering and can still
answer a ResendRequest. Admin messages are not stored: a resend replaces them with a
SequenceReset-GapFill.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from domain.errors import ConfigError


class MessageStore(Protocol):
    """What the session state needs from a store."""

    next_sender: int
    next_target: int

    def save(self, seq: int, raw: bytes) -> None:
        """Keep a sent application message for later resends."""

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        """Stored messages with begin <= MsgSeqNum <= end, in order."""

    def reset(self) -> None:
        """Both sequence numbers back to 1 and the stored messages dropped."""

    def flush(self) -> None:
        """Make the sequence numbers durable (no-op in memory)."""


class MemoryStore:
    """A store that lives as long as the process."""

    def __init__(self) -> None:
        self.next_sender = 1
        self.next_target = 1
        self._messages: dict[int, bytes] = {}

    def save(self, seq: int, raw: bytes) -> None:
        self._messages[seq] = raw

    def get(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        return [(seq, self._messages[seq]) for seq in sorted(self._messages) if begin <= seq <= end]

    def reset(self) -> None:
        self.next_sender = 1
        self.next_target = 1
        self._messages.clear()

    def flush(self) -> None:
        pass


class FileStore(MemoryStore):
    """A store under `directory`: `<name>.seqnums` and `<name>.messages` (append-only).

    Record format of `.messages`: `<seq> <length>\\n<raw bytes>\\n`.

    Raises:
        ConfigError: the directory cannot be created or a file is corrupt.
    """

    def __init__(self, directory: Path, name: str) -> None:
        super().__init__()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"FIX store directory {directory} cannot be created: {exc}"
            raise ConfigError(msg) from exc
        self._seqnums_path = directory / f"{name}.seqnums"
        self._messages_path = directory / f"{name}.messages"
        self._load()
        self._saved = (self.next_sender, self.next_target)
        self._file = self._messages_path.open("ab")

    def _load(self) -> None:
        if self._seqnums_path.exists():
            parts = self._seqnums_path.read_text().split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                msg = f"{self._seqnums_path} is corrupt: {' '.join(parts)[:40]!r}"
                raise ConfigError(msg)
            self.next_sender, self.next_target = int(parts[0]), int(parts[1])
        if self._messages_path.exists():
            data = self._messages_path.read_bytes()
            pos = 0
            while pos < len(data):
                line_end = data.find(b"\n", pos)
                if line_end < 0:
                    break  # a record cut short by a crash: the rest is lost, seqnums still hold
                seq_text, _, length_text = data[pos:line_end].partition(b" ")
                if not (seq_text.isdigit() and length_text.isdigit()):
                    break
                start = line_end + 1
                end = start + int(length_text)
                if end > len(data):
                    break
                self._messages[int(seq_text)] = data[start:end]
                pos = end + 1
            if self._messages:
                # A message stored after the last flush still used its number.
                self.next_sender = max(self.next_sender, max(self._messages) + 1)

    def save(self, seq: int, raw: bytes) -> None:
        self._messages[seq] = raw
        self._file.write(b"%d %d\n%s\n" % (seq, len(raw), raw))

    def reset(self) -> None:
        super().reset()
        self._file.close()
        self._file = self._messages_path.open("wb")
        self.flush()

    def flush(self) -> None:
        self._file.flush()
        current = (self.next_sender, self.next_target)
        if current == self._saved:
            return
        tmp = self._seqnums_path.with_suffix(".tmp")
        tmp.write_text(f"{current[0]} {current[1]}\n")
        os.replace(tmp, self._seqnums_path)
        self._saved = current

    def close(self) -> None:
        self.flush()
        self._file.close()
