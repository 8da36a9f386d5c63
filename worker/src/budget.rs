//! The portfolio messaging-limit budget, shared by every worker process
//! (`docs/messaging-limits.md`).
//!
//! **Count.** Per account (one business portfolio), a sorted set of the recipients counted in
//! the moving window (`MESSAGING_WINDOW_SECS`) with the time each was last reached, and a
//! sorted set of the senders of inbound messages with the time of their last one; both under
//! the account's hash tag (`Keyspace::budget_reached`, `budget_inbound`), so one Lua script
//! checks a whole batch's recipients of that account atomically, on one server or a Cluster.
//! Per recipient, in order: inside an open customer-service window (an inbound message in the
//! last 24 h): goes, not counted; already counted in the window: goes, its time refreshed
//! (costs nothing more); else, while the count is under the limit: counted and goes; else:
//! deferred until the window frees room (the k-th deferred recipient of a call waits for the
//! k-th oldest counted one to leave the window). Times are Redis' own clock; a recipient
//! counts from the check plus a lead (the batch's slot wait and a second: when its request
//! may reach Meta at the latest), so the window never frees room before Meta's does.
//!
//! A recipient is counted when its message is planned, before the request: a send that then
//! fails keeps its place until the window moves (conservative: never over the limit).
//!
//! **Inbound.** The status consumer records each inbound message's sender
//! ([`Budget::record_inbound`]) in the same pass that reads it for consent keywords: one
//! pipeline per batch.
//!
//! **Gauges.** Each process keeps the used share of the accounts it checked in the last
//! [`GAUGE_MEMORY`] and exports how many are at or over [`NEAR_RATIO`] and the highest share
//! (no per-account label); Prometheus takes the `max` over the workers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ezpulze_common::keyspace::Keyspace;
use ezpulze_common::messaging_limit::{CUSTOMER_SERVICE_WINDOW, NEAR_RATIO};
use ezpulze_common::redis_conn::RedisConn;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics as m;

/// How long a process remembers an account's share for its gauges after checking it.
pub const GAUGE_MEMORY: Duration = Duration::from_secs(300);

/// `KEYS[1]` reached, `KEYS[2]` inbound; `ARGV[1]` window ms, `ARGV[2]` limit, `ARGV[3]`
/// customer-service window ms, `ARGV[4]` lead ms (a recipient counts from now + lead: when
/// its request may reach Meta at the latest), `ARGV[5..]` the recipients. Returns `{used, codes, delays}`:
/// per recipient a code (0 counted now, 1 already counted, 2 service window, 3 deferred) and,
/// per deferred one in order, the ms until the window frees room.
const TAKE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local csw = tonumber(ARGV[3])
local at = now + tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - csw)
local used = redis.call('ZCARD', KEYS[1])
local codes = {}
local over = 0
for i = 5, #ARGV do
  local r = ARGV[i]
  if redis.call('ZSCORE', KEYS[2], r) then
    codes[#codes + 1] = 2
  elseif redis.call('ZSCORE', KEYS[1], r) then
    redis.call('ZADD', KEYS[1], 'GT', at, r)
    codes[#codes + 1] = 1
  elseif used < limit then
    redis.call('ZADD', KEYS[1], at, r)
    used = used + 1
    codes[#codes + 1] = 0
  else
    codes[#codes + 1] = 3
    over = over + 1
  end
end
local delays = {}
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1, 'WITHSCORES')
  local last = now
  for k = 1, over do
    local s = oldest[2 * k]
    if s then last = tonumber(s) end
    local d = last + win - now
    if d < 1 then d = 1 end
    delays[#delays + 1] = d
  end
end
if used > 0 then redis.call('PEXPIRE', KEYS[1], win + tonumber(ARGV[4]) + 60000) end
return {used, codes, delays}
"#;

/// What became of one recipient of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted now (a new unique recipient in the window).
    Counted,
    /// Already counted in the window: costs nothing more.
    Already,
    /// Inside an open customer-service window: not counted.
    ServiceWindow,
    /// Over the limit: wait this long (the window frees room then).
    Deferred(Duration),
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Counted => "counted",
            Verdict::Already => "already_counted",
            Verdict::ServiceWindow => "service_window",
            Verdict::Deferred(_) => "deferred",
        }
    }
}

/// The shared budget of every account.
pub struct Budget {
    conn: RedisConn,
    keys: Keyspace,
    window: Duration,
    /// How long after its check a message's request may reach Meta (its slot wait and a
    /// margin): a recipient counts from then, so the window never frees room before Meta's.
    lead: Duration,
    take: redis::Script,
    /// Per account checked: its used share and when (the gauges).
    shares: Mutex<Shares>,
}

#[derive(Default)]
struct Shares {
    by_account: HashMap<Uuid, (f64, Instant)>,
    exported: Option<Instant>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.keys.debug_holder("Budget", f)
    }
}

