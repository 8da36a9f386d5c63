//! Field checks and list paging shared by contacts, leads and chatbot flows: phone numbers
//! (E.164, via `ezpulze_payload::phone`), bounded text, e-mail shape, tags, attributes, the
//! opaque list cursor, the mapping of constraint violations to contract errors, and jsonb
//! values read back whatever they hold.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::types::Json;
use sqlx::Postgres;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, FieldError};
use ezpulze_payload::PhoneE164;

/// Default and largest page size of the lists.
pub const DEFAULT_LIMIT: i64 = 25;
pub const MAX_LIMIT: i64 = 100;
/// Largest `attributes` object, serialised.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 50;
pub const MAX_QUERY_CHARS: usize = 100;

/// Collected field errors of one request.
#[derive(Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 422 with every collected error, or Ok.
    pub fn finish(self) -> ApiResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// A phone number normalised to E.164, or a field error.
pub fn phone(field: &str, raw: &str, errors: &mut Errors) -> Option<String> {
    phone_e164(field, raw, errors).map(PhoneE164::into_string)
}

/// A required phone number (`is required` when absent), normalised to E.164.
pub fn required_phone(field: &str, raw: Option<&str>, errors: &mut Errors) -> Option<PhoneE164> {
    match raw {
        Some(p) => phone_e164(field, p, errors),
        None => {
            errors.push(field, "is required");
            None
        }
    }
}

fn phone_e164(field: &str, raw: &str, errors: &mut Errors) -> Option<PhoneE164> {
    match PhoneE164::parse(raw) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(
                field,
                format!("{e}; send an international number such as +14155550123"),
            );
            None
        }
    }
}

/// A required text: trimmed, not empty, at most `max` characters, no control characters.
pub fn required_text(
    field: &str,
    raw: Option<&str>,
    max: usize,
    errors: &mut Errors,
) -> Option<String> {
    match raw.map(str::trim) {
        None => {
            errors.push(field, "is required");
            None
        }
        Some("") => {
            errors.push(field, "must not be empty");
            None
        }
        Some(s) => bounded(field, s, max, errors),
    }
}

/// The name of an account or a broadcast: [`one_line`], 1 to 200 characters, else 422.
pub fn short_name(raw: &str) -> ApiResult<&str> {
    let mut errors = Errors::default();
    one_line("name", raw, 200, &mut errors);
    errors.finish()?;
    Ok(raw.trim())
}

/// A name on one line (API keys, accounts, broadcasts): trimmed, 1 to `max` characters and
/// no control characters at all (line breaks and tabs included), the rule contacts' names
/// and tags follow too.
pub fn one_line(field: &str, raw: &str, max: usize, errors: &mut Errors) -> Option<String> {
    let s = raw.trim();
    let n = s.chars().count();
    if n == 0 {
        errors.push(field, "a name is required");
    } else if n > max {
        errors.push(field, format!("at most {max} characters (got {n})"));
    } else if s.chars().any(char::is_control) {
        errors.push(field, "must not contain control characters");
    } else {
        return Some(s.to_string());
    }
    None
}

/// An optional text: trimmed; blank is taken as absent (null).
pub fn optional_text(
    field: &str,
    raw: Option<&str>,
    max: usize,
    errors: &mut Errors,
) -> Option<String> {
    match raw.map(str::trim) {
        None | Some("") => None,
        Some(s) => bounded(field, s, max, errors),
    }
}

fn bounded(field: &str, s: &str, max: usize, errors: &mut Errors) -> Option<String> {
    let n = s.chars().count();
    if n > max {
        errors.push(field, format!("at most {max} characters (got {n})"));
        return None;
    }
    // Multi-line notes are fine; other control characters are never meant.
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.push(field, "must not contain control characters");
        return None;
    }
    Some(s.to_string())
}

/// An e-mail address of the usual shape `local@domain.tld` (no full RFC 5322 parsing).
pub fn email(field: &str, raw: Option<&str>, errors: &mut Errors) -> Option<String> {
    let s = raw.map(str::trim).filter(|s| !s.is_empty())?;
    if valid_email(s) {
        Some(s.to_string())
    } else {
        errors.push(
            field,
            "is not an e-mail address (expected name@example.com)",
        );
        None
    }
}

