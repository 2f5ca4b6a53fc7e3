"""`brokerflow bench` options: each benchmark gets the size its help states.

`bench margin` once took the stops benchmark's `--quotes` default (1,000,000) for its own
stream (2,000,000): the defaults a user reads in `--help` are checked against what is parsed.
"""

from __future__ import annotations

import argparse
import re

from bench import margin
from bench.command import _apply_quick
from brokerflow.cli import build_parser


def _bench_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return sub.choices["bench"]


def _stated_default(help_text: str) -> str | None:
    found = re.search(r"\(default ([^):]+)", help_text or "")
    return found.group(1).strip() if found else None


def test_bench_parsed_defaults_are_the_ones_the_help_states():
    parser = _bench_parser()
    args = build_parser().parse_args(["bench"])
    checked = set()
    for action in parser._actions:  # noqa: SLF001
        stated = _stated_default(action.help)
        if stated is None:
            continue
        parsed = getattr(args, action.dest)
        assert parsed == type(parsed)(stated.replace(",", "")), (action.option_strings, stated)
        checked.add(action.dest)
    # Every margin and surveillance size says its default.
    assert {f"margin_{k}" for k in margin.DEFAULTS} <= checked
    assert {"surv_minutes", "surv_orders_per_minute", "surv_accounts", "surv_symbols"} <= checked


def test_bench_margin_gets_its_own_sizes_not_the_stops_benchmarks():
    args = build_parser().parse_args(["bench", "margin"])
    o = margin.options(args)
    assert o == margin.DEFAULTS
    assert o["quotes"] == 2_000_000  # the stops benchmark's --quotes is 1,000,000
    assert args.quotes == 1_000_000
    # A stops size given on the command line leaves margin's alone, and the other way round.
    args = build_parser().parse_args(["bench", "--quotes", "5", "--margin-quotes", "7"])
    assert (args.quotes, margin.options(args)["quotes"]) == (5, 7)


def test_bench_quick_gives_each_benchmark_its_own_small_size():
    args = build_parser().parse_args(["bench", "--quick"])
    _apply_quick(args)
    assert (args.quotes, margin.options(args)["quotes"]) == (100_000, 50_000)
    assert margin.options(args)["accounts"] == 20_000
