"""Domain layer, alerts in words: the rest of the evidence (what the headline and findings did
not say) by key name, an episode's occurrences, and every ExecID and ClOrdID the details name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.explain.evidence import _decimal, _Evidence
from domain.explain.words import (
    ORD_TYPES,
    SIDES,
    _moment,
    day_text,
    duration,
    instant,
    limit,
    quantity,
)

# -- episodes ---------------------------------------------------------------------------------


def _episode(details: Mapping[str, Any]) -> str | None:
    """The episode in words ("3 occurrences, 14:02:11–14:41:05 UTC"), or None for a single
    finding. From `episode` when the store wrote it, else from `occurrences`."""
    episode = details.get("episode")
    count = first = last = None
    if isinstance(episode, Mapping):
        count, first, last = (episode.get(k) for k in ("occurrences", "first_ns", "last_ns"))
    stamps = _occurrence_times(details)
    if not isinstance(count, int) or isinstance(count, bool):
        count = len(stamps)
    if not isinstance(first, int) or not isinstance(last, int):
        first, last = (stamps[0], stamps[-1]) if stamps else (None, None)
    if count < 2:
        return None
    start, end = _moment(first), _moment(last)
    if start is None or end is None:
        return f"{count} occurrences"
    if start.date() == end.date():
        return f"{count} occurrences, {start:%H:%M:%S}–{end:%H:%M:%S} UTC"
    return f"{count} occurrences, {start:%Y-%m-%d %H:%M:%S} – {end:%Y-%m-%d %H:%M:%S} UTC"


def _occurrence_times(details: Mapping[str, Any]) -> list[int]:
    occurrences = details.get("occurrences")
    if not isinstance(occurrences, Mapping):
        return []
    stamps = (o.get("ts_ns") for o in occurrences.values() if isinstance(o, Mapping))
    return sorted(t for t in stamps if isinstance(t, int) and not isinstance(t, bool))


# -- the rest of the evidence ------------------------------------------------------------------

_LABELS = {
    "exec_id": "ExecID", "exec_ids": "ExecIDs", "cl_ord_id": "ClOrdID", "cl_ord_ids": "ClOrdIDs",
    "fill_exec_id": "fill ExecID", "sell_exec_id": "sale ExecID",
    "cancelled_cl_ord_ids": "cancelled ClOrdIDs", "child_cl_ord_id": "child ClOrdID",
    "px": "price", "qty": "quantity", "average_buy_px": "average buy price",
    "symbol_day_volume": "day volume", "day_volume_source": "day volume from",
    "first_buy_ns": "first buy", "episode_start_ns": "call since", "ord_type": "order type",
    "child_ord_type": "child order type", "trd_match_id": "TrdMatchID",
}  # fmt: skip
# Keys whose value is a fraction of one (shown as a percentage) or an amount or a quantity
# (shown with thousands separators). Other strings are shown as given: an id that looks like a
# number ("12345") must not become "12,345".
_FRACTIONS = ("_share", "_fraction", "rise", "threshold", "rearm_below", "cure_band")
_AMOUNTS = frozenset((
    "qty", "quantity", "bought", "sold", "net_position", "account_volume", "window_volume",
    "day_volume", "symbol_day_volume", "opposite_volume", "cancelled_volume", "fill_qty", "value",
    "gross_value", "equity", "cash", "long_value", "short_value", "excess",
    "maintenance_requirement", "initial_requirement", "cash_to_maintenance", "cash_to_initial",
    "reduction_to_maintenance", "reduction_to_initial", "cash_to_cure",
))  # fmt: skip
_CODES = {"side": SIDES, "fill_side": SIDES, "ord_type": ORD_TYPES, "child_ord_type": ORD_TYPES}
# An `_ns` key is a duration by its name (`window_ns`, `within_ns`, ...), an instant by its name
# (`ts_ns`, `first_buy_ns`, `episode_start_ns`, ...), else by its size: 10**17 ns is 3 years,
# and no instant a venue sends is before 1973.
_DURATIONS = ("window_ns", "within_ns", "gap_ns", "grace_ns", "_after_ns", "resting_ns",
              "delay_ns", "duration_ns", "elapsed_ns", "age_ns")  # fmt: skip
_INSTANTS = ("_ts_ns", "_at_ns", "_start_ns", "_since_ns", "_time_ns", "_until_ns")


def label(key: str) -> str:
    """A details key as a label: `first_buy_ns` is "first buy"."""
    known = _LABELS.get(key)
    if known is not None:
        return known
    return key.removesuffix("_ns").replace("_", " ")


def is_instant(key: str, ns: int) -> bool:
    """Whether an `…_ns` value is an instant (else a duration), by its key, else its size."""
    if key.endswith(_DURATIONS):
        return False
    if key == "ts_ns" or key.endswith(_INSTANTS) or key.startswith(("first_", "last_")):
        return True
    return abs(ns) >= 10**17


def humanise(key: str, value: Any) -> str:
    """One evidence value in words, by its key (see the module docstring).

    >>> humanise("window_ns", 15_000_000_000), humanise("first_buy_ns", 1_795_617_041_170_000_000)
    ('15 s', '2026-11-25T14:30:41.170Z')
    >>> humanise("cancel_fraction", "0.80"), humanise("bought", "61900"), humanise("day", 20_417)
    ('80 %', '61,900', '2025-11-25')
    >>> humanise("thresholds", {"volume_share": "0.05", "within_ns": 172_800_000_000_000})
    'volume share 5 %, within 48 h'
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        parts = [f"{label(str(k))} {humanise(str(k), v)}" for k, v in value.items()]
        return ", ".join(parts) if parts else "none"
    if isinstance(value, list | tuple):
        items = [humanise(key, v) for v in value]
        separator = "; " if any(isinstance(v, Mapping) for v in value) else ", "
        return separator.join(items) if items else "none"
    if isinstance(value, int) and key.endswith("_ns"):
        return instant(value) if is_instant(key, value) else duration(value)
    if isinstance(value, int) and key == "day":
        return day_text(value)
    codes = _CODES.get(key)
    if codes is not None and isinstance(value, str):
        return codes.get(value, value)
    number = _decimal(value)
    if number is not None and key.endswith(_FRACTIONS):
        return limit(number)
    if number is not None and (key in _AMOUNTS or isinstance(value, int | float)):
        return quantity(number)
    return str(value)