fn valid_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && !l.contains(['(', ')', '<', '>', ',', ';', ':', '"', '[', ']', '\\'])
        })
}

/// Tags: trimmed, non-empty, bounded, de-duplicated in the order given.
pub fn tags(field: &str, raw: &[String], errors: &mut Errors) -> Vec<String> {
    if raw.len() > MAX_TAGS {
        errors.push(field, format!("at most {MAX_TAGS} tags"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let t = t.trim();
        let f = format!("{field}[{i}]");
        if t.is_empty() {
            errors.push(f, "a tag must not be empty");
        } else if t.chars().count() > MAX_TAG_CHARS {
            errors.push(f, format!("at most {MAX_TAG_CHARS} characters"));
        } else if t.chars().any(char::is_control) {
            errors.push(f, "must not contain control characters");
        } else if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// A free-form attributes object (of contacts and leads): bounded in size, and holding only
/// what reads back from jsonb as it was written (see [`unstorable_number`]).
pub fn attributes(field: &str, raw: Map<String, Value>, errors: &mut Errors) -> Value {
    let value = Value::Object(raw);
    let size = serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        errors.push(
            field,
            format!("at most {MAX_ATTRIBUTES_BYTES} bytes of JSON (got {size})"),
        );
    } else if let Some(path) = unstorable_number(&value, field.to_string()) {
        errors.push(
            path,
            format!(
                "numbers must lie between -{MAX_STORED_NUMBER:e} and {MAX_STORED_NUMBER:e} \
                 (a larger one does not read back as a number)"
            ),
        );
    }
    value
}

/// The largest magnitude of a number stored in jsonb. Postgres keeps jsonb numbers as exact
/// decimals and answers them written out in full (`1e308` comes back as 309 digits); serde_json
/// reads such a long integer back as a float with a small error, which overflows to infinity
/// (a decode error) for numbers within that error of `f64::MAX` (`1.7976931348623157e308`).
/// Up to `1e308` every float reads back.
pub const MAX_STORED_NUMBER: f64 = 1e308;

/// The path (`attributes.a.b[2]`) of the first number of `v` that would not read back from
/// jsonb, if any. Integers (`i64`/`u64`) always do; floats up to [`MAX_STORED_NUMBER`] do.
pub fn unstorable_number(v: &Value, at: String) -> Option<String> {
    match v {
        Value::Number(n) => {
            let integer = n.is_i64() || n.is_u64();
            let fits = n.as_f64().is_some_and(|f| f.abs() <= MAX_STORED_NUMBER);
            (!integer && !fits).then_some(at)
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| unstorable_number(item, format!("{at}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, item)| unstorable_number(item, format!("{at}.{k}"))),
        _ => None,
    }
}

/// A jsonb value read back from Postgres: parsed when serde_json reads it, else the stored
/// text as it is (a row written before a check existed, or by hand, may hold a number serde_json
/// cannot read, such as `1e400`). Either way it is answered as stored, so a read never fails on
/// a row's data.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum StoredJson {
    Parsed(Value),
    Verbatim(Box<RawValue>),
}

impl sqlx::Type<Postgres> for StoredJson {
    fn type_info() -> PgTypeInfo {
        <Value as sqlx::Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <Value as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for StoredJson {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match <Value as sqlx::Decode<Postgres>>::decode(value.clone()) {
            Ok(v) => Ok(StoredJson::Parsed(v)),
            // Reading it as raw JSON only checks its syntax (numbers are not converted).
            Err(_) => <Json<Box<RawValue>> as sqlx::Decode<Postgres>>::decode(value)
                .map(|raw| StoredJson::Verbatim(raw.0)),
        }
    }
}

/// The page size: 1..=100, default 25.
pub fn limit(raw: Option<i64>, errors: &mut Errors) -> i64 {
    match raw {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push("limit", format!("must be between 1 and {MAX_LIMIT}"));
            DEFAULT_LIMIT
        }
    }
}

/// The page size and position of a list request.
#[derive(Clone, Copy)]
pub struct Paging {
    pub limit: i64,
    pub cursor: Option<Uuid>,
}

/// `?limit=` and `?cursor=` of a list, checked.
pub fn paging(limit: Option<i64>, cursor: Option<&str>, errors: &mut Errors) -> Paging {
    Paging {
        limit: self::limit(limit, errors),
        cursor: decode_cursor(cursor, errors),
    }
}

/// A `LIKE` pattern matching `raw` anywhere, with `%`, `_` and `\` taken literally.
pub fn like_pattern(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    out.push('%');
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The search text `q`: trimmed, at most 100 characters; blank is no search.
pub fn query_text(raw: Option<&str>, errors: &mut Errors) -> Option<String> {
    let q = raw.map(str::trim).filter(|q| !q.is_empty())?;
    if q.chars().count() > MAX_QUERY_CHARS {
        errors.push("q", format!("at most {MAX_QUERY_CHARS} characters"));
        return None;
    }
    Some(q.to_string())
}

const CURSOR_VERSION: &[u8] = b"c1";

/// The opaque cursor of a list: the last id of the page (ids are time-ordered UUIDv7).
pub fn encode_cursor(last: Uuid) -> String {
    let mut raw = CURSOR_VERSION.to_vec();
    raw.extend_from_slice(last.as_bytes());
    hex::encode(raw)
}

/// Decodes a cursor given back by the client.
pub fn decode_cursor(raw: Option<&str>, errors: &mut Errors) -> Option<Uuid> {
    let raw = raw?;
    let decoded = hex::decode(raw.trim()).ok().and_then(|bytes| {
        let rest = bytes.strip_prefix(CURSOR_VERSION)?;
        Uuid::from_slice(rest).ok()
    });
    if decoded.is_none() {
        errors.push("cursor", "is not a cursor returned by this list");
    }
    decoded
}

/// A page of a cursor-paginated list.
#[derive(Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds the page from up to `limit + 1` rows fetched in id order.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(id_of(r)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// The name of the constraint a database error violated, if it is one.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// The 409 of a second contact with the same phone number in one account.
pub fn duplicate_phone() -> ApiError {
    ApiError::Conflict("a contact with this phone number already exists in this account".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com", "x@sub.example.org"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.", "a b@c.de", "a@b@c.de", "a@-b.co", "a@b..co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn cursor_roundtrip_and_garbage() {
        let id = Uuid::now_v7();
        let mut e = Errors::default();
        assert_eq!(decode_cursor(Some(&encode_cursor(id)), &mut e), Some(id));
        assert!(e.is_empty());
        for bad in ["", "zz", "00", &hex::encode(id.as_bytes()), "6331"] {
            let mut e = Errors::default();
            assert_eq!(decode_cursor(Some(bad), &mut e), None, "{bad}");
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn like_escapes() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn numbers_that_do_not_read_back_are_named_by_path() {
        let ok = serde_json::json!({"a": 1e308, "b": -1e308, "c": 5e-324, "d": u64::MAX,
            "e": i64::MIN, "f": [0.5, {"g": "1e309"}]});
        assert_eq!(unstorable_number(&ok, "attributes".into()), None);
        let bad: Value =
            serde_json::from_str(r#"{"a": {"b": [1, {"c": -1.7976931348623157e308}]}}"#)
                .expect("json");
        assert_eq!(
            unstorable_number(&bad, "attributes".into()).as_deref(),
            Some("attributes.a.b[1].c")
        );
        let mut e = Errors::default();
        let Value::Object(map) = bad else {
            panic!("object")
        };
        attributes("attributes", map, &mut e);
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].field, "attributes.a.b[1].c");
    }

    #[test]
    fn tags_dedup_and_bounds() {
        let mut e = Errors::default();
        let t = tags("tags", &[" vip ".into(), "vip".into(), "b".into()], &mut e);
        assert_eq!(t, vec!["vip", "b"]);
        assert!(e.is_empty());
        let mut e = Errors::default();
        tags("tags", &["".into(), "x".repeat(51)], &mut e);
        assert_eq!(e.0.len(), 2);
    }
}
