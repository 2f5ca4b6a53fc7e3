"""The audit benchmark: what each table of the audit flow costs a replay, next to a bare insert
of the same rows.

Printed in one run, side by side, for `market_ticks` (every published quote) and `audit_log`
(every order event with its market snapshot), and for both together:
    in the flow   `replay --flows quotes,audit` of a simulated day with the audit flow writing
                  that table only (`flows.audit.attach(tables=...)`). The CPU the table costs,
                  measured in the run: its writer thread (building the columns, inserting;
                  `*_write_cpu_us` counters), chdb's own threads, and for audit_log the records'
                  construction on the worker (`audit_record`, timed around each call). Also
                  what the replay takes more than `--flows quotes` of the same file in the same
                  run, CPU and wall: the user's view, but a difference of two ~30 s runs on a
                  shared machine, whose spread (printed) is larger than the audit's cost.
    bare insert   the same rows, read back from the flow's table and built once as one Arrow
                  table, inserted into an empty copy of the table (`CREATE TABLE … AS`): in one
                  statement and in statements of the sink's size, the cheaper, best of 3. CPU
                  is the process's (chdb's threads included) until the merges the inserts
                  started are done, as in the flow.
The figures compared are rows per CPU second, like for like: rows / the CPU the table cost in
the flow, against rows / the CPU of the bare insert; and the sink alone (writer and chdb, without
the records) against the same bare insert. chdb's start and the schema (once per process,
~1 s) happen before the timed replay and are printed apart.

Each replay runs in a process of its own (`python -m bench.audit replay …`): chdb serves one
path per process, every replay gets a fresh chdb directory, the process's CPU time is the
replay's, and no run inherits another's warm state. The four replays (quotes alone, both tables,
market_ticks alone, audit_log alone) run `--audit-rounds` times, in reverse order every other
round, and the median of each is taken (the machine's speed drifts both ways). With
market_ticks alone the order events still go to the quote shards (the audit flow is on) and are
dropped there (measured apart: no cost above the noise).

The day is `brokerflow simulate --symbols 100 --minutes 20 --orders --accounts 2000` (the
issue's), generated once into bench/data/, or `--audit-file`. Redis: the bench db, flushed
before each replay; PostgreSQL: a fresh `brokerflow_bench_audit` (dead letters); ClickHouse:
always embedded chdb under the data dir (the bare insert is chdb's own Arrow path).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import DATA_DIR, python_speed, write_result

BENCH_DATABASE = "brokerflow_bench_audit"
TABLES = ("market_ticks", "audit_log")
VARIANTS = {  # name -> (flows, audit tables)
    "quotes": (("quotes",), ()),
    "audit": (("quotes", "audit"), TABLES),
    "market_ticks": (("quotes", "audit"), ("market_ticks",)),
    "audit_log": (("quotes", "audit"), ("audit_log",)),
}
ORDER_KEYS = {"market_ticks": "ts, symbol, seq", "audit_log": "timestamp, event_id"}
COUNTERS = {"market_ticks": "ticks", "audit_log": "audit_rows"}  # the sinks' counter names
BARE_REPEATS = 3

DEFAULTS = {"symbols": 100, "minutes": 20.0, "accounts": 2_000, "rounds": 3}
QUICK = {"symbols": 20, "minutes": 5.0, "accounts": 200, "rounds": 1}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the audit benchmark's options (`--audit-*`)."""
    parser.add_argument("--audit-symbols", type=int, default=DEFAULTS["symbols"],
                        help="audit: symbols of the simulated day (default 100)")  # fmt: skip
    parser.add_argument("--audit-minutes", type=float, default=DEFAULTS["minutes"],
                        help="audit: simulated minutes (default 20)")  # fmt: skip
    parser.add_argument("--audit-accounts", type=int, default=DEFAULTS["accounts"],
                        help="audit: accounts placing orders (default 2,000)")  # fmt: skip
    parser.add_argument("--audit-rounds", type=int, default=DEFAULTS["rounds"],
                        help="audit: replays of each kind, median taken (default 3)")  # fmt: skip
    parser.add_argument("--audit-file", type=Path, metavar="FILE.fix",
                        help="audit: replay this FIX file instead of a simulated day")  # fmt: skip


