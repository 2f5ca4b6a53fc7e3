"""The columnar margin book: exact holdings back out, fills, and the screen's guarantee that
an account it leaves out has the verdict its recorded state says."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.margin import (
    ConcentrationRule,
    MarginPolicy,
    WrittenFigures,
    assess_concentration,
    margin_figures,
    row_is_material,
)
from domain.margin_book import FOLD_AT, MarginBook, OpeningRow

NO_ADD_ON = MarginPolicy(concentration=())
R = (D("0.50"), D("0.30"))


def book_of(*rows: tuple[str, str, dict[str, str]], marks: dict[str, str]) -> MarginBook:
    book = MarginBook.build(
        OpeningRow(a, D(cash), *R, {s: D(q) for s, q in held.items()}) for a, cash, held in rows
    )
    for s, px in marks.items():
        book.set_mark(s, float(px))
    return book


def test_holdings_come_back_exactly_and_awkward_quantities_are_kept_exact():
    book = book_of(
        ("A", "-100", {"XYZ": "100", "ABC": "-2.5", "ZZZ": "0"}),
        ("B", "0", {"XYZ": "0.1000000000000000055511151231257827"}),  # no float holds it
        marks={},
    )
    assert book.holdings(0) == {"XYZ": D(100), "ABC": D("-2.5")}
    assert book.holdings(1) == {"XYZ": D("0.1000000000000000055511151231257827")}
    assert book.holding_items(0) == [("ABC", D("-2.5")), ("XYZ", D(100))]  # by symbol
    assert sorted(book.symbols) == ["ABC", "XYZ"]  # ZZZ (0) is not a position


def test_fills_change_cash_and_holdings_and_add_columns():
    book = book_of(("A", "1000", {"XYZ": "10"}), marks={"XYZ": "5"})
    book.apply_fill(0, "XYZ", D(-10), D("5.5"))  # sold out
    book.apply_fill(0, "NEW", D(3), D("7"))  # a symbol the book had never seen
    assert book.holdings(0) == {"NEW": D(3)}
    assert book.cash[0] == D(1000) + D(55) - D(21)
    assert book.fallback_marks(0) == {"XYZ": D("5.5"), "NEW": D(7)}
    assert "NEW" in book.symbols and book.marks_f.shape[0] >= len(book.symbols)


def test_screen_finds_the_breach_the_cure_and_the_first_full_marking():
    # A: 1,000 XYZ, cash -8,000. At 12 equity 4,000 >= 3,600; at 11 3,000 < 3,300.
    # B: holds QQQ too, which has no mark yet: never a candidate until it has one.
    book = book_of(
        ("A", "-8000", {"XYZ": "1000"}),
        ("B", "-8000", {"XYZ": "1000", "QQQ": "100"}),
        marks={"XYZ": "12"},
    )
    book.judged[:] = book.marked()
    assert book.judged.tolist() == [True, False]
    assert book.screen().tolist() == []
    book.set_mark("XYZ", 11.0)
    assert book.screen().tolist() == [0]
    book.note(0, called=True, judged=True)
    assert book.screen().tolist() == []  # still called: nothing new
    book.set_mark("QQQ", 50.0)
    assert book.screen().tolist() == [1]  # B has a verdict to give now
    book.note(1, called=False, judged=True)
    book.set_mark("XYZ", 12.0)
    assert book.screen().tolist() == [0]  # A may be cured


def test_screen_flags_concentration_changes_when_asked():
    book = book_of(("A", "10000", {"XYZ": "100", "ABC": "100"}), marks={"XYZ": "10", "ABC": "10"})
    book.judged[:] = True
    assert book.screen(concentration=(0.75, 0.70, 0)).tolist() == []
    book.set_mark("XYZ", 40.0)  # 4,000 of 5,000: 80 %
    assert book.screen().tolist() == []
    assert book.screen(concentration=(0.75, 0.70, 0)).tolist() == [0]
    book.note(0, called=False, judged=True, flagged=frozenset({"XYZ"}))
    assert book.screen(concentration=(0.75, 0.70, 0)).tolist() == []  # flagged: nothing new
    book.set_mark("XYZ", 28.0)  # 2,800 of 3,800: 73.7 %, under 75 % but above the re-arm 70 %
    assert book.screen(concentration=(0.75, 0.70, 0)).tolist() == []
    book.set_mark("XYZ", 20.0)  # 2,000 of 3,000: 66.7 %: re-armed
    assert book.screen(concentration=(0.75, 0.70, 0)).tolist() == [0]


def test_screen_flags_concentration_of_positions_added_by_fills():
    book = book_of(("A", "10000", {"XYZ": "100", "ABC": "100"}), marks={"XYZ": "10", "ABC": "10"})
    book.judged[:] = True
    book.apply_fill(0, "NEW", D(10), D(10))  # 100 of 2,100: far under the threshold
    book.set_mark("NEW", 10.0)
    assert book.added and book.screen(concentration=(0.75, 0.70, 0)).tolist() == []
    book.set_mark("NEW", 1000.0)  # 10,000 of 12,000: 83 %
    assert book.screen(concentration=(0.75, 0.70, 0)).tolist() == [0]


def test_screen_re_arms_a_closed_concentrated_position_once_its_episode_is_old():
    others = ("ABC", "DEF", "GHI", "JKL", "MNO")  # 20 % each once XYZ is sold
    book = book_of(("A", "0", {"XYZ": "300", **dict.fromkeys(others, "100")}),
                   marks=dict.fromkeys(("XYZ", *others), "10"))  # fmt: skip
    book.judged[:] = True
    book.note(0, called=False, judged=True, flagged=frozenset({"XYZ"}), rearm_at=60)
    book.apply_fill(0, "XYZ", D(-300), D(10))  # sold out: a flag on a closed position
    assert book.screen(concentration=(0.25, 0.20, 59)).tolist() == []  # too young
    assert book.screen(concentration=(0.25, 0.20, 60)).tolist() == [0]


def test_accounts_marked_at_the_opening_take_their_opening_figures_as_their_row():
    book = book_of(("A", "0", {"XYZ": "100"}), ("B", "0", {"QQQ": "1"}), marks={"XYZ": "10"})
    book.judged[:] = book.marked()
    book.set_baseline()  # A: 1,000 / 1,000; B holds an unmarked symbol: no baseline
    assert book.screen(row_change=0.01).tolist() == []
    book.set_mark("XYZ", 10.05)
    assert book.screen(row_change=0.01).tolist() == []
    book.set_mark("XYZ", 10.2)
    assert book.screen(row_change=0.01).tolist() == [0]


def test_screen_picks_accounts_whose_figures_moved_past_the_row_change():
    book = book_of(("A", "0", {"XYZ": "100"}), ("B", "0", {"XYZ": "1"}), marks={"XYZ": "10"})
    book.judged[:] = True
    book.note(0, called=False, judged=True, written=(1000.0, 1000.0))
    assert book.screen(row_change=0.01).tolist() == [1]  # no row yet: a look writes one
    book.note(1, called=False, judged=True, written=(10.0, 10.0))
    book.set_mark("XYZ", 10.05)  # +0.5 %
    assert book.screen(row_change=0.01).tolist() == []
    book.set_mark("XYZ", 10.2)  # +2 %
    assert book.screen(row_change=0.01).tolist() == [0, 1]
    assert book.screen().tolist() == []


def test_a_fill_that_turns_a_long_short_is_screened_at_its_gross_value():
    # A: long 100 XYZ, then sells 200 at 10: short 100, cash 12,000. At 100: equity 2,000,
    # gross 10,000, requirement 3,000: a breach that a gross taken as the net (-10,000) hides.
    book = book_of(("A", "10000", {"XYZ": "100"}), ("B", "0", {"XYZ": "1"}), marks={"XYZ": "10"})
    book.judged[:] = True
    book.apply_fill(0, "XYZ", D(-200), D(10))
    book.set_mark("XYZ", 100.0)
    assert book.screen().tolist() == [0]
    net, gross = book._values()
    assert (net.tolist(), gross.tolist()) == ([-10_000.0, 100.0], [10_000.0, 100.0])


def test_the_screens_values_are_the_two_full_products_bit_for_bit():
    rows = [
        ("L", "0", {"A": "3", "B": "0.1", "C": "7"}),
        ("S", "0", {"A": "-3", "B": "0.1", "C": "7"}),
        ("M", "0", {"B": "0.7", "C": "0.3", "D": "-0.2"}),
        ("N", "0", {"C": "1e-7", "D": "123456789"}),
    ]
    book = book_of(*rows, marks={"A": "0.1", "B": "0.3", "C": "1.7", "D": "2.9"})
    net, gross = book._values()
    m = book.marks_f
    assert net.tobytes() == (book.q @ m).tobytes()
    assert gross.tobytes() == (book.abs_q @ m).tobytes()


def test_the_screen_values_every_fill_made_since_its_last_look():
    # Positions added by fills live outside the matrix until the fold; the screen reads them
    # every window, so they must be right after each fill: new positions and changed ones.
    book = book_of(("A", "0", {"XYZ": "1"}), ("B", "0", {"XYZ": "-2"}), marks={"XYZ": "10"})
    fills = [(0, "NEW", "3"), (1, "NEW", "-1"), (0, "NEW", "2"), (1, "OTH", "4"),
             (0, "XYZ", "-1"), (1, "NEW", "1"), (0, "OTH", "-7")]  # fmt: skip
    marks = {"XYZ": 10.0, "NEW": 5.0, "OTH": 0.5}
    for i, symbol, qty in fills:
        book.apply_fill(i, symbol, D(qty), D(1))
        book.set_mark(symbol, marks[symbol])
        net, gross = book._values()
        for account in (0, 1):
            held = book.holdings(account)
            assert net[account] == sum(float(q) * marks[s] for s, q in held.items())
            assert gross[account] == sum(abs(float(q)) * marks[s] for s, q in held.items())
    assert book.added  # the fills above were all read from outside the matrix


def test_positions_added_by_fills_are_folded_into_the_matrix():
    n = FOLD_AT + 10
    book = book_of(*((f"A{i}", "0", {"XYZ": "1"}) for i in range(n)), marks={"XYZ": "1"})
    for i in range(n):
        book.apply_fill(i, f"S{i % 7}", D(2), D(3))
    assert len(book.added) < FOLD_AT
    assert book.holdings(5) == {"XYZ": D(1), "S5": D(2)}
    for i in range(7):
        book.set_mark(f"S{i}", 3.0)
    book.judged[:] = True
    # every account: cash -6, 1 + 6 of positions, gross 7: excess 1 - 2.1 < 0: all candidates
    assert book.screen().tolist() == list(range(n))


@settings(max_examples=200, deadline=None)
@given(
    accounts=st.lists(
        st.tuples(
            st.integers(-50_000, 100_000),
            st.dictionaries(st.sampled_from("ABCDE"), st.integers(-500, 500), min_size=1),
        ),
        min_size=1,
        max_size=6,
    ),
    before=st.dictionaries(st.sampled_from("ABCDE"), st.integers(1, 50_000), min_size=5),
    after=st.dictionaries(st.sampled_from("ABCDE"), st.integers(1, 50_000)),
    add_on=st.booleans(),
    cure_band=st.sampled_from([D(0), D("0.02")]),
)
def test_an_account_the_screen_leaves_out_keeps_its_verdict(
    accounts, before, after, add_on, cure_band
):
    policy = (
        MarginPolicy(cure_band=cure_band)
        if add_on
        else MarginPolicy(concentration=(), cure_band=cure_band)
    )
    top = float(max(r for _, r in policy.concentration)) if add_on else None
    rows = [
        OpeningRow(f"A{i}", D(cash), *R, {s: D(q) for s, q in held.items()})
        for i, (cash, held) in enumerate(accounts)
    ]
    book = MarginBook.build(rows)
    marks = {s: D(c).scaleb(-2) for s, c in before.items()}

    def verdicts(called: list[bool] | None = None) -> list[bool]:
        # A called account stays called until its excess passes the cure band.
        out = []
        for i, r in enumerate(rows):
            f = margin_figures(r.cash, book.holdings(i), marks, *R, policy)
            stays = called is not None and called[i] and f.excess < cure_band * f.gross_value
            out.append(f.in_deficit or stays)
        return out

    for s, px in marks.items():
        book.set_mark(s, float(px))
    for i, called in enumerate(verdicts()):  # the state an exact evaluation recorded
        book.note(i, called=called, judged=True)
    marks |= {s: D(c).scaleb(-2) for s, c in after.items()}
    for s, px in marks.items():
        book.set_mark(s, float(px))
    candidates = set(book.screen(top, cure_band=float(cure_band)).tolist())
    for i, called in enumerate(verdicts(book.called.tolist())):
        assert i in candidates or called == bool(book.called[i])


@settings(max_examples=300, deadline=None)
@given(
    accounts=st.lists(
        st.tuples(
            st.integers(-50_000, 100_000),
            st.dictionaries(st.sampled_from("ABCDE"), st.integers(-500, 500), min_size=1),
        ),
        min_size=1,
        max_size=6,
    ),
    fills=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from("ABCDEF"), st.integers(-300, 300)),
        max_size=6,
    ),
    later_fills=st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from("ABCDEF"), st.integers(-300, 300)),
        max_size=6,
    ),
    before=st.dictionaries(st.sampled_from("ABCDEF"), st.integers(1, 50_000), min_size=6),
    after=st.dictionaries(st.sampled_from("ABCDEF"), st.integers(1, 50_000)),
    now_s=st.sampled_from([30, 7200]),
)
def test_an_account_the_screen_leaves_out_keeps_its_flags_and_its_row(
    accounts, fills, later_fills, before, after, now_s
):
    """Concentration flags (with hysteresis and the wait before re-arming) and row
    materiality: what an exact evaluation of every account would change, the screen picks
    (fills add positions outside the matrix, or close flagged ones)."""
    rule = ConcentrationRule(D("0.25"), D("0.05"), 60 * 10**9)
    change = D("0.01")
    rows = [
        OpeningRow(f"A{i}", D(cash), *R, {s: D(q) for s, q in held.items()})
        for i, (cash, held) in enumerate(accounts)
    ]
    book = MarginBook.build(rows)

    def fill(trades) -> None:
        for i, symbol, quantity in trades:
            if i < len(rows) and quantity:
                book.apply_fill(i, symbol, D(quantity), D(10))
        book.fallback.clear()  # every symbol gets a market mark below

    fill(fills)
    marks = {s: D(c).scaleb(-2) for s, c in before.items()}

    def figures(i: int):
        return margin_figures(book.cash[i], book.holdings(i), marks, *R, NO_ADD_ON)

    for s, px in marks.items():
        book.set_mark(s, float(px))
    written, flagged = {}, {}
    for i in range(len(rows)):
        f = figures(i)
        flagged[i], _ = assess_concentration(f, {}, rule, 0)
        written[i] = WrittenFigures("NORMAL", None, f.equity, f.gross_value)
        book.note(i, called=f.in_deficit, judged=True, flagged=frozenset(flagged[i]),
                  rearm_at=rule.rearm_after_ns,
                  written=(float(f.equity), float(f.gross_value)))  # fmt: skip
    fill(later_fills)
    marks |= {s: D(c).scaleb(-2) for s, c in after.items()}
    for s, px in marks.items():
        book.set_mark(s, float(px))
    now = now_s * 10**9
    candidates = set(book.screen(None, (0.25, 0.20, now), 0.01).tolist())
    for i in range(len(rows)):
        if i in candidates:
            continue
        f = figures(i)
        flags, found = assess_concentration(f, flagged[i], rule, now)
        assert found == [] and flags == flagged[i]
        if i in {k for k, _, q in later_fills if q}:
            continue  # a fill writes its row at once anyway
        new = WrittenFigures("NORMAL", None, f.equity, f.gross_value)
        assert not row_is_material(written[i], new, change)


def test_an_account_added_during_the_day_is_screened_like_the_others():
    # A holds a position added by a fill (not folded yet) when C opens: both keep their rows.
    book = book_of(("A", "-8000", {"XYZ": "1000"}), marks={"XYZ": "12"})
    book.judged[:] = book.marked()
    book.apply_fill(0, "QQQ", D(10), D(50))
    book.set_mark("QQQ", 50.0)
    i = book.add_account("C", D(1000), D("0.6"), D("0.4"))
    assert (i, book.names, book.index["C"]) == (1, ["A", "C"], 1)
    assert book.screen().tolist() == [1]  # never judged: C's first look
    book.note(1, called=False, judged=True)
    assert book.screen().tolist() == []
    book.apply_fill(1, "XYZ", D(200), D(12))  # C: cash -1,400, 200 XYZ
    book.set_mark("XYZ", 5.0)  # A: -8,000 + 5,000 + 500 < 0; C: -1,400 + 1,000 < 0
    assert book.screen().tolist() == [0, 1]
    assert book.holdings(0) == {"XYZ": D(1000), "QQQ": D(10)}
    assert book.holdings(1) == {"XYZ": D(200)}
    assert book.cash[1] == D(1000) - D(2400)
    book.set_rates(1, D("0.5"), D("0.25"))
    assert (book.initial[1], book.maintenance[1], book.maintenance_f[1]) == (
        D("0.5"), D("0.25"), 0.25
    )  # fmt: skip
