//! Per-process cache of API keys by hash, so authentication costs no Postgres round trip.
//!
//! Entries live at most `KEY_CACHE_TTL_SECS` (<= 60 s). Every change to a key publishes its
//! hash on a Redis channel; every replica drops that entry at once, and drops everything when
//! its subscription is re-established (it may have missed messages). An epoch counter stops a
//! lookup that raced with an invalidation from caching the stale row.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use futures::StreamExt;
use ipnet::IpNet;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What authentication needs of a key.
#[derive(Debug)]
pub struct KeyRecord {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub scope_group: Option<String>,
    pub scopes: Vec<String>,
    /// The networks the key may be used from; `None`: from anywhere (no list stored).
    pub allowed_ips: Option<Vec<IpNet>>,
    pub rate_limit_per_hour: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub test_mode: bool,
    /// Unix second of the last use this process recorded (to record at most once a second).
    pub last_used_sec: AtomicI64,
    /// Rate-limit tokens this process holds for the key.
    pub rate_block: super::rate_limit::LocalBlock,
    /// `X-RateLimit-Limit` and `RateLimit-Policy` values, made once per load.
    pub limit_headers: Option<(axum::http::HeaderValue, axum::http::HeaderValue)>,
}

impl KeyRecord {
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match &self.allowed_ips {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&ip)),
        }
    }
}

/// The stored allow-list as it is matched. An entry that does not parse (written by an older
/// version, or by hand) matches nothing: a list that held only such entries denies every
/// address rather than falling back to "no list", which would allow all.
fn allow_list(stored: &[String]) -> Option<Vec<IpNet>> {
    if stored.is_empty() {
        return None;
    }
    let nets: Vec<IpNet> = stored
        .iter()
        .filter_map(|s| ezpulze_common::config::parse_allowed_net(s.trim()))
        .collect();
    if nets.len() < stored.len() {
        tracing::warn!(
            unparsed = stored.len() - nets.len(),
            "a key's allow-list holds entries that do not parse; they match no address"
        );
    }
    Some(nets)
}

struct Entry {
    record: Option<Arc<KeyRecord>>,
    loaded: Instant,
}

pub struct KeyCache {
    /// What exists (keys, admin tokens, numbers), kept current by [`run_subscriber`].
    pub known: super::known::Known,
    /// Whether the invalidation subscription is live ([`run_subscriber`]); while not, no key
    /// is served from (or put into) the cache.
    serving: std::sync::atomic::AtomicBool,
    /// Channel messages whose publishing failed, for [`run_publisher`].
    unpublished: std::sync::Mutex<Vec<String>>,
    map: DashMap<[u8; 32], Entry>,
    hits: metrics::Counter,
    misses: metrics::Counter,
    negatives: AtomicUsize,
    epoch: AtomicU64,
    ttl: Duration,
    negative_max: usize,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    account_id: Uuid,
    name: String,
    scope_group: Option<String>,
    scopes: Vec<String>,
    allowed_ips: Vec<String>,
    rate_limit_per_hour: Option<i32>,
    expires_at: Option<DateTime<Utc>>,
    active: bool,
    test_mode: bool,
}

impl KeyCache {
    pub fn new(ttl: Duration, negative_max: usize) -> Self {
        Self {
            known: Default::default(),
            serving: std::sync::atomic::AtomicBool::new(false),
            unpublished: Default::default(),
            map: DashMap::new(),
            hits: metrics::counter!("ezpulze_key_cache_hits_total"),
            misses: metrics::counter!("ezpulze_key_cache_misses_total"),
            negatives: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            ttl,
            negative_max,
        }
    }

    /// The key with this hash when the cache holds it, fresh (no negative entries).
    pub fn cached(&self, hash: &[u8; 32]) -> Option<Arc<KeyRecord>> {
        if !self.is_serving() {
            return None;
        }
        let e = self.map.get(hash)?;
        if e.loaded.elapsed() >= self.ttl {
            return None;
        }
        let record = e.record.clone()?;
        self.hits.increment(1);
        Some(record)
    }

