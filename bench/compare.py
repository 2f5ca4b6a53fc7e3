"""`brokerflow bench compare --base REV`: benchmarks of another commit and of this checkout, back
to back in one run (issue 22: "the benchmarks within noise of before, measured back to back").

REV is checked out in a git worktree (`bench.worktree`, reused when present) and each chosen
benchmark runs there and here in turn, as users run it: `python -m brokerflow.cli bench NAME`
started in that checkout, so its own code is imported, not the editable install's (checked
first). The order alternates per repeat (base, current; then current, base; ...) so that a slow
spell of this shared machine falls on both sides. Each run writes its result files to a folder of
the comparison's own (neither checkout's bench/results changes), and the figures are read from
them by this checkout's `bench.summary.build_rows`: each summary row's figure, and the yardstick
it measured in the same run (engine-only figures are labelled so by their rows). `codec` is
`python -m bench.codec` (the decoder against a bare simplefix loop, engine only).

Sizes are `--quick`'s unless `--full`; `--bench-args` passes more options to every benchmark.
A figure's change is "within noise" when its base and current ranges over the repeats overlap;
with one repeat there is no spread to judge by. The table, the commits and every sample are
written to `--out` (default bench/results/compare.json). Timed: run it under the machine's lock
(`flock /tmp/brokerflow-bench.lock brokerflow bench compare ...`); it does not take the lock
itself, as the benchmarks it starts would then wait for it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import common, summary, worktree
from bench.names import BENCHMARKS
from domain.errors import BrokerflowError

# The benchmarks of the code issue 22 refactors: the decoder (ingest, codec, fix-session), the
# ledger (executions), stops, margin, surveillance, the audit sinks and all flows together.
DEFAULT_SET = ("ingest", "codec", "fix-session", "executions", "stops", "margin",
               "surveillance", "audit", "pipeline")  # fmt: skip
CODEC = "codec"
CODEC_LINES = {"quick": 50_000, "full": 200_000}  # its simplefix loop: ~75 s over 200,000
RUN_TIMEOUT_S = 4 * 3600.0
# Runs `brokerflow bench` of the checkout it is started in, its result files sent to argv[1].
_RUNNER = """\
import sys
from pathlib import Path
import bench.common
# Asked by file, not by import: the editable install would find this checkout's bench.command
# for a base from before the command moved into bench (issue 22).
if Path(bench.common.__file__).with_name("command.py").is_file():
    import bench.command as command
else:
    import brokerflow.commands.bench as command
out = Path(sys.argv[1])
bench.common.RESULTS_DIR = out
command._results_dir = lambda quick: out
from brokerflow.cli import main
sys.argv = ["brokerflow", *sys.argv[2:]]  # as `brokerflow bench ...` (results record argv)
sys.exit(main(sys.argv[1:]))
"""


class CompareError(BrokerflowError):
    """The comparison cannot go on (a benchmark failed, a checkout is wrong); one line says why."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compare (brokerflow bench compare --base REV)")
    g.add_argument("--base", help="compare: the commit to measure against (e.g. a tag or id)")
    g.add_argument("--only", help=f"compare: comma-separated benchmarks (default: "
                                  f"{','.join(DEFAULT_SET)})")  # fmt: skip
    g.add_argument("--repeat", type=int, default=3, help="compare: runs of each side (default 3)")
    g.add_argument("--full", action="store_true",
                   help="compare: full sizes (hours) instead of --quick's")  # fmt: skip
    g.add_argument(
        "--bench-args",
        default="",
        help="compare: more options for every benchmark, e.g. '--messages 50000'",
    )
    # The worktree's path follows from --base, so it has no parsed default; the record's has one,
    # and the help states the very value parsed (tests/unit/brokerflow/test_bench_options.py).
    g.add_argument(
        "--worktree",
        type=Path,
        help="compare: where the base's worktree is; when not given, /tmp/base-<short id> of "
        "--base",
    )
    out = common.RESULTS_DIR / "compare.json"
    g.add_argument("--out", type=Path, default=out,
                   help=f"compare: the JSON record (default {out})")  # fmt: skip


