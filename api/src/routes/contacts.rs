//! `/api/v1/contacts`: create, read one (`contacts:read`), list and search with cursor
//! pagination (`contacts:read_all`), edit, delete. Phones are stored in E.164; one contact per
//! phone per account (a duplicate is 409 `conflict`).
//!
//! Choices where the contract is silent:
//! * The list is newest first, `?limit=1..100` (default 25) and `?cursor=` (opaque, from
//!   `next_cursor`; null on the last page). Filters: `tag` (exact), `phone` (any accepted
//!   form, normalised), `q` (case-insensitive substring of name or e-mail; phone digits also
//!   match whatever the separators). Filters combine with AND.
//! * PATCH: an absent field is unchanged; `null` clears `name`/`email` and empties
//!   `attributes`/`tags`; `attributes` and `tags` are replaced, not merged.
//! * Blank optional strings are taken as null; tags are trimmed and de-duplicated.
//! * Deleting a contact deletes its leads.
//! * `attributes` (here and on leads) hold numbers between -1e308 and 1e308 only: Postgres
//!   answers jsonb numbers written out in full, and one nearer the float maximum does not read
//!   back (422 naming the number's path, before anything is written). Reads answer whatever a
//!   row holds, as stored.
//! * Every write of `attributes` (create, patch, CSV import) records its keys in
//!   `contact_attribute_keys` in the same statement (`ON CONFLICT DO NOTHING`): the names an
//!   audience's `variables_from` may use. The set never shrinks.

pub mod fields;
pub mod import;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::owned;
use crate::auth::{scope, Authorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson, ApiQuery, PathId};
use crate::state::AppState;
use fields::Errors;

pub const MAX_NAME_CHARS: usize = 200;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, patch, delete))
        .merge(import::routes())
}

/// The contact object of the API.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Contact {
    pub id: Uuid,
    pub phone: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub attributes: fields::StoredJson,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, phone, name, email, attributes, tags, created_at, updated_at";
const PHONE_KEY: &str = "contacts_account_phone_key";
/// The CTE that records the attribute keys of the contact written by CTE `c` (its account is
/// `$2`), in the statement that writes it.
const RECORD_KEYS: &str = "keys AS (
    INSERT INTO contact_attribute_keys (account_id, key)
    SELECT $2, jsonb_object_keys(c.attributes) FROM c
    ON CONFLICT DO NOTHING)";

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateContact {
    phone: Option<String>,
    name: Option<String>,
    email: Option<String>,
    attributes: Option<Map<String, Value>>,
    tags: Option<Vec<String>>,
}

/// PATCH body: an absent field is left as is; `null` clears `name`/`email`, empties
/// `attributes`/`tags`.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchContact {
    #[serde(deserialize_with = "double_option")]
    phone: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    name: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    email: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    attributes: Option<Option<Map<String, Value>>>,
    #[serde(deserialize_with = "double_option")]
    tags: Option<Option<Vec<String>>>,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Exact tag.
    #[param(max_length = 50)]
    tag: Option<String>,
    /// Any accepted form; normalised.
    phone: Option<String>,
    /// Case-insensitive substring of name or e-mail; phone digits match whatever the separators.
    #[param(max_length = 100)]
    q: Option<String>,
}

/// Create a contact
#[utoipa::path(post, path = "/api/v1/contacts", operation_id = "createContact",
    extensions(("x-required-scope" = json!(scope::ContactsCreate::SCOPE))))]