/// A user as the budget keys them: the digits (a recipient may be stored with its `+`, an
/// inbound sender's `wa_id` has none).
fn user(phone: &str) -> &str {
    phone.trim_start_matches('+')
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

impl Budget {
    pub fn new(conn: RedisConn, prefix: &str, window: Duration, lead: Duration) -> Self {
        Self {
            conn,
            keys: Keyspace::new(prefix),
            window,
            lead,
            take: redis::Script::new(TAKE_LUA),
            shares: Mutex::new(Shares::default()),
        }
    }

    /// The moving window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Checks and counts `recipients` (in order) against the account's `limit`: one script
    /// call. Returns a verdict per recipient.
    pub async fn take(
        &self,
        account: Uuid,
        limit: u64,
        recipients: &[&str],
    ) -> anyhow::Result<Vec<Verdict>> {
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.take.prepare_invoke();
        inv.key(self.keys.budget_reached(&account))
            .key(self.keys.budget_inbound(&account))
            .arg(ms(self.window))
            .arg(limit)
            .arg(ms(CUSTOMER_SERVICE_WINDOW))
            .arg(ms(self.lead));
        for r in recipients {
            inv.arg(user(r));
        }
        let mut conn = self.conn.clone();
        let (used, codes, delays): (u64, Vec<i64>, Vec<i64>) = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("checking the messaging-limit budget: {e}"))?;
        let mut delays = delays.into_iter();
        let out: Vec<Verdict> = codes
            .into_iter()
            .map(|c| match c {
                0 => Verdict::Counted,
                1 => Verdict::Already,
                2 => Verdict::ServiceWindow,
                _ => Verdict::Deferred(Duration::from_millis(
                    u64::try_from(delays.next().unwrap_or(1000)).unwrap_or(1000),
                )),
            })
            .collect();
        for v in &out {
            metrics::counter!(m::BUDGET_CHECKS_TOTAL, "result" => v.label()).increment(1);
        }
        if limit > 0 {
            self.note_share(account, used as f64 / limit as f64);
        }
        Ok(out)
    }

    /// Records the senders of inbound messages `(account, phone, sent at, Unix seconds)`:
    /// their customer-service windows are open for 24 h from then. One pipeline.
    pub async fn record_inbound(&self, inbound: &[(Uuid, &str, i64)]) -> anyhow::Result<()> {
        if inbound.is_empty() {
            return Ok(());
        }
        let mut by_account: HashMap<Uuid, Vec<(&str, i64)>> = HashMap::new();
        for (account, phone, at) in inbound {
            by_account
                .entry(*account)
                .or_default()
                .push((user(phone), at.saturating_mul(1000)));
        }
        let mut pipe = redis::pipe();
        for (account, senders) in &by_account {
            let key = self.keys.budget_inbound(account);
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(&key).arg("GT");
            for (phone, at) in senders {
                cmd.arg(*at).arg(*phone);
            }
            pipe.add_command(cmd).ignore();
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(ms(CUSTOMER_SERVICE_WINDOW) + 60_000)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| anyhow::anyhow!("recording inbound senders: {e}"))?;
        metrics::counter!(m::BUDGET_INBOUND_TOTAL).increment(inbound.len() as u64);
        Ok(())
    }

    /// Remembers an account's used share and exports the gauges: at once when the account is
    /// or was near its limit (what the alert watches), else at most once a second.
    fn note_share(&self, account: Uuid, share: f64) {
        let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let before = s.by_account.insert(account, (share, now));
        let near = share >= NEAR_RATIO || before.is_some_and(|(r, _)| r >= NEAR_RATIO);
        if !near
            && s.exported
                .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        Self::export(&mut s, now);
    }

    /// Exports the gauges from the shares of the last [`GAUGE_MEMORY`] (older ones are
    /// forgotten, so an idle worker's gauges fall back to 0).
    pub fn export_gauges(&self) {
        let mut s = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        Self::export(&mut s, Instant::now());
    }

    fn export(s: &mut Shares, now: Instant) {
        s.exported = Some(now);
        s.by_account
            .retain(|_, (_, at)| at.elapsed() < GAUGE_MEMORY);
        let near = s
            .by_account
            .values()
            .filter(|(r, _)| *r >= NEAR_RATIO)
            .count();
        let max = s.by_account.values().map(|(r, _)| *r).fold(0.0, f64::max);
        metrics::gauge!(m::BUDGET_NEAR_ACCOUNTS).set(near as f64);
        metrics::gauge!(m::BUDGET_MAX_RATIO).set(max);
    }
}

/// Exports the budget gauges every 15 s until `cancel`, so shares no check refreshed for
/// [`GAUGE_MEMORY`] leave them (an idle worker's gauges fall back to 0).
pub async fn export_gauges_until(budget: std::sync::Arc<Budget>, cancel: CancellationToken) {
    loop {
        budget.export_gauges();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
