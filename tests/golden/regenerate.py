"""Regenerate the golden replay digests: `python -m tests.golden.regenerate --base REV`.

Each golden day is generated, loaded and replayed by the code of REV (a git worktree of it,
`bench.worktree`), into fresh stores (a new PostgreSQL database, a reserved Redis db, a new chdb
directory), and digested by this checkout's `bench.stores_digest`. `--runs 2` replays each day
twice and stops if the two differ (a store part that is not deterministic must be left out of
the digest, with the reason, rather than kept in the golden).

Stores: the servers of BROKERFLOW_POSTGRES_DSN / BROKERFLOW_REDIS_URL, else the local ones.
Timed or not, run it under the machine's lock: `flock /tmp/brokerflow-bench.lock python -m ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench import worktree
from tests.conftest import LOCAL_POSTGRES_DSN, LOCAL_REDIS_URL, fresh_database, reserved_redis_db
from tests.golden.days import (
    DAYS,
    GOLDEN,
    Stores,
    day_hashes,
    digest_stores,
    explain,
    make_day,
    replay_day,
    write_golden,
)


def run_day(name: str, cwd: Path, tmp: Path, workers: int = 1) -> dict:
    """Generate, replay and digest day `name` with the code of `cwd`, on fresh stores."""
    day = make_day(name, tmp / "days", cwd)
    postgres = os.environ.get("BROKERFLOW_POSTGRES_DSN") or LOCAL_POSTGRES_DSN
    redis = os.environ.get("BROKERFLOW_REDIS_URL") or LOCAL_REDIS_URL
    with fresh_database(postgres) as dsn, reserved_redis_db(redis) as redis_url:
        data_dir = Path(tempfile.mkdtemp(prefix=f"golden-{name}-", dir=tmp))
        stores = Stores(dsn, redis_url, data_dir)
        summary = replay_day(day, stores, cwd, workers)
        digests = digest_stores(stores, data_dir / "digests.json")
    return {"day_sha256": day_hashes(day), "summary": summary, "digests": digests}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.golden.regenerate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--base", required=True, help="the commit whose behaviour is of record")
    p.add_argument("--worktree", type=Path, help="its worktree (default /tmp/base-<short id>)")
    p.add_argument("--runs", type=int, default=1, help="replays per day, checked equal")
    p.add_argument("--days", default=",".join(DAYS), help="comma-separated golden days")
    args = p.parse_args(argv)

    path, commit = worktree.ensure(args.base, args.worktree)
    worktree.check_shadows(path)
    print(f"golden: replaying with {commit} from {path}", file=sys.stderr)
    days = {}
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        for name in args.days.split(","):
            runs = [run_day(name, path, Path(tmp) / f"{name}-{i}") for i in range(args.runs)]
            for i, other in enumerate(runs[1:], 2):
                differ = explain(runs[0]["digests"], other["digests"])
                if differ or other["summary"] != runs[0]["summary"]:
                    print(f"golden: day {name}: run {i} differs from run 1 with the same code:",
                          *differ, file=sys.stderr, sep="\n  ")  # fmt: skip
                    return 1
            days[name] = runs[0]
            print(f"golden: day {name}: {len(runs[0]['digests'])} parts", file=sys.stderr)
    regenerate = f"python -m tests.golden.regenerate --base {args.base}"
    write_golden({"base": commit, "regenerate": regenerate, "days": days})
    print(f"golden: wrote {GOLDEN}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
