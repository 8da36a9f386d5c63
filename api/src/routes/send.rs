//! `POST /api/v1/broadcasts/{id}/send`: validate and expand every recipient, then record and
//! queue them with `ezpulze_common::dispatch::create` (one transaction, bulk statements, then
//! the pipelined push; its docs state the outbox rule), together with the Idempotency-Key
//! record when the request has one (see `crate::idempotency`).

use std::collections::HashSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use ezpulze_common::consent;
use ezpulze_common::dispatch::{self, CreateError, NewDispatch, NewMessages, NewRejections};
use ezpulze_common::idempotency::Stored;
use ezpulze_common::model::DispatchStatus;
use ezpulze_payload::{PhoneE164, Variables};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::{scope, Authorized, Principal};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, PathId, RawBody};
use crate::fanout::audience::Audience;
use crate::idempotency::{self, Begun, Claim};
use crate::routes::broadcasts;
use crate::state::AppState;

mod audience;

pub const MAX_RECIPIENTS: usize = 10_000;
/// A rejected recipient's `to` is echoed in at most this many characters (a phone number,
/// however formatted, is far shorter; a longer `to` is refused before it is parsed).
pub const MAX_TO_ECHO: usize = 64;
/// A rejection's message is cut to this many characters.
pub const MAX_MESSAGE_ECHO: usize = 200;

/// `text` cut to `max` characters (with `…` when cut), so an answer (and the idempotency
/// record that stores it) never grows with what a client sent.
fn echo(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => {
            let cut = text.char_indices().nth(max - 1).map_or(end, |(i, _)| i);
            format!("{}…", &text[..cut])
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// Who gets it: a list of recipients, or an `audience` of the account's contacts.
    #[serde(default)]
    recipients: Option<Vec<Recipient>>,
    #[serde(default)]
    audience: Option<Audience>,
    /// With an audience: the variables, filled per contact (`crate::fanout::fill`).
    #[serde(default)]
    variables_from: Option<serde_json::Value>,
    #[serde(default)]
    scheduled_at: Option<DateTime<Utc>>,
    /// `high`: transactional traffic (OTPs, order updates) that goes ahead of bulk traffic on
    /// the same number, bulk keeping a minimum share.
    #[serde(default)]
    priority: Priority,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Priority {
    #[default]
    Normal,
    High,
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

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(send))
}

/// Send a broadcast to up to 10,000 recipients, or to an audience of contacts
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/send", operation_id = "sendBroadcast",
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, description = "Honoured for 24 h per key: the same key with the same body replays the stored answer; with another body 409 `idempotency_conflict`; while the first request is still running (at most 10 s, also when its process died) 409 `idempotency_conflict` with `Retry-After`.")),
    extensions(("x-required-scope" = json!(scope::BroadcastSend::SCOPE))))]
pub async fn send(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::BroadcastSend>,
    PathId(id): PathId,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let claim = match idempotency::begin(&state, &p, &headers, id, &body).await? {
        Begun::Replay(stored) => return replayed(&state, p.account_id(), stored).await,
        Begun::Fresh(claim) => Some(claim),
        Begun::Plain => None,
    };
    let result = ingest(&state, &p, id, &body, claim.as_ref()).await;
    let result = match (result, &claim) {
        // A concurrent request with the same key committed first: answer as it did.
        (Err(Ingest::IdempotencyTaken), Some(c)) => match c.committed(&state).await? {
            Some(Begun::Replay(stored)) => Ok(Reply::Stored(stored)),
            _ => Err(ApiError::IdempotencyConflict),
        },
        (Err(Ingest::IdempotencyTaken), None) => Err(ApiError::IdempotencyConflict),
        (Err(Ingest::Api(e)), _) => Err(e),
        (Ok(resp), _) => Ok(Reply::Fresh(resp)),
    };
    if let Some(c) = claim {
        c.release(&state).await;
    }
    match result? {
        Reply::Fresh(body) => Ok((
            StatusCode::ACCEPTED,
            [("content-type", "application/json")],
            body,
        )
            .into_response()),
        Reply::Stored(stored) => replayed(&state, p.account_id(), stored).await,
    }
}

