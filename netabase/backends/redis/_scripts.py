"""The Lua scripts behind `RedisBackend`: each call is one script, so one snapshot, one step.

Layout under ``prefix = "nb:{name}:"``: ``{prefix}{space}:d`` is a hash key -> value,
``{prefix}{space}:i`` a sorted set of the same keys (all scores 0, so ``ZRANGEBYLEX`` orders
them bytewise like ``memcmp``), and ``{prefix}versions`` a hash space -> version (a clock stamp).
Scripts only call ``redis.call``; every argument arrives in ARGV.
"""

from __future__ import annotations

import hashlib

# Lua's unpack() is limited by the C stack (~8000 values); HMGET runs in slices of this size.
_SLICE = """
local function hmget(hash, keys, first)
  local values = {}
  local n = 0
  for i = first, #keys, 4000 do
    local last = math.min(i + 3999, #keys)
    local part = redis.call('HMGET', hash, unpack(keys, i, last))
    for j = 1, #part do n = n + 1; values[n] = part[j] end
  end
  return values
end
"""

READ = (
    _SLICE
    + """
local prefix, space = ARGV[1], ARGV[2]
local version = redis.call('HGET', prefix .. 'versions', space)
return {version, hmget(prefix .. space .. ':d', ARGV, 3)}
"""
)

# ARGV: prefix, space, lo, has_hi ("1"/"0"), hi, limit (-1: none), reverse ("1"/"0")
SCAN = (
    _SLICE
    + """
local prefix, space, lo, has_hi, hi = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local limit, reverse = tonumber(ARGV[6]), ARGV[7]
local index = prefix .. space .. ':i'
local min = '-'
if lo ~= '' then min = '[' .. lo end
local max = '+'
if has_hi == '1' then max = '(' .. hi end
local keys
if reverse == '1' then
  keys = redis.call('ZREVRANGEBYLEX', index, max, min, 'LIMIT', 0, limit)
else
  keys = redis.call('ZRANGEBYLEX', index, min, max, 'LIMIT', 0, limit)
end
return {keys, hmget(prefix .. space .. ':d', keys, 1)}
"""
)

# ARGV: prefix, msgpack([[ops, expects], ...]), step (a random 1..2^20 from the client), where
# an op is [0, space, key, value] (put), [1, space, key] (delete) or [2, space, key, value] (put
# with its last 8 bytes replaced by the key's new version) and a condition is [0, space, key]
# (absent), [1, space, key] (present), [2, space, key, value] (equal), [4, space, key, value]
# (equal but for the last 8 bytes, a stamp) or [3, space, lo, hi, keys] (the keys in [lo, hi)
# are exactly ``keys``; hi "" means no upper bound). Returns {failed, versions}: failed[i] is 0
# if batch i applied, else its first unmet condition's 1-based index; versions is a flat list
# space, before, after for each changed space (after: the server clock in microseconds, or
# before + step if that is larger, plus one per stamped put after the first).
APPLY = """
local prefix = ARGV[1]
local batches = cmsgpack.unpack(ARGV[2])
local function holds(c)
  local kind = c[1]
  if kind <= 2 or kind == 4 then
    local value = redis.call('HGET', prefix .. c[2] .. ':d', c[3])
    if kind == 0 then return value == false end
    if kind == 1 then return value ~= false end
    if kind == 4 then
      return value ~= false and #value == #c[4]
        and string.sub(value, 1, -9) == string.sub(c[4], 1, -9)
    end
    return value == c[4]
  end
  local min = '-'
  if c[3] ~= '' then min = '[' .. c[3] end
  local max = '+'
  if c[4] ~= '' then max = '(' .. c[4] end
  local present = redis.call('ZRANGEBYLEX', prefix .. c[2] .. ':i', min, max)
  local wanted = c[5]
  if #present ~= #wanted then return false end
  local set = {}
  for _, key in ipairs(wanted) do set[key] = true end
  for _, key in ipairs(present) do
    if not set[key] then return false end
  end
  return true
end
-- A version is the server clock in microseconds, or the last plus a random step if that is
-- larger, so a server back from an older snapshot never issues a number again (see
-- docs/backends.md): ahead of the clock (it stepped back, or a failover landed on a server whose
-- clock is behind) the step the client drew keeps a restored timeline off the lost numbers.
-- Kept as strings: Lua numbers are doubles, exact only below 2^53, so a counter beyond that is
-- incremented by the server and read back, never returned as a number.
local vkey = prefix .. 'versions'
local step = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] .. string.rep('0', 6 - #t[2]) .. t[2]
local befores = {}
local function advance(space)
  local before = redis.call('HGET', vkey, space)
  befores[space] = before or '0'
  if before and tonumber(before) >= tonumber(now) then
    redis.call('HINCRBY', vkey, space, step)
    return redis.call('HGET', vkey, space)
  end
  redis.call('HSET', vkey, space, now)
  return now
end
-- The 8 big-endian bytes of a decimal string below 2^64, digit by digit in two 32-bit halves.
local function be8(decimal)
  local hi, lo = 0, 0
  for i = 1, #decimal do
    lo = lo * 10 + tonumber(string.sub(decimal, i, i))
    local carry = math.floor(lo / 4294967296)
    lo = lo - carry * 4294967296
    hi = hi * 10 + carry
  end
  local function four(n)
    return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
      math.floor(n / 256) % 256, n % 256)
  end
  return four(hi) .. four(lo)
end
local stamped = {}
local function stamp(space)
  if stamped[space] then
    redis.call('HINCRBY', vkey, space, 1)
    stamped[space] = redis.call('HGET', vkey, space)
  else
    stamped[space] = advance(space)
  end
  return be8(stamped[space])
end
local failed, touched, order = {}, {}, {}
for b, batch in ipairs(batches) do
  local unmet = 0
  for c, condition in ipairs(batch[2]) do
    if not holds(condition) then unmet = c; break end
  end
  failed[b] = unmet
  if unmet == 0 then
    for _, op in ipairs(batch[1]) do
      local space = op[2]
      if op[1] == 1 then
        redis.call('HDEL', prefix .. space .. ':d', op[3])
        redis.call('ZREM', prefix .. space .. ':i', op[3])
      else
        local value = op[4]
        if op[1] == 2 then value = string.sub(value, 1, -9) .. stamp(space) end
        redis.call('HSET', prefix .. space .. ':d', op[3], value)
        redis.call('ZADD', prefix .. space .. ':i', 0, op[3])
      end
      if not touched[space] then touched[space] = true; order[#order + 1] = space end
    end
  end
end
local versions = {}
for _, space in ipairs(order) do
  local after = stamped[space]
  if not after then after = advance(space) end
  versions[#versions + 1] = space
  versions[#versions + 1] = befores[space]
  versions[#versions + 1] = after
end
return {failed, versions}
"""


class Script:
    """A script's source and SHA1, for EVALSHA with an EVAL fallback after a server restart."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()


SCRIPTS = {name: Script(name, source) for name, source in (("read", READ), ("scan", SCAN))}
SCRIPTS["apply"] = Script("apply", APPLY)