pub async fn create(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ContactsCreate>,
    ApiJson(body): ApiJson<CreateContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let mut errors = Errors::default();
    let phone = fields::required_phone("phone", body.phone.as_deref(), &mut errors)
        .map(|p| p.into_string());
    let name = fields::optional_text("name", body.name.as_deref(), MAX_NAME_CHARS, &mut errors);
    let email = fields::email("email", body.email.as_deref(), &mut errors);
    let attributes = fields::attributes(
        "attributes",
        body.attributes.unwrap_or_default(),
        &mut errors,
    );
    let tags = fields::tags(
        "tags",
        body.tags.as_deref().unwrap_or_default(),
        &mut errors,
    );
    errors.finish()?;
    let Some(phone) = phone else {
        return Err(ApiError::field("phone", "is required"));
    };
    let contact: Contact = sqlx::query_as(&format!(
        "WITH c AS (
             INSERT INTO contacts (id, account_id, phone, name, email, attributes, tags)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING {COLUMNS}
         ), {RECORD_KEYS}
         SELECT {COLUMNS} FROM c"
    ))
    .bind(Uuid::now_v7())
    .bind(principal.account_id())
    .bind(&phone)
    .bind(&name)
    .bind(&email)
    .bind(&attributes)
    .bind(&tags)
    .fetch_one(state.db())
    .await
    .map_err(map_write_error)?;
    Ok((StatusCode::CREATED, Json(contact)))
}

fn map_write_error(e: sqlx::Error) -> ApiError {
    if fields::violated_constraint(&e) == Some(PHONE_KEY) {
        fields::duplicate_phone()
    } else {
        e.into()
    }
}

async fn fetch(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<Contact> {
    let sql = format!("SELECT {COLUMNS} FROM contacts WHERE id = $1 AND account_id = $2");
    owned::fetch(state.db(), &sql, id, account).await
}

/// Read a contact
#[utoipa::path(get, path = "/api/v1/contacts/{id}", operation_id = "getContact",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::ContactsRead::SCOPE))))]
pub async fn read(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ContactsRead>,
    PathId(id): PathId,
) -> ApiResult<Json<Contact>> {
    fetch(&state, principal.account_id(), id).await.map(Json)
}

/// List and search contacts
#[utoipa::path(get, path = "/api/v1/contacts", operation_id = "listContacts",
    params(ListQuery),
    extensions(("x-required-scope" = json!(scope::ContactsReadAll::SCOPE))))]
