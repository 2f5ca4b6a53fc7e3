"""The workbench pages in a real Chromium (Playwright) over the labelled day, driven as an
analyst would: the queue and its counts, a filter carried in the URL, an alert's chart read back
from its canvas, acknowledge and close through the buttons (checked in PostgreSQL and the audit
trail), a live alert from the edge, several alerts in one action, an account and a report, and a
trader's token that sees no surveillance.

Set `BROKERFLOW_UPDATE_SCREENSHOTS=1` to also write the README's `docs/img/workbench-*.png`.
"""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.browser import launched_chromium, needs_chromium, save_screenshot
from tests.console.conftest import Workbench

pytestmark = needs_chromium
SURVEILLANCE = ("WASH_TRADE", "PUMP_AND_DUMP", "SPOOFING", "MARKING_THE_CLOSE", "EXCESSIVE_OTR",
                "OWNERSHIP_MISSING")  # fmt: skip

# Pixels of the chart's canvas: how many are drawn at all, and how many are the sell (red) and
# buy (green) colours of the order markers (`pages.js` BUY/SELL; the price lines are blue/grey).
_CANVAS_PIXELS = """
(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let drawn = 0, sell = 0, buy = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a === 0) continue;
    drawn += 1;
    if (r > 150 && g < 90 && b < 90) sell += 1;
    if (g > 100 && r < 80 && b < 110) buy += 1;
  }
  return { drawn, sell, buy, width: canvas.width, height: canvas.height };
}
"""

