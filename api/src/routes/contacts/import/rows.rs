//! The header and the rows of a contact import: which column is what, and each data row
//! checked with the same rules as `POST /api/v1/contacts` (`contacts::fields`), its phone
//! normalised (national numbers with the import's `default_country`) and de-duplicated.

use std::borrow::Cow;
use std::collections::HashMap;

use super::countries::Country;
use crate::error::ApiError;
use crate::routes::contacts::fields::{self, Errors};
use crate::routes::contacts::MAX_NAME_CHARS;
use ezpulze_payload::PhoneE164;

/// Most attribute columns of a file.
pub const MAX_ATTRIBUTE_COLUMNS: usize = 100;
/// Longest column name.
pub const MAX_COLUMN_CHARS: usize = 100;
/// The separator of tags inside a `tags` cell.
pub const TAG_SEPARATOR: char = ';';
/// How a row's tags travel to the upsert: joined with a character no tag may hold.
pub const SQL_TAG_JOIN: char = '\u{1f}';

/// What each column of the file is.
#[derive(Debug, Clone)]
pub struct Header {
    pub width: usize,
    pub phone: usize,
    pub name: Option<usize>,
    pub email: Option<usize>,
    pub tags: Option<usize>,
    /// (column index, attribute key)
    pub attributes: Vec<(usize, String)>,
    /// Column names as written (trimmed), for the rejection report.
    pub names: Vec<String>,
    /// Each column's name as a JSON string (the attributes' keys).
    pub json_keys: Vec<String>,
}

impl Header {
    /// The header row: `phone` required; `name`, `email`, `tags` (any case) known; every
    /// other column an attribute named as written (trimmed). Empty and duplicate names are
    /// refused.
    pub fn parse(cells: &[String]) -> Result<Header, String> {
        let mut h = Header {
            width: cells.len(),
            phone: usize::MAX,
            name: None,
            email: None,
            tags: None,
            attributes: Vec::new(),
            names: Vec::with_capacity(cells.len()),
            json_keys: Vec::with_capacity(cells.len()),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in cells.iter().enumerate() {
            let name = raw.trim();
            let col = i + 1;
            if name.is_empty() {
                return Err(format!("column {col} has no name: every column needs one"));
            }
            if name.chars().count() > MAX_COLUMN_CHARS {
                return Err(format!(
                    "column {col}'s name is longer than {MAX_COLUMN_CHARS} characters"
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(format!("column {col}'s name holds a control character"));
            }
            let lower = name.to_lowercase();
            let reserved = matches!(lower.as_str(), "phone" | "name" | "email" | "tags");
            let key = if reserved {
                lower.clone()
            } else {
                name.to_string()
            };
            if let Some(first) = seen.insert(key, col) {
                return Err(format!(
                    "columns {first} and {col} are both named {name:?}: column names must be unique"
                ));
            }
            match lower.as_str() {
                "phone" => h.phone = i,
                "name" => h.name = Some(i),
                "email" => h.email = Some(i),
                "tags" => h.tags = Some(i),
                _ => h.attributes.push((i, name.to_string())),
            }
            h.json_keys
                .push(serde_json::to_string(name).unwrap_or_default());
            h.names
                .push(if reserved { lower } else { name.to_string() });
        }
        if h.phone == usize::MAX {
            return Err("there is no \"phone\" column: the header row must name one".into());
        }
        if h.attributes.len() > MAX_ATTRIBUTE_COLUMNS {
            return Err(format!(
                "{} attribute columns; at most {MAX_ATTRIBUTE_COLUMNS}",
                h.attributes.len()
            ));
        }
        Ok(h)
    }

    pub fn attribute_keys(&self) -> Vec<String> {
        self.attributes.iter().map(|(_, k)| k.clone()).collect()
    }
}

/// A row to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct GoodRow {
    pub row: u32,
    pub phone: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Tags joined with [`SQL_TAG_JOIN`]; `None`: no tags.
    pub tags: Option<String>,
    /// The attributes object as JSON text; `None`: no attribute cell set.
    pub attributes: Option<String>,
}

/// One problem of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub row: u32,
    pub column: Option<String>,
    pub code: &'static str,
    pub message: String,
}

/// Checks the rows of one file in order (the phone of an earlier row wins).
pub struct Validator<'h> {
    header: &'h Header,
    country: Option<Country>,
    /// E.164 digits as a number -> the first row with it.
    seen: HashMap<u64, u32>,
}

