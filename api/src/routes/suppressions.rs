//! `/api/v1/suppressions`: the account's suppression list (`docs/consent.md`) and the keywords
//! by which an inbound WhatsApp message opts its sender out or back in.
//!
//! - A suppression is **per account**, not per key mode: a live key and a `sk_test_` key of one
//!   account see and change the same list, and every send path of the account honours it.
//!   Every read and write here is restricted to the caller's account.
//! - `GET /suppressions` (`contacts:read_all`): by phone, ascending, `?limit=1..100` (default
//!   25) and `?cursor=` (opaque, from `next_cursor`); filters `phone` (any accepted form,
//!   normalised), `reason`, `scope`.
//! - `POST /suppressions` (`contacts:update`): `phone` (required, normalised to E.164),
//!   `reason` (`opt_out|bounced|manual`, default `manual`), `scope` (`marketing|all`, default
//!   `all`), `source` (1 to 100 characters, default `api`). An upsert: a second POST for the
//!   phone replaces its reason, scope and source (`created_at` stays). 201 with the row.
//! - `DELETE /suppressions/{phone}` (`contacts:update`): the phone in any accepted form (`+` as
//!   `%2B`, or digits without it); 204, 404 when the account has no such row (or the path is
//!   not a phone number).
//! - `GET|PUT /suppressions/keywords` (`contacts:read_all` | `contacts:update`): the opt-out and
//!   opt-in lists, 1 to 50 keywords each, each 1 to 64 characters after trimming, stored
//!   uppercase, repeats dropped, no keyword in both lists. GET answers the defaults
//!   (`"is_default": true`) while the account has not set its own.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::contacts::fields::{self, Errors};
use crate::auth::{scope, Authorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use ezpulze_common::consent::{self, Keywords};
use ezpulze_payload::PhoneE164;

/// The longest `source`, in characters (the table's check).
pub const MAX_SOURCE_CHARS: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(get_keywords, put_keywords))
        .routes(routes!(remove))
}

/// A suppression as the API returns it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Suppression {
    pub phone: String,
    pub reason: String,
    pub scope: String,
    pub source: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "phone, reason, scope, source, created_at";

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateSuppression {
    phone: Option<String>,
    reason: Option<String>,
    scope: Option<String>,
    source: Option<String>,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Any accepted form; normalised.
    phone: Option<String>,
    #[param(schema_with = reason_schema)]
    reason: Option<String>,
    #[param(schema_with = scope_schema)]
    scope: Option<String>,
}

fn reason_schema() -> utoipa::openapi::Object {
    super::openapi::string_enum(&consent::REASONS, None)
}

fn scope_schema() -> utoipa::openapi::Object {
    super::openapi::string_enum(&consent::SCOPES, None)
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PutKeywords {
    opt_out: Option<Vec<String>>,
    opt_in: Option<Vec<String>>,
}

/// The keyword lists as the API returns them.
#[derive(Debug, Serialize)]
pub struct KeywordLists {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
    /// The account has not set its own lists: these are the defaults.
    pub is_default: bool,
}

/// A page of the list: `next_cursor` names the last phone of the page.
#[derive(Serialize)]
pub struct Page {
    pub items: Vec<Suppression>,
    pub next_cursor: Option<String>,
}

const CURSOR_VERSION: &str = "s1";

fn encode_cursor(phone: &str) -> String {
    hex::encode(format!("{CURSOR_VERSION}{phone}"))
}

fn decode_cursor(raw: Option<&str>, errors: &mut Errors) -> Option<String> {
    let raw = raw?;
    let phone = hex::decode(raw.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(CURSOR_VERSION).map(str::to_string))
        .filter(|p| PhoneE164::parse(p).is_ok_and(|e| e.as_str() == p));
    if phone.is_none() {
        errors.push("cursor", "is not a cursor returned by this list");
    }
    phone
}

fn one_of(field: &str, raw: &str, allowed: &[&str], errors: &mut Errors) -> Option<String> {
    if allowed.contains(&raw) {
        Some(raw.to_string())
    } else {
        errors.push(field, format!("one of {}", allowed.join(", ")));
        None
    }
}

/// List suppressed phones
#[utoipa::path(get, path = "/api/v1/suppressions", operation_id = "listSuppressions",
    params(ListQuery),
    extensions(("x-required-scope" = json!(scope::ContactsReadAll::SCOPE))))]
