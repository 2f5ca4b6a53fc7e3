"""Connectors layer: the back office's drop folder of reference changes, for the gateway.

A back office drops CSV files into the folder set by `[reference] inbox = "/path"` in the
gateway's `--config` TOML (write the file elsewhere, or under another suffix, and rename it to
`*.csv` when complete). Two kinds, told apart by their header:

    account,owner,cash[,initial_margin,maintenance_margin]   accounts opened or changed, the
        columns of `brokerflow load accounts` (`cash` is the opening cash of a new account;
        an existing account keeps its cash: cash moves by movements only)
    account,amount,movement_id                                 cash movements: signed amounts,
        each id applied once however often delivered

A file is validated whole first, and, when the gateway is given the ledger's PostgreSQL
(`BROKERFLOW_POSTGRES_DSN`), checked against it: a movement of an account neither the ledger nor
a file accepted before opened, or a movement id booked already for another account or amount.
On a bad row it is refused whole: moved to `rejected/` with
`NAME.reason` ("line N: why") and one log line, nothing of it published. Otherwise each row
becomes a 35=UA or 35=UC line (`connectors.fix.reference`, TransactTime the time the gateway
took the file) that the gateway sequences among the FIX messages and publishes like them; once
every message of the file is delivered, the file moves to `done/`.

`InboxInput` wraps the gateway's input (FIX files or sessions): it looks into the folder
before the first chunk and then every `poll_s` seconds, between chunks.
"""

from __future__ import annotations

import csv
import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from connectors.config_file import read_config_document
from connectors.fix.reference import (
    account_changed_message,
    cash_moved_message,
    check_rates,
    parse_number,
)
from connectors.raw import RawChunk
from domain.errors import ConfigError, FieldError

log = logging.getLogger("brokerflow.gateway")

ACCOUNT_COLUMNS = ("account", "owner", "cash")
MARGIN_COLUMNS = ("initial_margin", "maintenance_margin")
CASH_COLUMNS = ("account", "amount", "movement_id")
DONE = "done"
REJECTED = "rejected"
_UNSAFE = ("|", "\x01", "=", "\n", "\r")  # would break the FIX message the row becomes


class InboxFileError(Exception):
    """A file the gateway refuses whole: the line and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def load_reference_inbox(config: Path, document: dict[str, Any] | None = None) -> Path | None:
    """The `[reference] inbox` folder of a TOML file, or None without a [reference] table;
    `document`: the file already parsed (`flows.settings.Settings.reference_inbox`), None
    reads it.

    Raises:
        ConfigError: an unknown key, or the folder does not exist.
    """
    if document is None:
        document = read_config_document(config)
    table = document.get("reference")
    if table is None:
        return None
    unknown = sorted(set(table) - {"inbox"})
    if unknown or "inbox" not in table:
        msg = f"{config} [reference]: {'unknown key ' + unknown[0] if unknown else 'no inbox'}"
        raise ConfigError(msg)
    inbox = Path(table["inbox"])
    if not inbox.is_dir():
        msg = f"{config} [reference] inbox: {inbox} is not a folder"
        raise ConfigError(msg)
    return inbox


def _text(row: dict[str, str], column: str, line: int) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise InboxFileError(line, f"{column} is empty")
    for bad in _UNSAFE:
        if bad in value:
            raise InboxFileError(line, f"{column} {value!r} contains {bad!r}")
    return value


def _number(row: dict[str, str], column: str, line: int) -> Decimal:
    value = _text(row, column, line)
    try:
        return parse_number(value, 0)
    except FieldError:
        raise InboxFileError(line, f"{column} {value!r} is not a number") from None


@dataclass(frozen=True, slots=True)
class InboxRow:
    """One row of a drop file: its line, what the checks against the ledger need, and the FIX
    line (with its newline) it becomes."""

    line: int
    account: str
    opens: bool  # a 35=UA: the account exists from this row on
    movement_id: str | None
    amount: Decimal | None
    message: bytes


Lookup = Callable[[list[str], list[str]], tuple[set[str], dict[str, tuple[str, Decimal]]]]
"""(accounts, movement ids) -> (the accounts the ledger knows, the movements it booked by id:
(account, amount))."""


def convert_file(data: bytes, ts_event: int) -> list[bytes]:
    """The FIX lines (with newlines) of a drop file's rows, all valid (`read_file`)."""
    return [row.message for row in read_file(data, ts_event)]


