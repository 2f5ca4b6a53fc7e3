"""PostgreSQL sink contract, against a real server: migrations, dead letters, retries."""

from __future__ import annotations

import threading
from pathlib import Path

import bytewax.operators as op
import psycopg
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from domain.dead_letters import DeadLetter
from sinks.postgres import (
    DeadLetterSink,
    MigrationError,
    PgBatchWriter,
    RetryPolicy,
    dead_letter_key,
    default_sql_dir,
    migrate,
    write_dead_letters,
)
from sinks.retry import backoff_delays, retry_with_backoff

SOH = b"\x01"


def _letter(n: int, raw: bytes | None = None) -> DeadLetter:
    body = raw if raw is not None else b"8=FIX.4.4" + SOH + b"9=5" + SOH + b"35=X" + SOH
    return DeadLetter(
        source=f"file:day.fix:{n}",
        reason="CheckSum(10) was 000, computed 187",
        raw=body,
        step_id="decode_fix",
        error="DecodeError",
        tag=10,
        ts_init=1_700_000_000_000_000_000 + n,
    )


def _count(dsn: str, table: str = "dead_letters") -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


# -- migrations --------------------------------------------------------------------------------


def test_migrate_applies_repository_migrations_once(pg_dsn: str) -> None:
    first = migrate(pg_dsn)
    assert "0001_dead_letters.sql" in first
    assert first == sorted(first)
    assert migrate(pg_dsn) == []
    with psycopg.connect(pg_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY 1")]
    assert versions == first
    assert default_sql_dir() == Path(__file__).resolve().parents[3] / "sql" / "postgres"


def test_migrate_concurrent_processes_apply_each_file_once(pg_dsn: str, tmp_path: Path) -> None:
    # No IF NOT EXISTS and a slow first file: a second application would fail loudly.
    (tmp_path / "0001_slow.sql").write_text("SELECT pg_sleep(0.3); CREATE TABLE t1 (id int);")
    (tmp_path / "0002_more.sql").write_text("CREATE TABLE t2 (id int); INSERT INTO t2 VALUES (1);")
    (tmp_path / "README.md").write_text("not a migration")
    barrier = threading.Barrier(3)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(pg_dsn, tmp_path))
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(name for applied in results for name in applied) == [
        "0001_slow.sql",
        "0002_more.sql",
    ]
    assert _count(pg_dsn, "t2") == 1


