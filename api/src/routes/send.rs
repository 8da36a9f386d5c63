//! `POST /api/v1/broadcasts/{id}/send`: validate and expand every recipient, record the
//! dispatch and its messages in one transaction with bulk statements, then push one job per
//! message with the queue's pipelined bulk push.
//!
//! Outbox rule: rows are committed before their jobs are pushed. If the push fails (or the
//! process dies in between) the rows stay `queued`, and the scheduler's outbox sweep pushes
//! them again; a duplicate job is harmless because a worker claims a row `queued -> sending`
//! once. So an accepted recipient is never lost.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ezpulze_common::jobs::{ReleaseJob, SendJob};
use ezpulze_payload::{PhoneE164, Variables};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::{scope, Authorized, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, PathId, RawBody};
use crate::routes::broadcasts;
use crate::state::AppState;

pub const MAX_RECIPIENTS: usize = 10_000;
const IDEMPOTENCY_TTL_SECS: u64 = 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    recipients: Vec<Recipient>,
    #[serde(default)]
    scheduled_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    to: String,
    #[serde(default, rename = "ref")]
    reference: Option<String>,
    #[serde(default)]
    variables: Option<Variables>,
}

#[derive(Serialize, Deserialize)]
pub struct Rejected {
    index: usize,
    to: String,
    code: String,
    message: String,
}

#[derive(Serialize, Deserialize)]
pub struct Accepted {
    index: usize,
    id: Uuid,
    #[serde(rename = "ref")]
    reference: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct SendResponse {
    dispatch_id: Uuid,
    status: String,
    accepted: usize,
    rejected: Vec<Rejected>,
    messages: Vec<Accepted>,
}

pub async fn send(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::BroadcastSend>,
    PathId(id): PathId,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let idem = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::field("Idempotency-Key", "1 to 255 visible ASCII characters")
                })?;
            Some(Idempotency::begin(&state, &p, id, k, &body).await?)
        }
    };
    let idem = match idem {
        Some(Begun::Replay(stored)) => return Ok(replay(stored)),
        Some(Begun::Fresh(i)) => Some(i),
        None => None,
    };
    let result = ingest(&state, &p, id, &body).await;
    if let Some(i) = idem {
        match &result {
            Ok(resp) => i.finish(&state, resp).await?,
            Err(_) => i.abandon(&state).await,
        }
    }
    let resp = result?;
    Ok((StatusCode::ACCEPTED, axum::Json(resp)).into_response())
}

