"""The pipeline benchmark: the product as users run it, every flow on one day, one process.

`brokerflow bench pipeline` replays one day (`bench.pipeline_day`: market data, retail order
flow over realistic books, resting stops of every kind, surveillance patterns) through
`brokerflow replay`'s code (`replay()`, in a process of its own: `bench.pipeline_run`), into
real stores made fresh for each replay: its own PostgreSQL database (the day's accounts and
positions loaded by `brokerflow load`'s code), its own Redis db (reserved, flushed) and a fresh
chdb directory. Replays of the same file, in this order (the first two alternating for
`--pipeline-rounds`, 3 by default, each figure the median round's: one replay on a shared
2-core machine varies by ±15 %, and the ratio of two single replays by more):
    quotes only   `--flows quotes`: the yardstick the issue names
    all flows     the six flows, as `brokerflow replay FILE` runs them (child orders to a file,
                  as `--orders-out` does): msg/s (the figure), latencies, alerts by kind
    profiled      the six flows again, sampled by two py-spy processes (`SAMPLERS`): each
                  flow's share of the CPU (`bench.cpu_shares` over the GIL's holder) and of the
                  Bytewax worker's wall time (its thread sampled waiting or not: a chdb query
                  or a commit the worker waits for holds no GIL, so only this shows it); and
                  the profilers' cost (the msg/s against the replay before); skipped with
                  `--no-pipeline-profile`
msg/s is the replay's own figure (messages over the dataflow's run, as `replay` prints it).

The profiler: `py-spy record --nonblocking --rate 100 --format raw --gil` on the replay's
process. --gil: samples only the thread that holds the GIL. The replay is GIL-bound (one core
of Python; the writer threads mostly wait on I/O), so its GIL time is its throughput, and a
share of GIL samples is a share of what limits msg/s. Without --gil, py-spy also counts threads
it sees as running without the GIL (a writer inside libpq or chdb) and a thread in the moment
between releasing and retaking the GIL, which double-counts wall time on the second core.
Both at once on the quick day: 367 samples with --gil, 571 without; the extra were chdb queries
running outside the GIL (chdb's Connection.query 13.7 % of the samples against 4.9 %), the
ledger writer's COPY waiting on PostgreSQL and threads waiting on a condition. What runs outside
the GIL shows as `cpu_cores_used` (the replay's CPU time over its wall time) instead.
--nonblocking: the process is never paused (a blocking sample stops it 100 times a second).
The profiled replay's msg/s is reported next to the unprofiled one (`profiler_overhead_pct`);
the figure is always the unprofiled replay's.

Bad input stops the benchmark with one line, before anything is measured: a day's file,
accounts or positions missing, a bad CSV row, positions of unknown accounts, no accounts. It
never reports an empty pipeline: it refuses a run that processed no message, booked no execution
where the day has execution reports, or (a generated day) raised no alert or fired no stop.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from bench import common
from bench.cpu_shares import attribute, shares_pct, shares_text, top_frames
from bench.pipeline_day import Day, DayError, DaySpec, ensure_day, open_day
from brokerflow.commands.load import ACCOUNTS, POSITIONS, load_rows, read_accounts, read_positions
from brokerflow.services import ensure_services
from brokerflow.settings import Settings
from sinks.clickhouse import is_embedded

GOAL_MSGS_PER_S = 40_000
GOAL_RATIO = 0.6  # all flows against the quotes-only replay of the same file
BENCH_DATABASE = "brokerflow_bench_pipeline"
REDIS_DBS = range(13, 0, -1)  # 14 and 15 are other benchmarks' (unreserved); tests take 1 up
REDIS_LOCK_MS = 2 * 3600 * 1000
PROFILE_RATE = 100
PROFILE_GIL = True  # see the module docstring


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `--pipeline-*` options of `brokerflow bench`."""
    default = DaySpec()
    p.add_argument("--pipeline-symbols", type=int, default=default.symbols,
                   help="pipeline: symbols of the generated day")  # fmt: skip
    p.add_argument("--pipeline-minutes", type=float, default=default.minutes,
                   help="pipeline: simulated minutes (the last ones before the close)")  # fmt: skip
    p.add_argument("--pipeline-accounts", type=int, default=default.accounts,
                   help="pipeline: accounts (with their books)")  # fmt: skip
    p.add_argument("--pipeline-stops", type=int, default=default.stops,
                   help="pipeline: resting stop orders of every kind")  # fmt: skip
    p.add_argument("--pipeline-seed", type=int, default=default.seed, help="pipeline: seed")
    p.add_argument("--pipeline-day", type=Path, metavar="FILE.fix",
                   help="pipeline: replay this day instead (FILE.accounts.csv and "
                        "FILE.positions.csv beside it, as `simulate --orders` writes "
                        "them)")  # fmt: skip
    p.add_argument("--pipeline-rounds", type=int, default=3,
                   help="pipeline: rounds of (quotes only, all flows), alternating; each figure "
                        "is the median round's (one replay on a shared machine varies by "
                        "±15 %%)")  # fmt: skip
    p.add_argument("--pipeline-profile", action=argparse.BooleanOptionalAction, default=True,
                   help="pipeline: a third, profiled replay for each flow's CPU share")  # fmt: skip


