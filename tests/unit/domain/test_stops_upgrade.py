"""A stop book pickled by an earlier release (a recovery snapshot) resumes.

`data/stopbook-before-bands.pickle` was written by the `domain/stops.py` of commit 16cd1d1, and
`data/stopbook-before-split.pickle` by that of commit 6ec2191 (the last before `domain.stops`
became a package: its classes are named `domain.stops.<class>`), both from `OPS_BEFORE` (see
`write_fixture`). Loaded by today's code, each must go on exactly as a book that saw the same
operations today: same outcomes for `OPS_AFTER`, same resting orders and stops.
"""

from __future__ import annotations

import pickle
from decimal import Decimal as D
from pathlib import Path

import pytest

from domain.stops import StopBook, StopOrder, Triggered

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "stopbook-before-bands.pickle"
FIXTURES = [FIXTURE, DATA / "stopbook-before-split.pickle"]
T0 = 1_764_081_000_000_000_000  # 2025-11-25 14:30 UTC


def _stop(cid: str, side: str, stop: str, **kw: object) -> StopOrder:
    return StopOrder(cid, "AAPL", side, D(10), "3", stop_px=D(stop), **kw)


def _trail(cid: str, side: str, offset: str, **kw: object) -> StopOrder:
    return StopOrder(cid, "AAPL", side, D(10), "P", peg_offset_value=D(offset), **kw)


OPS_BEFORE: list[tuple] = [
    ("quote", "AAPL", T0, D("99.9"), D("100.1"), D(100)),
    ("submit", _stop("s1", "2", "98"), T0 + 1),
    ("submit", _stop("s2", "1", "103", reference="ask"), T0 + 2),
    ("submit", _trail("t1", "2", "1.5"), T0 + 3),
    ("submit", _trail("t2", "1", "100", peg_offset_type="1"), T0 + 4),
    ("submit", _trail("t3", "2", "2", activation_px=D(101)), T0 + 5),
    ("quote", "AAPL", T0 + 6, D("100.9"), D("101.1"), D(101)),
    ("quote", "AAPL", T0 + 7, D("101.4"), D("101.6"), D("101.5")),
]
OPS_AFTER: list[tuple] = [
    ("quote", "AAPL", T0 + 8, None, None, D("102.2")),
    ("quote", "AAPL", T0 + 9, D("100.4"), D("100.6"), D("100.5")),
    ("submit", _stop("s3", "2", "99.5", reference="bid"), T0 + 10),
    ("quote", "AAPL", T0 + 11, D("99.4"), D("99.6"), D("99.5")),
    ("quote", "AAPL", T0 + 12, D("97.9"), D("98.1"), D(98)),
    ("quote", "AAPL", T0 + 13, D("102.9"), D("103.1"), D(103)),
]


def apply(book: StopBook, op: tuple) -> list:
    if op[0] == "quote":
        _, symbol, ts, bid, ask, last = op
        return book.on_quote(symbol, ts, bid=bid, ask=ask, last=last)
    return book.submit(op[1], op[2])


def write_fixture(path: Path = FIXTURE) -> None:  # run with the old domain package on sys.path
    book = StopBook()
    for op in OPS_BEFORE:
        apply(book, op)
    path.write_bytes(pickle.dumps(book, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda path: path.stem)
def test_book_pickled_by_an_earlier_release_resumes_like_a_new_one(fixture: Path) -> None:
    old = pickle.loads(fixture.read_bytes())
    new = StopBook()
    for op in OPS_BEFORE:
        apply(new, op)
    assert old.snapshot() == new.snapshot()
    outcomes = [apply(old, op) for op in OPS_AFTER]
    assert outcomes == [apply(new, op) for op in OPS_AFTER]
    assert old.snapshot() == new.snapshot()
    # By hand: t1 (sell, 1.5 behind) trailed 101.5 before the snapshot and 102.2 after it, so
    # it fires at 100.5 with its stop at 100.7; t3 (sell, 2 behind, active from 101) at 99.5;
    # the fixed stops where the price passes them (s3 on the bid, s2 on the ask).
    fired = [
        [(o.order.cl_ord_id, o.stop_px, o.trigger_px) for o in out if type(o) is Triggered]
        for out in outcomes
    ]
    assert fired == [
        [],
        [("t1", D("100.7"), D("100.5"))],
        [],
        [("t3", D("100.2"), D("99.5")), ("s3", D("99.5"), D("99.4"))],
        [("s1", D(98), D(98))],
        [("s2", D(103), D("103.1"))],
    ]
