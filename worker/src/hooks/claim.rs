//! The statements that hand deliveries to this process: which active endpoints have due
//! deliveries, the batched claim, and the return of expired leases.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ezpulze_common::hooks;
use ezpulze_common::secrets::Sealer;
use sqlx::PgPool;
use uuid::Uuid;

/// An active endpoint with due deliveries.
#[derive(Debug, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub max_per_second: i32,
    secret_enc: Vec<u8>,
    old_secret_enc: Option<Vec<u8>>,
    old_secret_until: Option<DateTime<Utc>>,
}

impl Endpoint {
    /// The HMAC keys that sign its requests: the secret, and the previous one while its grace
    /// after a rotation lasts.
    pub fn keys(&self, sealer: &Sealer) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = vec![hooks::secret_key(&sealer.open(&self.secret_enc)?)?];
        if let (Some(old), Some(until)) = (&self.old_secret_enc, self.old_secret_until) {
            if until > Utc::now() {
                out.push(hooks::secret_key(&sealer.open(old)?)?);
            }
        }
        Ok(out)
    }
}

/// The active endpoints with at least one due pending delivery (a probe of the
/// `webhook_deliveries_due` index per active endpoint).
pub async fn due_endpoints(db: &PgPool) -> anyhow::Result<Vec<Endpoint>> {
    sqlx::query_as(
        "SELECT e.id, e.url, e.max_per_second, e.secret_enc, e.old_secret_enc, e.old_secret_until
           FROM webhook_endpoints e
          WHERE e.active AND EXISTS (
                SELECT 1 FROM webhook_deliveries w
                 WHERE w.endpoint_id = e.id AND w.state = 'pending' AND w.next_attempt_at <= now())",
    )
    .fetch_all(db)
    .await
    .context("finding endpoints with due deliveries")
}

/// A claimed delivery.
#[derive(Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: String,
    pub body: String,
    pub attempts: i32,
}

/// Claims up to `n` due deliveries of each `(endpoint, n)`, oldest due first, skipping rows
/// another worker holds: `delivering`, `attempts + 1`, leased for `lease`. One statement.
pub async fn claim(
    db: &PgPool,
    asks: &[(Uuid, i32)],
    lease: Duration,
) -> anyhow::Result<Vec<Claimed>> {
    let ids: Vec<Uuid> = asks.iter().map(|a| a.0).collect();
    let ns: Vec<i32> = asks.iter().map(|a| a.1).collect();
    sqlx::query_as(
        "WITH c AS (
             SELECT a.eid, d.id FROM UNNEST($1::uuid[], $2::int[]) AS a(eid, n)
              CROSS JOIN LATERAL (
                    SELECT w.id FROM webhook_deliveries w
                     WHERE w.endpoint_id = a.eid AND w.state = 'pending' AND w.next_attempt_at <= now()
                     ORDER BY w.next_attempt_at LIMIT a.n
                     FOR UPDATE SKIP LOCKED) d)
         UPDATE webhook_deliveries w
            SET state = 'delivering', attempts = w.attempts + 1,
                lease_until = now() + make_interval(secs => $3), updated_at = now()
           FROM c WHERE w.endpoint_id = c.eid AND w.id = c.id
         RETURNING w.id, w.endpoint_id, w.event_id, w.body::text AS body, w.attempts",
    )
    .bind(&ids)
    .bind(&ns)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await
    .context("claiming webhook deliveries")
}

/// Deliveries whose worker died mid-attempt are due again (the attempt counts).
pub async fn expire_leases(db: &PgPool) -> anyhow::Result<u64> {
    let r = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', lease_until = NULL,
                next_attempt_at = now(), updated_at = now(),
                last_error = COALESCE(last_error, 'the attempt''s worker stopped')
          WHERE state = 'delivering' AND lease_until < now()",
    )
    .execute(db)
    .await
    .context("expiring webhook delivery leases")?;
    if r.rows_affected() > 0 {
        metrics::counter!("ezpulze_webhook_leases_expired_total").increment(r.rows_affected());
    }
    Ok(r.rows_affected())
}