# -- the stores --------------------------------------------------------------------------------


@contextmanager
def reserved_redis_db(server_url: str) -> Iterator[str]:
    """A db of the server's 1..13, reserved with the test suite's lock key (tests/conftest.py)
    so no test flushes it meanwhile; yields its URL, releases it at the end."""
    base = urlsplit(server_url)
    lock_client = redis.Redis.from_url(urlunsplit(base._replace(path="/0")))
    token = secrets.token_hex(8)
    db = next((n for n in REDIS_DBS
               if lock_client.set(f"brokerflow:test-db-lock:{n}", token, nx=True,
                                  px=REDIS_LOCK_MS)), None)  # fmt: skip
    if db is None:
        lock_client.close()
        msg = "bench pipeline: no free Redis db in 1..13 (all reserved by tests)"
        raise DayError(msg)
    try:
        yield urlunsplit(base._replace(path=f"/{db}"))
    finally:
        key = f"brokerflow:test-db-lock:{db}"
        if lock_client.get(key) == token.encode():
            lock_client.delete(key)
        lock_client.close()


@contextmanager
def bench_stores(settings: Settings, database: str) -> Iterator[Callable[[Day], Settings]]:
    """Yield `fresh(day) -> Settings`: stores made empty for one replay (a new database with the
    day's accounts and positions, the reserved Redis db flushed, an empty chdb directory)."""
    endpoints = ensure_services(settings, {"redis", "postgres"})
    clickhouse_url = settings.clickhouse_url
    chdb_dir = None
    if is_embedded(clickhouse_url):
        chdb_dir = (settings.data_dir / "bench-pipeline-clickhouse").resolve()
        clickhouse_url = f"chdb://{chdb_dir}"
    with reserved_redis_db(endpoints.redis_url) as redis_url:

        def fresh(day: Day) -> Settings:
            accounts = read_accounts(day.accounts_csv)  # a bad row: LoadError, one line
            positions = read_positions(day.positions_csv)
            if not accounts:
                msg = f"bench pipeline: {day.accounts_csv} has no accounts"
                raise DayError(msg)
            dsn = common.scratch_database(endpoints.postgres_dsn, database)
            load_rows(dsn, ACCOUNTS, accounts, str(day.accounts_csv))
            load_rows(dsn, POSITIONS, positions, str(day.positions_csv))  # unknown accounts
            with redis.Redis.from_url(redis_url) as client:
                client.flushdb()
            if chdb_dir is not None:
                shutil.rmtree(chdb_dir, ignore_errors=True)
            return settings.model_copy(update={
                "postgres_dsn": dsn, "redis_url": redis_url, "clickhouse_url": clickhouse_url,
                "metrics_port": 0, "dq": None,
            })  # fmt: skip

        yield fresh


# -- one replay --------------------------------------------------------------------------------


def _py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        msg = "bench pipeline: py-spy is not installed (`make venv` installs it; or give " \
              "--no-pipeline-profile)"  # fmt: skip
        raise DayError(msg)
    return found


def _expect(proc: subprocess.Popen, word: str, what: str) -> None:
    line = proc.stdout.readline()
    if line.strip() != word:
        proc.kill()
        msg = f"bench pipeline: the {what} stopped before it was {word} (see above)"
        raise DayError(msg)


