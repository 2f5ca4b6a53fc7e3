"""One account shard's margin logic without the stream engine (`domain.margin_shard`): marks
judged per window of event time, the counts through the callback, and the state that the
flow's snapshots pickle (also under its old name, `flows.margin.AccountShard`)."""

from __future__ import annotations

import pickle
from decimal import Decimal as D

from domain.margin import ConcentrationRule, MarginPolicy
from domain.margin_shard import AccountShard, MarginEffects, MarginShard
from sinks.margin import OpeningAccount

MS = 1_000_000
WINDOW = 250 * MS
T0 = 1_764_000_000_000_000_000  # a multiple of the window


def shard_of(counts: dict[str, int]) -> MarginShard:
    def count(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    shard = MarginShard(
        MarginPolicy(concentration=()), ConcentrationRule(), D("0.01"), WINDOW, 0.02, None, count
    )
    opening = [OpeningAccount("A1", "alice", D(-600), D("0.50"), D("0.30"), {"XYZ": D(100)})]
    shard.load(opening, {"XYZ": D("10.00")})
    return shard


def mark(px: str, ts: int) -> tuple[str, D, int, float]:
    return ("XYZ", D(px), ts, float(px))


def test_a_window_of_marks_is_judged_when_event_time_passes_its_end():
    counts: dict[str, int] = {}
    shard = shard_of(counts)
    effects = MarginEffects()
    marks = [mark("9.00", T0 + 10 * MS), mark("8.00", T0 + 20 * MS)]
    shard.marks(marks, 0, len(marks), effects)
    assert effects.alerts == [] and effects.rows == []  # the window is still open
    shard.advance(T0 + WINDOW, effects)
    assert [a.kind for a in effects.alerts] == ["MARGIN_CALL"]
    [row] = effects.rows
    assert (row.account, row.state, row.equity, row.event_ns) == (
        "A1", "CALL", D("200.00"), T0 + 20 * MS,
    )  # fmt: skip
    assert counts == {"margin_screened": 1, "margin_evaluations": 1}


def test_the_end_judges_the_open_window():
    shard = shard_of({})
    effects = MarginEffects()
    shard.marks([mark("8.00", T0 + 10 * MS)], 0, 1, effects)
    shard.end(T0 + 30 * MS, effects)
    assert [a.kind for a in effects.alerts] == ["MARGIN_CALL"]
    assert shard.state.window_end is None


def test_the_state_pickles_and_old_snapshots_name_it_in_flows_margin():
    from flows import margin as margin_flow

    assert margin_flow.AccountShard is AccountShard
    shard = shard_of({})
    shard.marks([mark("8.00", T0 + 10 * MS)], 0, 1, MarginEffects())
    resumed = shard_of({})
    resumed.state = pickle.loads(pickle.dumps(shard.state))
    a, b = MarginEffects(), MarginEffects()
    shard.advance(T0 + WINDOW, a)
    resumed.advance(T0 + WINDOW, b)
    assert a == b and a.alerts