pub async fn list(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::ContactsReadAll>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page>> {
    let mut errors = Errors::default();
    let limit = fields::limit(q.limit, &mut errors);
    let after = decode_cursor(q.cursor.as_deref(), &mut errors);
    let phone = q
        .phone
        .as_deref()
        .and_then(|raw| fields::phone("phone", raw, &mut errors));
    let reason = q
        .reason
        .as_deref()
        .and_then(|r| one_of("reason", r, &consent::REASONS, &mut errors));
    let scope = q
        .scope
        .as_deref()
        .and_then(|s| one_of("scope", s, &consent::SCOPES, &mut errors));
    errors.finish()?;
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM suppressions WHERE account_id = "
    ));
    sql.push_bind(p.account_id());
    if let Some(after) = after {
        sql.push(" AND phone > ").push_bind(after);
    }
    if let Some(phone) = phone {
        sql.push(" AND phone = ").push_bind(phone);
    }
    if let Some(reason) = reason {
        sql.push(" AND reason = ").push_bind(reason);
    }
    if let Some(scope) = scope {
        sql.push(" AND scope = ").push_bind(scope);
    }
    sql.push(" ORDER BY phone LIMIT ").push_bind(limit + 1);
    let mut items: Vec<Suppression> = sql.build_query_as().fetch_all(state.db()).await?;
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        items.last().map(|s| encode_cursor(&s.phone))
    } else {
        None
    };
    Ok(Json(Page { items, next_cursor }))
}

/// Suppress a phone (or change its suppression)
#[utoipa::path(post, path = "/api/v1/suppressions", operation_id = "createSuppression",
    extensions(("x-required-scope" = json!(scope::ContactsUpdate::SCOPE))))]
pub async fn create(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::ContactsUpdate>,
    ApiJson(body): ApiJson<CreateSuppression>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let mut errors = Errors::default();
    let phone = fields::required_phone("phone", body.phone.as_deref(), &mut errors);
    let reason = one_of(
        "reason",
        body.reason.as_deref().unwrap_or("manual"),
        &consent::REASONS,
        &mut errors,
    );
    let scope = one_of(
        "scope",
        body.scope.as_deref().unwrap_or("all"),
        &consent::SCOPES,
        &mut errors,
    );
    let source = match &body.source {
        None => Some("api".to_string()),
        Some(raw) => fields::one_line("source", raw, MAX_SOURCE_CHARS, &mut errors),
    };
    errors.finish()?;
    let (Some(phone), Some(reason), Some(scope), Some(source)) = (phone, reason, scope, source)
    else {
        return Err(ApiError::field("phone", "is required"));
    };
    let row: Suppression = sqlx::query_as(&format!(
        "INSERT INTO suppressions (account_id, phone, reason, scope, source)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id, phone) DO UPDATE
            SET reason = EXCLUDED.reason, scope = EXCLUDED.scope, source = EXCLUDED.source
         RETURNING {COLUMNS}"
    ))
    .bind(p.account_id())
    .bind(phone.as_str())
    .bind(&reason)
    .bind(&scope)
    .bind(&source)
    .fetch_one(state.db())
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// The `{phone}` of a path, normalised; anything that is not a phone number is not found.
pub struct PathPhone(pub PhoneE164);

impl<S: Send + Sync> FromRequestParts<S> for PathPhone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        PhoneE164::parse(&raw)
            .map(PathPhone)
            .map_err(|_| ApiError::NotFound)
    }
}

/// Remove a phone from the suppression list
#[utoipa::path(delete, path = "/api/v1/suppressions/{phone}", operation_id = "deleteSuppression",
    params(("phone" = String, Path, description = "The phone in any accepted form: `%2B14155550123` or `14155550123`.")),
    extensions(("x-required-scope" = json!(scope::ContactsUpdate::SCOPE))))]
pub async fn remove(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::ContactsUpdate>,
    PathPhone(phone): PathPhone,
) -> ApiResult<StatusCode> {
    let done = sqlx::query("DELETE FROM suppressions WHERE account_id = $1 AND phone = $2")
        .bind(p.account_id())
        .bind(phone.as_str())
        .execute(state.db())
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Read the opt-out and opt-in keywords
#[utoipa::path(get, path = "/api/v1/suppressions/keywords", operation_id = "getConsentKeywords",
    extensions(("x-required-scope" = json!(scope::ContactsReadAll::SCOPE))))]
