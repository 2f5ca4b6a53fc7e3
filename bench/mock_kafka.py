"""librdkafka's mock Kafka cluster in a process of its own: `python -m bench.mock_kafka`.

A benchmark that times processes against Kafka keeps the brokers out of the processes it
times: here they run in this process, which prints one line once they listen,
    bootstrap 127.0.0.1:PORT,127.0.0.1:PORT,127.0.0.1:PORT
(or `error REASON` and exit 2), then serves until its stdin closes (the parent ended, however
it ended) or it is terminated. `running()` is the parent's side.

The mock keeps about 5 MB per partition (librdkafka's `rd_kafka_mock_partition_init`: the
oldest message sets are dropped past 5 MiB or 100,000 sets), so a large input needs more
partitions than the 4 it gives a topic created on first use. `--topic NAME=N` creates topics
with N partitions ahead, through librdkafka's mock API (`rd_kafka_mock_topic_create`, called
with ctypes on the library confluent_kafka loaded: confluent_kafka does not expose it). Where
that API cannot be reached, the cluster starts as `Producer({"test.mock.num.brokers": …})`
starts it, every topic gets 4 partitions, and a line on stderr says so; a reader that must
lose nothing checks the partitions' low watermarks (`bench.scale_out` does).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from domain.errors import BrokerflowError

ROOT = Path(__file__).resolve().parents[1]  # where `python -m bench.mock_kafka` is found
DEFAULT_BROKERS = 3
START_TIMEOUT_S = 30.0
_RD_KAFKA_PRODUCER = 0


class MockKafkaError(BrokerflowError):
    """The mock cluster did not start (confluent_kafka missing, or librdkafka refused)."""


# -- the cluster (this process) ------------------------------------------------------------------


def _loaded_librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent_kafka loaded (its wheel bundles one), else the system's."""
    import confluent_kafka  # noqa: F401 - loads its librdkafka into this process

    maps = Path("/proc/self/maps")
    if maps.is_file():
        for line in maps.read_text().splitlines():
            path = line.rsplit(" ", 1)[-1]
            if "librdkafka" in Path(path).name:
                return ctypes.CDLL(path)  # the same handle: dlopen of a loaded path
    found = ctypes.util.find_library("rdkafka")
    if found is None:
        msg = "librdkafka's library file was not found"
        raise OSError(msg)
    return ctypes.CDLL(found)


def _native_cluster(brokers: int, topics: dict[str, int]) -> tuple[object, str]:
    """A mock cluster made through librdkafka's C API, `topics` created with their partition
    counts; (what must stay alive, bootstrap servers). OSError/AttributeError: no such API."""
    lib = _loaded_librdkafka()
    ptr, text, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    lib.rd_kafka_conf_new.restype = ptr
    lib.rd_kafka_conf_set.argtypes = [ptr, text, text, text, size]
    lib.rd_kafka_new.restype = ptr
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ptr, text, size]
    lib.rd_kafka_mock_cluster_new.restype = ptr
    lib.rd_kafka_mock_cluster_new.argtypes = [ptr, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = text
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ptr]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [ptr, text, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_err2str.restype = text
    lib.rd_kafka_err2str.argtypes = [ctypes.c_int]

    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, len(errstr))
    handle = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
    if not handle:
        msg = f"librdkafka did not create a client: {errstr.value.decode(errors='replace')}"
        raise MockKafkaError(msg)
    cluster = lib.rd_kafka_mock_cluster_new(handle, brokers)
    if not cluster:
        msg = f"librdkafka did not create a mock cluster of {brokers} brokers"
        raise MockKafkaError(msg)
    replicas = min(3, brokers)  # what the mock gives a topic created on first use
    for name, partitions in topics.items():
        err = lib.rd_kafka_mock_topic_create(cluster, name.encode(), partitions, replicas)
        if err:
            msg = f"the mock cluster did not create {name} with {partitions} partitions: " \
                  f"{lib.rd_kafka_err2str(err).decode()}"  # fmt: skip
            raise MockKafkaError(msg)
    bootstrap = lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()
    return (lib, handle, cluster), bootstrap