pub async fn list(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ContactsReadAll>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<fields::Page<Contact>>> {
    let mut errors = Errors::default();
    let paging = fields::paging(q.limit, q.cursor.as_deref(), &mut errors);
    let phone = q
        .phone
        .as_deref()
        .and_then(|p| fields::phone("phone", p, &mut errors));
    let tag = match q.tag.as_deref().map(str::trim) {
        Some("") => {
            errors.push("tag", "must not be empty");
            None
        }
        Some(t) if t.chars().count() > fields::MAX_TAG_CHARS => {
            errors.push(
                "tag",
                format!("at most {} characters", fields::MAX_TAG_CHARS),
            );
            None
        }
        other => other.map(str::to_string),
    };
    let search = fields::query_text(q.q.as_deref(), &mut errors);
    errors.finish()?;

    let select = format!("SELECT {COLUMNS} FROM contacts");
    let page = owned::page(
        state.db(),
        &select,
        "",
        principal.account_id(),
        paging,
        |sql| {
            if let Some(p) = phone {
                sql.push(" AND phone = ").push_bind(p);
            }
            if let Some(t) = tag {
                sql.push(" AND tags @> ARRAY[")
                    .push_bind(t)
                    .push("]::text[]");
            }
            if let Some(s) = search {
                push_search(sql, &s);
            }
        },
        |c: &Contact| c.id,
    )
    .await?;
    Ok(Json(page))
}

/// `q`: case-insensitive substring of name or e-mail; phone digits also match when `q` looks
/// like (part of) a phone number, whatever its separators.
fn push_search(sql: &mut QueryBuilder<Postgres>, q: &str) {
    let pattern = fields::like_pattern(q);
    sql.push(" AND (name ILIKE ").push_bind(pattern.clone());
    sql.push(" OR email ILIKE ").push_bind(pattern.clone());
    let phone_like = q
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()/".contains(c));
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    if phone_like && !digits.is_empty() {
        sql.push(" OR phone LIKE ")
            .push_bind(fields::like_pattern(&digits));
    } else {
        sql.push(" OR phone LIKE ").push_bind(pattern);
    }
    sql.push(")");
}

/// Edit a contact
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", operation_id = "updateContact",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::ContactsUpdate::SCOPE))))]
pub async fn patch(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ContactsUpdate>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<PatchContact>,
) -> ApiResult<Json<Contact>> {
    let mut errors = Errors::default();
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new("WITH c AS (UPDATE contacts SET updated_at = now()");
    match &body.phone {
        None => {}
        Some(None) => errors.push("phone", "cannot be null: every contact has a phone number"),
        Some(Some(p)) => {
            if let Some(p) = fields::phone("phone", p, &mut errors) {
                sql.push(", phone = ").push_bind(p);
            }
        }
    }
    if let Some(name) = &body.name {
        let v = fields::optional_text("name", name.as_deref(), MAX_NAME_CHARS, &mut errors);
        sql.push(", name = ").push_bind(v);
    }
    if let Some(email) = &body.email {
        let v = fields::email("email", email.as_deref(), &mut errors);
        sql.push(", email = ").push_bind(v);
    }
    let attributes_given = body.attributes.is_some();
    if let Some(attrs) = body.attributes {
        let v = fields::attributes("attributes", attrs.unwrap_or_default(), &mut errors);
        sql.push(", attributes = ").push_bind(v);
    }
    if let Some(tags) = &body.tags {
        let v = fields::tags("tags", tags.as_deref().unwrap_or_default(), &mut errors);
        sql.push(", tags = ").push_bind(v);
    }
    errors.finish()?;
    let changed = body.phone.is_some()
        || body.name.is_some()
        || body.email.is_some()
        || body.tags.is_some()
        || attributes_given;
    if !changed {
        // Nothing to change: the contact as it is (updated_at untouched).
        return fetch(&state, principal.account_id(), id).await.map(Json);
    }
    owned::push_where(&mut sql, id, principal.account_id());
    // The attribute keys, recorded in the same statement.
    sql.push(format!(
        " RETURNING {COLUMNS}, account_id), keys AS (
             INSERT INTO contact_attribute_keys (account_id, key)
             SELECT c.account_id, jsonb_object_keys(c.attributes) FROM c
             ON CONFLICT DO NOTHING)
         SELECT {COLUMNS} FROM c"
    ));
    let contact: Option<Contact> = sql
        .build_query_as()
        .fetch_optional(state.db())
        .await
        .map_err(map_write_error)?;
    contact.map(Json).ok_or(ApiError::NotFound)
}

/// Delete a contact (and its leads)
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", operation_id = "deleteContact",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::ContactsDelete::SCOPE))))]
pub async fn delete(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ContactsDelete>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    // The contact's leads go with it (foreign key ON DELETE CASCADE).
    let account = principal.account_id();
    owned::delete(state.db(), "contacts", id, account, ApiError::from).await
}

/// The id of the account's contact with this (E.164) phone, created if there is none; and
/// whether it was created. Safe under concurrency: the insert is one statement on the unique
/// key, so concurrent callers with one new number end up with one contact.
pub async fn find_or_create_by_phone(
    conn: &mut PgConnection,
    account_id: Uuid,
    phone: &str,
) -> Result<(Uuid, bool), sqlx::Error> {
    // Fast path without a write: the contact usually exists (repeat triggers, leads).
    let existing: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM contacts WHERE account_id = $1 AND phone = $2")
            .bind(account_id)
            .bind(phone)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    // `DO UPDATE` (a no-op change) rather than `DO NOTHING`, so that a row inserted
    // concurrently by another transaction is still returned.
    sqlx::query_as(
        "INSERT INTO contacts (id, account_id, phone) VALUES ($1, $2, $3)
         ON CONFLICT (account_id, phone) DO UPDATE SET phone = EXCLUDED.phone
         RETURNING id, (xmax = 0) AS created",
    )
    .bind(Uuid::now_v7())
    .bind(account_id)
    .bind(phone)
    .fetch_one(conn)
    .await
}
