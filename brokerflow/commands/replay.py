"""`brokerflow replay FILE… [--json]`: run every flow over FIX log files, to the end."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, Source

from brokerflow.interrupts import stop_on_signals
from brokerflow.observability import serve_metrics, with_timed_sinks
from brokerflow.runner import Progress, RunSummary, run_dataflow
from brokerflow.services import Endpoints
from brokerflow.settings import Settings, load_settings
from brokerflow.stores import prepare_stores
from connectors.file import FixLogSource, check_fix_file
from connectors.stopping import StoppableSource
from domain.circuit_breaker import BreakerOpening
from domain.errors import ConfigError
from flows.context import FlowContext
from flows.margin import shard_count
from flows.pipeline import ALL_FLOWS, build_pipeline, check_flows
from flows.placement import plan
from flows.surveillance import ACCOUNT_SHARDS
from sinks.market_status import load_breaker_opening


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "replay",
        parents=[common],
        help="run all flows over FIX log files to the end, writing to the configured stores",
        description="Replay FIX log files through the same flows that run live.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="FIX log files")
    p.add_argument("--json", action="store_true", help="make the last line a JSON summary")
    p.add_argument("--workers", "-w", type=int, default=1, help="Bytewax worker threads")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.add_argument(
        "--orders-out",
        type=Path,
        metavar="FILE",
        help="append the stop engine's child orders (FIX 35=D) to FILE, once per ClOrdID",
    )
    p.add_argument(
        "--recovery-dir",
        type=Path,
        metavar="DIR",
        help="snapshot state to DIR and resume from it after a crash (a fresh DIR starts over)",
    )
    p.add_argument(
        "--snapshot-s",
        type=float,
        default=1.0,
        metavar="S",
        help="with --recovery-dir: seconds between snapshots (default 1)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE.csv",
        help="score the surveillance alerts against labels (subject,model): precision, recall",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="MODEL.PARAM=VALUE",
        help="override a surveillance parameter, e.g. round_trips.min_round_trips=12",
    )
    p.add_argument(
        "--flows",
        "--only",
        default=",".join(ALL_FLOWS),
        help=f"comma-separated flows to run (default: all: {','.join(ALL_FLOWS)})",
    )
    add_observability_options(p)
    p.set_defaults(func=run)


log = logging.getLogger("brokerflow.run")


def add_observability_options(p: argparse.ArgumentParser) -> None:
    """`--dq/--no-dq` and `--metrics-port`, for every command that runs the flows."""
    p.add_argument(
        "--dq",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="validate sampled micro-batches with Great Expectations (default: BROKERFLOW_DQ; "
        "unset: on live, off in replays)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (default: BROKERFLOW_METRICS_PORT; 0: off)",
    )


def with_observability(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the `--dq` and `--metrics-port` flags applied, when given."""
    update = {}
    if getattr(args, "dq", None) is not None:
        update["dq"] = args.dq
    if getattr(args, "metrics_port", None) is not None:
        update["metrics_port"] = args.metrics_port
    return settings.model_copy(update=update) if update else settings


def replay(
    files: list[Path],
    settings: Settings,
    workers: int = 1,
    progress: bool = True,
    flows: tuple[str, ...] | list[str] = ALL_FLOWS,
    orders_out: Path | None = None,
    recovery_dir: Path | None = None,
    snapshot_s: float = 1.0,
) -> RunSummary:
    """Replay `files` through the chosen flows (all by default); return what happened."""
    for path in files:
        check_fix_file(path)
    return run_flows(
        FixLogSource(files),
        settings,
        "replay",
        workers=workers,
        progress=progress,
        flows=flows,
        orders_out=orders_out,
        recovery_dir=recovery_dir,
        snapshot_s=snapshot_s,
        inputs=[str(f) for f in files],
    )


