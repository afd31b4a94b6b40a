-- Trim a command stream to what some consumer group may still need, in one atomic step.
--
-- KEYS[1]  the stream
-- Returns the number of entries removed.
--
-- An entry is still needed while any group has not acknowledged it: either it is pending in
-- that group (delivered, not acked) or it has not been delivered yet (after the group's
-- last-delivered-id). So the stream keeps every entry from the smallest of, over all groups,
-- the group's lowest pending id, or the id right after its last-delivered-id when nothing is
-- pending. A stream without groups is left alone (nobody has read it yet).
if redis.call("EXISTS", KEYS[1]) == 0 then return 0 end
local groups = redis.call("XINFO", "GROUPS", KEYS[1])
if #groups == 0 then return 0 end

local function parse(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end

local best_ms, best_seq = nil, nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local ms, seq
  if tonumber(info["pending"]) > 0 then
    local summary = redis.call("XPENDING", KEYS[1], info["name"])
    ms, seq = parse(summary[2])
  else
    ms, seq = parse(info["last-delivered-id"])
    seq = seq + 1
  end
  if best_ms == nil or ms < best_ms or (ms == best_ms and seq < best_seq) then
    best_ms, best_seq = ms, seq
  end
end
if best_ms == 0 and best_seq <= 1 then return 0 end
return redis.call("XTRIM", KEYS[1], "MINID", string.format("%d-%d", best_ms, best_seq))
