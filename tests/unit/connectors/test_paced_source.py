"""The paced source emits a given feed's messages once their event time has come (resumable)."""

from __future__ import annotations

import threading
import time

from connectors.simulated import PacedSimulatorSource
from simulator.market import MarketSimulator


def test_emits_the_feeds_due_messages_and_resumes_after_them() -> None:
    start = time.time_ns() - 60 * 1_000_000_000  # a minute ago: its first minute is due now
    expected = [m for t, m in MarketSimulator(2, 3, start).messages(limit=50)]
    source = PacedSimulatorSource(
        lambda s: MarketSimulator(2, 3, s).messages(), threading.Event(), start_ns=start
    )
    batch = source.build_part("in", "sim:market", None).next_batch()
    assert len(batch) == 1 and batch[0].lines[:50] == expected
    resumed = source.build_part("in", "sim:market", 10).next_batch()
    assert resumed[0].lines[:40] == expected[10:]