    /// Whether `what` (a hex hash, or `n:<phone_number_id>`) was created in the last
    /// [`super::known::RECENT_SECS`]: the check a filter miss makes before it says "unknown"
    /// (one Redis read; a Redis error says "maybe", and the caller asks Postgres).
    pub async fn recently_created(
        &self,
        redis: &mut ezpulze_common::redis_conn::RedisConn,
        prefix: &str,
        what: &str,
    ) -> bool {
        let key = ezpulze_common::keyspace::Keyspace::new(prefix).recently_created(what);
        let found: redis::RedisResult<bool> =
            redis::cmd("EXISTS").arg(key).query_async(redis).await;
        found.unwrap_or(true)
    }

    /// Whether keys may be served from the cache (the invalidation subscription is live).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// The key with this hash, from the cache or Postgres; `None` when no such key exists.
    pub async fn get(
        &self,
        db: &PgPool,
        recent: (&ezpulze_common::redis_conn::RedisConn, &str),
        hash: [u8; 32],
    ) -> Result<Option<Arc<KeyRecord>>, sqlx::Error> {
        let serving = self.is_serving();
        if let Some(e) = self.map.get(&hash).filter(|_| serving) {
            if e.loaded.elapsed() < self.ttl {
                self.hits.increment(1);
                return Ok(e.record.clone());
            }
        }
        self.misses.increment(1);
        if !self.known.may_be_key(&hash)
            && !self
                .recently_created(&mut recent.0.clone(), recent.1, &hex::encode(hash))
                .await
        {
            // Certainly no such key: answered without a query (and not cached, so random
            // keys cannot push real ones out).
            metrics::counter!("ezpulze_auth_known_filter_refusals_total", "kind" => "api_key")
                .increment(1);
            return Ok(None);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, account_id, name, scope_group, scopes, allowed_ips, rate_limit_per_hour,
                    expires_at, active, test_mode
             FROM api_keys WHERE key_hash = $1",
        )
        .bind(&hash[..])
        .fetch_optional(db)
        .await?;
        let record = row.map(|r| {
            Arc::new(KeyRecord {
                id: r.id,
                account_id: r.account_id,
                name: r.name,
                scope_group: r.scope_group,
                scopes: r.scopes,
                allowed_ips: allow_list(&r.allowed_ips),
                rate_limit_per_hour: r.rate_limit_per_hour,
                expires_at: r.expires_at,
                active: r.active,
                test_mode: r.test_mode,
                last_used_sec: AtomicI64::new(0),
                rate_block: Default::default(),
                limit_headers: r.rate_limit_per_hour.map(|l| {
                    let limit = l.max(1);
                    (
                        axum::http::HeaderValue::from(limit),
                        axum::http::HeaderValue::from_str(&format!("\"hourly\";q={limit};w=3600"))
                            .unwrap_or(axum::http::HeaderValue::from_static("\"hourly\"")),
                    )
                }),
            })
        });
        // Only cache what was read after the last invalidation this process heard of.
        if serving && self.epoch.load(Ordering::Acquire) == epoch {
            if record.is_none()
                && self.negatives.fetch_add(1, Ordering::Relaxed) >= self.negative_max
            {
                self.map.retain(|_, e| e.record.is_some());
                self.negatives.store(0, Ordering::Relaxed);
            }
            self.map.insert(
                hash,
                Entry {
                    record: record.clone(),
                    loaded: Instant::now(),
                },
            );
        }
        Ok(record)
    }

    pub fn invalidate(&self, hash: &[u8; 32]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.map.remove(hash);
    }

    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.map.clear();
        self.negatives.store(0, Ordering::Relaxed);
    }
}

/// Redis channel carrying invalidations: the hex hash of a changed key, or `*` for all; also
/// creations (`+<hex>`, `n:<number>`, see `known`) and every replica's heartbeat (`~`).
pub fn channel(prefix: &str) -> String {
    ezpulze_common::keyspace::Keyspace::new(prefix).key_invalidations()
}