def read_file(data: bytes, ts_event: int) -> list[InboxRow]:
    """The rows of a drop file, all valid; InboxFileError on the first bad row (line numbers
    count the header as line 1)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InboxFileError(1, "not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(name.strip() for name in reader.fieldnames or ())
    reader.fieldnames = list(header)
    if header[:3] == ACCOUNT_COLUMNS and header[3:] in ((), MARGIN_COLUMNS):
        make = _account_line
    elif header == CASH_COLUMNS:
        make = _cash_line
    else:
        raise InboxFileError(
            1,
            f"header {','.join(header) or '(none)'}: expected {','.join(ACCOUNT_COLUMNS)}"
            f"[,{','.join(MARGIN_COLUMNS)}] or {','.join(CASH_COLUMNS)}",
        )
    rows: list[InboxRow] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise InboxFileError(line, f"{len(header)} columns expected")
        key, parsed = make(row, line, ts_event)
        if key in seen:
            raise InboxFileError(line, f"{key} is on line {seen[key]} too")
        seen[key] = line
        rows.append(parsed)
    if not rows:
        raise InboxFileError(1, "no rows")
    return rows


def check_known(rows: list[InboxRow], lookup: Lookup, opened: set[str]) -> None:
    """Refuse (InboxFileError) a cash movement of an account neither the ledger nor an
    accepted file (`opened`) knows, and a movement id the ledger booked for another account or
    amount. A movement booked with the same account and amount is a re-delivery (a gateway
    that stopped before it moved the file to done/): published again, changing nothing."""
    accounts = sorted({r.account for r in rows if not r.opens and r.account not in opened})
    ids = [r.movement_id for r in rows if r.movement_id is not None]
    if not accounts and not ids:
        return
    known, booked = lookup(accounts, ids)
    for r in rows:
        if not r.opens and r.account not in opened and r.account not in known:
            raise InboxFileError(r.line, f"account {r.account!r} is not a known account")
        was = booked.get(r.movement_id or "")
        if was is not None and was != (r.account, r.amount):
            raise InboxFileError(
                r.line,
                f"movement_id {r.movement_id} was booked already, for account {was[0]!r}, "
                f"amount {was[1]}",
            )


def postgres_lookup(dsn: str) -> Lookup:
    """The `Lookup` of the ledger in PostgreSQL (one connection per file checked)."""

    def lookup(
        accounts: list[str], movement_ids: list[str]
    ) -> tuple[set[str], dict[str, tuple[str, Decimal]]]:
        with psycopg.connect(dsn) as conn:
            known = {
                a for (a,) in conn.execute(
                    "SELECT account FROM accounts WHERE account = ANY(%s)", (accounts,)
                )
            }  # fmt: skip
            booked = {
                m: (a, amount) for m, a, amount in conn.execute(
                    "SELECT movement_id, account, amount FROM cash_movements "
                    "WHERE movement_id = ANY(%s)", (movement_ids,),
                )
            }  # fmt: skip
        return known, booked

    return lookup


def _account_line(row: dict[str, str], line: int, ts_event: int) -> tuple[str, InboxRow]:
    account, owner = _text(row, "account", line), _text(row, "owner", line)
    cash = _number(row, "cash", line)
    initial = maintenance = None
    if "initial_margin" in row:
        initial = _number(row, "initial_margin", line)
        maintenance = _number(row, "maintenance_margin", line)
        try:
            check_rates(initial, maintenance)
        except FieldError as exc:
            raise InboxFileError(line, exc.reason) from None
    message = account_changed_message(account, owner, ts_event, initial, maintenance, cash)
    return f"account {account}", InboxRow(line, account, True, None, None, message + b"\n")


def _cash_line(row: dict[str, str], line: int, ts_event: int) -> tuple[str, InboxRow]:
    account = _text(row, "account", line)
    amount = _number(row, "amount", line)
    if not amount:
        raise InboxFileError(line, "amount is 0")
    movement_id = _text(row, "movement_id", line)
    message = cash_moved_message(account, amount, movement_id, ts_event) + b"\n"
    return f"movement_id {movement_id}", InboxRow(
        line, account, False, movement_id, amount, message
    )


_END = object()


@dataclass
class InboxInput:
    """The gateway's input `inner` with the drop folder's files among its chunks (see the
    module docstring). Its `acknowledge(chunk)` moves a delivered file to `done/` (and passes
    the other chunks to `inner`'s, if it has one)."""

    inner: Any
    inbox: Path
    lookup: Lookup | None = None  # None: no checks against the ledger (its dead letters remain)
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        (self.inbox / DONE).mkdir(exist_ok=True)
        (self.inbox / REJECTED).mkdir(exist_ok=True)
        self._files: dict[int, Path] = {}
        self._opened: set[str] = set()  # accounts of the files accepted by this gateway

    def chunks(self) -> Iterator[RawChunk]:
        # The inner input may block (a quiet FIX session): read on a thread, so that the
        # folder is looked into every `poll_s` all the same.
        pending: queue.Queue = queue.Queue(maxsize=8)

        def pump() -> None:
            try:
                for chunk in self.inner.chunks():
                    pending.put(chunk)
                pending.put(_END)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                pending.put(exc)

        thread = threading.Thread(target=pump, name="gateway-input", daemon=True)
        thread.start()
        next_look = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_look:
                    yield from self.scan()
                    next_look = time.monotonic() + self.poll_s
                try:
                    item = pending.get(timeout=max(0.0, next_look - time.monotonic()))
                except queue.Empty:
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if thread.is_alive():  # the gateway stopped early (an error): end the input too
                self._stop_inner()
                deadline = time.monotonic() + 5.0
                while thread.is_alive() and time.monotonic() < deadline:
                    try:
                        pending.get(timeout=0.1)  # unblock the reader, let its input close
                    except queue.Empty:
                        pass

    def _stop_inner(self) -> None:
        stop = getattr(self.inner, "stop", None)
        if isinstance(stop, threading.Event):  # FileInput
            stop.set()
        elif callable(stop):  # SessionFeed: logs the sessions out
            stop()

    def scan(self) -> Iterator[RawChunk]:
        """One chunk per good `*.csv` file of the folder, in name order; bad ones refused."""
        for path in sorted(self.inbox.glob("*.csv")):
            try:
                rows = read_file(path.read_bytes(), time.time_ns())
                if self.lookup is not None:
                    check_known(rows, self.lookup, self._opened)
            except InboxFileError as exc:
                self._reject(path, exc)
                continue
            except (OSError, psycopg.Error) as exc:
                # gone, unreadable, or the ledger unreachable now: looked at again next time
                fields = {"file": path.name, "error": f"{type(exc).__name__}: {exc}"}
                log.warning("reference_file_deferred", extra={"fields": fields})
                continue
            self._opened.update(r.account for r in rows if r.opens)
            chunk = RawChunk(f"inbox:{path.name}", 1, [r.message for r in rows])
            self._files[id(chunk)] = path
            yield chunk

    def _reject(self, path: Path, error: InboxFileError) -> None:
        target = self.inbox / REJECTED / path.name
        target.with_name(path.name + ".reason").write_text(f"{error}\n")
        path.replace(target)
        log.warning(
            "reference_file_rejected",
            extra={"fields": {"file": path.name, "line": error.line, "reason": error.reason}},
        )

    def acknowledge(self, chunk: RawChunk) -> None:
        path = self._files.pop(id(chunk), None)
        if path is not None:
            path.replace(self.inbox / DONE / path.name)
            fields = {"file": path.name, "messages": len(chunk.lines)}
            log.info("reference_file_published", extra={"fields": fields})
            return
        acknowledge = getattr(self.inner, "acknowledge", None)
        if acknowledge is not None:
            acknowledge(chunk)
