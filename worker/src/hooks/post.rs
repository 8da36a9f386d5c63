//! One attempt: the signed POST of an event to its endpoint, and what its answer means.
//!
//! Every connection goes through [`PublicOnly`], which resolves the host and refuses when any
//! address is not public (loopback allowed in development), so a name that points inside
//! after the endpoint was saved is still refused; an IP literal is checked before the request.
//! Redirects are not followed (a 3xx is a failed attempt), the whole exchange has one timeout,
//! and at most [`MAX_ANSWER_BYTES`] of the answer are read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ezpulze_common::{hook_url, hooks};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use super::claim::Claimed;

/// At most this much of an answer is read (its first bytes go into `last_error`).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A `Retry-After` longer than this is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What an attempt's answer means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Succeeded,
    /// 5xx, 408, 429, 3xx, a timeout or a connection error: try again (after `Retry-After`
    /// when the answer had one).
    Retry { retry_after: Option<Duration> },
    /// Any other 4xx: the endpoint refused the event for good.
    Failed,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub outcome: Outcome,
    pub status: Option<u16>,
    pub latency: Duration,
    /// Why it did not succeed (never the body of the event).
    pub error: Option<String>,
}

/// The class of an HTTP status, with the answer's `Retry-After` (seconds).
pub fn classify(status: u16, retry_after: Option<&str>) -> Outcome {
    match status {
        200..=299 => Outcome::Succeeded,
        408 | 429 | 300..=399 | 500..=599 => Outcome::Retry {
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
        },
        400..=499 => Outcome::Failed,
        _ => Outcome::Retry { retry_after: None },
    }
}

/// DNS for the webhook client: refuses names with a non-public address.
struct PublicOnly {
    development: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let development = self.development;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = hook_url::resolve_public(&host, 0, development)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub struct Client {
    http: reqwest::Client,
    development: bool,
}

impl Client {
    pub fn new(timeout: Duration, development: bool) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly { development }))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self { http, development })
    }

    /// Posts `row`'s event to `url`, signed with `keys` (Standard Webhooks).
    pub async fn post(&self, url: &str, keys: &[Vec<u8>], row: &Claimed) -> Attempt {
        let started = Instant::now();
        let fail = |error: String, started: Instant| Attempt {
            outcome: Outcome::Retry { retry_after: None },
            status: None,
            latency: started.elapsed(),
            error: Some(error),
        };
        if keys.is_empty() {
            return fail("the endpoint's secret cannot be opened".into(), started);
        }
        // An IP literal never reaches the resolver.
        if let Ok(parsed) = url::Url::parse(url) {
            let literal = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| hook_url::is_forbidden_ip(ip, self.development)) {
                return fail("the endpoint's address is not public".into(), started);
            }
        }
        let timestamp = chrono::Utc::now().timestamp();
        let signature =
            hooks::signature_header(keys, &row.event_id, timestamp, row.body.as_bytes());
        let sent = self
            .http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static("EzPulze-Webhooks/1"))
            .header("webhook-id", &row.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(row.body.clone())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return fail(describe(&e), started),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A bounded read: at most MAX_ANSWER_BYTES, the rest is dropped with the connection.
        let mut head: Vec<u8> = Vec::new();
        let mut read_error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES.saturating_sub(head.len());
                    head.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if head.len() >= MAX_ANSWER_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(describe(&e));
                    break;
                }
            }
        }
        let outcome = classify(status, retry_after.as_deref());
        let error = match outcome {
            Outcome::Succeeded => None,
            _ => Some(read_error.unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&head[..head.len().min(200)]).into_owned();
                format!("HTTP {status}: {text}")
            })),
        };
        Attempt {
            outcome,
            status: Some(status),
            latency: started.elapsed(),
            error,
        }
    }
}

/// A transport error in a line (its source chain, which names what failed).
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    fn row() -> Claimed {
        Claimed {
            id: uuid::Uuid::now_v7(),
            endpoint_id: uuid::Uuid::now_v7(),
            event_id: "evt_test".into(),
            body: r#"{"id":"evt_test"}"#.into(),
            attempts: 1,
        }
    }

    /// A hostile receiver: `/hang` never answers, `/huge` answers 1 GiB, `/redirect` sends
    /// elsewhere, `/ok` answers 204.
    async fn hostile() -> String {
        let app = axum::Router::new()
            .route(
                "/hang",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    "late"
                }),
            )
            .route(
                "/huge",
                post(|| async {
                    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                    let stream = futures::stream::iter(
                        (0..16 * 1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                    );
                    axum::body::Body::from_stream(stream)
                }),
            )
            .route(
                "/redirect",
                post(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [(axum::http::header::LOCATION, "/ok")],
                    )
                }),
            )
            .route("/ok", post(|| async { axum::http::StatusCode::NO_CONTENT }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_hostile_receiver_costs_one_timeout_and_a_bounded_read() {
        let base = hostile().await;
        let client = Client::new(Duration::from_millis(500), true).expect("client");
        let keys = vec![b"key".to_vec()];
        let started = Instant::now();
        let a = client.post(&format!("{base}/hang"), &keys, &row()).await;
        assert_eq!(a.outcome, Outcome::Retry { retry_after: None });
        assert!(
            a.error.as_deref().is_some_and(|e| e.contains("timed out")),
            "{a:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let started = Instant::now();
        let a = client.post(&format!("{base}/huge"), &keys, &row()).await;
        assert_eq!(a.outcome, Outcome::Succeeded, "{a:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "not read whole");
        let a = client
            .post(&format!("{base}/redirect"), &keys, &row())
            .await;
        assert_eq!(a.status, Some(302), "not followed: {a:?}");
        assert_eq!(a.outcome, Outcome::Retry { retry_after: None });
        let a = client.post(&format!("{base}/ok"), &keys, &row()).await;
        assert_eq!((a.outcome, a.status), (Outcome::Succeeded, Some(204)));
    }

    #[tokio::test]
    async fn production_never_connects_to_a_private_address() {
        let base = hostile().await;
        let port = base.rsplit(':').next().unwrap_or_default().to_owned();
        let client = Client::new(Duration::from_millis(500), false).expect("client");
        let keys = vec![b"key".to_vec()];
        for url in [
            format!("{base}/ok"),
            format!("http://localhost:{port}/ok"),
            format!("http://[::ffff:127.0.0.1]:{port}/ok"),
            format!("http://0x7f000001:{port}/ok"),
        ] {
            let a = client.post(&url, &keys, &row()).await;
            assert_eq!(a.status, None, "{url}: {a:?}");
            assert_eq!(a.outcome, Outcome::Retry { retry_after: None }, "{url}");
        }
    }

    #[test]
    fn classifies_answers() {
        assert_eq!(classify(200, None), Outcome::Succeeded);
        assert_eq!(classify(204, None), Outcome::Succeeded);
        assert_eq!(classify(400, None), Outcome::Failed);
        assert_eq!(classify(410, Some("5")), Outcome::Failed);
        assert_eq!(
            classify(429, Some("7")),
            Outcome::Retry {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(503, Some("999999999")),
            Outcome::Retry {
                retry_after: Some(MAX_RETRY_AFTER)
            }
        );
        assert_eq!(classify(408, None), Outcome::Retry { retry_after: None });
        assert_eq!(classify(302, None), Outcome::Retry { retry_after: None });
        assert_eq!(
            classify(500, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Outcome::Retry { retry_after: None }
        );
    }
}
