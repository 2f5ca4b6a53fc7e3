"""The trader's page of the web console (issue 19, part 6) in a real Chromium (Playwright),
against a real edge, Redis and PostgreSQL, fed the way the flows feed them: execution reports
through the ledger flow's `order_frames_of` and the order-status sink's writer (`stream:orders`,
`orders:open:{account}`), holdings and margin documents through `sinks.positions`, quotes as
the quotes flow writes them, market status through `sinks.market_status`, price alerts created
with the page's form and fired through the price-alert book and its sink.

A trader sees the open-order snapshot, an order going NEW -> PARTIALLY_FILLED -> FILLED and a
REJECTED one with its reason, never another account's order; a holding whose P&L follows the
quote that moves its mark, and a margin call flagged; a price alert set with the form (a bad
value refused next to its field) in the list, fired, and deleted; the market banner on a halt.
An analyst's page shows none of the trader's panels.

Set `BROKERFLOW_UPDATE_SCREENSHOTS=1` to also write `docs/img/trader-page.png`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from domain.circuit_breaker import BreakerPolicy, CircuitBreaker
from domain.events import HALTED, OPEN, ExecutionReport, SecurityStatus
from domain.market_status import MarketStatusBook
from domain.positions import holdings_doc, margin_doc
from domain.price_alerts import PriceAlertBook
from flows.ledger import order_frames_of
from sinks.fired_price_alerts import FiredPriceAlertWriter
from sinks.market_status import write_statuses
from sinks.order_status import OrderStatusWriter
from sinks.positions import HOLDINGS, MARGIN, PositionsPublisher
from sinks.postgres import migrate
from sinks.price_alerts import PriceAlertReader
from tests.browser import launched_chromium, needs_chromium, save_screenshot
from tests.edge.conftest import RunningEdge, running_edge

pytestmark = needs_chromium
BAND = "price outside the band 180.00-195.00"  # a venue's Text (58)
SEEN_S = 15_000  # ms a page may take to show a change on this busy 2-core machine

OpenPage = Callable[[str], Any]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as launched:
        yield launched


@pytest.fixture
def open_page(browser: Any, edge: RunningEdge) -> Iterator[OpenPage]:
    """`open_page(token)`: the console in a tab of its own context; script errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_(token: str) -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{edge.http_url}/?token={token}")
        see(page.locator("#status"), "live")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


@pytest.fixture
def edge(redis_db_url: str, pg_dsn: str) -> Iterator[RunningEdge]:
    """An edge with its PostgreSQL (price alerts), migrated."""
    migrate(pg_dsn)
    with running_edge(redis_db_url, postgres_dsn=pg_dsn) as running:
        yield running


def see(locator: Any, text: str | list[str]) -> None:
    from playwright.sync_api import expect

    expect(locator).to_have_text(text, timeout=SEEN_S)


def create_alert(page: Any, symbol: str, condition: str, value: str) -> None:
    """Fill the price-alert form and submit it, as a trader does."""
    form = page.locator("#price-alert-form")
    form.locator("#pa-symbol").fill(symbol)
    form.locator("#pa-condition").select_option(condition)
    form.locator("#pa-value").fill(value)
    form.locator("button[type=submit]").click()


def now_ns() -> int:
    return time.time_ns()


# -- the flows' writes ---------------------------------------------------------------------------


def execution(
    exec_id: str,
    cl_ord_id: str,
    exec_type: str,
    ord_status: str,
    *,
    account: str = "T1",
    symbol: str = "AAPL",
    side: str = "1",
    qty: str = "100",
    last: tuple[str, str] = ("0", "0"),
    cum: str = "0",
    avg: str = "0",
    leaves: str | None = None,
    text: str | None = None,
    order_id: str | None = None,
    orig: str | None = None,
) -> ExecutionReport:
    """An execution report (35=8) as the FIX decoder makes it."""
    left = Decimal(qty) - Decimal(cum) if leaves is None else Decimal(leaves)
    return ExecutionReport(
        exec_id, order_id or "O-" + (orig or cl_ord_id), cl_ord_id, orig, exec_type, ord_status,
        account,
        symbol, side, Decimal(qty), "2", Decimal("190"), None, Decimal(last[0]),
        Decimal(last[1]), Decimal(cum), left, Decimal(avg), now_ns(), text=text,
    )  # fmt: skip


