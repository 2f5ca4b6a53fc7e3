"""Price alerts: checks, the book against a naive scan, change_pct, delete, pickling."""

from __future__ import annotations

import pickle
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import price_alerts
from domain.price_alerts import (
    CONDITIONS,
    PriceAlert,
    PriceAlertBook,
    PriceAlertError,
    PriceAlertFired,
    check_price_alert,
)

D = Decimal


def _alert(i: int, condition: str = "ltp_above", value: str = "100", symbol: str = "AAPL"):
    return PriceAlert(i, "u1", None, symbol, condition, D(value))


# -- checks -------------------------------------------------------------------------------------


def test_check_price_alert_normalises() -> None:
    assert check_price_alert(" msft ", "ltp_below", 12) == ("MSFT", "ltp_below", D(12))
    assert check_price_alert("MSFT", "change_pct_below", -2.5) == ("MSFT", "change_pct_below",
                                                                   D("-2.5"))  # fmt: skip


@pytest.mark.parametrize(
    ("symbol", "condition", "value", "field"),
    [
        ("", "ltp_above", "1", "symbol"),
        ("NOPE", "ltp_above", "1", "symbol"),  # not in the known symbols
        ("A B", "ltp_above", "1", "symbol"),
        ("AAPL", "ltp_sideways", "1", "condition"),
        ("AAPL", None, "1", "condition"),
        ("AAPL", "ltp_above", "abc", "value"),
        ("AAPL", "ltp_above", "-1", "value"),
        ("AAPL", "ltp_above", "0", "value"),
        ("AAPL", "change_pct_above", "nan", "value"),
        ("AAPL", "change_pct_above", "inf", "value"),
        ("AAPL", "ltp_above", True, "value"),
        ("AAPL", "ltp_above", None, "value"),
    ],
)
def test_check_price_alert_bad_input_names_the_field(symbol, condition, value, field) -> None:
    with pytest.raises(PriceAlertError) as info:
        check_price_alert(symbol, condition, value, known_symbols={"AAPL", "MSFT"})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_check_price_alert_negative_change_pct_is_fine() -> None:
    assert check_price_alert("AAPL", "change_pct_below", "-3")[2] == D(-3)


# -- the book -----------------------------------------------------------------------------------


def test_book_ltp_above_and_below_fire_once() -> None:
    book = PriceAlertBook()
    assert book.add(_alert(1, "ltp_above", "101"))
    assert book.add(_alert(2, "ltp_below", "99"))
    assert book.on_price("AAPL", 100.0, None, 1) == []
    fired = book.on_price("AAPL", 101.0, None, 2)  # at the level counts
    assert [(f.id, f.symbol, f.ltp, f.threshold, f.ts) for f in fired] == [
        (1, "AAPL", 101.0, 101.0, 2)
    ]
    assert book.on_price("AAPL", 102.0, None, 3) == []
    assert [f.id for f in book.on_price("AAPL", 98.0, None, 4)] == [2]
    assert len(book) == 0 and book.on_price("AAPL", 1.0, None, 5) == []
    frame = fired[0].with_alert(_alert(1, "ltp_above", "101")).frame()
    assert frame == {"type": "price_alert", "id": 1, "symbol": "AAPL", "condition": "ltp_above",
                     "value": 101.0, "ltp": 101.0, "ts": 2}  # fmt: skip


def test_book_other_symbols_do_not_fire() -> None:
    book = PriceAlertBook()
    book.add(_alert(1, "ltp_above", "10", symbol="MSFT"))
    assert book.on_price("AAPL", 1000.0, None, 1) == []
    assert [f.id for f in book.on_price("MSFT", 10.5, None, 2)] == [1]


