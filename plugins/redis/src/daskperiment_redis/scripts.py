"""Lua scripts: two writes that must be atomic on the server, and one bulk read.

Scripts run atomically and cost one round trip. Every key they touch is passed
in ``KEYS`` (all share the experiment's hash tag), as Redis requires.
redis-py sends them with ``EVALSHA`` and reloads them after a server restart.
"""

from __future__ import annotations

#: KEYS: counter, start hash, the start's token key. ARGV: start JSON, token lifetime (s).
#: Returns the trial id. INCR and the record write in one script: no id is ever allocated
#: without its record. The client's random token makes it idempotent: a start sent again
#: (a retried connection) returns the id the first one got instead of starting a second trial.
START_TRIAL = """
local known = redis.call('GET', KEYS[3])
if known then return tonumber(known) end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('SET', KEYS[3], id, 'EX', tonumber(ARGV[2]))
return id
"""

#: KEYS: clock, then (hash, recency zset) per distinct step.
#: ARGV: limit, then (step number 1.., input hash, output hash) per entry.
#: Returns the previous output hash per entry (nil when the input is new). A later
#: entry sees an earlier one. Each step keeps its ``limit`` most recent inputs.
SWAP_STEP_HASHES = """
local limit = tonumber(ARGV[1])
local n = (#ARGV - 1) / 3
local clock = redis.call('INCRBY', KEYS[1], n) - n
local previous = {}
for i = 0, n - 1 do
  local s = tonumber(ARGV[2 + 3 * i])
  local hashes, recency = KEYS[2 * s], KEYS[2 * s + 1]
  local input = ARGV[3 + 3 * i]
  previous[i + 1] = redis.call('HGET', hashes, input)
  redis.call('HSET', hashes, input, ARGV[4 + 3 * i])
  redis.call('ZADD', recency, clock + i + 1, input)
end
for s = 1, (#KEYS - 1) / 2 do
  local hashes, recency = KEYS[2 * s], KEYS[2 * s + 1]
  local excess = redis.call('ZCARD', recency) - limit
  while excess > 0 do
    local oldest = redis.call('ZRANGE', recency, 0, math.min(excess, 1000) - 1)
    redis.call('HDEL', hashes, unpack(oldest))
    redis.call('ZREMRANGEBYRANK', recency, 0, #oldest - 1)
    excess = excess - #oldest
  end
end
return previous
"""

#: KEYS: a hash of JSON values. ARGV: (first, last) pairs of field (trial id) ranges,
#: at most a few thousand ids in all (Lua's unpack limit). Returns one JSON array text,
#: ``null`` for missing fields: the client parses one reply and calls ``json.loads`` once
#: per batch instead of once per value, and sends two numbers instead of every id.
JSON_COLUMN = """
local fields = {}
for i = 1, #ARGV, 2 do
  for id = tonumber(ARGV[i]), tonumber(ARGV[i + 1]) do
    fields[#fields + 1] = id
  end
end
local values = redis.call('HMGET', KEYS[1], unpack(fields))
for i = 1, #values do
  if not values[i] then values[i] = 'null' end
end
return '[' .. table.concat(values, ',') .. ']'
"""
