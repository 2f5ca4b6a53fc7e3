"""Sinks layer: the traders' order-status feed, Redis `stream:orders` (the edge fans it out).

One entry per execution report of an account, fields `account` and `data` (the `order` frame of
`domain.order_status`), in the order the reports were booked. Written once per ExecID: one Lua
script per batch XADDs a report only if `SET order:seen:{exec_id} NX` succeeds (the marker lives
`SEEN_TTL_S`, a trading day and more), so a batch retried after a crash, or a replayed file,
adds nothing; the stream is capped (`MAXLEN ~`).

The same script keeps the open-order snapshot the edge sends on connect: `orders:open:{account}`,
a hash ClOrdID -> the order's latest frame, changed with the XADD (so the hash is always the state
after a prefix of the stream): each frame says where it is kept and what it removes
(`domain.order_status.open_order_keys`: a final status removes the order, a replace moves it to
the new ClOrdID). The hash's TTL is the markers' and is renewed by each write.

`OrderStatusSink` has one partition and writes on a background thread (`sinks.background`),
like the alerts: the flow does not wait for Redis, and an epoch's snapshot waits for its writes.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.background import BackgroundPartition
from sinks.retry import RetryPolicy, retry_with_backoff

STREAM = "stream:orders"
SEEN_TTL_S = 36 * 3600
PARTITION = "orders"

OPEN_ORDERS = "orders:open:"  # + account

# KEYS[1] stream; ARGV[1] maxlen, ARGV[2] TTL of the markers and the open-order hashes, then
# (exec_id, account, data, keep, drop, drop) * n ("" for no keep / no drop).
_XADD_NEW = """
local added = 0
for i = 3, #ARGV, 6 do
  if redis.call('SET', 'order:seen:' .. ARGV[i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
               'account', ARGV[i + 1], 'data', ARGV[i + 2])
    local open = 'orders:open:' .. ARGV[i + 1]
    if ARGV[i + 4] ~= '' then redis.call('HDEL', open, ARGV[i + 4]) end
    if ARGV[i + 5] ~= '' then redis.call('HDEL', open, ARGV[i + 5]) end
    if ARGV[i + 3] ~= '' then redis.call('HSET', open, ARGV[i + 3], ARGV[i + 2]) end
    redis.call('EXPIRE', open, ARGV[2])
    added = added + 1
  end
end
return added
"""

# (exec_id or our deterministic id, account, frame JSON, then `open_order_keys`: keep, drop, drop)
OrderFrame = tuple[str, str, str, str, str, str]


class OrderStatusWriter:
    """Writes batches of order frames to `stream:orders`, retrying with bounded backoff."""

    def __init__(
        self, redis_url: str, maxlen: int = 1_000_000, policy: RetryPolicy | None = None
    ) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10)
        self._script = self._redis.register_script(_XADD_NEW)
        self._maxlen = maxlen
        self._policy = policy or RetryPolicy()

    def write(self, frames: Sequence[OrderFrame]) -> int:
        """XADD the frames not yet on the stream, in order; return how many were added."""
        if not frames:
            return 0
        args: list[str | int] = [self._maxlen, SEEN_TTL_S]
        for frame in frames:
            args += frame
        policy = self._policy
        return int(retry_with_backoff(
            lambda: self._script(keys=[STREAM], args=args),
            attempts=policy.attempts, base_s=policy.base_s, max_s=policy.max_s,
            retry_on=(redis.ConnectionError, redis.TimeoutError),
        ))  # fmt: skip

    def close(self) -> None:
        self._redis.close()


def order_partition_key(frames: list[OrderFrame]) -> tuple[str, list[OrderFrame]]:
    """Key a list of frames for `OrderStatusSink` (one partition: booking order kept)."""
    return PARTITION, frames


class OrderStatusSink(FixedPartitionedSink[list[OrderFrame], None]):
    """Bytewax sink of `(PARTITION, [frames])`: `stream:orders`, in order, on a writer thread."""

    def __init__(
        self, redis_url: str, policy: RetryPolicy | None = None, recovery: bool = True
    ) -> None:
        self._redis_url = redis_url
        self._policy = policy
        self._recovery = recovery

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[list[OrderFrame], None]:
        writer = OrderStatusWriter(self._redis_url, policy=self._policy)
        return BackgroundPartition.threaded(
            writer.write, writer.close, f"{step_id}.{for_part}", 20_000, self._recovery
        )
