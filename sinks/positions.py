"""Sinks layer: the traders' positions feed in Redis (issue 19, part 2), read by the edge.

Keys `positions:{account}` (the ledger's holdings document) and `margin:{account}` (the margin
flow's figures) hold the latest of each (`domain.positions`); every document written is also an
entry of `stream:positions` (fields `account`, `kind` = holdings | margin, `data`), capped
(`MAXLEN ~`). One Lua script per batch (one round trip), retried with bounded backoff.

A document identical to the key's is not written again (no stream entry): a batch replayed
after a crash publishes what it published before, and only what it had not yet adds entries.
Margin documents never go back in event time: one older than the key's (a replayed file) is
left out, key and stream alike, as `account_margin` keeps the newer row. Holdings documents
are the ledger's state after a commit, ordered by the account row's `positions_version` (+1 per
committing transaction, whatever the event time of its reports; kept in `positions:versions`):
one of a lower version than the key's (a writer that published after another that committed
later) is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from sinks.retry import RetryPolicy, retry_policy_call

STREAM = "stream:positions"
HOLDINGS = "holdings"
MARGIN = "margin"
KEY_PREFIX = {HOLDINGS: "positions:", MARGIN: "margin:"}
# account -> the ledger's version of the holdings document in `positions:{account}` (commit
# order; two writers may publish out of it). How many transactions booked a day depends on how
# the engine cut them, so the versions are bookkeeping, not part of the documents.
VERSIONS = "positions:versions"
# Entries kept (about): the edge reads the stream's tail as it comes and a connecting trader
# reads the keys, so the stream need not hold much; an account's holdings document is ~80 bytes
# a holding (100,000 entries of accounts with 50 holdings: ~400 MB).
MAXLEN = 100_000

# KEYS[1] stream, KEYS[2] the versions hash; ARGV[1] maxlen, ARGV[2] kind, ARGV[3] key
# prefix, then (account, order, data) * n: `order` is the document's version (holdings, kept in
# KEYS[2]) or its ts (margin, read from the key's document).
_PUBLISH = """
local added = 0
local by_version = ARGV[2] == 'holdings'
for i = 4, #ARGV, 3 do
  local account = ARGV[i]
  local key = ARGV[3] .. account
  local order = tonumber(ARGV[i + 1])
  local write = true
  local old = redis.call('GET', key)
  if old == ARGV[i + 2] then
    write = false  -- the same document again (a batch replayed after a crash): no new entry
  elseif by_version then
    local known = tonumber(redis.call('HGET', KEYS[2], account))
    if known and known > order then
      write = false  -- published after a document of a later commit
    end
  elseif old then
    local ok, doc = pcall(cjson.decode, old)
    if ok and type(doc) == 'table' and tonumber(doc.ts) and tonumber(doc.ts) > order then
      write = false  -- older than the key's
    end
  end
  if write and by_version then
    redis.call('HSET', KEYS[2], account, order)
  end
  if write then
    redis.call('SET', key, ARGV[i + 2])
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
               'account', ARGV[i], 'kind', ARGV[2], 'data', ARGV[i + 2])
    added = added + 1
  end
end
return added
"""

# (account, ordering value: version for holdings, ts ms for margin, document JSON)
PositionsDoc = tuple[str, int, str]


class PositionsPublisher:
    """Publishes batches of positions documents; connect lazily, retry with bounded backoff."""

    def __init__(
        self, redis_url: str, policy: RetryPolicy | None = None, maxlen: int = MAXLEN
    ) -> None:
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10)
        self._script = self._redis.register_script(_PUBLISH)
        self._policy = policy or RetryPolicy()
        self._maxlen = maxlen

    def publish(self, kind: str, docs: Sequence[PositionsDoc]) -> int:
        """Write `docs` of `kind` (HOLDINGS or MARGIN) in order; return how many were written."""
        if not docs:
            return 0
        args: list[str | int] = [self._maxlen, kind, KEY_PREFIX[kind]]
        for account, order, data in docs:
            args += [account, order, data]
        return int(
            retry_policy_call(
                lambda: self._script(keys=[STREAM, VERSIONS], args=args),
                self._policy,
                (redis.ConnectionError, redis.TimeoutError),
            )
        )

    def close(self) -> None:
        self._redis.close()