#: The two samplers of the profiled replay: the GIL's holder (each flow's CPU share), and every
#: thread, waiting or not (the Bytewax worker's wall time: `WORKER_THREAD`).
SAMPLERS = {"gil": ["--gil"] if PROFILE_GIL else [], "threads": ["--idle", "--threads"]}
WORKER_THREAD = "): MainThread"  # `--threads` names each stack's thread first: "thread (id): name"


class _Profiler:
    """py-spy sampling a process until `stop()`; its raw samples go to `path`."""

    def __init__(self, pid: int, path: Path, flags: list[str]) -> None:
        command = [_py_spy(), "record", "--nonblocking", "--rate", str(PROFILE_RATE),
                   "--format", "raw", "--full-filenames", "--output", str(path),
                   "--pid", str(pid), *flags]  # fmt: skip
        self.path = path
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)  # fmt: skip
        first = self.proc.stdout.readline()  # "py-spy> Sampling process 100 times a second…"
        if "Sampling" not in first:
            rest = first + self.proc.stdout.read()
            msg = f"bench pipeline: py-spy could not sample the replay: {rest.strip()[:300]}"
            raise DayError(msg)

    def stop(self) -> list[str]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=300)
        return self.path.read_text().splitlines() if self.path.is_file() else []


def replay_day(
    settings: Settings, day: Day, flows: tuple[str, ...], workdir: Path, label: str,
    profile: bool = False,
) -> dict:  # fmt: skip
    """Replay the day in a fresh `bench.pipeline_run` process; return what it wrote, with the
    samplers' raw samples under "profile" (`SAMPLERS`' names; empty unless `profile`) and the
    wall time the samplers covered under "wall_s"."""
    settings_file = workdir / f"{label}.settings.json"
    settings_file.write_text(settings.model_dump_json(exclude={"edge_secret"}))
    out = workdir / f"{label}.json"
    orders_out = workdir / f"{label}.orders.fix"
    # The order file is a store like the others: a round that found the last round's file
    # would send no child (the file says they were sent) and do less work.
    orders_out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.pipeline_run", "--settings", str(settings_file),
               "--day", str(day.path), "--flows", ",".join(flows),
               "--orders-out", str(orders_out), "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    profilers: dict[str, _Profiler] = {}
    samples: dict[str, list[str]] = {}
    try:
        _expect(proc, "ready", f"{label} replay")
        for name, flags in SAMPLERS.items() if profile else ():
            profilers[name] = _Profiler(proc.pid, workdir / f"{label}.{name}.txt", flags)
        started = time.perf_counter()
        proc.stdin.write("\n")
        proc.stdin.flush()
        _expect(proc, "done", f"{label} replay")
        wall_s = time.perf_counter() - started  # what the profile covers
        while profilers:
            name, profiler = profilers.popitem()
            samples[name] = profiler.stop()
        proc.stdin.write("\n")
        proc.stdin.flush()
        if proc.wait() != 0:
            msg = f"bench pipeline: the {label} replay failed (exit {proc.returncode}; see above)"
            raise DayError(msg)
    finally:
        for profiler in profilers.values():
            profiler.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.read_text())
    result["profile"] = samples
    result["wall_s"] = round(wall_s, 2)
    return result


# -- what the run did --------------------------------------------------------------------------