@dataclass
class Figure:
    """One figure's samples on both sides."""

    benchmark: str
    label: str
    unit: str
    better: str  # "higher" or "lower"
    engine_only: bool
    base: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)

    def verdict(self) -> tuple[float | None, str]:
        """(change %, what it means): the current median against the base's."""
        if not self.base or not self.current:
            return None, "missing on one side"
        b, c = statistics.median(self.base), statistics.median(self.current)
        change = (c - b) / b * 100 if b else None
        if len(self.base) < 2 or len(self.current) < 2:
            return change, "one run: no spread"
        if min(self.current) <= max(self.base) and min(self.base) <= max(self.current):
            return change, "within noise"
        improved = (c > b) == (self.better == "higher")
        return change, "better" if improved else "worse"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _figures_of(results: list[dict[str, Any]], benchmark: str) -> list[tuple[Figure, float]]:
    """Each summary row's figure and its same-run yardstick, with its value."""
    out = []
    for result in results:
        for row in summary.build_rows(result):
            if row["figure"] is not None:
                fig = Figure(benchmark, row["benchmark"], row["unit"], row["better"],
                             row["engine_only"])  # fmt: skip
                out.append((fig, row["figure"]))
            if row["yardstick"] is not None:
                label = f"{row['benchmark']}: yardstick, {row['yardstick_name']}"
                fig = Figure(benchmark, label, row["yardstick_unit"] or "", row["better"],
                             engine_only=False)  # fmt: skip
                out.append((fig, row["yardstick"]))
    return out


def _codec_figures(doc: dict[str, Any]) -> list[tuple[Figure, float]]:
    return [
        (Figure(CODEC, "decode_lines, engine only", "msg/s", "higher", True),
         float(doc["decode_lines_msgs_per_s"])),
        (Figure(CODEC, "codec: yardstick, bare simplefix parse loop", "msg/s", "higher", False),
         float(doc["simplefix_msgs_per_s"])),
    ]  # fmt: skip


def _run(argv: list[str], cwd: Path, log: Path) -> None:
    with log.open("w") as out:
        done = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              timeout=RUN_TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        msg = (f"bench compare: {' '.join(argv[3:6])} in {cwd} failed with exit code "
               f"{done.returncode}; its log: {log}\n  " + "\n  ".join(tail))  # fmt: skip
        raise CompareError(msg)


def run_once(name: str, checkout: Path, workdir: Path, args: argparse.Namespace
             ) -> list[tuple[Figure, float]]:  # fmt: skip
    """Run benchmark `name` once with the code of `checkout`; its figures."""
    workdir.mkdir(parents=True)
    log = workdir / "log.txt"
    extra = shlex.split(args.bench_args or "")
    if name == CODEC:
        lines = workdir / "codec.fix"
        _run([sys.executable, "-m", "bench.codec", "--generate", "--count",
              str(CODEC_LINES["full" if args.full else "quick"]),
              str(lines)], checkout, log)  # fmt: skip
        last = log.read_text().strip().splitlines()[-1]
        lines.unlink(missing_ok=True)
        return _codec_figures(json.loads(last))
    out = workdir / "results"
    argv = [sys.executable, "-c", _RUNNER, str(out), "bench", name, *extra]
    if not args.full:
        argv.append("--quick")
    if getattr(args, "config", None) is not None:
        argv += ["--config", str(args.config)]
    if getattr(args, "data_dir", None) is not None:
        argv += ["--data-dir", str(args.data_dir)]
    _run(argv, checkout, log)
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if not results:
        msg = f"bench compare: bench {name} in {checkout} wrote no result; its log: {log}"
        raise CompareError(msg)
    return _figures_of(results, name)


