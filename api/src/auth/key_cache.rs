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
        let e = self.map.get(hash)?;
        if e.loaded.elapsed() >= self.ttl {
            return None;
        }
        let record = e.record.clone()?;
        self.hits.increment(1);
        Some(record)
    }

    /// The key with this hash, from the cache or Postgres; `None` when no such key exists.
    pub async fn get(
        &self,
        db: &PgPool,
        hash: [u8; 32],
    ) -> Result<Option<Arc<KeyRecord>>, sqlx::Error> {
        if let Some(e) = self.map.get(&hash) {
            if e.loaded.elapsed() < self.ttl {
                self.hits.increment(1);
                return Ok(e.record.clone());
            }
        }
        self.misses.increment(1);
        if !self.known.may_be_key(&hash) {
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
        if self.epoch.load(Ordering::Acquire) == epoch {
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

/// Redis channel carrying invalidations: the hex hash of a changed key, or `*` for all.
pub fn channel(prefix: &str) -> String {
    ezpulze_common::keyspace::Keyspace::new(prefix).key_invalidations()
}

/// Tells every replica (this one included) to forget a key.
pub async fn publish_invalidation(
    cache: &KeyCache,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    hashes: &[[u8; 32]],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for h in hashes {
        cache.invalidate(h);
        pipe.cmd("PUBLISH")
            .arg(channel(prefix))
            .arg(hex::encode(h))
            .ignore();
    }
    pipe.query_async::<()>(redis).await
}

/// Tells every replica (this one included) that a key or admin token with this hash exists,
/// before its creator learns its value (see `known`).
pub async fn publish_created(
    cache: &KeyCache,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    hash: &[u8; 32],
) -> redis::RedisResult<()> {
    cache.known.keys.add(hash);
    cache.known.admin_tokens.add(hash);
    redis::cmd("PUBLISH")
        .arg(channel(prefix))
        .arg(super::known::created_message(hash))
        .query_async::<()>(redis)
        .await
}

/// Tells every replica (this one included) that these phone numbers are registered.
pub async fn publish_numbers(
    cache: &KeyCache,
    redis: &mut redis::aio::ConnectionManager,
    prefix: &str,
    numbers: &[&str],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for n in numbers {
        cache.known.add_number(n);
        pipe.cmd("PUBLISH")
            .arg(channel(prefix))
            .arg(super::known::number_message(n))
            .ignore();
    }
    pipe.query_async::<()>(redis).await
}

/// Listens for invalidations until cancelled, re-subscribing (and flushing) after any error.
/// Each (re)subscription reloads the known credentials (`known`) before they are trusted.
pub async fn run_subscriber(
    cache: Arc<KeyCache>,
    client: redis::Client,
    db: sqlx::PgPool,
    prefix: String,
    ready: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let chan = channel(&prefix);
    loop {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&chan).await?;
            // Anything may have changed while we were not listening.
            cache.clear();
            cache.known.reload_and_trust(&db).await;
            ready.notify_waiters();
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let payload: String = msg.get_payload().unwrap_or_default();
                if cache.known.heard(&payload) {
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
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            res = attempt => {
                cache.known.distrust();
                cache.clear();
                if let Err(e) = res {
                    tracing::warn!(error = %e, "key invalidation subscription lost; re-subscribing");
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
