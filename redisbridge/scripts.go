package redisbridge

import (
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/raftlease/raftlease"
)

// The bridge's server-side scripts. Each runs atomically on the Redis
// server, so a decision (is the name free? is this the holder?) and the
// writes it leads to cannot interleave with another client's.
//
// Redis does not roll a script back when a command inside it fails, so
// every mutating script reads and checks everything it needs (key types,
// field formats, counter ranges) before its first write, and refuses with
// an error reply instead of failing half-way.
//
// Every mutating script takes the same keys, in this order (see keys.go):
//
//	KEYS[1] lease     <prefix>{<name>}:lease   hash, PEXPIREAT deadline
//	KEYS[2] shadow    <prefix>{<name>}:shadow  hash, no expiry; the lease until its end is recorded
//	KEYS[3] token     <prefix>{<name>}:token   string, the name's fencing counter
//	KEYS[4] revision  <prefix>revision         string, the store revision counter
//	KEYS[5] names     <prefix>names            zset (score 0), names with a shadow, for List
//	KEYS[6] deadlines <prefix>deadlines        zset (score deadline ms), for expiry
//	KEYS[7] events    <prefix>events           stream of changes, trimmed to ARGV[2]
//
// and the same first arguments:
//
//	ARGV[1] name, ARGV[2] stream MAXLEN (~), ARGV[3] channel, ARGV[4] PUBLISH or SPUBLISH
//
// Error replies: "RAFTLEASE_MALFORMED <i> <reason>" names KEYS[i] as the key
// holding data the bridge did not write; "RAFTLEASE_EXHAUSTED <i> <reason>"
// says the counter at KEYS[i] cannot grow any more.

