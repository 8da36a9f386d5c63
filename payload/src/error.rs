//! Field-level errors shared by template validation and expansion.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable machine code of a [`FieldError`].
///
/// The API puts these codes in its 422 `details` and in a send's `rejected` list, so the
/// serialised names (snake_case) never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The recipient phone number is not a valid E.164 number.
    InvalidPhone,
    /// The template needs a value that neither the recipient nor the defaults supply.
    MissingVariable,
    /// A value was supplied for a slot the template does not have.
    ExtraVariable,
    /// A media header of another kind than the template's (e.g. video for an image header).
    WrongMediaKind,
    /// The number of carousel cards differs from the template's.
    CardCount,
    /// A text is longer than Meta allows.
    TooLong,
    /// Too many items (buttons, sections, products, ...).
    TooMany,
    /// Too few items (no sections, no product items, ...).
    TooFew,
    /// A value has the right place but a wrong form (empty text, bad URL, bad number, ...).
    InvalidValue,
    /// A field the template definition needs is absent.
    Required,
    /// A field or component is not allowed in this place of a template definition.
    NotAllowed,
    /// Positional parameters are not numbered `{{1}}..{{n}}` or named ones are malformed.
    ParamNumbering,
    /// The same thing was given twice (component, button index, parameter name).
    Duplicate,
    /// The template definition itself is invalid (expansion refused).
    InvalidTemplate,
}

impl ErrorCode {
    /// The stable snake_case name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPhone => "invalid_phone",
            ErrorCode::MissingVariable => "missing_variable",
            ErrorCode::ExtraVariable => "extra_variable",
            ErrorCode::WrongMediaKind => "wrong_media_kind",
            ErrorCode::CardCount => "card_count",
            ErrorCode::TooLong => "too_long",
            ErrorCode::TooMany => "too_many",
            ErrorCode::TooFew => "too_few",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::Required => "required",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::ParamNumbering => "param_numbering",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::InvalidTemplate => "invalid_template",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one field: `{"field": "body[1]", "code": "missing_variable", "message": ...}`.
///
/// Field paths are relative to the object that was checked: a template definition
/// (`components[1].buttons[0].text`) or a recipient's `variables` (`body[1]`,
/// `cards[2].header`). The expansion's `to` and `biz_opaque_callback_data` are reported as
/// `to` and `callback_data`. Values that came from a broadcast's defaults are reported under
/// `defaults.` (e.g. `defaults.header`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message} ({code})")]
pub struct FieldError {
    /// Path of the offending field.
    pub field: String,
    /// Stable machine code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// Builds an error.
    pub fn new(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// A list of [`FieldError`]s as one error value (for `?` in callers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} invalid field(s); first: {}", .0.len(), first(.0))]
pub struct FieldErrors(pub Vec<FieldError>);

fn first(errors: &[FieldError]) -> String {
    errors
        .first()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "none".to_owned())
}

impl From<Vec<FieldError>> for FieldErrors {
    fn from(v: Vec<FieldError>) -> Self {
        FieldErrors(v)
    }
}

/// Collects errors while walking a structure.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn push(
        &mut self,
        field: impl Into<String>,
        code: ErrorCode,
        msg: impl Into<String>,
    ) {
        self.0.push(FieldError::new(field, code, msg));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
