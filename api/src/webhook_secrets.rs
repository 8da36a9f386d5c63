//! The app secrets that verify webhook signatures, cached per `phone_number_id` and per WABA
//! id (the POST path touches Postgres only on a miss; cleared when WhatsApp settings change).
//!
//! WABA-level bodies (number quality, account updates, templates) name no number: their
//! `entry[].id` is the account's `whatsapp_settings.waba_id`. An unknown WABA id is remembered
//! as unknown for the TTL too (the lookup is one unique-index probe; at most
//! [`MAX_UNKNOWN_WABAS`] such entries are kept, so random ids cannot grow the map without
//! bound nor push real WABAs out).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ezpulze_common::Config;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

const SECRET_TTL: Duration = Duration::from_secs(30);
/// Unknown WABA ids remembered at most (the map is cleared beyond).
pub const MAX_UNKNOWN_WABAS: usize = 10_000;

/// The account a number belongs to and that account's app secret.
#[derive(Debug, PartialEq, Eq)]
pub struct NumberSecret {
    pub account_id: Uuid,
    pub secret: String,
}

/// phone_number_id -> the owning account and its app secret (None: unknown number or no
/// secret).
#[derive(Default)]
pub struct SecretCache {
    map: DashMap<String, (Option<Arc<NumberSecret>>, Instant)>,
    /// waba_id -> the owning account and its app secret.
    wabas: DashMap<String, (Option<Arc<NumberSecret>>, Instant)>,
    /// waba ids no account has (None entries of the TTL).
    unknown_wabas: DashMap<String, Instant>,
}

/// A row's account and sealed app secret, opened (None: no row, or no secret set).
fn unseal(
    config: &Config,
    sealed: Option<(Uuid, Option<Vec<u8>>)>,
) -> ApiResult<Option<Arc<NumberSecret>>> {
    let Some((account_id, Some(bytes))) = sealed else {
        return Ok(None);
    };
    let secret = config
        .sealer()
        .open(&bytes)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(Arc::new(NumberSecret { account_id, secret })))
}

impl SecretCache {
    pub fn clear(&self) {
        self.map.clear();
        self.wabas.clear();
        self.unknown_wabas.clear();
    }

    /// The account whose `waba_id` this is, and its app secret (None: no such WABA, not
    /// digits, or no app secret set).
    pub async fn get_waba(
        &self,
        db: &PgPool,
        config: &Config,
        waba_id: &str,
    ) -> ApiResult<Option<Arc<NumberSecret>>> {
        if waba_id.is_empty() || waba_id.len() > 32 || !waba_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(None);
        }
        if let Some(e) = self.wabas.get(waba_id) {
            if e.1.elapsed() < SECRET_TTL {
                return Ok(e.0.clone());
            }
        }
        if let Some(at) = self.unknown_wabas.get(waba_id) {
            if at.elapsed() < SECRET_TTL {
                return Ok(None);
            }
        }
        let sealed: Option<(Uuid, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT account_id, app_secret_enc FROM whatsapp_settings WHERE waba_id = $1",
        )
        .bind(waba_id)
        .fetch_optional(db)
        .await?;
        let secret = unseal(config, sealed)?;
        match &secret {
            Some(_) => {
                if self.wabas.len() > 100_000 {
                    self.wabas.clear();
                }
                self.wabas
                    .insert(waba_id.to_string(), (secret.clone(), Instant::now()));
            }
            None => {
                if self.unknown_wabas.len() >= MAX_UNKNOWN_WABAS {
                    self.unknown_wabas.clear();
                }
                self.unknown_wabas
                    .insert(waba_id.to_string(), Instant::now());
            }
        }
        Ok(secret)
    }

    /// The number's account and secret; `recent` is the key cache (whose filters know every
    /// registered number), the Redis connection and prefix for its recent-creation check.
    pub async fn get(
        &self,
        db: &PgPool,
        config: &Config,
        recent: (
            &crate::auth::key_cache::KeyCache,
            &ezpulze_common::redis_conn::RedisConn,
            &str,
        ),
        phone_number_id: &str,
    ) -> ApiResult<Option<Arc<NumberSecret>>> {
        if let Some(e) = self.map.get(phone_number_id) {
            if e.1.elapsed() < SECRET_TTL {
                return Ok(e.0.clone());
            }
        }
        if !recent.0.known.may_be_number(phone_number_id)
            && !recent
                .0
                .recently_created(
                    &mut recent.1.clone(),
                    recent.2,
                    &crate::auth::known::number_message(phone_number_id),
                )
                .await
        {
            // No account registered it: answered without a query, and not cached, so random
            // numbers cannot push real ones out.
            metrics::counter!("ezpulze_auth_known_filter_refusals_total", "kind" => "phone_number")
                .increment(1);
            return Ok(None);
        }
        let sealed: Option<(Uuid, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT p.account_id, s.app_secret_enc FROM phone_numbers p
               JOIN whatsapp_settings s ON s.account_id = p.account_id
             WHERE p.phone_number_id = $1",
        )
        .bind(phone_number_id)
        .fetch_optional(db)
        .await?;
        let secret = unseal(config, sealed)?;
        if self.map.len() > 100_000 {
            self.map.clear();
        }
        self.map.insert(
            phone_number_id.to_string(),
            (secret.clone(), Instant::now()),
        );
        Ok(secret)
    }
}
