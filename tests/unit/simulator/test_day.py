"""The pipeline day (`simulator.day`, composed by `bench.pipeline_day`): the books a broker has,
every kind of stop, contingent lists that decode, and surveillance patterns the models catch."""

from __future__ import annotations

import csv
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from bench.pipeline_day import DaySpec, ensure_day, generate
from connectors.fix import decode_lines
from domain.events import ExecutionReport, OrderList, OrderRequest
from flows.surveillance import AccountModels, SymbolModels, inputs_of, route
from simulator.day import PipelineDaySimulator
from simulator.market import MarketSimulator

SPEC = DaySpec(symbols=12, minutes=3, accounts=300, stops=600, seed=4)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory):
    return ensure_day(SPEC, tmp_path_factory.mktemp("days"), say=lambda _: None)


@pytest.fixture(scope="module")
def decoded(day):
    batch = decode_lines(day.path.read_bytes().splitlines(keepends=True), "day", 1)
    assert batch.dead_letters == []
    return batch


def _books(day) -> dict[str, dict]:
    with open(day.accounts_csv) as fh:
        books = {r["account"]: {"cash": Decimal(r["cash"]), "owner": r["owner"], "held": {}}
                 for r in csv.DictReader(fh)}  # fmt: skip
    with open(day.positions_csv) as fh:
        for r in csv.DictReader(fh):
            books[r["account"]]["held"][r["symbol"]] = int(r["quantity"])
    return books


def test_day_same_spec_same_bytes(day, tmp_path):
    again = tmp_path / "day.fix"
    generate(SPEC, again, say=lambda _: None)
    assert again.read_bytes() == day.path.read_bytes()
    assert again.with_suffix(".positions.csv").read_bytes() == day.positions_csv.read_bytes()


def test_day_is_cached_by_its_parameters(day, tmp_path_factory):
    directory = day.path.parent
    assert directory.name == SPEC.name
    assert ensure_day(SPEC, directory.parent, say=pytest.fail).path == day.path  # no regeneration


def test_day_books_diversified_margin_concentrated_and_near_the_maintenance_line():
    sim = PipelineDaySimulator(MarketSimulator(20, seed=9), accounts=400)
    opening = {s: sim.market.top_of_book(i)[4] / 100 for i, s in enumerate(sim.market.symbols)}
    ledger = sim.expected_ledger()
    counts = Counter(sim.profiles.values())
    assert counts["diversified"] > counts["margin"] > counts["concentrated"]
    assert counts["concentrated"] > counts["near_call"] > 0
    for account, profile in sim.profiles.items():
        book = ledger[account]
        values = [q * opening[s] for s, (q, _) in book.holdings.items()]
        gross = sum(values)
        ratio = (float(book.cash) + gross) / gross  # equity / position value at the open
        top_share = max(values) / gross
        if profile == "diversified":
            assert book.cash > 0 and top_share < 0.20 and len(values) >= 8
        elif profile == "concentrated":
            assert book.cash > 0 and top_share > 0.25
        elif profile == "margin":
            assert book.cash < 0 and 0.39 < ratio < 0.76
        else:  # near_call: just above the 30 % maintenance line
            assert book.cash < 0 and 0.300 < ratio < 0.307


def test_day_composition_counts_what_the_file_holds(day, decoded):
    c = day.composition
    assert c["messages"] == len(day.path.read_bytes().splitlines())
    assert sum(c["stops"].values()) == c["stop_orders"] == SPEC.stops
    singles = Counter(e.ord_type for e in decoded.events
                      if isinstance(e, OrderRequest) and e.cl_ord_id.startswith("STP"))  # fmt: skip
    assert {"stop": singles["3"], "stop_limit": singles["4"], "trailing": singles["P"]} == {
        k: c["stops"][k] for k in ("stop", "stop_limit", "trailing")}
    assert min(singles.values()) > 0
    lists = Counter(e.contingency_type for e in decoded.events if isinstance(e, OrderList))
    assert lists == {"1": c["stops"]["oco"], "2": c["stops"]["bracket"]}
    assert len(c["patterns"]) == 9


def test_day_bracket_entries_are_filled_after_their_list(day, decoded):
    listed = {o.cl_ord_id: e.ts_event for e in decoded.events if isinstance(e, OrderList)
              and e.contingency_type == "2" for o in e.orders[:1]}  # fmt: skip
    fills = {e.cl_ord_id: e.ts_event for e in decoded.events
             if isinstance(e, ExecutionReport) and e.cl_ord_id in listed}  # fmt: skip
    assert fills.keys() == listed.keys()
    assert all(0 < fills[cl] - listed[cl] <= 20_000_000 for cl in listed)


def test_day_surveillance_models_find_every_planted_pattern(day, decoded):
    owners = {a: b["owner"] for a, b in _books(day).items()}
    symbols, accounts = SymbolModels(owners), AccountModels(owners)
    found: dict[str, set[str]] = {}
    findings = []
    for key, routed in route(decoded):
        models = symbols if key.startswith("s") else accounts
        for item in inputs_of(routed):
            findings += models.on(item)
    findings += symbols.close_input() + accounts.close_input()
    for f in findings:
        found.setdefault(f.kind, set()).add(f.subject)
    for planted in day.composition["patterns"]:
        subjects = set(planted["accounts"]) | {owners[a] for a in planted["accounts"]}
        kind = {"wash": "WASH_TRADE", "owner-wash": "WASH_TRADE", "round-trips": "WASH_TRADE",
                "layering": "SPOOFING", "otr": "EXCESSIVE_OTR", "pump-and-dump": "PUMP_AND_DUMP",
                "marking-the-close": "MARKING_THE_CLOSE"}[planted["pattern"]]  # fmt: skip
        assert subjects & found.get(kind, set()), (planted, found.get(kind))


def test_day_spec_names_its_size():
    assert DaySpec().name.startswith("pipeline-100s-20m-2000a-10000st-seed1-v")
    assert isinstance(SPEC.name, str) and Path(SPEC.name).name == SPEC.name
