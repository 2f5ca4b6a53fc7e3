"""The other processes of a Bytewax cluster, seen from this one: run wiring, not cluster code.

Bytewax (timely) connects every pair of processes once, at start, over TCP: process K connects
to each lower index and accepts a connection from each higher one. What it does then, found by
experiment with Bytewax 0.21.1 (docs/kafka-and-scale-out.md, "When a process fails"):
- a peer killed or failed mid-run closes its connections; timely's receiving thread treats an
  end without its clean-shutdown header as fatal and the whole process stops within a second,
  but with a Python traceback that names no one (`PanicException: Send thread panic`);
- a peer that never starts (or stops before connecting) leaves the others waiting forever:
  process 0 silently, the others printing "error connecting ... retrying" every second, and
  deaf to Ctrl-C (the wait is in Rust, before Bytewax checks for signals);
- a peer whose machine vanishes sends nothing, and TCP without keepalive waits forever.

`watch_peers` covers those three from outside Bytewax: it only looks at this process's sockets
and thread names (Linux `/proc/self`), never reads or writes a socket, and takes no part in the
cluster.
- Until Bytewax is connected to every peer (its `timely:recv-K` threads start only then) it
  polls; after `FORM_TIMEOUT_S` it prints one line naming the peers it found no connection
  with and ends the process (nothing has run yet: the dataflow starts only once all are in).
- Then it waits (epoll) for the first connection to hang up and remembers its peer, so that
  when Bytewax stops, the stop is reported as `PeerLost`, one line naming that peer.
- It turns on TCP keepalive and a user timeout on those connections, so a vanished machine
  becomes a connection error within `DEAD_AFTER_S`, which timely treats as fatal too.

A peer behind an accepted connection is known by its IP address only (its port is ephemeral):
with two higher-index processes on one host, a lost one is named as "process 2 or process 3";
one that connects from an address its own does not resolve to is named by its index alone.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from socket import AF_INET, AF_INET6

from domain.errors import BrokerflowError

# Processes of a cluster are started together; 20 s covers a slow start (stores, migrations)
# and keeps "never started" under the 30 s that issue 17 allows.
FORM_TIMEOUT_S = 20.0
# A peer that fails at start may do so milliseconds after the connections are made, and its
# connection must have been seen to name it; 0.3 ms a look, and only until they are made.
POLL_S = 0.01
# Keepalive probes after 10 s of silence, every 5 s; the user timeout bounds both unanswered
# probes and unacknowledged data, so a vanished peer is an error after at most 25 s.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES = 10, 5, 3
DEAD_AFTER_S = KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_PROBES
EXIT_CODE = 2  # what `brokerflow` returns for every one-line error


@dataclass(frozen=True, slots=True)
class Peer:
    """Another process of the cluster: its index in `--addresses` and its "host:port"."""

    index: int
    address: str

    def __str__(self) -> str:
        return f"process {self.index} ({self.address})"


def describe(peers: tuple[Peer, ...]) -> str:
    return " or ".join(str(p) for p in peers)


class PeerLost(BrokerflowError):
    """This process stopped because another process of the cluster was lost (killed, or failed:
    its connection ended); every process must be restarted."""


class PeerWatch:
    """Watches this process's connections with the other processes of a cluster."""

    def __init__(
        self,
        addresses: list[str],
        process_id: int,
        form_timeout_s: float = FORM_TIMEOUT_S,
        give_up: Callable[[str], None] | None = None,
    ) -> None:
        self._me = process_id
        self._peers = tuple(Peer(i, a) for i, a in enumerate(addresses) if i != process_id)
        self._my_port = _port(addresses[process_id])
        self._endpoints: dict[int, set[tuple[str, int]]] = {}  # resolved once, when possible
        self._form_timeout_s = form_timeout_s
        self._give_up = give_up or _exit_with
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="peer-watch", daemon=True)
        self._lost: tuple[Peer, ...] = ()
        # Peers with no connection seen: all until the cluster forms; then, rarely, one that
        # connected and failed between two looks.
        self.unwatched = self._peers

    @property
    def lost(self) -> tuple[Peer, ...]:
        """The peers whose connection hung up first, so far (empty while none did)."""
        return self._lost

    def start(self) -> PeerWatch:
        self._thread.start()
        return self

    def stop(self) -> tuple[Peer, ...]:
        """Stop watching; the peers whose connection hung up first (empty if none did)."""
        if not self._stopping.is_set():
            self._stopping.set()
            os.write(self._wake_w, b"x")
            if self._thread.ident is not None:  # started
                self._thread.join(timeout=5)
            os.close(self._wake_w)
            os.close(self._wake_r)
        return self._lost

    def _run(self) -> None:
        connections = self._await_connections()
        if connections is not None:
            self.unwatched = unconnected(self._peers, connections)
            self._watch(connections)

    def _await_connections(self) -> list[tuple[socket.socket, tuple[Peer, ...]]] | None:
        """The peers' connections once all are in (None if stopped or given up first)."""
        deadline = time.monotonic() + self._form_timeout_s
        while not self._stopping.wait(POLL_S):
            for peer in self._peers:
                if not self._endpoints.get(peer.index):
                    self._endpoints[peer.index] = _endpoints(peer.address)
            up = bytewax_connected()
            connections = peer_connections(self._peers, self._me, self._my_port, self._endpoints)
            missing = unconnected(self._peers, connections)
            if up or not missing:
                return connections  # when `up`, maybe not all of them (see the docstring)
            for sock, _ in connections:
                sock.close()
            if time.monotonic() >= deadline:
                self._give_up(
                    f"the cluster did not form within {self._form_timeout_s:.0f} s: no "
                    f"connection with {describe(missing)} (not started, or stopped at start); "
                    "start every process of --addresses, each with its own --process-id"
                )
                return None
        return None

    def _watch(self, connections: list[tuple[socket.socket, tuple[Peer, ...]]]) -> None:
        # Our duplicates keep each socket open until `stop`, so a hang-up cannot vanish with
        # Bytewax's own descriptors before it is read; they are never read or written.
        poller = select.epoll()
        by_fd = {}
        try:
            poller.register(self._wake_r, select.EPOLLIN)
            for sock, peers in connections:
                keep_alive(sock)
                poller.register(sock.fileno(), select.EPOLLRDHUP)  # HUP and ERR come anyway
                by_fd[sock.fileno()] = peers
            timeout = -1.0
            while True:
                events = poller.poll(timeout)
                hung = [by_fd[fd] for fd, _ in events if fd in by_fd]
                for fd, _ in events:
                    if fd in by_fd:
                        poller.unregister(fd)  # level-triggered: once is enough
                if hung and not self._lost:
                    self._lost = tuple(dict.fromkeys(p for peers in hung for p in peers))
                if self._stopping.is_set():
                    if timeout == 0:
                        return
                    timeout = 0  # one more look: a hang-up that came with the stop
        finally:
            poller.close()
            for sock, _ in connections:
                sock.close()


