"""Domain layer: is a symbol's L1 book still sound? (pure, no I/O)

A book built from incremental refreshes (35=X) is only as good as the increments it saw. Feed
handlers (CME MDP, QuickFIX-based market-data clients) treat a book as broken, until the venue's
next full refresh (35=W), when:
- RptSeq (83), the venue's per-instrument sequence, skips a number: an update was lost;
- an incremental for the instrument could not be used (a dead letter whose Symbol (55) could
  still be read), or the market-data session lost messages it could not get resent;
- the increments alone produced a crossed or locked book (best bid >= best ask), which a sound
  book of a continuous market never shows.

A broken book is STALE, with its reason and the event time it became so, until the next sound
snapshot; whatever comes in between does not make it sound. Consumers still apply the increments
(the book stays as close to the market as it can be) but say so: quotes carry the flag, the stop
engine holds, margin keeps its last sound mark (docs/book-integrity.md).

An RptSeq that goes backwards (or repeats) is a duplicate: `admit_increment` says to ignore it,
and counts it; it never resets the book. A snapshot's RptSeq resets the baseline.

Each consumer of the market data (quotes, stops, the margin feed) keeps its own `BookIntegrity`,
fed by the same events in the same order, so they all reach the same verdicts without sharing
state across steps or workers.
"""

from __future__ import annotations

from dataclasses import dataclass

RPTSEQ_GAP = "rptseq_gap"
DEAD_LETTER = "dead_letter"
SESSION_GAP = "session_gap"
CROSSED = "crossed"
CROSSED_SNAPSHOT = "crossed_snapshot"
REASONS = (RPTSEQ_GAP, DEAD_LETTER, SESSION_GAP, CROSSED, CROSSED_SNAPSHOT)


@dataclass(frozen=True, slots=True)
class Staleness:
    """Why a symbol's book is not trusted, and since when.

    Attributes:
        reason: one of `REASONS`.
        since_ns: event time of the message that made it stale.
        detail: what was seen, for people ("RptSeq 41 after 38").
    """

    reason: str
    since_ns: int
    detail: str = ""


class BookIntegrity:
    """The soundness of many symbols' books, from the events that build them.

    Attributes:
        duplicates: increments ignored because their RptSeq was not new.
        became_stale: sound -> stale transitions, by reason.
        stale_ns: event-time nanoseconds each symbol spent stale, for the books that became
            sound again (`stale_seconds` adds the ones still stale).
    """

    __slots__ = ("_last", "_stale", "became_stale", "duplicates", "stale_ns")

    def __init__(self) -> None:
        self._last: dict[str, int] = {}  # symbol -> last RptSeq seen
        self._stale: dict[str, Staleness] = {}
        self.duplicates = 0
        self.became_stale: dict[str, int] = {}
        self.stale_ns: dict[str, int] = {}

    def on_snapshot(self, symbol: str, ts_ns: int, rpt_seq: int | None, crossed: bool) -> None:
        """A full refresh (35=W) replaced the book: sound again, unless it is crossed itself."""
        if rpt_seq is not None:
            self._last[symbol] = rpt_seq
        else:
            self._last.pop(symbol, None)  # no baseline: the next RptSeq starts one
        if crossed:
            self._mark(symbol, ts_ns, CROSSED_SNAPSHOT, "the snapshot itself has bid >= ask")
            return
        was = self._stale.pop(symbol, None)
        if was is not None:
            spent = max(0, ts_ns - was.since_ns)
            self.stale_ns[symbol] = self.stale_ns.get(symbol, 0) + spent

    def admit_increment(self, symbol: str, ts_ns: int, rpt_seq: tuple[int, int] | None) -> bool:
        """Whether to apply an increment of `symbol` whose entries carry RptSeq `first..last`.

        False for a duplicate (nothing new in it). A gap makes the book stale but the increment
        is applied: the book stays as near the market as it can, flagged.
        """
        if rpt_seq is None:
            return True
        first, last = rpt_seq
        seen = self._last.get(symbol)
        if seen is not None:
            if last <= seen:
                self.duplicates += 1
                return False
            if first > seen + 1:
                self._mark(symbol, ts_ns, RPTSEQ_GAP, f"RptSeq {first} after {seen}")
        self._last[symbol] = last
        return True

    @property
    def last_rpt_seq(self) -> dict[str, int]:
        """symbol -> the last RptSeq admitted, for a hot loop's in-sequence case (the quotes
        flow): an increment whose first RptSeq is this + 1 is admitted by storing its last
        here, as `admit_increment` would; any other goes through `admit_increment`."""
        return self._last

    def on_book(self, symbol: str, ts_ns: int, bid: float | None, ask: float | None) -> None:
        """After an increment was applied: a crossed or locked top of book breaks it."""
        if bid is not None and ask is not None and bid >= ask:
            kind = "crossed" if bid > ask else "locked"
            self._mark(symbol, ts_ns, CROSSED, f"{kind}: bid {bid:g} >= ask {ask:g}")

    def on_damaged(self, symbol: str, ts_ns: int, reason: str, detail: str = "") -> None:
        """An update of `symbol` was lost (a dead letter, a session gap)."""
        self._mark(symbol, ts_ns, reason, detail)

    def stale(self, symbol: str) -> Staleness | None:
        """Why `symbol`'s book is stale, or None when it is sound."""
        return self._stale.get(symbol)

    def stale_symbols(self) -> dict[str, Staleness]:
        """Every stale symbol now."""
        return dict(self._stale)

    def stale_seconds(self, now_ns: int | None = None) -> dict[str, float]:
        """Event-time seconds each symbol has been stale: closed spells, plus the open one up
        to `now_ns` (event time; None leaves open spells out)."""
        out = {s: ns / 1e9 for s, ns in self.stale_ns.items()}
        if now_ns is not None:
            for symbol, st in self._stale.items():
                out[symbol] = out.get(symbol, 0.0) + max(0, now_ns - st.since_ns) / 1e9
        return out

    def _mark(self, symbol: str, ts_ns: int, reason: str, detail: str) -> None:
        if symbol in self._stale:
            return  # the first cause stands until a snapshot
        self._stale[symbol] = Staleness(reason, ts_ns, detail)
        self.became_stale[reason] = self.became_stale.get(reason, 0) + 1

    def __getstate__(self) -> tuple:
        return (self._last, self._stale, self.duplicates, self.became_stale, self.stale_ns)

    def __setstate__(self, state: tuple) -> None:
        self._last, self._stale, self.duplicates, self.became_stale, self.stale_ns = state
