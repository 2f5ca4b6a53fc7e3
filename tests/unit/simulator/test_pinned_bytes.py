"""The simulated days are pinned byte for byte: the same arguments give the same files as at
6ec2191 (issue 22's base), so a refactoring of the simulator that changes a byte is caught here.

A deliberate change of the simulated traffic updates these digests (say so in the commit).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import pytest

from brokerflow.cli import main
from simulator import write_fills_file
from simulator.day import PipelineDaySimulator
from simulator.market import MarketSimulator

SIMULATE = {
    "market": ["--symbols", "5", "--minutes", "1", "--seed", "7"],
    "orders": ["--symbols", "5", "--minutes", "1", "--seed", "3", "--orders", "--accounts", "40",
               "--reference-changes", "--drop-incrementals", "5", "--snapshot-every", "20"],
    "status": ["--symbols", "4", "--minutes", "3", "--seed", "11", "--orders", "--accounts", "30",
               "--halt", "AAPL@1+1", "--market-halt", "2+1", "--bands", "5",
               "--index-fall", "12@1+1"],
}  # fmt: skip

PINNED = {
    "market.fix": "470c0dd011193140ab73fcdc68439204a652c7e792be1f4e7f2c490a494df876",
    "orders.accounts.csv": "587a8481ca986eeba22fb523f100555811684c4c1945b8232dec962f27a53724",
    "orders.fix": "0c940f4b7d29dfc805db43fe8d5e30f0c3f7de5fc53fc020cbf7e4e3df6169c6",
    "orders.positions.csv": "579869f3b685dee7ba8271f7a5c71721cad91868eff2625157ee9f971fc07cf8",
    "status.accounts.csv": "7fd0f72f2acbcbfb2b3989e83a7b7140da2022c4f459650ebe3f335d271c8594",
    "status.fix": "dcd605189a6541d42c584a44cb8512668d8bc7e72c3d7256072db3f5c275b2f9",
    "status.positions.csv": "84bfc940c37ebbc453a8126ac7c32a0538f9ff8f191a82da7d76b1774424be96",
    "fills.accounts.csv": "43ad88caaa5e9fe84bc6243f3649dc9e352bb65ea2970e238fd113eb3e994632",
    "fills.fix": "e169b872aa20594d213b2b86e8b1584526bf18b904fad8bc26ddf2f4a315a809",
    "fills.positions.csv": "ed111901277b87c59cd4f49f9d9d06443f6ace39d49e7ef792d2f260fc63073b",
    "pipeline-day": "c65c61065fd1ac31655d9d44bc32a72f9977590cbe28c6a4e48935249f439264",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(SIMULATE))
def test_brokerflow_simulate_writes_the_pinned_files(tmp_path: Path, name: str) -> None:
    out = tmp_path / f"{name}.fix"
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert main(["simulate", *SIMULATE[name], "--out", str(out)]) == 0
    written = {p.name: _sha256(p) for p in tmp_path.glob(f"{name}.*")}
    assert written == {k: v for k, v in PINNED.items() if k.startswith(f"{name}.")}


def test_the_fills_file_is_pinned(tmp_path: Path) -> None:
    write_fills_file(tmp_path / "fills.fix", 300, accounts=50, symbols=10, seed=2)
    written = {p.name: _sha256(p) for p in tmp_path.glob("fills.*")}
    assert written == {k: v for k, v in PINNED.items() if k.startswith("fills.")}


def test_the_pipeline_day_and_its_ledger_are_pinned() -> None:
    sim = PipelineDaySimulator(MarketSimulator(6, seed=5), accounts=60)
    digest = hashlib.sha256()
    for ts_ns, message in sim.messages(limit=5000):
        digest.update(b"%d %s\n" % (ts_ns, message))
    digest.update(repr(sorted(sim.expected_ledger().items())).encode())
    assert digest.hexdigest() == PINNED["pipeline-day"]
