"""The Lua scripts of history channels, and the Redis keys they use.

The keys and the pub/sub channel come from ``hub.brokers.names``: on a standalone Redis they
carry a hash tag of the channel (``hub:{news}:stream``), on Redis Cluster the tag of the
channel's partition, which the sharded pub/sub channel shares, so each script runs in one slot.

The publish script does in one step what must never be seen half done: it assigns the next
offset (HINCRBY on the meta), appends to the stream trimmed exactly to the history size,
refreshes both expiries, and PUBLISHes the message with its offset and epoch, so that live
subscribers and history readers agree on every offset. A publish whose reply was lost with
its connection is sent again; the message's id in the stream makes that resend a no-op when
the first one went through, so a history channel gets each message exactly once.
"""

from __future__ import annotations

import hashlib
import secrets

from hub.brokers.names import Names
from hub.core.namespaces import ChannelOptions

__all__ = [
    "PRESENCE_SCRIPT",
    "PUBLISH_SCRIPT",
    "READ_SCRIPT",
    "UNPUBLISHED_META_TTL_S",
    "new_epoch",
    "new_message_id",
    "publish_args",
    "run_id",
    "sha1",
    "unpublished_meta_ttl",
]

#: How long the meta of a channel that nothing was published on yet lives after its last
#: read (at most the channel's meta TTL): see READ_SCRIPT.
UNPUBLISHED_META_TTL_S = 3600

# KEYS: stream, meta. ARGV: envelope, history size, history TTL (ms), meta TTL (s),
# a fresh epoch (taken if the channel has none), the pub/sub channel, the message's id,
# "1" when this is a resend after a lost connection (then a message already in the stream
# with that id was published before the reply was lost, and is not published again), and
# the run_id of the server it is sent to ('': the script asks INFO), and the publish command
# ('publish', or 'spublish' on Redis Cluster, whose sharded channel shares the keys' slot).
#
# The meta remembers which server (run_id) assigned its offsets. If another server now
# writes, and that server was promoted from a replica (INFO replication names a previous
# replication id, master_replid2), a failover happened: the offsets it has may be behind
# those already given out (asynchronous replication: the old master's last writes never
# reached its replica). Handing them out again would make a reader skip the new messages as
# ones it has seen, so the channel starts a new epoch instead, and readers are told of a gap.
# A restart of the same data (AOF, RDB) is a new run_id with no previous replication id:
# its offsets are those it gave out, and the epoch stays.
PUBLISH_SCRIPT = b"""
if ARGV[8] == '1' then
  local recent = redis.call('xrevrange', KEYS[1], '+', '-', 'COUNT', 1000)
  for _, entry in ipairs(recent) do
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'i' and fields[j + 1] == ARGV[7] then
        return 0
      end
    end
  end
end
local writer = ARGV[9]
if writer == '' then
  writer = string.match(redis.call('info', 'server'), 'run_id:(%x+)')
end
local meta = redis.call('hmget', KEYS[2], 'e', 'w')
local epoch = meta[1]
local moved = meta[2] and meta[2] ~= writer and not string.find(
  redis.call('info', 'replication'), 'master_replid2:' .. string.rep('0', 40), 1, true)
if not epoch or moved then
  epoch = ARGV[5]
  redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
end
if meta[2] ~= writer then
  redis.call('hset', KEYS[2], 'w', writer)
end
local offset = redis.call('hincrby', KEYS[2], 's', 1)
redis.call('expire', KEYS[2], ARGV[4])
if offset == 1 then
  redis.call('del', KEYS[1])
end
redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-0', 'd', ARGV[1], 'i', ARGV[7])
redis.call('pexpire', KEYS[1], ARGV[3])
redis.call(ARGV[10], ARGV[6], '\\255hbo' .. offset .. ':' .. epoch .. '\\n' .. ARGV[1])
return offset
"""

