"""Connectors layer: reference data as FIX user-defined messages (issue 20, part 1).

The FIX specification reserves MsgType (35) values beginning with "U" and tags 5000-9999 for
user-defined messages and fields. Changes to reference data during the day travel as two of
them, in the same input as the fills (a replay file's lines, the gateway's sequenced topics),
so each gets its place among them:

    35=UA  AccountChanged: an account opened, or its owner or margin rates changed
           Account (1)                required
           AccountOwner (5001)        required
           InitialMarginRate (5002)   fraction, 0 < x <= 1; default 0.50
           MaintenanceMarginRate (5003) fraction, 0 < x <= initial; default 0.30
           OpeningCash (5004)         the cash of a new account; default 0
           TransactTime (60)          event time, else SendingTime (52)
    35=UC  CashMoved: a deposit (positive) or a withdrawal (negative)
           Account (1)                required
           CashAmount (5010)          required, signed, not 0
           CashMovementID (5011)      required: applied once per id
           TransactTime (60)          event time, else SendingTime (52)

A message that breaks these rules is a dead letter with the reason (`FieldError`); whether the
account exists is the ledger's to judge, in order with the fills. `account_changed_message`
and `cash_moved_message` build the messages (the gateway's drop folder, tests, simulators).
"""

from __future__ import annotations

import re
from decimal import Decimal

from connectors.fix.codec import FixMessage
from connectors.fix.timefmt import format_utc_timestamp, parse_utc_timestamp
from domain.errors import FieldError
from domain.events import AccountChanged, CashMoved

ACCOUNT_CHANGED = "UA"
CASH_MOVED = "UC"
REFERENCE_MSG_TYPES = frozenset((ACCOUNT_CHANGED, CASH_MOVED))

ACCOUNT = 1
TRANSACT_TIME = 60
SENDING_TIME = 52
ACCOUNT_OWNER = 5001
INITIAL_MARGIN_RATE = 5002
MAINTENANCE_MARGIN_RATE = 5003
OPENING_CASH = 5004
CASH_AMOUNT = 5010
CASH_MOVEMENT_ID = 5011

TAG_NAMES = {
    ACCOUNT_OWNER: "AccountOwner",
    INITIAL_MARGIN_RATE: "InitialMarginRate",
    MAINTENANCE_MARGIN_RATE: "MaintenanceMarginRate",
    OPENING_CASH: "OpeningCash",
    CASH_AMOUNT: "CashAmount",
    CASH_MOVEMENT_ID: "CashMovementID",
}
DEFAULT_INITIAL = Decimal("0.50")
DEFAULT_MAINTENANCE = Decimal("0.30")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def _name(tag: int) -> str:
    return f"{TAG_NAMES.get(tag, 'Account' if tag == ACCOUNT else str(tag))}({tag})"


def _values(msg: FixMessage) -> dict[int, str]:
    values: dict[int, str] = {}
    for tag, raw in msg.fields:
        values.setdefault(tag, raw.decode("utf-8", "replace"))
    return values


def _required(values: dict[int, str], tag: int) -> str:
    value = values.get(tag, "").strip()
    if not value:
        msg = f"{_name(tag)} missing"
        raise FieldError(tag, msg)
    return value


def parse_number(text: str, tag: int) -> Decimal:
    """A decimal as FIX writes it (no exponent, no NaN); FieldError naming the tag if not."""
    if not _NUMBER.fullmatch(text.strip()):
        msg = f"{_name(tag)} was '{text}', not a number"
        raise FieldError(tag, msg)
    return Decimal(text.strip())


def check_rates(initial: Decimal, maintenance: Decimal) -> None:
    """The rules of `accounts` (sql/postgres/0002): 0 < maintenance <= initial <= 1."""
    if not Decimal(0) < initial <= 1:
        msg = f"{_name(INITIAL_MARGIN_RATE)} was {initial}, not a fraction in (0, 1]"
        raise FieldError(INITIAL_MARGIN_RATE, msg)
    if not Decimal(0) < maintenance <= initial:
        msg = (
            f"{_name(MAINTENANCE_MARGIN_RATE)} was {maintenance}, not a fraction in "
            f"(0, {initial}] (at most the initial rate)"
        )
        raise FieldError(MAINTENANCE_MARGIN_RATE, msg)


