"""The golden replay: simulated days replayed into fresh stores, and what the stores then hold.

Each day is generated from a seed by the code of a checkout (`cwd`), replayed by that checkout's
`brokerflow load` and `brokerflow replay` as users run them (`python -m brokerflow.cli` with
`cwd` first on sys.path, so a worktree of another commit runs its own code, not the editable
install's), and digested by this checkout's `bench.stores_digest`: the measuring instrument is
the same whichever code wrote the stores.

Days:
    pipeline  `bench.pipeline_day`'s day, tiny: market data to the close, retail orders and
              fills over realistic books (margin, near-call, concentrated), 300 stop orders
              (stops, stop-limits, trailing, OCO and bracket legs; some fire) and one of each
              surveillance pattern (wash, layering, owner wash, round trips, order-to-trade,
              pump and dump, marking the close).
    status    `brokerflow simulate --orders` with the back office's reference changes (accounts
              opened, deposits, withdrawals), a symbol halt, a market halt, price bands, lost
              incrementals (stale books) and periodic snapshots; and, in the middle of the day,
              `ODD_LINES`: unusable lines and execution reports on the edges where the decoder's,
              the ledger's and data quality's checks were written apart (issue 22), so that
              whichever of them rejects or books each one stays as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stores_digest import differences

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("replay-digests.json")
TIMEOUT_S = 300.0
SHORT_HASH = 16  # hex digits kept of each sha256: 64 bits tell equal from unequal well enough

# The pipeline day, made by `bench.pipeline_day.generate` of the checkout in `cwd`.
_PIPELINE_DAY = (
    "import sys; from pathlib import Path; from bench.pipeline_day import DaySpec, generate; "
    "generate(DaySpec(symbols=6, minutes=2, accounts=120, stops=300, seed=1), Path(sys.argv[1]))"
)
_STATUS_DAY = [
    "simulate", "--symbols", "4", "--minutes", "1.5", "--seed", "11", "--orders",
    "--orders-per-minute", "200", "--accounts", "60", "--reference-changes",
    "--halt", "AAPL@0.5+0.25", "--market-halt", "1+0.1", "--bands", "4",
    "--drop-incrementals", "2", "--snapshot-every", "30",
]  # fmt: skip
_ODD_AT = b"20261125-14:30:45.000"  # before the first line sent at or after this
_ODD_HEAD = b"35=8\x0149=BROKER\x0156=GOLDEN\x0134=%d\x0152=" + _ODD_AT + b"\x01"
_ODD_ORDER = b"1=ACC00001\x0155=MSFT\x0140=2\x0144=20.00\x0159=0\x0160=" + _ODD_AT + b"\x01"
# Execution reports of orders of their own (GLD-n), each off on one rule: (ExecID, ExecType,
# OrdStatus, Side, OrderQty, LastQty, LastPx, CumQty, LeavesQty, AvgPx, ExecRefID). Not here: a
# fill whose Side is a FIX Side but not a buy or a sell (7, C): the decoder passes it, and at
# 6ec2191 the ledger's check then stops the replay ("the flow stopped: ... Side(54) '7' is not
# a buy or a sell"), no output to keep.
_ODD_REPORTS = (
    ("1", "A", "A", "1", "100", None, None, "0", "50", "0", None),  # pending new, leaves off
    ("4", "0", "0", "Z", "100", None, None, "0", "100", "0", None),  # no such Side
    ("5", "F", "1", "1", "100", "150", "20.00", "150", "0", "20.00", None),  # CumQty > OrderQty
    ("6", "4", "4", "1", "100", None, None, "0", "5", "0", None),  # canceled, leaves left
    ("7", "F", "1", "1", "100", "0", "20.00", "40", "60", "20.00", None),  # fill of nothing
    ("8", "H", "0", "1", "100", "0", "0", "0", "100", "0", None),  # trade cancel, no ExecRefID
    ("9", "F", "1", "1", "100", "40", "20.00", "40", "50", "20.00", None),  # leaves off
    ("10", "6", "6", "1", "100", None, None, "0", "70", "0", None),  # pending cancel, off
    ("11", "F", "1", "2", "100", "40", "20.00", "40", "60", "20.00", None),  # a good one
    ("12", "H", "0", "2", "100", "0", "0", "0", "100", "0", "GLD-E11"),  # and its bust
)


def _framed(body: bytes) -> bytes:
    """A FIX 4.4 message of `body` with a right BodyLength and CheckSum, and a newline."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01\n" % (sum(head + body) % 256)