def test_migrate_failed_file_is_rolled_back_and_not_recorded(pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELEC 1;")
    with pytest.raises(MigrationError, match="0002_bad.sql"):
        migrate(pg_dsn, tmp_path)
    with psycopg.connect(pg_dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM schema_migrations")]
        half = conn.execute("SELECT to_regclass('half')").fetchone()
    assert names == ["0001_ok.sql"]
    assert half == (None,)
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (id int);")
    assert migrate(pg_dsn, tmp_path) == ["0002_bad.sql"]


def test_migrate_edited_applied_file_raises(pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id int);")
    migrate(pg_dsn, tmp_path)
    (tmp_path / "0001_a.sql").write_text("CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate(pg_dsn, tmp_path)


def test_migrate_duplicate_version_raises(pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 1"):
        migrate(pg_dsn, tmp_path)


# -- dead letters ------------------------------------------------------------------------------


def test_write_dead_letters_stores_raw_bytes_and_readable_text(pg_dsn: str) -> None:
    migrate(pg_dsn)
    letter = _letter(1, b"8=FIX.4.4\x019=5\x0110=000\x01\xff")
    with psycopg.connect(pg_dsn) as conn:
        assert write_dead_letters(conn, [letter]) == 1
        row = conn.execute(
            "SELECT source, reason, raw, raw_text, step_id, error, tag, ts_init, dedup_key,"
            " received_at FROM dead_letters"
        ).fetchone()
    assert row is not None
    source, reason, raw, raw_text, step_id, error, tag, ts_init, key, received_at = row
    assert (source, reason, step_id, error, tag) == (
        "file:day.fix:1",
        letter.reason,
        "decode_fix",
        "DecodeError",
        10,
    )
    assert bytes(raw) == letter.raw
    assert raw_text == "8=FIX.4.4|9=5|10=000|\ufffd"
    assert ts_init == letter.ts_init
    assert key == dead_letter_key(letter)
    assert received_at is not None


def test_write_dead_letters_replay_adds_no_rows(pg_dsn: str) -> None:
    migrate(pg_dsn)
    letters = [_letter(n) for n in range(50)]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert write_dead_letters(conn, letters) == 50
        assert write_dead_letters(conn, letters) == 0
        # Duplicates inside one batch and a new letter mixed with old ones.
        assert write_dead_letters(conn, [*letters[:5], _letter(99), _letter(99)]) == 1
        assert write_dead_letters(conn, []) == 0
    assert _count(pg_dsn) == 51


def test_write_dead_letters_same_raw_from_two_sources_are_two_rows(pg_dsn: str) -> None:
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert write_dead_letters(conn, [_letter(1), _letter(2)]) == 2


def test_write_dead_letters_text_with_nul_is_kept(pg_dsn: str) -> None:
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        assert write_dead_letters(conn, [_letter(1, b"8=FIX\x00oops")]) == 1
        raw, raw_text = conn.execute("SELECT raw, raw_text FROM dead_letters").fetchone() or ()
    assert bytes(raw) == b"8=FIX\x00oops"
    assert raw_text == "8=FIX\\x00oops"


def _run_dead_letter_flow(dsn: str, letters: list[DeadLetter]) -> None:
    flow = Dataflow("dead_letter_sink_test")
    stream = op.input("inp", flow, TestingSource(letters, batch_size=7))
    op.output("write_dead_letters", stream, DeadLetterSink(dsn))
    run_main(flow)


def test_dead_letter_sink_writes_batches_and_replay_adds_no_rows(pg_dsn: str) -> None:
    migrate(pg_dsn)
    letters = [_letter(n) for n in range(20)]
    _run_dead_letter_flow(pg_dsn, letters)
    assert _count(pg_dsn) == 20
    _run_dead_letter_flow(pg_dsn, letters)
    assert _count(pg_dsn) == 20


def test_pg_batch_writer_reconnects_after_connection_loss(pg_dsn: str) -> None:
    migrate(pg_dsn)
    writer: PgBatchWriter[DeadLetter] = PgBatchWriter(
        pg_dsn, write_dead_letters, RetryPolicy(attempts=3, base_s=0.01, max_s=0.05)
    )
    writer.connect()
    try:
        assert writer.write([_letter(1)]) == 1
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert writer.write([_letter(2)]) == 1
    finally:
        writer.close()
    assert _count(pg_dsn) == 2


def test_pg_batch_writer_raises_after_bounded_attempts() -> None:
    # Nothing listens on port 1: every attempt fails, and the error comes out, not a drop.
    writer: PgBatchWriter[DeadLetter] = PgBatchWriter(
        "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1",
        write_dead_letters,
        RetryPolicy(attempts=2, base_s=0.01, max_s=0.01),
    )
    with pytest.raises(psycopg.OperationalError) as info:
        writer.write([_letter(1)])
    assert "gave up after 2 attempts" in "".join(getattr(info.value, "__notes__", []))


# -- retry_with_backoff ------------------------------------------------------------------------


def test_backoff_delays_double_and_cap() -> None:
    assert backoff_delays(1, 0.1, 1.0) == []
    assert backoff_delays(6, 0.1, 0.5) == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_retry_with_backoff_retries_then_succeeds() -> None:
    calls: list[int] = []
    slept: list[float] = []
    retried: list[tuple[int, str, float]] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"down {len(calls)}")
        return "ok"

    result = retry_with_backoff(
        flaky,
        attempts=5,
        base_s=0.5,
        max_s=0.75,
        retry_on=(ConnectionError,),
        on_retry=lambda n, exc, delay: retried.append((n, str(exc), delay)),
        sleep=slept.append,
    )
    assert result == "ok"
    assert slept == [0.5, 0.75]
    assert retried == [(1, "down 1", 0.5), (2, "down 2", 0.75)]


def test_retry_with_backoff_gives_up_and_reraises_with_note() -> None:
    slept: list[float] = []

    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down") as info:
        retry_with_backoff(
            down, attempts=3, base_s=1, max_s=10, retry_on=(OSError,), sleep=slept.append
        )
    assert slept == [1, 2]
    assert info.value.__notes__ == ["gave up after 3 attempts"]


def test_retry_with_backoff_other_errors_propagate_at_once() -> None:
    slept: list[float] = []

    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry_with_backoff(
            broken, attempts=5, base_s=1, max_s=1, retry_on=(OSError,), sleep=slept.append
        )
    assert slept == []
    with pytest.raises(ValueError, match="at least 1"):
        retry_with_backoff(lambda: None, attempts=0, base_s=1, max_s=1, retry_on=(OSError,))
