"""`brokerflow.peers` on real sockets of this process, shaped like Bytewax's: process 0 accepts
a connection from process 1 on its own port, then closes its listener. No Bytewax here; the
cluster itself is tested in tests/kafka/test_cluster_failures.py."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from brokerflow.peers import Peer, PeerLost, PeerWatch, unconnected, watch_peers
from tests.eventually import eventually

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the watch reads /proc/self")


@pytest.fixture
def connected() -> Iterator[tuple[list[str], socket.socket]]:
    """The addresses of a 2-process cluster, seen from process 0 once process 1 connected;
    process 1's end of the connection (close it to lose process 1)."""
    listener = socket.create_server(("127.0.0.1", 0))
    spare = socket.create_server(("127.0.0.1", 0))  # process 1's address: only its IP counts
    addresses = [f"127.0.0.1:{listener.getsockname()[1]}", f"127.0.0.1:{spare.getsockname()[1]}"]
    spare.close()
    theirs = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    yield addresses, theirs
    theirs.close()
    ours.close()


def test_peer_watch_names_the_peer_whose_connection_hangs_up(connected) -> None:
    addresses, theirs = connected
    watch = PeerWatch(addresses, 0).start()
    try:
        eventually(lambda: not watch.unwatched)
        theirs.close()
        eventually(lambda: watch.lost)
    finally:
        lost = watch.stop()
    assert lost == (Peer(1, addresses[1]),)


def test_peer_watch_reports_nothing_while_connections_hold(connected) -> None:
    addresses, _ = connected
    watch = PeerWatch(addresses, 0).start()
    eventually(lambda: not watch.unwatched)
    assert watch.stop() == ()


def test_peer_watch_gives_up_naming_the_peer_that_never_connects() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{listener.getsockname()[1]}", "127.0.0.1:9"]
    said: list[str] = []
    watch = PeerWatch(addresses, 0, form_timeout_s=0.2, give_up=said.append).start()
    try:
        eventually(lambda: said)
    finally:
        watch.stop()
        listener.close()
    assert "did not form within 0 s: no connection with process 1 (127.0.0.1:9)" in said[0]


def test_watch_peers_turns_a_failure_after_a_hang_up_into_one_line_naming_the_peer(
    connected,
) -> None:
    addresses, theirs = connected
    with pytest.raises(PeerLost, match=r"lost process 1 \(127\.0\.0\.1:\d+\) of the cluster"):
        with watch_peers(addresses, 0) as watch:
            assert watch is not None
            eventually(lambda: not watch.unwatched)
            theirs.close()
            eventually(lambda: watch.lost)
            raise RuntimeError("Send thread panic")  # what Bytewax raises then


def test_watch_peers_lets_a_failure_of_this_process_through(connected) -> None:
    addresses, _ = connected
    with pytest.raises(ValueError, match="ours"):
        with watch_peers(addresses, 0) as watch:
            assert watch is not None
            eventually(lambda: not watch.unwatched)
            raise ValueError("ours")


def test_watch_peers_does_nothing_for_one_process() -> None:
    with watch_peers(None, 0) as watch:
        assert watch is None
    with watch_peers(["127.0.0.1:2101"], 0) as watch:
        assert watch is None


def test_unconnected_counts_connections_of_peers_sharing_an_address() -> None:
    two, three = Peer(2, "h:1"), Peer(3, "h:2")
    peers = (Peer(0, "g:1"), two, three)
    one = socket.socket()
    try:
        assert unconnected(peers, [(one, (two, three))]) == peers
        assert unconnected(peers, [(one, (two, three)), (one, (two, three))]) == (peers[0],)
        assert unconnected(peers, [(one, (peers[0],))]) == (two, three)
    finally:
        one.close()