pub async fn get_keywords(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::ContactsReadAll>,
) -> ApiResult<Json<KeywordLists>> {
    let own: Option<(Vec<String>, Vec<String>)> =
        sqlx::query_as("SELECT opt_out, opt_in FROM consent_keywords WHERE account_id = $1")
            .bind(p.account_id())
            .fetch_optional(state.db())
            .await?;
    Ok(Json(match own {
        Some((opt_out, opt_in)) => KeywordLists {
            opt_out,
            opt_in,
            is_default: false,
        },
        None => {
            let d = Keywords::defaults();
            KeywordLists {
                opt_out: d.opt_out,
                opt_in: d.opt_in,
                is_default: true,
            }
        }
    }))
}

/// One keyword list, checked: 1 to [`consent::MAX_KEYWORDS`] keywords of 1 to
/// [`consent::MAX_KEYWORD_CHARS`] characters, uppercased, repeats dropped.
fn check_list(field: &str, raw: Option<&[String]>, errors: &mut Errors) -> Vec<String> {
    let Some(raw) = raw else {
        errors.push(field, "is required (a list of keywords)");
        return Vec::new();
    };
    if raw.is_empty() || raw.len() > consent::MAX_KEYWORDS {
        errors.push(
            field,
            format!(
                "list 1 to {} keywords (got {})",
                consent::MAX_KEYWORDS,
                raw.len()
            ),
        );
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, k) in raw.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let k = consent::normalize_keyword(k);
        let n = k.chars().count();
        if n == 0 {
            errors.push(f, "a keyword must not be empty");
        } else if n > consent::MAX_KEYWORD_CHARS {
            errors.push(
                f,
                format!(
                    "at most {} characters (got {n})",
                    consent::MAX_KEYWORD_CHARS
                ),
            );
        } else if k.chars().any(char::is_control) {
            errors.push(f, "must not contain control characters");
        } else if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Set the opt-out and opt-in keywords
#[utoipa::path(put, path = "/api/v1/suppressions/keywords", operation_id = "putConsentKeywords",
    extensions(("x-required-scope" = json!(scope::ContactsUpdate::SCOPE))))]
pub async fn put_keywords(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::ContactsUpdate>,
    ApiJson(body): ApiJson<PutKeywords>,
) -> ApiResult<Json<KeywordLists>> {
    let mut errors = Errors::default();
    let opt_out = check_list("opt_out", body.opt_out.as_deref(), &mut errors);
    let opt_in = check_list("opt_in", body.opt_in.as_deref(), &mut errors);
    if errors.is_empty() {
        for (i, k) in body.opt_in.iter().flatten().enumerate() {
            let k = consent::normalize_keyword(k);
            if opt_out.contains(&k) {
                errors.push(
                    format!("opt_in[{i}]"),
                    format!("{k:?} is in opt_out too: a keyword can only mean one thing"),
                );
            }
        }
    }
    errors.finish()?;
    let (opt_out, opt_in): (Vec<String>, Vec<String>) = sqlx::query_as(
        "INSERT INTO consent_keywords (account_id, opt_out, opt_in) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE
            SET opt_out = EXCLUDED.opt_out, opt_in = EXCLUDED.opt_in, updated_at = now()
         RETURNING opt_out, opt_in",
    )
    .bind(p.account_id())
    .bind(&opt_out)
    .bind(&opt_in)
    .fetch_one(state.db())
    .await?;
    Ok(Json(KeywordLists {
        opt_out,
        opt_in,
        is_default: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let mut e = Errors::default();
        let c = encode_cursor("+14155550123");
        assert_eq!(
            decode_cursor(Some(&c), &mut e).as_deref(),
            Some("+14155550123")
        );
        assert!(e.is_empty());
        for bad in [
            "",
            "zz",
            &hex::encode("s1nope"),
            &hex::encode("+14155550123"),
        ] {
            let mut e = Errors::default();
            assert_eq!(decode_cursor(Some(bad), &mut e), None, "{bad}");
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn keyword_lists_are_uppercased_deduplicated_and_bounded() {
        let mut e = Errors::default();
        let l = check_list(
            "opt_out",
            Some(&[" stop ".into(), "STOP".into(), "basta".into()]),
            &mut e,
        );
        assert_eq!(l, vec!["STOP", "BASTA"]);
        assert!(e.is_empty());
        let mut e = Errors::default();
        check_list("opt_out", Some(&[]), &mut e);
        check_list("opt_in", Some(&vec!["A".to_string(); 51]), &mut e);
        check_list("opt_in", Some(&[" ".into(), "x".repeat(65)]), &mut e);
        assert!(!e.is_empty());
    }
}
