"""A replay of simulated days leaves in PostgreSQL, ClickHouse and Redis exactly what the commit of
record left (issue 22: refactoring keeps every output).

Each golden day (`tests.golden.days`) is generated from its seed by this checkout, replayed with
`brokerflow load` and `brokerflow replay` as users run them into fresh stores, and digested by
`bench.stores_digest`; the digests, the replay's summary (timing left out) and the day's own
bytes must equal `replay-digests.json`, made by the base commit's code (README.md beside this
file says how to regenerate it: never from a tree whose behaviour is in question). The pipeline
day is also replayed with 2 workers, which must leave the same stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden.days import (
    Stores,
    day_hashes,
    digest_stores,
    explain,
    load_golden,
    make_day,
    replay_day,
)

pytestmark = pytest.mark.slow  # a dataflow over generated days, three times: ~20 s


@pytest.mark.parametrize(
    ("name", "workers"), [("pipeline", 1), ("status", 1), ("pipeline", 2)],
    ids=["pipeline-1w", "status-1w", "pipeline-2w"],
)  # fmt: skip
def test_replay_leaves_the_stores_of_the_base_commit(
    name: str, workers: int, pg_dsn: str, redis_db_url: str, tmp_path: Path
) -> None:
    golden = load_golden()
    expected = golden["days"][name]
    base = golden["base"][:12]
    day = make_day(name, tmp_path / "days")
    assert day_hashes(day) == expected["day_sha256"], (
        f"the simulated {name} day is not the one {base} made: the simulator's output changed "
        "(not a replay difference; the stores were not compared)"
    )
    stores = Stores(pg_dsn, redis_db_url, tmp_path / "data")
    stores.data_dir.mkdir()
    summary = replay_day(day, stores, workers=workers)
    digests = digest_stores(stores, tmp_path / "digests.json")
    differ = explain(expected["digests"], digests)
    assert not differ, f"the stores differ from {base}'s after replaying the {name} day " \
        f"with {workers} worker(s):\n  " + "\n  ".join(differ)  # fmt: skip
    assert summary == expected["summary"], f"the replay's summary differs from {base}'s"
