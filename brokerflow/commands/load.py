"""`brokerflow load accounts FILE.csv` / `load positions FILE.csv` / `load reference DIR`.

accounts: columns `account,owner,cash[,initial_margin,maintenance_margin]` (margins as fractions,
defaults 0.50 and 0.30). positions: columns `account,symbol,quantity,avg_price`. reference: a
directory with `accounts.csv` and, if any, `positions.csv` (the start-of-day reference data a
back office hands over; the stack's one-shot `reference` service loads it before the flows
start), both validated, then written in one transaction.

The whole file is validated before anything is written: a bad row is a one-line error naming the
file, the line and the column (`accounts.csv:7: column cash: 'abc' is not a number`), exit 2, and
nothing is loaded. Loading is an upsert of every row in one transaction, so loading the same file
again changes nothing. Positions of accounts that are not in `accounts` are an error. With a
Redis configured (`BROKERFLOW_REDIS_URL`), the loaded accounts' holdings documents are then
published for the traders' positions frames (`sinks.ledger.publish_holdings`).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from domain.errors import BrokerflowError

DEFAULT_INITIAL_MARGIN = Decimal("0.50")
DEFAULT_MAINTENANCE_MARGIN = Decimal("0.30")


class LoadError(BrokerflowError):
    """A file to load is unreadable or has a bad row; the message names file, line and column."""


@dataclass(frozen=True, slots=True)
class Kind:
    """What one `load` target expects."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    key: tuple[str, ...]


ACCOUNTS = Kind(
    "accounts",
    ("account", "owner", "cash"),
    ("initial_margin", "maintenance_margin"),
    ("account",),
)
POSITIONS = Kind(
    "positions", ("account", "symbol", "quantity", "avg_price"), (), ("account", "symbol")
)
KINDS = {k.name: k for k in (ACCOUNTS, POSITIONS)}
REFERENCE = "reference"
"""`load reference DIR`: DIR/accounts.csv and, if present, DIR/positions.csv at once."""

_UPSERT_ACCOUNTS = """
INSERT INTO accounts AS a (account, owner, cash, initial_margin, maintenance_margin)
SELECT * FROM unnest(%s::text[], %s::text[], %s::numeric[], %s::numeric[], %s::numeric[])
ON CONFLICT (account) DO UPDATE SET
    owner = EXCLUDED.owner, cash = EXCLUDED.cash, initial_margin = EXCLUDED.initial_margin,
    maintenance_margin = EXCLUDED.maintenance_margin, updated_at = now()
WHERE (a.owner, a.cash, a.initial_margin, a.maintenance_margin)
    IS DISTINCT FROM (EXCLUDED.owner, EXCLUDED.cash, EXCLUDED.initial_margin,
                      EXCLUDED.maintenance_margin)
RETURNING (xmax = 0) AS inserted
"""

_UPSERT_POSITIONS = """
INSERT INTO holdings AS h (account, symbol, quantity, avg_price)
SELECT * FROM unnest(%s::text[], %s::text[], %s::numeric[], %s::numeric[])
ON CONFLICT (account, symbol) DO UPDATE SET
    quantity = EXCLUDED.quantity, avg_price = EXCLUDED.avg_price, updated_at = now()
WHERE (h.quantity, h.avg_price) IS DISTINCT FROM (EXCLUDED.quantity, EXCLUDED.avg_price)
RETURNING (xmax = 0) AS inserted
"""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `load` subcommand."""
    p = sub.add_parser(
        "load",
        parents=[common],
        help="load accounts or positions from a CSV file (validated, all or nothing)",
        description=(
            "Upsert accounts (account,owner,cash[,initial_margin,maintenance_margin]) or "
            "positions (account,symbol,quantity,avg_price) from a CSV file with a header row. "
            "A bad row stops the load before anything is written."
        ),
    )
    p.add_argument("kind", choices=[*sorted(KINDS), REFERENCE], help="what the file holds")
    p.add_argument(
        "file", type=Path, metavar="FILE.csv",
        help="CSV file with a header row (for reference: a directory with accounts.csv and "
        "positions.csv)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the file, then upsert it in one transaction and print a one-line summary."""
    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from sinks.postgres import migrate

    if args.kind == REFERENCE:
        batches = read_reference(args.file)
    else:
        kind = KINDS[args.kind]
        read = read_accounts if kind is ACCOUNTS else read_positions
        batches = [(kind, read(args.file), str(args.file))]
    settings = load_settings(args.config, args.data_dir)
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    counts = load_batches(dsn, batches)
    for (kind, rows, _), (new, updated) in zip(batches, counts, strict=True):
        print(summary(kind, len(rows), new, updated))
    if settings.redis_url:
        accounts = sorted({r[0] for _, rows, _ in batches for r in rows})
        publish_positions(dsn, settings.redis_url, accounts)
    return 0


