"""The console's HTTP API over the labelled day: the queue and its filters, paging, an alert's
evidence, the workflow, account views and reports, role scopes and clear errors."""

from __future__ import annotations

import csv
import io

import psycopg
import pytest

from tests.console.conftest import Workbench


def test_queue_lists_open_alerts_by_score_with_counts_by_kind(workbench: Workbench) -> None:
    with workbench.client() as api:
        page = api.get("/api/alerts", params={"limit": 500}).json()
    alerts = page["alerts"]
    kinds = {a["kind"] for a in alerts}
    assert {"SPOOFING", "WASH_TRADE", "PUMP_AND_DUMP", "MARKING_THE_CLOSE"} <= kinds
    scores = [a["score"] for a in alerts if a["status"] != "CLOSED"]
    assert scores == sorted(scores, reverse=True)
    counts = page["counts"]["open_by_kind"]
    assert sum(counts.values()) == sum(a["status"] != "CLOSED" for a in alerts)
    assert counts["SPOOFING"] == len(workbench.alert_ids("SPOOFING"))


def test_filters_narrow_the_queue(workbench: Workbench) -> None:
    with workbench.client() as api:
        spoofing = api.get("/api/alerts", params={"kind": "SPOOFING"}).json()["alerts"]
        assert spoofing and {a["kind"] for a in spoofing} == {"SPOOFING"}
        account = spoofing[0]["account"]
        mine = api.get("/api/alerts", params={"account": account}).json()["alerts"]
        assert mine and {a["account"] for a in mine} == {account}
        high = api.get("/api/alerts", params={"severity_min": 95}).json()["alerts"]
        assert all(a["score"] >= 95 for a in high)
        day = spoofing[0]["event_time"][:10]
        before = api.get("/api/alerts", params={"to": day}).json()["alerts"]
        assert before == []  # every alert of the day is at or after its midnight
        symbol = api.get("/api/alerts", params={"symbol": spoofing[0]["symbol"].lower()})
        assert spoofing[0]["alert_id"] in {a["alert_id"] for a in symbol.json()["alerts"]}


