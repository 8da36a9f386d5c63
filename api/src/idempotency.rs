//! `Idempotency-Key` on sends: per caller (the key, or the account for the admin UI), 24 h.
//!
//! Two halves:
//! - the record (`ezpulze_common::idempotency`), in Postgres, written in the transaction that
//!   records the dispatch: it exists exactly when the work was committed, so a replay with the
//!   same body gets the stored response (and `Idempotent-Replayed: true`), another body 409
//!   `idempotency_conflict`, and a request that failed (4xx/5xx) leaves no record;
//! - a short lock in Redis ([`LOCK_SECS`]) so a request still being processed answers a
//!   concurrent one with the same key 409 at once (with `Retry-After`: what is left of the
//!   lock) instead of holding a database connection.
//!
//! A process that dies mid-request never holds a key for long: if it died after the commit,
//! the record answers the retry at once (a replay); if before, nothing was committed and its
//! lock expires within [`LOCK_SECS`], after which the retry runs as a new request. The lock
//! is only a courtesy: if it expires while the first request still runs, the record's primary
//! key still admits one commit, and the later of the two answers with the first's replay.
//!
//! Bookkeeping never fails the work: a Redis error taking or releasing the lock is logged and
//! counted (`ezpulze_idempotency_bookkeeping_failures_total`), the request goes on (the
//! record's primary key still admits one commit per key), and a lock left behind by a failed
//! release or a dead process expires after [`LOCK_SECS`]; a committed request is replayed
//! even while its lock is still held.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ezpulze_common::idempotency::{self, IdempotencyRecord, Stored};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Lifetime of the in-progress lock: how long a retry of a request whose process died before
/// its commit waits at most (a send of 10,000 recipients takes well under a second).
pub const LOCK_SECS: u64 = 10;

/// What one caller may hold in live (24 h) records: a new Idempotency-Key beyond either bound
/// answers 429 `rate_limited` (a request without the header still goes on). One record holds
/// at most one send's answer, itself bounded: 10,000 recipients, each `to` echoed in at most
/// 64 characters and each message in at most 200.
pub const MAX_RECORDS_PER_CALLER: i64 = 10_000;
pub const MAX_STORED_BYTES_PER_CALLER: i64 = 256 * 1024 * 1024;

const HEADER: &str = "idempotency-key";

/// What the start of an idempotent request found.
pub enum Begun {
    /// No Idempotency-Key header: an ordinary request.
    Plain,
    /// A committed request with this key and body: its record, to answer from again.
    Replay(Stored),
    /// The first request with this key: do the work, then [`Claim::release`].
    Fresh(Claim),
}

/// A key this request holds.
pub struct Claim {
    account_id: Uuid,
    caller: String,
    key_digest: String,
    body_digest: String,
    lock: Option<String>,
}

/// Reads the header and looks the key up; `target` names what the body is sent to (a
/// broadcast), so the same body to another target is another request.
pub async fn begin(
    state: &AppState,
    p: &Principal,
    headers: &HeaderMap,
    target: Uuid,
    body: &[u8],
) -> ApiResult<Begun> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(Begun::Plain);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| ApiError::field("Idempotency-Key", "1 to 255 visible ASCII characters"))?;
    let caller = p
        .key_id()
        .map(|k| format!("k:{k}"))
        .unwrap_or_else(|| format!("a:{}", p.account_id()));
    let key_digest = hex::encode(Sha256::digest(key.as_bytes()));
    let mut h = Sha256::new();
    h.update(target.as_bytes());
    h.update(body);
    let body_digest = hex::encode(h.finalize());
    let mut claim = Claim {
        account_id: p.account_id(),
        caller,
        key_digest,
        body_digest,
        lock: None,
    };
    if let Some(done) = claim.committed(state).await? {
        return Ok(done);
    }
    let (records, bytes) = idempotency::held(
        state.db(),
        claim.account_id,
        &claim.caller,
        MAX_RECORDS_PER_CALLER,
    )
    .await?;
    if records >= MAX_RECORDS_PER_CALLER {
        return Err(ApiError::IdempotencyBudget(
            "10,000 Idempotency-Key records of the last 24 h",
        ));
    }
    if bytes >= MAX_STORED_BYTES_PER_CALLER {
        return Err(ApiError::IdempotencyBudget(
            "256 MiB of stored Idempotency-Key answers of the last 24 h",
        ));
    }
    let lock = state
        .keyspace()
        .idempotency(&claim.caller, &claim.key_digest);
    let mut redis = state.redis();
    let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
        .arg(&lock)
        .arg(&claim.body_digest)
        .arg("NX")
        .arg("EX")
        .arg(LOCK_SECS)
        .query_async(&mut redis)
        .await;
    match taken {
        Ok(Some(_)) => claim.lock = Some(lock),
        Ok(None) => {
            let left: redis::RedisResult<i64> =
                redis::cmd("PTTL").arg(&lock).query_async(&mut redis).await;
            let retry_after_secs = match left {
                Ok(ms) if ms > 0 => (ms as u64).div_ceil(1000),
                _ => 1,
            };
            return Err(ApiError::IdempotencyInProgress { retry_after_secs });
        }
        Err(e) => bookkeeping_failed("lock", &e),
    }
    Ok(Begun::Fresh(claim))
}

impl Claim {
    /// The record to commit with the work; `summary` is what a replay cannot rebuild from
    /// the dispatch's rows.
    pub fn record(&self, dispatch_id: Uuid, summary: String) -> IdempotencyRecord {
        IdempotencyRecord {
            account_id: self.account_id,
            caller: self.caller.clone(),
            key_digest: self.key_digest.clone(),
            body_digest: self.body_digest.clone(),
            dispatch_id,
            summary,
        }
    }

    /// A committed request with this key: its replay, or 409 for another body.
    pub async fn committed(&self, state: &AppState) -> ApiResult<Option<Begun>> {
        let found =
            idempotency::find(state.db(), self.account_id, &self.caller, &self.key_digest).await?;
        match found {
            None => Ok(None),
            Some(s) if s.body_digest == self.body_digest => Ok(Some(Begun::Replay(s))),
            Some(_) => Err(ApiError::IdempotencyConflict),
        }
    }

    /// Gives the lock back (the record, if the work committed, answers from now on).
    pub async fn release(self, state: &AppState) {
        let Some(lock) = self.lock else { return };
        let mut redis = state.redis();
        let done: redis::RedisResult<()> =
            redis::cmd("DEL").arg(&lock).query_async(&mut redis).await;
        if let Err(e) = done {
            bookkeeping_failed("release", &e);
        }
    }
}

fn bookkeeping_failed(step: &'static str, e: &redis::RedisError) {
    metrics::counter!("ezpulze_idempotency_bookkeeping_failures_total", "step" => step)
        .increment(1);
    tracing::warn!(error = %e, step, "idempotency lock bookkeeping failed; the request goes on (the Postgres record decides)");
}

/// The answer of a replay: 202 with the original body and `Idempotent-Replayed`.
pub fn replay(stored: String) -> Response {
    let mut resp = (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        stored,
    )
        .into_response();
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}
