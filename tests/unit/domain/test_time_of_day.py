"""The session close and the marking-the-close window read one time-of-day rule (issue 22)."""

from __future__ import annotations

from datetime import time

import pytest

from domain.time_of_day import time_of_day_ns
from flows.surveillance_parameters import model_parameters

HOUR_NS = 3600 * 1_000_000_000


def test_text_and_time_give_nanoseconds_after_midnight() -> None:
    assert time_of_day_ns("21:00") == 21 * HOUR_NS
    assert time_of_day_ns("00:00") == 0
    assert time_of_day_ns(time(23, 59, 59, 999_999)) == 24 * HOUR_NS - 1_000
    assert time_of_day_ns("16:30") == time_of_day_ns(time(16, 30))


@pytest.mark.parametrize("text", ["21", "21:00:00", "noon"])
def test_anything_but_hh_mm_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        time_of_day_ns(text)


def test_marking_the_close_reads_the_same_rule() -> None:
    params = model_parameters({"marking_the_close": {"close_utc": "20:00"}})
    assert params["marking_the_close"]["close_ns_of_day"] == 20 * HOUR_NS
