//! Redis commands, Lua scripts and reply parsing shared by the queue handle, the plain
//! consumer and the apalis backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::{RedisError, Value};

use crate::config::{Keys, QueueConfig};
use crate::conn::Conn;
use crate::error::QueueError;
use crate::metrics as m;

/// Moves at most ARGV[2] due jobs (score <= ARGV[1]) from the delayed set to the stream and
/// returns `{moved, next_due_score_or_nil}`. Bounded per call by design.
pub(crate) const PROMOTE_LUA: &str = r#"
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #items do
  local m = items[i]
  local p = string.find(m, '|', 1, true)
  if p then
    local a = string.match(string.sub(m, 1, p - 1), '%.(%d+)$') or '0'
    if a == '0' then
      redis.call('XADD', KEYS[2], '*', 'd', string.sub(m, p + 1))
    else
      redis.call('XADD', KEYS[2], '*', 'd', string.sub(m, p + 1), 'a', a)
    end
  end
end
if #items > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #items - 1) end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #nxt > 0 then return {#items, nxt[2]} end
return {#items, false}
"#;

/// Moves dead letters back to the stream with a fresh attempt count: the ids in ARGV[2..],
/// or else the oldest ARGV[1] entries. Returns how many moved.
pub(crate) const REDRIVE_LUA: &str = r#"
local moved = 0
local function move(e)
  local f = e[2]
  local d = ''
  for i = 1, #f, 2 do if f[i] == 'd' then d = f[i + 1] end end
  redis.call('XADD', KEYS[2], '*', 'd', d)
  redis.call('XDEL', KEYS[1], e[1])
  moved = moved + 1
end
if #ARGV > 1 then
  for i = 2, #ARGV do
    local r = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #r > 0 then move(r[1]) end
  end
else
  local r = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))
  for i = 1, #r do move(r[i]) end
end
return moved
"#;

/// Resets the idle time of the ids in ARGV[3..] that consumer ARGV[2] of group ARGV[1] still
/// owns (a lease renewal), never taking over an id another consumer has reclaimed. `XCLAIM
/// .. JUSTID` does not count a delivery. Returns how many were renewed.
pub(crate) const RENEW_LUA: &str = r#"
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
"#;

/// Renews the lease of `ids` held by `consumer` (bounded chunks of 500 ids per script call).
pub(crate) async fn renew(
    conn: &mut Conn,
    keys: &Keys,
    cfg: &QueueConfig,
    consumer: &str,
    ids: &[Arc<str>],
) -> Result<usize, QueueError> {
    let mut total = 0usize;
    for chunk in ids.chunks(500) {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RENEW_LUA)
            .arg(1)
            .arg(&keys.stream)
            .arg(&cfg.group)
            .arg(consumer);
        for id in chunk {
            cmd.arg(&**id);
        }
        let n: usize = cmd.query_async(conn).await?;
        total += n;
    }
    Ok(total)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A delayed-set member: `<nonce>.<attempts>|<payload>` (unique, carries the attempts).
pub(crate) fn delayed_member(payload: &[u8], attempts: u32) -> Vec<u8> {
    if NONCE.load(Ordering::Relaxed) == 0 {
        let seed = rand::random::<u64>() | 1;
        let _ = NONCE.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    }
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let mut v = format!("{n:016x}.{attempts}|").into_bytes();
    v.extend_from_slice(payload);
    v
}

/// One stream entry as read.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub id: Arc<str>,
    pub payload: Option<Bytes>,
    pub attempts: u32,
    pub error: Option<String>,
    pub source: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn proto(what: &str) -> QueueError {
    QueueError::Protocol(what.to_owned())
}

