"""`brokerflow audit …`: the audit trail's archive, day seals and least privilege.

- `archive --before YYYY-MM --to DIR`: each month of `audit_log` before the given one as
  `DIR/audit_log-YYYY-MM.parquet`, with `DIR/manifest.json` (per file: month, rows, sha256 of
  the file, content digest of its rows, commit, version, created_at). A month DIR holds already
  is refused, never overwritten. Nothing is deleted from ClickHouse: the TTL does that
  (`BROKERFLOW_AUDIT_RETENTION_YEARS`).
- `restore DIR`: verifies DIR against its manifest, then inserts the rows `audit_log` does not
  hold (by event_id), so a second restore adds nothing and a row changed since (a
  pseudonymised account) is not put back.
- `verify DIR`: every file against the manifest (sha256, rows, content digest); one line per
  missing, corrupt or unlisted file, exit 1.
- `seal [--day D] [--reseal --reason R]`: the day's hash chain and its rows' hashes to
  PostgreSQL (`audit_digests`, `audit_row_hashes`, `audit_seal_log`). Without `--day`, every
  complete UTC day (before today) that has rows and no seal: run it daily after midnight UTC.
- `verify --day D`: recomputes the day's chain and names every row changed (with its
  columns), deleted or added since the seal, exit 1; a clean day exits 0.
- `grants`: the DDL of least privilege on a ClickHouse server (`sinks.clickhouse_grants`).

The day seals themselves (`seal_day`, `verify_day`) live in `brokerflow.seals`, which
`brokerflow gdpr pseudonymise` shares to re-seal the sealed days it rewrites.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brokerflow.seals import AuditError, actor_name, seal_day, verify_day

if TYPE_CHECKING:
    import psycopg

    from sinks.clickhouse import ClickHouseStore


# -- archive ---------------------------------------------------------------------------------


def _month(text: str, option: str = "--before") -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y-%m").replace(tzinfo=dt.UTC).date()
    except ValueError:
        msg = f"{option} {text!r} is not a month YYYY-MM"
        raise AuditError(msg) from None


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        msg = f"--day {text!r} is not a date YYYY-MM-DD"
        raise AuditError(msg) from None


def _provenance() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("brokerflow")
    except PackageNotFoundError:
        ver = None
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=False)  # fmt: skip
        commit = done.stdout.strip() if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"commit": commit, "version": ver,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip


def _size(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):,.1f} MiB"


def archive(
    store: ClickHouseStore, before: dt.date, directory: Path, since: dt.date | None = None
) -> int:
    """Write every month before `before` (and from `since`, when given) to `directory`; print a
    line per month and a summary. Refuses (AuditError) when `directory` holds any of those
    months already."""
    from sinks.audit_archive import file_name, months_before, read_manifest, write_manifest

    this_month = dt.datetime.now(dt.UTC).date().replace(day=1)
    if before > this_month:
        msg = f"--before {before:%Y-%m}: the month {this_month:%Y-%m} is not over yet"
        raise AuditError(msg)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(directory)
    listed = {entry["month"] for entry in manifest["files"]}
    months = {m: n for m, n in months_before(store, before).items()
              if since is None or m >= f"{since:%Y-%m}"}  # fmt: skip
    for month in months:
        if month in listed or (directory / file_name(month)).exists():
            msg = (f"{directory} already holds {month} ({file_name(month)}): not overwritten; "
                   "archive to another directory")  # fmt: skip
            raise AuditError(msg)
    if not months:
        span = f"from {since:%Y-%m} " if since else ""
        print(f"nothing to archive: audit_log has no rows {span}before {before:%Y-%m}")
        return 0
    from sinks.audit_archive import write_month

    provenance = _provenance()
    total_rows = total_bytes = 0
    for month in months:
        entry = write_month(store, month, directory) | provenance
        manifest["files"].append(entry)
        manifest["files"].sort(key=lambda e: e["month"])
        write_manifest(directory, manifest)  # after each month: a crash keeps what is done
        total_rows += entry["rows"]
        total_bytes += entry["bytes"]
        print(f"{month}: {entry['rows']:,} rows -> {directory / entry['file']} "
              f"({_size(entry['bytes'])}, sha256 {entry['sha256'][:16]}…)", flush=True)  # fmt: skip
    plural = "s" if len(months) != 1 else ""
    print(f"archived {len(months)} month{plural}, {total_rows:,} rows, {_size(total_bytes)} to "
          f"{directory}; audit_log keeps them until its TTL removes them "
          "(BROKERFLOW_AUDIT_RETENTION_YEARS)")  # fmt: skip
    return 0


def check_archive(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Check every file of an archive directory against its manifest; return the good
    entries and one line per problem (missing, corrupt, unlisted)."""
    from sinks.audit_archive import (
        MANIFEST,
        ArchiveError,
        file_content,
        read_manifest,
        sha256_file,
    )

    if not directory.is_dir():
        msg = f"{directory} is not a directory"
        raise AuditError(msg)
    if not (directory / MANIFEST).exists():
        msg = f"{directory} has no {MANIFEST}: not an audit archive"
        raise AuditError(msg)
    manifest = read_manifest(directory)
    good: list[dict[str, Any]] = []
    problems: list[str] = []
    listed = set()
    for entry in manifest["files"]:
        name = entry["file"]
        listed.add(name)
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        if sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest (corrupt or replaced)")
            continue
        try:
            rows, digest = file_content(path, entry["month"])
        except ArchiveError as exc:
            problems.append(str(exc))
            continue
        if rows != entry["rows"]:
            problems.append(f"{name}: {rows:,} rows, the manifest says {entry['rows']:,}")
        elif digest != entry["content_digest"]:
            problems.append(f"{name}: content digest differs from the manifest")
        else:
            good.append(entry)
    for path in sorted(directory.glob("audit_log-*.parquet")):
        if path.name not in listed:
            problems.append(f"{path.name}: not in the manifest")
    return good, problems


