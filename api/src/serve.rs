//! Serving the router over TCP: HTTP/1.1 connections served one task each with hyper, so
//! slow clients are cut off.
//!
//! - **Headers**: a connection that has not sent a whole request head within
//!   `API_HEADER_READ_TIMEOUT_MS` of being opened (or of its previous response: an idle
//!   keep-alive connection counts as waiting for headers) is closed without an answer.
//! - **Bodies**: a request whose body has not fully arrived `API_BODY_READ_TIMEOUT_MS` after its
//!   headers is answered 408 `request_timeout` with `Connection: close`. The deadline covers
//!   the whole body, so trickling a byte now and then does not extend it.
//!
//! Every request carries `ConnectInfo<SocketAddr>` (the client-IP logic reads it). On
//! `cancel` the listener closes, idle connections close, and in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::error::{ApiError, REQUEST_ID};
use crate::middleware::X_REQUEST_ID;

/// How long a client may take to send a request.
#[derive(Debug, Clone, Copy)]
pub struct ReadTimeouts {
    pub header: Duration,
    pub body: Duration,
}

impl ReadTimeouts {
    pub fn of(config: &ezpulze_common::Config) -> Self {
        Self {
            header: config.header_read_timeout,
            body: config.body_read_timeout,
        }
    }
}

/// Serves `app` on `listener` until `cancel` fires, then waits for open connections to finish
/// their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: ReadTimeouts,
    cancel: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(app.clone(), req, remote, timeouts.body)
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                // Header timeouts, resets and malformed requests: the client's doing.
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// As `axum::serve`: a client that hung up before its connection was taken is nothing; any
/// other error (e.g. out of file descriptors) is logged and accepting pauses for a second.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn handle(
    app: Router,
    req: Request<Incoming>,
    remote: SocketAddr,
    body_timeout: Duration,
) -> Result<Response, Infallible> {
    let timed_out = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(remote));
    let body = Body::new(DeadlineBody {
        body,
        deadline: Instant::now() + body_timeout,
        sleep: None,
        timed_out: timed_out.clone(),
    });
    let resp = app.oneshot(Request::from_parts(parts, body)).await?;
    if !timed_out.load(Ordering::Relaxed) {
        return Ok(resp);
    }
    // Whatever the handler made of the failed read (422, 400, ...), the answer is 408.
    metrics::counter!("ezpulze_http_body_timeouts_total").increment(1);
    let id = resp.headers().get(&X_REQUEST_ID).cloned();
    let request_id = id
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let millis = u64::try_from(body_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut timeout = REQUEST_ID.sync_scope(request_id, || {
        ApiError::RequestTimeout(millis).into_response()
    });
    let headers = timeout.headers_mut();
    if let Some(id) = id {
        headers.insert(X_REQUEST_ID.clone(), id);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(timeout)
}

pin_project_lite::pin_project! {
    /// A request body that fails (and says so in `timed_out`) once its deadline has passed
    /// while the handler waits for more of it.
    struct DeadlineBody<B> {
        #[pin]
        body: B,
        deadline: Instant,
        #[pin]
        sleep: Option<Sleep>,
        timed_out: Arc<AtomicBool>,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.sleep.is_none() {
            this.sleep
                .set(Some(tokio::time::sleep_until(*this.deadline)));
        }
        let expired = this
            .sleep
            .as_pin_mut()
            .is_some_and(|sleep| sleep.poll(cx).is_ready());
        if !expired {
            return Poll::Pending;
        }
        this.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