def _size(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, f"audit_{name}", None)
    if value is None or value == DEFAULTS[name]:  # left at its default: --quick shrinks it
        return QUICK[name] if getattr(args, "quick", False) else DEFAULTS[name]
    return value


def ensure_day(symbols: int, minutes: float, accounts: int, say: Callable[[str], None]) -> Path:
    """Return the cached simulated day, generating it with `brokerflow simulate` if needed."""
    from brokerflow.cli import main

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"audit-day-{symbols}x{minutes:g}-{accounts}.fix"
    if path.exists():
        return path
    say(f"generating the day: brokerflow simulate --symbols {symbols} --minutes {minutes:g} "
        f"--orders --accounts {accounts} -> {path}")  # fmt: skip
    tmp = path.with_suffix(".tmp.fix")
    options = ["--symbols", str(symbols), "--minutes", f"{minutes:g}", "--orders",
               "--accounts", str(accounts), "--out", str(tmp)]  # fmt: skip
    if main(["simulate", *options]) != 0:
        msg = f"brokerflow simulate failed for {path}"
        raise RuntimeError(msg)
    for kind in ("accounts", "positions"):  # the audit flow reads neither
        tmp.with_suffix(f".{kind}.csv").unlink(missing_ok=True)
    tmp.rename(path)
    return path


# -- one replay, in a process of its own --------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _engine_cpu_s() -> float:
    """CPU seconds of this process's threads that are not Python's (chdb's own, alive now):
    Python threads keep the process's name, chdb names its threads ("ThreadPool"...)."""
    tasks = Path("/proc/self/task")
    main = Path("/proc/self/comm").read_text().strip()
    ticks = 0
    for task in tasks.iterdir():
        try:
            if (task / "comm").read_text().strip() == main:
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def replay_variant(variant: str, path: Path, config: Path | None, data_dir: Path) -> dict:
    """Replay `path` as `variant` says, in this process; return its figures.

    The stores come from the environment the parent set (BROKERFLOW_*_URL/DSN).
    """
    import functools

    import flows.audit
    from brokerflow.commands.replay import replay
    from brokerflow.settings import load_settings
    from sinks.clickhouse import migrate_clickhouse, open_store

    flows_chosen, tables = VARIANTS[variant]
    flows.audit.attach = functools.partial(flows.audit.attach, tables=tables)
    spent = [0]
    if "audit_log" in tables:
        # The records' construction on the worker thread: ~0.3 µs of clock reads per record.
        build = flows.audit.make_audit
        thread_ns = time.thread_time_ns

        def timed_record(order: object, snapshot: object) -> object:
            started = thread_ns()
            record = build(order, snapshot)
            spent[0] += thread_ns() - started
            return record

        flows.audit.make_audit = timed_record
    elif "market_ticks" in tables:
        flows.audit.make_audit = None  # the shards drop the order events: no records are made
    settings = load_settings(config, data_dir)
    rows: dict[str, int] = {}
    store = None
    start_wall = start_cpu = 0.0
    if tables:
        # The engine's start and the schema, once per process, timed apart: the store stays
        # open, so the sinks share this session (`_SessionRegistry`) instead of starting one.
        cpu0, wall0 = _cpu_s(), time.perf_counter()
        store = open_store(settings.clickhouse_url, settings.data_dir)
        migrate_clickhouse(store)
        start_wall, start_cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    try:
        engine0, cpu0, wall0 = _engine_cpu_s(), _cpu_s(), time.perf_counter()
        summary = replay([path], settings, progress=False, flows=flows_chosen)
        wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
        engine = _engine_cpu_s() - engine0
        if store is not None:
            for table in TABLES:
                rows[table] = store.query(f"SELECT count() FROM {table}")[1][0][0]
    finally:
        if store is not None:
            store.close()
    counts = summary.counts
    writers = {}
    for table in tables:
        name = COUNTERS[table]
        writers[table] = {
            "rows": counts.get(name, 0),
            "wall_s": counts.get(f"{name}_write_us", 0) / 1e6,
            "cpu_s": counts.get(f"{name}_write_cpu_us", 0) / 1e6,
        }
    return {
        "variant": variant,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "messages": summary.as_dict()["messages"],
        "quotes": summary.as_dict()["quotes"],
        "dead_letters": summary.as_dict()["dead_letters"],
        "rows": rows,
        "writers": writers,
        "audit_record_cpu_s": spent[0] / 1e9,
        "engine_cpu_s": round(engine, 3),
        "chdb_start_wall_s": round(start_wall, 3),
        "chdb_start_cpu_s": round(start_cpu, 3),
    }


