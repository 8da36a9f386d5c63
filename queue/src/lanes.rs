//! Lanes: a queue partitioned by a key (the send path's phone number), read where the key's
//! rate limit is applied, fair between the groups (dispatches) inside each lane.
//!
//! ## Redis layout
//! Every key of a lane carries the hash tag `{<ns>:<queue>:<lane>}`, so one lane lives in one
//! Redis Cluster slot (its scripts stay on one node) and lanes spread over the slots:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{L}:q:<group>` | list | the group's ready items |
//! | `{L}:hi`, `{L}:lo` | list | ring of the groups with ready items, high priority and bulk |
//! | `{L}:prio` | hash | group -> `h` for high-priority groups |
//! | `{L}:delayed` | sorted set, score = due ms | `<group>\|<item>` waiting for a due time |
//! | `{L}:inflight` | sorted set, score = lease end ms | `<group>\|<item>` taken, not settled |
//! | `{L}:count` | hash | group -> its items in the lane (ready, delayed and in flight) |
//! | `{L}:meta` | hash | `n`: picks made (the bulk share's turn) |
//! | `{L}:tp` | string | the lane's GCRA: the next free slot (µs of Redis' clock) |
//! | `{<ns>:<queue>:registry:<i>}` | sorted set, score = µs | lanes that may have work, by when to look |
//!
//! ## Reading
//! A reader asks the registry which lanes are due and calls [`Lanes::take`] on each: one Lua
//! script moves due delayed items and in-flight items whose lease ran out back to their
//! groups, counts the lane's free slots within the horizon (the GCRA, without a slot for
//! nothing), pops at most that many items round-robin over the groups (high-priority groups
//! first, except that every `bulk_every`-th pick goes to bulk when bulk has work), charges
//! the GCRA for exactly what it popped and leases them. It answers when the lane is worth
//! looking at again: when slots free up (a lane whose number is at its cap is not read
//! until then), the first delayed item is due, or the first lease ends. [`Lanes::revisit`]
//! writes that into the registry; a lane that holds nothing is removed with a
//! compare-and-delete on its score (a push after the check changed the score, so it stays).
//!
//! ## Settling
//! [`Lanes::settle`] acknowledges items (removed, counted down) and delays others (back to the
//! lane's delayed set), one script per lane.
//!
//! Delivery is at least once: an item whose lease ends before it is settled is taken again.
//! Pushing an item twice is harmless for counts: two copies that meet in the in-flight or
//! delayed set merge into one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{QueueConfig, RedisTarget};
use crate::conn::{Conn, Connector};
use crate::error::QueueError;