enum Reply {
    /// The answer's JSON text (a recipient list's fields in their declared order).
    Fresh(String),
    Stored(Stored),
}

/// What an Idempotency-Key record keeps of a send's answer: what the dispatch's rows cannot
/// tell (the status it started in, and the rejected recipients, usually none).
#[derive(Serialize, Deserialize)]
struct Summary {
    status: String,
    rejected: Vec<Rejected>,
    /// An audience send (its answer is the dispatch and status alone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    audience: bool,
}

/// The answer of a committed send, rebuilt: its accepted messages are the dispatch's rows in
/// id order (ids are made in request order), at the request positions no rejection holds.
async fn replayed(state: &AppState, account_id: Uuid, stored: Stored) -> ApiResult<Response> {
    if let Some(whole) = stored.response {
        return Ok(idempotency::replay(whole));
    }
    let summary: Summary = serde_json::from_str(stored.summary.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("idempotency summary")))?;
    if summary.audience {
        let body = audience::answer(stored.dispatch_id);
        return Ok(idempotency::replay(body.to_string()));
    }
    let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, ref FROM messages WHERE dispatch_id = $1 AND account_id = $2 ORDER BY id",
    )
    .bind(stored.dispatch_id)
    .bind(account_id)
    .fetch_all(state.db())
    .await?;
    let taken: HashSet<usize> = summary.rejected.iter().map(|r| r.index).collect();
    let messages: Vec<Accepted> = (0..)
        .filter(|i| !taken.contains(i))
        .zip(rows)
        .map(|(index, (id, reference))| Accepted {
            index,
            id,
            reference,
        })
        .collect();
    let response = SendResponse {
        dispatch_id: stored.dispatch_id,
        status: summary.status,
        accepted: messages.len(),
        rejected: summary.rejected,
        messages,
    };
    let body = serde_json::to_string(&response).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(idempotency::replay(body))
}

/// Why an ingest did not record a dispatch.
enum Ingest {
    Api(ApiError),
    IdempotencyTaken,
}

impl From<ApiError> for Ingest {
    fn from(e: ApiError) -> Self {
        Ingest::Api(e)
    }
}