def test_pages_follow_one_another_without_gaps_or_repeats(workbench: Workbench) -> None:
    with workbench.client() as api:
        everything = [a["alert_id"] for a in
                      api.get("/api/alerts", params={"limit": 500}).json()["alerts"]]  # fmt: skip
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/alerts", params=params).json()
            seen += [a["alert_id"] for a in page["alerts"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert len(everything) > 3
    assert seen == everything


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"kind": "SPOOFERY"}, "kind: unknown value 'SPOOFERY'"),
        ({"from": "2026-13-45"}, "from: '2026-13-45' is not an ISO 8601"),
        ({"limit": "lots"}, "limit: 'lots' is not a whole number"),
        ({"cursor": "garbage"}, "cursor: not a cursor"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(workbench: Workbench, params, reason) -> None:
    with workbench.client() as api:
        response = api.get("/api/alerts", params=params)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_tokens_and_roles(workbench: Workbench) -> None:
    spoof = workbench.alert_ids("SPOOFING")[0]
    with workbench.client(None) as anonymous:
        missing = anonymous.get("/api/alerts")
        bad = anonymous.get("/api/alerts", params={"token": "not-a-token"})
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorised: no token"
    assert bad.status_code == 401 and "bad token" in bad.json()["error"]
    with workbench.client("trader") as trader:
        listed = trader.get("/api/alerts", params={"limit": 500}).json()["alerts"]
        assert all(a["kind"] not in ("SPOOFING", "WASH_TRADE", "PUMP_AND_DUMP") for a in listed)
        asked = trader.get("/api/alerts", params={"kind": "SPOOFING"})
        assert asked.status_code == 403 and "surveillance" in asked.json()["error"]
        detail = trader.get(f"/api/alerts/{spoof}")
        assert detail.status_code == 403
        assert trader.get("/api/reports").status_code == 403
        other = trader.get("/api/accounts/A1")
        assert other.status_code == 403 and "not one of this trader" in other.json()["error"]
        assert trader.get("/api/accounts/K1").status_code == 200
        acted = trader.post(f"/api/alerts/{spoof}/actions", json={"action": "ack"})
        assert acted.status_code == 403
    with workbench.client("operator") as operator:
        refused = operator.get("/api/alerts")
        assert refused.status_code == 403 and "operator" in refused.json()["error"]


def test_alert_detail_explains_and_draws_the_evidence(workbench: Workbench) -> None:
    spoof = workbench.alert_ids("SPOOFING")[0]
    with workbench.client() as api:
        alert = api.get(f"/api/alerts/{spoof}").json()
        unknown = api.get("/api/alerts/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 400 and "no alert with id" in unknown.json()["error"]
    assert alert["kind"] == "SPOOFING" and alert["explanation"]["headline"]
    assert alert["explanation"]["findings"]
    chart = alert["chart"]
    types = {e["event_type"] for e in chart["events"]}
    assert {"ORDER_FILLED", "ORDER_CANCELLED"} <= types  # the fill and the cancels
    cancelled = set(alert["details"]["cancelled_cl_ord_ids"])
    assert cancelled <= {e["cl_ord_id"] for e in chart["events"]} | {
        e["orig_cl_ord_id"] for e in chart["events"]}  # fmt: skip
    event_id = chart["events"][0]["event_id"]
    with workbench.client() as api:
        row = api.get(f"/api/audit/{event_id}").json()
    assert row["event_id"] == event_id and "35=" in row["raw_fix"].replace("\x01", "|")


def test_acknowledge_then_close_writes_history_and_audit(workbench: Workbench) -> None:
    target = workbench.alert_ids("WASH_TRADE")[0]
    with workbench.client() as api:
        acked = api.post(f"/api/alerts/{target}/actions", json={"action": "ack"})
        assert acked.status_code == 200 and acked.json()["status"] == "ACKED"
        no_disposition = api.post(f"/api/alerts/{target}/actions",
                                  json={"action": "close", "note": "x"})  # fmt: skip
        assert no_disposition.status_code == 400
        assert "close needs a disposition" in no_disposition.json()["error"]
        closed = api.post(f"/api/alerts/{target}/actions", json={
            "action": "close", "disposition": "false_positive", "note": "family accounts"})
        assert closed.status_code == 200 and closed.json()["audited"] is True
    with workbench.client("analyst2") as bob:
        late = bob.post(f"/api/alerts/{target}/actions",
                        json={"action": "close", "disposition": "true_positive"})  # fmt: skip
    assert late.status_code == 409
    assert late.json()["error"].startswith(f"alert {target} was already closed by ann at ")
    with psycopg.connect(workbench.dsn) as conn:
        row = conn.execute("SELECT status, disposition, closed_by, note FROM alerts "
                           "WHERE alert_id = %s", (target,)).fetchone()  # fmt: skip
        history = conn.execute("SELECT actor, action, disposition, to_status FROM alert_actions "
                               "WHERE alert_id = %s ORDER BY id", (target,)).fetchall()  # fmt: skip
    assert row == ("CLOSED", "false_positive", "ann", "family accounts")
    assert history == [("ann", "ack", None, "ACKED"),
                       ("ann", "close", "false_positive", "CLOSED")]  # fmt: skip
    _, audit = workbench.store.query(
        "SELECT JSONExtractString(order_details, 'action'), "
        "JSONExtractString(order_details, 'actor') FROM audit_log FINAL "
        "WHERE event_type = 'ANALYST_ACTION' AND JSONExtractString(order_details, 'alert_id') "
        "= {id:String} ORDER BY timestamp", {"id": target})  # fmt: skip
    assert [tuple(r) for r in audit] == [("ack", "ann"), ("close", "ann")]


def test_one_action_on_several_alerts(workbench: Workbench) -> None:
    targets = workbench.alert_ids("OWNERSHIP_MISSING")
    assert len(targets) >= 2
    with workbench.client() as api:
        done = api.post("/api/alerts/actions", json={
            "alert_ids": [*targets, "nope"], "action": "assign", "assignee": "bob"}).json()
    assert done["applied"] == len(targets)
    assert done["results"][-1] == {"alert_id": "nope", "error": "no alert with id 'nope'"}
    with workbench.client() as api:
        mine = api.get("/api/alerts", params={"assignee": "bob"}).json()["alerts"]
    assert {a["alert_id"] for a in mine} >= set(targets)


def test_account_view_and_reports(workbench: Workbench) -> None:
    with workbench.client() as api:
        view = api.get("/api/accounts/C1", params={"from": "2026-11-25", "to": "2026-11-26"})
        assert view.status_code == 200
        body = view.json()
        assert body["account"]["owner"] == "carol"
        assert body["orders"]["rows"] and body["fills"]["rows"]
        assert any(a["kind"] == "SPOOFING" for a in body["alerts"])
        listed = {r["name"]: r for r in api.get("/api/reports").json()["reports"]}
        assert "trading_history" in listed
        params = {"account": "C1", "from": "2026-11-25", "to": "2026-11-26"}
        as_json = api.get("/api/reports/trading_history", params=params).json()
        as_csv = api.get("/api/reports/trading_history", params={**params, "format": "csv"})
        missing = api.get("/api/reports/trading_history", params={"account": "C1"})
        unknown = api.get("/api/accounts/NOPE")
    assert as_json["rows"] and as_json["columns"][0] == "timestamp"
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0] == as_json["columns"] and len(rows) == len(as_json["rows"]) + 1
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert missing.status_code == 400 and "missing parameter 'from'" in missing.json()["error"]
    assert unknown.status_code == 404


def test_suppression_hides_an_account_from_the_open_queue_and_is_counted(workbench) -> None:
    with workbench.client() as api:
        before = api.get("/api/alerts", params={"account": "N1"}).json()
        assert before["alerts"], "nina marks the close in the scenario"
        rule = api.post("/api/suppressions", json={
            "account": "N1", "reason": "designated market maker in CLSE",
            "starts_at": "2026-11-25T00:00:00Z", "ends_at": "2026-11-26T00:00:00Z"}).json()
        after = api.get("/api/alerts", params={"account": "N1"}).json()
        only = api.get("/api/alerts", params={"account": "N1", "suppressed": "only"}).json()
        api.post(f"/api/suppressions/{rule['id']}/revoke")
        back = api.get("/api/alerts", params={"account": "N1"}).json()
        bad = api.post("/api/suppressions", json={
            "account": "N1", "reason": "x", "starts_at": "2026-11-25",
            "ends_at": "2027-11-25"})
    assert after["alerts"] == []
    assert after["counts"]["suppressed"] == len(before["alerts"])
    assert {a["suppression_reason"] for a in only["alerts"]} == {"designated market maker in CLSE"}
    assert [a["alert_id"] for a in back["alerts"]] == [a["alert_id"] for a in before["alerts"]]
    assert bad.status_code == 400 and "at most 90 days" in bad.json()["error"]


def test_openapi_schema_is_served(workbench: Workbench) -> None:
    with workbench.client(None) as api:
        schema = api.get("/api/openapi.json").json()
    assert {"/api/alerts", "/api/alerts/{alert_id}", "/api/alerts/{alert_id}/actions",
            "/api/accounts/{account}", "/api/reports", "/api/reports/{name}"} <= set(
        schema["paths"])  # fmt: skip


def test_two_analysts_closing_at_once_one_wins_and_the_other_is_told_by_whom(workbench) -> None:
    import threading

    target = workbench.alert_ids("EXCESSIVE_OTR")[0]
    barrier = threading.Barrier(2)
    answers: dict[str, object] = {}

    def close(role: str) -> None:
        with workbench.client(role) as api:
            barrier.wait()
            answers[role] = api.post(f"/api/alerts/{target}/actions", json={
                "action": "close", "disposition": "true_positive", "note": role})

    threads = [threading.Thread(target=close, args=(r,)) for r in ("analyst", "analyst2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    codes = sorted(a.status_code for a in answers.values())
    assert codes == [200, 409]
    winner = next(r for r, a in answers.items() if a.status_code == 200)
    loser = next(a for a in answers.values() if a.status_code == 409)
    user = {"analyst": "ann", "analyst2": "bob"}[winner]
    assert loser.json()["closed_by"] == user and f"closed by {user}" in loser.json()["error"]
    with psycopg.connect(workbench.dsn) as conn:
        history = conn.execute("SELECT actor, action FROM alert_actions WHERE alert_id = %s",
                               (target,)).fetchall()  # fmt: skip
    assert history == [(user, "close")]
    with workbench.client() as api:
        unknown = api.post("/api/alerts/nope/actions", json={"action": "ack"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "no alert with id 'nope'"
