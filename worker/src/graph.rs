//! The Graph API send call: one pooled reqwest client, answers parsed into [`Answer`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

/// What came back from one send.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// HTTP 2xx with a wamid.
    Accepted { wamid: String },
    /// A Graph error body (or a non-2xx status with no body we understand).
    Error {
        status: u16,
        code: Option<i64>,
        title: String,
        transient: bool,
        retry_after: Option<Duration>,
    },
    /// The request may have reached Meta and we do not know what happened: a timeout or a
    /// broken connection after the request was written, a 5xx without a Graph body, a 2xx
    /// without a wamid. Resending could send twice.
    Ambiguous { reason: &'static str },
    /// The request never left (connection refused, DNS, ...): safe to retry.
    NotSent { reason: String },
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    messages: Vec<SuccessMessage>,
}

#[derive(Deserialize)]
struct SuccessMessage {
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    is_transient: Option<bool>,
}

/// The longest error title stored (Meta's messages are short; the column is for people).
const MAX_TITLE: usize = 300;

/// A cheap-to-clone Graph API client.
#[derive(Clone, Debug)]
pub struct Graph {
    client: reqwest::Client,
    version: String,
}

impl Graph {
    /// One pooled client for the process: `timeout` per request, idle connections kept for
    /// reuse (`pool` per host).
    pub fn new(version: &str, timeout: Duration, pool: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent("ezpulze-worker")
            .build()?;
        Ok(Self {
            client,
            version: version.to_owned(),
        })
    }

    /// `POST {base}/{version}/{phone_number_id}/messages` with the stored body.
    pub async fn send(
        &self,
        base: &str,
        phone_number_id: &str,
        token: &str,
        body: Bytes,
    ) -> Answer {
        let url = format!(
            "{}/{}/{}/messages",
            base.trim_end_matches('/'),
            self.version,
            phone_number_id
        );
        let started = Instant::now();
        let res = self
            .client
            .post(url)
            .bearer_auth(token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let answer = match res {
            Ok(resp) => read(resp).await,
            Err(e) => transport(&e),
        };
        metrics::histogram!(crate::metrics::SEND_SECONDS).record(started.elapsed().as_secs_f64());
        answer
    }
}

fn transport(e: &reqwest::Error) -> Answer {
    if e.is_connect() || e.is_builder() {
        // Nothing was written: the connection was never made.
        return Answer::NotSent {
            reason: if e.is_timeout() {
                "connect timeout".to_owned()
            } else {
                "connection failed".to_owned()
            },
        };
    }
    if e.is_timeout() {
        Answer::Ambiguous {
            reason: "the request timed out",
        }
    } else {
        Answer::Ambiguous {
            reason: "the connection broke during the request",
        }
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_TITLE {
        let mut at = MAX_TITLE;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
    }
    s
}

async fn read(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let after = retry_after(&resp);
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) if status < 300 => {
            // Accepted (2xx) but the body was lost: Meta took it, the wamid is unknown.
            let _ = e;
            return Answer::Ambiguous {
                reason: "the answer's body was lost",
            };
        }
        Err(_) => Bytes::new(),
    };
    if (200..300).contains(&status) {
        return match serde_json::from_slice::<Success>(&body) {
            Ok(s) => match s.messages.into_iter().next() {
                Some(m) if !m.id.is_empty() => Answer::Accepted { wamid: m.id },
                _ => Answer::Ambiguous {
                    reason: "a 2xx answer without a message id",
                },
            },
            Err(_) => Answer::Ambiguous {
                reason: "a 2xx answer without a message id",
            },
        };
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) if error.code.is_some() => Answer::Error {
            status,
            code: error.code,
            title: cut(error.message.unwrap_or_default()),
            transient: error.is_transient.unwrap_or(false),
            retry_after: after,
        },
        _ if status >= 500 => Answer::Ambiguous {
            reason: "a 5xx answer without a Graph error",
        },
        _ => Answer::Error {
            status,
            code: None,
            title: format!("HTTP {status} without a Graph error body"),
            transient: false,
            retry_after: after,
        },
    }
}
