"""Sinks layer: ClickHouse, the audit trail and analytics store.

Owns the `ClickHouseStore` protocol and its two backends, chosen by URL (`open_store`):

- `chdb:///abs/path` or `chdb://` (= `<data_dir>/clickhouse`): the embedded ClickHouse engine,
  in-process (`ChdbStore`). chdb hosts one engine per process, bound to one path; connections to
  that path are shared through a module-level registry (`_SessionRegistry`), and asking for a
  second path while the first is open is an error.
- `http(s)://user:pass@host:8123/db`: a ClickHouse server through clickhouse-connect
  (`ServerStore`).

Both run the same DDL (`sql/clickhouse/`, applied by `migrate_clickhouse`) and the same report
SQL, take rows in the same shape (`audit_rows`, `tick_rows`: Python values; DateTime64 columns as
int ticks, e.g. epoch microseconds for DateTime64(6)), or the same values one sequence per column
(`insert_columns` of `audit_columns`, `tick_columns`), and split inserts into chunks of
`max_insert_rows` rows. Also the Bytewax sinks `AuditSink`, `TicksSink` and `AlertsSink` (one
insert per batch, on the worker thread; the tests' reference) and the pipelined ones the flows
use (audit, the stop engine's audit rows, surveillance's alerts).

chdb inserts are `INSERT … SELECT * FROM Python(table)` of an Arrow table built from the rows'
columns (`_arrow_table`), with Decimal, UUID and Date values passed as strings for the
INSERT's conversion to parse: for audit rows ~40 % less CPU than JSON, Python and chdb
together (the earlier finding that Arrow loses held for arrays built from Decimal objects).
A table with a column type Arrow does not carry here goes in as `INSERT … FORMAT
JSONCompactColumns`: one C-speed `json.dumps` of the batch, which measured fastest of
TabSeparated, JSONCompactEachRow and streaming `send_insert`. Also the pipelined sinks
(`PipelinedAuditSink`, `PipelinedTicksSink`): rows handed to a background writer that builds the
columns and inserts them in large inserts off the worker thread (chdb releases the GIL while it
inserts), drained at every epoch's snapshot.

Modules: `store` (the protocol, `ChdbStore`, `ServerStore`, `open_store`), `sql_text` (statement
splitting, the read-only check, identifiers), `codecs` (values to and from JSON and Arrow by
column type), `rows` (table rows and columns from domain values), `schema` (migrations and
retention) and `sinks` (the Bytewax sinks). Every name other modules import is re-exported here.
"""

from __future__ import annotations

from sinks.clickhouse.codecs import (
    _json_encoder,
    decode_json_compact,
    encode_json_columns,
)
from sinks.clickhouse.errors import (
    ClickHouseError,
    ReadOnlyError,
)
from sinks.clickhouse.rows import (
    ALERT_COLUMNS,
    AUDIT_COLUMNS,
    TICK_COLUMNS,
    alert_columns,
    alert_rows,
    audit_columns,
    audit_rows,
    tick_columns,
    tick_rows,
)
from sinks.clickhouse.schema import (
    default_sql_dir,
    migrate_clickhouse,
    set_audit_retention,
)
from sinks.clickhouse.sinks import (
    ALERTS_PARTITION,
    AUDIT_PARTITION,
    LIVE_MAX_DELAY_S,
    TICKS_PARTITION,
    AlertsSink,
    AuditSink,
    ClickHouseSink,
    Counter,
    PipelinedAlertsSink,
    PipelinedAuditSink,
    PipelinedTicksSink,
    TicksSink,
    _PipelinedSink,
    alerts_partition_key,
    audit_partition_key,
    ticks_partition_key,
)
from sinks.clickhouse.sql_text import (
    check_read_only,
    quote_identifier,
    split_statements,
)
from sinks.clickhouse.store import (
    DEFAULT_MAX_INSERT_ROWS,
    ChdbStore,
    ClickHouseStore,
    ServerStore,
    chunks,
    is_embedded,
    open_store,
    opens_store,
    retryable_errors,
)

__all__ = [
    "ALERTS_PARTITION",
    "ALERT_COLUMNS",
    "AUDIT_COLUMNS",
    "AUDIT_PARTITION",
    "AlertsSink",
    "AuditSink",
    "ChdbStore",
    "ClickHouseError",
    "ClickHouseSink",
    "ClickHouseStore",
    "Counter",
    "DEFAULT_MAX_INSERT_ROWS",
    "LIVE_MAX_DELAY_S",
    "PipelinedAlertsSink",
    "PipelinedAuditSink",
    "PipelinedTicksSink",
    "ReadOnlyError",
    "ServerStore",
    "TICKS_PARTITION",
    "TICK_COLUMNS",
    "TicksSink",
    "_PipelinedSink",
    "_json_encoder",
    "alert_columns",
    "alert_rows",
    "alerts_partition_key",
    "audit_columns",
    "audit_partition_key",
    "audit_rows",
    "check_read_only",
    "chunks",
    "decode_json_compact",
    "default_sql_dir",
    "encode_json_columns",
    "is_embedded",
    "migrate_clickhouse",
    "open_store",
    "opens_store",
    "quote_identifier",
    "retryable_errors",
    "set_audit_retention",
    "split_statements",
    "tick_columns",
    "tick_rows",
    "ticks_partition_key",
]
