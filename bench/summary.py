"""The whole picture in numbers: one table of every benchmark's latest result.

`brokerflow bench` (no NAME) ends with it, `brokerflow bench --summary-only` builds it from the
results already in `bench/results/`. Each row puts a benchmark's figure next to the yardstick
its issue named (measured in the same run), the ratio between them and the goal. The table is
written as `summary.json` and `SUMMARY.md` beside the results, and the README's benchmark table
is the same markdown, between two markers.

What the table claims, and no more:
- A goal is met only by the figure the goal names, over all of its samples: a latency goal
  (p99 < 1 s) is its own row, judged on the p99 of every call; a p99 over a subset (after the
  first second) is a detail, never the row's figure.
- A figure that leaves out part of the product (an engine driven without Bytewax, decoding or
  sinks) is "engine only" in the row's title, and its goal is counted apart from the others:
  "goals met" counts the figures of the product as users run it.
- A ratio divides like by like: when the yardstick's unit differs from the figure's, the row
  gives no ratio, unless the result also holds the figure in the yardstick's unit
  (`RowSpec.compare_key`, e.g. execution rows/s against a bare COPY's rows/s).
- Each row names the commit its result was measured at (`-dirty`: uncommitted product changes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "SUMMARY.md"
README_START = "<!-- bench-summary:start (brokerflow bench --summary-only rewrites this table) -->"
README_END = "<!-- bench-summary:end -->"


@dataclass(frozen=True, slots=True)
class RowSpec:
    """How one row reads a result file.

    Attributes:
        title: the row's label (the benchmark's name, or name and part).
        yardstick_key: the key in `yardsticks` of the figure to compare with; None: no yardstick.
        yardstick_label: what that yardstick is, in words.
        figure_key: the key in `yardsticks` of the row's figure; None: the result's `value`.
        unit: the figure's unit; None: the result's `unit`.
        lower_is_better: latency-like figures meet their goal from below.
        details: `str.format` templates over `yardsticks`; one whose keys are missing is left out.
        goal_key: the key in `yardsticks` of the row's goal; None: the result's `goal`.
        optional: leave the row out when its figure is missing (older results).
        yardstick_unit: the yardstick's unit when it is not the figure's; then no ratio is
            drawn unless `compare_key` gives the figure in the yardstick's unit.
        compare_key: the row's figure in the yardstick's unit, for the ratio: a key of
            `yardsticks`, or "a/b", the quotient of two of them.
        engine_only: the figure leaves out part of the product (say so in `title`); its goal
            is counted apart.
    """

    title: str
    yardstick_key: str | None
    yardstick_label: str = ""
    figure_key: str | None = None
    unit: str | None = None
    lower_is_better: bool = False
    details: tuple[str, ...] = ()
    goal_key: str | None = None
    optional: bool = False
    yardstick_unit: str | None = None
    compare_key: str | None = None
    engine_only: bool = False


# The yardstick of each benchmark is the one its issue put next to it.
SPECS: dict[str, tuple[RowSpec, ...]] = {
    "ingest": (
        RowSpec(
            "ingest", "decoder_only_msgs_per_s", "decoder alone",
            details=("{coalescing_ratio_msgs_per_quote} messages per published quote",
                     "simplefix parse loop {simplefix_parse_msgs_per_s:,.0f} msg/s",
                     "with data quality {with_dq_msgs_per_s:,.0f} msg/s"),
        ),
    ),
    "ingest-kafka": (
        RowSpec(
            "ingest-kafka", "file_replay_msgs_per_s", "file replay",
            details=("gateway {gateway_msgs_per_s:,.0f} msg/s",
                     "2 processes {kafka_2_processes_msgs_per_s:,.0f} msg/s"),
        ),
    ),
    "executions": (
        # fills/s against rows/s is no ratio: the ratio is execution rows/s end to end (one
        # row per report) against the bare COPY's rows/s.
        RowSpec(
            "executions", "bare_copy_rows_per_s", "bare COPY of the same rows",
            yardstick_unit="rows/s", compare_key="execution_rows/seconds",
            details=("{messages_per_s:,.0f} execution reports/s (one executions row each)",),
        ),
    ),
    "price-alerts": (
        # The quotes flow (replay --flows quotes) with 1,000,000 alerts in PostgreSQL / none,
        # steady state; older results (engine only) have no such row.
        RowSpec(
            "price alerts, quotes flow", "flow_msgs_per_s_no_alerts", "the same day, no alerts",
            figure_key="flow_ratio_steady", unit="quotes-flow ratio, 1,000,000 alerts / none",
            yardstick_unit="msg/s", compare_key="flow_msgs_per_s_with_alerts_steady",
            optional=True,
            details=("{flow_alerts_fired:,} of them fire during the day and are written",
                     "none firing (all far away): {flow_ratio_resting_only_steady} of without",
                     "start-up load of the alerts {flow_startup_load_s_in_run} s"),
        ),
        RowSpec(
            "price alerts, engine only", None, engine_only=True, goal_key="engine_goal",
            figure_key="engine_quotes_per_s_with_alerts", unit="quotes/s, book alone",
            details=("+{engine_extra_ns_per_quote:,.0f} ns per quote with the alerts",
                     "{engine_bytes_per_resting_alert_rss:,} B per resting alert"),
        ),
    ),
    "stops": (
        RowSpec(
            "stops end to end", "flow_no_stops_quotes_per_s", "same stream without stops",
            figure_key="flow_quotes_per_s", unit="quotes/s",
            details=("trigger p50 {flow_trigger_latency_p50_ms} ms, "
                     "p99 {flow_trigger_latency_p99_ms} ms",),
        ),
        RowSpec(
            "stops, engine only", None, engine_only=True,
            details=("trigger p50 {engine_trigger_latency_p50_us} µs, "
                     "p99 {engine_trigger_latency_p99_us} µs",
                     "{engine_bytes_per_resting_stop_rss:,} B per resting stop",
                     "{engine_stops_resting:,} resting stops"),
        ),
    ),
    "margin": (
        RowSpec(
            "margin full flow", "flow_quotes_only_messages_per_s", "the same file, quotes alone",
            figure_key="flow_messages_per_s", unit="messages/s",
            details=("replay quotes+margin, {flow_accounts:,} accounts, {flow_messages:,} "
                     "market-data messages",
                     "alerts {flow_alerts_text}"),
        ),
        RowSpec(
            "margin, engine only", "batch_full_recompute_accounts_per_s",
            "full recompute, margin_figures", yardstick_unit="accounts/s",
            figure_key="engine_quotes_per_s_sustained_min_window", unit="quotes/s",
            engine_only=True,
            details=("slowest tenth; overall {engine_quotes_per_s_overall:,.0f} quotes/s",
                     "{engine_accounts:,} accounts x {engine_holdings_per_account} holdings",
                     "no Bytewax, no decoding, no sinks"),
        ),
        RowSpec(
            "margin call p99, engine only", None, figure_key="engine_margin_call_latency_p99_ms",
            unit="ms p99 breaching quote -> alert, all calls", lower_is_better=True,
            goal_key="engine_margin_call_latency_goal_p99_ms", engine_only=True,
            details=("p50 {engine_margin_call_latency_p50_ms:,.0f} ms",
                     "{engine_margin_call_latency_samples:,} calls",
                     "p99 after the first event-time second "
                     "{engine_margin_call_latency_after_first_second_p99_ms:,.0f} ms "
                     "(a subset, not the goal's figure)"),
        ),
    ),
    "surveillance": (
        # The reports the models process (35=8 routed to them), not 35=D/F/G, which no model
        # sees; results from before that count have no `end_to_end_reports_per_s`.
        RowSpec(
            "surveillance", "models_off_reports_per_s", "same file, models off",
            figure_key="end_to_end_reports_per_s", unit="reports/s",
            details=("{reports_to_models:,} execution reports (35=8) to the models",
                     "models alone {models_alone_reports_per_s:,.0f} reports/s",
                     "RSS {rss_start_mib:,.0f} -> {rss_end_mib:,.0f} MiB"),
        ),
    ),
    "edge": (
        RowSpec(
            "edge", "bare picows broadcast p99 ms", "bare picows broadcast loop",
            unit="ms p99 XADD->client", lower_is_better=True,
            details=("{conditions}", "p50 {p50_ms_1000x10000} ms",
                     "{delivered_per_s_1000x10000:,} updates/s delivered", "{edge_steps}",
                     "alerts {alerts_received:,} of {alerts_sent:,} delivered"),
        ),
        # Issue 8's second goal, measured in the same run (bench/edge.py GOALS).
        RowSpec(
            "edge 5,000 clients", "bare_p99_ms_5000x1000", "bare picows broadcast loop",
            figure_key="p99_ms_5000x1000", unit="ms p99 XADD->client", lower_is_better=True,
            goal_key="goal_p99_ms_5000x1000", optional=True,
            details=("5000 clients x 1000/s", "p50 {p50_ms_5000x1000} ms",
                     "{delivered_per_s_5000x1000:,} updates/s delivered"),
        ),
    ),
    # Issue 19's order-status push, measured alone (`brokerflow bench edge --edge-paths orders`).
    "edge-orders": (
        RowSpec(
            "edge order status, 1,000 traders", None, unit="ms p99 report written->order frame",
            lower_is_better=True,
            details=("p50 {p50_ms} ms", "{wrong_trader_frames} frames to the wrong trader",
                     "{delivered:,} of {written:,} frames delivered"),
        ),
    ),
    "fix-session": (
        RowSpec(
            "fix-session", "file decoder (decode_lines), messages/s", "file decoder",
            details=("{design}",),
        ),
    ),
    "pipeline": (
        RowSpec(
            "pipeline, all six flows", "quotes_only_msgs_per_s", "quotes-only replay, same file",
            details=("CPU {cpu_shares}", "worker's time {worker_wall_shares}",
                     "quote latency p50 {quote_latency_p50_ms} ms, p99 {quote_latency_p99_ms} ms",
                     "alert latency p50 {alert_latency_p50_ms} ms, p99 {alert_latency_p99_ms} ms",
                     "alerts {alerts_text}", "{messages:,} messages"),
        ),
        RowSpec(
            "pipeline, all flows / quotes only", None, figure_key="ratio_to_quotes_only",
            unit="ratio", goal_key="goal_ratio_to_quotes_only", optional=True,
        ),
    ),
    # Wall clock with start-up (spawn to the last exit), the same day through Kafka either way.
    "scale-out": (
        RowSpec(
            "scale-out, 2 processes / 1", "one_process_msgs_per_s", "1 process",
            yardstick_unit="msg/s",
            details=("2 processes x 1 worker {two_processes_msgs_per_s:,.0f} msg/s, start-up "
                     "included", "messages per process {messages_per_process_text}",
                     "stores identical: {identical_stores_text}", "lost {lost:,}",
                     "{published:,} messages"),
        ),
    ),
    # Rows per CPU second: rows / the CPU a table cost in the flow (measured in the run: its
    # writer thread, chdb's threads, the records), against rows / the CPU s of a bare Arrow
    # insert of the same rows (bench/audit.py).
    "audit": (
        RowSpec(
            "audit, both tables", "bare_insert_rows_per_cpu_s", "bare Arrow insert, same rows",
            unit="rows/CPU s",
            details=("{audit_cpu_s} CPU s in the run",
                     "the replay {audit_flow_wall_s} s wall, {audit_flow_cpu_s} CPU s more than "
                     "quotes alone ({quotes_only_wall_s} s; its CPU varied "
                     "{quotes_only_cpu_spread_s} s over the rounds)", "{messages:,} messages"),
        ),
        RowSpec(
            "audit: market_ticks", "market_ticks_bare_rows_per_cpu_s",
            "bare Arrow insert, same rows", figure_key="market_ticks_rows_per_cpu_s",
            unit="rows/CPU s", optional=True,
            details=("{market_ticks_rows:,} rows", "writer {market_ticks_writer_cpu_s} + chdb "
                     "{market_ticks_engine_cpu_s} CPU s"),
        ),
        RowSpec(
            "audit: audit_log", "audit_log_bare_rows_per_cpu_s",
            "bare Arrow insert, same rows", figure_key="audit_log_rows_per_cpu_s",
            unit="rows/CPU s", optional=True,
            details=("{audit_log_rows:,} rows", "records {audit_log_records_cpu_s} + writer "
                     "{audit_log_writer_cpu_s} + chdb {audit_log_engine_cpu_s} CPU s",
                     "the sink alone {audit_log_sink_rows_per_cpu_s:,.0f} rows/CPU s"),
        ),
    ),
    # `brokerflow run` over live FIX sessions, its process tree's CPU (bench/run_cpu.py), against
    # the same measured before the idle polling was removed.
    "run-cpu": (
        RowSpec(
            "run CPU, market idle", "baseline_idle_cpu_pct", "before the fix",
            lower_is_better=True,
            details=("baseline at {baseline_commit:.10}",
                     "server CPU not counted: postgres {idle_postgres_cpu_pct} %, "
                     "redis {idle_redis_cpu_pct} %"),
        ),
        RowSpec(
            "run CPU, demo's rate", "baseline_rate_cpu_pct", "before the fix",
            figure_key="rate_cpu_pct", lower_is_better=True, goal_key="goal_rate_cpu_pct",
            details=("{rate_msgs_per_s:,.0f} msg/s read",
                     "server CPU not counted: postgres {rate_postgres_cpu_pct} %, "
                     "redis {rate_redis_cpu_pct} %"),
        ),
    ),
}


def _details(templates: tuple[str, ...], yardsticks: dict[str, Any]) -> list[str]:
    # Keys with spaces cannot be format fields: offer every simple key under its own name.
    # An empty or None value counts as missing.
    fields = {
        k: v for k, v in yardsticks.items() if re.fullmatch(r"\w+", k) and v not in (None, "")
    }
    out = []
    for template in templates:
        try:
            out.append(template.format(**fields))
        except (KeyError, ValueError, TypeError):
            continue  # a quick run or an older result without that figure
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _compared(key: str, yardsticks: dict[str, Any]) -> float | None:
    """The figure named by a `compare_key`: one key, or "a/b" (None when either is missing)."""
    top, _, bottom = key.partition("/")
    a = _number(yardsticks.get(top))
    if not bottom:
        return a
    b = _number(yardsticks.get(bottom))
    return a / b if a is not None and b else None


def _counts_text(value: Any) -> str | None:
    """{"MARGIN_CALL": 20, "MARGIN_CALL_CURED": 15} as "MARGIN_CALL 20, MARGIN_CALL_CURED 15";
    [1200, 800] as "1,200 / 800"; True as "yes". None for other values."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and value and all(_number(v) is not None for v in value):
        return " / ".join(fmt(v) for v in value)
    if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
        return None
    return ", ".join(f"{k} {v:,}" for k, v in value.items()) or "none"


