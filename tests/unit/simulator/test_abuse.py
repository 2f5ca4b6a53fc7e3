"""Each compressed pattern of `simulator.abuse`, sent as the exchange would (header + body),
decoded and fed to the surveillance models, makes the model it targets fire."""

from __future__ import annotations

import pytest
import simplefix

from connectors.fix import decode_lines
from flows.surveillance import AccountModels, SymbolModels, inputs_of, route
from simulator.abuse import PATTERNS
from simulator.stops import _stamp

T0 = 1_795_617_000 * 1_000_000_000  # 2026-11-25 14:30 UTC
OWNERS = {"ACC1": "OWN1"}


def messages(steps) -> list[bytes]:
    out = []
    for seq, step in enumerate(sorted(steps, key=lambda s: s.delay_s), start=2):
        m = simplefix.FixMessage()
        for tag, value in ((8, b"FIX.4.4"), (35, b"8"), (49, b"SIMX"), (56, b"BROKERFLOW"),
                           (34, seq), (52, _stamp(T0 + int(step.delay_s * 1e9))),
                           *step.body):  # fmt: skip
            m.append_pair(tag, value)
        out.append(m.encode() + b"\n")
    return out


def findings(steps) -> set[str]:
    batch = decode_lines(messages(steps), "abuse", 1)
    assert not batch.dead_letters, batch.dead_letters
    symbols, accounts = SymbolModels(OWNERS), AccountModels(OWNERS)
    kinds = set()
    for key, routed in route(batch):
        models = symbols if key.startswith("s") else accounts
        for item in inputs_of(routed):
            kinds |= {f.kind for f in models.on(item)}
    kinds |= {f.kind for f in symbols.close_input() + accounts.close_input()}
    return kinds


@pytest.mark.parametrize(
    ("name", "kind"),
    [("wash", "WASH_TRADE"), ("layering", "SPOOFING"), ("round-trips", "WASH_TRADE"),
     ("otr", "EXCESSIVE_OTR")],
)  # fmt: skip
def test_each_pattern_fires_its_model(name: str, kind: str) -> None:
    assert kind in findings(PATTERNS[name]("SXT-AB1", "ACC1", "AAPL", 1_000))


def test_the_same_trades_between_two_owners_are_not_a_wash() -> None:
    buy, sell = PATTERNS["wash"]("SXT-AB2", "ACC1", "AAPL", 1_000)
    other = type(sell)(sell.delay_s, [(t, b"ACC2" if t == 1 else v) for t, v in sell.body])
    OWNERS["ACC2"] = "OWN2"
    assert "WASH_TRADE" not in findings([buy, other])