def test_book_change_pct_waits_for_prev_close() -> None:
    book = PriceAlertBook()
    book.add(_alert(1, "change_pct_above", "2"))
    book.add(_alert(2, "change_pct_below", "-5"))
    assert book.on_price("AAPL", 1000.0, None, 1) == []  # no close yet: held aside
    assert len(book) == 2
    assert book.on_price("AAPL", 101.0, 100.0, 2) == []  # +1 %
    fired = book.on_price("AAPL", 102.5, 100.0, 3)
    assert [f.id for f in fired] == [1] and fired[0].threshold == pytest.approx(102.0)
    assert [f.id for f in book.on_price("AAPL", 94.0, 100.0, 4)] == [2]


def test_book_change_pct_repriced_on_a_new_close() -> None:
    book = PriceAlertBook()
    book.add(_alert(1, "change_pct_above", "10"))
    assert book.on_price("AAPL", 105.0, 100.0, 1) == []  # threshold 110
    assert book.on_price("AAPL", 98.0, 90.0, 2) == []  # next day: threshold 99
    assert [f.id for f in book.on_price("AAPL", 100.0, 90.0, 3)] == [1]


def test_book_remove_and_no_readd() -> None:
    book = PriceAlertBook()
    book.add(_alert(1, "ltp_above", "101"))
    book.add(_alert(2, "change_pct_above", "1"))
    assert book.remove(_alert(1, "ltp_above", "101")) and not book.remove(_alert(1))
    assert book.remove(_alert(2, "change_pct_above", "1"))
    assert book.on_price("AAPL", 200.0, 100.0, 1) == []
    assert not book.add(_alert(1, "ltp_above", "101"))  # a replayed create of a gone id
    book.add(_alert(3, "ltp_above", "150"))
    assert [f.id for f in book.on_price("AAPL", 200.0, 100.0, 2)] == [3]
    assert not book.add(_alert(3, "ltp_above", "150"))  # fired: never rests again


def test_book_forgets_gone_ids_beyond_its_bound() -> None:
    book = PriceAlertBook(forget_after=2)
    for i in range(3):
        book.add(_alert(i))
        book.remove(_alert(i))
    assert book.add(_alert(0))  # forgotten (the store never offers a gone id again)
    assert not book.add(_alert(2))


def test_book_pickle_round_trip_behaves_the_same() -> None:
    rng = random.Random(3)
    book = PriceAlertBook()
    for i in range(500):
        cond = rng.choice(CONDITIONS)
        value = rng.uniform(-5, 5) if cond.startswith("change") else rng.uniform(90, 110)
        book.add(_alert(i, cond, f"{value:.2f}", rng.choice(["AAPL", "MSFT"])))
    book.on_price("AAPL", 100.0, None, 0)
    copy = pickle.loads(pickle.dumps(book))
    for t in range(300):
        sym = rng.choice(["AAPL", "MSFT"])
        px = rng.uniform(85, 115)
        a = book.on_price(sym, px, 100.0, t)
        b = copy.on_price(sym, px, 100.0, t)
        assert a == b
    assert book.ids() == copy.ids()


# -- a model: the book fires exactly what a naive scan fires ------------------------------------


class _Naive:
    def __init__(self) -> None:
        self.alerts: dict[int, PriceAlert] = {}
        self.gone: set[int] = set()

    def add(self, alert: PriceAlert) -> bool:
        if alert.id in self.alerts or alert.id in self.gone:
            return False
        self.alerts[alert.id] = alert
        return True

    def remove(self, alert_id: int) -> None:
        if self.alerts.pop(alert_id, None) is not None:
            self.gone.add(alert_id)

    def on_price(self, symbol: str, ltp: float, prev_close: float | None) -> set[int]:
        fired = set()
        for a in list(self.alerts.values()):
            if a.symbol != symbol:
                continue
            if a.condition.startswith("change_pct"):
                if prev_close is None or prev_close <= 0:
                    continue
                level = prev_close * (1.0 + float(a.value) / 100.0)
            else:
                level = float(a.value)
            if ltp >= level if a.condition.endswith("above") else ltp <= level:
                fired.add(a.id)
        for i in fired:
            del self.alerts[i]
            self.gone.add(i)
        return fired


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 200), st.sampled_from([64, 1]))
def test_book_fires_what_a_naive_scan_fires_exactly_once(seed: int, steps: int, slack: int) -> None:
    """Adds one by one and in loads, removes, replayed creates, prices and new closes, with the
    book's lanes compacted as often as they may be (slack 1) or as the book does (64)."""
    saved, price_alerts._COMPACT_SLACK = price_alerts._COMPACT_SLACK, slack
    try:
        _model_run(random.Random(seed), steps)
    finally:
        price_alerts._COMPACT_SLACK = saved