// prelude holds the helpers every script shares.
var prelude = fmt.Sprintf(`
local MIN_TTL_NS = %d
local MAX_TTL_NS = %d
`, int64(raftlease.MinTTL), int64(raftlease.MaxTTL)) + `
local MAX = '9223372036854775807'

local function fail(i, why)
  return redis.error_reply('RAFTLEASE_MALFORMED ' .. i .. ' ' .. why)
end

-- is_count: a decimal integer in [0, 2^63-1] without sign or leading zeros.
local function is_count(s)
  if type(s) ~= 'string' then return false end
  if s ~= '0' and not string.match(s, '^[1-9]%d*$') then return false end
  return #s < 19 or (#s == 19 and s <= MAX)
end

-- less compares two is_count strings as numbers.
local function less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function fmt(n)
  return string.format('%d', n)
end

-- record reads a lease hash. It returns the record, false when the key is
-- absent, or nil and an error reply when the key holds something else.
local function record(i)
  local r = redis.pcall('HGETALL', KEYS[i])
  if r.err then return nil, fail(i, 'is not a hash') end
  if #r == 0 then return false end
  local h = {}
  for j = 1, #r, 2 do h[r[j]] = r[j + 1] end
  if h.v ~= '1' then return nil, fail(i, 'has format version ' .. tostring(h.v) .. ', want 1') end
  if type(h.holder) ~= 'string' or h.holder == '' then return nil, fail(i, 'has no holder') end
  for _, f in ipairs({'token', 'ttl_ns', 'acquired_ms', 'deadline_ms', 'revision'}) do
    if not is_count(h[f]) then return nil, fail(i, 'field ' .. f .. ' is not an unsigned integer') end
  end
  if h.token == '0' then return nil, fail(i, 'has token 0') end
  local ttl = tonumber(h.ttl_ns)
  if ttl < MIN_TTL_NS or ttl > MAX_TTL_NS then return nil, fail(i, 'field ttl_ns is out of range') end
  if type(h.metadata) ~= 'string' then h.metadata = '' end
  if h.metadata ~= '' then
    local ok, md = pcall(cjson.decode, h.metadata)
    if not ok or type(md) ~= 'table' then return nil, fail(i, 'field metadata is not a JSON object') end
  end
  return h
end

-- live reads the lease at KEYS[1]: the record with its pttl when it is
-- live, false when it is absent or at or past its deadline.
local function live()
  local h, err = record(1)
  if h == nil then return nil, err end
  if h == false then return false end
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl == -1 then return nil, fail(1, 'has no expiry') end
  if pttl <= 0 then return false end
  h.pttl = pttl
  return h
end

-- counter reads an integer key, '0' when absent.
local function counter(i)
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' and v.err then return nil, fail(i, 'is not a string') end
  if not v then return '0' end
  if not is_count(v) then return nil, fail(i, 'is not an unsigned integer') end
  return v
end

local function want_type(i, t)
  local got = redis.call('TYPE', KEYS[i]).ok
  if got ~= 'none' and got ~= t then return fail(i, 'is a ' .. got .. ', not a ' .. t) end
  return nil
end

-- check_store checks the store-wide keys before a script writes them.
local function check_store()
  local rev, err = counter(4)
  if rev == nil then return err end
  if rev == MAX then
    return redis.error_reply('RAFTLEASE_EXHAUSTED 4 the revision counter is at 2^63-1')
  end
  return want_type(5, 'zset') or want_type(6, 'zset') or want_type(7, 'stream')
end

local function next_rev()
  return fmt(redis.call('INCR', KEYS[4]))
end

local function flat(h, pttl)
  return {h.holder, h.token, h.ttl_ns, h.metadata, h.acquired_ms, h.deadline_ms, h.revision, pttl}
end

-- put writes the lease (expiring at its deadline) and its shadow.
local function put(h)
  local f = {'v', '1', 'holder', h.holder, 'token', h.token, 'ttl_ns', h.ttl_ns, 'metadata', h.metadata,
    'acquired_ms', h.acquired_ms, 'deadline_ms', h.deadline_ms, 'revision', h.revision}
  redis.call('HSET', KEYS[1], unpack(f))
  redis.call('PEXPIREAT', KEYS[1], h.deadline_ms)
  redis.call('HSET', KEYS[2], unpack(f))
  redis.call('ZADD', KEYS[5], 0, ARGV[1])
  redis.call('ZADD', KEYS[6], h.deadline_ms, ARGV[1])
end

-- refresh writes what a renewal changes, in the lease and its shadow.
local function refresh(h)
  local f = {'ttl_ns', h.ttl_ns, 'metadata', h.metadata, 'deadline_ms', h.deadline_ms, 'revision', h.revision}
  redis.call('HSET', KEYS[1], unpack(f))
  redis.call('PEXPIREAT', KEYS[1], h.deadline_ms)
  redis.call('HSET', KEYS[2], unpack(f))
  redis.call('ZADD', KEYS[6], h.deadline_ms, ARGV[1])
end

-- forget removes every trace of the lease but its token counter.
local function forget()
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
end

-- emit appends one change to the event stream and announces it.
local function emit(typ, h, rev, now)
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[2], '*',
    'type', typ, 'rev', rev, 'at_ms', fmt(now), 'name', ARGV[1],
    'holder', h.holder, 'token', h.token, 'ttl_ns', h.ttl_ns, 'metadata', h.metadata,
    'acquired_ms', h.acquired_ms, 'deadline_ms', h.deadline_ms, 'revision', h.revision)
  redis.call(ARGV[4], ARGV[3], rev)
end
`