def compare(base_rev: str, names: list[str], repeat: int, args: argparse.Namespace,
            workdir: Path, say: Callable[[str], None] = _say) -> dict[str, Any]:  # fmt: skip
    """Run the comparison; return its record (commits, rows, samples)."""
    path, base_commit = worktree.ensure(base_rev, args.worktree)
    worktree.check_shadows(path)
    current = worktree.head()
    sides = {"base": path, "current": common.ROOT}
    say(f"bench compare: base {base_commit[:12]} ({path}) against current {current[:12]}"
        f"{' (uncommitted changes)' if current.endswith('+dirty') else ''} ({common.ROOT}); "
        f"{', '.join(names)}; {repeat} run(s) each side, "
        f"{'full' if args.full else 'quick'} sizes")  # fmt: skip
    figures: dict[tuple[str, str], Figure] = {}
    total, done, started = len(names) * repeat * 2, 0, time.monotonic()
    for r in range(repeat):
        order = ("base", "current") if r % 2 == 0 else ("current", "base")
        for name in names:
            for side in order:
                done += 1
                t0 = time.monotonic()
                got = run_once(name, sides[side], workdir / f"{name}-{side}-{r + 1}", args)
                for fig, value in got:
                    kept = figures.setdefault((fig.benchmark, fig.label), fig)
                    getattr(kept, side).append(value)
                say(f"  [{done}/{total}] {name} {side} (run {r + 1}/{repeat}): "
                    f"{time.monotonic() - t0:.0f} s, {len(got)} figures; "
                    f"{time.monotonic() - started:.0f} s so far")  # fmt: skip
    rows = []
    for fig in figures.values():
        change, verdict = fig.verdict()
        rows.append({
            "benchmark": fig.benchmark, "figure": fig.label, "unit": fig.unit,
            "better": fig.better, "engine_only": fig.engine_only,
            "base_median": statistics.median(fig.base) if fig.base else None,
            "current_median": statistics.median(fig.current) if fig.current else None,
            "change_pct": None if change is None else round(change, 2), "verdict": verdict,
            "base_samples": fig.base, "current_samples": fig.current,
        })  # fmt: skip
    return {
        "base": base_commit, "current": current, "base_worktree": str(path),
        "benchmarks": names, "repeat": repeat, "sizes": "full" if args.full else "quick",
        "bench_args": args.bench_args or "", "machine": common.machine(),
        "python_loop_mops": round(common.python_speed(), 1),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(time.monotonic() - started, 1), "rows": rows,
    }  # fmt: skip


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def render(record: dict[str, Any]) -> str:
    """The table and the summary in numbers."""
    head = ("benchmark", "figure", "unit", "base median", "current median", "change", "verdict")
    lines = [tuple(head)]
    for row in record["rows"]:
        change = row["change_pct"]
        lines.append((row["benchmark"], row["figure"], row["unit"], _num(row["base_median"]),
                      _num(row["current_median"]), "-" if change is None else f"{change:+.1f} %",
                      row["verdict"]))  # fmt: skip
    widths = [min(60, max(len(line[i]) for line in lines)) for i in range(len(head))]
    right = {3, 4, 5}
    text = [
        f"base {record['base']}  current {record['current']}",
        f"{record['machine']}; {record['repeat']} run(s) a side, {record['sizes']} sizes",
    ]
    for n, line in enumerate(lines):
        cells = [
            c[:60].rjust(w) if i in right else c[:60].ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    verdicts: dict[str, int] = {}
    for row in record["rows"]:
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    changes = [r["change_pct"] for r in record["rows"] if r["change_pct"] is not None]
    counted = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
    text.append(f"{len(record['rows'])} figures from {len(record['benchmarks'])} benchmarks "
                f"in {record['seconds']:,.0f} s: {counted}")  # fmt: skip
    if changes:
        text.append(f"change: median {statistics.median(changes):+.1f} %, from "
                    f"{min(changes):+.1f} % to {max(changes):+.1f} %")  # fmt: skip
    return "\n".join(text)


def run(args: argparse.Namespace, say: Callable[[str], None] = _say) -> int:
    """`brokerflow bench compare`: print the table, write the record; 0, or 2 on an error."""
    if not args.base:
        msg = "bench compare: --base REV is required (the commit to measure against)"
        raise CompareError(msg)
    if args.repeat < 1:
        msg = f"bench compare: --repeat must be at least 1, was {args.repeat}"
        raise CompareError(msg)
    names = [n.strip() for n in (args.only or ",".join(DEFAULT_SET)).split(",") if n.strip()]
    unknown = [n for n in names if n not in (*BENCHMARKS, CODEC)]
    if unknown:
        msg = f"bench compare: no benchmark named {', '.join(unknown)}"
        raise CompareError(msg)
    workdir = common.DATA_DIR / "compare" / time.strftime("%Y%m%dT%H%M%S")
    record = compare(args.base, names, args.repeat, args, workdir, say)
    print(render(record))
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}; the runs' logs and results in {workdir}")
    return 0
