"""`brokerflow fix-test-acceptor --port P --begin-string FIX.4.4`: an acceptor set up like
QuickFIX's acceptance-test engine, so the suite in `../shared/fix-acceptance` runs against our
session layer.

SenderCompID ISLD, TargetCompID TW44 (TW42 for FIX.4.2), ResetOnLogon; echoes NewOrderSingle
(35=D) unless it is a PossResend of a ClOrdID already seen, echoes SecurityDefinition (35=d),
answers other application messages with BusinessMessageReject (35=j, 380=3). Runs until
interrupted; the session layer's log lines (every reject, logout and disconnect with its
reason) go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from connectors.fix.acceptance import acceptance_acceptor


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `fix-test-acceptor` subcommand."""
    p = sub.add_parser(
        "fix-test-acceptor",
        parents=[common],
        help="a FIX acceptor set up like QuickFIX's acceptance-test engine",
        description="Serve the QuickFIX acceptance-test session (ISLD <- TW44/TW42) until "
        "interrupted. Run the suite against it with "
        "`python -m connectors.fix.acceptance FILE.def --port P`.",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port to listen on (0: any)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument(
        "--begin-string", choices=("FIX.4.2", "FIX.4.4"), default="FIX.4.4",
        help="the session's BeginString (TargetCompID TW42 or TW44)",
    )
    p.add_argument(
        "--dictionary", default="",
        help="QuickFIX dictionary file or directory (default: BROKERFLOW_FIX_DICTIONARY_DIR, "
        "else the FIX 4.2/4.4 ones shipped in the package)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(_serve(args.host, args.port, args.begin_string, args.dictionary))
    return 0


async def _serve(host: str, port: int, begin_string: str, dictionary: str) -> None:
    acceptor = acceptance_acceptor(begin_string, dictionary)
    bound = await acceptor.start(host, port)
    target = "TW42" if begin_string == "FIX.4.2" else "TW44"
    print(f"fix-test-acceptor: {begin_string} ISLD <- {target} on {host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await acceptor.close()