const PUSH_LUA: &str = r#"
local b = KEYS[1]
local g = ARGV[1]
if ARGV[2] == 'h' then redis.call('HSET', b..':prio', g, 'h') end
local q = b..':q:'..g
local before = redis.call('LLEN', q)
local n = #ARGV - 2
for i = 3, #ARGV, 500 do
  local last = math.min(i + 499, #ARGV)
  redis.call('RPUSH', q, unpack(ARGV, i, last))
end
if before == 0 then
  local ring = (redis.call('HGET', b..':prio', g) == 'h') and ':hi' or ':lo'
  redis.call('RPUSH', b..ring, g)
end
redis.call('HINCRBY', b..':count', g, n)
return n
"#;

/// Shared by the take and settle scripts: an item back to its group's ready list.
const READY_LUA: &str = r#"
local function ready(b, m)
  local cut = string.find(m, '|', 1, true)
  if not cut then return end
  local g = string.sub(m, 1, cut - 1)
  local q = b..':q:'..g
  if redis.call('LPUSH', q, string.sub(m, cut + 1)) == 1 then
    local ring = (redis.call('HGET', b..':prio', g) == 'h') and ':hi' or ':lo'
    redis.call('RPUSH', b..ring, g)
  end
end
local function down(b, m, by)
  local cut = string.find(m, '|', 1, true)
  if not cut then return end
  local g = string.sub(m, 1, cut - 1)
  if redis.call('HINCRBY', b..':count', g, -by) <= 0 then
    redis.call('HDEL', b..':count', g)
    redis.call('HDEL', b..':prio', g)
  end
end
"#;

const TAKE_LUA: &str = r#"
local b = KEYS[1]
local interval = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local bulk_every = tonumber(ARGV[5])
local chunk = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', b..':delayed', '-inf', now_ms, 'LIMIT', 0, chunk)) do
  redis.call('ZREM', b..':delayed', m)
  ready(b, m)
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', b..':inflight', '-inf', now_ms, 'LIMIT', 0, chunk)) do
  redis.call('ZREM', b..':inflight', m)
  ready(b, m)
end
local tat = tonumber(redis.call('GET', b..':tp') or '0')
if tat < now then tat = now end
local k = 0
if tat <= now + horizon then
  k = math.floor((now + horizon - tat) / interval) + 1
  if k > max then k = max end
end
local out = {}
local picks = tonumber(redis.call('HGET', b..':meta', 'n') or '0')
local lease_end = now_ms + lease
local hi = redis.call('LLEN', b..':hi')
local lo = redis.call('LLEN', b..':lo')
while #out < k and (hi > 0 or lo > 0) do
  local ring
  if hi > 0 and lo > 0 then
    if picks % bulk_every == bulk_every - 1 then ring = ':lo' else ring = ':hi' end
  elseif hi > 0 then ring = ':hi' else ring = ':lo' end
  picks = picks + 1
  local g = redis.call('LMOVE', b..ring, b..ring, 'LEFT', 'RIGHT')
  local q = b..':q:'..g
  local it = redis.call('LPOP', q)
  if redis.call('LLEN', q) == 0 then
    redis.call('RPOP', b..ring)
    if ring == ':hi' then hi = hi - 1 else lo = lo - 1 end
  end
  if it then
    local m = g..'|'..it
    if redis.call('ZADD', b..':inflight', lease_end, m) == 0 then down(b, m, 1) end
    out[#out + 1] = m
  end
end
redis.call('HSET', b..':meta', 'n', picks % 1000000)
local nxt = tat + #out * interval
if #out > 0 then
  redis.call('SET', b..':tp', string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
end
-- When to look again (µs from now), or -1: the lane holds nothing.
local wake = -1
local function sooner(w) if w < 0 then w = 0 end if wake < 0 or w < wake then wake = w end end
if hi > 0 or lo > 0 then sooner(nxt - now - math.floor(horizon / 2)) end
local d = redis.call('ZRANGE', b..':delayed', 0, 0, 'WITHSCORES')
if d[2] then sooner(tonumber(d[2]) * 1000 - now) end
local f = redis.call('ZRANGE', b..':inflight', 0, 0, 'WITHSCORES')
if f[2] then sooner(tonumber(f[2]) * 1000 - now) end
if wake < 0 then redis.call('DEL', b..':meta', b..':count', b..':prio') end
return {out, string.format('%d', tat - now), string.format('%d', wake)}
"#;

const SETTLE_LUA: &str = r#"
local b = KEYS[1]
local acks = tonumber(ARGV[1])
for i = 2, acks + 1 do
  if redis.call('ZREM', b..':inflight', ARGV[i]) == 1 then down(b, ARGV[i], 1) end
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = acks + 2, #ARGV, 2 do
  local m = ARGV[i]
  if redis.call('ZREM', b..':inflight', m) == 1 then
    if redis.call('ZADD', b..':delayed', now_ms + tonumber(ARGV[i + 1]), m) == 0 then down(b, m, 1) end
  end
end
return 1
"#;

const PURGE_LUA: &str = r#"
local b = KEYS[1]
local g = ARGV[1]
local gone = redis.call('LLEN', b..':q:'..g)
redis.call('DEL', b..':q:'..g)
redis.call('LREM', b..':hi', 0, g)
redis.call('LREM', b..':lo', 0, g)
local p = g..'|'
for _, m in ipairs(redis.call('ZRANGE', b..':delayed', 0, -1)) do
  if string.sub(m, 1, #p) == p then
    redis.call('ZREM', b..':delayed', m)
    gone = gone + 1
  end
end
if gone > 0 then down(b, p, gone) end
return gone
"#;

const STATS_LUA: &str = r#"
local b = KEYS[1]
local ready = 0
for _, ring in ipairs({':hi', ':lo'}) do
  for _, g in ipairs(redis.call('LRANGE', b..ring, 0, -1)) do
    ready = ready + redis.call('LLEN', b..':q:'..g)
  end
end
return {ready, redis.call('ZCARD', b..':delayed'), redis.call('ZCARD', b..':inflight')}
"#;

const CLEAR_LUA: &str = r#"
local b = KEYS[1]
for _, g in ipairs(redis.call('HKEYS', b..':count')) do redis.call('DEL', b..':q:'..g) end
for _, ring in ipairs({':hi', ':lo'}) do
  for _, g in ipairs(redis.call('LRANGE', b..ring, 0, -1)) do redis.call('DEL', b..':q:'..g) end
end
redis.call('DEL', b..':hi', b..':lo', b..':prio', b..':delayed', b..':inflight', b..':count', b..':meta')
return 1
"#;

/// After a read: compare-and-set of the lane's registry score. ARGV: lane, the score it was
/// read at, the new score ('' when the lane held nothing). A score that changed since (a push
/// made it due, another reader revisited it) is left alone; an absent lane with work is added.
const REVISIT_LUA: &str = r#"
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur then
  if ARGV[3] ~= '' then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
  return 0
end
if cur == ARGV[2] then
  if ARGV[3] == '' then redis.call('ZREM', KEYS[1], ARGV[1])
  else redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
  return 1
end
return 0
"#;

/// Where lanes live and how they are read.
#[derive(Debug, Clone)]
pub struct LanesConfig {
    /// Key namespace (the engine's Redis prefix).
    pub namespace: String,
    /// The queue's name (`send`).
    pub queue: String,
    /// Registry shards: each is its own hash tag, so the registry spreads over a cluster.
    pub shards: u16,
    /// How long a taken item is leased before another reader may take it again.
    pub lease: Duration,
    /// Timeouts of the shared connection.
    pub queue_config: QueueConfig,
}

impl LanesConfig {
    /// Defaults: 4 registry shards, a 30 s lease.
    pub fn new(namespace: impl Into<String>, queue: impl Into<String>) -> Self {
        let namespace = namespace.into();
        let queue = queue.into();
        Self {
            queue_config: QueueConfig::new(namespace.clone(), queue.clone()),
            namespace,
            queue,
            shards: 4,
            lease: Duration::from_secs(30),
        }
    }
}

/// An item taken from a lane: settle it with [`Lanes::settle`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneItem {
    /// The lane it came from.
    pub lane: String,
    /// `<group>|<item>`, as stored.
    pub member: String,
}

impl LaneItem {
    /// The group (e.g. the dispatch).
    pub fn group(&self) -> &str {
        self.member.split_once('|').map_or("", |(g, _)| g)
    }

    /// The item as pushed.
    pub fn item(&self) -> &str {
        self.member.split_once('|').map_or("", |(_, i)| i)
    }
}

/// What one read of a lane asks for.
#[derive(Debug, Clone, Copy)]
pub struct TakeLimits {
    /// The lane's slot spacing (its rate limit); zero for none.
    pub interval: Duration,
    /// At most this many items.
    pub max: usize,
    /// Only slots that start within this time from now.
    pub horizon: Duration,
    /// While both have work, one pick in `bulk_every` goes to bulk (at least 2).
    pub bulk_every: u32,
}

/// The answer of [`Lanes::take`].
#[derive(Debug, Clone)]
pub struct Taken {
    /// The items, in pick order; item `i`'s slot starts `first + i * interval` from now.
    pub items: Vec<LaneItem>,
    /// Time from now to the first item's slot.
    pub first: Duration,
    /// When to read the lane again; `None`: it holds nothing.
    pub wake: Option<Duration>,
}

/// A lane the registry says is due, with the score it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct DueLane {
    /// The lane's name.
    pub lane: String,
    /// Its registry score when read (for the compare-and-delete).
    pub score: f64,
}

/// Counts of all registered lanes ([`Lanes::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Registered lanes.
    pub lanes: u64,
    /// Ready items.
    pub ready: u64,
    /// Items waiting for a due time.
    pub delayed: u64,
    /// Taken, not settled.
    pub in_flight: u64,
}

/// A handle on the lanes of one queue; cheap to clone.
#[derive(Clone)]
pub struct Lanes {
    cfg: LanesConfig,
    conn: Conn,
    push: redis::Script,
    take: redis::Script,
    settle: redis::Script,
    purge: redis::Script,
    stats: redis::Script,
    clear: redis::Script,
    revisit: redis::Script,
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lanes")
            .field("namespace", &self.cfg.namespace)
            .field("queue", &self.cfg.queue)
            .finish()
    }
}

