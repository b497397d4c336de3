"""The Lua scripts :class:`~patcode_core.state.SharedState` runs on Redis: each one atomic, one round trip.

Every script reads the time from the server (``TIME``), so instances whose clocks differ still share one
window and one cooldown. Times are microseconds (the window) or milliseconds (everything else).
"""

from __future__ import annotations

# KEYS[1] the block; ARGV: its length (ms). The later end wins: a shorter block never shortens a longer one.
BLOCK = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""

# KEYS[1] the circuit's hash; ARGV: cooldown (ms), how long it then stays half-open (ms), the reason.
OPEN_CIRCUIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'until', now + tonumber(ARGV[1]), 'reason', ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 0
"""

# KEYS[1] the circuit's hash. Returns {} when closed, else {ms left of the cooldown (0 or less: half-open)}.
CIRCUIT = """
local ends = redis.call('HGET', KEYS[1], 'until')
if not ends then return {} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {tonumber(ends) - now}
"""

# KEYS[1] this instance's counts, KEYS[2] the instances' register; ARGV: provider, its count, lifetime (ms), instance.
# Each instance writes its own counts whole (it knows them), so an outage or a lost update never leaves a drift.
IN_FLIGHT = """
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 0
"""

# KEYS[1] the instances' register; ARGV: lifetime (ms), the prefix of each instance's counts key.
# Forgets instances silent for a lifetime, returns {provider, total, provider, total, ...} over the others.
IN_FLIGHT_COUNTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
local totals = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local counts = redis.call('HGETALL', ARGV[2] .. id)
  for i = 1, #counts, 2 do
    totals[counts[i]] = (totals[counts[i]] or 0) + tonumber(counts[i + 1])
  end
end
local flat = {}
for provider, total in pairs(totals) do
  flat[#flat + 1] = provider
  flat[#flat + 1] = total
end
return flat
"""

# KEYS: the circuit's hash, the block, the send times; ARGV: rpm, window (µs), a member unique to this send.
# A request's whole admission in one round trip: {0, 0} admitted (and, with a budget, one send taken); {1, ms} the
# circuit is open that much longer; {2, ms} blocked that long; {3, µs} the budget frees a place in that long.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ends = redis.call('HGET', KEYS[1], 'until')
if ends and tonumber(ends) * 1000 > now then
  return {1, math.floor(tonumber(ends) - now / 1000)}
end
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then
  return {2, blocked}
end
local rpm = tonumber(ARGV[1])
if rpm > 0 then
  local window = tonumber(ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[3])
  if count >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[3], count - rpm, count - rpm, 'WITHSCORES')
    return {3, math.max(1000, tonumber(oldest[2]) + window - now)}
  end
  redis.call('ZADD', KEYS[3], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[3], math.ceil(window / 1000))
end
return {0, 0}
"""

# KEYS[1] the probe's lease; ARGV: this instance, the lease (ms). 1 when the lease is (now) this instance's, renewed.
CLAIM_PROBE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

ALL = {
    "claim_probe": CLAIM_PROBE,
    "admit": ADMIT,
    "block": BLOCK,
    "open_circuit": OPEN_CIRCUIT,
    "circuit": CIRCUIT,
    "in_flight": IN_FLIGHT,
    "in_flight_counts": IN_FLIGHT_COUNTS,
}