@contextmanager
def watch_peers(addresses: list[str] | None, process_id: int) -> Iterator[PeerWatch | None]:
    """Watch the peers while the cluster runs; a failure after a peer's connection hung up is
    raised as `PeerLost` naming that peer. A single process (or no `/proc`) is not watched.

    At a clean end every connection hangs up too, and the run returns normally; only a failure
    of this process in its last moments would then be taken for the peer's.
    """
    if not addresses or len(addresses) < 2 or not os.path.isdir("/proc/self/fd"):
        yield None
        return
    watch = PeerWatch(addresses, process_id).start()
    try:
        yield watch
    except BaseException as exc:  # Bytewax's PanicException is a BaseException
        lost = watch.stop()
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        restart = (
            "restart every process with the same command (the same --recovery-dir resumes "
            "from the last snapshot)"
        )
        if lost:
            msg = (
                f"lost {describe(lost)} of the cluster: its connection ended mid-run (killed, "
                f"failed or unreachable), so this process stopped too; {restart}"
            )
            raise PeerLost(msg) from exc
        if watch.unwatched and type(exc).__name__ == "PanicException":
            # Connections made and lost between two looks: a failure as the cluster started,
            # here or there; Bytewax's own message ("Send thread panic") says neither.
            msg = (
                f"the cluster stopped as it started: this process or {describe(watch.unwatched)} "
                f"failed; {restart}"
            )
            raise PeerLost(msg) from exc
        raise
    finally:
        watch.stop()


