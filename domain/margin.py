"""Domain layer: margin maths and the margin-call state machine of one account. Pure, stdlib only.

Figures (`margin_figures`), with every held symbol marked at its mark price (last trade, else
mid; the caller chooses):
    long value      Σ q·mark over long positions
    short value     Σ |q|·mark over short positions (a positive number)
    gross value     long value + short value
    equity          cash + Σ q·mark  (negative cash is a margin loan, shorts count negative)
    equity ratio    equity / gross value (None when nothing is held)
    requirement     Σ |q|·mark·rate, rate = the account's maintenance (or initial) rate, raised
                    for a position above the concentration threshold (`MarginPolicy`)
    excess          equity − maintenance requirement (negative: the account is in deficit)
With no concentration add-on, "equity ratio < maintenance rate" and "excess < 0" are the same
test; with add-ons the requirement is the rule.

Cures (`Shortfall`): a deposit of `cash_to_maintenance` (or `cash_to_initial`) restores that
level, since cash raises equity one for one and leaves the requirement alone. Selling (or
covering) positions at their mark leaves equity unchanged and lowers the requirement by
value × rate, so `reduction_to_maintenance` is the position value to liquidate, in the
liquidation order below, to restore maintenance.

Liquidation order (`propose_liquidation`), as a broker does it to free the most requirement
per dollar sold and to cut concentration first: positions with the highest requirement rate
first, then the largest position value, then symbol; each position is reduced only as far as
needed, in whole shares rounded up, until the INITIAL requirement is covered by equity.

An account holding a symbol with no mark is "unmarked": its figures say which symbols, and the
state machine neither calls nor cures it until every held symbol has a mark (valuing a position
at 0 would invent a loss or hide one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from enum import StrEnum
from itertools import repeat
from operator import mul
from typing import NamedTuple

ZERO = Decimal(0)
CENT = Decimal("0.01")
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class MarginPolicy:
    """The firm's margin rules; account rates override the defaults.

    Attributes:
        initial: initial margin rate (fraction of gross position value).
        maintenance: maintenance margin rate.
        concentration: `(share, rate)` steps: a position whose value is more than `share` of
            the gross value is margined at least at `rate` (the highest step that applies).
        grace_ns: event time an account may stay in CALL before LIQUIDATION.
        cure_band: a call is cured only once the excess is at least this share of the gross
            value (0.02: for a 30 % maintenance rate, back at a 32 % equity ratio), so that an
            account wavering at the line is called once, not called and cured on every tick.
    """

    initial: Decimal = Decimal("0.50")
    maintenance: Decimal = Decimal("0.30")
    concentration: tuple[tuple[Decimal, Decimal], ...] = ((Decimal("0.25"), Decimal("0.40")),)
    grace_ns: int = 3600 * NS_PER_S
    cure_band: Decimal = ZERO

    def concentration_rate(self, share: Decimal) -> Decimal | None:
        """The add-on rate for a position of this share of gross value, or None."""
        rate = None
        for threshold, step_rate in self.concentration:
            if share > threshold and (rate is None or step_rate > rate):
                rate = step_rate
        return rate


_DEFAULT_POLICY = MarginPolicy()  # frozen: one shared instance when the caller gives none


class Position(NamedTuple):
    """One marked position: quantity (signed), mark, value (signed), requirement rates.
    (A named tuple: an account's figures build one per holding, on the margin hot path.)"""

    symbol: str
    quantity: Decimal
    mark: Decimal
    value: Decimal
    maintenance_rate: Decimal
    initial_rate: Decimal


@dataclass(frozen=True, slots=True)
class MarginFigures:
    """An account's figures at its marks (see the module docstring).

    The marked positions are kept as columns in symbol order (`symbols`, `quantities`, `marks`,
    `values`; `rates`: per position (maintenance, initial) when a concentration add-on applies
    to some, else None: the account's rates for all); `positions` builds them as `Position`s.
    Columns because every exact evaluation makes figures and few need a position object.
    """

    cash: Decimal
    long_value: Decimal
    short_value: Decimal
    gross_value: Decimal
    equity: Decimal
    ratio: Decimal | None
    maintenance_requirement: Decimal
    initial_requirement: Decimal
    excess: Decimal
    symbols: tuple[str, ...] = ()
    quantities: tuple[Decimal, ...] = ()
    marks: tuple[Decimal, ...] = ()
    values: tuple[Decimal, ...] = ()
    rates: tuple[tuple[Decimal, Decimal], ...] | None = None
    unmarked: tuple[str, ...] = ()
    concentrated: tuple[tuple[str, Decimal], ...] = ()
    initial_rate: Decimal = Decimal("0.50")
    maintenance_rate: Decimal = Decimal("0.30")
    policy: MarginPolicy = field(default_factory=MarginPolicy)

    @property
    def positions(self) -> tuple[Position, ...]:
        """The marked positions, in symbol order."""
        rates = self.rates
        if rates is None:
            rates = ((self.maintenance_rate, self.initial_rate),) * len(self.symbols)
        return tuple(
            Position(symbol, quantity, mark, value, m_rate, i_rate)
            for symbol, quantity, mark, value, (m_rate, i_rate) in zip(
                self.symbols, self.quantities, self.marks, self.values, rates, strict=True
            )
        )

    @property
    def in_deficit(self) -> bool:
        return not self.unmarked and self.excess < 0

    @property
    def meets_initial(self) -> bool:
        return not self.unmarked and self.equity >= self.initial_requirement


def margin_figures(
    cash: Decimal,
    holdings: Mapping[str, Decimal],
    marks: Mapping[str, Decimal | float | None],
    initial: Decimal | None = None,
    maintenance: Decimal | None = None,
    policy: MarginPolicy | None = None,
) -> MarginFigures:
    """Compute an account's figures.

    Args:
        cash: the account's cash (negative: a margin loan).
        holdings: symbol → signed quantity (0 quantities are ignored).
        marks: symbol → mark price; a held symbol missing here (or None) is unmarked.
        initial, maintenance: the account's rates (None: the policy's defaults).
        policy: the firm's rules.

    Returns:
        The figures; with unmarked symbols, valued over the marked positions only and flagged.
    """
    items = sorted(holdings.items())  # symbols are unique: the quantities never compare
    return margin_figures_sorted(cash, items, marks, initial, maintenance, policy)


def margin_figures_sorted(
    cash: Decimal,
    items: Sequence[tuple[str, Decimal]],
    marks: Mapping[str, Decimal | float | None],
    initial: Decimal | None = None,
    maintenance: Decimal | None = None,
    policy: MarginPolicy | None = None,
) -> MarginFigures:
    """`margin_figures` of holdings given as `(symbol, quantity)` pairs in symbol order, each
    symbol once (`sorted(holdings.items())`): for a caller that has them so without a dict."""
    policy = policy or _DEFAULT_POLICY
    initial_rate = policy.initial if initial is None else initial
    maintenance_rate = policy.maintenance if maintenance is None else maintenance
    symbols, quantities = zip(*items, strict=True) if items else ((), ())
    held_marks = tuple(map(marks.get, symbols))
    if all(quantities) and all(map(isinstance, held_marks, repeat(Decimal))):
        # The margin hot path (every exact evaluation; the flow's marks are Decimal): the
        # same operations as the loop below, in the same order, driven from C (map, sum).
        values = tuple(map(mul, quantities, held_marks))
        net = sum(values, ZERO)
        if values and min(values) > 0:  # all long: the loop would add every value to both
            long_value, short_value = net, ZERO
        else:
            long_value = short_value = ZERO
            for value in values:
                if value > 0:
                    long_value += value
                else:
                    short_value -= value
        unmarked: list[str] = []
    else:
        long_value = short_value = net = ZERO
        columns: tuple[list, list, list, list] = ([], [], [], [])
        unmarked = []
        for symbol, quantity, mark in zip(symbols, quantities, held_marks, strict=True):
            if not quantity:
                continue
            if mark is None:
                unmarked.append(symbol)
                continue
            if not isinstance(mark, Decimal):
                mark = Decimal(repr(mark))
            value = quantity * mark
            net += value
            if value > 0:
                long_value += value
            else:
                short_value -= value
            for column, x in zip(columns, (symbol, quantity, mark, value), strict=True):
                column.append(x)
        symbols, quantities, held_marks, values = map(tuple, columns)
    gross = long_value + short_value
    concentrated: list[tuple[str, Decimal]] = []
    rates: list[tuple[Decimal, Decimal]] | None = None
    if not policy.concentration:  # one rate for every position: Σ size·rate = gross·rate
        maintenance_req, initial_req = gross * maintenance_rate, gross * initial_rate
    else:
        maintenance_req = initial_req = ZERO
        position_rates = []
        for symbol, value in zip(symbols, values, strict=True):
            size = abs(value)
            m_rate, i_rate = maintenance_rate, initial_rate
            if gross:
                share = size / gross
                add_on = policy.concentration_rate(share)
                if add_on is not None:
                    concentrated.append((symbol, share))
                    m_rate, i_rate = max(m_rate, add_on), max(i_rate, add_on)
            maintenance_req += size * m_rate
            initial_req += size * i_rate
            position_rates.append((m_rate, i_rate))
        if concentrated:
            rates = position_rates
    equity = cash + net
    return MarginFigures(
        cash=cash,
        long_value=long_value,
        short_value=short_value,
        gross_value=gross,
        equity=equity,
        ratio=(equity / gross) if gross else None,
        maintenance_requirement=maintenance_req,
        initial_requirement=initial_req,
        excess=equity - maintenance_req,
        symbols=symbols,
        quantities=quantities,
        marks=held_marks,
        values=values,
        rates=None if rates is None else tuple(rates),
        unmarked=tuple(unmarked),
        concentrated=tuple(concentrated),
        initial_rate=initial_rate,
        maintenance_rate=maintenance_rate,
        policy=policy,
    )


@dataclass(frozen=True, slots=True)
class LiquidationLine:
    """Sell (long) or buy to cover (short) `quantity` of `symbol` at about `mark`."""

    symbol: str
    side: str  # Side (54): "2" sell a long, "1" buy to cover a short
    quantity: Decimal
    mark: Decimal
    value: Decimal


def _liquidation_order(positions: tuple[Position, ...], initial: bool) -> list[Position]:
    def key(p: Position) -> tuple[Decimal, Decimal, str]:
        rate = p.initial_rate if initial else p.maintenance_rate
        return (-rate, -abs(p.value), p.symbol)

    return sorted(positions, key=key)


def _reduction(figures: MarginFigures, initial: bool) -> tuple[Decimal, list[LiquidationLine]]:
    """Reduce positions in liquidation order until equity covers the requirement.

    One position per round, as far as the current rates say is needed, then the figures are
    recomputed: selling a concentrated position can push another over the threshold and raise
    its rate, so a single greedy pass could fall short. Without concentration add-ons every
    rate is fixed, and one pass gives the same lines (`_reduction_one_pass`).
    """
    if figures.unmarked:
        return ZERO, []
    if not figures.policy.concentration:
        return _reduction_one_pass(figures, initial)
    return _reduction_rounds(figures, initial)


def _shares_needed(quantity: Decimal, need: Decimal, rate: Decimal, mark: Decimal) -> Decimal:
    """Whole shares of a position (at most all of it) whose sale at `mark` frees `need` of
    requirement at `rate`: selling x shares leaves equity alone and frees x·mark·rate."""
    return min(abs(quantity), (need / rate / mark).to_integral_value(ROUND_CEILING))


def _reduction_one_pass(
    figures: MarginFigures, initial: bool
) -> tuple[Decimal, list[LiquidationLine]]:
    """`_reduction` when rates cannot change (`_reduction_total`, with its lines)."""
    lines: list[LiquidationLine] = []
    return _reduction_total(figures, initial, _size_order(figures), lines), lines


def _reduction_rounds(
    figures: MarginFigures, initial: bool
) -> tuple[Decimal, list[LiquidationLine]]:
    holdings = {p.symbol: p.quantity for p in figures.positions}
    marks = {p.symbol: p.mark for p in figures.positions}
    cash = figures.cash
    sold: dict[str, Decimal] = {}
    current = figures
    for _ in range(4 * len(holdings) + 4):
        requirement = current.initial_requirement if initial else current.maintenance_requirement
        need = requirement - current.equity
        if need <= 0:
            break
        candidates = [p for p in _liquidation_order(current.positions, initial) if p.quantity]
        if not candidates:
            break
        p = candidates[0]
        rate = p.initial_rate if initial else p.maintenance_rate
        shares = _shares_needed(p.quantity, need, rate, p.mark)
        sign = 1 if p.quantity > 0 else -1
        holdings[p.symbol] -= sign * shares
        cash += sign * shares * p.mark
        sold[p.symbol] = sold.get(p.symbol, ZERO) + shares
        current = margin_figures(
            cash, holdings, marks, figures.initial_rate, figures.maintenance_rate, figures.policy
        )
    lines = []
    total = ZERO
    for symbol, shares in sold.items():
        mark = marks[symbol]
        original = next(p for p in figures.positions if p.symbol == symbol)
        side = "2" if original.quantity > 0 else "1"
        lines.append(LiquidationLine(symbol, side, shares, mark, shares * mark))
        total += shares * mark
    return total, lines


@dataclass(frozen=True, slots=True)
class Shortfall:
    """What would cure a deficit (see the module docstring); all zero when there is none."""

    cash_to_maintenance: Decimal
    cash_to_initial: Decimal
    reduction_to_maintenance: Decimal
    reduction_to_initial: Decimal


NO_SHORTFALL = Shortfall(ZERO, ZERO, ZERO, ZERO)  # a cure's (frozen: shared)


def shortfall(figures: MarginFigures) -> Shortfall:
    """The deposit or the position reduction that restores maintenance, and initial margin."""
    if not figures.unmarked and not figures.policy.concentration:
        # Every margin call computes this: `_reduction_total` without lines, over one
        # liquidation order shared by the two levels.
        order = _size_order(figures)
        to_maintenance = _reduction_total(figures, False, order)
        to_initial = _reduction_total(figures, True, order)
    else:
        to_maintenance, _ = _reduction(figures, initial=False)
        to_initial, _ = _reduction(figures, initial=True)
    return Shortfall(
        cash_to_maintenance=max(ZERO, figures.maintenance_requirement - figures.equity),
        cash_to_initial=max(ZERO, figures.initial_requirement - figures.equity),
        reduction_to_maintenance=to_maintenance,
        reduction_to_initial=to_initial,
    )


def _size_order(figures: MarginFigures) -> list[int]:
    """The positions' indices by size, largest first, then symbol: the positions are in symbol
    order, and a stable descending sort by size keeps that order among equal sizes. With no
    short position every value is its size (no abs per key)."""
    values = figures.values
    key = values.__getitem__ if not figures.short_value else (lambda k: abs(values[k]))
    return sorted(range(len(values)), key=key, reverse=True)


def _reduction_total(
    figures: MarginFigures,
    initial: bool,
    order: list[int],
    lines: list[LiquidationLine] | None = None,
) -> Decimal:
    """The value to liquidate, over the positions in `order`, to restore the maintenance (or
    initial) requirement when rates cannot change (no concentration add-on: every position
    has the account's rates). Selling x shares at mark P leaves equity alone and lowers the
    requirement by x·P·rate, so the need falls by exactly that, and a position only partly
    sold covers the rest of the need. With `lines`, each sale is appended to it as well."""
    need = (
        figures.initial_requirement if initial else figures.maintenance_requirement
    ) - figures.equity
    rate = figures.initial_rate if initial else figures.maintenance_rate
    symbols, quantities, marks = figures.symbols, figures.quantities, figures.marks
    total = ZERO
    for k in order:
        if need <= 0:
            break
        quantity = quantities[k]
        if not quantity:
            continue
        mark = marks[k]
        shares = _shares_needed(quantity, need, rate, mark)
        value = shares * mark
        need -= value * rate  # = shares * mark * rate, evaluated left to right
        total += value
        if lines is not None:
            side = "2" if quantity > 0 else "1"
            lines.append(LiquidationLine(symbols[k], side, shares, mark, value))
    return total


def propose_liquidation(figures: MarginFigures) -> list[LiquidationLine]:
    """The positions to liquidate, in order, so that equity covers the initial requirement."""
    return _reduction(figures, initial=True)[1]


class MarginState(StrEnum):
    NORMAL = "NORMAL"
    CALL = "CALL"
    LIQUIDATING = "LIQUIDATING"


@dataclass(frozen=True, slots=True)
class MarginTransition:
    """A change of state worth an alert.

    Attributes:
        kind: MARGIN_CALL, MARGIN_CALL_CURED or LIQUIDATION.
        episode_ns: event time the call began (the alert key: one alert per episode).
        ts_ns: event time of the transition.
        figures: the figures that caused it.
        shortfall: the cure amounts (zero for a cure).
        liquidation: the proposed liquidation (LIQUIDATION only).
    """

    kind: str
    episode_ns: int
    ts_ns: int
    figures: MarginFigures
    shortfall: Shortfall
    liquidation: tuple[LiquidationLine, ...] = ()


@dataclass(slots=True)
class MarginMonitor:
    """The margin state of one account, driven by its figures in event time.

    NORMAL → CALL when the account is in deficit (one MARGIN_CALL per episode); CALL → NORMAL
    when the excess is back above the cure band (`MarginPolicy.cure_band`; MARGIN_CALL_CURED);
    CALL → LIQUIDATING when event time reaches the call's start plus the grace period while
    still in deficit (LIQUIDATION, with a proposal); LIQUIDATING → NORMAL when cured
    (MARGIN_CALL_CURED). Unmarked figures change nothing.

    The grace period does not run while the account's market is halted (issue 19): `pause`
    at the halt's start (or the call's, during a halt) stops it, `resume` at the reopening
    adds the halted time to the deadline; while paused there is no deadline.
    """

    state: MarginState = MarginState.NORMAL
    episode_ns: int = 0
    grace_ns: int = field(default=MarginPolicy().grace_ns)
    paused_ns: int = 0  # halted time of this episode, added to its deadline
    paused_since: int | None = None  # a halt holding the deadline began then

    def __setstate__(self, state: tuple[None, dict]) -> None:
        # Monitors pickled before the pause existed (recovery snapshots) load unpaused.
        self.paused_ns, self.paused_since = 0, None
        for name, value in state[1].items():
            object.__setattr__(self, name, value)

    def due_ns(self) -> int | None:
        """Event time at which a standing call becomes a liquidation, if one stands (None
        while paused)."""
        if self.state is not MarginState.CALL or self.paused_since is not None:
            return None
        return self.episode_ns + self.grace_ns + self.paused_ns

    def pause(self, ts_ns: int) -> None:
        """A halt covering the account began (or the call began during one) at `ts_ns`."""
        if self.state is MarginState.CALL and self.paused_since is None:
            self.paused_since = max(ts_ns, self.episode_ns)

    def resume(self, ts_ns: int) -> bool:
        """The halt ended at `ts_ns`: the deadline moves by the halted time. Return whether
        the monitor was paused."""
        since = self.paused_since
        if since is None:
            return False
        self.paused_ns += max(0, ts_ns - since)
        self.paused_since = None
        return True

    def update(self, figures: MarginFigures, ts_ns: int) -> list[MarginTransition]:
        """Apply the figures as of event time `ts_ns`; return the transitions they cause.

        A call stands until the excess is at least the policy's `cure_band` × gross value."""
        if figures.unmarked:
            return []
        out: list[MarginTransition] = []
        if figures.in_deficit:
            if self.state is MarginState.NORMAL:
                self.state, self.episode_ns = MarginState.CALL, ts_ns
                self.paused_ns, self.paused_since = 0, None
                out.append(
                    MarginTransition("MARGIN_CALL", ts_ns, ts_ns, figures, shortfall(figures))
                )
            out += self.check_grace(figures, ts_ns)
        elif (
            self.state is not MarginState.NORMAL
            and figures.excess >= figures.policy.cure_band * figures.gross_value
        ):
            episode = self.episode_ns
            self.state = MarginState.NORMAL
            out.append(MarginTransition("MARGIN_CALL_CURED", episode, ts_ns, figures, NO_SHORTFALL))
        return out

    def check_grace(self, figures: MarginFigures, ts_ns: int) -> list[MarginTransition]:
        """LIQUIDATION if a call has stood for the grace period by event time `ts_ns`."""
        due = self.due_ns()
        if due is None or ts_ns < due or not figures.in_deficit:
            return []
        self.state = MarginState.LIQUIDATING
        proposal = tuple(propose_liquidation(figures))
        return [
            MarginTransition(
                "LIQUIDATION", self.episode_ns, ts_ns, figures, shortfall(figures), proposal
            )
        ]


# -- concentration alerts, with hysteresis ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConcentrationRule:
    """When a position is too large a part of an account, and when it may be reported again.

    A position whose |value| is more than `share` of the gross value starts an episode: one
    CONCENTRATION alert. The (account, symbol) stays flagged, with no further alert, while its
    share stays at or above `share - rearm_band`; it re-arms once the share falls below that
    (or it is the account's only position), and no sooner than `rearm_after_ns` after the
    episode began. Without the band a share wandering around the threshold (25.00 %, 25.10 %,
    24.98 %…) would alert on every crossing; without the wait an account trading the same big
    position in and out every few seconds would alert on every round trip.

    Concentration is judged at most once per `screen_ns` of event time (the first margin
    window that ends that long after the last judgement), and nowhere else, so that alerts do
    not depend on which accounts an evaluation happened to look at.

    Attributes:
        share: the threshold (a fraction of gross value, e.g. 0.25).
        rearm_band: how far below the threshold the share must fall to re-arm (e.g. 0.05:
            re-armed below 20 % for a 25 % threshold).
        rearm_after_ns: event time from an episode's start before it can re-arm.
        screen_ns: event time between two judgements.
    """

    share: Decimal = Decimal("0.25")
    rearm_band: Decimal = Decimal("0.05")
    rearm_after_ns: int = 3600 * NS_PER_S
    screen_ns: int = NS_PER_S

    @property
    def rearm_share(self) -> Decimal:
        return self.share - self.rearm_band

    def rearm_at(self, flagged: Mapping[str, int]) -> int:
        """The event time from which the oldest of these flags (symbol -> its episode's start)
        may re-arm (the screen's cue: none re-arms before it)."""
        return min(flagged.values(), default=0) + self.rearm_after_ns

    def screen_at(self, now_ns: int) -> tuple[float, float, int]:
        """(threshold share, re-arm share, `now_ns`) for `MarginBook.screen`: the float screen
        of this rule at event time `now_ns`."""
        return float(self.share), float(self.rearm_share), now_ns


class ConcentrationFinding(NamedTuple):
    """A position that crossed the threshold while not flagged: an episode's alert."""

    symbol: str
    share: Decimal
    value: Decimal  # |value| at the mark
    mark: Decimal


def assess_concentration(
    figures: MarginFigures, flagged: Mapping[str, int], rule: ConcentrationRule, ts_ns: int
) -> tuple[dict[str, int], list[ConcentrationFinding]]:
    """The symbols flagged after these figures at event time `ts_ns` (each with its episode's
    start), and the episodes they start.

    A closed position's share is 0: it re-arms like any other once its episode is old enough.
    The positions of an account with a single marked position or nothing held flag nothing (a
    one-stock account is concentrated by construction): they re-arm. With an unmarked symbol
    the shares are not known: the flags stay as they are.

    >>> from decimal import Decimal as D
    >>> f = margin_figures(D(0), {"A": D(30), "B": D(70)}, {"A": D(1), "B": D(1)})
    >>> rule = ConcentrationRule(D("0.25"), D("0.05"))
    >>> flags, found = assess_concentration(f, {}, rule, 0)
    >>> flags, [x.symbol for x in found]
    ({'A': 0, 'B': 0}, ['A', 'B'])
    >>> assess_concentration(f, flags, rule, 1)[1]  # still over: same episode, no alert
    []
    """
    if figures.unmarked:
        return dict(flagged), []
    gross = figures.gross_value
    values = figures.values
    symbols = figures.symbols
    rearm_from = ts_ns - rule.rearm_after_ns  # episodes begun before this may re-arm
    kept = {s: t for s, t in flagged.items() if t > rearm_from} if flagged else {}
    if not gross or len(values) < 2:
        return kept, []
    over_limit = rule.share * gross  # multiplications, no division per position
    keep_limit = rule.rearm_share * gross
    # Usually nothing is near either limit: max and min (in C) spare the loop.
    if not flagged and max(values) <= over_limit and -min(values) <= over_limit:
        return {}, []
    found: list[ConcentrationFinding] = []
    for symbol, value, mark in zip(symbols, values, figures.marks, strict=True):
        size = abs(value)
        if symbol in flagged:
            if size >= keep_limit:
                kept[symbol] = flagged[symbol]
        elif size > over_limit:
            kept[symbol] = ts_ns
            found.append(ConcentrationFinding(symbol, size / gross, size, mark))
    return kept, found


# -- account_margin rows: written when they say something new ------------------------------


@dataclass(frozen=True, slots=True)
class WrittenFigures:
    """What the last `account_margin` row of an account said."""

    state: str
    call_since_ns: int | None
    equity: Decimal
    gross_value: Decimal


def row_is_material(
    last: WrittenFigures | None, new: WrittenFigures, change: Decimal
) -> bool:
    """Whether an evaluation's figures are worth a new `account_margin` row.

    A row is written for the account's first evaluation, when its state or its call changes,
    and when equity or gross value has moved by more than `change` (a fraction, e.g. 0.01) of
    the last row's gross value (of its |equity| when it held nothing). Fills are always
    written by the caller: a restart reads `event_time` to know which fills a row includes.
    """
    if last is None or last.state != new.state or last.call_since_ns != new.call_since_ns:
        return True
    scale = last.gross_value or abs(last.equity)
    limit = change * scale
    return abs(new.equity - last.equity) > limit or abs(new.gross_value - last.gross_value) > limit
