"""Connectors layer: decoded FIX messages -> domain events, and the batch decoder of log lines.

`parse_message` turns one `FixMessage` into events: 35=W -> one `MarketDataSnapshot`, 35=X -> one
`MarketDataIncrement` per symbol, 35=8 -> `ExecutionReport`, 35=D/F/G -> `OrderRequest`, 35=E ->
`OrderList` (`parse_order_list`), 35=f -> `SecurityStatus`, 35=h -> `TradingSessionStatus` (none
for 340=6), 35=UA -> `AccountChanged`, 35=UC -> `CashMoved` (reference data, user-defined:
`connectors.fix.reference`); session messages (35=0,1,2,3,4,5,A) -> `[]`; anything else ->
`FieldError` on MsgType (35).

`decode_lines` is the hot path the dataflow calls: it frames a batch of log lines, checksums them
all at once, parses market data straight from the split fields (no `FixMessage` built) and
execution reports (35=8) by a plan compiled once per tag sequence (`_compile_exec_plan`), and
sends every other message, and every message the fast paths decline, through `decode` +
`parse_message`. Both paths give the same events and dead letters (tested).

Modules:
- `messages`: the parsers of single messages (execution reports, order requests and lists,
  status and reference messages) and `parse_message`;
- `market_data`: the careful 35=W/X parser and its rules;
- `md_plans`: the market-data fast path (plans compiled per tag sequence, run in columns);
- `exec_plans`: the execution-report fast path;
- `batch`: `decode_lines`, its careful path and `DecodedBatch`;
- `damage`: the dead letters and `BookDamaged` events a batch adds;
- `values`, `caches`, `factories`: field readers, value caches, event factories.
"""

from connectors.fix.parse.batch import DecodedBatch, decode_lines
from connectors.fix.parse.market_data import parse_market_data
from connectors.fix.parse.messages import (
    ADMIN_MSG_TYPES,
    Event,
    parse_execution_report,
    parse_message,
    parse_order_list,
    parse_order_request,
    parse_security_status,
    parse_trading_session_status,
)

__all__ = [
    "ADMIN_MSG_TYPES",
    "DecodedBatch",
    "Event",
    "decode_lines",
    "parse_execution_report",
    "parse_market_data",
    "parse_message",
    "parse_order_list",
    "parse_order_request",
    "parse_security_status",
    "parse_trading_session_status",
]
