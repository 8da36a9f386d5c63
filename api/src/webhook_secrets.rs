//! The app secrets that verify webhook signatures, cached per `phone_number_id` (the POST
//! path touches Postgres only on a miss; cleared when WhatsApp settings change).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ezpulze_common::Config;
use sqlx::PgPool;

use crate::error::{ApiError, ApiResult};

const SECRET_TTL: Duration = Duration::from_secs(30);

/// phone_number_id -> the owning account's app secret (None: unknown number or no secret).
#[derive(Default)]
pub struct SecretCache {
    map: DashMap<String, (Option<Arc<String>>, Instant)>,
}

impl SecretCache {
    pub fn clear(&self) {
        self.map.clear();
    }

    pub async fn get(
        &self,
        db: &PgPool,
        config: &Config,
        phone_number_id: &str,
    ) -> ApiResult<Option<Arc<String>>> {
        if let Some(e) = self.map.get(phone_number_id) {
            if e.1.elapsed() < SECRET_TTL {
                return Ok(e.0.clone());
            }
        }
        let sealed: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT s.app_secret_enc FROM phone_numbers p JOIN whatsapp_settings s ON s.account_id = p.account_id
             WHERE p.phone_number_id = $1",
        )
        .bind(phone_number_id)
        .fetch_optional(db)
        .await?;
        let secret = match sealed.flatten() {
            Some(bytes) => Some(Arc::new(
                config
                    .sealer()
                    .open(&bytes)
                    .map_err(|e| ApiError::Internal(e.into()))?,
            )),
            None => None,
        };
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