def bare_inserts(chdb_dir: Path, sizes: dict[str, int], data_dir: Path) -> dict:
    """Insert the rows of each table of `chdb_dir`, built once as an Arrow table, into an empty
    copy of it: in one statement and in statements of `sizes[table]` rows, best of
    `BARE_REPEATS` each. Return per table the faster way's figures."""
    from sinks.clickhouse import AUDIT_COLUMNS, TICK_COLUMNS, ChdbStore

    columns = {"market_ticks": TICK_COLUMNS, "audit_log": AUDIT_COLUMNS}
    store = ChdbStore(chdb_dir)
    out: dict[str, Any] = {}
    try:
        for table in TABLES:
            arrow = store.query_arrow(
                f"SELECT {', '.join(columns[table])} FROM {table} ORDER BY {ORDER_KEYS[table]}"
            )
            bare = f"bare_{table}"
            store.command(f"DROP TABLE IF EXISTS {bare}")
            store.command(f"CREATE TABLE {bare} AS {table}")
            n = arrow.num_rows
            ways = {"one insert": n, f"{sizes[table]:,}-row inserts": sizes[table]}
            best: dict[str, Any] | None = None
            for way, size in ways.items():
                for _ in range(BARE_REPEATS):
                    store.command(f"TRUNCATE TABLE {bare}")
                    cpu0, wall0 = _cpu_s(), time.perf_counter()
                    for start in range(0, n, size):
                        store.insert_arrow(bare, columns[table], arrow.slice(start, size))
                    wall = time.perf_counter() - wall0
                    _settle(store, bare)  # the merges the inserts start count, as in the flow
                    cpu = _cpu_s() - cpu0
                    if best is None or cpu < best["cpu_s"]:
                        best = {"way": way, "cpu_s": round(cpu, 3), "wall_s": round(wall, 3)}
            # The same rows: the copy and the flow's table hash alike.
            check = "SELECT count(), sum(cityHash64(*)) FROM {}"
            same = store.query(check.format(table))[1] == store.query(check.format(bare))[1]
            assert best is not None
            out[table] = {**best, "rows": n, "same_rows": same}
    finally:
        store.close()
    return out


def _settle(store: Any, table: str, wait_s: float = 1.5, limit_s: float = 10.0) -> None:
    """Wait for the merges the inserts into `table` started: `wait_s` (they start within ~1 s),
    then while one runs. Few queries: each costs chdb CPU that would count as the insert's."""
    sql = "SELECT count() FROM system.merges WHERE table = {t:String}"
    time.sleep(wait_s)
    deadline = time.monotonic() + limit_s
    while store.query(sql, {"t": table})[1][0][0] and time.monotonic() < deadline:
        time.sleep(0.5)


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("replay")
    one.add_argument("variant", choices=VARIANTS)
    one.add_argument("file", type=Path)
    bare = sub.add_parser("bare")
    bare.add_argument("chdb_dir", type=Path)
    bare.add_argument("--sizes", required=True, help="JSON {table: rows per insert}")
    for p in (one, bare):
        p.add_argument("--config", type=Path)
        p.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.what == "replay":
        result = replay_variant(args.variant, args.file, args.config, args.data_dir)
    else:
        result = bare_inserts(args.chdb_dir, json.loads(args.sizes), args.data_dir)
    print(json.dumps(result))
    return 0


# -- the benchmark -------------------------------------------------------------------------------


