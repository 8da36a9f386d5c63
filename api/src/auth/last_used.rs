//! `last_used_at` without a database write per request: uses are noted in memory (at most once
//! a second per key and process) and written by one batched UPDATE every `LAST_USED_FLUSH_MS`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::key_cache::KeyRecord;

#[derive(Default)]
pub struct LastUsed {
    pending: DashMap<Uuid, DateTime<Utc>>,
}

impl LastUsed {
    /// Notes a use at Unix second `sec`.
    pub fn note(&self, key: &KeyRecord, sec: i64) {
        // A plain load first: most requests find the second already noted, and reading a
        // shared cache line is cheap where writing it on every request is not.
        if key.last_used_sec.load(Ordering::Relaxed) != sec
            && key.last_used_sec.swap(sec, Ordering::Relaxed) != sec
        {
            self.pending.insert(key.id, Utc::now());
        }
    }

    pub async fn flush(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let keys: Vec<Uuid> = self.pending.iter().map(|e| *e.key()).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(keys.len());
        let mut times = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some((id, t)) = self.pending.remove(&k) {
                ids.push(id);
                times.push(t);
            }
        }
        let res = sqlx::query(
            "UPDATE api_keys k SET last_used_at = v.t
             FROM UNNEST($1::uuid[], $2::timestamptz[]) AS v(id, t)
             WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.t)",
        )
        .bind(&ids)
        .bind(&times)
        .execute(db)
        .await;
        if let Err(e) = res {
            // Keep the uses for the next flush unless a newer one arrived meanwhile.
            for (id, t) in ids.into_iter().zip(times) {
                self.pending.entry(id).or_insert(t);
            }
            return Err(e);
        }
        Ok(())
    }

    pub async fn run(&self, db: PgPool, every: Duration, cancel: CancellationToken) {
        loop {
            let stop = tokio::select! {
                _ = cancel.cancelled() => true,
                _ = tokio::time::sleep(every) => false,
            };
            if let Err(e) = self.flush(&db).await {
                tracing::warn!(error = %e, "writing last_used_at failed; will retry");
            }
            if stop {
                return;
            }
        }
    }
}
