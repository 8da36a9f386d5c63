//! `/api/v1/leads`: leads linked to a contact of the same account (by `contact_id`, or by an
//! inline `phone` that finds or creates the contact), with status, value, source, assignee.
//! Scopes: `leads:create`, `leads:read` (one), `leads:read_all` (list), `leads:update`,
//! `leads:assign` (also required to set `assignee` on create or PATCH), `leads:delete`.
//!
//! Choices where the contract is silent:
//! * `status` is one of new|contacted|qualified|won|lost (default new); `value_cents` is the
//!   amount in minor units (integer >= 0) and needs a `currency` (ISO 4217, upper-cased).
//! * Create takes `contact_id` (a contact of the same account, else 422) or `phone` (finds
//!   the contact, or creates it: creating one needs `contacts:create` as well), never both.
//! * `contact_phone` is shown only to callers holding `contacts:read` (null otherwise), and
//!   the `phone` filter needs it too: a leads-only key learns no phone numbers.
//! * `POST /leads/{id}/assign {"assignee": "..."|null}` (null unassigns) answers the lead.
//! * The list is newest first with the contacts list's paging; filters `status`,
//!   `assignee`, `source`, `contact_id`, `phone` (the contact's) and `q` (title or notes).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::contacts::fields::{self, Errors, StoredJson};
use super::contacts::find_or_create_by_phone;
use super::owned;
use crate::auth::{scope, Authorized, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson, ApiQuery, PathId};
use crate::state::AppState;

pub const STATUSES: &[&str] = &["new", "contacted", "qualified", "won", "lost"];
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_SOURCE_CHARS: usize = 100;
pub const MAX_ASSIGNEE_CHARS: usize = 200;
pub const MAX_NOTES_CHARS: usize = 5000;
/// Largest value in minor units (10^15 cents = 10 trillion in major units).
pub const MAX_VALUE_CENTS: i64 = 1_000_000_000_000_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, patch, delete))
        .routes(routes!(assign))
}

/// The lead object of the API.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Lead {
    pub id: Uuid,
    pub contact_id: Uuid,
    /// The linked contact's phone (E.164), for convenience; null unless the caller holds
    /// `contacts:read`.
    pub contact_phone: Option<String>,
    pub title: String,
    pub status: String,
    pub value_cents: Option<i64>,
    pub currency: Option<String>,
    pub source: Option<String>,
    pub assignee: Option<String>,
    pub notes: Option<String>,
    pub attributes: StoredJson,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The lead columns from a row set `l` joined with its contact `c`.
const SELECT: &str = "SELECT l.id, l.contact_id, c.phone AS contact_phone, l.title, l.status,
    l.value_cents, l.currency, l.source, l.assignee, l.notes, l.attributes, l.created_at,
    l.updated_at";
const JOIN: &str = " JOIN contacts c ON c.account_id = l.account_id AND c.id = l.contact_id";

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateLead {
    contact_id: Option<Uuid>,
    phone: Option<String>,
    title: Option<String>,
    status: Option<String>,
    value_cents: Option<i64>,
    currency: Option<String>,
    source: Option<String>,
    assignee: Option<String>,
    notes: Option<String>,
    attributes: Option<Map<String, Value>>,
}

/// PATCH body: absent = unchanged; `null` clears an optional field.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchLead {
    #[serde(deserialize_with = "double_option")]
    contact_id: Option<Option<Uuid>>,
    #[serde(deserialize_with = "double_option")]
    title: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    status: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    value_cents: Option<Option<i64>>,
    #[serde(deserialize_with = "double_option")]
    currency: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    source: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    assignee: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    notes: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    attributes: Option<Option<Map<String, Value>>>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssignLead {
    #[serde(deserialize_with = "double_option")]
    assignee: Option<Option<String>>,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    #[param(schema_with = status_schema)]
    status: Option<String>,
    assignee: Option<String>,
    source: Option<String>,
    contact_id: Option<Uuid>,
    /// The contact's phone.
    phone: Option<String>,
    /// Substring of title or notes.
    #[param(max_length = 100)]
    q: Option<String>,
}

/// The documented values of the list's `status` filter.
fn status_schema() -> utoipa::openapi::Object {
    crate::routes::openapi::string_enum(STATUSES, None)
}