def alert_counts(dsn: str) -> dict:
    """Alerts by kind, their subjects by kind (accounts; owners for the alerts about an owner's
    accounts together), and the most CONCENTRATION alerts one account (and one position) got:
    what shows a flood."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT kind, count(*), count(DISTINCT coalesce(account, owner)) FROM alerts"
            " GROUP BY kind ORDER BY kind"
        ).fetchall()
        per_account, per_position = conn.execute(
            "SELECT coalesce(max(a), 0), coalesce(max(p), 0) FROM"
            " (SELECT count(*) a FROM alerts WHERE kind = 'CONCENTRATION' GROUP BY account) x,"
            " (SELECT count(*) p FROM alerts WHERE kind = 'CONCENTRATION'"
            "  GROUP BY account, symbol) y"
        ).fetchone() or (0, 0)
        stop_rows = dict(conn.execute(
            "SELECT status, count(*) FROM stop_orders GROUP BY status ORDER BY status"
        ).fetchall())  # fmt: skip
    return {
        "by_kind": {kind: n for kind, n, _ in rows},
        "accounts_by_kind": {kind: accounts for kind, _, accounts in rows},
        "concentration_max_per_account": per_account,
        "concentration_max_per_position": per_position,
        "stop_orders_by_status": stop_rows,
    }


def refusal(day: Day, summary: dict, alerts: dict) -> str | None:
    """Why this run must not be reported (an empty pipeline), or None."""
    by_type = day.composition.get("messages_by_type", {})
    if not summary["messages"]:
        return "the replay processed no message"
    if summary["dead_letters"] * 2 > summary["messages"]:
        return (f"{summary['dead_letters']:,} of the {summary['messages']:,} messages were "
                "dead letters")
    if by_type.get("8") and not summary["executions"]:
        return f"the day has {by_type['8']:,} execution reports (35=8) and the run booked none"
    if day.generated:
        if not alerts["by_kind"]:
            return "the day has planted patterns and stops, and the run raised no alert"
        stop_orders = day.composition.get("stop_orders", 0)
        if stop_orders and not summary["stops"].get("triggered"):
            return f"none of the day's {stop_orders:,} stop orders fired"
    return None


def _rate(run: dict) -> float:
    return run["summary"]["messages"] / max(run["summary"]["seconds"], 1e-9)


def _text(counts: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"


def run(settings: Settings, args: argparse.Namespace, say: Callable[[str], None] = _say,
        database: str = BENCH_DATABASE) -> dict:  # fmt: skip
    """Run the benchmark; print the table; write bench/results/pipeline.json."""
    from flows.pipeline import ALL_FLOWS  # here: `brokerflow` starts without every flow

    speed = round(common.python_speed(), 1)
    if args.pipeline_day is not None:
        day = open_day(args.pipeline_day)
    else:
        spec = DaySpec(args.pipeline_symbols, args.pipeline_minutes, args.pipeline_accounts,
                       args.pipeline_stops, args.pipeline_seed)  # fmt: skip
        day = ensure_day(spec, common.DATA_DIR, say)
    composition = day.composition
    rounds = max(1, args.pipeline_rounds)
    pair = (("quotes-only", ("quotes",), False), ("all-flows", ALL_FLOWS, False))
    plan = [step for _ in range(rounds) for step in pair]  # alternating: drift hits both
    if args.pipeline_profile:
        _py_spy()  # missing: one line now, not after two replays
        plan.append(("all-flows-profiled", ALL_FLOWS, True))
    timed: dict[str, list[dict]] = {}
    alerts: dict = {}
    with bench_stores(settings, database) as fresh, \
            tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:  # fmt: skip
        for label, flows, profile in plan:
            run_settings = fresh(day)  # bad CSVs stop here, before a line is printed
            if not timed:
                say(f"pipeline: {day.path} ({composition['messages']:,} messages: "
                    f"{_text(composition['messages_by_type'])}); python {speed} M loops/s")
            say(f"== pipeline {label}: replay --flows {','.join(flows)}"
                + (" under py-spy" if profile else ""))  # fmt: skip
            done = replay_day(run_settings, day, flows, Path(tmp), label, profile)
            timed.setdefault(label, []).append(done)
            say(f"== pipeline {label}: {_rate(done):,.0f} msg/s over "
                f"{done['summary']['seconds']:.1f} s")  # fmt: skip
            if label == "all-flows":
                alerts = alert_counts(run_settings.postgres_dsn)
                problem = refusal(day, done["summary"], alerts)
                if problem:
                    raise DayError(f"bench pipeline: not measured: {problem} ({day.path})")
    runs = {label: median_run(done) for label, done in timed.items()}
    return report(day, runs, alerts, speed, timed)


def median_run(runs: list[dict]) -> dict:
    """The run of median msg/s (the upper one of an even count)."""
    return sorted(runs, key=_rate)[len(runs) // 2]


def report(
    day: Day, runs: dict[str, dict], alerts: dict, speed: float,
    timed: dict[str, list[dict]] | None = None,
) -> dict:
    """Print the table and write the result file; return the yardsticks. `runs` holds the
    median round of each label, `timed` every round."""
    full, bare = runs["all-flows"], runs["quotes-only"]
    summary = full["summary"]
    rate, bare_rate = _rate(full), _rate(bare)
    latency = full["latency"]
    composition = day.composition
    yardsticks: dict = {
        "messages": summary["messages"],
        "seconds": summary["seconds"],
        "quotes_only_msgs_per_s": round(bare_rate),
        "quotes_only_seconds": bare["summary"]["seconds"],
        "ratio_to_quotes_only": round(rate / bare_rate, 3),
        "goal_ratio_to_quotes_only": GOAL_RATIO,
        "cpu_cores_used": round(full["cpu_s"] / max(summary["seconds"], 1e-9), 2),
        "quote_latency_p50_ms": latency["quote"]["p50_ms"],
        "quote_latency_p99_ms": latency["quote"]["p99_ms"],
        "alert_latency_p50_ms": latency["alert"]["p50_ms"],
        "alert_latency_p99_ms": latency["alert"]["p99_ms"],
        "latency_samples": {"quote": latency["quote"]["samples"],
                            "alert": latency["alert"]["samples"],
                            "alerts_judged_at_end_of_input":
                                latency["alert"]["judged_at_end_of_input"]},  # fmt: skip
        "alert_latency_by_kind": latency["alert_by_kind"],
        "alerts_by_kind": alerts["by_kind"],
        "alerts_total": sum(alerts["by_kind"].values()),
        "alerts_text": _text(alerts["by_kind"]),
        "alert_accounts_by_kind": alerts["accounts_by_kind"],
        "concentration_max_alerts_per_account": alerts["concentration_max_per_account"],
        "concentration_max_alerts_per_position": alerts["concentration_max_per_position"],
        "executions": summary["executions"],
        "quotes_published": summary["quotes"],
        "dead_letters": summary["dead_letters"],
        "stops": summary["stops"],
        "stop_orders_by_status": alerts["stop_orders_by_status"],
        "child_orders_out": summary["orders_out"],
        "day": {k: composition[k] for k in ("spec", "start", "end", "messages_by_type", "books",
                                             "stops", "stop_orders") if k in composition},
        "patterns_planted": [f"{p['pattern']} {'/'.join(p['accounts'])} {p['symbol']}"
                             for p in composition.get("patterns", [])],  # fmt: skip
        "python_loop_mops": speed,
    }
    if timed is not None:
        quotes_rates = [round(_rate(r)) for r in timed["quotes-only"]]
        full_rates = [round(_rate(r)) for r in timed["all-flows"]]
        yardsticks.update({
            "rounds": len(full_rates),
            "quotes_only_round_msgs_per_s": quotes_rates,
            "all_flows_round_msgs_per_s": full_rates,
            "round_ratios": [round(f / q, 3) for f, q in zip(full_rates, quotes_rates,
                                                             strict=True)],
            # every round does the same work: the same children sent (a check on the rounds)
            "all_flows_round_child_orders_out": [r["summary"]["orders_out"]
                                                 for r in timed["all-flows"]],
        })  # fmt: skip
    profiled = runs.get("all-flows-profiled")
    if profiled is not None:
        flows, frames = attribute(profiled["profile"]["gil"])
        pct = shares_pct(flows)
        worker = [line for line in profiled["profile"]["threads"] if WORKER_THREAD in line]
        worker_flows, worker_frames = attribute(worker)
        worker_pct = shares_pct(worker_flows)
        profiled_rate = _rate(profiled)
        yardsticks.update({
            "cpu_share_pct": pct,
            "cpu_shares": shares_text(pct),
            "cpu_top_frames": top_frames(frames),
            # the Bytewax worker's wall time by flow, waits on the stores included (a chdb
            # query or a commit it waits for holds no GIL, so the CPU shares do not show it)
            "worker_wall_share_pct": worker_pct,
            "worker_wall_shares": shares_text(worker_pct),
            "worker_top_frames": top_frames(worker_frames, 8),
            "profile_samples": sum(flows.values()),
            # GIL samples over the samples the replay's wall time allows: the rest of the time
            # no thread of the replay ran Python (waiting on a store, a chdb query outside the
            # GIL, or for a core)
            "gil_held_pct": round(100 * sum(flows.values()) / (PROFILE_RATE * profiled["wall_s"]),
                                  1),  # fmt: skip
            "profiler": f"py-spy record --nonblocking --rate {PROFILE_RATE} --format raw, "
                        + " and ".join(" ".join(f) or "all threads" for f in SAMPLERS.values()),
            "profiled_msgs_per_s": round(profiled_rate),
            "profiler_overhead_pct": round(100 * (rate / profiled_rate - 1), 1),
            "profiled_run_same_alerts": profiled["summary"]["alerts"] == summary["alerts"],
        })  # fmt: skip
    out = common.write_result("pipeline", "msg/s", round(rate), GOAL_MSGS_PER_S, yardsticks)
    _print(day, yardsticks, rate, out)
    return {"value": round(rate), **yardsticks}


def _print(day: Day, y: dict, rate: float, out: Path) -> None:
    books = day.composition.get("books")
    rows = [
        ("all six flows", f"{rate:,.0f} msg/s", f"goal >= {GOAL_MSGS_PER_S:,}; "
         f"{y['messages']:,} messages in {y['seconds']:.1f} s, {y['cpu_cores_used']} cores"),
        ("quotes only, same file", f"{y['quotes_only_msgs_per_s']:,} msg/s",
         f"{y['quotes_only_seconds']:.1f} s"),
        ("all flows / quotes only", f"{y['ratio_to_quotes_only']:.2f}", f"goal >= {GOAL_RATIO}"),
        *([("rounds: all flows / quotes only, msg/s",
            f"{y['rounds']} (medians above)",
            "; ".join(f"{f:,} / {q:,}" for f, q in zip(y["all_flows_round_msgs_per_s"],
                                                       y["quotes_only_round_msgs_per_s"],
                                                       strict=True)))]
          if "rounds" in y else []),
        ("quote latency p50 / p99 (chunk read -> Redis)",
         f"{y['quote_latency_p50_ms']:,} / {y['quote_latency_p99_ms']:,} ms",
         f"{y['latency_samples']['quote']:,} samples"),
        ("alert latency p50 / p99 (chunk read -> stream)",
         f"{y['alert_latency_p50_ms']:,} / {y['alert_latency_p99_ms']:,} ms",
         f"{y['latency_samples']['alert']:,} alerts; "
         f"{y['latency_samples']['alerts_judged_at_end_of_input']} judged at the end"),
        ("executions / quotes / dead letters",
         f"{y['executions']:,} / {y['quotes_published']:,} / {y['dead_letters']:,}", ""),
        ("stops", _text(y["stops"]), f"{y['child_orders_out']:,} child orders out"),
    ]  # fmt: skip
    for kind, n in y["alerts_by_kind"].items():
        rows.append((f"  alerts {kind}", f"{n:,}",
                     f"{y['alert_accounts_by_kind'][kind]:,} accounts"))  # fmt: skip
    rows.append(("  CONCENTRATION max per account / position",
                 f"{y['concentration_max_alerts_per_account']} / "
                 f"{y['concentration_max_alerts_per_position']}", ""))  # fmt: skip
    if "cpu_share_pct" in y:
        rows.append(("share by flow: CPU (GIL samples) / worker's wall time", "", ""))
        for flow, share in y["cpu_share_pct"].items():
            rows.append((f"  {flow}", f"{share:.1f} % / {y['worker_wall_share_pct'][flow]:.1f} %",
                         ""))  # fmt: skip
        rows.append(("profiled replay", f"{y['profiled_msgs_per_s']:,} msg/s",
                     f"profiler overhead {y['profiler_overhead_pct']} %, "
                     f"{y['profile_samples']:,} samples ({y['profiler']})"))  # fmt: skip
        rows.append(("  GIL held", f"{y['gil_held_pct']:.1f} %",
                     "of the profiled replay's wall time"))  # fmt: skip
    print(f"pipeline: {day.path.name}" + (f", books {_text(books)}" if books else ""))
    for name, value, note in rows:
        print(f"  {name:<48} {value:>20}  {note}")
    if "cpu_top_frames" in y:
        print("  where the CPU goes (deepest flow frame of the GIL's holder):")
        for line in y["cpu_top_frames"]:
            print(f"    {line}")
        print("  where the worker's time goes (waits included):")
        for line in y["worker_top_frames"]:
            print(f"    {line}")
    met = rate >= GOAL_MSGS_PER_S and y["ratio_to_quotes_only"] >= GOAL_RATIO
    print(f"  machine speed: {y['python_loop_mops']} M Python loop iterations/s at the start")
    print(f"  {'meets' if met else 'MISSES'} the goals; results in {out}")
