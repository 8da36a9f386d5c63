//! The API's error type: every failure becomes the contract's JSON body
//! `{"error": {"code", "message", "request_id"}}` with the right status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

tokio::task_local! {
    /// The request id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing credentials: send Authorization: Bearer <key> or X-API-Key")]
    MissingApiKey,
    #[error("the credentials are not valid")]
    InvalidApiKey,
    #[error("this API key is inactive")]
    KeyInactive,
    #[error("this API key has expired")]
    KeyExpired,
    #[error("this API key lacks the scope {0}")]
    InsufficientScope(&'static str),
    #[error("requests from this IP address are not allowed for this API key")]
    IpNotAllowed,
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    /// Another request with this key is being processed (or its process died within the
    /// lock's lifetime): the same request may be retried after `retry_after_secs`.
    #[error("a request with this Idempotency-Key is still being processed; retry after {retry_after_secs} s")]
    IdempotencyInProgress { retry_after_secs: u64 },
    /// The caller holds as many live Idempotency-Key records as it may (`crate::idempotency`).
    #[error("this key holds {0}; send without an Idempotency-Key or retry later")]
    IdempotencyBudget(&'static str),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0} ms")]
    RequestTimeout(u64),
    #[error("refused: {0}")]
    CsrfRejected(&'static str),
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    /// A well-formed request the engine will not carry out, with its own code (a suppressed
    /// recipient, an audience that matches no contact).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// A refusal with its own status and code (`template_not_approved` 409,
    /// `waba_not_configured` 409, `graph_unavailable` 502, ...).
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// More requests at once than `API_MAX_CONCURRENT_REQUESTS`: retry shortly.
    #[error("the server is handling as many requests as it takes; retry shortly")]
    Overloaded,
    /// The request took longer than `API_REQUEST_TIMEOUT_SECS`.
    #[error("the request took longer than {0} s and was stopped")]
    Timeout(u64),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingApiKey | InvalidApiKey | KeyInactive | KeyExpired => StatusCode::UNAUTHORIZED,
            InsufficientScope(_) | IpNotAllowed | CsrfRejected(_) => StatusCode::FORBIDDEN,
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RateLimited { .. } | IdempotencyBudget(_) => StatusCode::TOO_MANY_REQUESTS,
            Overloaded | Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            NotFound => StatusCode::NOT_FOUND,
            Conflict(_) | IdempotencyConflict | IdempotencyInProgress { .. } => {
                StatusCode::CONFLICT
            }
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Validation(_) | Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Coded { status, .. } => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingApiKey => "missing_api_key",
            InvalidApiKey => "invalid_api_key",
            KeyInactive => "key_inactive",
            KeyExpired => "key_expired",
            InsufficientScope(_) => "insufficient_scope",
            IpNotAllowed => "ip_not_allowed",
            RateLimited { .. } | IdempotencyBudget(_) => "rate_limited",
            Overloaded => "overloaded",
            Timeout(_) => "timeout",
            NotFound => "not_found",
            Conflict(_) => "conflict",
            IdempotencyConflict | IdempotencyInProgress { .. } => "idempotency_conflict",
            PayloadTooLarge(_) => "payload_too_large",
            RequestTimeout(_) => "request_timeout",
            CsrfRejected(_) => "csrf_rejected",
            Validation(_) => "validation_failed",
            Refused { code, .. } | Coded { code, .. } => code,
            Internal(_) => "internal",
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: String,
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a [FieldError]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    required_scope: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            // Logged once, with its cause chain, inside the request's span; never sent.
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let status = self.status();
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                request_id: current_request_id(),
                details: match &self {
                    ApiError::Validation(d) => Some(d.as_slice()),
                    _ => None,
                },
                required_scope: match &self {
                    ApiError::InsufficientScope(s) => Some(s),
                    _ => None,
                },
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::IdempotencyInProgress { retry_after_secs } = self
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(e: redis::RedisError) -> Self {
        ApiError::Internal(e.into())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
