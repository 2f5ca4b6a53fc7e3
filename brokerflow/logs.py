"""Application layer: structured logs, one line per event of interest.

Code logs an event name as the message and its figures as `extra={"fields": {...}}`:

    log.info("run_end", extra={"fields": {"messages": 1000, "seconds": 1.2}})

`configure_logging("json")` writes each as one JSON object per line
(`{"ts", "level", "logger", "event", ...fields}`); "text" writes `ts level logger event k=v…`.
Events: run_start, run_end (`brokerflow.run`), sink_retry (`brokerflow.sinks`),
dead_letter_burst (`brokerflow.flows`), dq_failure (`brokerflow.dq`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LOG_FORMATS = ("text", "json")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, event, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`ts level logger event key=value…` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname.lower(), record.name, record.getMessage()]
        parts += [f"{key}={value}" for key, value in _fields(record).items()]
        line = " ".join(str(part) for part in parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


_handler: logging.Handler | None = None


def configure_logging(fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send the `brokerflow` loggers to `stream` (stderr) in `fmt`; idempotent (replaces the
    handler a previous call installed)."""
    global _handler
    logger = logging.getLogger("brokerflow")
    if _handler is not None:
        logger.removeHandler(_handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # one line per event, not a second one from the root logger
    _handler = handler
