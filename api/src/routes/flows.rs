//! Chatbot flows: a minimal flow record (a name and its first message: a template and default
//! variables) and its webhook trigger `POST /api/v1/chatbot-flows/{id}/webhook {"to",
//! "variables"?}` (`chatbot_flows:webhook`), which finds or creates the contact and queues the
//! flow's first message to it (a one-message dispatch through the Broadcast API's send path:
//! message row + job, outbox-safe). Flows are managed on `/admin/v1/chatbot-flows` (account
//! admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder, Transaction};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::contacts::fields::{self, Errors};
use super::contacts::find_or_create_by_phone;
use super::owned;
use crate::auth::{scope, AdminAccount, Authorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson, ApiQuery, PathId};
use crate::routes::templates::details;
use crate::state::AppState;
use ezpulze_common::consent;
use ezpulze_common::dispatch::{self, NewDispatch, NewMessages};
use ezpulze_payload::{CompiledTemplate, PhoneE164, Template, Variables};

pub const MAX_NAME_CHARS: usize = 200;

/// Public routes (under `/api/v1`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(webhook))
}

/// Admin routes (under `/admin/v1`).
pub fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(admin_list, admin_create))
        .routes(routes!(admin_read, admin_patch, admin_delete))
}

/// The flow object.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Flow {
    pub id: Uuid,
    pub name: String,
    /// The template of the first message (null: the flow cannot be triggered yet).
    pub template_id: Option<Uuid>,
    /// Default variables of the first message (the Broadcast API's per-recipient shape).
    pub variables: Value,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, template_id, variables, active, created_at, updated_at";

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateFlow {
    name: Option<String>,
    template_id: Option<Uuid>,
    variables: Option<Variables>,
    active: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchFlow {
    name: Option<String>,
    #[serde(deserialize_with = "double_option")]
    template_id: Option<Option<Uuid>>,
    #[serde(deserialize_with = "double_option")]
    variables: Option<Option<Variables>>,
    active: Option<bool>,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The webhook trigger's body.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trigger {
    to: Option<String>,
    variables: Option<Variables>,
}

/// The webhook trigger's answer (202).
#[derive(Debug, Serialize)]
pub struct Triggered {
    pub flow_id: Uuid,
    pub contact_id: Uuid,
    /// Whether the trigger created the contact.
    pub contact_created: bool,
    pub to: String,
    /// The one-message dispatch (`GET /api/v1/dispatches/{id}`).
    pub dispatch_id: Uuid,
    /// The message (`GET /api/v1/messages/{id}`).
    pub message_id: Uuid,
    pub status: &'static str,
}

fn stored_variables(v: Value) -> ApiResult<Variables> {
    serde_json::from_value(v)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("stored flow variables")))
}

/// The account's template `id`, compiled, with its status at Meta; None if there is no such
/// template.
async fn load_template(
    conn: &mut PgConnection,
    account: Uuid,
    id: Uuid,
) -> ApiResult<Option<(CompiledTemplate, String)>> {
    let row: Option<(Value, String)> = sqlx::query_as(
        "SELECT definition, status FROM templates WHERE id = $1 AND account_id = $2",
    )
    .bind(id)
    .bind(account)
    .fetch_optional(conn)
    .await?;
    let Some((def, status)) = row else {
        return Ok(None);
    };
    let template: Template = serde_json::from_value(def)
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("stored template")))?;
    CompiledTemplate::new(template)
        .map(|t| Some((t, status)))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored template no longer valid: {e:?}")))
}

/// On create/edit: the template exists in the account and the defaults fit it.
async fn check_first_message(
    state: &AppState,
    account: Uuid,
    template_id: Option<Uuid>,
    defaults: &Variables,
) -> ApiResult<()> {
    let Some(template_id) = template_id else {
        return Ok(());
    };
    let mut conn = state.db().acquire().await?;
    let (template, _status) = load_template(&mut conn, account, template_id)
        .await?
        .ok_or_else(|| ApiError::field("template_id", "no such template in this account"))?;
    template
        .check_defaults(defaults)
        .map_err(|e| details(e, "variables."))
}

fn variables_json(v: Option<Variables>) -> ApiResult<Value> {
    serde_json::to_value(v.unwrap_or_default()).map_err(|e| {
        ApiError::Internal(anyhow::Error::new(e).context("serialising flow variables"))
    })
}

