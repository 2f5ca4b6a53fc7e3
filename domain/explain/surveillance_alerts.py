"""Domain layer, alerts in words: the explainers of the surveillance kinds (`domain.surveillance`):
WASH_TRADE, SPOOFING, MARKING_THE_CLOSE, PUMP_AND_DUMP, EXCESSIVE_OTR, OWNERSHIP_MISSING."""

from __future__ import annotations

from decimal import Decimal

from domain.explain.evidence import _Context, _Evidence, _generic_headline
from domain.explain.words import (
    _compare,
    _count,
    _share,
    _trim,
    day_text,
    duration,
    instant,
    limit,
    percent,
    quantity,
)
from domain.ledger import is_buy


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
        traded, resting_side = ("bought", "sell") if is_buy(side) else ("sold", "buy")
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