/// The first message of a `fields` check, if it failed.
fn first_error(errors: Errors) -> Option<String> {
    match errors.finish() {
        Ok(()) => None,
        Err(ApiError::Validation(v)) => v.into_iter().next().map(|e| e.message),
        Err(other) => Some(other.to_string()),
    }
}

impl<'h> Validator<'h> {
    pub fn new(header: &'h Header, country: Option<Country>, rows_hint: usize) -> Self {
        Validator {
            header,
            country,
            seen: HashMap::with_capacity(rows_hint.min(2_000_000)),
        }
    }

    fn reject(
        &self,
        out: &mut Vec<Rejection>,
        row: u32,
        col: usize,
        code: &'static str,
        message: String,
    ) {
        out.push(Rejection {
            row,
            column: Some(self.header.names[col].clone()),
            code,
            message,
        });
    }

    /// A data row: the row to upsert, or its problems (appended to `out`).
    pub fn check(
        &mut self,
        row: u32,
        cells: &[Cow<'_, str>],
        out: &mut Vec<Rejection>,
    ) -> Option<GoodRow> {
        let h = self.header;
        if cells.len() != h.width {
            out.push(Rejection {
                row,
                column: None,
                code: "wrong_field_count",
                message: format!(
                    "the row has {} fields; the header has {}",
                    cells.len(),
                    h.width
                ),
            });
            return None;
        }
        let before = out.len();
        let phone = self.phone(row, &cells[h.phone], out);

        let name = h.name.and_then(|i| {
            let mut e = Errors::default();
            let v = fields::optional_text("name", Some(&cells[i]), MAX_NAME_CHARS, &mut e);
            match first_error(e) {
                None => v,
                Some(m) => {
                    self.reject(out, row, i, "invalid_name", m);
                    None
                }
            }
        });
        let email = h.email.and_then(|i| {
            let mut e = Errors::default();
            let v = fields::email("email", Some(&cells[i]), &mut e);
            match first_error(e) {
                None => v,
                Some(m) => {
                    self.reject(out, row, i, "invalid_email", m);
                    None
                }
            }
        });
        let tags = h.tags.and_then(|i| {
            let given: Vec<String> = cells[i]
                .split(TAG_SEPARATOR)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            if given.is_empty() {
                return None;
            }
            let mut e = Errors::default();
            let v = fields::tags("tags", &given, &mut e);
            match first_error(e) {
                None => {
                    let mut joined = String::new();
                    for (n, t) in v.iter().enumerate() {
                        if n > 0 {
                            joined.push(SQL_TAG_JOIN);
                        }
                        joined.push_str(t);
                    }
                    Some(joined)
                }
                Some(m) => {
                    self.reject(out, row, i, "invalid_tags", m);
                    None
                }
            }
        });
        // The attributes object as JSON text, written directly (string values only), held to
        // the size rule of `fields::attributes`.
        let mut attrs = String::new();
        for (i, _) in &h.attributes {
            let v = cells[*i].trim();
            if v.is_empty() {
                continue;
            }
            if v.contains('\0') {
                self.reject(
                    out,
                    row,
                    *i,
                    "invalid_attribute",
                    "must not contain NUL characters".into(),
                );
                continue;
            }
            attrs.push(if attrs.is_empty() { '{' } else { ',' });
            attrs.push_str(&h.json_keys[*i]);
            attrs.push(':');
            attrs.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        let attributes = if attrs.is_empty() {
            None
        } else {
            attrs.push('}');
            if attrs.len() > fields::MAX_ATTRIBUTES_BYTES {
                out.push(Rejection {
                    row,
                    column: None,
                    code: "invalid_attribute",
                    message: format!(
                        "the row's attributes: at most {} bytes of JSON (got {})",
                        fields::MAX_ATTRIBUTES_BYTES,
                        attrs.len()
                    ),
                });
                None
            } else {
                Some(attrs)
            }
        };
        if out.len() > before {
            return None;
        }
        Some(GoodRow {
            row,
            phone: phone?,
            name,
            email,
            tags,
            attributes,
        })
    }

    fn phone(&mut self, row: u32, raw: &str, out: &mut Vec<Rejection>) -> Option<String> {
        let col = self.header.phone;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            self.reject(
                out,
                row,
                col,
                "invalid_phone",
                "a phone number is required".into(),
            );
            return None;
        }
        let first = trimmed
            .chars()
            .find(|c| !matches!(c, ' ' | '\u{a0}' | '\t' | '-' | '.' | '/' | '('));
        let digits_only: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        let international = first == Some('+') || digits_only.starts_with("00");
        let parsed = if international {
            PhoneE164::parse(trimmed)
        } else {
            match self.country {
                Some(c) => c.national_to_e164(trimmed),
                None => {
                    // Letters and the like are invalid whatever the country.
                    if let Err(e) = PhoneE164::parse(trimmed) {
                        if !matches!(
                            e,
                            ezpulze_payload::phone::PhoneError::LeadingZero
                                | ezpulze_payload::phone::PhoneError::TooShort(_)
                        ) {
                            self.reject(out, row, col, "invalid_phone", e.to_string());
                            return None;
                        }
                    }
                    self.reject(
                        out,
                        row,
                        col,
                        "missing_country_code",
                        "a national number without a country code: write it as +<country code> \
                         <number> or give ?default_country="
                            .into(),
                    );
                    return None;
                }
            }
        };
        let phone = match parsed {
            Ok(p) => p.into_string(),
            Err(e) => {
                self.reject(out, row, col, "invalid_phone", e.to_string());
                return None;
            }
        };
        let key: u64 = phone[1..].parse().unwrap_or(u64::MAX);
        if let Some(first) = self.seen.get(&key) {
            let first = *first;
            self.reject(
                out,
                row,
                col,
                "duplicate_phone",
                format!("row {first} has the same phone number; the first row is the one used"),
            );
            return None;
        }
        self.seen.insert(key, row);
        Some(phone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cells: &[&str]) -> Result<Header, String> {
        Header::parse(&cells.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    }

    fn cells<'a>(v: &[&'a str]) -> Vec<Cow<'a, str>> {
        v.iter().map(|c| Cow::Borrowed(*c)).collect()
    }