/// Create a chatbot flow
#[utoipa::path(post, path = "/chatbot-flows", operation_id = "createFlow")]
pub async fn admin_create(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiJson(body): ApiJson<CreateFlow>,
) -> ApiResult<(StatusCode, Json<Flow>)> {
    let mut errors = Errors::default();
    let name = fields::required_text("name", body.name.as_deref(), MAX_NAME_CHARS, &mut errors);
    errors.finish()?;
    let defaults = body.variables.unwrap_or_default();
    check_first_message(&state, account, body.template_id, &defaults).await?;
    let variables = variables_json(Some(defaults))?;
    let flow: Flow = sqlx::query_as(&format!(
        "INSERT INTO chatbot_flows (id, account_id, name, template_id, variables, active)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(&name)
    .bind(body.template_id)
    .bind(&variables)
    .bind(body.active.unwrap_or(true))
    .fetch_one(state.db())
    .await?;
    Ok((StatusCode::CREATED, Json(flow)))
}

/// List chatbot flows
#[utoipa::path(
    get,
    path = "/chatbot-flows",
    operation_id = "listFlows",
    params(ListQuery)
)]
pub async fn admin_list(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<fields::Page<Flow>>> {
    let mut errors = Errors::default();
    let paging = fields::paging(q.limit, q.cursor.as_deref(), &mut errors);
    errors.finish()?;
    let select = format!("SELECT {COLUMNS} FROM chatbot_flows");
    let page = owned::page(
        state.db(),
        &select,
        "",
        account,
        paging,
        |_| {},
        |f: &Flow| f.id,
    );
    Ok(Json(page.await?))
}

async fn fetch(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<Flow> {
    owned::fetch(state.db(), &by_id(""), id, account).await
}

/// The SELECT of the account's flow `$2`/`$1`, ending with `tail` (` FOR UPDATE`: the row
/// locked for the caller's transaction).
fn by_id(tail: &str) -> String {
    format!("SELECT {COLUMNS} FROM chatbot_flows WHERE id = $1 AND account_id = $2{tail}")
}

/// Read a chatbot flow
#[utoipa::path(get, path = "/chatbot-flows/{id}", operation_id = "getFlow",
    params(("id" = Uuid, Path)))]
pub async fn admin_read(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<Flow>> {
    fetch(&state, account, id).await.map(Json)
}

/// Edit a chatbot flow
#[utoipa::path(patch, path = "/chatbot-flows/{id}", operation_id = "updateFlow",
    params(("id" = Uuid, Path)))]
pub async fn admin_patch(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
    ApiJson(body): ApiJson<PatchFlow>,
) -> ApiResult<Json<Flow>> {
    let mut errors = Errors::default();
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new("UPDATE chatbot_flows SET updated_at = now()");
    if let Some(n) = &body.name {
        let n = fields::required_text("name", Some(n), MAX_NAME_CHARS, &mut errors);
        sql.push(", name = ").push_bind(n);
    }
    errors.finish()?;
    if body.name.is_none()
        && body.template_id.is_none()
        && body.variables.is_none()
        && body.active.is_none()
    {
        return fetch(&state, account, id).await.map(Json);
    }
    // The template and its default variables are checked together, so a patch of one is
    // checked against the other under the row's lock (a concurrent patch of the other waits).
    let mut tx = state.db().begin().await?;
    if body.template_id.is_some() || body.variables.is_some() {
        let current: Flow = owned::fetch(&mut *tx, &by_id(" FOR UPDATE"), id, account).await?;
        let template_id = body.template_id.unwrap_or(current.template_id);
        let defaults = match &body.variables {
            Some(v) => v.clone().unwrap_or_default(),
            None => stored_variables(current.variables)?,
        };
        check_first_message(&state, account, template_id, &defaults).await?;
    }
    if let Some(t) = body.template_id {
        sql.push(", template_id = ").push_bind(t);
    }
    if let Some(v) = body.variables {
        sql.push(", variables = ").push_bind(variables_json(v)?);
    }
    if let Some(a) = body.active {
        sql.push(", active = ").push_bind(a);
    }
    owned::push_where(&mut sql, id, account);
    sql.push(format!(" RETURNING {COLUMNS}"));
    let flow: Option<Flow> = sql.build_query_as().fetch_optional(&mut *tx).await?;
    tx.commit().await?;
    flow.map(Json).ok_or(ApiError::NotFound)
}

/// Delete a chatbot flow
#[utoipa::path(delete, path = "/chatbot-flows/{id}", operation_id = "deleteFlow",
    params(("id" = Uuid, Path)))]
pub async fn admin_delete(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    owned::delete(state.db(), "chatbot_flows", id, account, ApiError::from).await
}