fn status(raw: &str, errors: &mut Errors) -> Option<String> {
    let s = raw.trim();
    if STATUSES.contains(&s) {
        Some(s.to_string())
    } else {
        errors.push("status", format!("must be one of {}", STATUSES.join(", ")));
        None
    }
}

fn value(raw: i64, errors: &mut Errors) -> Option<i64> {
    if (0..=MAX_VALUE_CENTS).contains(&raw) {
        Some(raw)
    } else {
        errors.push(
            "value_cents",
            format!("must be an integer amount in minor units between 0 and {MAX_VALUE_CENTS}"),
        );
        None
    }
}

fn currency(raw: &str, errors: &mut Errors) -> Option<String> {
    let c = raw.trim().to_ascii_uppercase();
    if super::currency::is_iso4217(&c) {
        Some(c)
    } else {
        errors.push("currency", "must be an ISO 4217 currency code such as USD");
        None
    }
}

impl Lead {
    /// The lead as `p` may see it: without the contact's phone unless `p` reads contacts.
    fn shown_to(mut self, p: &Principal) -> Lead {
        if !p.holds(scope::ContactsRead::SCOPE) {
            self.contact_phone = None;
        }
        self
    }
}

fn map_write_error(e: sqlx::Error) -> ApiError {
    match fields::violated_constraint(&e) {
        Some("leads_contact_fkey") => {
            ApiError::field("contact_id", "no contact with this id in this account")
        }
        Some("leads_value_currency") => {
            ApiError::field("currency", "is required when value_cents is set")
        }
        _ => e.into(),
    }
}

/// Create a lead
#[utoipa::path(post, path = "/api/v1/leads", operation_id = "createLead",
    extensions(("x-required-scope" = json!(scope::LeadsCreate::SCOPE))))]
pub async fn create(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::LeadsCreate>,
    ApiJson(body): ApiJson<CreateLead>,
) -> ApiResult<(StatusCode, Json<Lead>)> {
    let mut errors = Errors::default();
    let phone = match (body.contact_id, body.phone.as_deref()) {
        (Some(_), Some(_)) => {
            errors.push("phone", "give either contact_id or phone, not both");
            None
        }
        (None, None) => {
            errors.push("contact_id", "contact_id or phone is required");
            None
        }
        (Some(_), None) => None,
        (None, Some(p)) => fields::phone("phone", p, &mut errors),
    };
    let title = fields::required_text("title", body.title.as_deref(), MAX_TITLE_CHARS, &mut errors);
    let status = match body.status.as_deref() {
        None => Some("new".to_string()),
        Some(s) => status(s, &mut errors),
    };
    let value_cents = body.value_cents.and_then(|v| value(v, &mut errors));
    let currency = body
        .currency
        .as_deref()
        .and_then(|c| currency(c, &mut errors));
    if value_cents.is_some() && currency.is_none() && body.currency.is_none() {
        errors.push("currency", "is required when value_cents is set");
    }
    let source = fields::optional_text(
        "source",
        body.source.as_deref(),
        MAX_SOURCE_CHARS,
        &mut errors,
    );
    let assignee = fields::optional_text(
        "assignee",
        body.assignee.as_deref(),
        MAX_ASSIGNEE_CHARS,
        &mut errors,
    );
    let notes = fields::optional_text("notes", body.notes.as_deref(), MAX_NOTES_CHARS, &mut errors);
    let attributes = fields::attributes(
        "attributes",
        body.attributes.unwrap_or_default(),
        &mut errors,
    );
    errors.finish()?;
    if assignee.is_some() {
        principal.require(scope::LeadsAssign::SCOPE)?;
    }
    let account = principal.account_id();
    let mut tx = state.db().begin().await?;
    let contact_id = match (body.contact_id, phone) {
        (Some(id), _) => id,
        (None, Some(p)) => {
            let (id, created) = find_or_create_by_phone(&mut tx, account, &p).await?;
            // Making a contact is a contacts write: the transaction is dropped unless the
            // caller may make one.
            if created {
                principal.require(scope::ContactsCreate::SCOPE)?;
            }
            id
        }
        (None, None) => {
            return Err(ApiError::field(
                "contact_id",
                "contact_id or phone is required",
            ))
        }
    };
    let lead: Lead = sqlx::query_as(&format!(
        "WITH l AS (
            INSERT INTO leads (id, account_id, contact_id, title, status, value_cents, currency,
                               source, assignee, notes, attributes)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            RETURNING *)
         {SELECT} FROM l{JOIN}"
    ))
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(contact_id)
    .bind(&title)
    .bind(&status)
    .bind(value_cents)
    .bind(&currency)
    .bind(&source)
    .bind(&assignee)
    .bind(&notes)
    .bind(&attributes)
    .fetch_one(&mut *tx)
    .await
    .map_err(map_write_error)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(lead.shown_to(&principal))))
}