    #[test]
    fn headers() {
        let h = header(&[" Phone", "name", "TAGS", "city", "city "]);
        assert!(h.is_err(), "city twice");
        let h = header(&[" Phone", "name", "TAGS", "city", "City "]).expect("case matters");
        assert_eq!(h.phone, 0);
        assert_eq!(h.tags, Some(2));
        let h = header(&["phone", "name", "tags", "city", "Plan"]).expect("ok");
        assert_eq!(h.attribute_keys(), vec!["city", "Plan"]);
        assert!(header(&["name", "email"]).is_err());
        assert!(header(&["phone", ""]).is_err());
        assert!(header(&["phone", "Phone"]).is_err());
    }

    #[test]
    fn rows_are_checked_and_deduplicated() {
        let h = header(&["phone", "name", "email", "tags", "city"]).expect("ok");
        let mut v = Validator::new(&h, None, 10);
        let mut out = Vec::new();
        let good = v
            .check(
                2,
                &cells(&["+351 912 345 678", " Ana ", "", "a; b;a;", "Lisbon"]),
                &mut out,
            )
            .expect("good");
        assert_eq!(good.phone, "+351912345678");
        assert_eq!(good.name.as_deref(), Some("Ana"));
        assert_eq!(good.email, None);
        assert_eq!(good.tags.as_deref(), Some("a\u{1f}b"));
        assert_eq!(good.attributes.as_deref(), Some(r#"{"city":"Lisbon"}"#));
        assert!(v
            .check(3, &cells(&["00351912345678", "", "", "", ""]), &mut out)
            .is_none());
        assert_eq!(out[0].code, "duplicate_phone");
        assert!(v
            .check(4, &cells(&["912345678", "", "", "", ""]), &mut out)
            .is_none());
        assert_eq!(out[1].code, "missing_country_code");
        assert!(v
            .check(5, &cells(&["+1 CALL", "", "bad", "", ""]), &mut out)
            .is_none());
        assert_eq!(
            (out[2].code, out[3].code),
            ("invalid_phone", "invalid_email")
        );
        assert!(v.check(6, &cells(&["+1"]), &mut out).is_none());
        assert_eq!(out[4].code, "wrong_field_count");

        let pt = Country::from_iso("PT");
        let mut v = Validator::new(&h, pt, 10);
        let good = v
            .check(2, &cells(&["912 345 678", "", "", "", ""]), &mut out)
            .expect("ok");
        assert_eq!(good.phone, "+351912345678");
    }
}
