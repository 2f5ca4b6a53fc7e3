"""`domain.frozen.fast_factory` builds the very objects the dataclass `__init__` builds."""

import pickle
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from domain.events import MarketDataSnapshot, MdEntry
from domain.frozen import fast_factory


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: int = 7


def test_builds_what_init_builds_defaults_included() -> None:
    make = fast_factory(Point, ("x", "y"))
    assert make(1, 2) == Point(1, 2) and type(make(1, 2)) is Point
    assert make(1) == Point(1) and make(x=3, y=4) == Point(3, 4)
    with pytest.raises(FrozenInstanceError):
        make(1).x = 2  # type: ignore[misc]
    assert hash(make(1, 2)) == hash(Point(1, 2))


def test_domain_events_round_trip() -> None:
    entry = fast_factory(MdEntry, ("entry_type", "action", "price", "size", "entry_id"))
    built = entry("0", "1", 1.5, 2.0, None)
    assert built == MdEntry("0", "1", 1.5, 2.0, None)
    assert pickle.loads(pickle.dumps(built)) == built
    snapshot = fast_factory(
        MarketDataSnapshot, ("symbol", "ts_event", "entries", "rpt_seq", "crossed")
    )
    assert snapshot("A", 1, (built,)) == MarketDataSnapshot("A", 1, (built,))


def test_refuses_what_it_cannot_mimic() -> None:
    with pytest.raises(TypeError, match="fields"):
        fast_factory(Point, ("y", "x"))

    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError

    @dataclass(frozen=True)
    class WithDict:
        x: int

    @dataclass(frozen=True, slots=True)
    class WithFactory:
        x: list = field(default_factory=list)

    for cls in (Checked, WithDict, WithFactory):
        with pytest.raises(TypeError):
            fast_factory(cls, ("x",))