def bytewax_connected() -> bool:
    """Whether Bytewax's communication threads run: it starts them once every peer is in."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return False
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm", "rb") as fh:
                if fh.read().startswith(b"timely:recv-"):
                    return True
        except OSError:
            continue  # ended meanwhile
    return False


def peer_connections(
    peers: tuple[Peer, ...], me: int, my_port: int, endpoints: dict[int, set[tuple[str, int]]]
) -> list[tuple[socket.socket, tuple[Peer, ...]]]:
    """This process's TCP connections with its peers, each a duplicate socket (close it) with
    the peers it may be: exactly one for a connection we made; for one we accepted, the higher
    peers whose address resolves to its remote IP address, else every higher peer."""
    higher = tuple(p for p in peers if p.index > me)
    found = []
    seen = set()  # Bytewax holds each connection under several descriptors: one is enough
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # closed meanwhile
        if sock.type != socket.SOCK_STREAM or sock.family not in (AF_INET, AF_INET6):
            sock.close()
            continue
        try:
            local, remote = _ip_port(sock.getsockname()), _ip_port(sock.getpeername())
        except OSError:  # not connected: a listener
            sock.close()
            continue
        if (local, remote) in seen:
            sock.close()
            continue
        seen.add((local, remote))
        # We connect to lower indices (their address is the remote end) and accept higher ones
        # on our own port (their end is an ephemeral port of their IP address).
        made = tuple(p for p in peers if p.index < me and remote in endpoints.get(p.index, ()))
        if made:
            found.append((sock, made))
        elif higher and local[1] == my_port:
            by_ip = tuple(
                p for p in higher if remote[0] in {ip for ip, _ in endpoints.get(p.index, ())}
            )
            found.append((sock, by_ip or higher))
        else:
            sock.close()
    return found


def unconnected(
    peers: tuple[Peer, ...], connections: list[tuple[socket.socket, tuple[Peer, ...]]]
) -> tuple[Peer, ...]:
    """The peers not (or, among peers sharing an IP address, maybe not) connected yet."""
    count: dict[tuple[Peer, ...], int] = {}
    for _, candidates in connections:
        count[candidates] = count.get(candidates, 0) + 1
    covered = {p for candidates, n in count.items() if n >= len(candidates) for p in candidates}
    return tuple(p for p in peers if p not in covered)


def keep_alive(sock: socket.socket) -> None:
    """Make a silent, vanished peer an error on `sock` after about `DEAD_AFTER_S`."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        ("TCP_USER_TIMEOUT", DEAD_AFTER_S * 1000),
    ):
        if hasattr(socket, option):  # Linux has all four
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _exit_with(message: str) -> None:
    # The main thread waits inside Bytewax's Rust code for the connections and checks no
    # signals there, so nothing can be raised to it: say why and end the process.
    print(f"brokerflow: error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_CODE)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def _endpoints(address: str) -> set[tuple[str, int]]:
    host, _, port = address.rpartition(":")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return set()  # not resolvable (yet): not connected either
    return {_ip_port(info[4]) for info in infos}


def _ip_port(sockaddr: tuple) -> tuple[str, int]:
    ip = sockaddr[0]
    if ip.startswith("::ffff:") and "." in ip:  # an IPv4 peer on a dual-stack socket
        ip = ip[7:]
    return ip, sockaddr[1]