def verify_archive(directory: Path) -> int:
    """`audit verify DIR`: 0 when every file matches the manifest, else 1."""
    good, problems = check_archive(directory)
    for entry in good:
        print(f"{entry['file']}: OK ({entry['rows']:,} rows)")
    for line in problems:
        print(line, file=sys.stderr)
    rows = sum(e["rows"] for e in good)
    verdict = "all match the manifest" if not problems else f"{len(problems)} problems"
    print(f"{directory}: {len(good)} files, {rows:,} rows verified; {verdict}")
    return 1 if problems else 0


def restore(store: ClickHouseStore, directory: Path, map_dsn: str | None = None) -> int:
    """`audit restore DIR`: verify, then insert the rows audit_log lacks; then re-apply the
    pseudonym map (`map_dsn`: kept apart, else ClickHouse's) to them, so that an archive made
    before an account was pseudonymised does not bring its identity back."""
    from brokerflow.commands.gdpr import forgotten_accounts, rewrite_clickhouse
    from sinks.audit_archive import restore_file

    good, problems = check_archive(directory)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        msg = (
            f"{directory} does not match its manifest ({len(problems)} problems): nothing restored"
        )
        raise AuditError(msg)
    total = inserted = 0
    accounts: set[str] = set()
    for entry in good:
        rows, new, named_by = restore_file(store, directory / entry["file"], entry["month"])
        accounts |= named_by
        total += rows
        inserted += new
        print(f"{entry['month']}: {rows:,} rows in the archive, {new:,} restored "
              f"({rows - new:,} already in audit_log)", flush=True)  # fmt: skip
    forgotten = forgotten_accounts(store, map_dsn) if inserted else {}
    named = sorted(accounts & set(forgotten))
    for account in named:
        rewrite_clickhouse(store, account, forgotten[account])
    again = f"; {len(named)} pseudonymised accounts pseudonymised again" if named else ""
    print(f"restored {inserted:,} of {total:,} rows from {len(good)} files in {directory}{again}")
    return 0


