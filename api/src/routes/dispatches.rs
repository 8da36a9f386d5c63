//! Dispatch progress, message listing, cancel, resume, and message lookup. Readable with
//! `broadcast:send` or `broadcast:read`.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::LazyLock;
use utoipa_axum::{router::OpenApiRouter, routes};

use ezpulze_common::dispatch::JobSink;
use ezpulze_common::model::{DispatchStatus, MessageStatus};
use uuid::Uuid;

use crate::auth::{scope, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, PathId};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(progress))
        .routes(routes!(messages))
        .routes(routes!(rejections))
        .routes(routes!(cancel))
        .routes(routes!(resume))
        .routes(routes!(message))
}

/// A key may read dispatches (and the account's sending limits) with `broadcast:read` or
/// `broadcast:send`; 403 names `broadcast:read`.
pub(crate) fn can_read(p: &Principal) -> ApiResult<()> {
    if p.holds(scope::BroadcastSend::SCOPE) {
        return Ok(());
    }
    p.require(scope::BroadcastRead::SCOPE)
}

/// Progress counted from the messages themselves (the same source the usage counters follow).
pub async fn progress_of(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Value> {
    #[derive(sqlx::FromRow)]
    struct Progress {
        id: Uuid,
        broadcast_id: Option<Uuid>,
        status: DispatchStatus,
        total: i32,
        scheduled_at: Option<DateTime<Utc>>,
        created_at: DateTime<Utc>,
        queued: i64,
        deferred: i64,
        sent: i64,
        delivered: i64,
        read: i64,
        failed: i64,
        cancelled: i64,
        rejected: i64,
        rejected_by_code: Option<Value>,
        audience: Option<String>,
        audience_total: Option<i32>,
        audience_passed: Option<i32>,
    }
    let r: Progress = fetch_in_mode(state.db(), &PROGRESS_SQL, id, p).await?;
    let expanding = r.audience.as_deref() == Some("expanding");
    let status = r
        .status
        .shown_during_fanout(r.queued + r.deferred > 0, expanding);
    let mut v = json!({
        "id": r.id, "dispatch_id": r.id, "broadcast_id": r.broadcast_id, "status": status,
        "total": r.total, "queued": r.queued, "deferred": r.deferred, "sent": r.sent,
        "delivered": r.delivered,
        "read": r.read, "failed": r.failed, "cancelled": r.cancelled,
        "rejected": r.rejected, "rejected_by_code": r.rejected_by_code.unwrap_or_else(|| json!({})),
        "scheduled_at": r.scheduled_at, "created_at": r.created_at,
    });
    if let Some(state) = r.audience {
        v["audience"] = json!({
            "state": state, "audience_total": r.audience_total, "passed": r.audience_passed,
        });
        v["audience_total"] = json!(r.audience_total);
    }
    Ok(v)
}

/// A dispatch's progress: its row and its messages counted by state (`queued` = waiting,
/// except `deferred`: held by the portfolio's messaging limit, counted apart).
static PROGRESS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.id, d.broadcast_id, d.status, d.total, d.scheduled_at, d.created_at,
            count(*) FILTER (WHERE m.status IN ({waiting}) AND m.status <> 'deferred') AS queued,
            count(*) FILTER (WHERE m.status = 'deferred') AS deferred,
            count(*) FILTER (WHERE m.status IN ('sent','delivered','read')) AS sent,
            count(*) FILTER (WHERE m.status IN ('delivered','read')) AS delivered,
            count(*) FILTER (WHERE m.status = 'read') AS read,
            count(*) FILTER (WHERE m.status = 'failed') AS failed,
            count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
            (SELECT count(*) FROM dispatch_rejections r WHERE r.dispatch_id = d.id) AS rejected,
            (SELECT jsonb_object_agg(code, n) FROM (SELECT code, count(*) AS n
               FROM dispatch_rejections r WHERE r.dispatch_id = d.id GROUP BY code) x) AS rejected_by_code,
            (SELECT CASE WHEN bool_or(a.state = 'expanding') THEN 'expanding'
                         WHEN bool_or(a.state = 'cancelled') THEN 'cancelled' ELSE 'done' END
               FROM dispatch_audiences a WHERE a.dispatch_id = d.id HAVING count(*) > 0) AS audience,
            (SELECT sum(a.audience_total)::int FROM dispatch_audiences a WHERE a.dispatch_id = d.id) AS audience_total,
            (SELECT sum(a.passed)::int FROM dispatch_audiences a WHERE a.dispatch_id = d.id) AS audience_passed
         FROM dispatches d LEFT JOIN messages m ON m.dispatch_id = d.id
         WHERE d.id = $1 AND d.account_id = $2 AND {in_mode}
         GROUP BY d.id",
        in_mode = IN_MODE,
        waiting = MessageStatus::sql_list(&MessageStatus::WAITING)
    )
});