fn now_us() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_micros() as f64)
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Lanes {
    /// Connects one shared, self-reconnecting connection (or a cluster connection).
    pub async fn connect(target: RedisTarget, cfg: LanesConfig) -> Result<Self, QueueError> {
        if cfg.shards == 0 {
            return Err(QueueError::Config(
                "lanes need at least one registry shard".into(),
            ));
        }
        let connector = Connector::new(&target, &cfg.queue_config)?;
        let conn = connector.shared().await?;
        let with = |body: &str| redis::Script::new(&format!("{READY_LUA}\n{body}"));
        Ok(Self {
            push: redis::Script::new(PUSH_LUA),
            take: with(TAKE_LUA),
            settle: with(SETTLE_LUA),
            purge: with(PURGE_LUA),
            stats: redis::Script::new(STATS_LUA),
            clear: redis::Script::new(CLEAR_LUA),
            revisit: redis::Script::new(REVISIT_LUA),
            cfg,
            conn,
        })
    }

    /// The hash-tagged base of a lane's keys.
    pub fn base(&self, lane: &str) -> String {
        lane_base(&self.cfg.namespace, &self.cfg.queue, lane)
    }

    fn registry(&self, shard: u16) -> String {
        format!(
            "{{{}:{}:registry:{shard}}}",
            self.cfg.namespace, self.cfg.queue
        )
    }

    fn shard_of(&self, lane: &str) -> u16 {
        shard_of(lane, self.cfg.shards)
    }

    /// The number of registry shards.
    pub fn shards(&self) -> u16 {
        self.cfg.shards
    }

    /// Appends `items` to `group` of `lane` (high priority when `high`), then marks the lane
    /// due. A group may not contain `|` (items may).
    pub async fn push(
        &self,
        lane: &str,
        group: &str,
        high: bool,
        items: &[String],
    ) -> Result<usize, QueueError> {
        if items.is_empty() {
            return Ok(0);
        }
        if group.contains('|') {
            return Err(QueueError::Config(
                "a lane group may not contain '|'".into(),
            ));
        }
        let mut conn = self.conn.clone();
        for chunk in items.chunks(5_000) {
            let mut inv = self.push.key(self.base(lane));
            inv.arg(group).arg(if high { "h" } else { "n" });
            for it in chunk {
                inv.arg(it.as_str());
            }
            let _: i64 = inv.invoke_async(&mut conn).await?;
        }
        self.touch(&[lane]).await?;
        Ok(items.len())
    }

    /// Marks lanes due now (a push, or the outbox repairing a registry entry that was lost).
    /// The score always changes (it is the current µs), which is how a reader that found the
    /// lane empty knows not to forget it.
    pub async fn touch(&self, lanes: &[&str]) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let now = now_us().floor();
        let mut pipe = redis::pipe();
        for lane in lanes {
            pipe.cmd("ZADD")
                .arg(self.registry(self.shard_of(lane)))
                .arg(now)
                .arg(*lane)
                .ignore();
        }
        // On a cluster the connection sends a pipeline as its commands (the shards' tags
        // may live on other nodes).
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Up to `limit` lanes of registry shard `shard` that are due now, oldest due first;
    /// and, when none is, how long until the first one will be.
    pub async fn due(
        &self,
        shard: u16,
        limit: usize,
    ) -> Result<(Vec<DueLane>, Option<Duration>), QueueError> {
        let mut conn = self.conn.clone();
        let key = self.registry(shard);
        let now = now_us();
        let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await?;
        let mut due = Vec::new();
        let mut next = None;
        for (lane, score) in rows {
            if score <= now {
                due.push(DueLane { lane, score });
            } else {
                next = Some(Duration::from_micros((score - now) as u64));
                break;
            }
        }
        Ok((due, next))
    }

    /// Reads one lane: at most as many items as its free slots within the horizon allow.
    pub async fn take(&self, lane: &str, limits: TakeLimits) -> Result<Taken, QueueError> {
        let mut conn = self.conn.clone();
        let (members, first, wake): (Vec<String>, i64, i64) = self
            .take
            .key(self.base(lane))
            .arg(us(limits.interval).max(1))
            .arg(limits.max)
            .arg(us(limits.horizon))
            .arg(u64::try_from(self.cfg.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(limits.bulk_every.max(2))
            .arg(1000)
            .invoke_async(&mut conn)
            .await?;
        let to = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Taken {
            items: members
                .into_iter()
                .map(|member| LaneItem {
                    lane: lane.to_owned(),
                    member,
                })
                .collect(),
            first: to(first),
            wake: (wake >= 0).then(|| to(wake)),
        })
    }

    /// After a read: the lane is looked at again after `wake`, or, when it held nothing,
    /// removed from the registry; unless its score changed since `due` was read (a push made
    /// it due now, or another reader revisited it first).
    pub async fn revisit(&self, due: &DueLane, wake: Option<Duration>) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let next = wake.map_or(String::new(), |w| {
            format_score((now_us() + w.as_micros() as f64).floor())
        });
        let _: i64 = self
            .revisit
            .key(self.registry(self.shard_of(&due.lane)))
            .arg(&due.lane)
            .arg(format_score(due.score))
            .arg(next)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Settles items of one lane: `done` are removed, `later` go back after their delay; the
    /// lane is marked due by the first of those delays.
    pub async fn settle(
        &self,
        lane: &str,
        done: &[&LaneItem],
        later: &[(&LaneItem, Duration)],
    ) -> Result<(), QueueError> {
        if done.is_empty() && later.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        for (acks, delays) in chunked(done, later, 2_000) {
            let mut inv = self.settle.key(self.base(lane));
            inv.arg(acks.len());
            for d in acks {
                inv.arg(d.member.as_str());
            }
            for (item, delay) in delays {
                inv.arg(item.member.as_str())
                    .arg(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
            }
            let _: i64 = inv.invoke_async(&mut conn).await?;
        }
        if let Some(first) = later.iter().map(|(_, d)| *d).min() {
            let at = now_us() + first.as_micros() as f64;
            let _: redis::Value = redis::cmd("ZADD")
                .arg(self.registry(self.shard_of(lane)))
                .arg("LT")
                .arg(at)
                .arg(lane)
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Removes every ready and delayed item of `group` from `lane` (a cancelled or paused
    /// dispatch); items in flight are settled by their readers. Returns how many went.
    pub async fn purge(&self, lane: &str, group: &str) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let n: u64 = self
            .purge
            .key(self.base(lane))
            .arg(group)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// How many items each of `groups` has in `lane` (ready, delayed and in flight).
    pub async fn counts(&self, lane: &str, groups: &[&str]) -> Result<Vec<u64>, QueueError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let v: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(format!("{}:count", self.base(lane)))
            .arg(groups)
            .query_async(&mut conn)
            .await?;
        Ok(v.into_iter()
            .map(|c| u64::try_from(c.unwrap_or(0)).unwrap_or(0))
            .collect())
    }

    /// Every registered lane (for introspection; lanes leave the registry when empty).
    pub async fn registered(&self) -> Result<Vec<String>, QueueError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::new();
        for shard in 0..self.cfg.shards {
            let lanes: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.registry(shard))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            out.extend(lanes);
        }
        Ok(out)
    }

    /// Counts of one lane: (ready, delayed, in flight).
    pub async fn lane_stats(&self, lane: &str) -> Result<(u64, u64, u64), QueueError> {
        let mut conn = self.conn.clone();
        Ok(self
            .stats
            .key(self.base(lane))
            .invoke_async(&mut conn)
            .await?)
    }

    /// Counts over every registered lane.
    pub async fn stats(&self) -> Result<LaneStats, QueueError> {
        let lanes = self.registered().await?;
        let mut s = LaneStats {
            lanes: lanes.len() as u64,
            ..LaneStats::default()
        };
        for lane in &lanes {
            let (r, d, f) = self.lane_stats(lane).await?;
            s.ready += r;
            s.delayed += d;
            s.in_flight += f;
        }
        Ok(s)
    }

    /// Removes every item of every registered lane and the registry itself (tests, and an
    /// operator's reset); the lanes' GCRA states stay.
    pub async fn clear(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        for lane in self.registered().await? {
            let _: i64 = self
                .clear
                .key(self.base(&lane))
                .invoke_async(&mut conn)
                .await?;
        }
        for shard in 0..self.cfg.shards {
            let _: i64 = redis::cmd("DEL")
                .arg(self.registry(shard))
                .query_async(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// The hash-tagged base of the keys of `lane` of queue `queue` under `namespace`:
/// `{<namespace>:<queue>:<lane>}` (its GCRA is `<base>:tp`).
pub fn lane_base(namespace: &str, queue: &str, lane: &str) -> String {
    format!("{{{namespace}:{queue}:{lane}}}")
}

/// Which of `shards` shards `key` belongs to (FNV-1a: stable across processes and versions).
pub fn shard_of(key: &str, shards: u16) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    u16::try_from(h % u32::from(shards.max(1))).unwrap_or(0)
}

fn format_score(score: f64) -> String {
    // Redis answers ZSCORE with the shortest exact representation; Rust's Display is too.
    let s = format!("{score}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

type Chunk<'a, 'b> = (&'b [&'a LaneItem], &'b [(&'a LaneItem, Duration)]);

/// Splits acks and delays into script calls of at most `n` entries each.
fn chunked<'a, 'b>(
    done: &'b [&'a LaneItem],
    later: &'b [(&'a LaneItem, Duration)],
    n: usize,
) -> Vec<Chunk<'a, 'b>> {
    let mut out: Vec<Chunk<'a, 'b>> = done.chunks(n).map(|c| (c, &later[..0])).collect();
    out.extend(later.chunks(n).map(|c| (&done[..0], c)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_as_redis_does() {
        assert_eq!(format_score(1_764_000_000_123_456.0), "1764000000123456");
        assert_eq!(format_score(1.5), "1.5");
    }

    #[test]
    fn items_split_at_the_first_bar() {
        let it = LaneItem {
            lane: "1".into(),
            member: "d|m|x".into(),
        };
        assert_eq!((it.group(), it.item()), ("d", "m|x"));
    }
}