def _producer_cluster(brokers: int) -> tuple[object, str]:
    """The cluster as tests/kafka/conftest.py starts it (topics: 4 partitions on first use)."""
    from confluent_kafka import KafkaException, Producer

    try:
        owner = Producer({"test.mock.num.brokers": brokers, "bootstrap.servers": "",
                          "log_level": 0})  # fmt: skip
        metadata = owner.list_topics(timeout=10)
    except KafkaException as exc:
        msg = f"librdkafka's mock cluster did not start: {exc}"
        raise MockKafkaError(msg) from exc
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    return owner, bootstrap


def start(brokers: int, topics: dict[str, int]) -> tuple[object, str]:
    """Start the cluster in this process; (what must stay alive, bootstrap servers)."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError as exc:
        msg = f"confluent_kafka is not installed ({exc})"
        raise MockKafkaError(msg) from exc
    try:
        keep, bootstrap = _native_cluster(brokers, topics)
    except (OSError, AttributeError) as exc:
        if topics:
            print(f"mock_kafka: librdkafka's mock API is not reachable ({exc}); topics get "
                  "4 partitions on first use", file=sys.stderr, flush=True)  # fmt: skip
        keep, bootstrap = _producer_cluster(brokers)
    if not bootstrap:
        msg = "the mock cluster started without brokers"
        raise MockKafkaError(msg)
    return keep, bootstrap


def _topics(specs: list[str]) -> dict[str, int]:
    topics: dict[str, int] = {}
    for spec in specs:
        name, sep, count = spec.partition("=")
        if not (sep and name and count.isdigit() and int(count) > 0):
            msg = f"--topic {spec!r} is not NAME=PARTITIONS"
            raise MockKafkaError(msg)
        topics[name] = int(count)
    return topics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mock_kafka", description=__doc__)
    p.add_argument("--brokers", type=int, default=DEFAULT_BROKERS)
    p.add_argument("--topic", action="append", default=[], metavar="NAME=PARTITIONS",
                   help="create this topic with this many partitions")  # fmt: skip
    args = p.parse_args(argv)
    try:
        keep, bootstrap = start(args.brokers, _topics(args.topic))
    except MockKafkaError as exc:
        print(f"error {exc}", flush=True)
        return 2
    print(f"bootstrap {bootstrap}", flush=True)
    try:
        sys.stdin.read()  # serves (librdkafka's threads) until the parent closes our stdin
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: end quietly
        return 130
    del keep
    return 0


# -- the parent's side ---------------------------------------------------------------------------


@contextlib.contextmanager
def running(
    topics: dict[str, int] | None = None,
    brokers: int = DEFAULT_BROKERS,
    start_timeout_s: float = START_TIMEOUT_S,
) -> Iterator[str]:
    """Run the mock cluster in a child process while inside; yield its bootstrap servers.

    Raises:
        MockKafkaError: it did not start (with its reason), or not within `start_timeout_s`.
    """
    command = [sys.executable, "-m", "bench.mock_kafka", "--brokers", str(brokers)]
    for name, partitions in (topics or {}).items():
        command += ["--topic", f"{name}={partitions}"]
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        ready, _, _ = select.select([proc.stdout], [], [], start_timeout_s)
        line = proc.stdout.readline().strip() if ready else ""
        word, _, rest = line.partition(" ")
        if word != "bootstrap":
            if word == "error":
                reason = rest
            elif proc.poll() is not None:
                reason = f"it exited with code {proc.returncode}"
            else:
                reason = f"no broker address within {start_timeout_s:g} s"
            msg = f"the mock Kafka did not start: {reason}"
            raise MockKafkaError(msg)
        yield rest
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        proc.stdin.close()  # its signal to end
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