def account_state(
    endpoints: Endpoints, chosen: frozenset[str] | set[str]
) -> tuple[dict | None, dict | None, dict | None]:
    """The accounts' opening state, read once before a run: margin's accounts and marks, and
    surveillance's owners (None for a flow not chosen)."""
    if not chosen & {"margin", "surveillance"}:
        return None, None, None
    from sinks.margin import load_accounts, opening_marks

    accounts = load_accounts(endpoints.postgres_dsn)
    owners = {a: o.owner for a, o in accounts.items() if o.owner}
    if "margin" not in chosen:
        return None, None, owners if "surveillance" in chosen else None
    marks = opening_marks(endpoints.redis_url, accounts)
    return accounts, marks, owners if "surveillance" in chosen else None


OPENING_FILE = "opening-state.pickle"


def run_opening_state(
    endpoints: Endpoints, chosen: frozenset[str] | set[str], recovery_dir: Path | None
) -> tuple[dict | None, dict | None, dict | None]:
    """`account_state`, read once per recovery directory: the first run saves it there, and
    every run resumed from that directory starts from it, not from the stores as the crashed
    run left them. A run killed before its first snapshot restarts from the beginning of the
    input; the opening read again then would already hold its fills (the ledger's holdings)
    and its quotes (Redis), and margin would judge the early part of the day on later books
    (the kill-and-resume test raised 87 extra CONCENTRATION alerts that way)."""
    if recovery_dir is None:
        return account_state(endpoints, chosen)
    path = recovery_dir / OPENING_FILE
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    state = account_state(endpoints, chosen)
    recovery_dir.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(f".{os.getpid()}.tmp")
    with part.open("wb") as f:
        pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)  # whole or absent, whatever kills the process
    return state


def breaker_opening(settings: Settings, endpoints: Endpoints) -> BreakerOpening | None:
    """The index circuit breaker's state as the stores hold it when the run starts
    (`FlowContext.breaker_opening`); None without a breaker configured."""
    config = settings.market_status
    symbols = [config.index_symbol] if config.index_symbol else sorted(config.basket)
    if not symbols:
        return None
    return load_breaker_opening(endpoints.postgres_dsn, endpoints.redis_url, symbols)


def run_flows(
    source: Source,
    settings: Settings,
    label: str,
    *,
    workers: int = 1,
    progress: bool = True,
    flows: tuple[str, ...] | list[str] = ALL_FLOWS,
    orders_out: Path | None = None,
    recovery_dir: Path | None = None,
    snapshot_s: float = 1.0,
    inputs: list[str] | None = None,
    live: bool = False,
    process_id: int = 0,
    addresses: list[str] | None = None,
    order_writers: tuple = (),
    stop: threading.Event | None = None,
    request_snapshot: Callable[[list[str]], None] | None = None,
) -> RunSummary:
    """Run the chosen flows over `source` in this process (one of `addresses` when given).

    `live`: the input does not end, so quiet markets are flushed by the wall clock;
    `order_writers`: where the stop engine's children go besides `orders_out`
    (`FlowContext.order_writers`); `request_snapshot`: how stale books ask the venue for a
    snapshot (`FlowContext.request_snapshot`: live FIX sessions). Ctrl-C or SIGTERM sets
    `stop`: give it when `source` watches it itself (FIX sessions log out); otherwise a
    partitioned source is made to end its input there (`connectors.stopping`). Either way the
    flows then complete as at the end of their input, and the summary counts what was done.
    """
    chosen = check_flows(flows)
    endpoints = prepare_stores(settings, chosen, process_id)
    opening, marks, owners = run_opening_state(endpoints, chosen, recovery_dir)
    ctx = FlowContext(
        settings,
        endpoints.redis_url,
        endpoints.postgres_dsn,
        live=live,
        orders_out=orders_out,
        order_writers=order_writers,
        margin_opening=opening,
        margin_marks=marks,
        breaker_opening=breaker_opening(settings, endpoints),
        recovery=recovery_dir is not None,
        owners=owners,
        workers=workers * max(1, len(addresses or ())),
        process_id=process_id,
        processes=max(1, len(addresses or ())),
        # One file: its line numbers order the events (`FlowContext.ordered_inputs`).
        ordered_inputs=int(isinstance(source, FixLogSource) and len(source.list_parts()) == 1),
        request_snapshot=request_snapshot,
    )
    if ctx.workers > 1:  # where each shard's key runs: by its data (`flows.placement`)
        parts = source.list_parts() if isinstance(source, FixedPartitionedSource) else None
        placed = plan(parts, ctx.workers, shard_count(ctx), ACCOUNT_SHARDS)
        ctx = dataclasses.replace(ctx, placement=placed)
    if stop is None:
        stop = threading.Event()
        if isinstance(source, FixedPartitionedSource):
            source = StoppableSource(source, stop)
    flow = build_pipeline(source, ctx, chosen)
    if settings.metrics_port:
        flow = with_timed_sinks(flow, ctx.stats)
        serve_metrics(settings.metrics_port, ctx.stats)
    log.info(
        "run_start",
        extra={"fields": {"run": label, "flows": sorted(chosen), "inputs": inputs or [],
                          "workers": workers, "dq": ctx.data_quality,
                          "metrics_port": settings.metrics_port}},
    )  # fmt: skip
    t0 = time.perf_counter()
    options = {"process_id": process_id, "addresses": addresses}
    with stop_on_signals(stop.set):
        if progress:
            with Progress(ctx.stats, label):
                run_dataflow(flow, workers, recovery_dir, snapshot_s, **options)
        else:
            run_dataflow(flow, workers, recovery_dir, snapshot_s, **options)
    summary = RunSummary(ctx.stats.snapshot(), time.perf_counter() - t0, inputs or [])
    log.info("run_end", extra={"fields": {"run": label, **summary.as_dict()}})
    return summary


