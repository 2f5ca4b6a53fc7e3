"""Triage rules: scores, the workflow's transitions and refusals, episodes, batch folding."""

from __future__ import annotations

import pytest

from domain.alerts import make_alert
from domain.triage import (
    ActionRefused,
    ActionRequest,
    AlreadyClosed,
    Episodes,
    check_action,
    merge_batch,
    occurrence,
    score_of,
    transition,
)

MIN = 60 * 1_000_000_000


def test_scores_put_model_scores_and_severity_words_on_one_scale() -> None:
    assert [score_of(s) for s in ("85", "100", "250", "CRITICAL", "INFO", "?")] == [
        85, 100, 100, 95, 10, 0]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (ActionRequest("shred", "ann"), "unknown action 'shred'"),
        (ActionRequest("close", "ann", note="fine"), "close needs a disposition"),
        (ActionRequest("close", "ann", disposition="meh"), "unknown disposition 'meh'"),
        (ActionRequest("assign", "ann"), "assign needs an assignee"),
        (ActionRequest("ack", "ann", disposition="reported"), "only close takes a disposition"),
        (ActionRequest("ack", ""), "needs the user"),
        (ActionRequest("ack", "ann", note="x" * 5000), "at most 4000"),
    ],
)
def test_bad_actions_are_refused_with_the_reason(request_, reason) -> None:
    with pytest.raises(ActionRefused, match=reason):
        check_action(request_)


def test_the_workflow_moves_forward_and_a_closed_alert_stays_closed() -> None:
    ack = check_action(ActionRequest("ACK", "ann"))
    assert transition("A", "OPEN", ack).to_status == "ACKED"
    with pytest.raises(ActionRefused, match="is ACKED, not OPEN"):
        transition("A", "ACKED", ack)
    assign = check_action(ActionRequest("assign", "ann", assignee="bob"))
    assert (transition("A", "OPEN", assign).to_status, transition("A", "OPEN", assign).assignee) \
        == ("ACKED", "bob")  # fmt: skip
    assert transition("A", "ESCALATED", assign).to_status == "ESCALATED"
    escalate = check_action(ActionRequest("escalate", "ann"))
    assert transition("A", "ACKED", escalate).to_status == "ESCALATED"
    close = check_action(ActionRequest("close", "ann", disposition="False_Positive", note=" x "))
    done = transition("A", "ESCALATED", close)
    assert (done.to_status, done.disposition, done.note) == ("CLOSED", "false_positive", "x")
    with pytest.raises(AlreadyClosed, match="already closed by bob at 2026-11-25T10:00:00Z"):
        transition("A", "CLOSED", close, "bob", "2026-11-25T10:00:00Z")


def test_findings_close_in_time_continue_one_episode_per_kind_subject_and_symbol() -> None:
    episodes = Episodes(gap_ns=60 * MIN)
    assert episodes.assign("SPOOFING", "C1", "ACME", "k1", 0) == ("k1", True)
    assert episodes.assign("SPOOFING", "C1", "ACME", "k2", 50 * MIN) == ("k1", False)
    # Measured from the latest finding: the episode goes on as long as the pattern does.
    assert episodes.assign("SPOOFING", "C1", "ACME", "k3", 105 * MIN) == ("k1", False)
    assert episodes.assign("SPOOFING", "C1", "OTHER", "k4", 105 * MIN) == ("k4", True)
    assert episodes.assign("SPOOFING", "C2", "ACME", "k5", 105 * MIN) == ("k5", True)
    assert episodes.assign("WASH_TRADE", "C1", "ACME", "k6", 105 * MIN) == ("k6", True)
    assert episodes.assign("SPOOFING", "C1", "ACME", "k7", 166 * MIN) == ("k7", True)


def test_an_episodes_state_stays_bounded() -> None:
    episodes = Episodes(gap_ns=MIN)
    for i in range(2000):
        episodes.assign("SPOOFING", f"A{i}", "ACME", f"k{i}", i * 10 * MIN)
    assert len(episodes) <= 257


def test_a_batch_carries_each_alert_once_with_its_occurrences_united() -> None:
    def spoof(key: str, score: int) -> object:
        return make_alert("SPOOFING", "k1", str(score), 0, account="C1", details={
            "fill": key, "occurrences": {key: occurrence(0, score)}})

    stop = make_alert("STOP_TRIGGERED", "stop:1", "INFO", 0, details={"px": "1"})
    merged = merge_batch([spoof("k1", 70), stop, spoof("k2", 90), stop])
    assert [a.kind for a in merged] == ["SPOOFING", "STOP_TRIGGERED"]
    assert merged[0].severity == "90"
    assert sorted(merged[0].details["occurrences"]) == ["k1", "k2"]
    assert merged[0].details["fill"] == "k1"
    assert merged[1] == stop
