//! `POST /api/v1/contacts/import`: a CSV file of contacts, checked whole before anything is
//! stored (size, encoding, CSV syntax, header, row count: a 4xx with its code), then imported
//! in the background by [`runner`]; `GET /api/v1/contacts/imports/{id}` (progress, counts, the
//! first rejections) and `GET .../rejections` (cursor pages). The contract is
//! `docs/contact-import.md`.

pub mod countries;
pub mod csv;
pub mod rows;
pub mod runner;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::auth::{scope, Authorized, Principal};
use crate::error::{current_request_id, ApiError, ApiResult};
use crate::extract::{ApiQuery, PathId};
use crate::state::AppState;
use countries::Country;
use rows::Header;

pub use runner::spawn;

/// Rejections shown on the import itself; the rest through the rejections list.
pub const FIRST_REJECTIONS: i64 = 100;
/// Largest page of the rejections list.
pub const MAX_REJECTIONS_PAGE: i64 = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create))
        .routes(routes!(read))
        .routes(routes!(rejections))
}

/// An import as the API shows it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Import {
    pub id: Uuid,
    pub state: String,
    pub total_rows: i32,
    pub rows_done: i32,
    pub created: i32,
    pub updated: i32,
    pub unchanged: i32,
    pub rejected: i32,
    pub default_country: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, state, total_rows, rows_done, created, updated, unchanged, rejected, \
                       default_country, error, created_at, updated_at, finished_at";

/// One problem of one row.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct RejectionView {
    #[serde(skip)]
    pub seq: i32,
    pub row: i32,
    pub column: Option<String>,
    pub code: String,
    pub message: String,
}

#[derive(Serialize)]
pub struct RejectionPage {
    pub items: Vec<RejectionView>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
pub struct ImportWithRejections {
    #[serde(flatten)]
    pub import: Import,
    pub rejections: RejectionPage,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    /// ISO 3166-1 alpha-2 country of national numbers (without `+`/`00`), e.g. `PT`.
    default_country: Option<String>,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RejectionsQuery {
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A whole-file refusal: the contract's error body with the import's own codes.
#[derive(Debug)]
pub enum ImportError {
    Api(ApiError),
    File {
        status: StatusCode,
        code: &'static str,
        message: String,
        row: Option<u32>,
    },
}

impl From<ApiError> for ImportError {
    fn from(e: ApiError) -> Self {
        ImportError::Api(e)
    }
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Api(e.into())
    }
}

impl ImportError {
    fn file(code: &'static str, message: impl Into<String>, row: Option<u32>) -> Self {
        ImportError::File {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message: message.into(),
            row,
        }
    }
}

impl From<csv::FileError> for ImportError {
    fn from(e: csv::FileError) -> Self {
        match e {
            csv::FileError::Encoding { row, message } => {
                ImportError::file("invalid_encoding", message, Some(row))
            }
            csv::FileError::Syntax { row, message } => {
                ImportError::file("malformed_csv", message, Some(row))
            }
            csv::FileError::TooManyRows { max } => ImportError::file(
                "too_many_rows",
                format!("the file has more than {max} data rows; split it"),
                None,
            ),
            csv::FileError::Header(m) => ImportError::file("invalid_header", m, Some(1)),
        }
    }
}

impl IntoResponse for ImportError {
    fn into_response(self) -> Response {
        match self {
            ImportError::Api(e) => e.into_response(),
            ImportError::File {
                status,
                code,
                message,
                row,
            } => {
                let mut error = serde_json::json!({
                    "code": code,
                    "message": message,
                    "request_id": current_request_id(),
                });
                if let Some(row) = row {
                    error["row"] = row.into();
                }
                (status, Json(serde_json::json!({ "error": error }))).into_response()
            }
        }
    }
}

/// The body's file: the raw body (`text/csv`) or the `file` part of a multipart body.
enum Upload {
    Raw,
    Multipart(String),
}

fn upload_kind(headers: &HeaderMap) -> Result<Upload, ImportError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut parts = ct.split(';').map(str::trim);
    let mime = parts.next().unwrap_or("").to_ascii_lowercase();
    let params: Vec<(String, String)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            )
        })
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match mime.as_str() {
        "text/csv" | "application/csv" | "text/plain" => {
            if let Some(cs) = param("charset") {
                if !matches!(
                    cs.to_ascii_lowercase().as_str(),
                    "utf-8" | "utf8" | "us-ascii"
                ) {
                    return Err(ImportError::file(
                        "invalid_encoding",
                        format!("charset={cs}: the file must be UTF-8"),
                        None,
                    ));
                }
            }
            Ok(Upload::Raw)
        }
        "multipart/form-data" => match param("boundary") {
            Some(b) if !b.is_empty() && b.len() <= 200 => Ok(Upload::Multipart(b)),
            _ => Err(ImportError::Api(ApiError::field(
                "content-type",
                "multipart/form-data needs a boundary",
            ))),
        },
        _ => Err(ImportError::File {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "send the file as text/csv, or as the part \"file\" of multipart/form-data"
                .into(),
            row: None,
        }),
    }
}