async fn ingest(
    state: &AppState,
    p: &Principal,
    broadcast_id: Uuid,
    body: &[u8],
    claim: Option<&Claim>,
) -> Result<String, Ingest> {
    let req: SendBody = parse_json(body)?;
    if let Some(at) = req.scheduled_at {
        if at > Utc::now() + chrono::Duration::days(90) {
            return Err(ApiError::field("scheduled_at", "at most 90 days ahead").into());
        }
    }
    let Some(recipients) = req.recipients else {
        return audience::ingest(
            state,
            p,
            broadcast_id,
            req.audience,
            req.variables_from,
            req.scheduled_at,
            req.priority == Priority::High,
            claim,
        )
        .await;
    };
    if req.audience.is_some() || req.variables_from.is_some() {
        return Err(ApiError::field(
            "recipients",
            "give either recipients or an audience (with variables_from), not both",
        )
        .into());
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(ApiError::field(
            "recipients",
            format!("at most {MAX_RECIPIENTS} recipients per request"),
        )
        .into());
    }
    if recipients.is_empty() {
        return Err(ApiError::field("recipients", "at least one recipient is required").into());
    }
    let scheduled = req.scheduled_at.filter(|t| *t > Utc::now());
    let b = broadcasts::load(state, p.account_id(), broadcast_id).await?;
    b.require_approved()?;
    // The suppression list, read once for every phone of the request.
    let phones: Vec<String> = recipients
        .iter()
        .filter(|r| r.to.len() <= MAX_TO_ECHO * 4)
        .filter_map(|r| PhoneE164::parse(&r.to).ok())
        .map(PhoneE164::into_string)
        .collect();
    let category = b.template.template().category.as_str();
    let suppressed = consent::suppressed(state.db(), p.account_id(), &phones, category)
        .await
        .map_err(ApiError::from)?;
    drop(phones);

    let n = recipients.len();
    let mut rejected = Vec::new();
    let mut accepted = Vec::with_capacity(n);
    let mut messages = NewMessages::with_capacity(n);
    let mut seen = HashSet::with_capacity(n);
    let empty = Variables::default();
    for (index, r) in recipients.into_iter().enumerate() {
        let reject = |code: &str, message: String, to: &str| Rejected {
            index,
            to: echo(to, MAX_TO_ECHO),
            code: code.into(),
            message: echo(&message, MAX_MESSAGE_ECHO),
        };
        if r.to.chars().count() > MAX_TO_ECHO {
            rejected.push(reject(
                "invalid_phone",
                format!("to: at most {MAX_TO_ECHO} characters"),
                &r.to,
            ));
            continue;
        }
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
        if suppressed.contains(phone.as_str()) {
            rejected.push(reject(
                consent::SUPPRESSED,
                consent::SUPPRESSED_MESSAGE.into(),
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
                let payload = String::from_utf8(msg.to_json_vec())
                    .map_err(|e| ApiError::Internal(e.into()))?;
                accepted.push(Accepted {
                    index,
                    id,
                    reference: r.reference.clone(),
                });
                messages.push(id, phone.into_string(), r.reference, payload);
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
        )
        .into());
    }

    let mut rejections = NewRejections::default();
    for r in &rejected {
        rejections.push(
            i64::try_from(r.index).unwrap_or(i64::MAX),
            None,
            Some(r.to.clone()),
            &r.code,
            r.message.clone(),
        );
    }
    let dispatch = NewDispatch {
        id: Uuid::now_v7(),
        account_id: p.account_id(),
        broadcast_id: Some(broadcast_id),
        template_id: Some(b.row.template_id),
        key_id: p.key_id(),
        counts_in_usage: true,
        test_mode: p.test_mode(),
        scheduled_at: scheduled,
        high: req.priority == Priority::High,
        messages,
        rejections,
    };
    let status = if scheduled.is_some() {
        DispatchStatus::Scheduled
    } else {
        DispatchStatus::Queued
    };
    let mut response = SendResponse {
        dispatch_id: dispatch.id,
        status: status.as_str().into(),
        accepted: accepted.len(),
        rejected,
        messages: accepted,
    };
    let record = match claim {
        Some(c) => {
            let summary = Summary {
                status: response.status.clone(),
                rejected: std::mem::take(&mut response.rejected),
                audience: false,
            };
            let kept = serde_json::to_string(&summary).map_err(|e| ApiError::Internal(e.into()));
            response.rejected = summary.rejected;
            Some(c.record(dispatch.id, kept?))
        }
        None => None,
    };
    let tx = state.db().begin().await.map_err(ApiError::from)?;
    match dispatch::create(tx, state, &dispatch, record.as_ref()).await {
        Ok(_) => {}
        Err(CreateError::IdempotencyTaken) => return Err(Ingest::IdempotencyTaken),
        Err(CreateError::Db(e)) => return Err(ApiError::from(e).into()),
    }
    metrics::counter!("ezpulze_ingest_recipients_total", "result" => "accepted")
        .increment(response.accepted as u64);
    metrics::counter!("ezpulze_ingest_recipients_total", "result" => "rejected")
        .increment(response.rejected.len() as u64);
    if !suppressed.is_empty() {
        let n = response
            .rejected
            .iter()
            .filter(|r| r.code == consent::SUPPRESSED)
            .count();
        metrics::counter!("ezpulze_ingest_recipients_total", "result" => "suppressed")
            .increment(n as u64);
    }
    serde_json::to_string(&response).map_err(|e| ApiError::Internal(e.into()).into())
}