def _event_time(values: dict[int, str]) -> int:
    for tag in (TRANSACT_TIME, SENDING_TIME):
        raw = values.get(tag)
        if raw is not None:
            try:
                return parse_utc_timestamp(raw.encode())
            except (ValueError, FieldError):
                msg = f"{'TransactTime' if tag == 60 else 'SendingTime'}({tag}) was '{raw}'"
                raise FieldError(tag, msg + ", not a UTC timestamp") from None
    msg = "SendingTime(52) missing, and no TransactTime(60)"
    raise FieldError(SENDING_TIME, msg)


def parse_account_changed(msg: FixMessage, source: str = "", raw: bytes = b"") -> AccountChanged:
    """Parse a 35=UA (see the module docstring); FieldError on a rule broken."""
    values = _values(msg)
    account = _required(values, ACCOUNT)
    owner = _required(values, ACCOUNT_OWNER)
    initial = values.get(INITIAL_MARGIN_RATE)
    maintenance = values.get(MAINTENANCE_MARGIN_RATE)
    initial_rate = (
        DEFAULT_INITIAL if initial is None else parse_number(initial, INITIAL_MARGIN_RATE)
    )
    maintenance_rate = (
        DEFAULT_MAINTENANCE
        if maintenance is None
        else parse_number(maintenance, MAINTENANCE_MARGIN_RATE)
    )
    check_rates(initial_rate, maintenance_rate)
    cash = values.get(OPENING_CASH)
    opening_cash = Decimal(0) if cash is None else parse_number(cash, OPENING_CASH)
    return AccountChanged(
        account, owner, initial_rate, maintenance_rate, opening_cash, _event_time(values),
        raw, source,
    )  # fmt: skip


def parse_cash_moved(msg: FixMessage, source: str = "", raw: bytes = b"") -> CashMoved:
    """Parse a 35=UC (see the module docstring); FieldError on a rule broken."""
    values = _values(msg)
    account = _required(values, ACCOUNT)
    amount = parse_number(_required(values, CASH_AMOUNT), CASH_AMOUNT)
    if not amount:
        msg_text = f"{_name(CASH_AMOUNT)} was 0: no movement"
        raise FieldError(CASH_AMOUNT, msg_text)
    movement_id = _required(values, CASH_MOVEMENT_ID)
    return CashMoved(account, amount, movement_id, _event_time(values), raw, source)


# -- building the messages ------------------------------------------------------------------


def _frame(fields: list[tuple[int, str]], begin_string: str = "FIX.4.4") -> bytes:
    body = "".join(f"{tag}={value}\x01" for tag, value in fields).encode()
    message = f"8={begin_string}\x019={len(body)}\x01".encode() + body
    return message + b"10=%03d\x01" % (sum(message) % 256)


def _header(msg_type: str, ts_event: int, sender: str, seq: int) -> list[tuple[int, str]]:
    stamp = format_utc_timestamp(ts_event)
    return [(35, msg_type), (49, sender), (56, "BROKERFLOW"), (34, str(seq)), (52, stamp)]


def account_changed_message(
    account: str,
    owner: str,
    ts_event: int,
    initial_margin: Decimal | str | None = None,
    maintenance_margin: Decimal | str | None = None,
    opening_cash: Decimal | str | None = None,
    sender: str = "BACKOFFICE",
    seq: int = 1,
) -> bytes:
    """A 35=UA message (SOH-delimited, no newline) with TransactTime (60) `ts_event`."""
    fields = [*_header(ACCOUNT_CHANGED, ts_event, sender, seq), (ACCOUNT, account),
              (ACCOUNT_OWNER, owner)]  # fmt: skip
    if initial_margin is not None:
        fields.append((INITIAL_MARGIN_RATE, str(initial_margin)))
    if maintenance_margin is not None:
        fields.append((MAINTENANCE_MARGIN_RATE, str(maintenance_margin)))
    if opening_cash is not None:
        fields.append((OPENING_CASH, str(opening_cash)))
    fields.append((TRANSACT_TIME, format_utc_timestamp(ts_event)))
    return _frame(fields)


def cash_moved_message(
    account: str,
    amount: Decimal | str,
    movement_id: str,
    ts_event: int,
    sender: str = "BACKOFFICE",
    seq: int = 1,
) -> bytes:
    """A 35=UC message (SOH-delimited, no newline) with TransactTime (60) `ts_event`."""
    fields = [*_header(CASH_MOVED, ts_event, sender, seq), (ACCOUNT, account),
              (CASH_AMOUNT, str(amount)), (CASH_MOVEMENT_ID, movement_id),
              (TRANSACT_TIME, format_utc_timestamp(ts_event))]  # fmt: skip
    return _frame(fields)