def read_reference(directory: Path) -> list[tuple[Kind, list[tuple[Any, ...]], str]]:
    """Read and validate a reference-data directory: accounts.csv (required), positions.csv
    (optional). A position of an account that is in neither the file nor the store is refused
    when writing, before anything is committed.

    Raises:
        LoadError: not a directory, no accounts.csv, or the first bad row of either file.
    """
    if not directory.is_dir():
        msg = f"{directory}: not a directory (load reference takes a directory with accounts.csv)"
        raise LoadError(msg)
    accounts = directory / "accounts.csv"
    if not accounts.is_file():
        msg = f"{directory}: no accounts.csv"
        raise LoadError(msg)
    batches = [(ACCOUNTS, read_accounts(accounts), str(accounts))]
    positions = directory / "positions.csv"
    if positions.is_file():
        batches.append((POSITIONS, read_positions(positions), str(positions)))
    return batches


def publish_positions(dsn: str, redis_url: str, accounts: list[str]) -> None:
    """Publish the loaded accounts' holdings documents (the traders' positions, docs/edge.md);
    the load stands if Redis cannot be reached: one line says so."""
    import sys

    import psycopg
    import redis

    from sinks.ledger import publish_holdings
    from sinks.positions import PositionsPublisher
    from sinks.retry import RetryPolicy

    publisher = PositionsPublisher(redis_url, RetryPolicy(attempts=2, base_s=0.2))
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            publish_holdings(conn, publisher, accounts)
    except redis.RedisError as exc:
        print(f"loaded, but positions not published to Redis: {exc}", file=sys.stderr)
    finally:
        publisher.close()


def summary(kind: Kind, total: int, new: int, updated: int) -> str:
    """Return the one-line summary, e.g. "loaded 120 accounts (118 new, 2 updated)".

    >>> summary(ACCOUNTS, 3, 1, 1)
    'loaded 3 accounts (1 new, 1 updated, 1 unchanged)'
    """
    unchanged = total - new - updated
    tail = f", {unchanged} unchanged" if unchanged else ""
    return f"loaded {total} {kind.name} ({new} new, {updated} updated{tail})"


# -- validation --------------------------------------------------------------------------------