// acquireSrc: ARGV[5] holder, ARGV[6] ttl_ns, ARGV[7] ttl in whole ms
// (rounded up), ARGV[8] metadata JSON, ARGV[9] token floor.
//
// Replies {'held', lease...}, {'renewed', lease...} (re-acquire by the
// holder) or {'acquired', lease...}.
var acquireSrc = prelude + `
local cur, err = live()
if cur == nil then return err end
local shadow, serr = record(2)
if shadow == nil then return serr end
local tok, terr = counter(3)
if not tok then return terr end
local cerr = check_store()
if cerr then return cerr end

if cur and cur.holder ~= ARGV[5] then
  local out = flat(cur, cur.pttl)
  table.insert(out, 1, 'held')
  return out
end

local now = now_ms()
local px = tonumber(ARGV[7])
if cur then
  cur.ttl_ns = ARGV[6]
  cur.metadata = ARGV[8]
  cur.deadline_ms = fmt(now + px)
  cur.revision = next_rev()
  if shadow then refresh(cur) else put(cur) end
  emit('renewed', cur, cur.revision, now)
  local out = flat(cur, px)
  table.insert(out, 1, 'renewed')
  return out
end

local raised = less(tok, ARGV[9])
if raised then tok = ARGV[9] end
if tok == MAX then
  return redis.error_reply('RAFTLEASE_EXHAUSTED 3 the fencing counter is at 2^63-1')
end

-- Writes start here.
if shadow then
  -- The previous lease expired and nobody has recorded it yet: record it
  -- first, so that watchers see the vacancy before the next grant.
  forget()
  emit('expired', shadow, next_rev(), now)
end
if raised then redis.call('SET', KEYS[3], tok) end
redis.call('INCR', KEYS[3])
local h = {
  holder = ARGV[5], token = redis.call('GET', KEYS[3]), ttl_ns = ARGV[6], metadata = ARGV[8],
  acquired_ms = fmt(now), deadline_ms = fmt(now + px),
}
h.revision = next_rev()
put(h)
emit('acquired', h, h.revision, now)
local out = flat(h, px)
table.insert(out, 1, 'acquired')
return out
`

// renewSrc: ARGV[5] holder, ARGV[6] token, ARGV[7] ttl_ns ('0' keeps it),
// ARGV[8] metadata JSON, ARGV[9] '1' to replace the metadata.
//
// Replies {'not_holder'} or {'renewed', lease...}.
var renewSrc = prelude + `
local cur, err = live()
if cur == nil then return err end
local cerr = want_type(2, 'hash') or check_store()
if cerr then return cerr end
if not cur or cur.holder ~= ARGV[5] or cur.token ~= ARGV[6] then
  return {'not_holder'}
end
if ARGV[7] ~= '0' then cur.ttl_ns = ARGV[7] end
if ARGV[9] == '1' then cur.metadata = ARGV[8] end
local px = math.ceil(tonumber(cur.ttl_ns) / 1000000)
local now = now_ms()
cur.deadline_ms = fmt(now + px)
cur.revision = next_rev()
if redis.call('EXISTS', KEYS[2]) == 1 then refresh(cur) else put(cur) end
emit('renewed', cur, cur.revision, now)
local out = flat(cur, px)
table.insert(out, 1, 'renewed')
return out
`

// releaseSrc: ARGV[5] holder, ARGV[6] token.
//
// Replies {'not_holder'} or {'released', revision}.
var releaseSrc = prelude + `
local cur, err = live()
if cur == nil then return err end
local cerr = want_type(2, 'hash') or check_store()
if cerr then return cerr end
if not cur or cur.holder ~= ARGV[5] or cur.token ~= ARGV[6] then
  return {'not_holder'}
end
local now = now_ms()
forget()
local rev = next_rev()
emit('released', cur, rev, now)
return {'released', rev}
`

// expireSrc records the end of a lease that Redis has expired: it removes
// the shadow and emits the expired event, once, whichever client gets there
// first.
//
// Replies {'none'} (nothing to record), {'live', deadline_ms} (the lease is
// still live; the deadline index is corrected) or {'expired', revision}.
var expireSrc = prelude + `
local shadow, serr = record(2)
if shadow == nil then return serr end
if not shadow then
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('ZREM', KEYS[6], ARGV[1])
  return {'none'}
end
local cur, err = live()
if cur == nil then return err end
local cerr = check_store()
if cerr then return cerr end
if cur then
  redis.call('ZADD', KEYS[6], cur.deadline_ms, ARGV[1])
  return {'live', cur.deadline_ms}
end
local now = now_ms()
forget()
local rev = next_rev()
emit('expired', shadow, rev, now)
return {'expired', rev}
`

// getSrc reads one lease: KEYS[1] lease. Replies {} when there is no live
// lease, else the lease fields and its pttl.
var getSrc = prelude + `
local cur, err = live()
if cur == nil then return err end
if not cur then return {} end
return flat(cur, cur.pttl)
`

