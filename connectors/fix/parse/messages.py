"""Parsers of single decoded messages into domain events: execution reports (35=8), order
requests (35=D/F/G), order lists (35=E), market and session status (35=f/h), reference data
(35=UA/UC), and `parse_message` that dispatches on MsgType (35).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from connectors.fix.codec import (
    FixMessage,
    show,
)
from connectors.fix.parse.caches import _text
from connectors.fix.parse.market_data import parse_market_data
from connectors.fix.parse.values import (
    _decimal,
    _event_time,
    _md_number,
    _optional_decimal,
    _optional_text,
    _required,
    _timestamp,
)
from connectors.fix.reference import (
    ACCOUNT_CHANGED,
    CASH_MOVED,
    parse_account_changed,
    parse_cash_moved,
)
from connectors.fix.tags import label
from domain.errors import FieldError
from domain.events import (
    CLOSED,
    HALTED,
    OPEN,
    AccountChanged,
    BookDamaged,
    CashMoved,
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    OrderList,
    OrderRequest,
    SecurityStatus,
    TradingSessionStatus,
)
from domain.execution_reports import FIX_SIDES, execution_report_problem

ADMIN_MSG_TYPES = frozenset(("0", "1", "2", "3", "4", "5", "A"))
"""Session-level MsgType (35) values: decoded and counted, no events."""

Event = (
    MarketDataSnapshot
    | MarketDataIncrement
    | BookDamaged
    | ExecutionReport
    | OrderRequest
    | OrderList
    | SecurityStatus
    | TradingSessionStatus
    | AccountChanged
    | CashMoved
)


# ExecType (150) implied by OrdStatus (39) when the message is not a fill (FIX 4.0/4.1 logs).
_EXEC_TYPE_BY_ORD_STATUS = {
    "0": "0",
    "3": "3",
    "4": "4",
    "5": "5",
    "6": "6",
    "7": "7",
    "8": "8",
    "9": "9",
    "A": "A",
    "B": "B",
    "C": "C",
    "E": "E",
}
# ExecTransType (20) other than 0 (new) names the ExecType of FIX 4.4 directly.
_EXEC_TYPE_BY_TRANS_TYPE = {b"1": "H", b"2": "G", b"3": "I"}


def _exec_type(values: dict[int, bytes], ord_status: str, last_qty: Decimal | None) -> str:
    """Normalise ExecType (150) to FIX 4.4 values.

    - 150 = 1/2 (FIX 4.1/4.2 partial fill / fill) -> "F" (trade). QuickFIX/J's FIX.4.1 Executor
      also sends 150=2 on its acknowledgements with LastQty (32) = 0: those are not fills, so
      their ExecType comes from OrdStatus (39).
    - 150 missing (FIX 4.0): ExecTransType (20) 1/2/3 -> H/G/I (cancel/correct/status); else a
      positive LastQty makes a trade ("F"), otherwise OrdStatus decides ("I" for 1/2 without
      a fill).
    """
    raw = values.get(150)
    if raw is not None:
        exec_type = _text(raw)
        if exec_type not in ("1", "2"):
            return exec_type
        if last_qty is None:
            msg = "LastQty(32) missing"
            raise FieldError(32, msg)
        if last_qty > 0:
            return "F"
    else:
        by_trans_type = _EXEC_TYPE_BY_TRANS_TYPE.get(values.get(20, b"0"))
        if by_trans_type is not None:
            return by_trans_type
        if last_qty is not None and last_qty > 0:
            return "F"
    return _EXEC_TYPE_BY_ORD_STATUS.get(ord_status, "I")


_ZERO = Decimal(0)


def _check_positive(value: Decimal | None, tag: int) -> None:
    if value is not None and value <= 0:
        msg = f"{label(tag)} was {value}, not positive"
        raise FieldError(tag, msg)


def parse_execution_report(msg: FixMessage, source: str = "", raw: bytes = b"") -> ExecutionReport:
    """Parse an ExecutionReport (35=8).

    Required: ExecID (17), OrderID (37), OrdStatus (39), Symbol (55), Side (54), CumQty (14),
    AvgPx (6) once something has filled (0 when CumQty is 0 and it is absent), and LeavesQty
    (151) (derived as OrderQty - CumQty for FIX 4.0/4.1 when absent).
    LastQty (32) and LastPx (31) are required for fills and 0 when absent otherwise.
    Quantities, prices, statuses, Side and ExecRefID (19) must agree
    (`domain.execution_reports`, the rule the ledger and data quality apply too).

    Args:
        msg: a decoded 35=8.

    Returns:
        The normalised execution report.

    Raises:
        FieldError: a missing or malformed field.
    """
    values = msg.first_values()
    exec_id = _text(_required(values, 17))
    order_id = _text(_required(values, 37))
    ord_status = _text(_required(values, 39))
    symbol = _text(_required(values, 55))
    side = _text(_required(values, 54))
    cum_qty = _decimal(_required(values, 14), 14)
    avg_px = _optional_decimal(values, 6)
    if avg_px is None:
        if cum_qty:
            msg_text = "AvgPx(6) missing"
            raise FieldError(6, msg_text)
        avg_px = _ZERO  # nothing filled yet: Binance leaves AvgPx out of its acks
    order_qty = _optional_decimal(values, 38)
    last_qty = _optional_decimal(values, 32)
    last_px = _optional_decimal(values, 31)
    exec_type = _exec_type(values, ord_status, last_qty)
    if exec_type == "F":
        if last_qty is None:
            msg_text = "LastQty(32) missing"
            raise FieldError(32, msg_text)
        if last_px is None:
            msg_text = "LastPx(31) missing"
            raise FieldError(31, msg_text)
    leaves_qty = _optional_decimal(values, 151)
    if leaves_qty is None:
        if msg.begin_string not in ("FIX.4.0", "FIX.4.1") or order_qty is None:
            msg_text = "LeavesQty(151) missing"
            raise FieldError(151, msg_text)
        leaves_qty = order_qty - cum_qty
    price = _optional_decimal(values, 44)
    stop_px = _optional_decimal(values, 99)
    problem = execution_report_problem(
        exec_type,
        ord_status,
        order_qty,
        cum_qty,
        # FIX 4.0/4.1: 151 is derived above or, from QuickFIX/J's FIX.4.1 Executor, 0 on
        # acks and fills alike (sample session_log_quickfixj_banzai_executor_fix41): unchecked.
        None if msg.begin_string in ("FIX.4.0", "FIX.4.1") else leaves_qty,
        _ZERO if last_qty is None else last_qty,
        _ZERO if last_px is None else last_px,
        avg_px,
        price,
        stop_px,
    )
    if problem is not None:
        raise problem
    return ExecutionReport(
        exec_id=exec_id,
        order_id=order_id,
        cl_ord_id=_optional_text(values, 11),
        orig_cl_ord_id=_optional_text(values, 41),
        exec_type=exec_type,
        ord_status=ord_status,
        account=_optional_text(values, 1),
        symbol=symbol,
        side=side,
        order_qty=order_qty,
        ord_type=_optional_text(values, 40),
        price=price,
        stop_px=stop_px,
        last_qty=_ZERO if last_qty is None else last_qty,
        last_px=_ZERO if last_px is None else last_px,
        cum_qty=cum_qty,
        leaves_qty=leaves_qty,
        avg_px=avg_px,
        ts_event=_event_time(values),
        trd_match_id=_optional_text(values, 880),
        exec_ref_id=_optional_text(values, 19),
        text=_optional_text(values, 58),
        poss_dup=values.get(43) == b"Y",
        raw=raw,
        source=source,
    )


def parse_order_request(msg: FixMessage, source: str = "", raw: bytes = b"") -> OrderRequest:
    """Parse a NewOrderSingle (35=D), OrderCancelRequest (35=F) or cancel/replace (35=G).

    Required: ClOrdID (11), Symbol (55), Side (54), and OrigClOrdID (41) for F and G.
    OrderID (37), which an F or G may carry, is kept.
    In D and G, Side must be a FIX value and OrderQty (38), Price (44) and StopPx (99) above 0
    when present; a cancel (F) only names the order, so its values are not judged.

    Args:
        msg: a decoded 35=D, F or G.

    Returns:
        The order request.

    Raises:
        FieldError: a missing or malformed field.
    """
    return _order_request(msg.first_values(), msg.msg_type, source, raw)


def _order_request(
    values: dict[int, bytes],
    msg_type: str,
    source: str,
    raw: bytes,
    default_ts_event: int | None = None,
) -> OrderRequest:
    """Build the request of `parse_order_request` from {tag: first value}.

    `default_ts_event` is the event time when TransactTime (60) is absent (an order of a
    NewOrderList takes the list's); None takes SendingTime (52) from `values`.
    """
    cl_ord_id = _text(_required(values, 11))
    orig_cl_ord_id = _optional_text(values, 41)
    if orig_cl_ord_id is None and msg_type != "D":
        msg_text = "OrigClOrdID(41) missing"
        raise FieldError(41, msg_text)
    symbol = _text(_required(values, 55))
    side = _text(_required(values, 54))
    order_qty = _optional_decimal(values, 38)
    price = _optional_decimal(values, 44)
    stop_px = _optional_decimal(values, 99)
    if msg_type != "F":
        if side not in FIX_SIDES:
            msg_text = f"Side(54) was '{show(side.encode())}', not a FIX Side value"
            raise FieldError(54, msg_text)
        _check_positive(order_qty, 38)
        _check_positive(price, 44)
        _check_positive(stop_px, 99)
    if default_ts_event is None or 60 in values:
        ts_event = _event_time(values)
    else:
        ts_event = default_ts_event
    expire_raw = values.get(126)
    return OrderRequest(
        msg_type=msg_type,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig_cl_ord_id,
        account=_optional_text(values, 1),
        symbol=symbol,
        side=side,
        order_qty=order_qty,
        ord_type=_optional_text(values, 40),
        price=price,
        stop_px=stop_px,
        time_in_force=_optional_text(values, 59),
        ts_event=ts_event,
        expire_time=None if expire_raw is None else _timestamp(expire_raw, 126),
        exec_inst=_optional_text(values, 18),
        peg_offset_value=_optional_decimal(values, 211),
        peg_offset_type=_optional_text(values, 836),
        raw=raw,
        source=source,
        order_id=_optional_text(values, 37),
    )


# ContingencyType (1385) values of the lists we take: 1 OCO, 2 OTO. 3 (OUO, one updates the
# others: a fill reduces the siblings' quantities) is not supported.
_CONTINGENCY_TYPES = {b"1": "1", b"2": "2"}


# Fields of a NoOrders (73) entry that occur once in it and never at message level. Account (1)
# and TransactTime (60) may be at either level, so they do not count.
_LIST_ENTRY_TAGS = frozenset((18, 38, 40, 44, 54, 55, 59, 67, 99, 126, 211, 836))
# connectors/fix/tags.py does not name the NewOrderList tags yet.
_LIST_LABELS = {67: "ListSeqNo(67)"}


def _list_count(raw: bytes | None, tag: int, name: str, found: int, what: str) -> None:
    """Check that a count field (NoOrders (73), TotNoOrders (68)) reads `found`."""
    if raw is None:
        msg = f"{name}({tag}) missing"
        raise FieldError(tag, msg)
    if raw != b"%d" % found:
        if not raw.isdigit():
            msg = f"{name}({tag}) was '{show(raw)}', not a number"
            raise FieldError(tag, msg)
        if int(raw) != found:
            msg = f"{name}({tag}) was {int(raw)}, found {found} {what}"
            raise FieldError(tag, msg)


def parse_order_list(msg: FixMessage, source: str = "", raw: bytes = b"") -> OrderList:
    """Parse a NewOrderList (35=E) into an `OrderList` of new-order requests.

    The NoOrders (73) group: ClOrdID (11) opens each entry, as FIX requires it first; the
    fields before the first 11 are message level. An order field (Symbol (55), Side (54),
    OrderQty (38), ...) before the first 11, or twice in one entry, means an entry without its
    ClOrdID. The 73 count must match the entries, and there must be at least one. Each entry
    is judged as a 35=D (`parse_order_request`), with OrderQty (38) required too, and inherits
    Account (1) from the message level when it has none. ListSeqNo (67), when the entries
    carry it, must be a distinct integer on every entry and orders them; else they keep wire
    order. Errors in an entry name it by its position on the wire:
    "NoOrders(73) entry 2: OrderQty(38) was 'x', not a number".

    Required: ListID (66), NoOrders (73). ContingencyType (1385) must be 1 (OCO), 2 (OTO) or
    absent. TotNoOrders (68), when present, must equal the entries: a list split over several
    messages (LastFragment 893) is not supported. BidType (394, required by FIX 4.4 but
    meaningless for a contingent list) is not read. Orders on different symbols are kept
    (an OCO across symbols is rare but valid). ClOrdIDs repeated within the list and lists of
    fewer than two contingent orders are the stop book's to reject (`StopBook.submit_list`):
    they are requests a broker answers, not malformed messages.

    Args:
        msg: a decoded 35=E.
        source: where it came from, kept on the list and on each of its orders.
        raw: the message as received, kept on the list and on each of its orders.

    Returns:
        The order list.

    Raises:
        FieldError: a missing or malformed field, or a ContingencyType not supported.
    """
    head: dict[int, bytes] = {}
    entries: list[dict[int, bytes]] = []
    values = head
    entry_tags = _LIST_ENTRY_TAGS
    for tag, value in msg.fields[3:-1]:
        if tag == 11:
            values = {}
            entries.append(values)
        elif tag in entry_tags and (tag in values or values is head):
            # An order field before the first 11, or twice in one entry: an entry without
            # its ClOrdID began here (nested groups such as Parties (453) use other tags).
            msg_text = (
                f"NoOrders(73) entry {len(entries) + 1}: ClOrdID(11) missing, "
                f"{_LIST_LABELS.get(tag) or label(tag)} received before it"
            )
            raise FieldError(11, msg_text)
        values.setdefault(tag, value)

    list_id = head.get(66)
    if list_id is None:
        msg_text = "ListID(66) missing"
        raise FieldError(66, msg_text)
    contingency_raw = head.get(1385)
    contingency_type = None
    if contingency_raw is not None:
        contingency_type = _CONTINGENCY_TYPES.get(contingency_raw)
        if contingency_type is None:
            msg_text = f"ContingencyType(1385)={show(contingency_raw)} not supported"
            raise FieldError(1385, msg_text)
    _list_count(head.get(73), 73, "NoOrders", len(entries), "entries")
    if not entries:
        msg_text = "NoOrders(73) was 0, a list needs at least one order"
        raise FieldError(73, msg_text)
    total = head.get(68)
    if total is not None:
        _list_count(total, 68, "TotNoOrders", len(entries), "orders in the message")
    ts_event = _event_time(head)

    account = head.get(1)
    orders: list[tuple[int, OrderRequest]] = []
    seen: dict[int, int] = {}  # ListSeqNo (67) -> entry number
    for number, values in enumerate(entries, 1):
        try:
            if account is not None and 1 not in values:
                values[1] = account
            seq_raw = values.get(67)
            if seq_raw is None:
                seq = number
            elif not seq_raw.isdigit():
                msg_text = f"ListSeqNo(67) was '{show(seq_raw)}', not an integer"
                raise FieldError(67, msg_text)
            else:
                seq = int(seq_raw)
                other = seen.get(seq)
                if other is not None:
                    msg_text = f"ListSeqNo(67) was {seq}, as in entry {other}"
                    raise FieldError(67, msg_text)
                seen[seq] = number
            order = _order_request(values, "D", source, raw, ts_event)
            if order.order_qty is None:
                msg_text = "OrderQty(38) missing"
                raise FieldError(38, msg_text)
        except FieldError as error:
            msg_text = f"NoOrders(73) entry {number}: {error.reason}"
            raise FieldError(error.tag, msg_text) from None
        orders.append((seq, order))
    if seen:
        if len(seen) != len(orders):
            number = next(n for n, values in enumerate(entries, 1) if 67 not in values)
            msg_text = f"NoOrders(73) entry {number}: ListSeqNo(67) missing, other entries have one"
            raise FieldError(67, msg_text)
        orders.sort(key=_list_seq_no)
    return OrderList(
        list_id=_text(list_id),
        contingency_type=contingency_type,
        orders=tuple(order for _, order in orders),
        ts_event=ts_event,
        raw=raw,
        source=source,
    )


def _list_seq_no(numbered: tuple[int, OrderRequest]) -> int:
    return numbered[0]


def _parse_market_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return parse_market_data(msg)  # type: ignore[return-value]


def _parse_order_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return [parse_order_request(msg, source=source, raw=raw)]


def _parse_execution_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return [parse_execution_report(msg, source=source, raw=raw)]


def _parse_order_list_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return [parse_order_list(msg, source=source, raw=raw)]


# -- market status (issue 19): QuickFIX's FIX 4.4 dictionary; the states a broker acts on ----
# TradSesStatus (340): 1 HALTED, 2 OPEN, 3 CLOSED, 4 PRE_OPEN (no continuous trading yet: the
# stop engine waits, so CLOSED), 5 PRE_CLOSE (still trading: OPEN). 6 REQUEST_REJECTED answers a
# request of ours and changes no state (no event). 0 UNKNOWN and any other value: dead letter.
_TRAD_SES_STATES = {b"1": HALTED, b"2": OPEN, b"3": CLOSED, b"4": CLOSED, b"5": OPEN}
_TRAD_SES_NO_STATE = frozenset((b"6",))
# SecurityTradingStatus (326): halts, resumes and closures set a state; indications (5-16,
# 23) change none (the band they may carry still applies). 20 UNKNOWN_OR_INVALID and any other
# value: dead letter.
_SECURITY_STATES: dict[bytes, str | None] = {
    b"1": HALTED,  # OPENING_DELAY
    b"2": HALTED,  # TRADING_HALT
    b"3": OPEN,  # RESUME
    b"4": CLOSED,  # NO_OPEN
    b"14": CLOSED,  # ITS_PRE_OPENING
    b"17": OPEN,  # READY_TO_TRADE
    b"18": CLOSED,  # NOT_AVAILABLE_FOR_TRADING
    b"19": CLOSED,  # NOT_TRADED_ON_THIS_MARKET
    b"21": CLOSED,  # PRE_OPEN
    b"22": CLOSED,  # OPENING_ROTATION
    **{
        code: None
        for code in (b"5", b"6", b"7", b"8", b"9", b"10", b"12", b"13", b"15", b"16", b"23")
    },  # fmt: skip
}
# HaltReasonChar (327)
_HALT_REASONS = {
    "D": "news dissemination",
    "E": "order influx",
    "I": "order imbalance",
    "M": "additional information",
    "P": "news pending",
    "X": "equipment changeover",
}


def _status_reason(values: dict[int, bytes], halt_reason: str | None = None) -> str | None:
    text = _optional_text(values, 58)
    parts = [part for part in (halt_reason, text) if part]
    return "; ".join(parts) if parts else None


def _band_px(values: dict[int, bytes], tag: int) -> float | None:
    raw = values.get(tag)
    if raw is None:
        return None
    price = _md_number(raw, tag)
    if price <= 0:
        msg = f"{label(tag)} was '{show(raw)}', not a positive price"
        raise FieldError(tag, msg)
    return price


def parse_security_status(msg: FixMessage, source: str = "", raw: bytes = b"") -> SecurityStatus:
    """Parse a SecurityStatus (35=f): Symbol (55) required; SecurityTradingStatus (326) mapped
    by `_SECURITY_STATES`; the band LowLimitPrice (1148) / HighLimitPrice (1149) (FIX 5.0
    fields, accepted in 4.4 messages); HaltReasonChar (327) and Text (58) as the reason.

    Raises:
        FieldError: Symbol missing, a 326 the table does not know, neither 326 nor a band,
            a band price not a positive number or low above high, no event time.
    """
    values = msg.first_values()
    symbol = _text(_required(values, 55))
    code = values.get(326)
    state = None
    if code is not None:
        if code not in _SECURITY_STATES:
            reason = f"SecurityTradingStatus(326) was '{show(code)}', not a status we map"
            raise FieldError(326, reason)
        state = _SECURITY_STATES[code]
    low, high = _band_px(values, 1148), _band_px(values, 1149)
    if code is None and low is None and high is None:
        reason = "SecurityStatus without SecurityTradingStatus(326) or a price band (1148/1149)"
        raise FieldError(326, reason)
    if low is not None and high is not None and low > high:
        reason = f"LowLimitPrice(1148) {low} above HighLimitPrice(1149) {high}"
        raise FieldError(1148, reason)
    halt_char = _optional_text(values, 327)
    halt_reason = _HALT_REASONS.get(halt_char, halt_char) if halt_char else None
    return SecurityStatus(
        symbol=symbol,
        state=state,
        trading_status=None if code is None else _text(code),
        reason=_status_reason(values, halt_reason),
        low_limit_px=low,
        high_limit_px=high,
        ts_event=_event_time(values),
        raw=raw,
        source=source,
    )


def parse_trading_session_status(
    msg: FixMessage, source: str = "", raw: bytes = b""
) -> list[TradingSessionStatus]:
    """Parse a TradingSessionStatus (35=h): TradSesStatus (340) mapped by `_TRAD_SES_STATES`
    (`[]` for 6, request rejected); TradingSessionID (336) kept ("" when absent).

    Raises:
        FieldError: 340 missing or a value the table does not know, no event time.
    """
    values = msg.first_values()
    code = _required(values, 340)
    if code in _TRAD_SES_NO_STATE:
        return []
    state = _TRAD_SES_STATES.get(code)
    if state is None:
        reason = f"TradSesStatus(340) was '{show(code)}', not a status we map"
        raise FieldError(340, reason)
    return [
        TradingSessionStatus(
            trading_session_id=_optional_text(values, 336) or "",
            state=state,
            trad_ses_status=_text(code),
            reason=_status_reason(values),
            ts_event=_event_time(values),
            raw=raw,
            source=source,
        )
    ]


def _parse_security_status_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return [parse_security_status(msg, source=source, raw=raw)]


def _parse_trading_session_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return parse_trading_session_status(msg, source=source, raw=raw)  # type: ignore[return-value]


def _parse_account_changed_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return [parse_account_changed(msg, source=source, raw=raw)]


def _parse_cash_moved_events(msg: FixMessage, source: str, raw: bytes) -> list[Event]:
    return [parse_cash_moved(msg, source=source, raw=raw)]


_PARSERS: dict[str, Callable[[FixMessage, str, bytes], list[Event]]] = {
    "W": _parse_market_events,
    "X": _parse_market_events,
    "8": _parse_execution_events,
    "D": _parse_order_events,
    "F": _parse_order_events,
    "G": _parse_order_events,
    "E": _parse_order_list_events,
    "f": _parse_security_status_events,  # rare: the careful path only (not _TOKEN_PARSED_TYPES)
    "h": _parse_trading_session_events,
    # reference data (issue 20): user-defined, rare, the careful path only
    ACCOUNT_CHANGED: _parse_account_changed_events,
    CASH_MOVED: _parse_cash_moved_events,
}


def parse_message(msg: FixMessage, source: str = "", raw: bytes = b"") -> list[Event]:
    """Turn a decoded message into domain events.

    Args:
        msg: a message returned by `decode`.
        source: where it came from ("file:day.fix:812"), kept on order events.
        raw: the message as received, kept on order events (`decode_lines` passes the same
            bytes a dead letter would carry).

    Returns:
        The events (see the module docstring); `[]` for session-level messages.

    Raises:
        FieldError: a missing or malformed field, or a MsgType (35) not supported.
    """
    parser = _PARSERS.get(msg.msg_type)
    if parser is not None:
        return parser(msg, source, raw)
    if msg.msg_type in ADMIN_MSG_TYPES:
        return []
    reason = f"MsgType(35)={msg.msg_type} not supported"
    raise FieldError(35, reason)