/// Start a chatbot flow for a contact
///
/// `POST /api/v1/chatbot-flows/{id}/webhook`: validates `to` (E.164) and `variables`, checks
/// the flow (this account's, active, with a first-message template), finds or creates the
/// contact, and queues the first message, all in one transaction: if queueing fails, no
/// contact is left behind.
#[utoipa::path(post, path = "/api/v1/chatbot-flows/{id}/webhook", operation_id = "triggerFlow",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::ChatbotFlowsWebhook::SCOPE))))]
pub async fn webhook(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ChatbotFlowsWebhook>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<Trigger>,
) -> ApiResult<(StatusCode, Json<Triggered>)> {
    let account_id = principal.account_id();
    let mut errors = Errors::default();
    let to = fields::required_phone("to", body.to.as_deref(), &mut errors);
    errors.finish()?;
    let Some(to) = to else {
        return Err(ApiError::field("to", "is required"));
    };
    let flow = fetch(&state, account_id, id).await?;
    if !flow.active {
        return Err(ApiError::Conflict("this chatbot flow is inactive".into()));
    }
    let Some(template_id) = flow.template_id else {
        return Err(ApiError::Conflict(
            "this chatbot flow has no first-message template".into(),
        ));
    };
    let defaults = stored_variables(flow.variables)?;

    let mut tx = state.db().begin().await?;
    let (contact_id, contact_created) =
        find_or_create_by_phone(&mut tx, account_id, to.as_str()).await?;
    let queued = queue_first_message(
        &state,
        tx,
        FirstMessage {
            account_id,
            key_id: principal.key_id(),
            test_mode: principal.test_mode(),
            flow_id: flow.id,
            template_id,
            defaults,
            variables: body.variables.unwrap_or_default(),
            contact_id,
            to: to.clone(),
        },
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Triggered {
            flow_id: flow.id,
            contact_id,
            contact_created,
            to: to.into_string(),
            dispatch_id: queued.dispatch_id,
            message_id: queued.message_id,
            status: "queued",
        }),
    ))
}

/// What queueing a flow's first message needs.
#[derive(Debug)]
pub struct FirstMessage {
    pub account_id: Uuid,
    /// The key that triggered it (None for an admin token). Flow messages are not Broadcast API
    /// sends, so they do not count in the key's usage stats.
    pub key_id: Option<Uuid>,
    /// The trigger came with a `sk_test_` key: the message goes to the test Graph API.
    pub test_mode: bool,
    pub flow_id: Uuid,
    /// The template to send (the flow's; not yet checked to exist).
    pub template_id: Uuid,
    /// The flow's default variables (already shape-checked).
    pub defaults: Variables,
    /// The trigger's variables, over the defaults slot by slot (already shape-checked).
    pub variables: Variables,
    pub contact_id: Uuid,
    pub to: PhoneE164,
}

/// A first message recorded and queued.
#[derive(Debug)]
pub struct QueuedFirstMessage {
    pub dispatch_id: Uuid,
    pub message_id: Uuid,
}

/// Records the flow's first message and pushes its job, committing `tx` (which holds the
/// contact's find-or-create) together with the dispatch and message rows: either all of it
/// is recorded or nothing is.
///
/// The message goes the Broadcast API's way, through `ezpulze_common::dispatch::create`: a
/// dispatch of one (no broadcast; flow messages do not count in a key's usage stats, and a
/// test key's trigger goes to the test Graph API) whose message payload is the expanded Graph
/// API body with the message id as `biz_opaque_callback_data`; then one job on the send queue.
pub async fn queue_first_message(
    state: &AppState,
    mut tx: Transaction<'static, Postgres>,
    msg: FirstMessage,
) -> ApiResult<QueuedFirstMessage> {
    let (template, status) = load_template(&mut tx, msg.account_id, msg.template_id)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict("this chatbot flow's template no longer exists".into())
        })?;
    let t = template.template();
    crate::routes::templates::require_approved(&t.name, &t.language, &status)?;
    let to = [msg.to.as_str().to_string()];
    if !consent::suppressed(
        &mut *tx,
        msg.account_id,
        &to,
        template.template().category.as_str(),
    )
    .await?
    .is_empty()
    {
        metrics::counter!("ezpulze_ingest_recipients_total", "result" => "suppressed").increment(1);
        return Err(ApiError::Refused {
            code: consent::SUPPRESSED,
            message: consent::SUPPRESSED_MESSAGE.into(),
        });
    }
    let message_id = Uuid::now_v7();
    let callback = message_id.simple().to_string();
    let payload = template
        .expand(&msg.defaults, &msg.variables, msg.to.as_str(), &callback)
        .map_err(|e| details(e, "variables."))?;
    let payload = String::from_utf8(payload.to_json_vec())
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("message payload")))?;

    let mut messages = NewMessages::with_capacity(1);
    messages.push(message_id, msg.to.into_string(), None, payload);
    let dispatch = NewDispatch {
        id: Uuid::now_v7(),
        account_id: msg.account_id,
        broadcast_id: None,
        template_id: Some(msg.template_id),
        key_id: msg.key_id,
        counts_in_usage: false,
        test_mode: msg.test_mode,
        scheduled_at: None,
        high: false,
        messages,
        rejections: Default::default(),
    };
    dispatch::create(tx, state, &dispatch, None)
        .await
        .map_err(|e| {
            ApiError::Internal(anyhow::Error::new(e).context("recording a flow's first message"))
        })?;
    metrics::counter!("ezpulze_flow_triggers_total").increment(1);
    let dispatch_id = dispatch.id;
    Ok(QueuedFirstMessage {
        dispatch_id,
        message_id,
    })
}