_LAST = ("score", "model_key")  # after the evidence; the model's key as "reference"
_SAID_APART = frozenset(("episode", "occurrences", *_LAST))


def _fields(ev: _Evidence) -> tuple[tuple[str, str], ...]:
    """The evidence the headline and findings did not say, by key name (PostgreSQL's JSONB
    keeps no order), then the occurrences, the score and the model's key ("reference")."""
    out: list[tuple[str, str]] = []
    used = ev.used
    details = ev.details
    for raw_key, value in sorted(details.items(), key=lambda item: str(item[0])):
        key = str(raw_key)
        if key in used or key in _SAID_APART:
            continue
        if isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in used}
            if not value:
                continue
        out.append((label(key), humanise(key, value)))
    occurrences = _occurrences_field(details)
    if occurrences:
        out.append(("occurrences", occurrences))
    if "score" in details:
        out.append(("score", humanise("score", details["score"])))
    reference = details.get("model_key")
    if reference is not None:
        out.append(("reference", str(reference)))
    return tuple(out)


def _occurrences_field(details: Mapping[str, Any]) -> str | None:
    """Each occurrence of an episode: "2026-11-25T14:02:11.000Z (score 80), …"."""
    occurrences = details.get("occurrences")
    if not isinstance(occurrences, Mapping) or len(occurrences) < 2:
        return None
    entries = [o for o in occurrences.values() if isinstance(o, Mapping)]
    entries.sort(key=lambda o: o.get("ts_ns") if isinstance(o.get("ts_ns"), int) else 0)
    words = []
    for o in entries:
        ts, score = o.get("ts_ns"), o.get("score")
        when = instant(ts) if isinstance(ts, int) and not isinstance(ts, bool) else "?"
        words.append(f"{when} (score {score})" if score is not None else when)
    return ", ".join(words)


_ID_KEYS = frozenset(("exec_id", "exec_ids", "cl_ord_id", "cl_ord_ids"))


def _collect_ids(
    value: Any, key: str, exec_ids: dict[str, None], cl_ord_ids: dict[str, None]
) -> None:
    """Every ExecID and ClOrdID the details name, by key (`exec_id`, `exec_ids`,
    `fill_exec_id`, `cancelled_cl_ord_ids`, ...), at any depth (occurrences), in order."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _collect_ids(v, str(k), exec_ids, cl_ord_ids)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect_ids(v, key, exec_ids, cl_ord_ids)
    elif isinstance(value, str) and value:
        if key.endswith(("exec_id", "exec_ids")):
            exec_ids[value] = None
        elif key.endswith(("cl_ord_id", "cl_ord_ids")):
            cl_ord_ids[value] = None
