"""`WatermarkMerge`: inputs read at different speeds come out in one sequence order."""

from __future__ import annotations

import random

from domain.watermarks import WatermarkMerge


def _streams(rng: random.Random, inputs: int, numbers: int) -> dict[str, list[int]]:
    """Sequence numbers 1..numbers dealt out to inputs at random (as a gateway's partitions)."""
    out: dict[str, list[int]] = {f"p{i}": [] for i in range(inputs)}
    for seq in range(1, numbers + 1):
        out[f"p{rng.randrange(inputs)}"].append(seq)
    return out


def _deliveries(rng: random.Random, streams: dict[str, list[int]]) -> list[tuple[str, list, int]]:
    """Each input's numbers in chunks of random size, the chunks of different inputs
    interleaved at random; a chunk's watermark is its input's last number so far."""
    queues = {p: list(seqs) for p, seqs in streams.items()}
    out = []
    while any(queues.values()):
        p = rng.choice([p for p, q in queues.items() if q])
        size = rng.randint(1, 5)
        chunk, queues[p] = queues[p][:size], queues[p][size:]
        out.append((p, [(s, f"m{s}") for s in chunk], chunk[-1]))
    return out


def test_any_arrival_order_releases_one_sequence_order() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        streams = _streams(rng, 4, 300)
        merge = WatermarkMerge(4)
        released: list[int] = []
        for source, items, watermark in _deliveries(rng, streams):
            got = merge.add(source, items, watermark)
            released += [s for s, _ in got]
            # Never ahead of the slowest input: what is out is a prefix of the sequence.
            assert released == list(range(1, len(released) + 1))
        released += [s for s, _ in merge.flush()]
        assert released == list(range(1, 301))
        assert merge.late == 0 and merge.held == 0


def test_nothing_is_released_before_every_input_was_heard() -> None:
    merge = WatermarkMerge(2)
    assert merge.add("a", [(1, "x"), (2, "y")], 2) == []
    assert merge.add("b", [], 5) == [(1, "x"), (2, "y")]


def test_a_slow_input_holds_back_the_numbers_it_has_not_passed() -> None:
    merge = WatermarkMerge(2)
    merge.add("a", [(1, "a1"), (4, "a4")], 4)
    assert merge.add("b", [(2, "b2")], 2) == [(1, "a1"), (2, "b2")]
    assert merge.add("b", [(3, "b3"), (6, "b6")], 6) == [(3, "b3"), (4, "a4")]
    assert merge.held == 1


def test_an_ended_input_no_longer_holds_back_the_others() -> None:
    merge = WatermarkMerge(2)
    merge.add("a", [(1, "a1")], 1)
    assert merge.add("b", [(5, "b5")], 5) == [(1, "a1")]
    assert merge.add("a", [], 1, done=True) == [(5, "b5")]


def test_an_idle_input_is_skipped_and_its_late_items_are_released_and_counted() -> None:
    merge = WatermarkMerge(2)
    merge.add("a", [], 0)
    assert merge.add("b", [(2, "b2"), (3, "b3")], 3) == []  # a has not passed 2
    assert merge.add("a", [], 0, idle=True) == [(2, "b2"), (3, "b3")]
    # a speaks again: its number 1 is late (3 is out), its 4 is in order again.
    assert merge.add("a", [(1, "a1"), (4, "a4")], 4) == [(1, "a1")]
    assert merge.late == 1
    assert merge.add("b", [(5, "b5")], 5) == [(4, "a4")]


def test_equal_numbers_of_different_inputs_go_in_the_order_of_their_names() -> None:
    # What each input flushes at its end carries its last number: the same for all of them.
    for first, second in (("b", "a"), ("a", "b")):
        merge = WatermarkMerge(2)
        merge.add(first, [(9, first)], 9, done=True)
        out = merge.add(second, [(9, second)], 9, done=True) + merge.flush()
        assert out == [(9, "a"), (9, "b")]
