//! Request ids, request spans, HTTP metrics, and the bound on requests at once and on each
//! request's time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::REQUEST_ID;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Takes a sane incoming `X-Request-Id` or makes one, runs the request inside a span and the
/// request-id task-local (so error bodies carry it), and echoes it on the response.
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span))
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    resp
}

/// Counts and times requests by matched route (never the raw path), method and status.
pub async fn http_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("ezpulze_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("ezpulze_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// How many requests the api serves at once and for how long each may run.
#[derive(Clone)]
pub struct Bounds {
    permits: Arc<tokio::sync::Semaphore>,
    timeout: Duration,
}

impl Bounds {
    pub fn new(max_concurrent: usize, timeout: Duration) -> Bounds {
        Bounds {
            permits: Arc::new(tokio::sync::Semaphore::new(max_concurrent)),
            timeout,
        }
    }
}

/// A request past the concurrency bound answers 503 `overloaded` at once (it is not queued:
/// a queue would only hold memory for clients that will time out); one that runs longer than
/// the timeout is stopped with 503 `timeout`. Work a handler committed before that stays
/// committed (sends are idempotent with an Idempotency-Key). Gauge
/// `ezpulze_http_requests_in_flight`, counters `ezpulze_http_requests_shed_total` and
/// `ezpulze_http_requests_timed_out_total`.
pub async fn bounded(
    axum::extract::State(b): axum::extract::State<Bounds>,
    req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    let Ok(_permit) = b.permits.clone().try_acquire_owned() else {
        metrics::counter!("ezpulze_http_requests_shed_total").increment(1);
        return crate::error::ApiError::Overloaded.into_response();
    };
    let in_flight = metrics::gauge!("ezpulze_http_requests_in_flight");
    in_flight.increment(1.0);
    let resp = tokio::time::timeout(b.timeout, next.run(req)).await;
    in_flight.decrement(1.0);
    match resp {
        Ok(r) => r,
        Err(_) => {
            metrics::counter!("ezpulze_http_requests_timed_out_total").increment(1);
            crate::error::ApiError::Timeout(b.timeout.as_secs()).into_response()
        }
    }
}