def _model_run(rng: random.Random, steps: int) -> None:
    book, naive = PriceAlertBook(), _Naive()
    symbols = ["AAPL", "MSFT", "X"]
    closes = {s: None for s in symbols}
    next_id = 0
    created: dict[int, PriceAlert] = {}
    fired_ever: list[int] = []
    for t in range(steps):
        r = rng.random()
        if r < 0.45:
            cond = rng.choice(CONDITIONS)
            if cond.startswith("change"):
                value = D(rng.randint(-80, 80)) / 10
            else:
                value = D(rng.randint(900, 1100)) / 10
            alert = PriceAlert(next_id, "u", None, rng.choice(symbols), cond, value)
            created[next_id] = alert
            next_id += 1
            assert book.add(alert) == naive.add(alert)
        elif r < 0.5:  # a load: many at once, of a new symbol or one that rests already
            sym = rng.choice(symbols + [f"NEW{t}"])
            load = []
            for _ in range(rng.randint(0, 30)):
                cond = rng.choice(CONDITIONS)
                value = (D(rng.randint(-80, 80)) / 10 if cond.startswith("change")
                         else D(rng.randint(900, 1100)) / 10)  # fmt: skip
                created[next_id] = PriceAlert(next_id, "u", None, sym, cond, value)
                load.append(created[next_id])
                next_id += 1
            if sym not in symbols:
                symbols.append(sym)
                closes[sym] = None
            expected = sum(naive.add(a) for a in load)
            rows = [(a.id, a.symbol, a.condition, float(a.value)) for a in load]
            assert book.add_many(rows) == expected
        elif r < 0.55 and next_id:
            i = rng.randrange(next_id)
            assert book.remove(created[i]) == (i in naive.alerts)
            naive.remove(i)
        elif r < 0.6 and next_id:  # a replayed create of any earlier alert
            alert = created[rng.randrange(next_id)]
            assert book.add(alert) == naive.add(alert)
        else:
            sym = rng.choice(symbols)
            if rng.random() < 0.1:
                closes[sym] = rng.choice([None, 95.0, 100.0, 105.0])
            ltp = round(rng.uniform(85, 115), 2)
            got = book.on_price(sym, ltp, closes[sym], t)
            assert {f.id for f in got} == naive.on_price(sym, ltp, closes[sym])
            fired_ever += [f.id for f in got]
        if rng.random() < 0.05:
            book = pickle.loads(pickle.dumps(book))
        assert len(book) == len(naive.alerts)
    assert len(fired_ever) == len(set(fired_ever))


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1, max_size=12),
    st.one_of(st.none(), st.text(max_size=8)),
    st.sampled_from(CONDITIONS),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(0, 2**45),
)
def test_alert_doc_is_the_alerts_own_json(
    user: str, account: str | None, condition: str, value: Decimal, ltp: float, ts: int
) -> None:
    """The sink's hand-formatted entry is byte for byte `to_alert().to_json()`: what the edge
    and the `alerts` row read, whatever the names hold (quotes, backslashes, non-ASCII)."""
    fired = PriceAlertFired(PriceAlert(42, user, account, "BRK.B", condition, value), ltp, 1.0, ts)
    alert = fired.to_alert()
    assert fired.alert_doc() == (alert.alert_id, alert.to_json())
