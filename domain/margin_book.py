"""Domain layer: the margin state of many accounts in columns, and the screen that finds the
accounts worth an exact look. Pure: numpy and scipy, no I/O.

Two representations of the same accounts:
    exact   cash (Decimal, per account), holdings (Decimal, from the columns or, for accounts
            whose quantities a float cannot hold exactly or that traded since the start, an
            exact dict kept here), marks (Decimal, kept by the caller). Verdicts, alerts and
            `account_margin` rows come from these through `domain.margin.margin_figures`.
    float   cash_f, maintenance rates, and the holdings as a sparse matrix Q (accounts x
            symbols, CSR) with |Q| beside it; marks_f a vector over symbols (NaN: no mark).
            `screen` computes net = Q·marks and gross = |Q|·marks for every account in
            sparse matrix-vector products (C loops: ~1.5 ns per position each), then the
            excess, and returns the accounts whose float verdict may differ from their state.
            An account with no short position has |Q| = Q in its row, so its gross is its
            net bit for bit: the second product runs only over the rows that may hold a
            short (`short`), or over all rows when they are more than a quarter.

Why a screen and not a verdict: float sums of products carry rounding errors of about 1e-16
of the gross value; an account within `TOLERANCE` of the line is always a candidate, so the
exact evaluation decides every case that floats could get wrong.

Candidates (indices, sorted):
    never judged  an account not yet evaluated with all its holdings marked (its last held
                  symbol just got its first mark);
    NORMAL        excess (with the highest rate a position could have) under the tolerance;
    CALL / LIQ.   excess (at the account's own rate) less the cure band above minus the
                  tolerance: maybe cured;
    fallback      an account marked only by its own fill prices for some symbol (no market
                  mark yet): always, the float columns do not see those marks;
    concentration (when asked) accounts with more than one position where a position not
                  flagged is over the threshold share, or a flagged one fell below the re-arm
                  share (`domain.margin.ConcentrationRule`: hysteresis), or flags stand on an
                  account left with one position;
    moved         (when asked) equity or gross value moved by more than the row change since
                  the last `account_margin` row written (`domain.margin.row_is_material`),
                  or no row written yet.
Accounts holding a symbol without any mark are never candidates (no verdict; see
`domain.margin`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter

import numpy as np
import scipy.sparse as sp

TOLERANCE = 1e-9  # relative to |cash| + gross value
FOLD_AT = 4096  # positions added since the start folded into the matrix past this many
SMALL_BOOK = 16_384  # accounts up to which the gross value is one full product


def exact_float(q: Decimal) -> float | None:
    """`q` as a float when the float gives `q` back exactly, else None."""
    f = float(q)
    return f if _decimal(f) == q else None


def _short_rows(q: sp.csr_matrix) -> np.ndarray:
    """Per row of `q`: it holds a negative quantity."""
    short = np.zeros(q.shape[0], bool)
    negative = np.flatnonzero(q.data < 0)
    if len(negative):
        short[np.searchsorted(q.indptr, negative, side="right") - 1] = True
    return short


def _decimal(f: float) -> Decimal:
    return Decimal(int(f)) if f.is_integer() else Decimal(repr(f))


class _Decimals(dict[float, Decimal]):
    """`_decimal` of each float asked for, kept: every exact read converts all the positions of
    an account, quantities repeat across accounts, and a Decimal is immutable, so one object
    serves them all. A hit is a C dict lookup (`map(cache.__getitem__, ...)`); bounded: the
    whole cache goes when it is full."""

    def __missing__(self, f: float) -> Decimal:
        if len(self) >= 1 << 16:
            self.clear()
        d = self[f] = _decimal(f)
        return d


_DECIMALS = _Decimals()
_symbol = itemgetter(0)


@dataclass(frozen=True, slots=True)
class OpeningRow:
    """One account as the book takes it."""

    account: str
    cash: Decimal
    initial: Decimal
    maintenance: Decimal
    holdings: Mapping[str, Decimal]


class _AddedArrays:
    """`MarginBook.added` as arrays in its insertion order, updated in place: a fill to a
    position already added sets its quantity, a new one is appended. Room for `FOLD_AT`, and
    one more than `added` holds when built: the book folds (and drops these) as soon as a new
    position brings `added` to `FOLD_AT`."""

    __slots__ = ("rows", "cols", "quantities", "slot", "n")

    def __init__(self, added: dict[tuple[int, int], float]) -> None:
        size = max(FOLD_AT, len(added) + 1)
        self.rows = np.zeros(size, np.int64)
        self.cols = np.zeros(size, np.int64)
        self.quantities = np.zeros(size)
        self.slot: dict[tuple[int, int], int] = {}
        self.n = 0
        for (i, j), value in added.items():
            self.set(i, j, value)

    def set(self, i: int, j: int, value: float) -> None:
        k = self.slot.get((i, j))
        if k is None:
            k = self.slot[(i, j)] = self.n
            self.rows[k], self.cols[k] = i, j
            self.n = k + 1
        self.quantities[k] = value


@dataclass
class MarginBook:
    """Accounts 0..n-1 (`names`), symbols 0..m-1 (`symbols`); see the module docstring."""

    names: list[str]
    index: dict[str, int]
    cash: list[Decimal]
    initial: list[Decimal]
    maintenance: list[Decimal]
    cash_f: np.ndarray
    maintenance_f: np.ndarray
    q: sp.csr_matrix
    symbols: list[str] = field(default_factory=list)
    symbol_index: dict[str, int] = field(default_factory=dict)
    marks_f: np.ndarray = field(default_factory=lambda: np.full(0, np.nan))
    exact: dict[int, dict[str, Decimal]] = field(default_factory=dict)
    fallback: dict[int, dict[str, Decimal]] = field(default_factory=dict)
    added: dict[tuple[int, int], float] = field(default_factory=dict)  # not yet in q
    called: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    judged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # Per account: the symbols flagged as concentrated (an episode alerted, not yet re-armed),
    # and the event time from which the oldest of them may re-arm.
    flagged: dict[int, frozenset[str]] = field(default_factory=dict)
    rearm_at: dict[int, int] = field(default_factory=dict)
    # Per account: equity and gross value of the last `account_margin` row (NaN: none yet).
    written_equity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    written_gross: np.ndarray = field(default_factory=lambda: np.zeros(0))
    abs_q: sp.csr_matrix | None = None
    # Per account: may hold a short position in `q` (True is only ever an over-estimate until
    # the next fold). A row without one has |Q| = Q, so its gross IS its net (see `_values`).
    short: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, rows: Iterable[OpeningRow], symbols: Iterable[str] = ()) -> MarginBook:
        """The book of these accounts (their order is the index order)."""
        names: list[str] = []
        cash: list[Decimal] = []
        initial: list[Decimal] = []
        maintenance: list[Decimal] = []
        symbol_index: dict[str, int] = {}
        for s in symbols:
            symbol_index.setdefault(s, len(symbol_index))
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        exact: dict[int, dict[str, Decimal]] = {}
        for i, row in enumerate(rows):
            names.append(row.account)
            cash.append(row.cash)
            initial.append(row.initial)
            maintenance.append(row.maintenance)
            held = sorted(
                (symbol_index.setdefault(s, len(symbol_index)), s, q)
                for s, q in row.holdings.items()
                if q
            )
            for j, _s, q in held:
                f = exact_float(q)
                if f is None:  # e.g. 0.1234567890123456789 shares: kept exactly here
                    exact[i] = {s: q for s, q in row.holdings.items() if q}
                    f = float(q)
                indices.append(j)
                data.append(f)
            indptr.append(len(indices))
        n = len(names)
        q = sp.csr_matrix(
            (np.array(data, float), np.array(indices, np.int32), np.array(indptr, np.int64)),
            shape=(n, max(1, len(symbol_index))),
        )
        return cls.from_columns(
            names, cash, initial, maintenance, q, list(symbol_index), exact=exact
        )

    @classmethod
    def from_columns(
        cls,
        names: list[str],
        cash: list[Decimal],
        initial: list[Decimal],
        maintenance: list[Decimal],
        q: sp.csr_matrix,
        symbols: list[str],
        exact: dict[int, dict[str, Decimal]] | None = None,
    ) -> MarginBook:
        """A book from ready columns: `q` holds quantities that floats hold exactly (or the
        account is in `exact`), its rows' column indices sorted."""
        n = len(names)
        book = cls(
            names=names,
            index={a: i for i, a in enumerate(names)},
            cash=cash,
            initial=initial,
            maintenance=maintenance,
            cash_f=np.array([float(c) for c in cash], float),
            maintenance_f=np.array([float(m) for m in maintenance], float),
            q=q,
            symbols=list(symbols),
            symbol_index={s: j for j, s in enumerate(symbols)},
            marks_f=np.full(max(1, q.shape[1]), np.nan),
            exact=exact or {},
            called=np.zeros(n, bool),
            judged=np.zeros(n, bool),
            written_equity=np.full(n, np.nan),
            written_gross=np.full(n, np.nan),
        )
        book.abs_q = abs(q)
        book.short = _short_rows(q)
        return book

    # -- symbols and marks ------------------------------------------------------------------

    def symbol(self, name: str) -> int:
        """The symbol's column, added when new."""
        j = self.symbol_index.get(name)
        if j is None:
            j = self.symbol_index[name] = len(self.symbols)
            self.symbols.append(name)
            if j >= self.q.shape[1]:
                width = max(2 * self.q.shape[1], j + 1)
                self.q.resize((self.q.shape[0], width))
                self.abs_q.resize((self.q.shape[0], width))
                grown = np.full(width, np.nan)
                grown[: len(self.marks_f)] = self.marks_f
                self.marks_f = grown
        return j

    def set_mark(self, name: str, mark: float) -> None:
        j = self.symbol_index.get(name)
        if j is not None:  # a symbol nobody here holds needs no column
            self.marks_f[j] = mark

    def set_marks(self, marks: Mapping[str, Decimal | float]) -> None:
        """Several marks at once (one vector assignment)."""
        columns = list(map(self.symbol_index.get, marks))  # in C: once per window and shard
        values = list(map(float, marks.values()))
        if None in columns:  # a symbol nobody here holds needs no column
            kept = [k for k, j in enumerate(columns) if j is not None]
            columns, values = [columns[k] for k in kept], [values[k] for k in kept]
        if columns:
            self.marks_f[columns] = values

    # -- holdings ---------------------------------------------------------------------------

    def holdings(self, i: int) -> dict[str, Decimal]:
        """Account i's non-zero holdings, exactly."""
        held = self.exact.get(i)
        if held is not None:
            return dict(held)
        return dict(self._row(i))

    def holding_items(self, i: int) -> list[tuple[str, Decimal]]:
        """`sorted(self.holdings(i).items())`, without the dict: what the exact evaluation
        reads (`domain.margin.margin_figures_sorted`)."""
        held = self.exact.get(i)
        pairs = held.items() if held is not None else self._row(i)
        return sorted(pairs, key=_symbol)  # each symbol once: the order of sorted(pairs)

    def _row(self, i: int) -> Iterator[tuple[str, Decimal]]:
        """Account i's (symbol, quantity) pairs from the matrix, non-zero, in column order. An
        account with positions in `added` has traded: it is in `exact`, not read here."""
        q = self.q
        start, stop = q.indptr[i], q.indptr[i + 1]
        columns, values = q.indices[start:stop].tolist(), q.data[start:stop].tolist()
        if 0.0 in values:  # a position closed by a fill, still in the matrix (-0.0 == 0.0)
            keep = [k for k, x in enumerate(values) if x]
            columns, values = [columns[k] for k in keep], [values[k] for k in keep]
        # In C (map) per account: the exact evaluation reads every position of it.
        names = map(self.symbols.__getitem__, columns)
        return zip(names, map(_DECIMALS.__getitem__, values), strict=True)

    def apply_fill(self, i: int, symbol: str, signed_qty: Decimal, price: Decimal) -> None:
        """A fill: holdings change by `signed_qty` (buys positive), cash by −qty·price."""
        held = self.exact.get(i)
        if held is None:
            held = self.exact[i] = self.holdings(i)  # exact from now on
        quantity = held.get(symbol, Decimal(0)) + signed_qty
        if quantity:
            held[symbol] = quantity
        else:
            held.pop(symbol, None)
        self.cash[i] -= signed_qty * price
        self.cash_f[i] = float(self.cash[i])
        self._set_float(i, self.symbol(symbol), float(quantity))
        if symbol not in self.fallback.get(i, {}):
            self.fallback.setdefault(i, {})[symbol] = price  # until the market marks it
            self.__dict__.pop("_cache_fallback_rows", None)

    def set_cash(self, i: int, cash: Decimal) -> None:
        self.cash[i] = cash
        self.cash_f[i] = float(cash)

    def set_rates(self, i: int, initial: Decimal, maintenance: Decimal) -> None:
        """Account i's margin rates changed (a reference change during the day)."""
        self.initial[i] = initial
        self.maintenance[i] = maintenance
        self.maintenance_f[i] = float(maintenance)

    def add_account(
        self, account: str, cash: Decimal, initial: Decimal, maintenance: Decimal
    ) -> int:
        """Append an account opened during the day, holding nothing; return its index.

        Rare (a reference change), so simple: the positions added since the start are folded
        into the matrix first, then every per-account column grows by one, and the caches
        derived from them are dropped."""
        self._fold()
        i = len(self.names)
        self.names.append(account)
        self.index[account] = i
        self.cash.append(cash)
        self.initial.append(initial)
        self.maintenance.append(maintenance)
        self.cash_f = np.append(self.cash_f, float(cash))
        self.maintenance_f = np.append(self.maintenance_f, float(maintenance))
        self.q = sp.vstack([self.q, sp.csr_matrix((1, self.q.shape[1]))], format="csr")
        self.q.sort_indices()
        self.abs_q = abs(self.q)
        self.short = np.append(self.short, False)
        self.called = np.append(self.called, False)
        self.judged = np.append(self.judged, False)
        self.written_equity = np.append(self.written_equity, np.nan)
        self.written_gross = np.append(self.written_gross, np.nan)
        for key in [k for k in self.__dict__ if k.startswith("_cache_") or k == "_flag_keys"]:
            del self.__dict__[key]
        return i

    def _set_float(self, i: int, j: int, value: float) -> None:
        q = self.q
        start, stop = q.indptr[i], q.indptr[i + 1]
        k = start + int(np.searchsorted(q.indices[start:stop], j))
        if k < stop and q.indices[k] == j:
            q.data[k] = value
            self.abs_q.data[k] = abs(value)
            if value < 0:
                self.short[i] = True
            return
        self.added[(i, j)] = value
        cache = self.__dict__.get("_cache_added")
        if cache is not None:
            cache.set(i, j, value)
        if len(self.added) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        """Move the positions added since the start into the matrix (one sparse sum)."""
        if not self.added:
            return
        keys = list(self.added)
        rows = np.fromiter((k[0] for k in keys), np.int64, len(keys))
        cols = np.fromiter((k[1] for k in keys), np.int64, len(keys))
        vals = np.fromiter(self.added.values(), float, len(keys))
        extra = sp.csr_matrix((vals, (rows, cols)), shape=self.q.shape)
        self.q = (self.q + extra).tocsr()
        self.q.sort_indices()
        self.abs_q = abs(self.q)
        self.short = _short_rows(self.q)
        self.added = {}
        self.__dict__.pop("_cache_added", None)
        self.__dict__.pop("_cache_entry_rows", None)

    def _added(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The positions added since the last fold as (rows, columns, quantities) arrays, kept
        up to date fill by fill (the screen reads them every window: rebuilding them from the
        dict after each fill cost more than the rest of the screen)."""
        cache = self.__dict__.get("_cache_added")
        if cache is None:
            cache = self.__dict__["_cache_added"] = _AddedArrays(self.added)
        n = cache.n
        return cache.rows[:n], cache.cols[:n], cache.quantities[:n]

    def _entry_rows(self) -> np.ndarray:
        """The row of every stored entry of the matrix (until the next fold)."""
        rows = self.__dict__.get("_cache_entry_rows")
        if rows is None or len(rows) != len(self.abs_q.data):
            rows = np.repeat(np.arange(len(self.names)), np.diff(self.abs_q.indptr))
            self.__dict__["_cache_entry_rows"] = rows
        return rows

    def fallback_marks(self, i: int) -> Mapping[str, Decimal]:
        return self.fallback.get(i, {})

    # -- the screen -------------------------------------------------------------------------

    def note(
        self,
        i: int,
        *,
        called: bool,
        judged: bool,
        flagged: frozenset[str] = frozenset(),
        rearm_at: int = 0,
        written: tuple[float, float] | None = None,
    ) -> None:
        """Record an exact evaluation's outcome, which the screen compares against.

        Args:
            flagged: the account's concentrated symbols after it.
            rearm_at: the event time from which the oldest of them may re-arm.
            written: (equity, gross value) of the row it wrote, if it wrote one.
        """
        self.called[i] = called
        self.judged[i] = judged
        if flagged:
            if self.flagged.get(i) != flagged or self.rearm_at.get(i) != rearm_at:
                self.flagged[i] = flagged
                self.rearm_at[i] = rearm_at
                self._flag_keys = None
        elif self.flagged.pop(i, None) is not None:
            self.rearm_at.pop(i, None)
            self._flag_keys = None
        if written is not None:
            self.written_equity[i], self.written_gross[i] = written

    def set_baseline(self) -> None:
        """Take every marked account's float equity and gross value at the current marks as
        what its last row said, where it has none: a row is then written once the figures
        move materially from the opening, not for every account on its first look (a million
        exact evaluations at the start)."""
        net, gross = self._values()
        take = np.isnan(self.written_equity) & ~np.isnan(net)
        self.written_equity[take] = (self.cash_f + net)[take]
        self.written_gross[take] = gross[take]

    def upgrade(self) -> None:
        """Give a book unpickled from an earlier release the attributes it lacks (its
        concentration flags were per account: they re-arm)."""
        n = len(self.names)
        d = self.__dict__
        d.pop("concentrated", None)
        d.setdefault("flagged", {})
        d.setdefault("rearm_at", {})
        d.setdefault("written_equity", np.full(n, np.nan))
        d.setdefault("written_gross", np.full(n, np.nan))

    def marked(self) -> np.ndarray:
        """Per account: every held symbol has a mark in the float columns."""
        return ~np.isnan(self._values()[0])

    def _values(self) -> tuple[np.ndarray, np.ndarray]:
        """Per account at the float marks: net Σ q·mark and gross Σ |q|·mark (NaN for an
        account holding a symbol without a mark), positions added since the start included."""
        m = self.marks_f
        net = self.q @ m
        # A row with no negative quantity has the same data in |Q| as in Q, so the same float
        # products summed in the same order: its gross is bit for bit its net. Only the rows
        # that may hold a short take the second product (the whole of it when they are many).
        # A small book takes the full product: picking rows of a sparse matrix costs more.
        short = np.flatnonzero(self.short) if len(net) > SMALL_BOOK else None
        if short is None or 4 * len(short) > len(net):
            gross = self.abs_q @ m
        else:
            gross = net.copy()
            if len(short):
                gross[short] = self.abs_q[short] @ m
        if self.added:
            rows, cols, quantities = self._added()
            vals = quantities * m[cols]
            n = len(self.names)
            net += np.bincount(rows, vals, n)
            gross += np.bincount(rows, np.abs(vals), n)
        return net, gross

    def screen(
        self,
        top_rate: float | None = None,
        concentration: tuple[float, float, int] | None = None,
        row_change: float | None = None,
        cure_band: float = 0.0,
    ) -> np.ndarray:
        """The accounts whose exact verdict may differ from their recorded state (see the
        module docstring), sorted.

        Args:
            top_rate: the highest maintenance rate a position can have (a concentration
                add-on); None: the account's own rate is the only one.
            concentration: (threshold share, re-arm share, event time now): also screen the
                concentration flags against them.
            row_change: also pick the accounts whose equity or gross value moved by more
                than this fraction of the last row's gross value.
            cure_band: a called account is cured at an excess of this × gross value.
        """
        net, gross = self._values()
        equity = self.cash_f + net
        rate = self.maintenance_f
        low = equity - rate * gross  # excess at the account's own rate
        high = low if top_rate is None else equity - np.maximum(rate, top_rate) * gross
        tol = TOLERANCE * (np.abs(self.cash_f) + gross) + 1e-6
        marked = ~np.isnan(net)
        called = self.called
        cured = low - cure_band * gross if cure_band else low
        maybe = np.where(called, cured > -tol, high < tol) | ~self.judged
        if concentration is not None:
            maybe |= self._concentration_changes(gross, *concentration)
        if row_change is not None:
            we, wg = self.written_equity, self.written_gross
            limit = row_change * np.where(wg != 0, wg, np.abs(we)) - tol
            maybe |= (np.abs(equity - we) > limit) | (np.abs(gross - wg) > limit)
            maybe |= np.isnan(we)  # no row yet: the first look writes one
        maybe &= marked
        if self.fallback:
            rows = self.__dict__.get("_cache_fallback_rows")
            if rows is None:
                rows = self.__dict__["_cache_fallback_rows"] = np.fromiter(self.fallback, np.int64)
            maybe[rows[~marked[rows]]] = True
        return np.flatnonzero(maybe)

    def _concentration_changes(
        self, gross: np.ndarray, share: float, rearm: float, now_ns: int
    ) -> np.ndarray:
        """Per account: its concentration flags may change (`assess_concentration`'s rule on
        floats, with a margin so that every account whose exact flags change is included)."""
        a = self.abs_q
        n = len(self.names)
        m = self.marks_f
        rows = self._entry_rows()
        cols = a.indices
        values = a.data * m[cols]
        if self.added:  # positions outside the matrix (fills since the last fold)
            added_rows, added_cols, quantities = self._added()
            rows = np.concatenate([rows, added_rows])
            cols = np.concatenate([cols, added_cols])
            values = np.concatenate([values, np.abs(quantities) * m[added_cols]])
        positions = np.bincount(rows[values != 0], minlength=n)  # NaN counts: unmarked anyway
        several = positions[rows] > 1
        flagged = self._flagged_entries(rows, cols)
        g = gross[rows]
        over = ~flagged & several & (values > (share - TOLERANCE) * g)
        changes = np.zeros(n, bool)
        changes[rows[over]] = True
        if self.flagged:
            # A flagged position re-arms below the re-arm share, or when it is the only one
            # left, or closed (no entry, or a zero one), once the account's oldest episode is
            # old enough (a superset of the exact rule, which asks it of each episode).
            d = self.__dict__
            ready = d["_cache_rearm_at"] <= now_ns
            held = flagged & (values != 0)
            rearmed = held & ~(several & (values >= (rearm + TOLERANCE) * g))
            changes[rows[rearmed]] |= ready[rows[rearmed]]
            closed = np.bincount(rows[held], minlength=n) < d["_cache_flag_counts"]
            changes |= closed & ready
        return changes

    def _flagged_entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Per (row, column) entry: its symbol is flagged for its account."""
        if not self.flagged:
            return np.zeros(len(rows), bool)
        width = len(self.symbols) + 1
        d = self.__dict__
        keys = d.get("_flag_keys")
        if keys is None or d.get("_flag_width") != width:
            index = self.symbol_index
            keys = np.array(
                sorted(i * width + index[s] for i, ss in self.flagged.items() for s in ss),
                np.int64,
            )
            d["_flag_keys"], d["_flag_width"] = keys, width
            n = len(self.names)
            d["_cache_flag_counts"] = np.bincount(keys // width, minlength=n)
            rearm_at = np.full(n, np.iinfo(np.int64).max, np.int64)
            for i, at in self.rearm_at.items():
                rearm_at[i] = at
            d["_cache_rearm_at"] = rearm_at
        entry = rows.astype(np.int64) * width + cols
        at = np.minimum(np.searchsorted(keys, entry), len(keys) - 1)
        return keys[at] == entry