/// Dispatch progress
#[utoipa::path(get, path = "/api/v1/dispatches/{id}", operation_id = "getDispatch",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE)), ("x-accepted-scopes" = json!([scope::BroadcastRead::SCOPE, scope::BroadcastSend::SCOPE]))))]
async fn progress(
    State(state): State<AppState>,
    p: Principal,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    can_read(&p)?;
    Ok(Json(progress_of(&state, &p, id).await?))
}

#[derive(sqlx::FromRow, Serialize)]
pub struct MessageRow {
    id: Uuid,
    dispatch_id: Uuid,
    to: String,
    #[serde(rename = "ref")]
    reference: Option<String>,
    status: String,
    wamid: Option<String>,
    error_code: Option<i32>,
    error_title: Option<String>,
    /// Why a `deferred` message waits (`messaging_limit`); null otherwise.
    deferred_reason: Option<String>,
    /// When a `deferred` message is due again; null otherwise.
    deferred_until: Option<DateTime<Utc>>,
    attempts: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

const MESSAGE_COLUMNS: &str = "id, dispatch_id, to_phone AS to, ref AS reference, status, wamid,
    error_code, error_title,
    CASE WHEN status = 'deferred' THEN deferred_reason END AS deferred_reason,
    CASE WHEN status = 'deferred' THEN next_attempt_at END AS deferred_until,
    attempts, created_at, updated_at, sent_at, delivered_at, read_at, failed_at";

/// The dispatch `d` is of a mode the caller sees (`$3`: [`Principal::dispatch_mode`]): a
/// `sk_test_` key reads and changes only test dispatches, a live key only live ones, and
/// another mode's dispatch answers 404 as another account's does.
const IN_MODE: &str = "($3::bool IS NULL OR d.test_mode = $3)";

/// [`super::owned::fetch`] with the caller's mode bound as `$3`.
async fn fetch_in_mode<'e, T>(
    db: impl sqlx::PgExecutor<'e>,
    sql: &str,
    id: Uuid,
    p: &Principal,
) -> ApiResult<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .bind(id)
        .bind(p.account_id())
        .bind(p.dispatch_mode())
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound)
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl PageQuery {
    /// The page size (1..=1000, default 100) and the cursor, parsed as `C` (`None` for the
    /// first page).
    fn parts<C: std::str::FromStr>(&self) -> ApiResult<(i64, Option<C>)> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::field("limit", "must be between 1 and 1000"));
        }
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                c.parse()
                    .map_err(|_| ApiError::field("cursor", "not a cursor from this API"))?,
            ),
        };
        Ok((limit, cursor))
    }
}

/// 404 unless `id` is a dispatch of the caller's account and mode.
async fn ensure_dispatch(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<()> {
    let _: (Uuid,) = fetch_in_mode(
        state.db(),
        &format!(
            "SELECT d.id FROM dispatches d WHERE d.id = $1 AND d.account_id = $2 AND {IN_MODE}"
        ),
        id,
        p,
    )
    .await?;
    Ok(())
}

/// A dispatch's messages
#[utoipa::path(get, path = "/api/v1/dispatches/{id}/messages", operation_id = "listDispatchMessages",
    params(("id" = Uuid, Path), PageQuery),
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE)), ("x-accepted-scopes" = json!([scope::BroadcastRead::SCOPE, scope::BroadcastSend::SCOPE]))))]
async fn messages(
    State(state): State<AppState>,
    p: Principal,
    PathId(id): PathId,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    can_read(&p)?;
    let (limit, after) = q.parts::<Uuid>()?;
    let after = after.unwrap_or(Uuid::nil());
    ensure_dispatch(&state, &p, id).await?;
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE dispatch_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(state.db())
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(json!({ "items": rows, "next_cursor": next })))
}

