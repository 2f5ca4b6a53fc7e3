"""Each flow's share of the CPU, from py-spy's raw samples (`py-spy record --format raw`).

A sample is one stack of one thread. It goes to the flow of its deepest project frame whose file
belongs to a flow (`FLOW_FILES`, `FLOW_PREFIXES`): a margin evaluation that calls a shared
helper (domain/values.py, sinks/postgres.py's batch writer, psycopg) is margin's; a sample with
no such frame (Bytewax's Python side, the standard library, shared code on its own) is
"engine/other". chdb's Python frames are the audit flow's, as it is the only chdb user.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OTHER = "engine/other"
DECODE = "read+decode"
#: The flows in the order they are printed; OTHER last.
FLOWS = ("quotes", "ledger", "audit", "stops", "margin", "surveillance", "alerts", DECODE, OTHER)
FLOW_FILES = {
    "flows/margin.py": "margin", "sinks/margin.py": "margin",
    "flows/stops.py": "stops", "sinks/stops.py": "stops",
    "sinks/order_file.py": "stops", "connectors/fix/encode.py": "stops",
    "flows/surveillance.py": "surveillance",
    "flows/ledger.py": "ledger", "sinks/ledger.py": "ledger", "domain/ledger.py": "ledger",
    "domain/orders.py": "ledger", "domain/ledger_book.py": "ledger",
    "sinks/ledger_sql.py": "ledger", "sinks/holdings_docs.py": "ledger",
    "flows/audit.py": "audit", "domain/audit.py": "audit",
    "flows/quotes.py": "quotes", "domain/quotes.py": "quotes", "sinks/redis.py": "quotes",
    "sinks/alerts.py": "alerts", "domain/alerts.py": "alerts",
    "flows/operators.py": DECODE,
}  # fmt: skip
FLOW_PREFIXES = (
    ("domain/margin", "margin"), ("connectors/", DECODE), ("sinks/clickhouse/", "audit"),
    ("domain/stops/", "stops"), ("domain/surveillance/", "surveillance"),
)  # fmt: skip
_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::\d+)?\)$")


def flow_of(path: str, root: Path = ROOT) -> str | None:
    """The flow a source file belongs to, or None (not a flow's file)."""
    if "/chdb/" in path:
        return "audit"
    prefix = f"{root}/"
    if not path.startswith(prefix):
        return None
    rel = path[len(prefix) :]
    flow = FLOW_FILES.get(rel)
    if flow is not None:
        return flow
    for start, owner in FLOW_PREFIXES:
        if rel.startswith(start):
            return owner
    return None


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame)
        if match:
            out.append((match["name"], match["path"]))
    return out


def _where(name: str, path: str, root: Path) -> str:
    prefix = f"{root}/"
    return f"{name} ({path[len(prefix) :] if path.startswith(prefix) else path})"


def attribute(lines: Iterable[str], root: Path = ROOT) -> tuple[Counter, Counter]:
    """Samples per flow, and per (flow, deepest flow frame "function (file)"; for engine/other
    the innermost frame), of raw lines ("frame;frame;... count", the root first)."""
    flows: Counter = Counter()
    frames: Counter = Counter()
    cache: dict[str, str | None] = {}
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        parsed = _frames(stack)
        owner, where = OTHER, _where(*parsed[-1], root) if parsed else ""  # other: the leaf
        for name, path in reversed(parsed):
            if path not in cache:
                cache[path] = flow_of(path, root)
            if cache[path] is not None:
                owner, where = cache[path], _where(name, path, root)
                break
        flows[owner] += n
        frames[(owner, where)] += n
    return flows, frames


def shares_pct(flows: Counter) -> dict[str, float]:
    """Percent of the samples per flow, in `FLOWS` order (flows with no sample included)."""
    total = sum(flows.values()) or 1
    return {flow: round(100 * flows.get(flow, 0) / total, 1) for flow in FLOWS}


def shares_text(pct: dict[str, float]) -> str:
    """"margin 31.0 %, read+decode 20.1 %, …", largest first."""
    ordered = sorted(pct.items(), key=lambda item: -item[1])
    return ", ".join(f"{flow} {share:.1f} %" for flow, share in ordered if share)


def top_frames(frames: Counter, n: int = 12) -> list[str]:
    """The `n` deepest flow frames with the most samples, as "12.3 % flow: function (file)"."""
    total = sum(frames.values()) or 1
    return [f"{100 * count / total:.1f} % {flow}: {where or '-'}"
            for (flow, where), count in frames.most_common(n)]  # fmt: skip
