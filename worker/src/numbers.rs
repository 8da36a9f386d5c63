//! Phone numbers and their decrypted access tokens, cached per process for a short time.
//!
//! A change of a number (a rate set through the api, a throughput upgrade or a flag from
//! Meta's webhooks) bumps the numbers' epoch in Redis (`ezpulze_common::number_epoch`); the
//! cache reads it at most every [`EPOCH_CHECK_EVERY`] (one GET, on the lane-reading path only
//! when that time has passed) and drops every entry when it moved, so the new rate is in force
//! in every worker within about a second, whatever the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use ezpulze_common::keyspace::Keyspace;
use ezpulze_common::redis_conn::RedisConn;
use ezpulze_common::secrets::Sealer;
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

/// A sending number.
#[derive(Debug)]
pub struct Number {
    pub account_id: Uuid,
    /// `None` when the stored token cannot be opened (wrong `EZPULZE_SECRETS_KEY`).
    pub token: Option<SecretString>,
    pub mps: u32,
}

/// A cache entry: when it was loaded, and the number (`None`: no such number).
type Entry = (Instant, Option<Arc<Number>>);

/// How often the numbers' epoch is read.
pub const EPOCH_CHECK_EVERY: Duration = Duration::from_millis(250);

/// The cache. `None` entries remember numbers that do not exist (for the same TTL).
pub struct Numbers {
    db: PgPool,
    sealer: Sealer,
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
    /// Where the numbers' epoch is (None: only the TTL applies).
    epoch: Option<(RedisConn, Keyspace)>,
    /// When the epoch was last read, and its value then.
    seen: Mutex<(Option<Instant>, i64)>,
}

impl std::fmt::Debug for Numbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Numbers").field("ttl", &self.ttl).finish()
    }
}

impl Numbers {
    pub fn new(db: PgPool, sealer: Sealer, ttl: Duration) -> Self {
        Self {
            db,
            sealer,
            ttl,
            map: Mutex::new(HashMap::new()),
            epoch: None,
            seen: Mutex::new((None, 0)),
        }
    }

    /// Also drops the cached numbers whenever the numbers' epoch in Redis moves.
    pub fn with_epoch(mut self, redis: RedisConn, keys: Keyspace) -> Self {
        self.epoch = Some((redis, keys));
        self
    }

    /// Reads the epoch when it is due; clears the map when it moved. A failed read keeps the
    /// cache (the TTL still applies).
    async fn check_epoch(&self) {
        let Some((redis, keys)) = &self.epoch else {
            return;
        };
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.0.is_some_and(|at| at.elapsed() < EPOCH_CHECK_EVERY) {
                return;
            }
            // Claimed for this read: concurrent callers do not read it too.
            seen.0 = Some(Instant::now());
        }
        match ezpulze_common::number_epoch::read(&mut redis.clone(), keys).await {
            Ok(now) => {
                let moved = {
                    let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                    let moved = seen.1 != now;
                    seen.1 = now;
                    moved
                };
                if moved {
                    self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    metrics::counter!("ezpulze_number_cache_flushes_total").increment(1);
                }
            }
            Err(e) => tracing::debug!(error = format!("{e:#}"), "reading the numbers' epoch"),
        }
    }

    /// The numbers of `ids` (absent from the map = no such number).
    pub async fn get_many(&self, ids: &[String]) -> anyhow::Result<HashMap<String, Arc<Number>>> {
        self.check_epoch().await;
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                match map.get(id) {
                    Some((at, n)) if at.elapsed() < self.ttl => {
                        if let Some(n) = n {
                            out.insert(id.clone(), n.clone());
                        }
                    }
                    _ => missing.push(id.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let epoch_before = self.seen.lock().unwrap_or_else(|p| p.into_inner()).1;
        let rows: Vec<(String, Uuid, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT phone_number_id, account_id, access_token_enc, messages_per_second
               FROM phone_numbers WHERE phone_number_id = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&self.db)
        .await
        .context("loading phone numbers")?;
        let now = Instant::now();
        // Rows read while the epoch moved may be older than the change: used, not cached.
        let cache = self.seen.lock().unwrap_or_else(|p| p.into_inner()).1 == epoch_before;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if cache {
            for id in &missing {
                map.insert(id.clone(), (now, None));
            }
        }
        for (id, account_id, enc, mps) in rows {
            let token = match self.sealer.open(&enc) {
                Ok(t) => Some(SecretString::from(t)),
                Err(e) => {
                    tracing::error!(phone_number_id = %id, error = %e, "cannot open the number's access token");
                    None
                }
            };
            let n = Arc::new(Number {
                account_id,
                token,
                mps: u32::try_from(mps.max(1)).unwrap_or(80),
            });
            if cache {
                map.insert(id.clone(), (now, Some(n.clone())));
            }
            out.insert(id, n);
        }
        Ok(out)
    }
}