def build_rows(result: dict[str, Any], source: str = "") -> list[dict[str, Any]]:
    """The summary rows of one result file (`bench/results/NAME.json`)."""
    name = str(result.get("name", source))
    yardsticks = result.get("yardsticks") or {}
    unit = str(result.get("unit", ""))
    specs = SPECS.get(name) or (
        RowSpec(name, None, lower_is_better=bool(re.search(r"\bms\b|latency|seconds", unit))),
    )
    rows = []
    for spec in specs:
        raw = result.get("value") if spec.figure_key is None else yardsticks.get(spec.figure_key)
        figure = _number(raw)
        if figure is None and spec.optional:
            continue
        yardstick = _number(yardsticks.get(spec.yardstick_key)) if spec.yardstick_key else None
        goal = _number(
            result.get("goal") if spec.goal_key is None else yardsticks.get(spec.goal_key)
        )
        # Like for like only: a yardstick in another unit gives no ratio, unless the result has
        # the figure in the yardstick's unit too.
        if spec.compare_key is not None:
            compared = _compared(spec.compare_key, yardsticks)
        elif spec.yardstick_unit is None:
            compared = figure
        else:
            compared = None
        ratio = compared / yardstick if compared is not None and yardstick else None
        met = None
        if figure is not None and goal is not None:
            met = figure <= goal if spec.lower_is_better else figure >= goal
        alerts = result.get("alerts") if isinstance(result.get("alerts"), dict) else {}
        # "p99 ms XADD->client, 1000 clients x 10000/s": the part after the comma says at what.
        conditions = unit.split(", ", 1)[1] if ", " in unit else None
        extra = {"design": _design(yardsticks), "conditions": conditions,
                 "edge_steps": _steps(result),
                 **{f"alerts_{k}": v for k, v in alerts.items()},
                 **{f"{k}_text": t for k, v in yardsticks.items()
                    if (t := _counts_text(v)) is not None}}  # fmt: skip
        details = _details(spec.details, {**yardsticks, **extra})
        rows.append({
            "benchmark": spec.title,
            "figure": figure,
            "unit": spec.unit or unit,
            "yardstick_name": spec.yardstick_label if spec.yardstick_key else None,
            "yardstick": yardstick,
            "yardstick_unit": (spec.yardstick_unit or spec.unit or unit)
            if spec.yardstick_key else None,
            "ratio": None if ratio is None else round(ratio, 3),
            "engine_only": spec.engine_only,
            "goal": goal,
            "better": "lower" if spec.lower_is_better else "higher",
            "met": met,
            "details": details,
            "date": result.get("date"),
            "machine": result.get("machine"),
            "python_loop_mops": result.get("python_loop_mops"),
            "commit": result.get("commit"),
            "source": source or f"{name}.json",
        })  # fmt: skip
    return rows


