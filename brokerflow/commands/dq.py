"""`brokerflow dq docs [--out DIR] [--last N]`: Great Expectations Data Docs of the data-quality
suites and their latest validations (`dq_results`), as static HTML under the data dir."""

from __future__ import annotations

import argparse
from pathlib import Path

from brokerflow.settings import Settings, load_settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dq", parents=[common], help="data quality: Great Expectations Data Docs")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    docs = actions.add_parser(
        "docs", parents=[common], help="build Data Docs (static HTML); prints where"
    )
    docs.add_argument("--out", type=Path, help="directory (default: DATA_DIR/dq_docs)")
    docs.add_argument(
        "--last", type=int, default=20, help="latest validations per suite to show (default 20)"
    )
    docs.set_defaults(func=run_docs)


def policy_suites(settings: Settings) -> list:
    from quality.runner import DqPolicy

    policy = DqPolicy(
        max_age_s=settings.dq_max_event_age_s,
        max_ahead_s=settings.dq_max_event_ahead_s,
        px_band_bps=settings.dq_px_band_bps,
        symbols=frozenset(settings.instruments) if settings.instruments else None,
    )
    return policy.suites()


def run_docs(args: argparse.Namespace) -> int:
    import psycopg

    from brokerflow.stores import prepare_stores
    from quality.docs import build_docs

    settings = load_settings(args.config, args.data_dir)
    dsn = prepare_stores(settings, ()).postgres_dsn
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT run_at, suite, success, results FROM ("
            " SELECT *, row_number() OVER (PARTITION BY suite ORDER BY run_at DESC) AS n"
            " FROM dq_results) latest WHERE n <= %s ORDER BY run_at",
            (args.last,),
        ).fetchall()
    out = args.out or settings.data_dir / "dq_docs"
    index = build_docs(policy_suites(settings), rows, out)
    print(f"data docs: {index.resolve()} ({len(rows)} validations)")
    return 0