#[derive(sqlx::FromRow, Serialize)]
struct RejectionRow {
    /// The request index (recipient lists), or an increasing position (audiences).
    ordinal: i64,
    contact_id: Option<Uuid>,
    phone: Option<String>,
    code: String,
    message: String,
}

/// A dispatch's rejected recipients
///
/// Recipients the dispatch did not queue, in order: suppressed phones, audience contacts whose
/// variables could not be filled, and a recipient list's rejections. Cursor pagination.
#[utoipa::path(get, path = "/api/v1/dispatches/{id}/rejections", operation_id = "listDispatchRejections",
    params(("id" = Uuid, Path), PageQuery),
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE)), ("x-accepted-scopes" = json!([scope::BroadcastRead::SCOPE, scope::BroadcastSend::SCOPE]))))]
async fn rejections(
    State(state): State<AppState>,
    p: Principal,
    PathId(id): PathId,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    can_read(&p)?;
    let (limit, after) = q.parts::<u64>()?;
    let after = after.map_or(-1, |c| i64::try_from(c).unwrap_or(i64::MAX));
    ensure_dispatch(&state, &p, id).await?;
    let rows: Vec<RejectionRow> = sqlx::query_as(
        "SELECT ordinal, contact_id, phone, code, message FROM dispatch_rejections
          WHERE dispatch_id = $1 AND ordinal > $2 ORDER BY ordinal LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(state.db())
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.ordinal.to_string()))
        .flatten();
    Ok(Json(json!({ "items": rows, "next_cursor": next })))
}

/// Read a message
#[utoipa::path(get, path = "/api/v1/messages/{id}", operation_id = "getMessage",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE)), ("x-accepted-scopes" = json!([scope::BroadcastRead::SCOPE, scope::BroadcastSend::SCOPE]))))]
async fn message(
    State(state): State<AppState>,
    p: Principal,
    PathId(id): PathId,
) -> ApiResult<Json<MessageRow>> {
    can_read(&p)?;
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 AND m.account_id = $2
           AND EXISTS (SELECT 1 FROM dispatches d WHERE d.id = m.dispatch_id AND {IN_MODE})"
    );
    fetch_in_mode(state.db(), &sql, id, &p).await.map(Json)
}

/// Cancel a dispatch
///
/// Cancels what has not been handed to a worker yet (scheduled, queued and deferred
/// messages); messages already sending or sent go on.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/cancel", operation_id = "cancelDispatch",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::BroadcastSend::SCOPE))))]
async fn cancel(
    State(state): State<AppState>,
    p: Principal,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let (mut tx, status) = begin_change(&state, &p, id).await?;
    if matches!(
        status,
        DispatchStatus::Completed | DispatchStatus::Cancelled
    ) {
        return Err(ApiError::Conflict(format!(
            "the dispatch is already {status}"
        )));
    }
    sqlx::query("UPDATE messages SET status = 'cancelled', deferred_reason = NULL, updated_at = now() WHERE dispatch_id = $1 AND status IN ('scheduled', 'queued', 'deferred')")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    set_status(&mut tx, id, DispatchStatus::Cancelled).await?;
    let lane: Option<String> =
        sqlx::query_scalar("SELECT phone_number_id FROM dispatches WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    // Its jobs leave the lane now (best effort): a job left behind finds its row cancelled
    // and is dropped by the worker that reads it.
    let lane = lane.unwrap_or_else(|| ezpulze_runtime::send_lanes::NO_NUMBER_LANE.to_owned());
    match state.send_lanes().purge(&lane, id).await {
        Ok(n) => metrics::counter!("ezpulze_lane_jobs_purged_total").increment(n),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), dispatch_id = %id, "purging a cancelled dispatch's lane failed; workers drop its jobs as they meet them");
        }
    }
    Ok(Json(progress_of(&state, &p, id).await?))
}

