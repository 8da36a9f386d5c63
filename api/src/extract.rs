//! Request extractors with the contract's errors: JSON bodies (422 with the failing field's
//! path, 413 over the size limit) and query strings (422). NUL characters are refused here
//! for every route (422 naming the field), never passed on to Postgres.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON body. Malformed JSON, wrong types and unknown fields (where the type denies them)
/// become 422 `validation_failed` naming the field; an oversized body becomes 413.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The raw body bytes, with 413 `payload_too_large` over the configured limit.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(0);
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rej| {
                if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::field("body", rej.body_text())
                }
            })
    }
}

/// What a field holding a NUL character is told (Postgres text cannot hold one).
pub const NUL_MESSAGE: &str = "must not contain NUL characters";

/// Parses JSON with the path of the first failing field in the error. A string (value or
/// key) with a NUL character (`\u0000`) is refused here, for every route, with its path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::field("body", "a JSON body is required"));
    }
    if has_escaped_nul(bytes) {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(path) = nul_path(&v, String::new()) {
                let field = if path.is_empty() { "body".into() } else { path };
                return Err(ApiError::field(field, NUL_MESSAGE));
            }
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let field = if path == "." || path.is_empty() {
            "body".to_string()
        } else {
            path
        };
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("malformed JSON: {inner}")
            }
            _ => inner.to_string(),
        };
        ApiError::Validation(vec![FieldError::new(field, message)])
    })
}

/// Whether the JSON text has a `\u0000` escape (one not itself escaped): the only way a NUL
/// can stand in valid JSON. A scan, so bodies without one cost no second parse.
fn has_escaped_nul(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'\\') {
        let at = i + off;
        match bytes.get(at + 1) {
            Some(b'u') if bytes.get(at + 2..at + 6) == Some(b"0000") => return true,
            // Any other escape (including `\\`) is skipped whole.
            Some(_) => i = at + 2,
            None => return false,
        }
    }
    false
}

/// The path (`a.b[2].c`) of the first string or key holding a NUL, if any.
fn nul_path(v: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_path(item, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            let key = k.replace('\0', "\\u0000");
            let here = if at.is_empty() {
                key
            } else {
                format!("{at}.{key}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(item, here)
            }
        }),
        _ => None,
    }
}

/// The configured body limit, put in request extensions so rejections can name it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A query string with 422 on a bad value.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // `%00` decodes to a NUL, which no field may hold.
        if let Some((k, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::field(k.replace('\0', "\\u0000"), NUL_MESSAGE));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| ApiError::field(e.path().to_string(), e.into_inner().to_string()))
    }
}

/// A path id that must be a UUID; anything else is simply not found.
pub struct PathId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::NotFound)?;
        raw.parse().map(PathId).map_err(|_| ApiError::NotFound)
    }
}

/// Deserialises a field that distinguishes "absent" (None) from "null" (Some(None)).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_with_its_path() {
        let cases = [
            (r#"{"name": "a\u0000b"}"#, "name"),
            (
                r#"{"recipients": [{"to": "1"}, {"to": "\u0000"}]}"#,
                "recipients[1].to",
            ),
            (r#"{"attributes": {"k\u0000": 1}}"#, "attributes.k\\u0000"),
            (r#""\u0000""#, "body"),
        ];
        for (body, field) in cases {
            match parse_json::<serde_json::Value>(body.as_bytes()) {
                Err(ApiError::Validation(errs)) => {
                    assert_eq!(errs[0].field, field, "{body}");
                    assert_eq!(errs[0].message, NUL_MESSAGE);
                }
                other => panic!("{body}: {:?}", other.map(|_| ())),
            }
        }
        // An escaped backslash before "u0000" is text, not a NUL.
        let ok: serde_json::Value = parse_json(br#"{"name": "a\\u0000"}"#).expect("text");
        assert_eq!(ok["name"], "a\\u0000");
    }
}
