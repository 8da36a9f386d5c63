//! Meta's Graph API error shape:
//! `{"error":{"message","type","code","error_data":{"messaging_product","details"},"error_subcode"?,"fbtrace_id"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::rng;

/// An error answered to a send request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("({code}) {message}")]
pub struct GraphError {
    pub status: StatusCode,
    pub code: u32,
    pub subcode: Option<u32>,
    pub message: String,
    pub details: String,
    /// `is_transient` hint (only sent when true).
    pub transient: bool,
}

impl GraphError {
    pub fn new(
        status: StatusCode,
        code: u32,
        message: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            subcode: None,
            message: message.into(),
            details: details.into(),
            transient: false,
        }
    }

    /// The same error, marked as one a client may retry.
    pub fn retryable(mut self) -> Self {
        self.transient = true;
        self
    }

    /// `(#100) Invalid parameter` family.
    pub fn invalid_param(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            100,
            "(#100) Invalid parameter",
            details,
        )
    }

    /// A missing top-level field: `(#100) The parameter X is required.`
    pub fn required(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            100,
            format!("(#100) The parameter {field} is required."),
            format!("The parameter {field} is required."),
        )
    }

    /// `(#131008) Required parameter is missing`
    pub fn missing(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131008,
            "(#131008) Required parameter is missing",
            details,
        )
    }

    /// `(#131009) Parameter value is not valid`
    pub fn bad_value(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131009,
            "(#131009) Parameter value is not valid",
            details,
        )
    }

    /// `(#132000) Number of parameters does not match the expected number of params`
    pub fn param_count(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            132000,
            "(#132000) Number of parameters does not match the expected number of params",
            details,
        )
    }

    /// `(#132001) Template name does not exist in the translation`
    pub fn no_template(name: &str, lang: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            132001,
            "(#132001) Template name does not exist in the translation",
            format!("template name ({name}) does not exist in {lang}"),
        )
    }

    /// `(#132012) Parameter format does not match format in the created template`
    pub fn format_mismatch(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            132012,
            "(#132012) Parameter format does not match format in the created template",
            details,
        )
    }

    /// `(#132018) There was an issue with the parameters in your template.`
    pub fn param_issue(details: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            132018,
            "(#132018) There was an issue with the parameters in your template.",
            details,
        )
    }

    pub fn bad_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            190,
            "Error validating access token: Session has expired or the token is invalid.",
            "Invalid OAuth access token - Cannot parse access token",
        )
    }

    pub fn unknown_object(id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            100,
            format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ),
            format!("Object with ID '{id}' does not exist"),
        );
        e.subcode = Some(33);
        e
    }

    pub fn throughput() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            130429,
            "(#130429) Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
        .retryable()
    }

    pub fn pair_limit() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            131056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
        )
        .retryable()
    }

    pub fn unknown_1() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            1,
            "An unknown error occurred",
            "An unknown error occurred",
        )
        .retryable()
    }

    pub fn service_2() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "An unexpected error has occurred. Please retry your request later.",
            "Service temporarily unavailable",
        )
        .retryable()
    }

    pub fn internal_131000() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            131000,
            "(#131000) Something went wrong",
            "Message failed to send due to an unknown error.",
        )
    }

    pub fn timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            2,
            "An unexpected error has occurred. Please retry your request later.",
            "Request timed out",
        )
        .retryable()
    }

    /// JSON body in Meta's shape.
    pub fn body(&self, trace_seed: u64) -> Vec<u8> {
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            code: u32,
            error_data: Data<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error_subcode: Option<u32>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            is_transient: bool,
            fbtrace_id: String,
        }
        #[derive(Serialize)]
        struct Data<'a> {
            messaging_product: &'a str,
            details: &'a str,
        }
        let outer = Outer {
            error: Inner {
                message: &self.message,
                kind: "OAuthException",
                code: self.code,
                error_data: Data {
                    messaging_product: "whatsapp",
                    details: &self.details,
                },
                error_subcode: self.subcode,
                is_transient: self.transient,
                fbtrace_id: rng::trace_id(trace_seed),
            },
        };
        serde_json::to_vec(&outer).unwrap_or_default()
    }

    pub fn into_response_with(self, trace_seed: u64) -> Response {
        let body = self.body(trace_seed);
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}
