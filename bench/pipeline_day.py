"""The pipeline benchmark's day: generated once per size and kept in bench/data/, or a user's.

Generated (`ensure_day`): `simulator.day.PipelineDaySimulator` over `symbols` symbols for the
last `minutes` minutes before the 21:00 UTC close (so that marking the close is in the day),
`accounts` accounts with their books, the simulator's default retail order rate, and:
    stops     `stops` resting stop orders: 85 % single orders built by `bench.stops.stop_specs`
              (55 % stops 40=3, 30 % stop-limits 40=4, 15 % trailing stops 40=P), 10 % the
              stop-loss legs of OCO lists (35=E 1385=1, with a take-profit limit), 5 % those of
              brackets (35=E 1385=2: entry, take-profit, stop-loss; the entry is filled). 80 % of
              the singles and OCOs rest from the open (after the 35=W snapshots), the rest and
              every bracket arrive during the day. Distances from the last trade: 0.1-5 % for
              singles (trailing offsets alike), so that some fire in a day whose prices move
              0.1-1.5 % in 20 minutes; a sell stop's account holds the stock when someone does.
    patterns  `PATTERN_PLAN`: one of each surveillance pattern (two layering episodes), at
              fixed points of the day, by distinct accounts: a handful a day, whatever the size.
              The order storm is sent twice by one account (120 orders, 4 fills), the one with
              the least cash (its own orders are small, so few partial fills): its ratio stays
              above 15 orders a trade with the account's ordinary orders of the day.
Files: `bench/data/pipeline-<size>/day.fix`, `day.accounts.csv`, `day.positions.csv` and
`day.json` (the composition). They are written to a temporary directory that is then renamed,
so a day is there whole or not at all, and the same parameters reuse it.

A user's day (`open_day`): FILE.fix with FILE.accounts.csv and FILE.positions.csv beside it (the
names `brokerflow simulate --orders` writes); its composition is counted from the file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from domain.errors import BrokerflowError
from simulator.day import PipelineDaySimulator
from simulator.market import MarketSimulator

GENERATOR_VERSION = 3  # bump when the generator changes: days of older versions are not reused
OPEN_NS = int(datetime(2026, 11, 25, 14, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
CLOSE_NS = int(datetime(2026, 11, 25, 21, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
NS_PER_S = 1_000_000_000
STOP_DISTANCE = (0.001, 0.05)  # singles: fraction of the last trade (trailing offsets alike)
OPEN_SHARE = 0.8  # share of singles and OCOs resting from the open
STOP_KINDS = {"3": "stop", "4": "stop_limit", "P": "trailing"}
#: (pattern, point of the day it starts at); the venue patterns span the whole day.
PATTERN_PLAN = (
    ("wash", 0.15), ("layering", 0.25), ("owner-wash", 0.35), ("round-trips", 0.45),
    ("otr", 0.55), ("otr", 0.58), ("layering", 0.65), ("pump-and-dump", 0.0),
    ("marking-the-close", 0.0),
)  # fmt: skip


class DayError(BrokerflowError):
    """A day cannot be benchmarked (a file missing, or nothing in it); one line says why."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class DaySpec:
    """The size of a generated day (its cache key)."""

    symbols: int = 100
    minutes: float = 20.0
    accounts: int = 2_000
    stops: int = 10_000
    seed: int = 1

    @property
    def name(self) -> str:
        return (f"pipeline-{self.symbols}s-{self.minutes:g}m-{self.accounts}a-{self.stops}st-"
                f"seed{self.seed}-v{GENERATOR_VERSION}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Day:
    """A day to replay: its FIX file, opening CSVs and composition."""

    path: Path
    accounts_csv: Path
    positions_csv: Path
    composition: dict

    @property
    def generated(self) -> bool:
        return "spec" in self.composition


def open_day(path: Path) -> Day:
    """A day given by its FIX file; its CSVs must be beside it (one-line `DayError` if not)."""
    accounts_csv = path.with_suffix(".accounts.csv")
    positions_csv = path.with_suffix(".positions.csv")
    for what, file in (("day", path), ("accounts file", accounts_csv),
                       ("positions file", positions_csv)):  # fmt: skip
        if not file.is_file():
            msg = f"bench pipeline: the {what} {file} is missing; a day needs {path.name}, " \
                  f"{accounts_csv.name} and {positions_csv.name}"  # fmt: skip
            raise DayError(msg)
    manifest = path.with_suffix(".json")
    if manifest.is_file():
        composition = json.loads(manifest.read_text())
    else:
        from bench.surveillance import count_types

        by_type = dict(sorted(count_types(path).items()))
        composition = {"messages": sum(by_type.values()), "messages_by_type": by_type}
    if not composition["messages"]:
        msg = f"bench pipeline: {path} holds no FIX messages"
        raise DayError(msg)
    return Day(path, accounts_csv, positions_csv, composition)


def ensure_day(spec: DaySpec, data_dir: Path, say: Callable[[str], None] = _say) -> Day:
    """The generated day of `spec` under `data_dir`, generated first if it is not there."""
    directory = data_dir / spec.name
    if not (directory / "day.json").is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f"{spec.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        generate(spec, tmp / "day.fix", say)
        shutil.rmtree(directory, ignore_errors=True)  # an incomplete day of an older run
        tmp.rename(directory)
    return open_day(directory / "day.fix")


def generate(spec: DaySpec, path: Path, say: Callable[[str], None] = _say) -> dict:
    """Write the day to `path` (and its CSVs and `day.json` beside it); return the composition."""
    start_ns = CLOSE_NS - round(spec.minutes * 60 * NS_PER_S)
    sim = PipelineDaySimulator(
        MarketSimulator(spec.symbols, seed=spec.seed, start_ns=start_ns, session_open_ns=OPEN_NS),
        accounts=spec.accounts,
    )
    sim.accounts_csv(path.with_suffix(".accounts.csv"))
    sim.positions_csv(path.with_suffix(".positions.csv"))
    rng = random.Random(f"pipeline-day:{spec.seed}")
    stops = _plan_stops(sim, spec.stops, start_ns, CLOSE_NS, rng)
    patterns = _plan_patterns(sim, start_ns, CLOSE_NS, rng)
    say(f"generating the pipeline day {spec.name}: {spec.symbols} symbols, {spec.minutes:g} "
        f"minutes to the close, {spec.accounts:,} accounts, {spec.stops:,} stops -> {path}")
    began = time.perf_counter()

    def progress(messages: int, ts_ns: int) -> None:
        clock = time.strftime("%H:%M:%S", time.gmtime(ts_ns // NS_PER_S))
        say(f"  {messages:,} messages, event time {clock} UTC, "
            f"{messages / (time.perf_counter() - began):,.0f} msg/s")  # fmt: skip

    summary = sim.write_file(path, minutes=spec.minutes, progress=progress, progress_every=250_000)
    composition = {
        "spec": asdict(spec),
        "generator_version": GENERATOR_VERSION,
        "start": sim.stamp(start_ns).decode(),
        "end": sim.stamp(CLOSE_NS).decode(),
        "messages": summary.messages,
        "messages_by_type": summary.by_type,
        "symbols": summary.symbols,
        "market_trades": summary.trades,
        "orders": sim.orders_sent,
        "fills": sim.fills_emitted,
        "books": dict(sorted(Counter(sim.profiles.values()).items())),
        "stops": {**{STOP_KINDS[k]: n for k, n in sorted(stops.items()) if k in STOP_KINDS},
                  "oco": stops["oco"], "bracket": stops["bracket"]},  # fmt: skip
        "stop_orders": sum(stops.values()),
        "patterns": patterns,
        "bytes": summary.bytes_written,
    }
    path.with_suffix(".json").write_text(json.dumps(composition, indent=2) + "\n")
    by_type = ", ".join(f"{k}={v:,}" for k, v in summary.by_type.items())
    say(f"  wrote {summary.messages:,} messages ({by_type}) in "
        f"{time.perf_counter() - began:.0f} s")
    return composition


def _plan_stops(sim: PipelineDaySimulator, count: int, start_ns: int, end_ns: int,
                rng: random.Random) -> Counter:  # fmt: skip
    """Schedule `count` stop orders (singles, OCO and bracket stop-losses); the returned
    counter fills in as the day is written (single stops by OrdType (40), "oco", "bracket")."""
    from bench.stops import _order_line, stop_specs  # here: `brokerflow` starts without them

    kinds: Counter = Counter()
    names = sim.market.symbols
    accounts = sim.accounts
    cash_books = [a for a in accounts if sim.profiles[a] in ("diversified", "concentrated")]
    n_oco, n_bracket = count // 10, count // 20
    span = end_ns - start_ns

    def when(open_share: float) -> int:
        if rng.random() < open_share:
            return start_ns
        return start_ns + round(span * rng.uniform(0.02, 0.95))

    def single(n: int, idx: int) -> Callable[[int], bytes]:
        def make(ns: int) -> bytes:
            symbol = names[idx]
            last = sim.market.top_of_book(idx)[4]
            spec = next(stop_specs(1, [symbol], [last], rng, *STOP_DISTANCE))
            holders = sim.holders.get(symbol) if spec.side == "2" else None
            spec = replace(spec, cl_ord_id=f"STP{n:07d}", account=rng.choice(holders or accounts))
            kinds[spec.ord_type] += 1
            return _order_line(spec, sim.client_seq(), sim.stamp(ns)).rstrip(b"\n")

        return make

    for n in range(count - n_oco - n_bracket):
        sim.at(when(OPEN_SHARE), single(n, rng.randrange(len(names))))
    for n in range(n_oco):
        symbol = names[rng.randrange(len(names))]
        account = rng.choice(sim.holders.get(symbol) or accounts)
        sim.oco(when(OPEN_SHARE), f"OCO{n:06d}", account, symbol, rng.uniform(0.005, 0.04),
                rng.uniform(0.005, 0.04))  # fmt: skip
        kinds["oco"] += 1
    for n in range(n_bracket):
        symbol = names[rng.randrange(len(names))]
        sim.bracket(when(0.0), f"BRK{n:06d}", rng.choice(cash_books or accounts), symbol, 100,
                    rng.uniform(0.01, 0.04), rng.uniform(0.003, 0.03))  # fmt: skip
        kinds["bracket"] += 1
    kinds.setdefault("oco", 0)
    kinds.setdefault("bracket", 0)
    return kinds


def _plan_patterns(sim: PipelineDaySimulator, start_ns: int, end_ns: int,
                   rng: random.Random) -> list[dict]:  # fmt: skip
    """Plant `PATTERN_PLAN`, each by its own accounts (diversified books, none shared)."""
    by_owner: dict[str, list[str]] = {}
    for account, owner in sim.owners.items():
        by_owner.setdefault(owner, []).append(account)
    pairs = [accounts[:2] for accounts in by_owner.values() if len(accounts) >= 2]
    pair = rng.choice(pairs) if pairs else sim.accounts[:2]
    singles = [a for a in sim.accounts if sim.profiles[a] == "diversified" and a not in pair]
    singles = singles or sim.accounts
    chosen = rng.sample(singles, min(len(PATTERN_PLAN), len(singles)))
    names = sim.market.symbols
    symbols = rng.sample(names, min(len(names), len(PATTERN_PLAN)))
    opening = sim.expected_ledger()  # before the first message: the opening books
    storm = [min((a for a in singles if a not in chosen), default=chosen[0],
                 key=lambda a: opening[a].cash)]  # fmt: skip
    planted = []
    for k, (pattern, point) in enumerate(PATTERN_PLAN):
        accounts = pair if pattern == "owner-wash" else [chosen[k % len(chosen)]]
        if pattern == "otr":
            accounts = storm
        at = start_ns + round((end_ns - start_ns) * point)
        planted.append(sim.plant(pattern, at, end_ns, accounts, symbols[k % len(symbols)]))
    return planted
