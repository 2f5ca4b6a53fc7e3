"""Sinks layer: the holdings documents of the ledger's accounts (PostgreSQL -> Redis).

An account's holdings document (`domain.positions.holdings_doc_of`) holds its cash and each
holding open, or traded on the document's day. `holdings_docs` builds those of the accounts a
ledger batch changed, from the batch's own holdings where `HoldingsDocCache` knows the account
as of its row's xmin, else read from the tables; `publish_holdings` publishes documents read
whole from the tables (after `brokerflow load`, or for a batch replayed after a crash).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from domain.ledger import ZERO, Holding
from domain.ledger_book import NO_DAY, DayPnl, HoldingKey
from domain.positions import day_of, holding_item, holdings_doc_of
from sinks.ledger_sql import day_number, text_array
from sinks.positions import HOLDINGS, PositionsDoc, PositionsPublisher

# The holdings documents of the accounts a batch changed (`holdings_docs`), read in the
# transaction after its writes: cash, and every holding open or traded on some day.
_SELECT_POSITIONS = (
    "SELECT a.account, a.cash, h.symbol, h.quantity, h.avg_price, h.pnl_day, h.realised_pnl_day "
    "FROM accounts a LEFT JOIN holdings h ON h.account = a.account "
    "AND (h.quantity <> 0 OR h.pnl_day IS NOT NULL) "
    "WHERE a.account = ANY(%s::text[]) ORDER BY a.account, h.symbol"
)


def holdings_docs(
    cur: psycopg.Cursor,
    cache: HoldingsDocCache,
    changed: Mapping[str, int],
    versions: Mapping[str, str],
    updated: Mapping[str, tuple[Decimal, str, int, int]],
    moved: Collection[HoldingKey],
    holdings: Mapping[HoldingKey, Holding],
    days: Mapping[HoldingKey, DayPnl],
) -> tuple[list[PositionsDoc], dict[str, AccountDoc]]:
    """The holdings documents of the accounts the batch changed, as they stand after its
    writes, and the cache entries to keep once the transaction commits.

    An account's document holds its cash and each holding open, or traded on the
    document's day (so a position closed today keeps its realised P&L in view); the day is
    that of the document's event time, the latest of the account's reports in the batch.
    Accounts `cache` holds as of the xmin their row had when locked are updated from the
    batch's own holdings; the others are read whole, in one query.

    Args:
        cur: the batch's cursor, after its writes.
        cache: the documents known from earlier batches.
        changed: account -> the latest event time of the batch's reports that moved it.
        versions: account -> the xmin of its row when the batch locked it.
        updated: account -> (cash, xmin, positions_ts_ns, positions_version) after the writes.
        moved: the holdings the batch wrote; `holdings` and `days` hold them as written.
    """
    if not changed:
        return [], {}
    entries = cache.entries
    stale = sorted(
        a for a in changed if (e := entries.get(a)) is None or e.version != versions.get(a)
    )
    read = {account: lines for account, (_, lines) in _read_lines(cur, stale).items()}
    touched: dict[str, list[str]] = {}
    for account, symbol in moved:
        touched.setdefault(account, []).append(symbol)
    docs: list[PositionsDoc] = []
    kept: dict[str, AccountDoc] = {}
    for account in sorted(changed):
        # The account's latest event time over every transaction, not this one's: the day's
        # last document is the same however the fills were batched (`positions_ts_ns`).
        cash, version, ts_ns, doc_version = updated[account]
        day = day_of(ts_ns)
        lines = read.get(account)
        if lines is not None:
            entry = AccountDoc(version, lines, {}, day)
        else:
            old = entries[account]
            same_day = old.day == day
            texts = dict(old.texts) if same_day else {}
            order = old.order if same_day else None
            entry = AccountDoc(version, dict(old.lines), texts, day, order)
            for symbol in touched.get(account, ()):
                h = holdings[account, symbol]
                pnl_day, day_pnl = days.get((account, symbol), NO_DAY)
                line = (h.quantity, h.avg_price, pnl_day, day_pnl)
                was = entry.lines.get(symbol)
                entry.lines[symbol] = line
                texts.pop(symbol, None)
                shown = _shown(line, day)
                if entry.order is not None and (was is None or _shown(was, day) != shown):
                    # A holding comes into the document or leaves it (the old entry's
                    # list is shared: copied once).
                    if entry.order is order:
                        entry.order = list(order)
                    if shown:
                        bisect.insort(entry.order, symbol)
                    else:
                        entry.order.remove(symbol)
        ts = ts_ns // 1_000_000
        docs.append(
            (account, doc_version, holdings_doc_of(account, cash, entry.items(), ts))
        )  # fmt: skip
        kept[account] = entry
    return docs, kept


# A holding as the documents need it: quantity, avg_price, pnl_day, realised_pnl_day.
_Line = tuple[Decimal, Decimal, int | None, Decimal]


def _read_lines(
    cur: psycopg.Cursor, accounts: Sequence[str]
) -> dict[str, tuple[Decimal, dict[str, _Line]]]:
    """account -> (cash, the holdings a document may show), in one query."""
    out: dict[str, tuple[Decimal, dict[str, _Line]]] = {}
    if accounts:
        cur.execute(_SELECT_POSITIONS, (text_array(accounts),))
        for account, cash, symbol, quantity, avg, date, day_pnl in cur.fetchall():
            lines = out.setdefault(account, (cash, {}))[1]
            if symbol is not None:
                lines[symbol] = (quantity, avg, day_number(date), day_pnl)
    return out


# The ledger's event time and version of each account's document; an account no flow has
# changed yet (positions_ts_ns 0: loaded only) takes its last execution's event time.
_LAST_EVENTS = (
    "SELECT a.account, CASE WHEN a.positions_ts_ns > 0 THEN a.positions_ts_ns ELSE "
    "coalesce((SELECT max(e.ts_event) FROM executions e WHERE e.account = a.account), 0) END, "
    "a.positions_version FROM accounts a WHERE a.account = ANY(%s::text[])"
)


def publish_holdings(
    conn: psycopg.Connection, publisher: PositionsPublisher, accounts: Iterable[str]
) -> int:
    """Publish the holdings documents of `accounts` as the tables hold them now: after
    `brokerflow load`, which changes holdings and cash outside the flows. A load is no event:
    a document's `ts` is the ledger's for the account (the event time of its last execution
    row when no flow has changed it: 0 without one), its version the account row's, and its
    day's realised P&L that day's. The ledger also calls it for the accounts of a batch
    replayed after a crash: the document is then the one it published, or should have.
    Returns the documents published."""
    wanted = sorted(set(accounts))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LAST_EVENTS, (text_array(wanted),))
        last = {account: (ts_ns, version) for account, ts_ns, version in cur.fetchall()}
        read = _read_lines(cur, wanted)
    docs: list[PositionsDoc] = []
    for account, (cash, lines) in sorted(read.items()):
        ts_ns, version = last.get(account, (0, 0))
        items = AccountDoc("", lines, {}, day_of(ts_ns)).items()
        ts = ts_ns // 1_000_000
        docs.append((account, version, holdings_doc_of(account, cash, items, ts)))
    return publisher.publish(HOLDINGS, docs)


def _shown(line: _Line, day: int) -> bool:
    """Whether a holding is in the document of `day`: open, or traded that day."""
    return bool(line[0]) or line[2] == day


@dataclass(slots=True)
class AccountDoc:
    """An account's holdings as of its row's xmin `version`, and their JSON for `day`."""

    version: str
    lines: dict[str, _Line]
    texts: dict[str, str]  # symbol -> `holding_item` for `day`, of the lines in the document
    day: int
    order: list[str] | None = None  # the symbols in the document, sorted; None: to be made

    def items(self) -> list[str]:
        """The document's holdings as JSON, in symbol order: open, or traded on `day`."""
        day, lines, texts = self.day, self.lines, self.texts
        order = self.order
        if order is None:
            order = self.order = sorted(s for s, line in lines.items() if _shown(line, day))
        out = []
        for symbol in order:
            text = texts.get(symbol)
            if text is None:
                quantity, avg, pnl_day, day_pnl = lines[symbol]
                realised = day_pnl if pnl_day == day else ZERO
                text = texts[symbol] = holding_item(symbol, quantity, avg, realised)
            out.append(text)
        return out


class HoldingsDocCache:
    """The holdings of the accounts a ledger writer published lately, so that a batch reads
    from PostgreSQL only the accounts it has not seen or another transaction changed since
    (their row's xmin moved: every change to an account's holdings updates its row: the
    ledger's fills, `brokerflow load positions`). Entries are kept only after a commit.

    Args:
        max_accounts: entries kept; past it the cache starts again empty.
    """

    def __init__(self, max_accounts: int = 100_000) -> None:
        self.entries: dict[str, AccountDoc] = {}
        self.max_accounts = max_accounts

    def keep(self, entries: dict[str, AccountDoc]) -> None:
        """Keep the entries of a committed transaction."""
        if len(self.entries) + len(entries) > self.max_accounts:
            self.entries.clear()
        self.entries.update(entries)
