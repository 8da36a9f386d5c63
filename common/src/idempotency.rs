//! Idempotency-Key records in Postgres: the durable half of idempotent sends.
//!
//! A record is inserted in the transaction that records the dispatch ([`crate::dispatch`]),
//! so it exists exactly when the work was committed. A replay reads it back; a record older
//! than [`TTL_SECS`] no longer counts (it is overwritten by the next use of the key and
//! deleted by the scheduler's retention).
//!
//! A record is small: the dispatch id, the request's digest and a `summary` of what Postgres
//! cannot rebuild (the caller's choice: the send route keeps the starting status and the
//! rejected recipients). The replayed answer is rebuilt from the dispatch's rows. Records
//! written before summaries existed carry their whole `response` and are replayed from it.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// How long a key is honoured (the contract: 24 h).
pub const TTL_SECS: i64 = 24 * 3600;

/// What a committed idempotent request leaves behind.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub account_id: Uuid,
    /// `k:<key id>` or `a:<account id>` (the admin UI).
    pub caller: String,
    /// Hex SHA-256 of the client's Idempotency-Key.
    pub key_digest: String,
    /// Hex SHA-256 of what the request asked for (route target and body).
    pub body_digest: String,
    pub dispatch_id: Uuid,
    /// What the replayed answer needs beyond the dispatch's rows (small; see the module docs).
    pub summary: String,
}

/// A live record found for a key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub body_digest: String,
    pub dispatch_id: Uuid,
    pub summary: Option<String>,
    /// The whole answer, only in records written before summaries existed.
    pub response: Option<String>,
}

/// Inserts `rec` unless a live record holds its key (returns false then). A concurrent
/// insert of the same key waits for the other transaction and then sees its record.
pub async fn insert(conn: &mut PgConnection, rec: &IdempotencyRecord) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO idempotency_records (account_id, caller, key_digest, body_digest, dispatch_id, summary)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, caller, key_digest) DO UPDATE
             SET body_digest = EXCLUDED.body_digest, dispatch_id = EXCLUDED.dispatch_id,
                 summary = EXCLUDED.summary, response = NULL, created_at = now()
             WHERE idempotency_records.created_at < now() - make_interval(secs => $7)",
    )
    .bind(rec.account_id)
    .bind(&rec.caller)
    .bind(&rec.key_digest)
    .bind(&rec.body_digest)
    .bind(rec.dispatch_id)
    .bind(&rec.summary)
    .bind(TTL_SECS as f64)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The live record of a key, if any.
pub async fn find(
    db: &PgPool,
    account_id: Uuid,
    caller: &str,
    key_digest: &str,
) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as(
        "SELECT body_digest, dispatch_id, summary, response FROM idempotency_records
         WHERE account_id = $1 AND caller = $2 AND key_digest = $3
           AND created_at >= now() - make_interval(secs => $4)",
    )
    .bind(account_id)
    .bind(caller)
    .bind(key_digest)
    .bind(TTL_SECS as f64)
    .fetch_optional(db)
    .await
}

/// How many live records `caller` holds (counted up to `cap`) and their stored size in bytes.
pub async fn held(
    db: &PgPool,
    account_id: Uuid,
    caller: &str,
    cap: i64,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(size), 0)::bigint FROM (
             SELECT coalesce(pg_column_size(response), 0) + coalesce(pg_column_size(summary), 0) AS size
               FROM idempotency_records
              WHERE account_id = $1 AND caller = $2
                AND created_at >= now() - make_interval(secs => $3)
              LIMIT $4) held",
    )
    .bind(account_id)
    .bind(caller)
    .bind(TTL_SECS as f64)
    .bind(cap)
    .fetch_one(db)
    .await
}

/// Deletes records past their lifetime, at most `limit`; returns how many.
pub async fn delete_expired(db: &PgPool, limit: i64) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "DELETE FROM idempotency_records WHERE ctid = ANY(ARRAY(
             SELECT ctid FROM idempotency_records
             WHERE created_at < now() - make_interval(secs => $1) LIMIT $2))",
    )
    .bind(TTL_SECS as f64)
    .bind(limit)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