/// Parses `[id, [field, value, ...]]` entries (a deleted entry has no fields).
pub(crate) fn parse_entries(v: Value) -> Result<Vec<Entry>, QueueError> {
    let items = match v {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        _ => return Err(proto("stream entries are not an array")),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut pair) = item else {
            return Err(proto("stream entry is not an array"));
        };
        if pair.len() != 2 {
            return Err(proto("stream entry has no id/fields pair"));
        }
        let fields = pair.pop().unwrap_or(Value::Nil);
        let id: Arc<str> = match pair.pop() {
            Some(Value::BulkString(b)) => Arc::from(String::from_utf8_lossy(&b).as_ref()),
            Some(Value::SimpleString(s)) => Arc::from(s.as_str()),
            _ => return Err(proto("stream entry id")),
        };
        let mut e = Entry {
            id,
            payload: None,
            attempts: 0,
            error: None,
            source: None,
        };
        if let Value::Array(fields) = fields {
            let mut it = fields.into_iter();
            while let (Some(k), Some(val)) = (it.next(), it.next()) {
                let Value::BulkString(k) = k else { continue };
                match k.as_slice() {
                    b"d" => {
                        if let Value::BulkString(b) = val {
                            e.payload = Some(Bytes::from(b));
                        }
                    }
                    b"a" => e.attempts = text(&val).and_then(|s| s.parse().ok()).unwrap_or(0),
                    b"e" => e.error = text(&val),
                    b"src" => e.source = text(&val),
                    _ => {}
                }
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Parses an `XREADGROUP` reply for one stream.
pub(crate) fn parse_xread(v: Value) -> Result<Vec<Entry>, QueueError> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => {
            let mut out = Vec::new();
            for s in streams {
                let Value::Array(mut kv) = s else {
                    return Err(proto("XREADGROUP stream is not an array"));
                };
                if kv.len() != 2 {
                    return Err(proto("XREADGROUP stream is not a pair"));
                }
                out.extend(parse_entries(kv.pop().unwrap_or(Value::Nil))?);
            }
            Ok(out)
        }
        Value::Map(streams) => {
            let mut out = Vec::new();
            for (_, entries) in streams {
                out.extend(parse_entries(entries)?);
            }
            Ok(out)
        }
        _ => Err(proto("XREADGROUP reply")),
    }
}

pub(crate) fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// Creates the consumer group (reading from the start of the stream) if it is missing.
pub(crate) async fn ensure_group(
    conn: &mut Conn,
    keys: &Keys,
    cfg: &QueueConfig,
) -> Result<(), QueueError> {
    let r: Result<Value, RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(&cfg.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") || e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A job delivered to a consumer.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    pub id: Arc<str>,
    pub payload: Option<Bytes>,
    /// 1-based number of this attempt.
    pub attempt: u32,
    pub reclaimed: bool,
    /// When this consumer received it (its lease runs from about then).
    pub fetched_at: Instant,
}

/// Per-consumer fetch bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct FetchState {
    claim_cursor: String,
    next_claim: Instant,
    next_promote: Instant,
    next_due_ms: Option<i64>,
}

impl FetchState {
    pub(crate) fn new() -> Self {
        let now = Instant::now();
        Self {
            claim_cursor: "0-0".to_owned(),
            next_claim: now,
            next_promote: now,
            next_due_ms: None,
        }
    }
}

/// One fetch round: reclaim expired leases (every `claim_interval`), move due delayed jobs
/// (bounded), then `XREADGROUP` new jobs, blocking up to `block` when `block` is set.
pub(crate) async fn fetch(
    conn: &mut Conn,
    keys: &Keys,
    cfg: &QueueConfig,
    consumer: &str,
    count: usize,
    state: &mut FetchState,
    block: bool,
) -> Result<Vec<Delivered>, QueueError> {
    match fetch_inner(conn, keys, cfg, consumer, count, state, block).await {
        Err(QueueError::Redis(e)) if is_nogroup(&e) => {
            // The stream or group vanished (e.g. a Redis restart without persistence).
            ensure_group(conn, keys, cfg).await?;
            Ok(Vec::new())
        }
        other => other,
    }
}

async fn fetch_inner(
    conn: &mut Conn,
    keys: &Keys,
    cfg: &QueueConfig,
    consumer: &str,
    count: usize,
    state: &mut FetchState,
    block: bool,
) -> Result<Vec<Delivered>, QueueError> {
    let now = Instant::now();
    if now >= state.next_claim {
        let claimed = reclaim(conn, keys, cfg, consumer, count, state).await?;
        if !claimed.is_empty() {
            return Ok(claimed);
        }
    }
    let now_ms = now_ms();
    let promote = now >= state.next_promote;
    let mut pipe = redis::pipe();
    if promote {
        pipe.cmd("EVAL")
            .arg(PROMOTE_LUA)
            .arg(2)
            .arg(&keys.delayed)
            .arg(&keys.stream)
            .arg(now_ms)
            .arg(cfg.promote_chunk);
    }
    let mut block_ms = ms(cfg.block).max(1);
    if let Some(due) = state.next_due_ms {
        let until = u64::try_from((due - now_ms).max(1)).unwrap_or(1);
        block_ms = block_ms.min(until);
    }
    let xread = pipe
        .cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&cfg.group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if block {
        xread.arg("BLOCK").arg(block_ms);
    }
    xread.arg("STREAMS").arg(&keys.stream).arg(">");
    let mut replies: Vec<Value> = pipe.query_async(conn).await?;
    let read = replies.pop().unwrap_or(Value::Nil);
    if promote {
        let reply = replies.pop().unwrap_or(Value::Nil);
        let (moved, next) = match reply {
            Value::Array(v) => {
                let moved = v
                    .first()
                    .and_then(text)
                    .and_then(|s| s.parse::<usize>().ok());
                let next = v
                    .get(1)
                    .and_then(text)
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|f| f as i64);
                (moved.unwrap_or(0), next)
            }
            _ => (0, None),
        };
        state.next_due_ms = next;
        state.next_promote = if moved >= cfg.promote_chunk {
            Instant::now()
        } else {
            let mut at = Instant::now() + cfg.promote_interval;
            if let Some(due) = next {
                let wait = u64::try_from((due - now_ms).max(0)).unwrap_or(0);
                at = at.min(Instant::now() + Duration::from_millis(wait));
            }
            at
        };
    }
    let entries = parse_xread(read)?;
    Ok(entries
        .into_iter()
        .map(|e| Delivered {
            id: e.id,
            payload: e.payload,
            attempt: e.attempts.saturating_add(1),
            reclaimed: false,
            fetched_at: now,
        })
        .collect())
}