/// Resume a paused dispatch
///
/// `POST /dispatches/{id}/resume`: a dispatch a worker paused (a halt: token, account or
/// template problem, now fixed) goes out again, with a `dispatch.resumed` event. It is set back
/// to `sending` and its `queued` and `deferred` messages get their jobs at once (a deferred
/// one is checked against the messaging limit again) (a duplicate of a job still queued is
/// harmless: a row is claimed `queued -> sending` once). 409 unless the dispatch is paused.
#[utoipa::path(post, path = "/api/v1/dispatches/{id}/resume", operation_id = "resumeDispatch",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::BroadcastSend::SCOPE))))]
async fn resume(
    State(state): State<AppState>,
    p: Principal,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let (mut tx, status) = begin_change(&state, &p, id).await?;
    if status != DispatchStatus::Paused {
        return Err(ApiError::Conflict(format!(
            "only a paused dispatch can be resumed; this one is {status}"
        )));
    }
    set_status(&mut tx, id, DispatchStatus::Sending).await?;
    // Their clock restarts, so the outbox sweep does not push them a second time right away.
    let queued: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE messages SET updated_at = now(), next_attempt_at = NULL
          WHERE dispatch_id = $1 AND status IN ('queued', 'deferred') RETURNING id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let (created,): (Option<Vec<i32>>,) = sqlx::query_as(&RESUMED_EVENT_SQL)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    ezpulze_common::hooks::record_created(&created.unwrap_or_default());
    let jobs: Vec<ezpulze_common::jobs::SendJob> = queued
        .into_iter()
        .map(|message_id| ezpulze_common::jobs::SendJob {
            message_id,
            dispatch_id: id,
            account_id: p.account_id(),
        })
        .collect();
    if let Err(e) = state.push_send(&jobs).await {
        // The rows are queued in Postgres: the outbox sweep pushes them after its timeout.
        tracing::warn!(error = %e, dispatch_id = %id, "pushing the jobs of a resumed dispatch failed; the outbox sweep will");
    }
    metrics::counter!("ezpulze_dispatches_resumed_total").increment(1);
    Ok(Json(progress_of(&state, &p, id).await?))
}

/// The `dispatch.resumed` event of a resumed dispatch, for the endpoints that want it.
static RESUMED_EVENT_SQL: LazyLock<String> =
    LazyLock::new(|| ezpulze_common::hooks::dispatch_event_sql("dispatch.resumed"));

/// A change of one of the caller's dispatches (needs `broadcast:send`): the transaction, with
/// the dispatch's row locked, and its status as shown.
async fn begin_change(
    state: &AppState,
    p: &Principal,
    id: Uuid,
) -> ApiResult<(sqlx::Transaction<'static, sqlx::Postgres>, DispatchStatus)> {
    p.require("broadcast:send")?;
    let mut tx = state.db().begin().await?;
    let status = locked_status(&mut tx, p, id).await?;
    Ok((tx, status))
}

async fn set_status(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    status: DispatchStatus,
) -> ApiResult<()> {
    sqlx::query("UPDATE dispatches SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The dispatch's status as `GET /dispatches/{id}` shows it (`completed` once nothing of it is
/// waiting), its row locked for the caller's change; 404 for another account's dispatch.
async fn locked_status(
    tx: &mut sqlx::PgConnection,
    p: &Principal,
    id: Uuid,
) -> ApiResult<DispatchStatus> {
    let (status, waiting, expanding): (DispatchStatus, bool, bool) =
        fetch_in_mode(&mut *tx, &LOCKED_STATUS_SQL, id, p).await?;
    Ok(status.shown_during_fanout(waiting, expanding))
}

static LOCKED_STATUS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT d.status, EXISTS (SELECT 1 FROM messages m WHERE m.dispatch_id = d.id
                    AND m.status IN ({waiting})),
                EXISTS (SELECT 1 FROM dispatch_audiences a WHERE a.dispatch_id = d.id
                    AND a.state = 'expanding')
           FROM dispatches d WHERE d.id = $1 AND d.account_id = $2 AND {in_mode} FOR UPDATE OF d",
        waiting = MessageStatus::sql_list(&MessageStatus::WAITING),
        in_mode = IN_MODE,
    )
});