/// Every replica publishes a heartbeat this often...
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// ...and one that heard nothing for this long stops serving cached keys (every lookup asks
/// Postgres) and subscribes again; it serves from its cache again once it has resubscribed
/// and flushed it.
pub const STALE_AFTER: Duration = Duration::from_secs(1);
const HEARTBEAT_MESSAGE: &str = "~";

/// Whether a change reached every replica's channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Published: every replica with a live subscription has it now.
    Done,
    /// Publishing failed; it is retried in the background until published. Until then other
    /// replicas may serve what they cached (at most `KEY_CACHE_TTL_SECS`, and never while
    /// their own subscription is down).
    Pending,
}

impl Propagation {
    pub fn and(self, other: Propagation) -> Propagation {
        if self == Propagation::Done && other == Propagation::Done {
            Propagation::Done
        } else {
            Propagation::Pending
        }
    }
}

/// Response header of a change whose propagation is still [`Propagation::Pending`].
pub const PROPAGATION_HEADER: &str = "ezpulze-propagation";

impl axum::response::IntoResponseParts for Propagation {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        if self == Propagation::Pending {
            res.headers_mut().insert(
                PROPAGATION_HEADER,
                axum::http::HeaderValue::from_static("pending"),
            );
        }
        Ok(res)
    }
}

/// Publishes `messages` on the channel, a few times if need be; what still fails is kept for
/// [`run_publisher`] to publish.
async fn publish(
    cache: &KeyCache,
    redis: &mut ezpulze_common::redis_conn::RedisConn,
    prefix: &str,
    messages: Vec<String>,
) -> Propagation {
    publish_marked(cache, redis, prefix, messages, &[]).await
}

/// [`publish`], first marking `created` (channel messages of creations) as recent in Redis.
async fn publish_marked(
    cache: &KeyCache,
    redis: &mut ezpulze_common::redis_conn::RedisConn,
    prefix: &str,
    messages: Vec<String>,
    created: &[String],
) -> Propagation {
    let chan = channel(prefix);
    let keyspace = ezpulze_common::keyspace::Keyspace::new(prefix);
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let mut pipe = redis::pipe();
        for c in created {
            pipe.cmd("SET")
                .arg(keyspace.recently_created(c))
                .arg(1)
                .arg("EX")
                .arg(super::known::RECENT_SECS)
                .ignore();
        }
        for m in &messages {
            pipe.cmd("PUBLISH").arg(&chan).arg(m).ignore();
        }
        // Bounded: a paused connection must not hold the caller's answer.
        let sent = tokio::time::timeout(Duration::from_millis(500), pipe.query_async::<()>(redis));
        if let Ok(Ok(())) = sent.await {
            return Propagation::Done;
        }
    }
    metrics::counter!("ezpulze_key_invalidation_publish_failures_total").increment(1);
    tracing::warn!(
        messages = messages.len(),
        "publishing a key change failed; it is retried until published"
    );
    cache
        .unpublished
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(messages);
    Propagation::Pending
}

/// Tells every replica (this one included) to forget a key.
pub async fn publish_invalidation(
    cache: &KeyCache,
    redis: &mut ezpulze_common::redis_conn::RedisConn,
    prefix: &str,
    hashes: &[[u8; 32]],
) -> Propagation {
    for h in hashes {
        cache.invalidate(h);
    }
    let messages = hashes.iter().map(hex::encode).collect();
    publish(cache, redis, prefix, messages).await
}

/// Tells every replica (this one included) that a key or admin token with this hash exists,
/// before its creator learns its value (see `known`).
pub async fn publish_created(
    cache: &KeyCache,
    redis: &mut ezpulze_common::redis_conn::RedisConn,
    prefix: &str,
    hash: &[u8; 32],
) -> Propagation {
    cache.known.keys.add(hash);
    cache.known.admin_tokens.add(hash);
    let message = super::known::created_message(hash);
    publish_marked(cache, redis, prefix, vec![message], &[hex::encode(hash)]).await
}