def _odd_report(seq: int, fields: tuple[str | None, ...]) -> bytes:
    exec_id, exec_type, status, side, qty, last_qty, last_px, cum, leaves, avg, ref = fields
    order = "GLD-" + (exec_id if exec_id not in ("12",) else "11")
    tags = [(37, f"V-{order}"), (11, order), (17, f"GLD-E{exec_id}"), (150, exec_type),
            (39, status), (54, side), (38, qty), (32, last_qty), (31, last_px), (14, cum),
            (151, leaves), (6, avg), (19, ref)]  # fmt: skip
    body = b"".join(b"%d=%s\x01" % (t, v.encode()) for t, v in tags if v is not None)
    return _framed(_ODD_HEAD % seq + body + _ODD_ORDER)


ODD_LINES = (
    b"this line is not FIX\n",
    b"8=FIX.4.4\x019=20\x0135=X\x0155=AAPL\x01268=0\x0110=000\x01\n",  # BodyLength, CheckSum off
    b"8=FIX.4.4\x019=12\x0135=j\x0158=x\x0110=000\x01\n",  # a MsgType nobody routes
    *(_odd_report(n, fields) for n, fields in enumerate(_ODD_REPORTS, 1)),
)


def _insert_odd_lines(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    at = next((i for i, line in enumerate(lines) if _sent_at(line) >= _ODD_AT), len(lines))
    path.write_bytes(b"".join(lines[:at] + list(ODD_LINES) + lines[at:]))


def _sent_at(line: bytes) -> bytes:
    start = line.find(b"\x0152=")
    return line[start + 4 : line.find(b"\x01", start + 4)] if start >= 0 else b""


DAYS = ("pipeline", "status")

# Replay summary fields that are timing, or name this run's files, not what was replayed.
_SUMMARY_TIMING = frozenset({"files", "seconds", "messages_per_s"})
_SUMMARY_NESTED_TIMING = {"price_alerts": "load_ms", "data_quality": "cpu_s"}


class GoldenError(AssertionError):
    """A step of the golden replay failed; the message names it and ends with its stderr."""


@dataclass(frozen=True)
class Stores:
    """Where one replay writes: a PostgreSQL database, a Redis db, a data directory (chdb's
    ClickHouse lives in `data_dir/clickhouse`)."""

    postgres_dsn: str
    redis_url: str
    data_dir: Path

    def env(self) -> dict[str, str]:
        """Our environment with every `BROKERFLOW_*` variable replaced by these stores'."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
        env.update({
            "BROKERFLOW_POSTGRES_DSN": self.postgres_dsn,
            "BROKERFLOW_REDIS_URL": self.redis_url,
            "BROKERFLOW_CLICKHOUSE_URL": f"chdb://{self.data_dir / 'clickhouse'}",
            "BROKERFLOW_DATA_DIR": str(self.data_dir),
            "BROKERFLOW_METRICS_PORT": "0",
        })  # fmt: skip
        return env


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None, what: str) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        msg = f"{what} failed (exit {done.returncode}, cwd {cwd}):\n{done.stderr[-3000:]}"
        raise GoldenError(msg)
    return done.stdout


def make_day(name: str, out_dir: Path, cwd: Path = ROOT) -> Path:
    """Write day `name` (its .fix, .accounts.csv and .positions.csv) under `out_dir` with the
    code of `cwd`; return the .fix file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.fix"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
    if name == "pipeline":
        argv = [sys.executable, "-c", _PIPELINE_DAY, str(path)]
    elif name == "status":
        argv = [sys.executable, "-m", "brokerflow.cli", *_STATUS_DAY, "--out", str(path)]
    else:
        msg = f"no golden day named {name!r} (known: {', '.join(DAYS)})"
        raise ValueError(msg)
    _run(argv, cwd, env, f"generating the {name} day")
    if name == "status":
        _insert_odd_lines(path)
    return path


def day_hashes(day: Path) -> dict[str, str]:
    """sha256 of the day's files: the replay's input, compared before its output."""
    files = (day, day.with_suffix(".accounts.csv"), day.with_suffix(".positions.csv"))
    return {f.name.split(".", 1)[1]: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def replay_day(day: Path, stores: Stores, cwd: Path = ROOT, workers: int = 1) -> dict[str, Any]:
    """Load the day's accounts and positions, replay it with the code of `cwd`; return the
    replay's JSON summary without its timing."""
    env = stores.env()
    cli = [sys.executable, "-m", "brokerflow.cli"]
    for kind in ("accounts", "positions"):
        _run([*cli, "load", kind, str(day.with_suffix(f".{kind}.csv"))], cwd, env, f"load {kind}")
    out = _run([*cli, "replay", "--json", "-q", "-w", str(workers), str(day)], cwd, env,
               f"replay -w {workers}")  # fmt: skip
    summary = json.loads(out.strip().splitlines()[-1])
    for key in _SUMMARY_TIMING:
        summary.pop(key, None)
    for key, field in _SUMMARY_NESTED_TIMING.items():
        if isinstance(summary.get(key), dict):
            summary[key].pop(field, None)
    return summary


def digest_stores(stores: Stores, out: Path) -> dict[str, dict[str, Any]]:
    """`bench.stores_digest` of this checkout over the stores, in a process of its own (chdb
    opens one directory per process), made compact by `compact`."""
    _run([sys.executable, "-m", "bench.stores_digest", "--out", str(out)], ROOT, stores.env(),
         "bench.stores_digest")  # fmt: skip
    return compact(json.loads(out.read_text()))


def compact(digests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The digests with short hashes, and an untrimmed stream's entries of each subject as one
    hash (thousands of quote entries would make the golden file large); a trimmed stream keeps
    one short hash an entry, as `differences` compares those by their tails."""
    out: dict[str, dict[str, Any]] = {}
    for key, part in digests.items():
        if "entries" in part:
            entries = part["entries"]
            if not part["capped"]:
                entries = {subject: [_short(json.dumps(hashes))]
                           for subject, hashes in entries.items()}  # fmt: skip
            out[key] = {**part, "entries": entries}
        else:
            out[key] = {**part, "sha256": part["sha256"][:SHORT_HASH]}
    return out


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:SHORT_HASH]


def explain(expected: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]]) -> list[str]:
    """One line per differing part: its name and how it differs (items, which stream subjects)."""
    lines = []
    for key in differences(expected, got):
        x, y = expected.get(key), got.get(key)
        if x is None or y is None:
            lines.append(f"{key}: only in {'the current run' if x is None else 'the golden'}")
        elif "entries" in x:
            subjects = sorted(s for s in x["entries"].keys() | y["entries"].keys()
                              if x["entries"].get(s) != y["entries"].get(s))  # fmt: skip
            shown = ", ".join(subjects[:10]) + (" ..." if len(subjects) > 10 else "")
            lines.append(f"{key}: items {x['items']} -> {y['items']}; subjects differing "
                         f"({len(subjects)}): {shown}")  # fmt: skip
        else:
            lines.append(f"{key}: items {x['items']} -> {y['items']}, content differs")
    return lines


def load_golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


def write_golden(doc: dict[str, Any]) -> None:
    """One part a line: a change shows in `git diff` as the parts it changed."""
    lines = ["{"]
    lines.append(f' "base": {json.dumps(doc["base"])},')
    lines.append(f' "regenerate": {json.dumps(doc["regenerate"])},')
    lines.append(' "days": {')
    for n, (name, day) in enumerate(sorted(doc["days"].items())):
        lines.append(f"  {json.dumps(name)}: {{")
        lines.append(f'   "day_sha256": {json.dumps(day["day_sha256"], sort_keys=True)},')
        lines.append(f'   "summary": {json.dumps(day["summary"], sort_keys=True)},')
        lines.append('   "digests": {')
        parts = sorted(day["digests"].items())
        for i, (key, part) in enumerate(parts):
            comma = "," if i < len(parts) - 1 else ""
            lines.append(f"    {json.dumps(key)}: {json.dumps(part, sort_keys=True)}{comma}")
        lines.append("   }")
        lines.append("  }" + ("," if n < len(doc["days"]) - 1 else ""))
    lines.append(" }")
    lines.append("}")
    GOLDEN.write_text("\n".join(lines) + "\n")
