"""`account_margin` rows of an account the ledger has not committed yet (opened during the day
by a 35=UA, issue 20): held back, the others written, and written once the account exists."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from sinks.margin import MarginRow, write_margin_rows
from sinks.postgres import migrate


def row(account: str, ns: int) -> MarginRow:
    return MarginRow(account, Decimal(100), Decimal(200), Decimal("0.5"), "NORMAL", ns)


def test_rows_of_accounts_not_opened_yet_are_held_until_they_are(pg_dsn: str) -> None:
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (account, owner) VALUES ('OLD1', 'olga')")
        written, held = write_margin_rows(conn, [row("OLD1", 1), row("NEW1", 2)], 0.05)
        assert (written, [r.account for r in held]) == (1, ["NEW1"])
        assert conn.execute("SELECT account FROM account_margin").fetchall() == [("OLD1",)]
        conn.execute("INSERT INTO accounts (account, owner) VALUES ('NEW1', 'nina')")
        assert write_margin_rows(conn, held, 0.05) == (1, [])
        got = conn.execute("SELECT account FROM account_margin ORDER BY 1").fetchall()
        assert got == [("NEW1",), ("OLD1",)]
