//! An audience send: `POST /broadcasts/{id}/send` with `audience` (and `variables_from`)
//! instead of `recipients`. Everything that can be checked before the fan-out is checked here
//! (the audience, the mapping and its attribute names, that the template can be filled, that
//! the audience is not empty); then the dispatch and its fan-out row are committed (with the
//! Idempotency-Key record) and the expanders woken: the answer is 202 `expanding` at once.
//!
//! Reading an account's contacts for an audience needs `contacts:read_all` besides
//! `broadcast:send` (the scope groups are the design's: a key without it gets 403 naming it).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use ezpulze_common::dispatch::{self, NewDispatch};
use ezpulze_common::idempotency as records;
use ezpulze_common::model::DispatchStatus;

use super::{Ingest, Summary};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::fanout::audience::Audience;
use crate::fanout::fill::Fill;
use crate::idempotency::Claim;
use crate::routes::broadcasts;
use crate::state::AppState;

/// The scope an audience send needs besides `broadcast:send`.
pub const READ_CONTACTS: &str = "contacts:read_all";

/// The answer to an audience send (also its replay): the dispatch, `expanding`, and the
/// audience's size once counted (`GET /dispatches/{id}` shows it and the progress).
pub fn answer(dispatch_id: Uuid) -> Value {
    json!({
        "dispatch_id": dispatch_id,
        "status": DispatchStatus::Expanding.as_str(),
        "audience_total": Value::Null,
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn ingest(
    state: &AppState,
    p: &Principal,
    broadcast_id: Uuid,
    audience: Option<Audience>,
    variables_from: Option<Value>,
    scheduled_at: Option<DateTime<Utc>>,
    high: bool,
    claim: Option<&Claim>,
) -> Result<String, Ingest> {
    if let Principal::Key(k) = p {
        if !ezpulze_common::scopes::allows(&k.scopes, READ_CONTACTS) {
            return Err(ApiError::InsufficientScope(READ_CONTACTS).into());
        }
    }
    let Some(audience) = audience else {
        return Err(
            ApiError::field("recipients", "give recipients, or an audience of contacts").into(),
        );
    };
    let audience = audience.validated()?;
    let fill = variables_from
        .as_ref()
        .map(Fill::compile)
        .transpose()
        .map_err(|e| ApiError::field("variables_from", e))?;
    let account = p.account_id();
    let b = broadcasts::load(state, account, broadcast_id).await?;
    b.require_approved()?;

    if let Some(f) = &fill {
        let wanted: Vec<String> = f.attributes().into_iter().collect();
        if !wanted.is_empty() {
            let known: Vec<String> = sqlx::query_scalar(
                "SELECT key FROM contact_attribute_keys WHERE account_id = $1 AND key = ANY($2)",
            )
            .bind(account)
            .bind(&wanted)
            .fetch_all(state.db())
            .await
            .map_err(ApiError::from)?;
            let mut missing: Vec<&String> = wanted.iter().filter(|k| !known.contains(k)).collect();
            missing.sort();
            if let Some(k) = missing.first() {
                return Err(ApiError::field(
                    "variables_from",
                    format!("no contact of this account has the attribute `{k}` (attributes.{k})"),
                )
                .into());
            }
        }
    }
    // The template must be fillable: with every placeholder filled, the variables (over the
    // broadcast's defaults) must expand.
    let probe = fill.as_ref().map(Fill::probe).unwrap_or_default();
    if let Err(errs) = b
        .template
        .expand(&b.defaults, &probe, "+15550000000", "probe")
    {
        let field = if fill.is_some() {
            "variables_from"
        } else {
            "variables_from (required: the template has parameters the broadcast's defaults do not fill)"
        };
        return Err(ApiError::Validation(
            errs.iter()
                .map(|e| {
                    crate::error::FieldError::new(
                        format!("{field}: {}", e.field),
                        format!("{} ({})", e.message, e.code.as_str()),
                    )
                })
                .collect(),
        )
        .into());
    }

    let upper = Uuid::now_v7();
    let mut q = audience.select("EXISTS (SELECT 1", account, upper);
    q.push(")");
    let any: bool = q
        .build_query_scalar()
        .fetch_one(state.db())
        .await
        .map_err(ApiError::from)?;
    if !any {
        return Err(ApiError::Refused {
            code: "empty_audience",
            message: "no contact of this account matches the audience".into(),
        }
        .into());
    }

    let scheduled = scheduled_at.filter(|t| *t > Utc::now());
    let status = if scheduled.is_some() {
        DispatchStatus::Scheduled
    } else {
        DispatchStatus::Queued
    };
    let d = NewDispatch {
        id: Uuid::now_v7(),
        account_id: account,
        broadcast_id: Some(broadcast_id),
        template_id: Some(b.row.template_id),
        key_id: p.key_id(),
        counts_in_usage: true,
        test_mode: p.test_mode(),
        scheduled_at: scheduled,
        high,
        messages: Default::default(),
        rejections: Default::default(),
    };
    let mut tx = state.db().begin().await.map_err(ApiError::from)?;
    if let Some(c) = claim {
        let summary = Summary {
            status: status.as_str().into(),
            rejected: Vec::new(),
            audience: true,
        };
        let summary = serde_json::to_string(&summary).map_err(|e| ApiError::Internal(e.into()))?;
        if !records::insert(&mut tx, &c.record(d.id, summary))
            .await
            .map_err(ApiError::from)?
        {
            return Err(Ingest::IdempotencyTaken);
        }
    }
    dispatch::insert_row(&mut tx, &d, status, 0)
        .await
        .map_err(ApiError::from)?;
    let audience_json =
        serde_json::to_value(&audience).map_err(|e| ApiError::Internal(e.into()))?;
    sqlx::query(
        "INSERT INTO dispatch_audiences (dispatch_id, account_id, audience, variables_from, upper_id)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(d.id)
    .bind(account)
    .bind(audience_json)
    .bind(variables_from)
    .bind(upper)
    .execute(&mut *tx)
    .await
    .map_err(ApiError::from)?;
    tx.commit().await.map_err(ApiError::from)?;
    state.fanout_wake().now();
    metrics::counter!("ezpulze_audience_sends_total").increment(1);
    Ok(answer(d.id).to_string())
}