/// Tells every replica (this one included) that these phone numbers are registered.
pub async fn publish_numbers(
    cache: &KeyCache,
    redis: &mut ezpulze_common::redis_conn::RedisConn,
    prefix: &str,
    numbers: &[&str],
) -> Propagation {
    for n in numbers {
        cache.known.add_number(n);
    }
    let messages: Vec<String> = numbers
        .iter()
        .map(|n| super::known::number_message(n))
        .collect();
    publish_marked(cache, redis, prefix, messages.clone(), &messages).await
}

/// Publishes this replica's heartbeat every [`HEARTBEAT`], with whatever earlier publishing
/// left unpublished, until cancelled.
pub async fn run_publisher(
    cache: Arc<KeyCache>,
    mut redis: ezpulze_common::redis_conn::RedisConn,
    prefix: String,
    cancel: CancellationToken,
) {
    let chan = channel(&prefix);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(HEARTBEAT) => {}
        }
        let waiting: Vec<String> =
            std::mem::take(&mut *cache.unpublished.lock().unwrap_or_else(|p| p.into_inner()));
        let mut pipe = redis::pipe();
        for m in waiting
            .iter()
            .map(String::as_str)
            .chain([HEARTBEAT_MESSAGE])
        {
            pipe.cmd("PUBLISH").arg(&chan).arg(m).ignore();
        }
        let sent = tokio::time::timeout(HEARTBEAT, pipe.query_async::<()>(&mut redis)).await;
        if !matches!(sent, Ok(Ok(()))) && !waiting.is_empty() {
            let mut left = cache.unpublished.lock().unwrap_or_else(|p| p.into_inner());
            let newer = std::mem::take(&mut *left);
            *left = waiting;
            left.extend(newer);
        } else if !waiting.is_empty() {
            tracing::info!(
                messages = waiting.len(),
                "key changes published after a retry"
            );
        }
    }
}

/// Listens for invalidations until cancelled, re-subscribing (and flushing) after any error
/// or after [`STALE_AFTER`] without a message (a silently lost connection). While it is not
/// subscribed the cache serves nothing and the known-credentials filters say "maybe": every
/// lookup goes to Postgres. Each (re)subscription reloads the filters, flushes the cache, and
/// only then serves from it again. On a Redis Cluster, messages reach every node: each
/// (re)subscription uses the next node of `clients`, so a lost node is left behind.
pub async fn run_subscriber(
    cache: Arc<KeyCache>,
    clients: Vec<redis::Client>,
    db: sqlx::PgPool,
    prefix: String,
    ready: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let chan = channel(&prefix);
    let mut turn = 0usize;
    loop {
        let Some(client) = clients.get(turn % clients.len().max(1)).cloned() else {
            tracing::error!("no Redis node to subscribe on");
            return;
        };
        turn += 1;
        let attempt = async {
            let mut pubsub = tokio::time::timeout(Duration::from_secs(2), async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&chan).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await
            .map_err(|_| "subscribing timed out".to_string())?
            .map_err(|e| e.to_string())?;
            // Anything may have changed while we were not listening.
            cache.clear();
            cache.known.reload_and_trust(&db).await;
            cache.serving.store(true, Ordering::Release);
            ready.notify_waiters();
            let mut stream = pubsub.on_message();
            loop {
                let msg = match tokio::time::timeout(STALE_AFTER, stream.next()).await {
                    Ok(Some(msg)) => msg,
                    Ok(None) => return Err("the subscription closed".to_string()),
                    Err(_) => return Err("no heartbeat heard".to_string()),
                };
                let payload: String = msg.get_payload().unwrap_or_default();
                if payload == HEARTBEAT_MESSAGE || cache.known.heard(&payload) {
                    continue;
                }
                if payload == "*" {
                    cache.clear();
                } else if let Ok(bytes) = hex::decode(&payload) {
                    if let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice()) {
                        cache.invalidate(&hash);
                    }
                }
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            res = attempt => {
                cache.serving.store(false, Ordering::Release);
                cache.known.distrust();
                cache.clear();
                metrics::counter!("ezpulze_key_invalidation_resubscriptions_total").increment(1);
                let e: Result<(), String> = res;
                if let Err(e) = e {
                    tracing::warn!(error = %e, "key invalidation subscription lost; serving keys from Postgres until re-subscribed");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
