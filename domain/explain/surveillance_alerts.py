"""Domain layer: an alert's evidence in words, for the analysts (`brokerflow alerts show`, the
workbench's HTTP API). Pure and stdlib only.

The models write their evidence for machines: ns epochs, thresholds in ns, fractions, ExecIDs
(`domain.surveillance`, `flows.stops`, `flows.margin`). `explain` turns an alert's `details`
into what an analyst reads: a headline (what happened), the findings (each threshold against
its measured value) and the rest of the evidence, humanised. It reads the details as stored:
JSON, so Decimals are strings, counts are ints and instants are int epoch ns.

Details come from a database and may be from an older release, partial or damaged: nothing
here raises on them. A kind this module does not know, or a key an explainer does not use, gets
the generic humanisation (by the key's name); a finding whose figures are missing is left out.

Numbers: quantities and amounts with thousands separators and every digit they were given
("61,900", "42,000.00"); prices as given; measured shares with one decimal ("5.5 %"),
thresholds as configured ("5 %"); instants in ISO 8601 UTC ("2026-11-25T14:30:41.170Z"),
durations in words ("15 s", "3 h 12 min").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Explanation:
    """An alert in words.

    Attributes:
        headline: one sentence: what happened.
        findings: each threshold against its measured value, in words.
        fields: the rest of the evidence, humanised, as (label, text); the model's key last,
            as "reference".
        exec_ids: every ExecID (17) the evidence names, occurrences included (chart markers,
            audit links).
        cl_ord_ids: every ClOrdID (11) the evidence names, occurrences included.
    """

    headline: str
    findings: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    exec_ids: tuple[str, ...]
    cl_ord_ids: tuple[str, ...]


def explain(
    kind: str,
    details: Mapping[str, Any],
    *,
    account: str | None = None,
    symbol: str | None = None,
    owner: str | None = None,
) -> Explanation:
    """Explain an alert of `kind` from its `details` (the `alerts.details` JSON).

    `account`, `symbol` and `owner` are the alert's columns: the subject of the headline (an
    owner-level wash trade has no account). Never raises on odd details (see the module).

    >>> e = explain("CONCENTRATION", {"share": "0.4", "threshold": "0.25", "rearm_below": "0.20",
    ...     "value": "40000.00", "gross_value": "100000.00", "mark": "101.25"},
    ...     account="ACC1", symbol="AVGO")
    >>> e.headline
    "ACC1's AVGO position is 40.0 % of its gross value (over 25 %)"
    >>> e.findings[0]
    'AVGO position 40,000.00 (at 101.25) of gross value 100,000.00 (40.0 % > 25 %)'
    """
    if not isinstance(details, Mapping):
        details = {}
    ev = _Evidence(details)
    who = account or owner or ev.text("account") or ev.text("owner") or "the account"
    context = _Context(str(kind), who, symbol, _finding_ts(details))
    explainer = _EXPLAINERS.get(context.kind)
    headline, findings = explainer(ev, context) if explainer else (_generic_headline(context), [])
    episode = _episode(details)
    if episode:
        headline = f"{headline} ({episode})"
    exec_ids: dict[str, None] = {}
    cl_ord_ids: dict[str, None] = {}
    # The alert's own evidence first (the order's or the buys' ids before the child's or the
    # sale's: JSONB keeps no order), then its episode's other occurrences.
    for key in sorted(details, key=lambda k: (k not in _ID_KEYS, str(k))):
        if key != "occurrences":
            _collect_ids(details[key], str(key), exec_ids, cl_ord_ids)
    _collect_ids(details.get("occurrences"), "", exec_ids, cl_ord_ids)
    return Explanation(headline, tuple(findings), _fields(ev), tuple(exec_ids), tuple(cl_ord_ids))


# -- reading the evidence ---------------------------------------------------------------------


class _Evidence:
    """The details, read leniently: a getter returns None for a missing or malformed value.
    `use` marks what the headline and findings said, so that `fields` shows only the rest.
    Paths may name a key of a nested mapping: "thresholds.rise"."""

    __slots__ = ("details", "used")

    def __init__(self, details: Mapping[str, Any]) -> None:
        self.details = details
        self.used: set[str] = set()

    def raw(self, path: str) -> Any:
        value: Any = self.details
        for part in path.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def num(self, path: str) -> Decimal | None:
        return _decimal(self.raw(path))

    def integer(self, path: str) -> int | None:
        value = self.raw(path)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def price(self, path: str) -> str | None:
        """A price as given (JSON keeps a Decimal's digits in a string)."""
        value = self.raw(path)
        if isinstance(value, str):
            return value or None
        return str(value) if _decimal(value) is not None else None

    def text(self, path: str) -> str | None:
        value = self.raw(path)
        return value if isinstance(value, str) and value else None

    def texts(self, path: str) -> list[str]:
        value = self.raw(path)
        if not isinstance(value, list | tuple):
            return []
        return [str(v) for v in value if isinstance(v, str | int | Decimal) and v != ""]

    def use(self, *paths: str) -> None:
        self.used.update(paths)


@dataclass(frozen=True, slots=True)
class _Context:
    kind: str
    who: str
    symbol: str | None
    ts_ns: int | None  # when the finding was made, if the details say (its occurrence)

    @property
    def shares(self) -> str:
        """What was traded: the symbol, or "shares" when the alert names none."""
        return self.symbol or "shares"


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal from JSON (str, int, float) or a Decimal; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float | str):
        try:
            number = Decimal(repr(value) if isinstance(value, float) else value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _finding_ts(details: Mapping[str, Any]) -> int | None:
    """The event time of the finding the top-level evidence is about: its occurrence's
    `ts_ns` (the alert's details name the finding's key in `model_key`)."""
    occurrences = details.get("occurrences")
    key = details.get("model_key")
    if not isinstance(occurrences, Mapping) or not isinstance(key, str):
        return None
    entry = occurrences.get(key)
    ts = entry.get("ts_ns") if isinstance(entry, Mapping) else None
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


# -- words for numbers, times and codes -------------------------------------------------------


def quantity(value: Decimal | None) -> str:
    """A quantity or an amount with thousands separators and every digit it was given.

    >>> quantity(Decimal("61900.0")), quantity(Decimal("42000.00")), quantity(Decimal("-3.5"))
    ('61,900', '42,000.00', '-3.5')
    """
    if value is None:
        return "?"
    if value == value.to_integral_value() and value.as_tuple().exponent in (-1, 0):
        value = value.to_integral_value()  # a whole volume that came as a float: "61900.0"
    return f"{value:,f}"


def percent(fraction: Decimal | None) -> str:
    """A measured fraction as a percentage with one decimal: `percent(Decimal("0.0549"))` is
    "5.5 %"."""
    return "?" if fraction is None else f"{fraction * 100:.1f} %"


def limit(fraction: Decimal | None) -> str:
    """A configured fraction as a percentage, as exact as it was set: 0.05 is "5 %", 0.025
    is "2.5 %"."""
    if fraction is None:
        return "?"
    return f"{_trim(fraction * 100)} %"


def _trim(number: Decimal) -> str:
    return f"{number.normalize():f}"


def duration(ns: int | None) -> str:
    """A duration in words, to its two largest units (truncated).

    >>> duration(15 * NS_PER_S), duration(1800 * NS_PER_S), duration(48 * 3600 * NS_PER_S)
    ('15 s', '30 min', '48 h')
    >>> duration(11_561 * NS_PER_S), duration(1_500_000_000), duration(250)
    ('3 h 12 min', '1 s 500 ms', '250 ns')
    """
    if ns is None:
        return "?"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    units = ((3600 * NS_PER_S, "h"), (60 * NS_PER_S, "min"), (NS_PER_S, "s"), (NS_PER_MS, "ms"))
    for i, (size, name) in enumerate(units):
        if ns >= size:
            whole, rest = divmod(ns, size)
            text = f"{whole} {name}"
            if i + 1 < len(units) and rest >= units[i + 1][0]:
                text += f" {rest // units[i + 1][0]} {units[i + 1][1]}"
            return sign + text
    return f"{sign}{ns} ns"


def instant(ns: int | None) -> str:
    """An epoch-ns instant in ISO 8601 UTC, to the millisecond.

    >>> instant(1_795_617_041_170_000_000)
    '2026-11-25T14:30:41.170Z'
    """
    if ns is None:
        return "?"
    moment = _moment(ns)
    if moment is None:
        return str(ns)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns % NS_PER_S // NS_PER_MS:03d}Z"


def _moment(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    try:
        return _EPOCH + timedelta(seconds=ns // NS_PER_S)
    except OverflowError:  # not an instant a venue could send: shown as the number it is
        return None


def day_text(day: int | None) -> str:
    """A UTC day number (days since 1970-01-01, the models' `day`) as an ISO date."""
    if day is None:
        return "?"
    try:
        return (_EPOCH_DAY + timedelta(days=day)).isoformat()
    except OverflowError:
        return str(day)


def _count(n: int | None, one: str, many: str) -> str:
    return f"{'?' if n is None else f'{n:,}'} {one if n == 1 else many}"


SIDES = {"1": "buy", "2": "sell", "5": "sell short", "6": "sell short exempt"}
"""Side (54), in words."""
ORD_TYPES = {"1": "market", "2": "limit", "3": "stop", "4": "stop-limit", "P": "trailing stop"}
"""OrdType (40), in words (P, pegged, is how a trailing stop is sent)."""


_RULES: dict[str, tuple[Callable[[Decimal, Decimal], bool], str]] = {
    ">": (lambda a, b: a > b, "≤"),
    "≥": (lambda a, b: a >= b, "<"),
    "≤": (lambda a, b: a <= b, ">"),
}


def _compare(measured: Decimal | None, rule: str, threshold: Decimal | None) -> str:
    """The rule's operator (">", "≥", "≤") when `measured` meets it, else its negation: the
    finding reads as the rule checked ("5.5 % > 5 %", "0.4 % < 1 %")."""
    if measured is None or threshold is None:
        return "vs"
    holds, negation = _RULES[rule]
    return rule if holds(measured, threshold) else negation


def _share(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    return part / whole if part is not None and whole else None


# -- explainers, one per kind -----------------------------------------------------------------

Explainer = Callable[[_Evidence, _Context], tuple[str, list[str]]]


def _wash_trade(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """WASH_TRADE: `SelfMatchModel` ("self-match") or `RoundTripModel` ("round trips")."""
    pattern = ev.text("pattern")
    if pattern == "round trips" or (pattern is None and ev.raw("round_trips") is not None):
        return _round_trips(ev, c)
    if pattern == "self-match" or (pattern is None and ev.raw("matched_by") is not None):
        return _self_match(ev, c)
    return _generic_headline(c), []


def _self_match(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    ev.use("pattern")
    accounts = ev.texts("accounts")
    owner = ev.text("owner")
    qty, px, window = ev.num("qty"), ev.price("px") or "?", ev.integer("window_ns")
    trade = f"{quantity(qty)} {c.shares} at {px}"
    ev.use("qty", "px")
    if len(accounts) == 2 and accounts[0] == accounts[1]:
        headline = f"{accounts[0]} traded {trade} with itself (self-match)"
        side = f"both sides of the trade are account {accounts[0]}"
        ev.use("accounts", "owner")
    elif len(accounts) == 2:
        owned = f", both owned by {owner}," if owner else ""
        headline = f"{accounts[0]} and {accounts[1]}{owned} traded {trade} with each other"
        side = f"accounts {accounts[0]} and {accounts[1]} have the same owner, {owner or '?'}"
        ev.use("accounts", "owner")
    else:
        headline = f"{c.who} was on both sides of a trade of {trade} (self-match)"
        side = None
    findings = []
    how = ev.text("matched_by")
    if how is not None and how.startswith("TrdMatchID"):
        findings.append("the buy and the sell carry the same TrdMatchID (880): one trade")
        ev.use("matched_by")
    elif how is not None:
        within = f"within the {duration(window)} window" if window is not None else "together"
        findings.append(
            f"a buy and a sell of {c.shares}, {quantity(qty)} at {px} each, {within} "
            f"(matched by {how})"
        )
        ev.use("matched_by", "window_ns")
    if side:
        findings.append(side)
    return headline, findings


def _round_trips(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    ev.use("pattern")
    trips, least = ev.integer("round_trips"), ev.integer("min_round_trips")
    net, bought, sold = ev.num("net_position"), ev.num("bought"), ev.num("sold")
    max_net, day = ev.num("max_net_fraction"), ev.integer("day")
    on_day = f" on {day_text(day)}" if day is not None else ""
    headline = (
        f"{c.who} went out and back to flat in {c.shares} {_count(trips, 'time', 'times')}"
        f"{on_day} (bought {quantity(bought)}, sold {quantity(sold)})"
    )
    ev.use("round_trips", "bought", "sold", "day")
    findings = []
    if trips is not None:
        op = _compare(Decimal(trips), "≥", None if least is None else Decimal(least))
        findings.append(f"{trips} round trips in one UTC day ({trips} {op} {least or '?'})")
        ev.use("min_round_trips")
    if net is not None and bought is not None and sold is not None:
        each_way = min(bought, sold)
        fraction = _share(abs(net), each_way)
        findings.append(
            f"net position {quantity(net)} against {quantity(each_way)} traded each way "
            f"({percent(fraction)} {_compare(fraction, '≤', max_net)} {limit(max_net)})"
        )
        ev.use("net_position", "max_net_fraction")
    return headline, findings


def _spoofing(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """SPOOFING (`SpoofingModel`): pattern "spoofing", or "layering" at two or more prices."""
    pattern = ev.text("pattern") or "spoofing"
    fill_qty, side = ev.num("fill_qty"), ev.text("fill_side")
    resting_volume, multiple = ev.num("opposite_volume"), ev.num("size_multiple")
    cancelled, fraction = ev.num("cancelled_volume"), ev.num("cancelled_fraction")
    least_multiple = ev.num("thresholds.size_multiple")
    least_fraction = ev.num("thresholds.cancel_fraction")
    window = ev.integer("window_ns")
    levels = ev.texts("price_levels")
    if side is None:
        traded, resting_side = "traded", "trade"
    else:
        traded, resting_side = ("bought", "sell") if side == "1" else ("sold", "buy")
    at = f" at {_count(len(levels), 'price', 'prices')}" if levels else ""
    headline = (
        f"{c.who} {traded} {quantity(fill_qty)} {c.shares} against {quantity(resting_volume)} "
        f"resting to {resting_side}{at}, then cancelled {percent(fraction)} of it within "
        f"{duration(window)} ({pattern})"
    )
    ev.use("pattern", "fill_qty", "fill_side", "window_ns")
    findings = []
    if resting_volume is not None and fill_qty is not None:
        shown = f"{_trim(multiple)} ×" if multiple is not None else "?"
        findings.append(
            f"resting to {resting_side}: {quantity(resting_volume)}, {shown} the fill of "
            f"{quantity(fill_qty)} ({_trim(multiple) if multiple is not None else '?'} "
            f"{_compare(multiple, '≥', least_multiple)} "
            f"{'?' if least_multiple is None else _trim(least_multiple)})"
        )
        ev.use("opposite_volume", "size_multiple", "thresholds.size_multiple")
    if cancelled is not None and resting_volume is not None:
        findings.append(
            f"cancelled {quantity(cancelled)} of {quantity(resting_volume)} (cancels, and replaces "
            f"that cut an order) within {duration(window)} of the fill ({percent(fraction)} "
            f"{_compare(fraction, '≥', least_fraction)} {limit(least_fraction)})"
        )
        ev.use("cancelled_volume", "cancelled_fraction", "thresholds.cancel_fraction")
    if len(levels) >= 2:
        findings.append(f"resting orders at {len(levels)} prices ({', '.join(levels)}): layering")
        ev.use("price_levels")
    elif levels:
        findings.append(f"resting orders at one price ({levels[0]})")
        ev.use("price_levels")
    return headline, findings


def _marking_the_close(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """MARKING_THE_CLOSE (`MarkingTheCloseModel`): either share at or above its threshold."""
    volume, window_volume = ev.num("account_volume"), ev.num("window_volume")
    day_volume = ev.num("day_volume")
    window_share, day_share = ev.num("window_share"), ev.num("day_share")
    least_window, least_day = ev.num("thresholds.window_share"), ev.num("thresholds.day_share")
    window = ev.integer("window_ns")
    last = f"the last {duration(window)}" if window is not None else "the window"
    headline = (
        f"{c.who} traded {quantity(volume)} {c.shares} in {last} before the close: "
        f"{percent(window_share)} of the volume then, {percent(day_share)} of the day's"
    )
    ev.use("account_volume", "window_ns")
    findings = []
    if window_share is not None:
        if window_volume:
            seen = f"of the {quantity(window_volume)} shares traded in {last} before the close"
        else:
            seen = f"in {last} before the close, when no market trade was seen (counted as all)"
        findings.append(
            f"traded {quantity(volume)} {seen} ({percent(window_share)} "
            f"{_compare(window_share, '≥', least_window)} {limit(least_window)})"
        )
        ev.use("window_volume", "window_share", "thresholds.window_share")
    if day_share is not None:
        findings.append(
            f"traded {quantity(volume)} of the day's {quantity(day_volume)} shares "
            f"({percent(day_share)} {_compare(day_share, '≥', least_day)} {limit(least_day)})"
        )
        ev.use("day_volume", "day_share", "thresholds.day_share")
    return headline, findings


def _pump_and_dump(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """PUMP_AND_DUMP (`PumpAndDumpModel`): stage "accumulation" (a watch) or "dump"."""
    stage = ev.text("stage")
    bought, volume = ev.num("bought"), ev.num("symbol_day_volume")
    average = ev.price("average_buy_px")
    least_share, least_rise = ev.num("thresholds.volume_share"), ev.num("thresholds.rise")
    within, first = ev.integer("thresholds.within_ns"), ev.integer("first_buy_ns")
    share = _share(bought, volume)
    ev.use("stage", "bought", "symbol_day_volume", "thresholds.volume_share")
    findings = []
    if stage != "dump":
        headline = (
            f"{c.who} bought {quantity(bought)} {c.shares}, {percent(share)} of the day's volume "
            f"so far (accumulation: a watch, not yet a dump)"
        )
        findings.append(
            f"bought {quantity(bought)} of the {quantity(volume)} shares traded so far today "
            f"({percent(share)} {_compare(share, '>', least_share)} {limit(least_share)})"
        )
        if least_rise is not None and within is not None:
            findings.append(
                f"a sale at {limit(least_rise)} or more above the average buy of "
                f"{average or '?'} within {duration(within)} of the first buy "
                f"({instant(first)}) would make it a dump"
            )
            ev.use("thresholds.rise", "thresholds.within_ns", "average_buy_px", "first_buy_ns")
        return headline, findings
    rise, sell_px = ev.num("rise"), ev.price("sell_px")
    elapsed = c.ts_ns - first if c.ts_ns is not None and first is not None else None
    after = f" within {duration(elapsed)}" if elapsed is not None else ""
    headline = (
        f"{c.who} bought {quantity(bought)} {c.shares} ({percent(share)} of the day's volume) "
        f"and sold {percent(rise)} above its average buy{after}"
    )
    findings.append(
        f"bought {quantity(bought)} in all, {percent(share)} of the {quantity(volume)} shares "
        f"traded on the day of the sale (flagged above {limit(least_share)})"
    )
    if rise is not None:
        findings.append(
            f"sold at {sell_px or '?'}, {percent(rise)} above the average buy of {average or '?'} "
            f"({percent(rise)} {_compare(rise, '≥', least_rise)} {limit(least_rise)})"
        )
        ev.use("rise", "sell_px", "average_buy_px", "thresholds.rise")
    if elapsed is not None and first is not None:
        inside = "within" if within is None or elapsed <= within else "not within"
        findings.append(
            f"sold {duration(elapsed)} after the first buy at {instant(first)} "
            f"({inside} {duration(within)})"
        )
        ev.use("first_buy_ns", "thresholds.within_ns")
    elif first is not None and within is not None:
        findings.append(
            f"first buy at {instant(first)}; a sale counts within {duration(within)} of it"
        )
        ev.use("first_buy_ns", "thresholds.within_ns")
    return headline, findings


def _excessive_otr(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """EXCESSIVE_OTR (`OrderToTradeModel`): orders per trade in one UTC day."""
    orders, trades, ratio = ev.integer("orders"), ev.integer("trades"), ev.num("ratio")
    most, least, day = ev.integer("max_ratio"), ev.integer("min_orders"), ev.integer("day")
    on_day = f" on {day_text(day)}" if day is not None else ""
    per_trade = f" ({_trim(ratio)} orders per trade)" if ratio is not None else ""
    headline = (
        f"{c.who} sent {_count(orders, 'order', 'orders')} for "
        f"{_count(trades, 'trade', 'trades')}{on_day}{per_trade}"
    )
    ev.use("orders", "trades", "day")
    findings = []
    if ratio is not None:
        counted = "; no trade, counted as one" if trades == 0 else ""
        op = _compare(ratio, ">", None if most is None else Decimal(most))
        findings.append(
            f"{_trim(ratio)} orders per trade ({_trim(ratio)} {op} {most or '?'}{counted})"
        )
        ev.use("ratio", "max_ratio")
    if orders is not None and least is not None:
        op = _compare(Decimal(orders), "≥", Decimal(least))
        findings.append(
            f"{orders:,} orders in the day ({orders:,} {op} {least:,}, the least judged)"
        )
        ev.use("min_orders")
    return headline, findings


def _ownership_missing(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """OWNERSHIP_MISSING (`OwnershipMissingModel`): a fill of an account with no owner."""
    day = ev.integer("day")
    on_day = f" on {day_text(day)}" if day is not None else ""
    ev.use("account", "day")
    findings = []
    why = ev.text("why")
    if why:
        findings.append(why)
        ev.use("why")
    return f"{c.who} traded {c.shares}{on_day} with no owner on record", findings


def _stop_triggered(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """STOP_TRIGGERED (`flows.stops`, `_triggered`): the stop fired; its child order was sent."""
    order, side = ev.text("cl_ord_id") or "?", ev.text("side")
    ord_type = ORD_TYPES.get(ev.text("ord_type") or "", "stop")
    qty, stop, trigger = ev.num("quantity"), ev.num("stop_px"), ev.num("trigger_px")
    reference = ev.text("reference") or "reference"
    sell = side != "1"
    side_word = SIDES.get(side or "", "sell" if sell else "buy").capitalize() if side else "The"
    child, child_type = ev.text("child_cl_ord_id"), ORD_TYPES.get(ev.text("child_ord_type") or "")
    child_price = ev.price("child_price")
    sent = f"{child_type or 'child'} order {child or '?'}"
    if child_type == "limit" and child_price:
        sent = f"limit order {child or '?'} at {child_price}"
    size = f" for {quantity(qty)} {c.shares}" if qty is not None else f" on {c.shares}"
    at = ev.price("trigger_px") or "?"
    headline = (
        f"{side_word} {ord_type} {order} of {c.who}{size} triggered at {at} ({reference} price); "
        f"sent {sent}"
    )
    ev.use("cl_ord_id", "side", "ord_type", "quantity", "reference", "child_cl_ord_id",
           "child_ord_type", "child_price")  # fmt: skip
    findings = []
    if stop is not None and trigger is not None:
        op = ("≤" if trigger <= stop else ">") if sell else ("≥" if trigger >= stop else "<")
        where = "at or below" if sell else "at or above"
        findings.append(
            f"{reference} price {ev.price('trigger_px')} {op} stop {ev.price('stop_px')} "
            f"(a {'sell' if sell else 'buy'} stop triggers {where} its stop)"
        )
        if trigger != stop:
            findings.append(f"the price gapped {quantity(abs(trigger - stop))} through the stop")
        ev.use("stop_px", "trigger_px")
    return headline, findings


def _margin(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """MARGIN_CALL, MARGIN_CALL_CURED, LIQUIDATION (`flows.margin._alert`)."""
    equity, need, excess = ev.num("equity"), ev.num("maintenance_requirement"), ev.num("excess")
    since = ev.integer("episode_start_ns")
    called = f"margin call of {instant(since)}" if since is not None else "margin call"
    against = f"equity {quantity(equity)} against a requirement of {quantity(need)}"
    lines = _liquidation_lines(ev.raw("liquidation"))
    if c.kind == "MARGIN_CALL_CURED":
        headline = f"{c.who}'s {called} is cured: {against}"
    elif c.kind == "LIQUIDATION":
        plan = f": {', '.join(lines)}" if lines else ""
        headline = (
            f"{c.who}'s {called} was not met in its grace period: liquidate "
            f"{_count(len(lines), 'position', 'positions')}{plan}"
        )
        ev.use("liquidation")
    else:
        headline = f"{c.who} is below its maintenance margin: {against}"
    if c.kind in ("MARGIN_CALL_CURED", "LIQUIDATION"):
        ev.use("episode_start_ns")
    findings = []
    if equity is not None and need is not None:
        op = "≥" if equity >= need else "<"
        findings.append(
            f"equity {quantity(equity)} {op} maintenance requirement {quantity(need)} "
            f"(excess {quantity(excess)})"
        )
        ev.use("equity", "maintenance_requirement", "excess")
    ratio, gross = ev.num("ratio"), ev.num("gross_value")
    if ratio is not None:
        findings.append(f"equity is {percent(ratio)} of the gross value {quantity(gross)}")
        ev.use("ratio", "gross_value")
    cure, to_maintenance = ev.num("cash_to_cure"), ev.num("cash_to_maintenance")
    to_initial = ev.num("cash_to_initial")
    if cure is not None or to_maintenance is not None:
        findings.append(
            f"a deposit of {quantity(cure)} cures the call; {quantity(to_maintenance)} restores "
            f"maintenance, {quantity(to_initial)} initial margin"
        )
        ev.use("cash_to_cure", "cash_to_maintenance", "cash_to_initial")
    cut, cut_initial = ev.num("reduction_to_maintenance"), ev.num("reduction_to_initial")
    if cut is not None:
        findings.append(
            f"or selling {quantity(cut)} of positions restores maintenance, "
            f"{quantity(cut_initial)} initial margin"
        )
        ev.use("reduction_to_maintenance", "reduction_to_initial")
    return headline, findings


def _liquidation_lines(value: Any) -> list[str]:
    """`details["liquidation"]` (`LiquidationLine`s) in words: "sell 300 AVGO at about 101.25"."""
    if not isinstance(value, list):
        return []
    out = []
    for line in value:
        if not isinstance(line, Mapping):
            continue
        action = "buy to cover" if line.get("side") == "1" else "sell"
        mark = line.get("mark")
        at = f" at about {mark}" if isinstance(mark, str | int | Decimal) else ""
        out.append(
            f"{action} {quantity(_decimal(line.get('quantity')))} {line.get('symbol') or '?'}{at}"
        )
    return out


def _concentration(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """CONCENTRATION (`flows.margin`, `_concentration_alert`): one position too large a part."""
    share, threshold, rearm = ev.num("share"), ev.num("threshold"), ev.num("rearm_below")
    value, gross, mark = ev.num("value"), ev.num("gross_value"), ev.price("mark")
    headline = (
        f"{c.who}'s {c.symbol or '?'} position is {percent(share)} of its gross value "
        f"(over {limit(threshold)})"
    )
    ev.use("share", "threshold")
    findings = []
    if value is not None and gross is not None:
        at = f" (at {mark})" if mark else ""
        findings.append(
            f"{c.symbol or '?'} position {quantity(value)}{at} of gross value {quantity(gross)} "
            f"({percent(share)} {_compare(share, '>', threshold)} {limit(threshold)})"
        )
        ev.use("value", "gross_value", "mark")
    if rearm is not None:
        findings.append(f"not reported again until its share falls below {limit(rearm)}")
        ev.use("rearm_below")
    return headline, findings


def _generic_headline(c: _Context) -> str:
    on = f" in {c.symbol}" if c.symbol else ""
    return f"{c.kind or 'Alert'} for {c.who}{on}"


_EXPLAINERS: dict[str, Explainer] = {
    "WASH_TRADE": _wash_trade,
    "SPOOFING": _spoofing,
    "PUMP_AND_DUMP": _pump_and_dump,
    "MARKING_THE_CLOSE": _marking_the_close,
    "EXCESSIVE_OTR": _excessive_otr,
    "OWNERSHIP_MISSING": _ownership_missing,
    "STOP_TRIGGERED": _stop_triggered,
    "MARGIN_CALL": _margin,
    "MARGIN_CALL_CURED": _margin,
    "LIQUIDATION": _margin,
    "CONCENTRATION": _concentration,
}


# -- episodes ---------------------------------------------------------------------------------


def _episode(details: Mapping[str, Any]) -> str | None:
    """The episode in words ("3 occurrences, 14:02:11–14:41:05 UTC"), or None for a single
    finding. From `episode` when the store wrote it, else from `occurrences`."""
    episode = details.get("episode")
    count = first = last = None
    if isinstance(episode, Mapping):
        count, first, last = (episode.get(k) for k in ("occurrences", "first_ns", "last_ns"))
    stamps = _occurrence_times(details)
    if not isinstance(count, int) or isinstance(count, bool):
        count = len(stamps)
    if not isinstance(first, int) or not isinstance(last, int):
        first, last = (stamps[0], stamps[-1]) if stamps else (None, None)
    if count < 2:
        return None
    start, end = _moment(first), _moment(last)
    if start is None or end is None:
        return f"{count} occurrences"
    if start.date() == end.date():
        return f"{count} occurrences, {start:%H:%M:%S}–{end:%H:%M:%S} UTC"
    return f"{count} occurrences, {start:%Y-%m-%d %H:%M:%S} – {end:%Y-%m-%d %H:%M:%S} UTC"


def _occurrence_times(details: Mapping[str, Any]) -> list[int]:
    occurrences = details.get("occurrences")
    if not isinstance(occurrences, Mapping):
        return []
    stamps = (o.get("ts_ns") for o in occurrences.values() if isinstance(o, Mapping))
    return sorted(t for t in stamps if isinstance(t, int) and not isinstance(t, bool))


# -- the rest of the evidence ------------------------------------------------------------------

_LABELS = {
    "exec_id": "ExecID", "exec_ids": "ExecIDs", "cl_ord_id": "ClOrdID", "cl_ord_ids": "ClOrdIDs",
    "fill_exec_id": "fill ExecID", "sell_exec_id": "sale ExecID",
    "cancelled_cl_ord_ids": "cancelled ClOrdIDs", "child_cl_ord_id": "child ClOrdID",
    "px": "price", "qty": "quantity", "average_buy_px": "average buy price",
    "symbol_day_volume": "day volume", "day_volume_source": "day volume from",
    "first_buy_ns": "first buy", "episode_start_ns": "call since", "ord_type": "order type",
    "child_ord_type": "child order type", "trd_match_id": "TrdMatchID",
}  # fmt: skip
# Keys whose value is a fraction of one (shown as a percentage) or an amount or a quantity
# (shown with thousands separators). Other strings are shown as given: an id that looks like a
# number ("12345") must not become "12,345".
_FRACTIONS = ("_share", "_fraction", "rise", "threshold", "rearm_below", "cure_band")
_AMOUNTS = frozenset((
    "qty", "quantity", "bought", "sold", "net_position", "account_volume", "window_volume",
    "day_volume", "symbol_day_volume", "opposite_volume", "cancelled_volume", "fill_qty", "value",
    "gross_value", "equity", "cash", "long_value", "short_value", "excess",
    "maintenance_requirement", "initial_requirement", "cash_to_maintenance", "cash_to_initial",
    "reduction_to_maintenance", "reduction_to_initial", "cash_to_cure",
))  # fmt: skip
_CODES = {"side": SIDES, "fill_side": SIDES, "ord_type": ORD_TYPES, "child_ord_type": ORD_TYPES}
# An `_ns` key is a duration by its name (`window_ns`, `within_ns`, ...), an instant by its name
# (`ts_ns`, `first_buy_ns`, `episode_start_ns`, ...), else by its size: 10**17 ns is 3 years,
# and no instant a venue sends is before 1973.
_DURATIONS = ("window_ns", "within_ns", "gap_ns", "grace_ns", "_after_ns", "resting_ns",
              "delay_ns", "duration_ns", "elapsed_ns", "age_ns")  # fmt: skip
_INSTANTS = ("_ts_ns", "_at_ns", "_start_ns", "_since_ns", "_time_ns", "_until_ns")


def label(key: str) -> str:
    """A details key as a label: `first_buy_ns` is "first buy"."""
    known = _LABELS.get(key)
    if known is not None:
        return known
    return key.removesuffix("_ns").replace("_", " ")


def is_instant(key: str, ns: int) -> bool:
    """Whether an `…_ns` value is an instant (else a duration), by its key, else its size."""
    if key.endswith(_DURATIONS):
        return False
    if key == "ts_ns" or key.endswith(_INSTANTS) or key.startswith(("first_", "last_")):
        return True
    return abs(ns) >= 10**17


def humanise(key: str, value: Any) -> str:
    """One evidence value in words, by its key (see the module docstring).

    >>> humanise("window_ns", 15_000_000_000), humanise("first_buy_ns", 1_795_617_041_170_000_000)
    ('15 s', '2026-11-25T14:30:41.170Z')
    >>> humanise("cancel_fraction", "0.80"), humanise("bought", "61900"), humanise("day", 20_417)
    ('80 %', '61,900', '2025-11-25')
    >>> humanise("thresholds", {"volume_share": "0.05", "within_ns": 172_800_000_000_000})
    'volume share 5 %, within 48 h'
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        parts = [f"{label(str(k))} {humanise(str(k), v)}" for k, v in value.items()]
        return ", ".join(parts) if parts else "none"
    if isinstance(value, list | tuple):
        items = [humanise(key, v) for v in value]
        separator = "; " if any(isinstance(v, Mapping) for v in value) else ", "
        return separator.join(items) if items else "none"
    if isinstance(value, int) and key.endswith("_ns"):
        return instant(value) if is_instant(key, value) else duration(value)
    if isinstance(value, int) and key == "day":
        return day_text(value)
    codes = _CODES.get(key)
    if codes is not None and isinstance(value, str):
        return codes.get(value, value)
    number = _decimal(value)
    if number is not None and key.endswith(_FRACTIONS):
        return limit(number)
    if number is not None and (key in _AMOUNTS or isinstance(value, int | float)):
        return quantity(number)
    return str(value)


_LAST = ("score", "model_key")  # after the evidence; the model's key as "reference"
_SAID_APART = frozenset(("episode", "occurrences", *_LAST))


def _fields(ev: _Evidence) -> tuple[tuple[str, str], ...]:
    """The evidence the headline and findings did not say, by key name (PostgreSQL's JSONB
    keeps no order), then the occurrences, the score and the model's key ("reference")."""
    out: list[tuple[str, str]] = []
    used = ev.used
    details = ev.details
    for raw_key, value in sorted(details.items(), key=lambda item: str(item[0])):
        key = str(raw_key)
        if key in used or key in _SAID_APART:
            continue
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in used}
            if not value:
                continue
        out.append((label(key), humanise(key, value)))
    occurrences = _occurrences_field(details)
    if occurrences:
        out.append(("occurrences", occurrences))
    if "score" in details:
        out.append(("score", humanise("score", details["score"])))
    reference = details.get("model_key")
    if reference is not None:
        out.append(("reference", str(reference)))
    return tuple(out)


def _occurrences_field(details: Mapping[str, Any]) -> str | None:
    """Each occurrence of an episode: "2026-11-25T14:02:11.000Z (score 80), …"."""
    occurrences = details.get("occurrences")
    if not isinstance(occurrences, Mapping) or len(occurrences) < 2:
        return None
    entries = [o for o in occurrences.values() if isinstance(o, Mapping)]
    entries.sort(key=lambda o: o.get("ts_ns") if isinstance(o.get("ts_ns"), int) else 0)
    words = []
    for o in entries:
        ts, score = o.get("ts_ns"), o.get("score")
        when = instant(ts) if isinstance(ts, int) and not isinstance(ts, bool) else "?"
        words.append(f"{when} (score {score})" if score is not None else when)
    return ", ".join(words)


_ID_KEYS = frozenset(("exec_id", "exec_ids", "cl_ord_id", "cl_ord_ids"))


def _collect_ids(
    value: Any, key: str, exec_ids: dict[str, None], cl_ord_ids: dict[str, None]
) -> None:
    """Every ExecID and ClOrdID the details name, by key (`exec_id`, `exec_ids`,
    `fill_exec_id`, `cancelled_cl_ord_ids`, ...), at any depth (occurrences), in order."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _collect_ids(v, str(k), exec_ids, cl_ord_ids)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect_ids(v, key, exec_ids, cl_ord_ids)
    elif isinstance(value, str) and value:
        if key.endswith(("exec_id", "exec_ids")):
            exec_ids[value] = None
        elif key.endswith(("cl_ord_id", "cl_ord_ids")):
            cl_ord_ids[value] = None