/// `XAUTOCLAIM` jobs whose lease ran out; their attempt number counts every delivery.
async fn reclaim(
    conn: &mut Conn,
    keys: &Keys,
    cfg: &QueueConfig,
    consumer: &str,
    count: usize,
    state: &mut FetchState,
) -> Result<Vec<Delivered>, QueueError> {
    let v: Value = redis::cmd("XAUTOCLAIM")
        .arg(&keys.stream)
        .arg(&cfg.group)
        .arg(consumer)
        .arg(ms(cfg.lease))
        .arg(&state.claim_cursor)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    let Value::Array(mut parts) = v else {
        return Err(proto("XAUTOCLAIM reply"));
    };
    if parts.len() < 2 {
        return Err(proto("XAUTOCLAIM reply too short"));
    }
    parts.truncate(2);
    let entries = parse_entries(parts.pop().unwrap_or(Value::Nil))?;
    let cursor = parts
        .pop()
        .as_ref()
        .and_then(text)
        .unwrap_or_else(|| "0-0".to_owned());
    if cursor == "0-0" {
        state.next_claim = Instant::now() + cfg.claim_interval;
    }
    state.claim_cursor = cursor;
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.payload.is_some())
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    // Delivery counts (one XPENDING per claimed id, pipelined; reclaims are rare).
    let mut pipe = redis::pipe();
    for e in &entries {
        pipe.cmd("XPENDING")
            .arg(&keys.stream)
            .arg(&cfg.group)
            .arg(&*e.id)
            .arg(&*e.id)
            .arg(1);
    }
    let counts: Vec<Value> = pipe.query_async(conn).await?;
    let mut out = Vec::with_capacity(entries.len());
    for (e, c) in entries.into_iter().zip(counts) {
        let deliveries = match c {
            Value::Array(rows) => rows
                .first()
                .and_then(|r| match r {
                    Value::Array(cols) => cols.get(3).and_then(text),
                    _ => None,
                })
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(2),
            _ => 2,
        };
        out.push(Delivered {
            id: e.id,
            payload: e.payload,
            attempt: e.attempts.saturating_add(deliveries.max(1)),
            reclaimed: true,
            fetched_at: Instant::now(),
        });
    }
    m::reclaimed(&cfg.queue, out.len());
    tracing::info!(
        queue = %cfg.queue,
        consumer,
        count = out.len(),
        "reclaimed jobs whose lease expired"
    );
    Ok(out)
}