OpenPage = Callable[..., Any]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser: Any, workbench: Workbench) -> Iterator[OpenPage]:
    """`open_page(role, path)`: a new tab of its own browser context, with the role's token in
    the URL as a link from `brokerflow token issue` would have it. Script errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_(role: str, path: str) -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 1000},
                                      accept_downloads=True)  # fmt: skip
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{role} {path}: {exc}"))
        separator = "&" if "?" in path else "?"
        page.goto(f"{workbench.url}{path}{separator}token={workbench.tokens[role]}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def _api(workbench: Workbench, path: str, role: str = "analyst", **params: Any) -> Any:
    with workbench.client(role) as api:
        response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _labelled_alert(workbench: Workbench, kind: str) -> str:
    """The first alert of `kind` on the labelled day (not one a test raised live today)."""
    with psycopg.connect(workbench.dsn) as conn:
        row = conn.execute("SELECT alert_id FROM alerts WHERE kind = %s "
                           "ORDER BY event_time, alert_id LIMIT 1", (kind,)).fetchone()  # fmt: skip
    assert row is not None, f"the labelled day has no {kind} alert"
    return row[0]


def test_queue_shows_counts_and_its_filter_is_the_url(
    workbench: Workbench, open_page: OpenPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    queue = _api(workbench, "/api/alerts", limit=500)
    page = open_page("analyst", "/queue.html")
    expect(page.get_by_test_id("who")).to_have_text("ann (analyst)")
    for kind, n in queue["counts"]["open_by_kind"].items():
        expect(page.locator(f'#counts li[data-kind="{kind}"]')).to_have_text(f"{kind}{n}")
    expect(page.get_by_test_id("suppressed-count")).to_have_text(str(queue["counts"]["suppressed"]))
    rows = page.get_by_test_id("alert-row")
    expect(rows).to_have_count(len(queue["alerts"]))
    assert "token=" not in page.url  # kept in sessionStorage: a copied URL shares no credentials
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
    save_screenshot(page, tmp_path, "workbench-queue.png")

    page.get_by_label("kind", exact=True).select_option("SPOOFING")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page).to_have_url(re.compile(r"/queue\.html\?kind=SPOOFING$"))
    spoofing = _api(workbench, "/api/alerts", kind="SPOOFING")["alerts"]
    expect(rows).to_have_count(len(spoofing))
    expect(page.locator('[data-testid="alert-row"]:not([data-kind="SPOOFING"])')).to_have_count(0)
    expect(page.locator('#counts li[data-kind="SPOOFING"] button')).to_have_attribute(
        "aria-pressed", "true"
    )

    shared = open_page("analyst2", "/queue.html?kind=SPOOFING&severity_min=90")
    expect(shared.get_by_label("kind", exact=True)).to_have_value("SPOOFING")
    expect(shared.get_by_label("score at least", exact=True)).to_have_value("90")
    expect(shared.get_by_test_id("alert-row")).to_have_count(len(spoofing))

    page.go_back()  # the unfiltered queue again, from the URL alone
    expect(page.get_by_label("kind", exact=True)).to_have_value("")
    expect(rows).to_have_count(len(queue["alerts"]))


def test_alert_page_draws_the_evidence_then_is_acknowledged_and_closed(
    workbench: Workbench, open_page: OpenPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    target = _labelled_alert(workbench, "SPOOFING")
    chart = _api(workbench, f"/api/alerts/{target}")["chart"]
    page = open_page("analyst", "/queue.html?kind=SPOOFING")
    page.locator(f'tr[data-alert-id="{target}"]').get_by_test_id("alert-link").click()
    expect(page).to_have_url(re.compile(rf"/alert\.html\?id={target}$"))
    expect(page.get_by_test_id("headline")).to_contain_text("layering")
    expect(page.get_by_test_id("findings").locator("li")).to_have_count(3)

    # The chart: drawn on its canvas, every order event a marker, the evidence's ones emphasised.
    drawable = [
        e
        for e in chart["events"]
        if e["event_type"]
        in ("ORDER_PLACED", "ORDER_ACCEPTED", "ORDER_MODIFIED", "ORDER_CANCELLED", "ORDER_FILLED")
    ]
    assert {"ORDER_FILLED", "ORDER_CANCELLED"} <= {e["event_type"] for e in drawable}
    figure = page.get_by_test_id("chart")
    expect(figure).to_have_attribute("data-markers", str(len(drawable)))
    assert int(figure.get_attribute("data-emphasised")) > 0
    pixels = page.locator("#chart canvas").evaluate(_CANVAS_PIXELS)
    assert pixels["drawn"] > 1000, pixels  # axes, grid and markers
    assert pixels["sell"] > 50 and pixels["buy"] > 20, pixels  # the layers (sell), the fill (buy)
    if not chart["ticks"]["t"]:
        expect(page.get_by_test_id("chart-note")).to_contain_text("no market ticks")

    # The orders as a table; each row opens its audit-trail row with the raw FIX.
    table = page.get_by_test_id("orders-table")
    expect(table.locator("tbody tr")).to_have_count(len(chart["events"]))
    fill = table.locator('tr[data-event-type="ORDER_FILLED"]').first
    expect(fill).to_have_class(re.compile("named"))
    fill.get_by_test_id("audit-button").click()
    dialog = page.get_by_test_id("audit-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("audit-fix")).to_contain_text("|35=8|")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # bob has the alert open too; ann acknowledges, then closes it as a false positive.
    bob = open_page("analyst2", f"/alert.html?id={target}")
    expect(bob.get_by_test_id("status")).to_have_text("OPEN")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_test_id("action-result")).to_contain_text("ack by ann")
    expect(page.get_by_test_id("status")).to_have_text("ACKED")
    page.get_by_label("disposition", exact=True).select_option("false_positive")
    page.get_by_label("note", exact=True).fill("layers were a market maker's quotes")
    page.get_by_role("button", name="Close", exact=True).click()
    expect(page.get_by_test_id("action-result")).to_contain_text("ACKED → CLOSED")
    expect(page.get_by_test_id("status")).to_have_text("CLOSED")
    history = page.get_by_test_id("history-table").locator("tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_have_attribute("data-action", "ack")
    expect(history.nth(1)).to_contain_text("layers were a market maker's quotes")
    expect(page.get_by_role("button", name="Acknowledge")).to_be_disabled()
    save_screenshot(page, tmp_path, "workbench-alert.png")

    # bob's page was stale: his close is refused with the API's 409, naming who closed it.
    bob.get_by_label("disposition", exact=True).select_option("true_positive")
    bob.get_by_role("button", name="Close", exact=True).click()
    expect(bob.get_by_test_id("error")).to_contain_text(
        f"alert {target} was already closed by ann at "
    )
    expect(bob.get_by_test_id("status")).to_have_text("CLOSED")

    with psycopg.connect(workbench.dsn) as conn:
        row = conn.execute("SELECT status, disposition, closed_by, note FROM alerts "
                           "WHERE alert_id = %s", (target,)).fetchone()  # fmt: skip
        actions = conn.execute("SELECT actor, action, disposition, to_status FROM alert_actions "
                               "WHERE alert_id = %s ORDER BY id", (target,)).fetchall()  # fmt: skip
    assert row == ("CLOSED", "false_positive", "ann", "layers were a market maker's quotes")
    assert actions == [("ann", "ack", None, "ACKED"), ("ann", "close", "false_positive", "CLOSED")]
    _, audit = workbench.store.query(
        "SELECT JSONExtractString(order_details, 'action'), "
        "JSONExtractString(order_details, 'actor'), "
        "JSONExtractString(order_details, 'disposition') FROM audit_log FINAL "
        "WHERE event_type = 'ANALYST_ACTION' AND JSONExtractString(order_details, 'alert_id') "
        "= {id:String} ORDER BY timestamp", {"id": target})  # fmt: skip
    assert [tuple(r) for r in audit] == [("ack", "ann", ""), ("close", "ann", "false_positive")]


def test_a_live_alert_from_the_edge_joins_the_open_queue_without_reload(
    workbench: Workbench, open_page: OpenPage
) -> None:
    from playwright.sync_api import expect

    from domain.alerts import make_alert
    from sinks.alerts import AlertWriter

    counts = _api(workbench, "/api/alerts", kind="SPOOFING")["counts"]["open_by_kind"]
    before = counts.get("SPOOFING", 0)  # 0 once the browser closed the day's one
    page = open_page("analyst", "/queue.html?kind=SPOOFING&status=OPEN")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("queue-summary")).to_contain_text("shown")
    spoofing_count = page.locator('#counts li[data-kind="SPOOFING"]')
    page.evaluate("window.sameDocument = true")
    now_ns = time.time_ns()
    run = uuid.uuid4().hex[:8]
    other = make_alert("WASH_TRADE", f"browser-{run}-wash", "70", now_ns, account="A1",
                       owner="alice", symbol="ACME", details={"score": 70})  # fmt: skip
    spoof = make_alert("SPOOFING", f"browser-{run}-spoof", "88", now_ns, account="C1",
                       owner="carol", symbol="CORE",
                       details={"score": 88, "pattern": "layering"})  # fmt: skip
    writer = AlertWriter(workbench.dsn, workbench.edge.config.redis_url)
    try:
        assert writer.write([other, spoof]) == 2
    finally:
        writer.close()

    first = page.get_by_test_id("alert-row").first
    expect(first).to_have_attribute("data-alert-id", spoof.alert_id)
    expect(first).to_have_class(re.compile("live"))
    expect(first).to_contain_text("live")
    expect(first).to_contain_text("C1")
    # The wash trade came first on the stream but is not in this view; the counts have both.
    expect(page.locator(f'tr[data-alert-id="{other.alert_id}"]')).to_have_count(0)
    expect(spoofing_count).to_have_attribute("data-count", str(before + 1))
    assert page.evaluate("window.sameDocument") is True
    # The same alert is in PostgreSQL, where a reload of the queue finds it.
    page.reload()
    expect(page.locator(f'tr[data-alert-id="{spoof.alert_id}"]')).to_have_count(1)


def test_several_selected_alerts_take_one_action(workbench: Workbench, open_page: OpenPage) -> None:
    from playwright.sync_api import expect

    targets = workbench.alert_ids("OWNERSHIP_MISSING")
    assert len(targets) >= 2
    page = open_page("analyst", "/queue.html?kind=OWNERSHIP_MISSING")
    expect(page.get_by_test_id("alert-row")).to_have_count(len(targets))
    page.get_by_label("select every alert shown").check()
    expect(page.get_by_test_id("selected-count")).to_have_text(f"{len(targets)} selected")
    page.locator("#bulk-action").select_option("assign")
    page.locator("#bulk-assignee").fill("bob")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.get_by_test_id("bulk-result")).to_have_text(
        f"assign: applied to {len(targets)} of {len(targets)}"
    )
    for target in targets:
        expect(page.locator(f'tr[data-alert-id="{target}"]')).to_contain_text("bob")
    with psycopg.connect(workbench.dsn) as conn:
        assigned = conn.execute("SELECT alert_id FROM alerts WHERE assignee = 'bob' "
                                "ORDER BY alert_id").fetchall()  # fmt: skip
    assert [r[0] for r in assigned] == sorted(targets)


def test_account_page_tables_download_as_csv(workbench: Workbench, open_page: OpenPage) -> None:
    from playwright.sync_api import expect

    target = _labelled_alert(workbench, "SPOOFING")
    day = _api(workbench, f"/api/alerts/{target}")["event_time"][:10]
    page = open_page("analyst", f"/alert.html?id={target}")
    page.get_by_test_id("account-link").click()
    expect(page).to_have_url(re.compile(rf"/account\.html\?account=C1&from={day}&to="))
    expect(page.get_by_test_id("account-title")).to_have_text("Account C1 (carol)")
    query = dict(part.split("=") for part in page.url.split("?")[1].split("&"))
    view = _api(workbench, "/api/accounts/C1", **{k: query[k] for k in ("from", "to")})
    orders = page.get_by_test_id("orders-table").locator("tbody tr")
    expect(orders).to_have_count(len(view["orders"]["rows"]))
    expect(page.get_by_test_id("account-alerts-table")).to_contain_text("SPOOFING")
    with page.expect_download() as download:
        page.get_by_test_id("csv-orders").click()
    assert download.value.suggested_filename == "C1-orders.csv"
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows[0] == view["orders"]["columns"]
    assert len(rows) == len(view["orders"]["rows"]) + 1
    assert (
        rows[1][view["orders"]["columns"].index("cl_ord_id")]
        == (view["orders"]["rows"][0]["cl_ord_id"])
    )


def test_reports_page_runs_a_report_and_links_its_csv(
    workbench: Workbench, open_page: OpenPage
) -> None:
    from playwright.sync_api import expect

    target = _labelled_alert(workbench, "SPOOFING")
    day = _api(workbench, f"/api/alerts/{target}")["event_time"][:10]
    page = open_page("analyst", "/queue.html")
    page.get_by_role("link", name="Reports").click()
    report = page.locator('[data-testid="report"][data-name="trading_history"]')
    report.get_by_label("account", exact=True).fill("C1")
    report.get_by_label("from", exact=True).fill(day)
    report.get_by_label("to", exact=True).fill(f"{day} 23:59:59")
    report.get_by_role("button", name="Run").click()
    params = {"account": "C1", "from": day, "to": f"{day} 23:59:59"}
    expected = _api(workbench, "/api/reports/trading_history", **params)
    expect(report.get_by_test_id("report-table").locator("tbody tr")).to_have_count(
        len(expected["rows"])
    )
    href = report.get_by_test_id("csv-link").get_attribute("href")
    assert "format=csv" in href and "token=" in href
    response = page.request.get(workbench.url + href)
    assert response.ok and response.headers["content-type"].startswith("text/csv")
    assert len(response.text().strip().splitlines()) == len(expected["rows"]) + 1


def test_a_trader_token_sees_no_surveillance_through_the_pages(
    workbench: Workbench, open_page: OpenPage
) -> None:
    from playwright.sync_api import expect

    page = open_page("trader", "/queue.html")
    expect(page.get_by_test_id("who")).to_have_text("tom (trader)")
    expect(page.get_by_test_id("queue-summary")).to_contain_text("shown")
    for kind in SURVEILLANCE:
        expect(page.locator(f'[data-testid="alert-row"][data-kind="{kind}"]')).to_have_count(0)
        expect(page.locator(f'#counts li[data-kind="{kind}"]')).to_have_count(0)
    expect(page.get_by_role("link", name="Reports")).to_be_hidden()
    expect(page.locator("#bulk")).to_be_hidden()

    asked = open_page("trader", "/queue.html?kind=SPOOFING")
    expect(asked.get_by_test_id("error")).to_have_text(
        "forbidden: a trader token does not see surveillance alerts (SPOOFING)"
    )

    spoof = _labelled_alert(workbench, "SPOOFING")
    detail = open_page("trader", f"/alert.html?id={spoof}")
    expect(detail.get_by_test_id("error")).to_contain_text("forbidden:")
    expect(detail.get_by_test_id("error")).to_contain_text("surveillance")
    expect(detail.get_by_test_id("headline")).to_be_hidden()

    own = open_page("trader", "/account.html?account=K1")
    expect(own.get_by_test_id("account-title")).to_contain_text("Account K1")
    other = open_page("trader", "/account.html?account=A1")
    expect(other.get_by_test_id("error")).to_contain_text("not one of this trader token's")


def test_marking_the_close_is_drawn_with_its_last_half_hour_and_the_days_volume(
    workbench: Workbench, open_page: OpenPage, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    target = _labelled_alert(workbench, "MARKING_THE_CLOSE")
    alert = _api(workbench, f"/api/alerts/{target}")
    band, chart = alert["chart"]["band"], alert["chart"]
    # The model's window: the 30 minutes up to the close (21:00 UTC on the labelled day).
    assert (band["minutes"], band["to_ms"] - band["from_ms"]) == (30, 30 * 60_000)
    assert chart["from_ms"] < band["from_ms"] and chart["to_ms"] > band["to_ms"]
    in_band = [t for t in chart["ticks"]["t"] if band["from_ms"] <= t <= band["to_ms"]]
    assert in_band, "CLSE's trades in the last half hour are on the chart"
    assert max(v for v in chart["ticks"]["volume"] if v is not None) > 0
    page = open_page("analyst", f"/alert.html?id={target}")
    figure = page.get_by_test_id("chart")
    expect(figure).to_have_attribute("data-band", "30 min")
    expect(figure).to_have_attribute("data-markers", re.compile(r"[1-9]"))  # nina's buy
    expect(page.get_by_test_id("chart-note")).to_contain_text("30 minutes up to the alert")
    save_screenshot(page, tmp_path, "marking-the-close.png")
