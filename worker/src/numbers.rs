//! Phone numbers and their decrypted access tokens, cached per process for a short time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
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

/// The cache. `None` entries remember numbers that do not exist (for the same TTL).
pub struct Numbers {
    db: PgPool,
    sealer: Sealer,
    ttl: Duration,
    map: Mutex<HashMap<String, Entry>>,
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
        }
    }

    /// The numbers of `ids` (absent from the map = no such number).
    pub async fn get_many(&self, ids: &[String]) -> anyhow::Result<HashMap<String, Arc<Number>>> {
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
        let rows: Vec<(String, Uuid, Vec<u8>, i32)> = sqlx::query_as(
            "SELECT phone_number_id, account_id, access_token_enc, messages_per_second
               FROM phone_numbers WHERE phone_number_id = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&self.db)
        .await
        .context("loading phone numbers")?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for id in &missing {
            map.insert(id.clone(), (now, None));
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
            map.insert(id.clone(), (now, Some(n.clone())));
            out.insert(id, n);
        }
        Ok(out)
    }
}
