//! Test helpers: a simulator on port 0, a client, and a tiny webhook receiver.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use ezpulze_simulator::{SimConfig, SimHandle};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const PNID: &str = "106540352242922";
pub const DISPLAY: &str = "15550783881";
pub const TOKEN: &str = "EAAtest-token-1";
pub const SECRET: &str = "test-app-secret";

/// A config with one registered number and no limits or webhooks.
pub fn base_config() -> SimConfig {
    let mut cfg = SimConfig::default();
    cfg = cfg
        .merged(&json!({
            "numbers": [{"phone_number_id": PNID, "display_phone_number": DISPLAY, "access_token": TOKEN}],
            "mps_limit": 0,
            "pair_gap_ms": 0,
            "app_secret": SECRET,
        }))
        .expect("config");
    cfg
}

pub fn patch(cfg: SimConfig, p: Value) -> SimConfig {
    cfg.merged(&p).expect("patch")
}

pub struct Sim {
    pub handle: SimHandle,
    pub client: reqwest::Client,
}

impl Sim {
    pub async fn start(cfg: SimConfig) -> Sim {
        let handle = ezpulze_simulator::spawn(cfg)
            .await
            .expect("spawn simulator");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Sim { handle, client }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle.url(), path)
    }

    /// POSTs a message with the test token to the test number.
    pub async fn send(&self, body: &Value) -> (u16, Value) {
        self.send_as(PNID, TOKEN, body).await
    }

    pub async fn send_as(&self, pnid: &str, token: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(&format!("/v23.0/{pnid}/messages")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("json body");
        (status, v)
    }

    pub async fn stats(&self) -> Value {
        self.get_json("/_sim/stats").await
    }

    pub async fn pending(&self) -> u64 {
        self.get_json("/_sim/pending").await["webhook_statuses_pending"]
            .as_u64()
            .expect("pending")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json")
    }

    /// GETs `path`: the status and the body's text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        status_and_text(self.client.get(self.url(path))).await
    }

    /// POSTs `/_sim/reset`; returns the status.
    pub async fn reset(&self) -> u16 {
        status_and_text(self.client.post(self.url("/_sim/reset")))
            .await
            .0
    }

    pub async fn put_config(&self, p: Value) -> (u16, Value) {
        let resp = self
            .client
            .put(self.url("/_sim/config"))
            .json(&p)
            .send()
            .await
            .expect("put");
        let s = resp.status().as_u16();
        (s, resp.json().await.expect("json"))
    }

    /// Waits (bounded) until every planned status was delivered.
    pub async fn wait_delivered(&self) {
        let ok = wait_until(Duration::from_secs(20), || async {
            self.pending().await == 0
        })
        .await;
        assert!(ok, "webhook statuses still pending after 20 s");
    }
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A template message with `n` body text params.
pub fn template_msg(to: &str, name: &str, body_params: usize) -> Value {
    let params: Vec<Value> = (0..body_params)
        .map(|i| json!({"type": "text", "text": format!("value {i}")}))
        .collect();
    let mut components = Vec::new();
    if body_params > 0 {
        components.push(json!({"type": "body", "parameters": params}));
    }
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {"name": name, "language": {"code": "en_US"}, "components": components}
    })
}

/// Sends `req`: the status and the body's text.
async fn status_and_text(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("text"))
}

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub raw: Bytes,
}

#[derive(Clone, Default)]
pub struct ReceiverState {
    pub posts: Arc<Mutex<Vec<Received>>>,
    /// The first `fail_first` POSTs get HTTP 500.
    pub fail_first: Arc<AtomicUsize>,
    pub attempts: Arc<AtomicUsize>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub state: ReceiverState,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub fn url(&self) -> String {
        format!("http://{}/webhooks/whatsapp", self.addr)
    }

    pub fn posts(&self) -> Vec<Received> {
        self.state.posts.lock().expect("lock").clone()
    }

    /// Every status object of every accepted POST, in arrival order.
    pub fn statuses(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for p in self.posts() {
            let v: Value = serde_json::from_slice(&p.raw).expect("webhook json");
            for e in v["entry"].as_array().expect("entry") {
                for c in e["changes"].as_array().expect("changes") {
                    for s in c["value"]["statuses"].as_array().expect("statuses") {
                        out.push(s.clone());
                    }
                }
            }
        }
        out
    }
}

async fn receive(State(st): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    st.attempts.fetch_add(1, Ordering::SeqCst);
    let left = st.fail_first.load(Ordering::SeqCst);
    if left > 0 {
        st.fail_first.store(left - 1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    st.posts.lock().expect("lock").push(Received {
        signature,
        raw: body,
    });
    StatusCode::OK
}

pub async fn receiver(fail_first: usize) -> Receiver {
    let state = ReceiverState::default();
    state.fail_first.store(fail_first, Ordering::SeqCst);
    let app = Router::new()
        .route("/webhooks/whatsapp", post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Receiver {
        addr,
        state,
        _stop: tx,
    }
}

/// Independent check of `X-Hub-Signature-256` in constant time.
pub fn signature_ok(secret: &str, raw: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(raw);
    mac.verify_slice(&sig).is_ok()
}
