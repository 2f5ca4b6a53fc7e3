"""A quiet market on the exchange simulator (`ExchangeServer.set_quiet`: what `simulate-exchange
--quiet-after` and SIGUSR1 do): no market data while quiet, the session stays logged on, and
back to live the market skips what it would have sent meanwhile. Over loopback."""

from __future__ import annotations

import asyncio
import time

from connectors.fix.live import market_data_request
from connectors.fix.session import Initiator, SessionConfig
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeServer, default_sessions
from tests.eventually import eventually_async

QUIET_TICKS = 100  # pacer ticks (20 ms) the market stays quiet: ~2 s, ~200 events held back


async def _quiet_then_live() -> dict[str, int | bool]:
    core = ExchangeCore(2, time.time_ns(), rate_per_symbol=50, orders_per_minute=0)
    server = ExchangeServer(core, default_sessions())
    ticks = [0]
    log_sessions = server._log_sessions  # noqa: SLF001 - counted: called once per pacer tick

    def counted() -> None:
        ticks[0] += 1
        log_sessions()

    server._log_sessions = counted  # noqa: SLF001
    port = await server.start()
    initiator = Initiator(SessionConfig("BROKERFLOW", "SIMX", port=port, heartbeat_s=5))
    initiator.start()
    out: dict[str, int | bool] = {}
    try:
        await initiator.wait_logged_on(5)
        initiator.send(market_data_request("R1", ("AAPL", "MSFT")))
        await eventually_async(lambda: server.sent.get("X", 0) >= 3, every=0.01, what="3 35=X sent")
        server.set_quiet(True)
        sent, generated, at = server.sent["X"], core.stats.incrementals, ticks[0]
        await eventually_async(
            lambda: ticks[0] >= at + QUIET_TICKS, every=0.01, what="the quiet ticks"
        )
        out["x_while_quiet"] = server.sent["X"] - sent
        out["generated_while_quiet"] = core.stats.incrementals - generated
        out["logged_on_while_quiet"] = initiator.logged_on
        before = core.stats.incrementals
        server.set_quiet(False)  # skips the backlog now
        out["backlog_skipped"] = core.stats.incrementals - before
        at = ticks[0]
        await eventually_async(lambda: ticks[0] >= at + 1, every=0.01, what="a pacer tick")
        out["first_live_tick"] = core.stats.incrementals - before
        await eventually_async(lambda: server.sent["X"] > sent, every=0.01, what="a 35=X sent")
        out["live_again"] = True
    finally:
        await initiator.stop()
        await server.close()
    return out


def test_a_quiet_market_sends_no_market_data_and_skips_its_backlog_when_live_again():
    out = asyncio.run(_quiet_then_live())
    assert out["x_while_quiet"] == 0 and out["generated_while_quiet"] == 0
    assert out["logged_on_while_quiet"] is True
    # ~200 events were due while quiet: dropped at once, not sent in a burst after
    assert out["backlog_skipped"] > QUIET_TICKS // 2
    assert out["first_live_tick"] - out["backlog_skipped"] < QUIET_TICKS // 2
    assert out["live_again"] is True
