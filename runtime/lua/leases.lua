-- One worker's whole lease round in one step: announce, renew, give back, take over.
--
-- KEYS[1]  hash  shard -> "owner|expires_ms"  (every shard lease of one role)
-- KEYS[2]  zset  owner -> last announce ms     (the role's live workers)
-- ARGV[1]  owner (the worker's consumer name)
-- ARGV[2]  lease length in ms
-- ARGV[3]  shard count
-- ARGV[4]  where this owner starts looking for free shards (spreads workers apart)
-- ARGV[5]  "refresh" or "release"
-- Time is the Redis server's (TIME), so workers on machines whose clocks differ agree on expiry.
-- Returns the shards the owner holds afterwards.
local owner, lease, n, start = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A value is "owner|expires_ms" (the owner may itself hold a "|": the last one splits). This
-- owner's own leases are told apart by their prefix and digits alone (a round runs every
-- second or two over every shard of the role: most values are its own), the others parsed.
local held = redis.call("HGETALL", KEYS[1])
local own_prefix = owner .. "|"
local own_len = #own_prefix
local holder, expires = {}, {}
local sub, find, match = string.sub, string.find, string.match
for i = 1, #held, 2 do
  local shard, v = tonumber(held[i]), held[i + 1]
  if sub(v, 1, own_len) == own_prefix and find(v, "^%d+$", own_len + 1) then
    holder[shard] = owner
  else
    local who, exp = match(v, "^(.*)|(%d+)$")
    holder[shard] = who
    expires[shard] = tonumber(exp)
  end
end

if ARGV[5] == "release" then
  for shard, who in pairs(holder) do
    if who == owner then redis.call("HDEL", KEYS[1], shard) end
  end
  redis.call("ZREM", KEYS[2], owner)
  return {}
end

redis.call("ZADD", KEYS[2], now, owner)
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now - lease)
local members = math.max(1, redis.call("ZCARD", KEYS[2]))
local fair = math.ceil(n / members)

local mine, count = {}, 0
for shard = 0, n - 1 do
  if holder[shard] == owner then count = count + 1; mine[count] = shard end
end
-- above the fair share: give back the highest shards
while count > fair do
  redis.call("HDEL", KEYS[1], mine[count])
  mine[count] = nil
  count = count - 1
end
local value = owner .. "|" .. tostring(now + lease)
-- below it: take free or expired shards, starting at this owner's offset
local i = 0
while count < fair and i < n do
  local shard = (start + i) % n
  if holder[shard] ~= owner and (holder[shard] == nil or expires[shard] <= now) then
    count = count + 1
    mine[count] = shard
  end
  i = i + 1
end
-- renew and take in one HSET
if count > 0 then
  local args = {}
  for k = 1, count do args[2 * k - 1] = mine[k]; args[2 * k] = value end
  redis.call("HSET", KEYS[1], unpack(args))
end
return mine
