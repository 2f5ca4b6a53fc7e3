"""Edge layer (pure): how often each connection gets its pending quotes.

Sending costs CPU per frame (~11-15 µs with picows), not per update (~0.3 µs more for each
update inside a frame). Each edge process has a budget of frames per second; the flush period
of its connections starts at `flush_ms` (lowest latency) and lengthens, up to `flush_max_ms`,
while the frames sent per second exceed the budget: thousands of busy connections then get
fewer, fuller frames instead of a backlog. When the load falls the period shortens again.
"""

from __future__ import annotations


def next_flush_period(
    period_s: float, frames_per_s: float, budget: float, lowest_s: float, highest_s: float
) -> float:
    """The flush period after a time that sent `frames_per_s` with `period_s`.

    Frames per second fall about in proportion to a longer period (each flush of a busy
    connection sends one frame), so the period is scaled by frames/budget: up by at most 4x
    per step (a surge converges in a second), down by at most 2x, and left alone within 10 %
    of the budget so that it does not hunt.

    >>> next_flush_period(0.025, 50_000, 25_000, 0.025, 0.2)
    0.05
    >>> next_flush_period(0.025, 250_000, 25_000, 0.025, 0.2)
    0.1
    >>> next_flush_period(0.1, 5_000, 25_000, 0.025, 0.2)
    0.05
    >>> next_flush_period(0.1, 26_000, 25_000, 0.025, 0.2)
    0.1
    """
    ratio = frames_per_s / budget if budget > 0 else 0.0
    if 0.9 <= ratio <= 1.1:
        return period_s
    scaled = period_s * min(4.0, max(0.5, ratio))
    return min(highest_s, max(lowest_s, scaled))
