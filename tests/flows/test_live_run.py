"""`brokerflow run --config` over real FIX sessions against the exchange simulator (loopback)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis

from brokerflow.cli import main
from simulator.exchange import ExchangeCore, split_message
from simulator.exchange_server import ExchangeThread, default_sessions
from simulator.market import format_price
from simulator.stops import stop_order
from tests.eventually import eventually

SYMBOLS = ("AAPL", "MSFT", "NVDA")


@pytest.fixture
def exchange():
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=20, accounts=20,
                        orders_per_minute=1200, run_id="SXT")  # fmt: skip
    thread = ExchangeThread(core, default_sessions())
    thread.start()
    yield thread
    thread.stop()


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "run.toml"
    session = f'port = {port}\nheartbeat_s = 5\nstore_dir = "{tmp_path / "fix"}"\n'
    path.write_text(
        '[[fix.session]]\nname = "simx"\nsender_comp_id = "BROKERFLOW"\n'
        f'target_comp_id = "SIMX"\n{session}purpose = ["market-data", "drop-copy"]\n'
        f"symbols = {json.dumps(list(SYMBOLS))}\n\n"
        '[[fix.session]]\nname = "simx-oe"\nsender_comp_id = "BROKERFLOW-OE"\n'
        f'target_comp_id = "SIMX"\n{session}purpose = "order-entry"\n'
    )
    return path


def _inject_when_subscribed(exchange: ExchangeThread, body: list, trade: list) -> None:
    """Once the run's session subscribed: a client's order (35=D) on the drop copy, then a
    trade (35=X) in the feed."""

    def subscribed() -> bool:
        app = exchange.server.apps.get(("FIX.4.4", "SIMX", "BROKERFLOW"))
        return app is not None and app.subscribed

    def inject() -> None:
        eventually(subscribed, 10, 0.05, "the run's session subscribed")
        # Not waits for a condition: the flow sees AAPL's first prices, then the order,
        # before the trade (nothing in the stores says when it has).
        time.sleep(0.5)
        exchange.inject(b"D", body)
        time.sleep(0.3)
        exchange.inject(b"X", trade)

    threading.Thread(target=inject, daemon=True).start()


def _run(config: Path, seconds: float, capsys) -> dict:
    assert main(["run", "--config", str(config), "--seconds", str(seconds), "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture
def stores(settings_factory, monkeypatch, tmp_path, exchange):
    settings = settings_factory()
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_DATA_DIR", str(settings.data_dir))
    accounts, positions = tmp_path / "accounts.csv", tmp_path / "positions.csv"
    exchange.server.core.write_accounts(str(accounts), str(positions))
    assert main(["load", "accounts", str(accounts)]) == 0
    assert main(["load", "positions", str(positions)]) == 0
    return settings


def test_run_against_the_exchange_puts_quotes_in_redis_and_executions_in_postgres(
    stores, exchange, tmp_path, capsys
):
    summary = _run(_config(tmp_path, exchange.port), 4, capsys)
    assert summary["quotes"] > 0 and summary["files"] == ["fix:simx"]
    r = redis.Redis.from_url(stores.redis_url)
    for symbol in SYMBOLS:
        quote = json.loads(r.get(f"quote:{symbol}"))
        assert 0 < quote["bid"] < quote["ask"]
    assert r.get("quote:GOOGL") is None  # not subscribed
    with psycopg.connect(stores.postgres_dsn) as conn:
        (executions,) = conn.execute(
            "SELECT count(*) FROM executions WHERE exec_id LIKE 'SXT-%'"
        ).fetchone()
    assert executions == summary["executions"] > 0


def test_a_triggered_stop_goes_out_on_the_order_entry_session_once(
    stores, exchange, tmp_path, capsys
):
    core = exchange.server.core
    last = core.market.top_of_book(core.symbols.index(b"AAPL"))[4]
    # A sell stop 50 cents under the last price, then a trade under it: the stop fires.
    _, body = split_message(stop_order("STP-1", "ACC00001", "AAPL", "2", last - 50,
                                       time.time_ns(), 1))  # fmt: skip
    trade = [(268, b"1"), (279, b"0"), (269, b"2"), (55, b"AAPL"),
             (270, format_price(last - 60).encode()), (271, b"100")]  # fmt: skip
    config = _config(tmp_path, exchange.port)
    _inject_when_subscribed(exchange, body, trade)
    summary = _run(config, 5, capsys)
    assert summary["orders_out"] == 1
    assert core.orders_seen.get((("FIX.4.4", "SIMX", "BROKERFLOW-OE"), b"STP-1.T"))
    assert core.stats.fills >= 1
    with psycopg.connect(stores.postgres_dsn) as conn:
        row = conn.execute(
            "SELECT exec_type, last_qty FROM executions WHERE cl_ord_id = 'STP-1.T' "
            "AND exec_type = 'F'"
        ).fetchone()
    assert row is not None and row[1] == 100  # the fill, through the drop copy
    # A restart sees the same stop again and decides the same child: it is not sent twice.
    _inject_when_subscribed(exchange, body, trade)
    again = _run(config, 4, capsys)
    assert again["orders_out"] == 0
    assert core.stats.orders_received == 1 and core.stats.duplicates == 0
