"""Sinks layer: the margin flow's reads and writes in PostgreSQL.

`load_accounts(dsn)` reads the opening state of the accounts (cash, rates, holdings, the last
margin state, the cash movements already in the cash) once, before the dataflow starts, so
that the ledger writing in the same run can never be read half-way; `AccountMarginSink`
upserts `account_margin`, the current figures and state of every account, one `executemany`
per batch in one transaction, keeping the latest row per account of the batch (idempotent: a
replay writes the same rows again), on a writer thread of its own (`sinks.background`):
written on the worker, the transactions' round trips were ~3 % of the all-flows replay's wall
time.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import psycopg
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from psycopg import errors as pg_errors

from domain.margin_rows import MarginRow  # moved to domain; still importable from here
from domain.positions import NS_PER_MS, margin_doc
from sinks.background import BackgroundPartition
from sinks.positions import MARGIN, PositionsPublisher
from sinks.postgres import PgBatchWriter
from sinks.redis import read_quotes
from sinks.retry import RetryPolicy

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class OpeningAccount:
    """An account as the ledger holds it when the flow starts."""

    account: str
    owner: str
    cash: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    holdings: dict[str, Decimal]
    margin_state: str = "NORMAL"
    call_since_ns: int | None = None
    as_of_ns: int = 0  # account_margin.event_time: the state already includes events up to it
    equity: Decimal | None = None  # the figures of the last account_margin row, if any
    gross_value: Decimal | None = None
    # the cash movements (35=UC) booked so far: already in `cash` (issue 20)
    movements: frozenset[str] = frozenset()


def load_accounts(
    dsn: str, keep: Callable[[str], bool] = lambda _: True
) -> dict[str, OpeningAccount]:
    """The accounts for which `keep(account)` is true, with their non-zero holdings."""
    out: dict[str, OpeningAccount] = {}
    with psycopg.connect(dsn) as conn:
        for account, owner, cash, initial, maintenance in conn.execute(
            "SELECT account, owner, cash, initial_margin, maintenance_margin FROM accounts"
        ):
            if keep(account):
                out[account] = OpeningAccount(account, owner, cash, initial, maintenance, {})
        for account, symbol, quantity in conn.execute(
            "SELECT account, symbol, quantity FROM holdings WHERE quantity <> 0"
        ):
            opening = out.get(account)
            if opening is not None:
                opening.holdings[symbol] = quantity
        for account, state, call_since, event_time, equity, gross in conn.execute(
            "SELECT account, state, call_since, event_time, equity, gross_value FROM account_margin"
        ):
            opening = out.get(account)
            if opening is None or event_time is None:
                continue
            as_of = _ns(event_time)
            if state != "NORMAL" and call_since is not None:
                opening = replace(opening, margin_state=state, call_since_ns=_ns(call_since))
            out[account] = replace(opening, as_of_ns=as_of, equity=equity, gross_value=gross)
        movements: dict[str, set[str]] = {}
        for account, movement_id in conn.execute("SELECT account, movement_id FROM cash_movements"):
            movements.setdefault(account, set()).add(movement_id)
        for account, ids in movements.items():
            opening = out.get(account)
            if opening is not None:
                out[account] = replace(opening, movements=frozenset(ids))
    return out


def _ns(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def opening_marks(redis_url: str, opening: dict[str, OpeningAccount]) -> dict[str, Decimal]:
    """Marks (last trade, else mid) of the held symbols from the latest Redis quotes, so that a
    restarted flow can judge an account before each of its symbols trades again."""
    symbols = sorted({s for a in opening.values() for s in a.holdings})
    marks: dict[str, Decimal] = {}
    for symbol, doc in read_quotes(redis_url, symbols).items():
        if doc.get("ltp") is not None:
            marks[symbol] = Decimal(repr(doc["ltp"]))
        elif doc.get("bid") is not None and doc.get("ask") is not None:
            marks[symbol] = (Decimal(repr(doc["bid"])) + Decimal(repr(doc["ask"]))) / 2
    return marks


def holders_of(opening: dict[str, OpeningAccount]) -> dict[str, dict[str, Decimal]]:
    """symbol -> {account: quantity} of the opening holdings."""
    out: dict[str, dict[str, Decimal]] = {}
    for a in opening.values():
        for symbol, quantity in a.holdings.items():
            out.setdefault(symbol, {})[a.account] = quantity
    return out


_UPSERT = """
INSERT INTO account_margin
    (account, equity, gross_value, ratio, state, event_time, call_since, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (account) DO UPDATE SET equity = EXCLUDED.equity,
    gross_value = EXCLUDED.gross_value, ratio = EXCLUDED.ratio, state = EXCLUDED.state,
    event_time = EXCLUDED.event_time, call_since = EXCLUDED.call_since, updated_at = now()
WHERE account_margin.event_time IS NULL OR account_margin.event_time <= EXCLUDED.event_time
"""


def _time(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def _latest(rows: Sequence[MarginRow]) -> dict[str, MarginRow]:
    latest: dict[str, MarginRow] = {}
    for row in rows:
        latest[row.account] = row
    return latest


ACCOUNT_WAIT_S = 2.0
"""How long a batch with rows of accounts opened during the day (35=UA) waits, in the margin
writer's thread, for the ledger to commit their `accounts` rows (the rows' foreign key) before
it writes the others and holds these for the next batch."""
CLOSE_WAIT_S = 10.0
"""How long the rows still held wait for their accounts when the sink closes."""

log = logging.getLogger("brokerflow.flows")


def write_margin_rows(
    conn: psycopg.Connection, rows: Sequence[MarginRow], account_wait_s: float = ACCOUNT_WAIT_S
) -> tuple[int, list[MarginRow]]:
    """Upsert the latest row per account in one transaction (never an older over a newer);
    return how many were written, and the rows held back.

    An account opened during the day is in the margin book from its 35=UA on, and may get a
    row before the ledger (another writer) has committed the account: the batch then waits
    for it, polling, at most `account_wait_s`; the rows of accounts still missing are held
    back (returned), the others written."""
    latest = _latest(rows)
    try:
        return _upsert(conn, latest.values()), []
    except pg_errors.ForeignKeyViolation:
        missing = _await_accounts(conn, sorted(latest), account_wait_s)
        held = [latest.pop(a) for a in missing]
        return _upsert(conn, latest.values()), held


def _upsert(conn: psycopg.Connection, rows: Iterable[MarginRow]) -> int:
    params = [
        (r.account, r.equity, r.gross_value, r.ratio, r.state, _time(r.event_ns),
         None if r.call_since_ns is None else _time(r.call_since_ns))
        for r in sorted(rows, key=lambda r: r.account)
    ]  # fmt: skip
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_UPSERT, params)
    return len(params)


def _await_accounts(conn: psycopg.Connection, accounts: list[str], wait_s: float) -> list[str]:
    """The accounts still not in `accounts` after polling for at most `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        found = {
            a for (a,) in conn.execute(
                "SELECT account FROM accounts WHERE account = ANY(%s)", (accounts,)
            )
        }  # fmt: skip
        missing = [a for a in accounts if a not in found]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(0.02)


def margin_docs(rows: Sequence[MarginRow]) -> list[tuple[str, int, str]]:
    """The traders' margin documents (`domain.positions.margin_doc`) of the latest row per
    account, in account order."""
    out = []
    for r in sorted(_latest(rows).values(), key=lambda r: r.account):
        ts = r.event_ns // NS_PER_MS
        doc = margin_doc(r.account, r.equity, r.excess, r.state, ts, r.stale_marks)
        out.append((r.account, ts, doc))
    return out


MARGIN_PARTITION = "account_margin"


def margin_partition_key(rows: list[MarginRow]) -> tuple[str, list[MarginRow]]:
    """Key a batch of rows for `AccountMarginSink` (one partition)."""
    return MARGIN_PARTITION, rows


class AccountMarginSink(FixedPartitionedSink[list[MarginRow], None]):
    """Bytewax sink of `(MARGIN_PARTITION, [MarginRow])` items: upserted in order by a
    background writer, drained at every epoch's snapshot (`sinks.background`). With
    `redis_url`, each batch's latest row per account also goes out, after its commit, as the
    account's margin document (`margin:{account}` and `stream:positions`, `sinks.positions`)."""

    def __init__(
        self,
        dsn: str,
        policy: RetryPolicy | None = None,
        recovery: bool = True,
        redis_url: str | None = None,
    ) -> None:
        self._dsn = dsn
        self._policy = policy
        self._recovery = recovery
        self._redis_url = redis_url

    def list_parts(self) -> list[str]:
        """The one partition."""
        return [MARGIN_PARTITION]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[list[MarginRow], None]:
        """Connect and start the writer thread."""
        redis_url = self._redis_url
        publisher = PositionsPublisher(redis_url, self._policy) if redis_url else None

        held: list[MarginRow] = []  # rows of accounts the ledger has not committed yet
        wait_s = [ACCOUNT_WAIT_S]

        def write(conn: psycopg.Connection, rows: Sequence[MarginRow]) -> int:
            rows = [*held, *rows]
            written, still = write_margin_rows(conn, rows, wait_s[0])  # committed
            held[:] = still
            if publisher is not None:
                left = {id(r) for r in still}
                publisher.publish(MARGIN, margin_docs([r for r in rows if id(r) not in left]))
            return written

        def close() -> None:
            if held:  # a last chance for them; then they are named and left out
                wait_s[0] = CLOSE_WAIT_S
                rows = list(held)
                held.clear()
                writer.write(rows)
                if held:
                    accounts = sorted({r.account for r in held})
                    log.warning(
                        "margin_rows_dropped",
                        extra={"fields": {"accounts": accounts[:10], "rows": len(held),
                                          "why": "the ledger never opened these accounts"}},
                    )  # fmt: skip
            writer.close()
            if publisher is not None:
                publisher.close()

        writer: PgBatchWriter[MarginRow] = PgBatchWriter(self._dsn, write, self._policy)
        writer.connect()
        name = f"{step_id}.{for_part}"
        return BackgroundPartition.threaded(writer.write, close, name, 20_000, self._recovery)
