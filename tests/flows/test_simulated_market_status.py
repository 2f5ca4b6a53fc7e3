"""The simulators' market status (issue 19, part 5): `brokerflow simulate` (a FIX file) and the
exchange simulator (live FIX sessions) produce halts, price bands and a falling index, and the
flows act on them: halt rows, bands in the quotes, the circuit breaker's trip. Real PostgreSQL
and Redis; the CLI as users run it."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import psycopg
import pytest
import redis

from brokerflow.cli import main
from simulator.exchange import ExchangeCore, split_message
from simulator.exchange_server import ExchangeThread, default_sessions
from simulator.market import format_price
from simulator.market_status import Halt, IndexFall, StatusScenario, opening_prices
from simulator.stops import stop_order
from tests.flows.test_live_run import _config, _run


@pytest.fixture
def stores(settings_factory, monkeypatch):
    settings = settings_factory()
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("BROKERFLOW_MARKET_STATUS", '{"index_symbol": "IDX"}')
    return settings


def halt_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT source, scope, ended_at IS NOT NULL FROM trading_halts ORDER BY started_at"
        ).fetchall()


def breaker_alerts(dsn: str) -> list[dict]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT details FROM alerts WHERE kind = 'CIRCUIT_BREAKER'")
        return [details for (details,) in rows.fetchall()]


def test_simulated_file_with_halts_bands_and_a_falling_index(stores, tmp_path, capsys):
    day = tmp_path / "day.fix"
    assert main([
        "simulate", "--symbols", "4", "--minutes", "12", "--rate", "2", "--out", str(day),
        "--market-halt", "2+1", "--halt", "AAPL@3+2", "--bands", "5", "--index-fall", "12@5+4",
    ]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["replay", str(day), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["dead_letters"] == 0
    assert summary["alerts"].get("CIRCUIT_BREAKER") == 1
    # 35=h 14:32-14:33, 35=f AAPL 14:33-14:35, the index 10 % down at 14:38:20: 45 minutes on
    assert halt_rows(stores.postgres_dsn) == [
        ("venue", "market", True), ("venue", "AAPL", True), ("circuit_breaker", "market", False)
    ]  # fmt: skip
    [trip] = breaker_alerts(stores.postgres_dsn)
    assert trip["level"] == 1 and trip["previous_close"] == 20_000.0
    r = redis.Redis.from_url(stores.redis_url)
    status = json.loads(r.get("market:status"))
    assert (status["state"], status["level"], status["source"]) == ("HALTED", 1, "circuit_breaker")
    quote = json.loads(r.get("quote:AAPL"))
    assert quote["lower_band"] < quote["open"] < quote["upper_band"]
    r.close()


def test_exchange_simulator_sends_halts_bands_and_the_index_to_a_live_run(stores, tmp_path, capsys):
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=20, orders_per_minute=0,
                        run_id="SXM")  # fmt: skip
    thread = ExchangeThread(core, default_sessions())
    thread.start()

    def when_subscribed() -> None:
        # a minute's scenario in seconds, from the run's subscription on: AAPL halted from
        # 0.5 s to 2 s; the index 12 % down between 0.5 s and 1.5 s, printed every 0.2 s; its
        # previous close and the bands come with the subscription's answer (35=W, 35=f)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            app = thread.server.apps.get(("FIX.4.4", "SIMX", "BROKERFLOW"))
            if app is not None and app.subscribed:
                break
            time.sleep(0.02)
        scenario = StatusScenario(
            time.time_ns(), [Halt("AAPL", 0.5, 1.5)], 5.0, opening_prices(core.market),
            IndexFall(12.0, 0.5, 1.0, print_every_s=0.2),
        )  # fmt: skip
        thread.add_status(scenario)

    # bands and the index's close must be known before the subscription: a first scenario
    # with nothing due (its messages start in an hour) sets them
    later = time.time_ns() + 3600 * 10**9
    thread.add_status(StatusScenario(later, [], 5.0, opening_prices(core.market),
                                     IndexFall(12.0, 0.5, 1.0)))  # fmt: skip
    threading.Thread(target=when_subscribed, daemon=True).start()
    # The band tags (1148/1149) are FIX 5.0: a FIX 4.4 session validating against the
    # dictionary refuses them (35=3), so the run's market-data session does not validate.
    config = _config(tmp_path, thread.port)
    text = config.read_text().replace(
        'purpose = ["market-data", "drop-copy"]\n',
        'purpose = ["market-data", "drop-copy"]\nvalidate = false\n',
    )
    assert "validate = false" in text
    config.write_text(text)
    try:
        summary = _run(config, 5, capsys)
    finally:
        thread.stop()
    assert summary["dead_letters"] == 0
    assert summary["alerts"].get("CIRCUIT_BREAKER") == 1
    rows = halt_rows(stores.postgres_dsn)
    assert ("venue", "AAPL", True) in rows and ("circuit_breaker", "market", False) in rows
    r = redis.Redis.from_url(stores.redis_url)
    assert json.loads(r.get("market:status"))["level"] == 1
    assert "lower_band" in json.loads(r.get("quote:AAPL"))
    r.close()


def test_exchange_halt_holds_a_stop_until_the_reopening(stores, tmp_path, capsys):
    """Live: a sell stop crossed during AAPL's halt does not fire at that price; it fires at
    the first crossing price after the venue's resume."""
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nACC1,alice,100000\n")
    assert main(["load", "accounts", str(tmp_path / "accounts.csv")]) == 0
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=20, orders_per_minute=0,
                        run_id="SXH")  # fmt: skip
    thread = ExchangeThread(core, default_sessions())
    thread.start()
    started: list[int] = []
    last: list[int] = []

    def trade(ticks: int) -> list:
        return [(268, b"1"), (279, b"0"), (269, b"2"), (55, b"AAPL"),
                (270, format_price(ticks).encode()), (271, b"100")]  # fmt: skip

    def when_subscribed() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            app = thread.server.apps.get(("FIX.4.4", "SIMX", "BROKERFLOW"))
            if app is not None and app.subscribed:
                break
            time.sleep(0.02)
        started.append(time.time_ns())
        thread.add_status(StatusScenario(started[0], [Halt("AAPL", 0.5, 1.5)]))
        last.append(core.market.top_of_book(core.symbols.index(b"AAPL"))[4])
        # a sell stop 50 cents under the market, before the halt
        message = stop_order("STP-H", "ACC1", "AAPL", "2", last[0] - 50, time.time_ns(), 1)
        thread.inject(*split_message(message))
        time.sleep(1.0)
        thread.inject(b"X", trade(last[0] - 60))  # crosses it during the halt: held
        time.sleep(1.3)
        thread.inject(b"X", trade(last[0] - 70))  # after the resume: fires here

    threading.Thread(target=when_subscribed, daemon=True).start()
    try:
        summary = _run(_config(tmp_path, thread.port), 5, capsys)
    finally:
        thread.stop()
    assert summary["stops"] == {"accepted": 1, "triggered": 1}
    with psycopg.connect(stores.postgres_dsn) as conn:
        trigger_px, triggered_at = conn.execute(
            "SELECT trigger_px, triggered_at FROM stop_orders WHERE cl_ord_id = 'STP-H'"
        ).fetchone()
    assert trigger_px == Decimal(format_price(last[0] - 70))  # not the price of the halt
    resumed_ms = (started[0] + 2 * 10**9) // 10**6  # the 35=f 326=17's TransactTime
    assert triggered_at.timestamp() * 1000 >= resumed_ms
