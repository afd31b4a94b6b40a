-- The fence: reserve funds for a spend, or refuse, in one atomic step.
--
-- KEYS[1] risk hash   (state, until_ms, halt:<bucket>, fence_seq)
-- KEYS[2] ledger hash (<bucket> available, <bucket>:reserved)
-- KEYS[3] reservations hash (message id -> "bucket|amount|seq|now")
-- KEYS[4] applied set
-- KEYS[5] marks hash  (at_ms of the last mark of open positions, open = how many)
-- ARGV: message id, bucket, amount, cap, now_ms, mark max age ms
--
-- Fails closed: an agent with no risk state, or a bucket with no ledger entry, gets no spend.
-- Because RiskGuard changes the state through the same keys (commit.lua with a "seq" op),
-- no reservation can be granted once a PAUSE or HALT is committed, whatever the broadcast lag.
-- Returns {status, seq, detail}.
local msg_id, bucket = ARGV[1], ARGV[2]
local amount, cap, now = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

if redis.call("ZSCORE", KEYS[4], msg_id) then return {"duplicate", 0, ""} end
local held = redis.call("HGET", KEYS[3], msg_id)
if held then
  local seq = string.match(held, "^[^|]*|[^|]*|([^|]*)")
  return {"already_reserved", tonumber(seq), held}
end

local risk = redis.call("HMGET", KEYS[1], "state", "until_ms", "halt:" .. bucket, "reason")
local state = risk[1]
if not state then return {"unknown_agent", 0, "no risk state for this agent"} end
if state == "HALTED" then return {"halted", 0, risk[4] or ""} end
if state == "PAUSED" then
  local until_ms = tonumber(risk[2] or "0") or 0
  if until_ms == 0 or now < until_ms then return {"paused", 0, risk[4] or ""} end
elseif state ~= "ACTIVE" then
  return {"unknown_state", 0, state}
end
if risk[3] then return {"bucket_halted", 0, risk[3]} end
local marks = redis.call("HMGET", KEYS[5], "open", "at_ms")
local open_positions = tonumber(marks[1] or "0") or 0
if open_positions > 0 then
  local at = tonumber(marks[2] or "0") or 0
  if at <= 0 or now - at > tonumber(ARGV[6]) then
    return {"marks_stale", 0, "the open positions' mark is " .. tostring(now - at) ..
      " ms old (limit " .. ARGV[6] .. " ms): their value is unknown, no new spend until they are marked again"}
  end
end

local available = redis.call("HGET", KEYS[2], bucket)
if not available then return {"unknown_bucket", 0, bucket} end
available = tonumber(available)
if amount <= 0 then return {"invalid_amount", 0, tostring(amount)} end
if amount > cap then return {"over_cap", 0, tostring(cap)} end
if amount > available then return {"insufficient", 0, tostring(available)} end

local seq = redis.call("HINCRBY", KEYS[1], "fence_seq", 1)
redis.call("HINCRBY", KEYS[2], bucket, -amount)
redis.call("HINCRBY", KEYS[2], bucket .. ":reserved", amount)
redis.call("HSET", KEYS[3], msg_id, bucket .. "|" .. amount .. "|" .. seq .. "|" .. now)
return {"ok", seq, ""}