# KEYS: stream, meta. ARGV: a fresh epoch, the TTL (s) of a meta that nothing was published
# on yet, the first stream id to read ("<offset>-0"; empty: the last ARGV[4] messages), the
# most messages to return.
#
# A channel with no history yet gets its epoch here, and the meta that keeps it lives only
# UNPUBLISHED_META_TTL_S until its first publish (which makes it live the meta TTL); every
# read until then starts that time again. Subscribing alone to many names so leaves nothing
# that outlives an hour. The epoch must still be written now, not at the first publish:
# clients keep the epoch of their subscribe's ack (deliveries carry only offsets), so an
# epoch made later would turn every position taken before it into another epoch's, and
# recovery from it into recovered: false. A first publish after the meta expired does start
# a new epoch: a client that was given the old one then gets recovered: false once
# (a false alarm, never a silent loss).
READ_SCRIPT = b"""
local epoch = redis.call('hget', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('hset', KEYS[2], 'e', epoch)
  redis.call('expire', KEYS[2], ARGV[2])
elseif redis.call('hexists', KEYS[2], 's') == 0 then
  redis.call('expire', KEYS[2], ARGV[2])
end
local top = tonumber(redis.call('hget', KEYS[2], 's') or '0')
local limit = tonumber(ARGV[4])
local entries = {}
if limit > 0 then
  if ARGV[3] == '' then
    entries = redis.call('xrevrange', KEYS[1], '+', '-', 'COUNT', limit)
  else
    entries = redis.call('xrange', KEYS[1], ARGV[3], '+', 'COUNT', limit)
  end
end
return {epoch, top, entries}
"""


# KEYS: the clients hash (client → "<process>\n<user>"), the processes zset (process → the
# time its heartbeat expires). ARGV: now. Drops the clients of processes past their expiry,
# so a crashed process's clients leave within the TTL; the heartbeat itself stays O(1).
PRESENCE_SCRIPT = b"""
local dead = redis.call('zrangebyscore', KEYS[2], '-inf', '(' .. ARGV[1])
if #dead > 0 then
  local is_dead = {}
  for _, process in ipairs(dead) do
    is_dead[process] = true
  end
  local all = redis.call('hgetall', KEYS[1])
  for i = 1, #all, 2 do
    local process = string.match(all[i + 1], '^[^\\n]*')
    if is_dead[process] then
      redis.call('hdel', KEYS[1], all[i])
    end
  end
  redis.call('zremrangebyscore', KEYS[2], '-inf', '(' .. ARGV[1])
end
return redis.call('hgetall', KEYS[1])
"""


def publish_args(
    names: Names,
    channel: str,
    envelope: bytes,
    options: ChannelOptions,
    *,
    message_id: bytes,
    is_resend: bool = False,
    writer: bytes = b"",
) -> tuple[bytes, ...]:
    """The publish script's numkeys, keys and arguments, for EVALSHA or EVAL. ``writer`` is
    the run_id of the server the connection reaches (empty: the script asks INFO, once per
    publish, which a backend's occasional publish can afford)."""
    stream, meta = names.history_keys(channel)
    return (
        b"2",
        stream,
        meta,
        envelope,
        b"%d" % options.history_size,
        b"%d" % max(1, int(options.history_ttl_s * 1000)),
        b"%d" % max(1, int(options.history_meta_ttl_s)),
        new_epoch(),
        names.pubsub(channel),
        message_id,
        b"1" if is_resend else b"0",
        writer,
        b"spublish" if names.sharded else b"publish",
    )


def unpublished_meta_ttl(options: ChannelOptions) -> bytes:
    """The read script's TTL argument: that of a meta nothing was published on yet."""
    return b"%d" % max(1, int(min(options.history_meta_ttl_s, UNPUBLISHED_META_TTL_S)))


def run_id(info: object) -> bytes:
    """The ``run_id`` in an ``INFO server`` reply; empty when there is none."""
    text = info if isinstance(info, bytes) else str(info).encode()
    for line in text.splitlines():
        if line.startswith(b"run_id:"):
            return line[len(b"run_id:") :].strip()
    return b""


def sha1(script: bytes) -> bytes:
    """The script's SHA1, as EVALSHA and SCRIPT LOAD name it."""
    return hashlib.sha1(script).hexdigest().encode()


def new_message_id() -> bytes:
    """A history publish's id, kept with it in the stream so a resend is recognised."""
    return secrets.token_hex(8).encode()


def new_epoch() -> bytes:
    """A random epoch for a channel that has none: 8 characters, no ':' or newline."""
    return secrets.token_hex(4).encode()