/// Reads the body up to `limit` bytes; 413 as soon as `Content-Length` or the bytes read
/// exceed it (nothing more is read).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ImportError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit).into());
    }
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(64 * 1024, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::field("body", format!("reading the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit).into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The content of the part named `file` of a multipart/form-data body.
fn multipart_file(body: &Bytes, boundary: &str) -> Result<Bytes, ImportError> {
    let missing = || {
        ImportError::Api(ApiError::field(
            "file",
            "the multipart body has no part named \"file\"",
        ))
    };
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let b = &body[..];
    let mut at = find(b, delim.as_bytes(), 0).ok_or_else(missing)?;
    loop {
        let after = at + delim.len();
        if b[after..].starts_with(b"--") {
            return Err(missing());
        }
        let headers_start = find(b, b"\r\n", after).ok_or_else(missing)? + 2;
        let headers_end = find(b, b"\r\n\r\n", headers_start - 2).ok_or_else(missing)?;
        let content_start = headers_end + 4;
        let end = find(b, next_delim.as_bytes(), content_start).ok_or_else(|| {
            ImportError::Api(ApiError::field("body", "the multipart body is not closed"))
        })?;
        let part_headers = String::from_utf8_lossy(&b[headers_start.min(headers_end)..headers_end]);
        let is_file = part_headers.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("content-disposition:")
                && (l.contains("name=\"file\"")
                    || l.contains("name=file;")
                    || l.ends_with("name=file"))
        });
        if is_file {
            return Ok(body.slice(content_start..end));
        }
        at = end + 2;
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..].iter().position(|&c| c == first)?;
        let at = i + off;
        if at + needle.len() > hay.len() {
            return None;
        }
        if &hay[at..at + needle.len()] == needle {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// Import contacts from a CSV file
#[utoipa::path(post, path = "/api/v1/contacts/import", operation_id = "importContacts",
    params(CreateQuery),
    extensions(("x-required-scope" = json!(scope::ContactsCreate::SCOPE))))]
pub async fn create(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<scope::ContactsCreate>,
    ApiQuery(q): ApiQuery<CreateQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Import>), ImportError> {
    let country = match q.default_country.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(Country::from_iso(c).ok_or_else(|| {
            ApiError::field(
                "default_country",
                format!("{c:?} is not an ISO 3166-1 alpha-2 country code (such as PT or US)"),
            )
        })?),
    };
    let kind = upload_kind(&headers)?;
    let settings = state.config().contact_imports.clone();
    let body = read_body(&headers, body, settings.max_bytes).await?;
    let file = match kind {
        Upload::Raw => body,
        Upload::Multipart(boundary) => multipart_file(&body, &boundary)?,
    };
    // The whole-file check: a full pass over the text, off the async threads.
    let checked = {
        let file = file.clone();
        tokio::task::spawn_blocking(move || -> Result<(Header, usize), ImportError> {
            let c = csv::check(&file, settings.max_rows)?;
            let header = Header::parse(&c.header)
                .map_err(|m| ImportError::file("invalid_header", m, Some(1)))?;
            Ok((header, c.data_rows))
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
    };
    let (_header, data_rows) = checked?;

    let id = Uuid::now_v7();
    let import: Import = sqlx::query_as(&format!(
        "INSERT INTO contact_imports (id, account_id, key_id, total_rows, default_country, file)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(principal.account_id())
    .bind(principal.key_id())
    .bind(data_rows as i32)
    .bind(country.map(|c| c.iso))
    .bind(&file[..])
    .fetch_one(state.db())
    .await?;
    tracing::info!(import_id = %id, account_id = %principal.account_id(), total_rows = data_rows,
        bytes = file.len(), "contact import accepted");
    runner::uploaded(id, file);
    Ok((StatusCode::ACCEPTED, Json(import)))
}

/// Reading an import: `contacts:create` (who uploads it) or `contacts:read_all`.
fn may_read(principal: &Principal) -> ApiResult<()> {
    if principal.holds(scope::ContactsCreate::SCOPE) {
        return Ok(());
    }
    principal.require(scope::ContactsReadAll::SCOPE)
}

async fn fetch(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<Import> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM contact_imports WHERE id = $1 AND account_id = $2"
    ))
    .bind(id)
    .bind(account)
    .fetch_optional(state.db())
    .await?
    .ok_or(ApiError::NotFound)
}

async fn page(state: &AppState, id: Uuid, after: i32, limit: i64) -> ApiResult<RejectionPage> {
    let mut items: Vec<RejectionView> = sqlx::query_as(
        "SELECT seq, row_number AS row, column_name AS column, code, message
         FROM contact_import_rejections
         WHERE import_id = $1 AND seq > $2
         ORDER BY seq LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(state.db())
    .await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|r| encode_cursor(r.seq))
    } else {
        None
    };
    Ok(RejectionPage { items, next_cursor })
}

const CURSOR_VERSION: &str = "r1";

fn encode_cursor(seq: i32) -> String {
    format!("{CURSOR_VERSION}{}", hex::encode(seq.to_be_bytes()))
}

fn decode_cursor(raw: &str) -> Option<i32> {
    let rest = raw.trim().strip_prefix(CURSOR_VERSION)?;
    let bytes: [u8; 4] = hex::decode(rest).ok()?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// Read a contact import
#[utoipa::path(get, path = "/api/v1/contacts/imports/{id}", operation_id = "getContactImport",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::ContactsReadAll::SCOPE)),
        ("x-accepted-scopes" = json!([scope::ContactsReadAll::SCOPE, scope::ContactsCreate::SCOPE]))))]
pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    PathId(id): PathId,
) -> ApiResult<Json<ImportWithRejections>> {
    may_read(&principal)?;
    let import = fetch(&state, principal.account_id(), id).await?;
    let rejections = page(&state, id, 0, FIRST_REJECTIONS).await?;
    Ok(Json(ImportWithRejections { import, rejections }))
}

/// List a contact import's rejected rows
#[utoipa::path(get, path = "/api/v1/contacts/imports/{id}/rejections",
    operation_id = "listContactImportRejections",
    params(("id" = Uuid, Path), RejectionsQuery),
    extensions(("x-required-scope" = json!(scope::ContactsReadAll::SCOPE)),
        ("x-accepted-scopes" = json!([scope::ContactsReadAll::SCOPE, scope::ContactsCreate::SCOPE]))))]
pub async fn rejections(
    State(state): State<AppState>,
    principal: Principal,
    PathId(id): PathId,
    ApiQuery(q): ApiQuery<RejectionsQuery>,
) -> ApiResult<Json<RejectionPage>> {
    may_read(&principal)?;
    let limit = match q.limit {
        None => FIRST_REJECTIONS,
        Some(n) if (1..=MAX_REJECTIONS_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::field(
                "limit",
                format!("must be between 1 and {MAX_REJECTIONS_PAGE}"),
            ))
        }
    };
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| ApiError::field("cursor", "is not a cursor returned by this list"))?,
    };
    fetch(&state, principal.account_id(), id).await?;
    Ok(Json(page(&state, id, after, limit).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\n\
              Content-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\
              Content-Type: text/csv\r\n\r\nphone\r\n+351912345678\r\n\r\n--XyZ--\r\n",
        );
        let f = multipart_file(&body, "XyZ").expect("file part");
        assert_eq!(&f[..], b"phone\r\n+351912345678\r\n");
        assert!(multipart_file(&body, "other").is_err());
        let no_file = Bytes::from_static(
            b"--a\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--a--\r\n",
        );
        assert!(multipart_file(&no_file, "a").is_err());
    }

    #[test]
    fn cursors() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(decode_cursor("r100"), None);
    }
}
