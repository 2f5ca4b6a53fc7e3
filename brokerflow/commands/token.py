"""`brokerflow token issue --user U --role {trader,analyst,operator} [--account A…]`: print a
signed edge token (HS256 with `BROKERFLOW_EDGE_SECRET`, else the key kept in the data dir)."""

from __future__ import annotations

import argparse
import time

from edge.claims import ROLES

DEFAULT_TTL_HOURS = 12.0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `token` subcommand."""
    p = sub.add_parser(
        "token",
        parents=[common],
        help="issue a signed token for the WebSocket edge",
        description="Print a token for ws://HOST:PORT/ws?token=… and the console.",
    )
    actions = p.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", parents=[common], help="print a signed token")
    issue.add_argument("--user", required=True, help="the user (also names watchlist:{user})")
    issue.add_argument("--role", required=True, choices=ROLES, help="what the holder receives")
    issue.add_argument(
        "--account",
        action="append",
        default=[],
        help="an account whose alerts a trader receives (repeat for several)",
    )
    issue.add_argument(
        "--ttl-hours",
        type=float,
        default=DEFAULT_TTL_HOURS,
        help=f"validity (default {DEFAULT_TTL_HOURS:g} h)",
    )
    issue.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the token on one line."""
    from brokerflow.settings import load_settings
    from domain.errors import ConfigError
    from edge.tokens import edge_secret, issue_token

    if args.ttl_hours <= 0:
        msg = f"--ttl-hours must be positive; value was {args.ttl_hours}"
        raise ConfigError(msg)
    settings = load_settings(args.config, args.data_dir)
    configured = settings.edge_secret.get_secret_value() if settings.edge_secret else None
    secret = edge_secret(configured, settings.data_dir)
    token = issue_token(
        secret,
        args.user,
        args.role,
        args.account,
        now_s=int(time.time()),
        ttl_s=int(args.ttl_hours * 3600),
    )
    print(token)
    return 0
