"""Connectors layer: the FIX tag=value codec, parsing into domain events, batch decoding."""

from connectors.fix.codec import FixMessage, decode, extract_message, frame_lines
from connectors.fix.parse import (
    ADMIN_MSG_TYPES,
    DecodedBatch,
    decode_lines,
    parse_execution_report,
    parse_market_data,
    parse_message,
    parse_order_list,
    parse_order_request,
)
from connectors.fix.timefmt import format_utc_timestamp, parse_utc_timestamp

__all__ = [
    "ADMIN_MSG_TYPES",
    "DecodedBatch",
    "FixMessage",
    "decode",
    "decode_lines",
    "extract_message",
    "format_utc_timestamp",
    "frame_lines",
    "parse_execution_report",
    "parse_market_data",
    "parse_message",
    "parse_order_list",
    "parse_order_request",
    "parse_utc_timestamp",
]