def _steps(result: dict[str, Any]) -> str | None:
    """The edge's p99 at each input rate (its `steps`), e.g. "p99 91 / 185 ms at 1,000 / ..."."""
    steps = [s for s in result.get("steps") or [] if isinstance(s, dict) and "p99_ms" in s]
    if len(steps) < 2:
        return None  # one rate: the row's figure already says it
    p99 = " / ".join(fmt(s["p99_ms"]) for s in steps)
    rates = " / ".join(fmt(s.get("rate_in")) for s in steps)
    return f"p99 {p99} ms at {rates} updates/s in"


def _design(yardsticks: dict[str, Any]) -> str:
    design = yardsticks.get("design figure per session, messages/s")
    return "" if design is None else f"design figure {design:,} messages/s per session"


def load_results(results_dir: Path, order: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every result file of `results_dir`, in `order` first, then the others by name."""
    found = []
    for path in sorted(results_dir.glob("*.json")):
        if path.name == SUMMARY_JSON:
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a result being written right now, or not a result at all
        if isinstance(doc, dict) and "value" in doc:
            found.append((path.name, doc))
    rank = {name: i for i, name in enumerate(order)}
    found.sort(key=lambda item: (rank.get(item[1].get("name"), len(rank)), item[0]))
    return [{**doc, "_source": name} for name, doc in found]


def build_summary(results: list[dict[str, Any]], failed: dict[str, str] | None = None) -> dict:
    """The summary document: rows, plus when and where the figures were taken."""
    rows = [row for r in results for row in build_rows(r, r.get("_source", ""))]
    dates = sorted(str(r["date"])[:10] for r in results if r.get("date"))
    speeds = sorted(float(r["python_loop_mops"]) for r in results if r.get("python_loop_mops"))
    machines = sorted({str(r["machine"]) for r in results if r.get("machine")})
    return {
        "rows": rows,
        "dates": [dates[0], dates[-1]] if dates else [],
        "python_loop_mops": [speeds[0], speeds[-1]] if speeds else [],
        "machines": machines,
        # The product as users run it; engine-only figures are counted apart.
        "goals_met": sum(1 for row in rows if row["met"] and not row["engine_only"]),
        "goals": sum(1 for row in rows if row["met"] is not None and not row["engine_only"]),
        "engine_only_goals_met": sum(1 for row in rows if row["met"] and row["engine_only"]),
        "engine_only_goals": sum(
            1 for row in rows if row["met"] is not None and row["engine_only"]
        ),
        "commits": sorted({str(r["commit"]) for r in results if r.get("commit")}),
        "failed": failed or {},
    }


# -- rendering ----------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    """A figure for people: thousands separators, 3 significant digits below 100."""
    if value is None:
        return "-"
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _met(row: dict[str, Any]) -> str:
    return {True: "yes", False: "no", None: "-"}[row["met"]]


def _goal(row: dict[str, Any]) -> str:
    if row["goal"] is None:
        return "-"
    return ("≤ " if row["better"] == "lower" else "≥ ") + fmt(row["goal"])


def _yardstick(row: dict[str, Any], markdown: bool) -> str:
    if row["yardstick"] is None:
        return "-"
    # The unit is shown where it is not the figure's: no ratio is drawn then.
    unit = row.get("yardstick_unit")
    value = fmt(row["yardstick"]) + (f" {unit}" if unit and unit != row["unit"] else "")
    return f"{row['yardstick_name']}: {value}" if markdown else f"{value} ({row['yardstick_name']})"


def _commit(row: dict[str, Any]) -> str:
    """The commit of a row's result, short ("1a2b3c4d5e" or "1a2b3c4d5e-dirty"); "?" if unknown."""
    commit = row.get("commit")
    if not commit:
        return "?"
    head, dirty, _ = str(commit).partition("-dirty")
    return head[:10] + ("-dirty" if dirty else "")


def _goals(summary: dict[str, Any]) -> str:
    text = f"goals met: {summary['goals_met']} of {summary['goals']}"
    if summary.get("engine_only_goals"):
        text += (f" (the product as run); engine-only figures, not counted: "
                 f"{summary['engine_only_goals_met']} of {summary['engine_only_goals']} "
                 "at their goal")  # fmt: skip
    return text


def _when(summary: dict[str, Any]) -> str:
    dates = summary["dates"]
    when = (dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}") if dates else "?"
    speeds = summary["python_loop_mops"]
    speed = f"{fmt(speeds[0])}–{fmt(speeds[-1])} M loops/s" if speeds else "speed unknown"
    machines = "; ".join(summary["machines"]) or "machine unknown"
    return f"taken {when} on {machines}, at {speed}"


def render_text(summary: dict[str, Any]) -> str:
    """The table for a terminal."""
    header = ("benchmark", "figure", "unit", "yardstick", "ratio", "goal", "met?", "commit")
    lines = [header]
    for row in summary["rows"]:
        lines.append((row["benchmark"], fmt(row["figure"]), row["unit"], _yardstick(row, False),
                      fmt(row["ratio"]), _goal(row), _met(row), _commit(row)))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
           for line in lines]  # fmt: skip
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append(f"{_goals(summary)}; {_when(summary)}")
    for name, reason in summary["failed"].items():
        out.append(f"FAILED {name}: {reason}")
    return "\n".join(out)