async fn fetch(state: &AppState, p: &Principal, id: Uuid) -> ApiResult<Lead> {
    let sql = format!("{SELECT} FROM leads l{JOIN} WHERE l.id = $1 AND l.account_id = $2");
    let lead: Lead = owned::fetch(state.db(), &sql, id, p.account_id()).await?;
    Ok(lead.shown_to(p))
}

/// Read a lead
#[utoipa::path(get, path = "/api/v1/leads/{id}", operation_id = "getLead",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::LeadsRead::SCOPE))))]
pub async fn read(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::LeadsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<Lead>> {
    fetch(&state, &principal, id).await.map(Json)
}

/// List and search leads
#[utoipa::path(get, path = "/api/v1/leads", operation_id = "listLeads",
    params(ListQuery),
    extensions(("x-required-scope" = json!(scope::LeadsReadAll::SCOPE))))]
pub async fn list(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::LeadsReadAll>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<fields::Page<Lead>>> {
    let mut errors = Errors::default();
    let paging = fields::paging(q.limit, q.cursor.as_deref(), &mut errors);
    let status = q.status.as_deref().and_then(|s| status(s, &mut errors));
    let phone = q
        .phone
        .as_deref()
        .and_then(|p| fields::phone("phone", p, &mut errors));
    let assignee = fields::optional_text(
        "assignee",
        q.assignee.as_deref(),
        MAX_ASSIGNEE_CHARS,
        &mut errors,
    );
    let source =
        fields::optional_text("source", q.source.as_deref(), MAX_SOURCE_CHARS, &mut errors);
    let search = fields::query_text(q.q.as_deref(), &mut errors);
    errors.finish()?;
    if phone.is_some() {
        principal.require(scope::ContactsRead::SCOPE)?;
    }

    let select = format!("{SELECT} FROM leads l{JOIN}");
    let page = owned::page(
        state.db(),
        &select,
        "l.",
        principal.account_id(),
        paging,
        |sql| {
            if let Some(s) = status {
                sql.push(" AND l.status = ").push_bind(s);
            }
            if let Some(a) = assignee {
                sql.push(" AND l.assignee = ").push_bind(a);
            }
            if let Some(s) = source {
                sql.push(" AND l.source = ").push_bind(s);
            }
            if let Some(c) = q.contact_id {
                sql.push(" AND l.contact_id = ").push_bind(c);
            }
            if let Some(p) = phone {
                sql.push(" AND c.phone = ").push_bind(p);
            }
            if let Some(s) = search {
                let pattern = fields::like_pattern(&s);
                sql.push(" AND (l.title ILIKE ").push_bind(pattern.clone());
                sql.push(" OR l.notes ILIKE ").push_bind(pattern).push(")");
            }
        },
        |l: &Lead| l.id,
    )
    .await?;
    Ok(Json(fields::Page {
        items: page
            .items
            .into_iter()
            .map(|l| l.shown_to(&principal))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Runs `UPDATE leads SET updated_at = now(), <sets> WHERE id AND account` and returns the
/// lead with its contact, or 404.
async fn update(
    state: &AppState,
    p: &Principal,
    id: Uuid,
    sets: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
) -> ApiResult<Lead> {
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new("WITH l AS (UPDATE leads SET updated_at = now()");
    sets(&mut sql);
    owned::push_where(&mut sql, id, p.account_id());
    sql.push(format!(" RETURNING *) {SELECT} FROM l{JOIN}"));
    let lead: Option<Lead> = sql
        .build_query_as()
        .fetch_optional(state.db())
        .await
        .map_err(map_write_error)?;
    lead.map(|l| l.shown_to(p)).ok_or(ApiError::NotFound)
}

/// Edit a lead
#[utoipa::path(patch, path = "/api/v1/leads/{id}", operation_id = "updateLead",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::LeadsUpdate::SCOPE))))]
pub async fn patch(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::LeadsUpdate>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<PatchLead>,
) -> ApiResult<Json<Lead>> {
    let mut errors = Errors::default();
    let mut sets: Vec<(&'static str, Bind)> = Vec::new();
    match body.contact_id {
        None => {}
        Some(None) => errors.push("contact_id", "cannot be null: a lead belongs to a contact"),
        Some(Some(c)) => sets.push(("contact_id", Bind::Uuid(c))),
    }
    match &body.title {
        None => {}
        Some(None) => errors.push("title", "cannot be null"),
        Some(Some(t)) => {
            if let Some(t) = fields::required_text("title", Some(t), MAX_TITLE_CHARS, &mut errors) {
                sets.push(("title", Bind::Text(Some(t))));
            }
        }
    }
    match &body.status {
        None => {}
        Some(None) => errors.push(
            "status",
            format!("cannot be null; one of {}", STATUSES.join(", ")),
        ),
        Some(Some(s)) => {
            if let Some(s) = status(s, &mut errors) {
                sets.push(("status", Bind::Text(Some(s))));
            }
        }
    }
    if let Some(v) = body.value_cents {
        sets.push((
            "value_cents",
            Bind::Int(v.and_then(|v| value(v, &mut errors))),
        ));
    }
    if let Some(c) = &body.currency {
        sets.push((
            "currency",
            Bind::Text(c.as_deref().and_then(|c| currency(c, &mut errors))),
        ));
    }
    for (field, value, max) in [
        ("source", &body.source, MAX_SOURCE_CHARS),
        ("notes", &body.notes, MAX_NOTES_CHARS),
        ("assignee", &body.assignee, MAX_ASSIGNEE_CHARS),
    ] {
        if let Some(v) = value {
            sets.push((
                field,
                Bind::Text(fields::optional_text(field, v.as_deref(), max, &mut errors)),
            ));
        }
    }
    if let Some(a) = body.attributes {
        sets.push((
            "attributes",
            Bind::Json(fields::attributes(
                "attributes",
                a.unwrap_or_default(),
                &mut errors,
            )),
        ));
    }
    errors.finish()?;
    if body.assignee.is_some() {
        principal.require(scope::LeadsAssign::SCOPE)?;
    }
    if sets.is_empty() {
        // Nothing to change: the lead as it is (updated_at untouched).
        return fetch(&state, &principal, id).await.map(Json);
    }
    let lead = update(&state, &principal, id, |sql| {
        for (column, value) in sets {
            sql.push(format!(", {column} = "));
            match value {
                Bind::Uuid(v) => sql.push_bind(v),
                Bind::Text(v) => sql.push_bind(v),
                Bind::Int(v) => sql.push_bind(v),
                Bind::Json(v) => sql.push_bind(v),
            };
        }
    })
    .await?;
    Ok(Json(lead))
}

/// A value of a PATCH column (columns are fixed names from this file, never input).
enum Bind {
    Uuid(Uuid),
    Text(Option<String>),
    Int(Option<i64>),
    Json(Value),
}

/// Assign or unassign a lead
#[utoipa::path(post, path = "/api/v1/leads/{id}/assign", operation_id = "assignLead",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::LeadsAssign::SCOPE))))]
pub async fn assign(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::LeadsAssign>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<AssignLead>,
) -> ApiResult<Json<Lead>> {
    let mut errors = Errors::default();
    let assignee = match &body.assignee {
        None => {
            errors.push("assignee", "is required (null unassigns)");
            None
        }
        Some(None) => None,
        Some(Some(a)) => {
            let v = fields::optional_text("assignee", Some(a), MAX_ASSIGNEE_CHARS, &mut errors);
            if v.is_none() && errors.is_empty() {
                errors.push("assignee", "must not be empty (null unassigns)");
            }
            v
        }
    };
    errors.finish()?;
    let lead = update(&state, &principal, id, |sql| {
        sql.push(", assignee = ").push_bind(assignee);
    })
    .await?;
    Ok(Json(lead))
}

/// Delete a lead
#[utoipa::path(delete, path = "/api/v1/leads/{id}", operation_id = "deleteLead",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::LeadsDelete::SCOPE))))]
pub async fn delete(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::LeadsDelete>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    let account = principal.account_id();
    owned::delete(state.db(), "leads", id, account, ApiError::from).await
}
