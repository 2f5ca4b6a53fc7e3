"""`brokerflow replay` (placeholder until implemented)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("replay", parents=[common], help="(not yet implemented)")
    p.set_defaults(func=lambda args: 0)