// listSrc reads the live leases of a prefix and the revision they reflect,
// at one instant: KEYS[1] names, KEYS[2] revision, KEYS[3..] the lease keys
// of ARGV[3..], the names the caller found in the index between ARGV[1] and
// ARGV[2] (ZRANGEBYLEX bounds). When the index no longer holds exactly those
// names, it replies {'retry'} and the caller reads the index again.
//
// Replies {'ok', revision, name, lease..., name, lease..., ...}.
const listSrc = `
local function fail(i, why)
  return redis.error_reply('RAFTLEASE_MALFORMED ' .. i .. ' ' .. why)
end
local MAX = '9223372036854775807'
local function is_count(s)
  if type(s) ~= 'string' then return false end
  if s ~= '0' and not string.match(s, '^[1-9]%d*$') then return false end
  return #s < 19 or (#s == 19 and s <= MAX)
end
local names = redis.pcall('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])
if names.err then return fail(1, 'is not a sorted set') end
if #names ~= #ARGV - 2 then return {'retry'} end
for i = 1, #names do
  if names[i] ~= ARGV[i + 2] then return {'retry'} end
end
local rev = redis.pcall('GET', KEYS[2])
if type(rev) == 'table' and rev.err then return fail(2, 'is not a string') end
if not rev then rev = '0' end
if not is_count(rev) then return fail(2, 'is not an unsigned integer') end
local out = {'ok', rev}
for i = 3, #KEYS do
  local r = redis.pcall('HGETALL', KEYS[i])
  if r.err then return fail(i, 'is not a hash') end
  if #r > 0 then
    local pttl = redis.call('PTTL', KEYS[i])
    if pttl == -1 then return fail(i, 'has no expiry') end
    if pttl > 0 then
      local h = {}
      for j = 1, #r, 2 do h[r[j]] = r[j + 1] end
      -- The caller checks every field; this only passes them on.
      table.insert(out, ARGV[i])
      table.insert(out, h.v or '')
      table.insert(out, h.holder or '')
      table.insert(out, h.token or '')
      table.insert(out, h.ttl_ns or '')
      table.insert(out, h.metadata or '')
      table.insert(out, h.acquired_ms or '')
      table.insert(out, h.deadline_ms or '')
      table.insert(out, h.revision or '')
      table.insert(out, pttl)
    end
  end
end
return out
`

// dueSrc reads the deadline index: KEYS[1] deadlines, ARGV[1] limit.
// Replies {now_ms, next_deadline_ms or an empty string, due names...}: the server's time,
// the earliest deadline still ahead, and up to ARGV[1] names whose deadline
// has come.
const dueSrc = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%d', now)
local typ = redis.call('TYPE', KEYS[1]).ok
if typ ~= 'none' and typ ~= 'zset' then
  return redis.error_reply('RAFTLEASE_MALFORMED 1 is a ' .. typ .. ', not a zset')
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nows, 'LIMIT', 0, tonumber(ARGV[1]))
local nxt = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. nows, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local out = {nows, nxt[2] or ''}
for i = 1, #due do table.insert(out, due[i]) end
return out
`

// scripts are the bridge's scripts, hashed once. Script.Run sends EVALSHA
// and falls back to EVAL (which caches the script again) when the server
// answers NOSCRIPT, for example after SCRIPT FLUSH or a restart.
type scripts struct {
	acquire, renew, release, expire, get, list, due *redis.Script
}

func newScripts() *scripts {
	return &scripts{
		acquire: redis.NewScript(acquireSrc),
		renew:   redis.NewScript(renewSrc),
		release: redis.NewScript(releaseSrc),
		expire:  redis.NewScript(expireSrc),
		get:     redis.NewScript(getSrc),
		list:    redis.NewScript(listSrc),
		due:     redis.NewScript(dueSrc),
	}
}

func (s *scripts) all() []*redis.Script {
	return []*redis.Script{s.acquire, s.renew, s.release, s.expire, s.get, s.list, s.due}
}