/// How a delivered job is settled.
#[derive(Debug, Clone)]
pub(crate) enum Settle {
    Ack {
        id: Arc<str>,
    },
    Retry {
        id: Arc<str>,
        payload: Bytes,
        attempts: u32,
        due_ms: i64,
    },
    Dead {
        id: Arc<str>,
        payload: Bytes,
        attempts: u32,
        error: String,
    },
    /// Hand a fetched but never started job back (graceful shutdown).
    Requeue {
        id: Arc<str>,
        payload: Bytes,
        attempts: u32,
    },
    /// The job's run was abandoned (its future dropped): stop renewing its lease and leave it
    /// pending, so it is reclaimed after the lease. Writes nothing.
    Forget {
        id: Arc<str>,
    },
}

impl Settle {
    pub(crate) fn id(&self) -> &str {
        match self {
            Settle::Ack { id }
            | Settle::Forget { id }
            | Settle::Retry { id, .. }
            | Settle::Dead { id, .. }
            | Settle::Requeue { id, .. } => id,
        }
    }
}

/// Writes settlements in one pipeline: re-schedules and dead letters first, then `XACK` and
/// `XDEL` of every settled id (so memory returns to baseline). A crash between the two
/// halves can only duplicate a job, never lose one.
pub(crate) async fn settle(
    conn: &mut Conn,
    keys: &Keys,
    cfg: &QueueConfig,
    items: &[Settle],
) -> Result<(), QueueError> {
    if items.is_empty() {
        return Ok(());
    }
    let items: Vec<&Settle> = items
        .iter()
        .filter(|s| !matches!(s, Settle::Forget { .. }))
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    let (mut acked, mut retried, mut dead) = (0usize, 0usize, 0usize);
    for s in &items {
        match s {
            Settle::Forget { .. } => {}
            Settle::Ack { .. } => acked += 1,
            Settle::Retry {
                payload,
                attempts,
                due_ms,
                ..
            } => {
                retried += 1;
                pipe.cmd("ZADD")
                    .arg(&keys.delayed)
                    .arg(*due_ms)
                    .arg(delayed_member(payload, *attempts))
                    .ignore();
            }
            Settle::Dead {
                id,
                payload,
                attempts,
                error,
            } => {
                dead += 1;
                let mut err = error.clone();
                if err.len() > cfg.max_error_len {
                    let mut cut = cfg.max_error_len;
                    while !err.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    err.truncate(cut);
                }
                pipe.cmd("XADD")
                    .arg(&keys.dead)
                    .arg("*")
                    .arg("d")
                    .arg(payload.as_ref())
                    .arg("a")
                    .arg(*attempts)
                    .arg("e")
                    .arg(err)
                    .arg("src")
                    .arg(&**id)
                    .ignore();
            }
            Settle::Requeue {
                payload, attempts, ..
            } => {
                let c = pipe
                    .cmd("XADD")
                    .arg(&keys.stream)
                    .arg("*")
                    .arg("d")
                    .arg(payload.as_ref());
                if *attempts > 0 {
                    c.arg("a").arg(*attempts);
                }
                c.ignore();
            }
        }
    }
    for chunk in items.chunks(1000) {
        let ack = pipe.cmd("XACK").arg(&keys.stream).arg(&cfg.group);
        for s in chunk {
            ack.arg(s.id());
        }
        ack.ignore();
        let del = pipe.cmd("XDEL").arg(&keys.stream);
        for s in chunk {
            del.arg(s.id());
        }
        del.ignore();
    }
    match pipe.query_async::<()>(conn).await {
        Ok(()) => {}
        // The group vanished with the stream (a Redis restart without persistence): the
        // entries to acknowledge are gone too, and the other commands of the pipeline ran.
        Err(e) if is_nogroup(&e) => ensure_group(conn, keys, cfg).await?,
        Err(e) => return Err(e.into()),
    }
    m::settled(&cfg.queue, acked, retried, dead);
    Ok(())
}