fn replay(stored: String) -> Response {
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

async fn ingest(
    state: &AppState,
    p: &Principal,
    broadcast_id: Uuid,
    body: &[u8],
) -> ApiResult<SendResponse> {
    let req: SendBody = parse_json(body)?;
    if req.recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::field(
            "recipients",
            format!("at most {MAX_RECIPIENTS} recipients per request"),
        ));
    }
    if req.recipients.is_empty() {
        return Err(ApiError::field(
            "recipients",
            "at least one recipient is required",
        ));
    }
    if let Some(at) = req.scheduled_at {
        if at > Utc::now() + chrono::Duration::days(90) {
            return Err(ApiError::field("scheduled_at", "at most 90 days ahead"));
        }
    }
    let scheduled = req.scheduled_at.filter(|t| *t > Utc::now());
    let b = broadcasts::load(state, p.account_id(), broadcast_id).await?;

    let n = req.recipients.len();
    let mut rejected = Vec::new();
    let mut accepted = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut phones = Vec::with_capacity(n);
    let mut refs: Vec<Option<String>> = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    let empty = Variables::default();
    for (index, r) in req.recipients.into_iter().enumerate() {
        let reject = |code: &str, message: String, to: &str| Rejected {
            index,
            to: to.to_string(),
            code: code.into(),
            message,
        };
        if r.reference
            .as_ref()
            .is_some_and(|s| s.chars().count() > 256)
        {
            rejected.push(reject(
                "too_long",
                "ref: at most 256 characters".into(),
                &r.to,
            ));
            continue;
        }
        let phone = match PhoneE164::parse(&r.to) {
            Ok(ph) => ph,
            Err(e) => {
                rejected.push(reject("invalid_phone", e.to_string(), &r.to));
                continue;
            }
        };
        if !seen.insert(phone.as_str().to_string()) {
            rejected.push(reject(
                "duplicate_recipient",
                "this phone number appears earlier in the request".into(),
                &r.to,
            ));
            continue;
        }
        let id = Uuid::now_v7();
        let callback = id.simple().to_string();
        let vars = r.variables.as_ref().unwrap_or(&empty);
        match b
            .template
            .expand(&b.defaults, vars, phone.as_str(), &callback)
        {
            Ok(msg) => {
                payloads.push(
                    String::from_utf8(msg.to_json_vec())
                        .map_err(|e| ApiError::Internal(e.into()))?,
                );
                ids.push(id);
                phones.push(phone.into_string());
                accepted.push(Accepted {
                    index,
                    id,
                    reference: r.reference.clone(),
                });
                refs.push(r.reference);
            }
            Err(errs) => {
                let first = errs.first();
                rejected.push(reject(
                    first.map(|e| e.code.as_str()).unwrap_or("invalid"),
                    errs.iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    &r.to,
                ));
            }
        }
    }
    if accepted.is_empty() {
        return Err(ApiError::Validation(
            rejected
                .iter()
                .map(|r| {
                    FieldError::new(
                        format!("recipients[{}]", r.index),
                        format!("{} ({})", r.message, r.code),
                    )
                })
                .collect(),
        ));
    }

    let dispatch_id = Uuid::now_v7();
    let status = if scheduled.is_some() {
        "scheduled"
    } else {
        "queued"
    };
    let key_id = p.key_id();
    let mut tx = state.db().begin().await?;
    sqlx::query(
        "INSERT INTO dispatches (id, account_id, broadcast_id, key_id, test_mode, phone_number_id, status, total, scheduled_at)
         VALUES ($1, $2, $3, $4, $8,
                 (SELECT phone_number_id FROM phone_numbers WHERE account_id = $2 ORDER BY position, phone_number_id LIMIT 1),
                 $5, $6, $7)",
    )
    .bind(dispatch_id)
    .bind(p.account_id())
    .bind(broadcast_id)
    .bind(key_id)
    .bind(status)
    .bind(ids.len() as i32)
    .bind(scheduled)
    .bind(p.test_mode())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, ref, payload, status)
         SELECT u.id, $1, $2, $3, u.to_phone, u.ref, u.payload::jsonb, $7
         FROM UNNEST($4::uuid[], $5::text[], $6::text[], $8::text[]) AS u(id, to_phone, ref, payload)",
    )
    .bind(dispatch_id)
    .bind(p.account_id())
    .bind(key_id)
    .bind(&ids)
    .bind(&phones)
    .bind(&refs)
    .bind(status)
    .bind(&payloads)
    .execute(&mut *tx)
    .await?;
    if let Some(key_id) = key_id {
        sqlx::query(
            "INSERT INTO api_key_usage (key_id, total_messages, last_message_at) VALUES ($1, $2, now())
             ON CONFLICT (key_id) DO UPDATE SET total_messages = api_key_usage.total_messages + EXCLUDED.total_messages,
                 last_message_at = EXCLUDED.last_message_at",
        )
        .bind(key_id)
        .bind(ids.len() as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    metrics::counter!("ezpulze_ingest_recipients_total", "result" => "accepted")
        .increment(ids.len() as u64);
    metrics::counter!("ezpulze_ingest_recipients_total", "result" => "rejected")
        .increment(rejected.len() as u64);

    if let Some(at) = scheduled {
        // Due at `scheduled_at` on the schedule queue; the scheduler's scan of due dispatches
        // is the safety net if this push fails.
        let due = std::time::SystemTime::from(at);
        if let Err(e) = state
            .schedule_queue()
            .push_at(&[ReleaseJob { dispatch_id }], due)
            .await
        {
            tracing::warn!(error = %e, %dispatch_id, "scheduling the release failed; the scheduler's scan will release it");
        }
    } else {
        let jobs: Vec<SendJob> = ids
            .iter()
            .map(|&message_id| SendJob {
                message_id,
                dispatch_id,
                account_id: p.account_id(),
            })
            .collect();
        // Committed rows are the record: a failed push is repaired by the outbox sweep.
        if let Err(e) = state.send_queue().push_bulk(&jobs).await {
            metrics::counter!("ezpulze_ingest_push_failures_total").increment(1);
            tracing::warn!(error = %e, %dispatch_id, "pushing jobs failed; the outbox sweep will push them");
        }
    }
    Ok(SendResponse {
        dispatch_id,
        status: status.into(),
        accepted: accepted.len(),
        rejected,
        messages: accepted,
    })
}

enum Begun {
    Replay(String),
    Fresh(Idempotency),
}

/// `Idempotency-Key`: per caller (key, or account for the admin UI), 24 h, in Redis. The first
/// request claims the key; a replay with the same body gets the stored response, with another
/// body 409 `idempotency_conflict`; a request still in progress also gets 409.
struct Idempotency {
    redis_key: String,
    body_hash: String,
}

impl Idempotency {
    async fn begin(
        state: &AppState,
        p: &Principal,
        broadcast: Uuid,
        key: &str,
        body: &[u8],
    ) -> ApiResult<Begun> {
        let who = p
            .key_id()
            .map(|k| format!("k:{k}"))
            .unwrap_or_else(|| format!("a:{}", p.account_id()));
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        let redis_key = format!("{}:idem:{who}:{digest}", state.config().redis_prefix);
        let mut h = Sha256::new();
        h.update(broadcast.as_bytes());
        h.update(body);
        let body_hash = hex::encode(h.finalize());
        let mut redis = state.redis();
        let claimed: bool = redis::cmd("SET")
            .arg(&redis_key)
            .arg(format!("pending:{body_hash}"))
            .arg("NX")
            .arg("EX")
            .arg(IDEMPOTENCY_TTL_SECS)
            .query_async::<Option<String>>(&mut redis)
            .await?
            .is_some();
        if claimed {
            return Ok(Begun::Fresh(Idempotency {
                redis_key,
                body_hash,
            }));
        }
        let stored: Option<String> = redis.get(&redis_key).await?;
        let Some(stored) = stored else {
            // Expired between the two calls: treat as in progress; the client retries.
            return Err(ApiError::IdempotencyConflict);
        };
        if let Some(rest) = stored.strip_prefix("done:") {
            let (hash, resp) = rest.split_once(':').unwrap_or(("", ""));
            if hash == body_hash {
                return Ok(Begun::Replay(resp.to_string()));
            }
        }
        Err(ApiError::IdempotencyConflict)
    }

    async fn finish(self, state: &AppState, resp: &SendResponse) -> ApiResult<()> {
        let json = serde_json::to_string(resp).map_err(|e| ApiError::Internal(e.into()))?;
        let mut redis = state.redis();
        let _: () = redis
            .set_ex(
                &self.redis_key,
                format!("done:{}:{json}", self.body_hash),
                IDEMPOTENCY_TTL_SECS,
            )
            .await?;
        Ok(())
    }

    async fn abandon(self, state: &AppState) {
        let mut redis = state.redis();
        let _: Result<(), _> = redis.del(&self.redis_key).await;
    }
}