def _number(where: str, column: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        msg = f"{where}: column {column}: '{text}' is not a number"
        raise LoadError(msg)
    return value


def _read(path: Path, kind: Kind, row: Callable[[str, dict[str, str]], tuple[Any, ...]]) -> list:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        msg = f"{path}: {exc.strerror or exc}"
        raise LoadError(msg) from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                msg = f"{path}:1: empty file, expected a header row ({','.join(kind.required)})"
                raise LoadError(msg)
            columns = [c.strip() for c in header]
            allowed = set(kind.required) | set(kind.optional)
            for name in columns:
                if name not in allowed:
                    msg = (
                        f"{path}:1: unknown column '{name}' (expected "
                        f"{','.join(kind.required + kind.optional)})"
                    )
                    raise LoadError(msg)
            if len(set(columns)) != len(columns):
                msg = f"{path}:1: a column is named twice"
                raise LoadError(msg)
            missing = [c for c in kind.required if c not in columns]
            if missing:
                msg = f"{path}:1: column {missing[0]} missing"
                raise LoadError(msg)
            out: list[tuple[Any, ...]] = []
            seen: dict[tuple[str, ...], int] = {}
            for values in reader:
                line = reader.line_num
                if not values or all(not v.strip() for v in values):
                    continue
                where = f"{path}:{line}"
                if len(values) != len(columns):
                    msg = f"{where}: {len(values)} fields, the header has {len(columns)}"
                    raise LoadError(msg)
                record = dict(zip(columns, (v.strip() for v in values), strict=True))
                parsed = row(where, record)
                key = tuple(record[k] for k in kind.key)
                if key in seen:
                    msg = f"{where}: {'/'.join(key)} repeats line {seen[key]}"
                    raise LoadError(msg)
                seen[key] = line
                out.append(parsed)
        except csv.Error as exc:
            msg = f"{path}:{reader.line_num}: {exc}"
            raise LoadError(msg) from None
        except UnicodeDecodeError:
            msg = f"{path}: not UTF-8 text"
            raise LoadError(msg) from None
    return out


def _text(where: str, record: dict[str, str], column: str) -> str:
    value = record[column]
    if not value:
        msg = f"{where}: column {column}: empty"
        raise LoadError(msg)
    return value


def _account_row(where: str, record: dict[str, str]) -> tuple[Any, ...]:
    account = _text(where, record, "account")
    owner = _text(where, record, "owner")
    cash = _number(where, "cash", record["cash"])
    margins = []
    for column, default in (
        ("initial_margin", DEFAULT_INITIAL_MARGIN),
        ("maintenance_margin", DEFAULT_MAINTENANCE_MARGIN),
    ):
        text = record.get(column, "")
        value = _number(where, column, text) if text else default
        if not 0 < value <= 1:
            msg = f"{where}: column {column}: {text} is not a fraction in (0, 1]"
            raise LoadError(msg)
        margins.append(value)
    initial, maintenance = margins
    if maintenance > initial:
        msg = f"{where}: column maintenance_margin: {maintenance} is above initial_margin {initial}"
        raise LoadError(msg)
    return (account, owner, cash, initial, maintenance)


def _position_row(where: str, record: dict[str, str]) -> tuple[Any, ...]:
    account = _text(where, record, "account")
    symbol = _text(where, record, "symbol")
    quantity = _number(where, "quantity", record["quantity"])
    avg_price = _number(where, "avg_price", record["avg_price"])
    if avg_price < 0:
        msg = f"{where}: column avg_price: {record['avg_price']} is negative"
        raise LoadError(msg)
    return (account, symbol, quantity, avg_price, where)


def read_accounts(path: Path) -> list[tuple[Any, ...]]:
    """Read and validate an accounts file: `(account, owner, cash, initial, maintenance)` rows.

    Raises:
        LoadError: the first bad row, naming file, line and column.
    """
    return _read(path, ACCOUNTS, _account_row)


def read_positions(path: Path) -> list[tuple[Any, ...]]:
    """Read and validate a positions file: `(account, symbol, quantity, avg_price, where)` rows.

    `where` ("file:line") names the row in the error when its account is unknown.

    Raises:
        LoadError: the first bad row, naming file, line and column.
    """
    return _read(path, POSITIONS, _position_row)


# -- writing -----------------------------------------------------------------------------------


def load_rows(dsn: str, kind: Kind, rows: Sequence[tuple[Any, ...]], name: str) -> tuple[int, int]:
    """Upsert validated rows in one transaction (sorted by key: the ledger's lock order).

    Returns:
        `(new, updated)`; rows equal to what is stored are neither.

    Raises:
        LoadError: a position names an account that is not loaded (nothing is written).
    """
    return load_batches(dsn, [(kind, rows, name)])[0]


def load_batches(
    dsn: str, batches: Sequence[tuple[Kind, Sequence[tuple[Any, ...]], str]]
) -> list[tuple[int, int]]:
    """Upsert several validated files in ONE transaction, in order (accounts before the
    positions that name them): all or nothing. Returns `(new, updated)` per file."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction(), conn.cursor() as cur:
        return [_upsert(cur, kind, rows) for kind, rows, _ in batches]


def _upsert(cur: Any, kind: Kind, rows: Sequence[tuple[Any, ...]]) -> tuple[int, int]:
    if not rows:
        return 0, 0
    ordered = sorted(rows, key=lambda r: (r[0], r[1]) if kind is POSITIONS else r[0])
    if kind is POSITIONS:
        accounts = sorted({r[0] for r in ordered})
        cur.execute(
            "SELECT account FROM accounts WHERE account = ANY(%s) ORDER BY account FOR UPDATE",
            (accounts,),
        )
        known = {r[0] for r in cur.fetchall()}
        for row in rows:
            if row[0] not in known:
                msg = f"{row[4]}: column account: '{row[0]}' is not a known account"
                raise LoadError(msg)
        columns = [list(c) for c in zip(*(r[:4] for r in ordered), strict=True)]
        cur.execute(_UPSERT_POSITIONS, columns)
    else:
        columns = [list(c) for c in zip(*ordered, strict=True)]
        cur.execute(_UPSERT_ACCOUNTS, columns)
    flags = [r[0] for r in cur.fetchall()]
    if kind is POSITIONS:
        # Every change to an account's holdings updates its row: the ledger writer's cache
        # of holdings documents (sinks.ledger.HoldingsDocCache) sees it by the row's xmin.
        cur.execute("UPDATE accounts SET updated_at = now() WHERE account = ANY(%s)", (accounts,))
    new = sum(flags)
    return new, len(flags) - new