def book(edge: RunningEdge, *reports: ExecutionReport) -> None:
    """What the ledger flow's `write_order_status` step does with booked reports."""
    writer = OrderStatusWriter(edge.config.redis_url)
    try:
        for frames in order_frames_of(list(reports)):
            writer.write(frames)
    finally:
        writer.close()


def publish_positions(
    edge: RunningEdge,
    account: str,
    holdings: list[tuple[str, Decimal, Decimal, Decimal]],
    cash: Decimal,
    equity: Decimal,
    excess: Decimal,
    state: str = "NORMAL",
) -> None:
    """The ledger's holdings document and the margin flow's figures of `account`."""
    ts = now_ns() // 1_000_000
    publisher = PositionsPublisher(edge.config.redis_url)
    try:
        publisher.publish(HOLDINGS, [(account, ts, holdings_doc(account, cash, holdings, ts))])
        publisher.publish(MARGIN, [(account, ts, margin_doc(account, equity, excess, state, ts))])
    finally:
        publisher.close()


def publish_status(edge: RunningEdge, book: MarketStatusBook, *events: Any) -> None:
    """What the stop engine's shards and `sinks.market_status` do with decoded statuses."""
    changes = [change for event in events if (change := book.apply(event)) is not None]
    client = redis.Redis.from_url(edge.config.redis_url)
    try:
        write_statuses(client, changes, 1000)
    finally:
        client.close()


