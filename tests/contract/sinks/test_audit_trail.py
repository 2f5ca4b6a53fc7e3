"""The audit trail that lasts and can be proven, through `brokerflow audit …` on chdb and the real
PostgreSQL: archive -> restore -> verify gives back the same rows; a month already archived is
refused; a corrupt or missing archive file is named; a day changed behind its back (a row
updated, one deleted, one added) is named row by row; GDPR pseudonymisation re-seals, and the
pseudonym map can live in a database of its own."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from brokerflow.cli import main
from sinks.audit_archive import read_rows
from sinks.clickhouse import AUDIT_COLUMNS, ChdbStore, migrate_clickhouse, open_store
from sinks.postgres import migrate
from tests.conftest import fresh_database

ROOT = Path(__file__).resolve().parents[3]
UTC = dt.UTC
DAYS = ("2024-03-04", "2024-03-05", "2024-04-02")


def event_id(n: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"brokerflow-test-audit/{n}")


def rows() -> list[tuple]:
    """Nine order events: three per day, ACC1 and ACC2 on each, microsecond timestamps."""
    out = []
    for d, day in enumerate(DAYS):
        base = dt.datetime.fromisoformat(day).replace(tzinfo=UTC)
        for i in range(3):
            n = d * 3 + i
            account = "ACC1" if i < 2 else "ACC2"
            ts = base + dt.timedelta(hours=10, seconds=i, microseconds=123_456)
            micros = int(ts.timestamp()) * 1_000_000 + ts.microsecond
            out.append((
                event_id(n), micros, "ORDER_FILLED" if i else "ORDER_PLACED", account, f"O{n}",
                f"C{n}", "", f"E{n}", "AAPL", "1", "2", "2" if i else "0",
                Decimal("100") if i else None, Decimal("101.5"), Decimal("60"), Decimal("100.25"),
                '{"k":"v"}', '{"bid":"100.1"}', f"8=FIX.4.4\x011={account}\x0117=E{n}\x01",
                f"file:t.fix:{n}",
            ))  # fmt: skip
    return out


@pytest.fixture
def stores(
    tmp_path: Path, postgres_dsn: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ChdbStore, str]]:
    """A fresh chdb store holding `rows()` and a migrated PostgreSQL database, configured in
    the environment for `main()` (which shares this process's chdb session)."""
    url = f"chdb://{tmp_path}/ch"
    store = open_store(url, data_dir)
    assert isinstance(store, ChdbStore)
    with fresh_database(postgres_dsn) as dsn:
        try:
            migrate_clickhouse(store)
            migrate(dsn)
            store.insert("audit_log", AUDIT_COLUMNS, rows())
            monkeypatch.setenv("BROKERFLOW_CLICKHOUSE_URL", url)
            monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", dsn)
            monkeypatch.setenv("BROKERFLOW_DATA_DIR", str(data_dir))
            yield store, dsn
        finally:
            store.close()


def audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def all_rows(store: ChdbStore) -> list[tuple]:
    return read_rows(
        store, dt.datetime(2000, 1, 1, tzinfo=UTC), dt.datetime(2100, 1, 1, tzinfo=UTC)
    )


def test_archive_restore_verify_round_trip(
    stores: tuple[ChdbStore, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _dsn = stores
    before = all_rows(store)
    assert audit(capsys, "seal")[0] == 0  # every complete day, before archiving
    archive = tmp_path / "archive"
    code, out, _ = audit(capsys, "archive", "--before", "2024-05", "--to", str(archive))
    assert code == 0
    assert f"2024-03: 6 rows -> {archive}/audit_log-2024-03.parquet" in out
    assert f"2024-04: 3 rows -> {archive}/audit_log-2024-04.parquet" in out
    assert "archived 2 months, 9 rows" in out
    assert sorted(p.name for p in archive.iterdir()) == [
        "audit_log-2024-03.parquet", "audit_log-2024-04.parquet", "manifest.json",
    ]  # fmt: skip
    assert all_rows(store) == before  # archiving deletes nothing
    code, out, _ = audit(capsys, "verify", str(archive))
    assert code == 0
    assert "2 files, 9 rows verified; all match the manifest" in out

    # The retention's TTL (or a lost server) takes the months away; the archive brings them back.
    store.command("ALTER TABLE audit_log DROP PARTITION 202403")
    store.command("ALTER TABLE audit_log DROP PARTITION 202404")
    assert all_rows(store) == []
    code, out, _ = audit(capsys, "restore", str(archive))
    assert code == 0
    assert "2024-03: 6 rows in the archive, 6 restored (0 already in audit_log)" in out
    assert all_rows(store) == before
    # A second restore adds nothing, not even a duplicate waiting for a merge.
    code, out, _ = audit(capsys, "restore", str(archive))
    assert code == 0
    assert "restored 0 of 9 rows from 2 files" in out
    assert store.query("SELECT count() FROM audit_log")[1] == [(9,)]
    # The restored rows are the sealed ones.
    for day in DAYS:
        code, out, _ = audit(capsys, "verify", "--day", day)
        assert (code, out.split(":")[0]) == (0, day)
        assert "3 rows match the seal" in out


def test_archive_refuses_a_month_the_directory_already_holds(
    stores: tuple[ChdbStore, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    assert audit(capsys, "archive", "--before", "2024-04", "--to", str(archive))[0] == 0
    first = (archive / "audit_log-2024-03.parquet").read_bytes()
    code, out, err = audit(capsys, "archive", "--before", "2024-05", "--to", str(archive))
    assert code == 2
    assert err.splitlines() == [
        f"brokerflow: error: {archive} already holds 2024-03 (audit_log-2024-03.parquet): "
        "not overwritten; archive to another directory"
    ]
    assert (archive / "audit_log-2024-03.parquet").read_bytes() == first
    assert not (archive / "audit_log-2024-04.parquet").exists()  # refused before writing any
    # The monthly job: the next month only, to the same directory.
    code, out, _ = audit(
        capsys, "archive", "--from", "2024-04", "--before", "2024-05", "--to", str(archive)
    )
    assert code == 0 and "archived 1 month, 3 rows" in out
    code, out, _ = audit(capsys, "verify", str(archive))
    assert code == 0 and "2 files, 9 rows verified" in out
    code, _, err = audit(capsys, "archive", "--before", "2024-13", "--to", str(archive))
    assert (code, err) == (2, "brokerflow: error: --before '2024-13' is not a month YYYY-MM\n")


def test_verify_names_a_corrupt_and_a_missing_archive_file(
    stores: tuple[ChdbStore, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "archive"
    assert audit(capsys, "archive", "--before", "2024-05", "--to", str(archive))[0] == 0
    march = archive / "audit_log-2024-03.parquet"
    data = bytearray(march.read_bytes())
    data[len(data) // 2] ^= 0xFF
    march.write_bytes(bytes(data))
    (archive / "audit_log-2024-04.parquet").unlink()
    # The real command in its own process (verify needs no store).
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "brokerflow.cli", "audit", "verify", str(archive)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "audit_log-2024-03.parquet: sha256 differs from the manifest (corrupt or replaced)",
        "audit_log-2024-04.parquet: missing",
    ]
    assert "0 files, 0 rows verified; 2 problems" in done.stdout
    # Restore refuses a damaged archive as a whole.
    code, out, err = audit(capsys, "restore", str(archive))
    assert code == 2
    assert err.splitlines()[-1] == (
        f"brokerflow: error: {archive} does not match its manifest (2 problems): nothing restored"
    )


def test_verify_day_names_rows_changed_deleted_and_added_behind_its_back(
    stores: tuple[ChdbStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _dsn = stores
    code, out, _ = audit(capsys, "seal")
    assert code == 0
    assert "3 days sealed, 0 re-sealed, 0 unchanged; 9 rows" in out
    code, out, _ = audit(capsys, "verify", "--day", "2024-03-04")
    assert code == 0 and "2024-03-04: 3 rows match the seal" in out

    changed, deleted = event_id(1), event_id(2)
    store.command(
        f"ALTER TABLE audit_log UPDATE last_px = 99.5 WHERE event_id = '{changed}' "
        "SETTINGS mutations_sync = 2"
    )
    store.command(f"DELETE FROM audit_log WHERE event_id = '{deleted}'")
    added = list(rows()[0])
    added[0] = event_id(99)
    store.insert("audit_log", AUDIT_COLUMNS, [tuple(added)])
    code, out, err = audit(capsys, "verify", "--day", "2024-03-04")
    assert code == 1
    assert err.splitlines() == [
        f"2024-03-04: added row {event_id(99)} ORDER_PLACED at 2024-03-04T10:00:00.123456Z",
        f"2024-03-04: changed row {changed} ORDER_FILLED at 2024-03-04T10:00:01.123456Z: last_px",
        f"2024-03-04: deleted row {deleted} ORDER_FILLED at 2024-03-04T10:00:02.123456Z",
    ]
    assert "3 differences from the seal (3 rows sealed, 3 now)" in out
    # The other days are untouched; an unsealed day is an error, not a pass.
    assert audit(capsys, "verify", "--day", "2024-03-05")[0] == 0
    code, _, err = audit(capsys, "verify", "--day", "2024-03-06")
    assert (code, err) == (
        2, "brokerflow: error: 2024-03-06 is not sealed (brokerflow audit seal --day 2024-03-06)\n"
    )  # fmt: skip
    # Sealing again does not launder the change: only --reseal with a reason, recorded.
    code, _, err = audit(capsys, "seal", "--day", "2024-03-04")
    assert code == 2 and "its rows differ from the seal" in err
    code, out, _ = audit(capsys, "seal", "--day", "2024-03-04", "--reseal", "--reason", "late fill")
    assert code == 0 and "2024-03-04: resealed, 3 rows" in out
    assert audit(capsys, "verify", "--day", "2024-03-04")[0] == 0


def test_gdpr_reseals_the_days_it_rewrites_and_the_map_can_be_kept_apart(
    stores: tuple[ChdbStore, str],
    postgres_dsn: str,
    redis_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, dsn = stores
    assert audit(capsys, "seal")[0] == 0
    # 2024-04-02 was changed before the pseudonymisation: it must not be re-sealed over that.
    store.command(
        f"ALTER TABLE audit_log UPDATE symbol = 'MSFT' WHERE event_id = '{event_id(8)}' "
        "SETTINGS mutations_sync = 2"
    )
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", redis_db_url)
    with fresh_database(postgres_dsn) as map_dsn:
        monkeypatch.setenv("BROKERFLOW_PSEUDONYM_DSN", map_dsn)
        assert main(["gdpr", "pseudonymise", "ACC1"]) == 0
        out, err = capsys.readouterr()
        assert err == ""
        pseudonym = out.split(" -> ")[1].split()[0]
        assert "mapping in the separate pseudonym database" in out
        assert "audit seal 2024-03-04: re-sealed (2 rows pseudonymised)" in out
        assert "audit seal 2024-04-02: not re-sealed, it differed from its seal before" in out
        with psycopg.connect(map_dsn) as conn:
            assert conn.execute("SELECT account, pseudonym FROM pseudonym_map").fetchall() == [
                ("ACC1", pseudonym)
            ]
    with psycopg.connect(dsn) as conn:  # not next to the data it reverses
        assert conn.execute("SELECT count(*) FROM pseudonym_map").fetchone() == (0,)
        log = conn.execute(
            "SELECT action, actor, reason, previous_digest IS NOT NULL FROM audit_seal_log "
            "WHERE day = '2024-03-04' ORDER BY id"
        ).fetchall()
    assert store.query("SELECT count() FROM pseudonym_map")[1] == [(0,)]
    assert [(a, r) for a, _actor, r, _p in log] == [
        ("SEAL", "end of day"), ("RESEAL", f"GDPR pseudonymisation to {pseudonym} (2 rows)"),
    ]  # fmt: skip
    assert log[1][1] and log[1][3]  # who, and the digest it replaced
    assert "ACC1" not in str(log)
    assert store.query("SELECT count() FROM audit_log WHERE account = 'ACC1'")[1] == [(0,)]

    for day in ("2024-03-04", "2024-03-05"):
        assert audit(capsys, "verify", "--day", day)[0] == 0
    code, _, err = audit(capsys, "verify", "--day", "2024-04-02")
    assert code == 1
    # Its tampering is still named, next to the pseudonymised rows, which were not accepted.
    assert err.splitlines() == [
        f"2024-04-02: changed row {event_id(6)} ORDER_PLACED at 2024-04-02T10:00:00.123456Z: "
        "account, raw_fix",
        f"2024-04-02: changed row {event_id(7)} ORDER_FILLED at 2024-04-02T10:00:01.123456Z: "
        "account, raw_fix",
        f"2024-04-02: changed row {event_id(8)} ORDER_FILLED at 2024-04-02T10:00:02.123456Z: "
        "symbol",
    ]
    # Anything else changed after the re-seal is still caught.
    store.command(
        f"ALTER TABLE audit_log UPDATE account = 'ACC7' WHERE event_id = '{event_id(5)}' "
        "SETTINGS mutations_sync = 2"
    )
    code, _, err = audit(capsys, "verify", "--day", "2024-03-05")
    assert code == 1 and f"changed row {event_id(5)} ORDER_FILLED" in err
    assert err.rstrip().endswith(": account")


def test_audit_log_keeps_its_rows_exactly(stores: tuple[ChdbStore, str]) -> None:
    """The round trip compares rows read back through the store: check that reading keeps
    microseconds and decimals as they went in (else equality would prove little)."""
    store, _ = stores
    got = all_rows(store)
    assert [r[0] for r in got] == [r[0] for r in rows()]
    assert got[0][1] == dt.datetime(2024, 3, 4, 10, 0, 0, 123_456, tzinfo=UTC)
    assert got[1][12:16] == (Decimal("100"), Decimal("101.5"), Decimal("60"), Decimal("100.25"))


def test_a_restore_does_not_bring_back_a_pseudonymised_account(
    stores: tuple[ChdbStore, str],
    tmp_path: Path,
    redis_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An archive made before `gdpr pseudonymise` holds the account; restored after the months
    left audit_log, its rows are pseudonymised again from the map, and stay as sealed."""
    store, _dsn = stores
    assert audit(capsys, "seal")[0] == 0
    archive = tmp_path / "archive"
    assert audit(capsys, "archive", "--before", "2024-05", "--to", str(archive))[0] == 0
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", redis_db_url)
    assert main(["gdpr", "pseudonymise", "ACC1"]) == 0
    capsys.readouterr()
    after = all_rows(store)
    store.command("ALTER TABLE audit_log DROP PARTITION 202403")
    code, out, err = audit(capsys, "restore", str(archive))
    assert code == 0, err
    assert "restored 6 of 9 rows from 2 files" in out
    assert "1 pseudonymised accounts pseudonymised again" in out
    assert store.query("SELECT count() FROM audit_log WHERE account = 'ACC1'")[1] == [(0,)]
    assert all_rows(store) == after
    assert audit(capsys, "verify", "--day", "2024-03-04")[0] == 0


def test_a_day_of_rows_sharing_one_timestamp_verifies(
    stores: tuple[ChdbStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Event times are often equal to the millisecond: the chain's order is then the event_id
    as text (ClickHouse's UUID order differs), so the seal read back from PostgreSQL chains."""
    store, _ = stores
    same = []
    for n in range(100, 140):
        row = list(rows()[0])
        row[0] = event_id(n)
        row[1] = int(dt.datetime(2024, 5, 2, 9, tzinfo=UTC).timestamp()) * 1_000_000
        same.append(tuple(row))
    store.insert("audit_log", AUDIT_COLUMNS, same)
    assert audit(capsys, "seal", "--day", "2024-05-02")[0] == 0
    code, out, err = audit(capsys, "verify", "--day", "2024-05-02")
    assert (code, err) == (0, "")
    assert "2024-05-02: 40 rows match the seal" in out


def test_verify_day_catches_an_edited_seal(
    stores: tuple[ChdbStore, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Rewriting a row's hash in PostgreSQL (to cover a change) breaks the chain to the digest."""
    _store, dsn = stores
    assert audit(capsys, "seal", "--day", "2024-03-05")[0] == 0
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE audit_row_hashes SET row_hash = sha256('forged') WHERE event_id = %s",
            (event_id(4),),
        )
    code, _, err = audit(capsys, "verify", "--day", "2024-03-05")
    assert code == 1
    assert err.splitlines()[0] == (
        "2024-03-05: the seal's row hashes in PostgreSQL do not match its digest (edited seal)"
    )