def render_markdown(summary: dict[str, Any]) -> str:
    """The table in markdown (SUMMARY.md and the README)."""
    lines = [
        "| benchmark | figure | goal | met? | yardstick (same run) | figure / yardstick "
        "| also measured | taken (M loops/s) | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        yardstick = _yardstick(row, True)
        taken = f"{str(row['date'] or '?')[:10]} ({fmt(row['python_loop_mops'])})"
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(
            f"| `{row['benchmark']}` | {fmt(row['figure'])} {row['unit']} | {_goal(row)} | "
            f"{met} | {yardstick} | {fmt(row['ratio'])} | {'; '.join(row['details']) or '-'} "
            f"| {taken} | {_commit(row)} |"
        )
    lines.append("")
    lines.append(f"{_goals(summary).capitalize()}; {_when(summary)}.")
    return "\n".join(lines)


def write_summary(summary: dict[str, Any], results_dir: Path) -> tuple[Path, Path]:
    """Write `summary.json` and `SUMMARY.md` into `results_dir`; return their paths."""
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / SUMMARY_JSON
    md_path = results_dir / SUMMARY_MD
    json_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(
        "# Benchmarks: the whole picture\n\n"
        "Generated by `brokerflow bench` from `bench/results/*.json` (`--summary-only` "
        "rebuilds it without running anything).\n\n" + render_markdown(summary) + "\n"
    )
    return json_path, md_path


def update_readme(readme: Path, summary: dict[str, Any]) -> bool:
    """Replace the table between the README's markers; False when the markers are absent."""
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    body = f"{README_START}\n{render_markdown(summary)}\n"
    new = text[:start] + body + text[end:]
    if new != text:
        readme.write_text(new)
    return True