def fire_price_alerts(edge: RunningEdge, symbol: str, ltp: float, prev_close: float) -> None:
    """What the quotes flow's price-alert step and its sink do with a published quote."""
    reader = PriceAlertReader(edge.config.postgres_dsn)
    book = PriceAlertBook()
    book.add_many(reader.load({symbol}))
    reader.close()
    writer = FiredPriceAlertWriter(edge.config.postgres_dsn, edge.config.redis_url)
    try:
        writer.write(book.on_price(symbol, ltp, prev_close, now_ns() // 1_000_000))
    finally:
        writer.close()


def money(x: Decimal) -> str:
    """A figure as the page shows it: 2 decimals, thousands separated, signed when asked."""
    return f"{x:,.2f}"


def fill(qty: str, px: str) -> dict[str, Any]:
    """The fields of an order's first fill: last, cum and average."""
    return {"last": (qty, px), "cum": qty, "avg": px}


def signed(x: Decimal) -> str:
    return ("+" if x > 0 else "") + money(x)


# -- the tests -----------------------------------------------------------------------------------


def test_trader_page_orders_snapshot_then_live_statuses_and_no_other_account(
    edge: RunningEdge, open_page: OpenPage
) -> None:
    # Before the page opens: C0 partly filled and C1 new are open; U1's order is not tina's.
    book(
        edge,
        execution("E0", "C0", "0", "0", symbol="MSFT", side="2", qty="50"),
        execution("E0b", "C0", "F", "1", symbol="MSFT", side="2", qty="50", **fill("20", "401.10")),
        execution("E1", "C1", "0", "0"),
        execution("X1", "D1", "0", "0", account="U1"),
    )
    page = open_page(edge.token("tina", "trader", ("T1",)))
    c0, c1 = page.locator("#order-C0"), page.locator("#order-C1")
    see(c1.locator("td.ord_status"), "NEW")
    see(c0.locator("td.ord_status"), "PARTIALLY FILLED")
    see(c0.locator("td.filled"), "20 / 50")
    see(c0.locator("td.side"), "SELL")
    see(page.locator("#orders-open"), "2 open")

    first, second = (Decimal("40"), Decimal("187.30")), (Decimal("60"), Decimal("187.40"))
    avg = (first[0] * first[1] + second[0] * second[1]) / (first[0] + second[0])
    book(edge, execution("E2", "C1", "F", "1", **fill("40", "187.30")))
    see(c1.locator("td.ord_status"), "PARTIALLY FILLED")
    see(c1.locator("td.filled"), "40 / 100")
    see(c1.locator("td.leaves_qty"), "60")
    see(c1.locator("td.last"), "40 @ 187.30")
    book(edge, execution("E3", "C1", "F", "2", last=("60", "187.40"), cum="100", avg=str(avg)))
    see(c1.locator("td.ord_status"), "FILLED")
    see(c1.locator("td.filled"), "100 / 100")
    see(c1.locator("td.avg_px"), money(avg))
    see(page.locator("#orders-open"), "1 open")

    # Another account's reject, then tina's: once hers shows, the other had its turn.
    book(
        edge,
        execution("X2", "D2", "8", "8", account="U1", leaves="0", text="not yours"),
        execution("E4", "C2", "8", "8", leaves="0", order_id="NONE", text=BAND),
    )
    c2 = page.locator("#order-C2")
    see(c2.locator("td.ord_status"), "REJECTED")
    see(c2.locator("td.reason"), BAND)
    assert page.locator("#order-D1, #order-D2").count() == 0
    rows = page.locator("#orders tbody tr")
    assert sorted(rows.locator("td.account").all_text_contents()) == ["T1", "T1", "T1"]
    # Newest first: the reject, the filled order (updated in place), the older one.
    assert [r.get_attribute("data-cl-ord-id") for r in rows.all()] == ["C2", "C1", "C0"]

    # A cancel has a ClOrdID of its own (41 names the order's): it stays on the order's row.
    book(edge, execution("E5", "C3", "0", "0", symbol="MSFT"))
    see(page.locator("#order-C3 td.ord_status"), "NEW")
    book(edge, execution("E6", "C3-X", "4", "4", symbol="MSFT", orig="C3", leaves="0"))
    see(page.locator("#order-C3 td.ord_status"), "CANCELED")
    assert page.locator("#orders tbody tr").count() == 4

    # A reload is a new connection: the open-order snapshot again (C0 alone is still open).
    page.reload()
    see(page.locator("#orders tbody tr td.symbol"), ["MSFT"])
    see(page.locator("#order-C0 td.filled"), "20 / 50")
    see(page.locator("#orders-open"), "1 open")


def test_trader_page_positions_pnl_follows_the_mark_and_flags_a_margin_call(
    edge: RunningEdge, open_page: OpenPage
) -> None:
    quantity, avg_price, realised = Decimal(100), Decimal("187.36"), Decimal("-12.50")
    edge.set_quote("AAPL", seq=1, bid=187.40)  # ltp = bid in the fixture's quotes
    publish_positions(edge, "T1", [("AAPL", quantity, avg_price, realised)],
                      cash=Decimal("81250.50"), equity=Decimal("100000"),
                      excess=Decimal("23400.10"))  # fmt: skip
    publish_positions(edge, "U1", [("AAPL", Decimal(5), Decimal(1), Decimal(0))],
                      cash=Decimal(1), equity=Decimal(1), excess=Decimal(1))  # fmt: skip
    page = open_page(edge.token("tina", "trader", ("T1",)))
    row = page.locator("#pos-T1-AAPL")
    see(row.locator("td.quantity"), "100")
    see(row.locator("td.avg_price"), money(avg_price))
    see(row.locator("td.mark"), "187.40")
    see(row.locator("td.unrealised_pnl"), signed((Decimal("187.40") - avg_price) * quantity))
    see(row.locator("td.realised_pnl_today"), signed(realised))
    account = page.locator('#accounts tr[data-account="T1"]')
    see(account.locator("td.cash"), "81,250.50")
    see(account.locator("td.excess"), "+23,400.10")
    see(account.locator("td.state"), "normal")

    edge.set_quote("AAPL", seq=2, bid=190.0)  # the mark moves
    see(row.locator("td.mark"), "190.00")
    see(row.locator("td.unrealised_pnl"), signed((Decimal("190.00") - avg_price) * quantity))
    assert row.locator("td.unrealised_pnl").get_attribute("class") == "unrealised_pnl up"

    publish_positions(edge, "T1", [("AAPL", quantity, avg_price, realised)],
                      cash=Decimal("-20000"), equity=Decimal("900"), excess=Decimal("-150"),
                      state="CALL")  # fmt: skip
    see(account.locator("td.state"), "MARGIN CALL")
    assert account.get_attribute("class") == "margin-call"
    see(page.locator("#margin-flag"), "MARGIN CALL on T1: excess -150.00")
    assert page.locator('#accounts tr[data-account="U1"], #pos-U1-AAPL').count() == 0


def test_trader_page_price_alert_form_list_delete_and_fire(
    edge: RunningEdge, open_page: OpenPage
) -> None:
    edge.set_quote("AAPL", seq=1, bid=187.40, prev_close=185.0, change=2.4, change_pct=1.3)
    page = open_page(edge.token("tina", "trader", ("T1",)))
    form = page.locator("#price-alert-form")
    assert form.locator("#pa-account").is_hidden()  # one account: the edge takes the token's
    create_alert(page, "aapl", "ltp_above", "abc")
    value_error = form.locator('.field-error[data-field="value"]')
    see(value_error, "'abc' is not a number")
    assert "invalid" in (form.locator("#pa-value").get_attribute("class") or "")

    create_alert(page, "aapl", "ltp_above", "190")
    row = page.locator("#price-alerts tbody tr")
    see(row.locator("td"), ["AAPL", "LTP at or above", "190.00", "ACTIVE", "×"])
    see(value_error, "")
    create_alert(page, "AAPL", "ltp_below", "150.5")
    see(page.locator("#price-alerts td.value"), ["150.50", "190.00"])  # newest first
    page.locator("#price-alerts tbody tr").first.locator("button.remove").click()
    see(page.locator("#price-alerts td.value"), ["190.00"])
    with psycopg.connect(edge.config.postgres_dsn) as conn:
        rows = conn.execute("SELECT value, status FROM price_alerts ORDER BY id").fetchall()
    assert rows == [(Decimal("190"), "ACTIVE"), (Decimal("150.5"), "DELETED")]

    edge.set_quote("AAPL", seq=2, bid=190.25, prev_close=185.0, change=5.25, change_pct=2.84)
    fire_price_alerts(edge, "AAPL", 190.25, 185.0)
    see(page.locator("#price-alerts td.alert_status"), ["FIRED at 190.25"])
    fired = page.locator("#alerts li.price")
    see(fired.locator("strong"), "PRICE_ALERT")
    assert "190.25" in fired.inner_text()
    see(page.locator("#price-alert-count"), "0 active")
    page.reload()  # the list comes from PostgreSQL: the fired alert, not the deleted one
    see(page.locator("#price-alerts td.alert_status"), ["FIRED at 190.25"])


def test_trader_page_price_alert_names_one_of_the_tokens_accounts(
    edge: RunningEdge, open_page: OpenPage
) -> None:
    edge.set_quote("AAPL", seq=1, bid=187.40)
    page = open_page(edge.token("tina", "trader", ("T1", "T2")))
    account = page.locator("#pa-account")
    see(account.locator("option"), ["T1", "T2"])  # a token with several must name one
    account.select_option("T2")
    create_alert(page, "AAPL", "ltp_below", "180")
    see(page.locator("#price-alerts td.alert_status"), ["ACTIVE"])
    with psycopg.connect(edge.config.postgres_dsn) as conn:
        rows = conn.execute("SELECT account, user_id FROM price_alerts").fetchall()
    assert rows == [("T2", "tina")]


def test_trader_page_market_banner_on_a_halt(
    edge: RunningEdge, open_page: OpenPage, tmp_path: Path
) -> None:
    edge.set_quote("AAPL", seq=1, bid=187.40, prev_close=185.0, change=2.4, change_pct=1.3)
    edge.set_quote("MSFT", seq=1, bid=401.00, prev_close=405.0, change=-4.0, change_pct=-0.99)
    edge.redis.rpush("watchlist:tina", "AAPL", "MSFT")
    book(edge, execution("E1", "C1", "0", "0"), execution("E2", "C2", "0", "0", symbol="MSFT"),
         execution("E3", "C2", "F", "1", symbol="MSFT", **fill("30", "401.00")))  # fmt: skip
    publish_positions(edge, "T1", [("AAPL", Decimal(100), Decimal("187.36"), Decimal(0)),
                                   ("MSFT", Decimal(30), Decimal("401.00"), Decimal("-12.50"))],
                      cash=Decimal("81250.50"), equity=Decimal("112000"),
                      excess=Decimal("23400.10"))  # fmt: skip
    page = open_page(edge.token("tina", "trader", ("T1",)))
    banner = page.locator("#market-banner")
    see(page.locator("#q-MSFT td.bid"), "401.00")
    assert banner.is_hidden()

    # The index falls 10.2 % below its close: the breaker trips level 1 (the flows' rules).
    breaker = CircuitBreaker(BreakerPolicy(index_symbol="IDX"))
    statuses = MarketStatusBook()
    ts = now_ns()
    breaker.on_price("IDX", 5000.0, ts - 10**9, close=True)
    trip = breaker.on_price("IDX", 4490.0, ts)
    assert trip is not None and trip.until_ns is not None
    symbol_halt = SecurityStatus("MSFT", HALTED, "2", "news pending", None, None, ts)
    publish_status(edge, statuses, trip, symbol_halt)
    until = time.strftime("%H:%M:%S", time.gmtime(trip.until_ns // 10**9))
    market_text = f"Market HALTED (level {trip.level}): {trip.reason} until {until} UTC"
    see(banner.locator(".scope-market"), market_text)
    see(banner.locator(".scope-symbol"), ["MSFT HALTED: news pending"])
    assert "halted" in (page.locator("#q-MSFT").get_attribute("class") or "")
    create_alert(page, "AAPL", "ltp_above", "195")
    see(page.locator("#price-alerts td.alert_status"), ["ACTIVE"])
    book(edge, execution("E4", "C3", "8", "8", leaves="0", order_id="NONE", text=BAND))
    see(page.locator("#order-C3 td.reason"), BAND)
    save_screenshot(page, tmp_path, "trader-page.png")

    page.reload()  # a new connection learns the state as it stands
    see(banner.locator(".scope-market"), market_text)
    see(banner.locator(".scope-symbol"), ["MSFT HALTED: news pending"])
    see(page.locator("#q-MSFT td.bid"), "401.00")
    assert "halted" in (page.locator("#q-MSFT").get_attribute("class") or "")
    reopening = breaker.on_time(trip.until_ns)
    assert reopening is not None
    symbol_open = SecurityStatus("MSFT", OPEN, "17", None, None, None, trip.until_ns)
    publish_status(edge, statuses, reopening, symbol_open)
    see(banner.locator("*"), [])
    assert banner.is_hidden()
    assert "halted" not in (page.locator("#q-MSFT").get_attribute("class") or "")


def test_analyst_page_has_none_of_the_trader_panels(edge: RunningEdge, open_page: OpenPage) -> None:
    book(edge, execution("E1", "C1", "0", "0"))
    page = open_page(edge.token("sue", "analyst"))
    see(page.locator("#who"), "sue (analyst)")
    for section in ("positions", "orders", "price-alerts"):
        assert page.locator(f"#{section}-section").is_hidden()
    assert page.locator("#orders tbody tr").count() == 0
    assert page.locator("#charts-section").is_visible()