# -- the command -------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `audit` subcommand."""
    p = sub.add_parser(
        "audit",
        parents=[common],
        help="archive, restore and verify the audit trail; seal days; ClickHouse grants",
        description="Retention, archive and tamper evidence of ClickHouse audit_log.",
    )
    actions = p.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    a = actions.add_parser("archive", parents=[common], help="months before --before to Parquet")
    a.add_argument("--before", required=True, help="archive the months before this one, YYYY-MM")
    a.add_argument("--to", required=True, type=Path, dest="directory", help="archive directory")
    a.add_argument(
        "--from", dest="since", help="only the months from this one, YYYY-MM (a monthly job)"
    )
    r = actions.add_parser("restore", parents=[common], help="an archive back into audit_log")
    r.add_argument("directory", type=Path)
    v = actions.add_parser(
        "verify",
        parents=[common],
        help="an archive against its manifest, or a day against its seal",
    )
    v.add_argument("directory", type=Path, nargs="?", help="an archive directory")
    v.add_argument("--day", help="a sealed day, YYYY-MM-DD")
    s = actions.add_parser("seal", parents=[common], help="seal complete days in PostgreSQL")
    s.add_argument("--day", help="one day (default: every complete day not sealed yet)")
    s.add_argument("--reseal", action="store_true", help="replace the seal of a changed day")
    s.add_argument("--reason", default="", help="why (required with --reseal; in the seal log)")
    s.add_argument("--actor", default=None, help="who, for the seal log (default: the OS user)")
    g = actions.add_parser("grants", parents=[common], help="least-privilege DDL for a server")
    g.add_argument("--database", default="default")
    g.add_argument("--flows-user", default="brokerflow_flows_user")
    g.add_argument("--analyst-user", default="brokerflow_analyst_user")
    g.add_argument("--compliance-user", default="brokerflow_compliance_user")
    for parser in (a, r, v, s, g):
        parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch `brokerflow audit ACTION`."""
    action = args.audit_action
    if action == "grants":
        return _grants(args)
    if action == "verify":
        if (args.day is None) == (args.directory is None):
            msg = "audit verify takes either --day YYYY-MM-DD or an archive DIR"
            raise AuditError(msg)
        if args.directory is not None:
            return verify_archive(args.directory)
    if action == "seal" and args.reseal and not args.reason.strip():
        msg = "--reseal needs --reason (it goes to the seal log)"
        raise AuditError(msg)
    before = _month(args.before) if action == "archive" else None
    day = _day(args.day) if action in ("verify", "seal") and args.day else None

    from brokerflow.stores import open_clickhouse

    if action in ("archive", "restore"):
        store = open_clickhouse(args)
        try:
            if action == "archive":
                assert before is not None
                since = _month(args.since, "--from") if args.since else None
                return archive(store, before, args.directory, since)
            return restore(store, args.directory, _settings(args).pseudonym_dsn)
        finally:
            store.close()
    return _with_postgres(args, action, day)


def _settings(args: argparse.Namespace) -> Any:
    from brokerflow.settings import load_settings

    return load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))


def _with_postgres(args: argparse.Namespace, action: str, day: dt.date | None) -> int:
    import psycopg

    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from brokerflow.stores import open_clickhouse
    from sinks.postgres import migrate

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    store = open_clickhouse(args)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if action == "verify":
                assert day is not None
                return _verify_day(store, conn, day)
            return _seal(store, conn, day, args)
    finally:
        store.close()


def _verify_day(store: ClickHouseStore, conn: psycopg.Connection, day: dt.date) -> int:
    report = verify_day(store, conn, day)
    if report.clean:
        print(f"{day}: {report.rows:,} rows match the seal (digest {report.digest[:16]}…)")
        return 0
    for line in report.findings:
        print(line, file=sys.stderr)
    n, s = len(report.findings), "s" if len(report.findings) != 1 else ""
    print(f"{day}: {n} difference{s} from the seal ({report.sealed_rows:,} rows "
          f"sealed, {report.rows:,} now): the audit trail was changed")  # fmt: skip
    return 1


def _seal(
    store: ClickHouseStore, conn: psycopg.Connection, day: dt.date | None, args: argparse.Namespace
) -> int:
    from sinks.audit_archive import days_with_rows
    from sinks.audit_seals import sealed_days

    actor = args.actor or actor_name()
    today = dt.datetime.now(dt.UTC).date()
    reason = args.reason.strip() or "end of day"
    if day is not None:
        if day >= today:
            msg = f"{day} is not over yet (UTC): a day is sealed once complete"
            raise AuditError(msg)
        days = [day]
    else:
        done = sealed_days(conn)
        days = [d for d in days_with_rows(store, end=today) if d not in done]
    counts = {"sealed": 0, "resealed": 0, "unchanged": 0}
    rows_total = 0
    for d in days:
        what, rows, digest = seal_day(store, conn, d, actor, reason, reseal=args.reseal)
        counts[what] += 1
        rows_total += rows
        print(f"{d}: {what}, {rows:,} rows, digest {digest[:16]}…", flush=True)
    print(f"{counts['sealed']} days sealed, {counts['resealed']} re-sealed, "
          f"{counts['unchanged']} unchanged; {rows_total:,} rows (by {actor})")  # fmt: skip
    return 0


def _grants(args: argparse.Namespace) -> int:
    from sinks.clickhouse_grants import PASSWORD_ENV, GrantError, grant_statements, render

    users = {"flows": args.flows_user, "analyst": args.analyst_user,
             "compliance": args.compliance_user}  # fmt: skip
    passwords = {kind: os.environ.get(env) for kind, env in PASSWORD_ENV.items()}
    try:
        statements = grant_statements(args.database, users, passwords)
    except GrantError as exc:
        raise AuditError(str(exc)) from None
    sys.stdout.write(render(statements))
    return 0