def _run_child(argv: list[str], env: dict[str, str]) -> dict:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "bench.audit", *argv],
        cwd=root, env={**os.environ, **env}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        msg = f"bench audit: {' '.join(argv[:2])} failed: {last}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stores(settings: Any) -> tuple[str, str]:
    """The bench Redis db URL and a fresh benchmark database's DSN."""
    from urllib.parse import urlsplit, urlunsplit

    from bench.common import scratch_database
    from bench.ingest import BENCH_REDIS_DB
    from brokerflow.services import ensure_services

    endpoints = ensure_services(settings, {"redis", "postgres"})
    redis_url = urlunsplit(urlsplit(endpoints.redis_url)._replace(path=f"/{BENCH_REDIS_DB}"))
    return redis_url, scratch_database(endpoints.postgres_dsn, BENCH_DATABASE)


def _rate(rows: int, seconds: float | None) -> float | None:
    return rows / seconds if seconds and seconds > 0 else None


def _f(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def run(settings: Any, args: argparse.Namespace, say: Callable[[str], None] = _say) -> dict:
    """Run the benchmark; print the table; write bench/results/audit.json."""
    import redis

    rounds = max(1, int(_size(args, "rounds")))
    path = getattr(args, "audit_file", None)
    if path is None:
        path = ensure_day(_size(args, "symbols"), _size(args, "minutes"), _size(args, "accounts"),
                          say)  # fmt: skip
    elif not Path(path).is_file():
        from domain.errors import ConfigError

        msg = f"{path}: no such file"
        raise ConfigError(msg)  # one line from the command, before anything is measured
    path = Path(path).resolve()
    redis_url, dsn = _stores(settings)
    data_dir = Path(settings.data_dir).resolve()
    work = data_dir / "bench-audit"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = getattr(args, "config", None)
    common = ["--data-dir", str(data_dir)] + (["--config", str(config)] if config else [])
    speed_before = python_speed()
    say(f"audit: {path.name}, {rounds} round(s) of 4 replays, each in its own process with a "
        f"fresh chdb dir under {work} (python speed {speed_before:.1f} M loops/s)")  # fmt: skip

    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    kept_dir: Path | None = None
    order = list(VARIANTS)
    for round_ in range(rounds):
        for variant in order if round_ % 2 == 0 else order[::-1]:
            chdb_dir = work / f"{variant}-{round_}"
            with redis.Redis.from_url(redis_url) as client:
                client.flushdb()  # no quote already there: every run publishes the same
            env = {"BROKERFLOW_REDIS_URL": redis_url, "BROKERFLOW_POSTGRES_DSN": dsn,
                   "BROKERFLOW_CLICKHOUSE_URL": f"chdb://{chdb_dir}"}  # fmt: skip
            result = _run_child(["replay", variant, str(path), *common], env)
            say(f"  round {round_ + 1}/{rounds} {variant:<12} {result['wall_s']:7.2f} s wall "
                f"{result['cpu_s']:7.2f} s CPU  {result['messages']:,} messages, rows "
                f"{result['rows'] or '-'}")  # fmt: skip
            runs[variant].append(result)
            if variant == "audit" and kept_dir is None:
                kept_dir = chdb_dir  # the rows of the bare inserts
            else:
                shutil.rmtree(chdb_dir, ignore_errors=True)
    # Each kind's median run (by CPU; its wall: the median wall). The machine's other users
    # make single runs either slower or, when they pause, faster: the median resists both.
    median = {v: _median_run(rs) for v, rs in runs.items()}
    cpus = {v: [r["cpu_s"] for r in rs] for v, rs in runs.items()}
    assert kept_dir is not None
    say("bare inserts: the same rows, one Arrow table per table, into empty copies (best of 3)")
    sizes = {"market_ticks": 100_000, "audit_log": 50_000}  # the sinks' max_rows
    bare = _run_child(["bare", str(kept_dir), "--sizes", json.dumps(sizes), *common], {})
    shutil.rmtree(work, ignore_errors=True)
    speed_after = python_speed()

    quotes, both = median["quotes"], median["audit"]
    figures = {t: _table_figures(t, median[t], quotes, bare[t]) for t in TABLES}
    total_rows = sum(both["rows"][t] for t in TABLES)
    cost = _cost_cpu_s(both, TABLES)
    bare_cpu = sum(bare[t]["cpu_s"] for t in TABLES)
    flow_rate = _rate(total_rows, cost)
    bare_rate = _rate(total_rows, bare_cpu)
    ratio = flow_rate / bare_rate if flow_rate and bare_rate else None
    replay_cpu = both["cpu_s"] - quotes["cpu_s"]
    replay_wall = both["median_wall_s"] - quotes["median_wall_s"]
    noise = max(cpus["quotes"]) - min(cpus["quotes"])

    yardsticks: dict[str, Any] = {
        "bare_insert_rows_per_cpu_s": None if bare_rate is None else round(bare_rate),
        "ratio_to_bare_insert": None if ratio is None else round(ratio, 3),
        "audit_cpu_s": round(cost, 2),
        "audit_flow_cpu_s": round(replay_cpu, 2),
        "audit_flow_wall_s": round(replay_wall, 2),
        "quotes_only_wall_s": round(quotes["median_wall_s"], 2),
        "quotes_only_cpu_s": round(quotes["cpu_s"], 2),
        "quotes_only_cpu_spread_s": round(noise, 2),
        "quotes_audit_wall_s": round(both["median_wall_s"], 2),
        "quotes_audit_cpu_s": round(both["cpu_s"], 2),
        "audit_wall_share_of_quotes_only": round(replay_wall / quotes["median_wall_s"], 3),
        "chdb_start_cpu_s": both["chdb_start_cpu_s"],
        "chdb_start_wall_s": both["chdb_start_wall_s"],
        "messages": both["messages"],
        "quotes_published": both["quotes"],
        "dead_letters": both["dead_letters"],
        "rounds": rounds,
        "file": path.name,
        "python_loop_mops_before": round(speed_before, 1),
        "python_loop_mops_after": round(speed_after, 1),
    }
    for table, fig in figures.items():
        for key, value in fig.items():
            if value is not None:
                yardsticks[f"{table}_{key}"] = round(value, 3) if type(value) is float else value
    value = round(flow_rate) if flow_rate else 0
    out = write_result("audit", "rows/CPU s", value, None, yardsticks)
    _print(path, rounds, (speed_before, speed_after), quotes, both, figures, yardsticks)
    print(f"  both tables: {_f(flow_rate)} rows per CPU s in the flow ({cost:.2f} CPU s), "
          f"{_f(bare_rate)} bare ({bare_cpu:.3f} CPU s); ratio {_f(ratio, '.3f')}; "
          f"results in {out}")  # fmt: skip
    if not all(figures[t]["bare_same_rows"] for t in TABLES):
        print("  WARNING: a bare copy does not hash like the flow's table")
    return {"value": flow_rate, **yardsticks}


def _median_run(runs: list[dict]) -> dict:
    """The run of median CPU (the lower middle of an even count), with the median wall."""
    by_cpu = sorted(runs, key=lambda r: r["cpu_s"])
    walls = sorted(r["wall_s"] for r in runs)
    return {**by_cpu[(len(runs) - 1) // 2], "median_wall_s": walls[(len(runs) - 1) // 2]}


def _cost_cpu_s(run: dict, tables: tuple[str, ...]) -> float:
    """The CPU a replay spent on `tables`, measured in the run: the writers' threads (columns
    and inserts), chdb's own threads, and the records' construction on the worker."""
    writers = sum(run["writers"][t]["cpu_s"] for t in tables)
    return writers + run["engine_cpu_s"] + run["audit_record_cpu_s"]


def _table_figures(table: str, run: dict, quotes: dict, bare: dict) -> dict[str, Any]:
    """One table's figures from the replay that wrote only it, and its bare insert."""
    rows = run["rows"][table]
    writer = run["writers"][table]
    sink = writer["cpu_s"] + run["engine_cpu_s"]
    cost = _cost_cpu_s(run, (table,))
    bare_rate = _rate(bare["rows"], bare["cpu_s"])
    rate, sink_rate = _rate(rows, cost), _rate(rows, sink)
    return {
        "rows": rows,
        "cpu_s": round(cost, 3),
        "rows_per_cpu_s": rate,
        "sink_cpu_s": round(sink, 3),
        "sink_rows_per_cpu_s": sink_rate,
        "writer_cpu_s": round(writer["cpu_s"], 3),
        "writer_wall_s": round(writer["wall_s"], 3),
        "engine_cpu_s": run["engine_cpu_s"],
        "records_cpu_s": round(run["audit_record_cpu_s"], 3) if table == "audit_log" else None,
        "replay_cpu_s": round(run["cpu_s"] - quotes["cpu_s"], 2),
        "replay_wall_s": round(run["median_wall_s"] - quotes["median_wall_s"], 2),
        "bare_cpu_s": bare["cpu_s"],
        "bare_wall_s": bare["wall_s"],
        "bare_way": bare["way"],
        "bare_rows_per_cpu_s": bare_rate,
        "bare_same_rows": bare["same_rows"],
        "ratio": rate / bare_rate if rate and bare_rate else None,
        "sink_ratio": sink_rate / bare_rate if sink_rate and bare_rate else None,
    }


def _print(
    path: Path,
    rounds: int,
    speeds: tuple[float, float],
    quotes: dict,
    both: dict,
    figures: dict[str, dict[str, Any]],
    y: dict[str, Any],
) -> None:
    print(f"audit: {path.name}, {both['messages']:,} messages; median of {rounds} round(s); "
          f"python speed {speeds[0]:.1f} -> {speeds[1]:.1f} M loops/s")  # fmt: skip
    print(f"  replay --flows quotes        {quotes['median_wall_s']:7.2f} s wall "
          f"{quotes['cpu_s']:7.2f} s CPU (CPU varied by {y['quotes_only_cpu_spread_s']:.2f} s "
          "over the rounds)")  # fmt: skip
    print(f"  replay --flows quotes,audit  {both['median_wall_s']:7.2f} s wall "
          f"{both['cpu_s']:7.2f} s CPU: adds {y['audit_flow_wall_s']:.2f} s wall "
          f"({y['audit_wall_share_of_quotes_only']:.1%}), {y['audit_flow_cpu_s']:.2f} s CPU; "
          f"measured in the run {y['audit_cpu_s']:.2f} CPU s")  # fmt: skip
    print(f"  (chdb's start and schema, once per process, before the timed replay: "
          f"{y['chdb_start_wall_s']:.2f} s wall, {y['chdb_start_cpu_s']:.2f} s CPU)")  # fmt: skip
    print(f"  {'':<40}{'market_ticks':>20}{'audit_log':>20}")

    def line(label: str, key: str, spec: str = ",.2f") -> None:
        cells = [_f(figures[t].get(key), spec) for t in TABLES]
        print(f"  {label:<40}{cells[0]:>20}{cells[1]:>20}")

    line("rows", "rows", ",.0f")
    line("replay, this table alone: CPU s added", "replay_cpu_s")
    line("replay, this table alone: wall s added", "replay_wall_s")
    line("in the run: writer thread, wall s", "writer_wall_s")
    line("in the run: writer thread, CPU s", "writer_cpu_s")
    line("in the run: chdb's threads, CPU s", "engine_cpu_s")
    line("in the run: records (worker), CPU s", "records_cpu_s")
    line("in the flow: CPU s", "cpu_s")
    line("in the flow: rows per CPU s", "rows_per_cpu_s", ",.0f")
    line("  the sink alone: rows per CPU s", "sink_rows_per_cpu_s", ",.0f")
    line("bare insert: CPU s", "bare_cpu_s", ",.3f")
    line("bare insert: wall s", "bare_wall_s", ",.3f")
    line("bare insert: rows per CPU s", "bare_rows_per_cpu_s", ",.0f")
    print(f"  {'  how':<40}{figures['market_ticks']['bare_way']:>20}"
          f"{figures['audit_log']['bare_way']:>20}")  # fmt: skip
    line("flow / bare (rows per CPU s)", "ratio", ".3f")
    line("  the sink alone / bare", "sink_ratio", ".3f")


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
