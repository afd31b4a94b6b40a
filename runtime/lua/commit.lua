-- Apply one message's effects atomically, exactly once.
--
-- KEYS[1]   the agent's applied-message set (a sorted set scored by time)
-- KEYS[2..] every other key an op names, by index (all in one cluster slot)
-- ARGV[1]   message id (the unit of idempotency)
-- ARGV[2]   now in ms (injected clock; used to score the applied set and trim it)
-- ARGV[3]   msgpack list of ops; each op is a list whose first item names it (amounts are
--           decimal strings, so micro-USD above 1e14 keep every digit):
--   {"xack", key_index, group, entry_id}      acknowledge the consumed stream entry
--   {"check", key_index, field, min}          abort (no change) if HGET < min (nil counts as 0)
--   {"hincrby", key_index, field, delta, min} abort if the result would be < min
--   {"hset", key_index, field, value}
--   {"hdel", key_index, field}
--   {"seq", key_index, field}                 HINCRBY field 1; later xadds carry "seq"
--   {"xadd", key_index, maxlen, field, argv_index}  append an entry whose one field holds
--                                             ARGV[argv_index] (MAXLEN ~ when maxlen > 0)
--   {"vpoint", ledger_index, flows_index, values_index}
--                                             after every write: add a point to the value series,
--                                             member "<now>|<seq 12 digits>|<total>|<flows>|<unrealized>|<trading>|<trading_base>",
--                                             scored by now; total = the sum of the ledger's bucket fields
--                                             (available and every held kind, marks included),
--                                             flows = the flows hash's "external" field, unrealized =
--                                             the open positions' marks (the "unrealized" fields),
--                                             trading = the trading bucket's value (its fields summed
--                                             the same way), trading_base = the flows hash's "trading"
--                                             (net transfers in) + "external:trading": value and base
--                                             read in the same step, so a transfer moves both or neither
-- ARGV[4]   retention of the applied set in ms
-- ARGV[5..] binary payloads (encoded envelopes) named by xadd ops: Redis's msgpack library
--           predates the bin type, so raw bytes travel as plain arguments
--
-- Returns {"ok", seq} or {"duplicate", 0}; or {"refused", reason} with nothing changed.
-- Every check runs before any write, so a refusal changes nothing.
local msg_id = ARGV[1]
local now = tonumber(ARGV[2])
local ops = cmsgpack.unpack(ARGV[3])
local retention = tonumber(ARGV[4])

local function ack_all()
  for _, op in ipairs(ops) do
    if op[1] == "xack" then redis.call("XACK", KEYS[op[2]], op[3], op[4]) end
  end
end

if redis.call("ZSCORE", KEYS[1], msg_id) then
  ack_all()
  return {"duplicate", 0}
end

-- pass 1: checks (nothing written yet)
local pending = {}
for _, op in ipairs(ops) do
  local name = op[1]
  if name == "check" or name == "hincrby" then
    local key = KEYS[op[2]]
    local current = tonumber(redis.call("HGET", key, op[3]) or "0")
    local ident = key .. "\0" .. op[3]
    current = current + (pending[ident] or 0)
    local delta = 0
    local min = tonumber(op[4])
    if name == "hincrby" then delta = tonumber(op[4]); min = tonumber(op[5]) end
    if current + delta < min then
      return {"refused", op[3] .. " would be " .. tostring(current + delta) .. ", below " .. tostring(min)}
    end
    pending[ident] = (pending[ident] or 0) + delta
  end
end

-- pass 2: writes
local seq = 0
local vpoint = nil
local VALUE_KINDS = {[""] = true, reserved = true, locked = true, margin = true, in_transit = true, unrealized = true}
local BUCKET_NAMES = {reserve = true, trading = true, casino = true, referral = true}
for _, op in ipairs(ops) do
  local name = op[1]
  local key = KEYS[op[2]]
  if name == "hincrby" then
    redis.call("HINCRBY", key, op[3], op[4])
  elseif name == "hset" then
    redis.call("HSET", key, op[3], op[4])
  elseif name == "hdel" then
    redis.call("HDEL", key, op[3])
  elseif name == "seq" then
    seq = redis.call("HINCRBY", key, op[3], 1)
  elseif name == "xadd" then
    local args = {"XADD", key}
    if op[3] > 0 then
      table.insert(args, "MAXLEN"); table.insert(args, "~"); table.insert(args, op[3])
    end
    table.insert(args, "*")
    table.insert(args, op[4]); table.insert(args, ARGV[op[5]])
    if seq > 0 then table.insert(args, "seq"); table.insert(args, seq) end
    redis.call(unpack(args))
  elseif name == "vpoint" then
    vpoint = op
  end
end
if vpoint then
  local flat = redis.call("HGETALL", KEYS[vpoint[2]])
  local total, unrealized, trading = 0, 0, 0
  for i = 1, #flat, 2 do
    local bucket, kind = string.match(flat[i], "^([^:]+):?(.*)$")
    if bucket and BUCKET_NAMES[bucket] and VALUE_KINDS[kind] then
      total = total + tonumber(flat[i + 1])
      if kind == "unrealized" then unrealized = unrealized + tonumber(flat[i + 1]) end
      if bucket == "trading" then trading = trading + tonumber(flat[i + 1]) end
    end
  end
  local f = redis.call("HMGET", KEYS[vpoint[3]], "external", "trading", "external:trading")
  local flows = tonumber(f[1] or "0")
  local trading_base = tonumber(f[2] or "0") + tonumber(f[3] or "0")
  local n = redis.call("HINCRBY", KEYS[vpoint[3]], "points", 1)
  redis.call("ZADD", KEYS[vpoint[4]], now,
    string.format("%.0f|%012d|%.0f|%.0f|%.0f|%.0f|%.0f", now, n, total, flows, unrealized, trading, trading_base))
end
redis.call("ZADD", KEYS[1], now, msg_id)
if retention > 0 then redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now - retention) end
ack_all()
return {"ok", seq}
