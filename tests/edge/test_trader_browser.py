"""The trader's page of the web console (issue 19, part 6) in a real Chromium (Playwright),
against a real edge and Redis, fed the way the flows feed them: execution reports
through the ledger flow's `order_frames_of` and the order-status sink's writer (`stream:orders`,
`orders:open:{account}`).

A trader sees the open-order snapshot, an order going NEW -> PARTIALLY_FILLED -> FILLED and a
REJECTED one with its reason, a cancel on its order's row, never another account's order.
An analyst's page shows none of the trader's panels.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from domain.events import ExecutionReport
from flows.ledger import order_frames_of
from sinks.order_status import OrderStatusWriter
from tests.edge.conftest import RunningEdge

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)
BAND = "price outside the band 180.00-195.00"  # a venue's Text (58)
SEEN_S = 15_000  # ms a page may take to show a change on this busy 2-core machine

OpenPage = Callable[[str], Any]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


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


def see(locator: Any, text: str | list[str]) -> None:
    from playwright.sync_api import expect

    expect(locator).to_have_text(text, timeout=SEEN_S)


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


def test_analyst_page_has_none_of_the_trader_panels(edge: RunningEdge, open_page: OpenPage) -> None:
    book(edge, execution("E1", "C1", "0", "0"))
    page = open_page(edge.token("sue", "analyst"))
    see(page.locator("#who"), "sue (analyst)")
    for section in ("positions", "orders", "price-alerts"):
        assert page.locator(f"#{section}-section").is_hidden()
    assert page.locator("#orders tbody tr").count() == 0
    assert page.locator("#charts-section").is_visible()
