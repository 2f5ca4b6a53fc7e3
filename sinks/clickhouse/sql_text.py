"""SQL text without an engine: statements split on `;` outside quotes and comments, the
read-only check of `brokerflow sql clickhouse`, and quoted identifiers."""

from __future__ import annotations

import re

from sinks.clickhouse.errors import ClickHouseError, ReadOnlyError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`")
_READ_ONLY_VERBS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN"})


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements on `;` outside quotes and comments; drop empty ones.

    >>> split_statements("SELECT ';'; -- a; comment\\nSELECT 2;")
    ["SELECT ';'", '-- a; comment\\nSELECT 2']
    """
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif c == ";":
            statements.append(sql[start:i])
            start = i + 1
        i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _strip_comments(s).strip()]


def _strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)


def check_read_only(sql: str) -> str:
    """Return the single statement of `sql` if it only reads, else raise `ReadOnlyError`.

    Allowed: one SELECT, WITH, SHOW, DESCRIBE/DESC or EXPLAIN statement. This is the first
    line of defence; the query also runs with `readonly=1` on both backends.
    """
    statements = split_statements(sql)
    if len(statements) != 1:
        msg = f"exactly one statement is allowed, {len(statements)} were given"
        raise ReadOnlyError(msg)
    words = _strip_comments(statements[0]).split(None, 1)
    verb = words[0].lstrip("(").upper() if words else ""
    if verb not in _READ_ONLY_VERBS:
        given = verb or "nothing"
        msg = f"only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN are allowed, {given} was given"
        raise ReadOnlyError(msg)
    # chdb writes INTO OUTFILE on the client side, where readonly=1 does not reach.
    if _INTO_OUTFILE.search(_QUOTED.sub("''", _strip_comments(statements[0]))):
        msg = "INTO OUTFILE is not allowed (use --format and redirect the output)"
        raise ReadOnlyError(msg)
    return statements[0]


def quote_identifier(name: str) -> str:
    """Return a table or column name quoted for ClickHouse; refuse anything but a plain name."""
    if not _IDENTIFIER.match(name):
        msg = f"not a plain identifier: {name!r}"
        raise ClickHouseError(msg)
    return f"`{name}`"