def with_overrides(settings: Settings, overrides: list[str]) -> Settings:
    """Settings with `MODEL.PARAM=VALUE` surveillance overrides applied (checked at build)."""
    if not overrides:
        return settings
    config = {model: dict(params) for model, params in settings.surveillance.items()}
    for item in overrides:
        name, sep, value = item.partition("=")
        model, dot, param = name.partition(".")
        if not (sep and dot and model and param):
            msg = f"--set {item!r}: expected MODEL.PARAM=VALUE"
            raise ConfigError(msg)
        config.setdefault(model, {})[param] = value
    return settings.model_copy(update={"surveillance": config})


def run(args: argparse.Namespace) -> int:
    settings = with_overrides(load_settings(args.config, args.data_dir), args.overrides)
    settings = with_observability(settings, args)
    flows = [name.strip() for name in args.flows.split(",") if name.strip()]
    summary = replay(
        args.files,
        settings,
        args.workers,
        progress=not args.quiet,
        flows=flows,
        orders_out=args.orders_out,
        recovery_dir=args.recovery_dir,
        snapshot_s=args.snapshot_s,
    )
    for line in summary.lines():
        print(line)
    if args.labels:
        for line in score_labels(settings, args.labels):
            print(line)
    if args.json:
        print(json.dumps(summary.as_dict()))
    return 0


def score_labels(settings: Settings, labels: Path) -> list[str]:
    """Precision and recall per model: alerts (subject = account, else owner) against the
    labelled (subject, model) pairs. All alerts of the database count: score a fresh one."""
    import csv

    import psycopg

    from brokerflow.services import ensure_services

    with labels.open(newline="") as fh:
        truth = {(row["subject"], row["model"]) for row in csv.DictReader(fh)}
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    with psycopg.connect(dsn) as conn:
        found = {
            (account or owner, kind)
            for kind, account, owner in conn.execute(
                # a trader's price alert is not a model's finding
                "SELECT kind, account, owner FROM alerts WHERE kind <> 'PRICE_ALERT'"
            )
        }
    lines = [f"{'model':<20} {'alerts':>7} {'true':>5} {'labelled':>9} {'precision':>10} "
             f"{'recall':>7}"]  # fmt: skip
    for model in sorted({m for _, m in truth | found}):
        got = {s for s, m in found if m == model}
        want = {s for s, m in truth if m == model}
        hits = len(got & want)
        precision = f"{hits / len(got):.2f}" if got else "-"
        recall = f"{hits / len(want):.2f}" if want else "-"
        lines.append(f"{model:<20} {len(got):>7} {hits:>5} {len(want):>9} {precision:>10} "
                     f"{recall:>7}")  # fmt: skip
    return lines
