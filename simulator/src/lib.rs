//! EzPulze Graph API simulator: plays Meta's side of the WhatsApp Cloud API for tests, local
//! runs and load tests. It is written independently of the engine: it shares no payload,
//! signing or webhook code with the other crates of the workspace.
//!
//! Entry points: [`run`] serves on a bound listener until a shutdown future resolves;
//! [`spawn`] binds `127.0.0.1:0` and serves in the background (tests).

pub mod config;
pub mod events;
pub mod graph_error;
pub mod inbound;
pub mod limits;
pub mod receiver;
pub mod rng;
pub mod templates;
pub mod tier;
pub mod validate;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering as AO};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{ConfigError, SimConfig};
use graph_error::GraphError;
use validate::TemplateBook;
use webhook::{Hooks, Msg, NumberInfo, Status};

/// A compiled snapshot of the configuration.
#[derive(Debug)]
pub struct Runtime {
    pub cfg: SimConfig,
    numbers: HashMap<String, (Arc<NumberInfo>, String, Option<u32>)>,
    book: TemplateBook,
}

impl Runtime {
    fn new(cfg: SimConfig) -> Self {
        let numbers = cfg
            .numbers
            .iter()
            .map(|n| {
                let info = Arc::new(NumberInfo {
                    phone_number_id: n.phone_number_id.clone(),
                    display_phone_number: if n.display_phone_number.is_empty() {
                        n.phone_number_id.clone()
                    } else {
                        n.display_phone_number.clone()
                    },
                    // A number without its own WABA belongs to the global one when there is
                    // one (a dev stack's single WABA), else to a WABA of its own id.
                    waba_id: n
                        .waba_id
                        .clone()
                        .or_else(|| cfg.waba_id.clone())
                        .unwrap_or_else(|| n.phone_number_id.clone()),
                    webhook_url: n.webhook_url.clone(),
                    app_secret: n.app_secret.clone(),
                });
                (
                    n.phone_number_id.clone(),
                    (info, n.access_token.clone(), n.mps_limit),
                )
            })
            .collect();
        let book = TemplateBook::new(&cfg.templates);
        Self { cfg, numbers, book }
    }
}

/// Ground-truth counters.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    /// Lock-free counters for the keys in `KNOWN_REJECTS`.
    rejected_known: [AtomicU64; KNOWN_REJECTS.len()],
    /// Any other error code.
    rejected_other: Mutex<BTreeMap<String, u64>>,
    statuses: [AtomicU64; 4],
    /// Sends authorised by the sandbox token (`sandbox_token`).
    sandbox_sends: AtomicU64,
}

/// Rejection keys counted without a lock (also the `code` label values of the metrics).
const KNOWN_REJECTS: [&str; 15] = [
    "1", "2", "100", "190", "130429", "131000", "131008", "131009", "131051", "131056", "132000",
    "132001", "132012", "132018", "timeout",
];

impl Stats {
    /// Counts a rejection by its key (a Graph error code or `timeout`).
    fn reject(&self, key: &str) {
        if let Some(i) = KNOWN_REJECTS.iter().position(|k| *k == key) {
            self.rejected_known[i].fetch_add(1, AO::Relaxed);
        } else if let Ok(mut m) = self.rejected_other.lock() {
            *m.entry(key.to_owned()).or_insert(0) += 1;
        }
    }

    fn rejected(&self) -> BTreeMap<String, u64> {
        let mut out = self
            .rejected_other
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        for (k, c) in KNOWN_REJECTS.iter().zip(&self.rejected_known) {
            let n = c.load(AO::Relaxed);
            if n > 0 {
                out.insert((*k).to_owned(), n);
            }
        }
        out
    }

    pub(crate) fn count_status(&self, s: Status) {
        self.statuses[s as usize].fetch_add(1, AO::Relaxed);
        metrics::counter!("ezpulze_sim_webhook_statuses_total", "status" => s.as_str())
            .increment(1);
    }

    fn reset(&self) {
        self.accepted.store(0, AO::Relaxed);
        self.sandbox_sends.store(0, AO::Relaxed);
        if let Ok(mut m) = self.rejected_other.lock() {
            m.clear();
        }
        for c in &self.rejected_known {
            c.store(0, AO::Relaxed);
        }
        for s in &self.statuses {
            s.store(0, AO::Relaxed);
        }
    }
}

/// State shared by handlers and background tasks.
#[derive(Debug)]
pub struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    pub(crate) stats: Stats,
    limiter: limits::Limiter,
    pub(crate) hooks: Hooks,
    pub(crate) generation: AtomicU64,
    request_seq: AtomicU64,
    metrics: Option<PrometheusHandle>,
    closing: watch::Receiver<bool>,
    held: AtomicU64,
    /// Per-process nonce for message ids.
    boot: u64,
    /// The integrator-event test receivers (`/_recv/{name}`).
    receivers: receiver::Receivers,
    /// Inbound messages posted by `/_sim/inbound`.
    pub(crate) inbound: inbound::InboundStats,
    /// The message templates submitted or seeded, and their review (`templates`).
    pub(crate) templates: templates::Templates,
    /// The WABA-level webhooks emitted by `/_sim/events`.
    pub(crate) events: events::EventStats,
    /// The portfolios' messaging-limit counts (`tier`).
    pub(crate) portfolios: tier::Portfolios,
}

impl Shared {
    fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Sleeps `ms`, or less when the server is shutting down.
    async fn hold(&self, ms: u64) {
        let mut closing = self.closing.clone();
        if *closing.borrow() {
            return;
        }
        // Counted down on drop: when the client gives up first, hyper drops the handler's
        // future mid-sleep, and `requests_held` must still return to 0.
        let _held = HeldGuard::new(&self.held);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = closing.changed() => {}
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> SimConfigRef {
        SimConfigRef(self.runtime())
    }

    fn set_config(&self, cfg: SimConfig) {
        let rt = Arc::new(Runtime::new(cfg));
        match self.runtime.write() {
            Ok(mut w) => *w = rt,
            Err(p) => *p.into_inner() = rt,
        }
    }
}

/// One request counted in `requests_held` for as long as the guard lives.
struct HeldGuard<'a>(&'a AtomicU64);

impl<'a> HeldGuard<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, AO::Relaxed);
        HeldGuard(counter)
    }
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AO::Relaxed);
    }
}

/// A cheap handle on the configuration in force.
#[derive(Debug, Clone)]
pub struct SimConfigRef(Arc<Runtime>);

impl std::ops::Deref for SimConfigRef {
    type Target = SimConfig;
    fn deref(&self) -> &SimConfig {
        &self.0.cfg
    }
}

fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Serves the simulator on `listener` until `shutdown` resolves.
pub async fn run(
    config: SimConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SimError> {
    config.validate()?;
    let (hooks, rx) = Hooks::new();
    let (closing_tx, closing_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        runtime: RwLock::new(Arc::new(Runtime::new(config))),
        stats: Stats::default(),
        limiter: limits::Limiter::default(),
        hooks,
        generation: AtomicU64::new(0),
        request_seq: AtomicU64::new(0),
        metrics: prometheus(),
        closing: closing_rx,
        held: AtomicU64::new(0),
        boot: rng::mix(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ u64::from(std::process::id()),
        ),
        receivers: receiver::Receivers::default(),
        inbound: inbound::InboundStats::default(),
        templates: templates::Templates::default(),
        events: events::EventStats::default(),
        portfolios: tier::Portfolios::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let sched = tokio::spawn(webhook::scheduler(shared.clone(), rx, stop_rx.clone()));
    let pruner = tokio::spawn(prune_pairs(shared.clone(), stop_rx));
    let app = router(shared);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Held (timeout-injected) requests end now instead of delaying the shutdown.
            let _ = closing_tx.send(true);
        })
        .await;
    let _ = stop_tx.send(true);
    let _ = sched.await;
    let _ = pruner.await;
    served.map_err(SimError::Io)
}

/// Errors that stop the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A simulator running in the background (for tests and embedding).
#[derive(Debug)]
pub struct SimHandle {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), SimError>>>,
}

impl SimHandle {
    /// `http://127.0.0.1:port`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Result<(), SimError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Binds `127.0.0.1:0` and serves in the background.
pub async fn spawn(config: SimConfig) -> Result<SimHandle, SimError> {
    config.validate()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(config, listener, async {
        let _ = rx.await;
    }));
    Ok(SimHandle {
        addr,
        stop: Some(tx),
        task: Some(task),
    })
}

async fn prune_pairs(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let gap = Duration::from_millis(shared.config().pair_gap_ms);
        shared.limiter.prune_pairs(gap);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{version}/{phone_number_id}/messages", post(send_message))
        .route("/{phone_number_id}/messages", post(send_unversioned))
        .route("/_sim/stats", get(get_stats))
        .route("/_sim/pending", get(get_pending))
        .route("/_sim/config", get(get_config).put(put_config))
        .route("/_sim/reset", post(reset))
        .route("/_sim/inbound", post(inbound::post_inbound))
        .route(
            "/{version}/{phone_number_id}/message_templates",
            post(templates::create).get(templates::list),
        )
        .route("/_sim/templates", get(templates::all).post(templates::seed))
        .route(
            "/_sim/templates/{name}/status",
            post(templates::post_status),
        )
        .route("/_sim/events", post(events::post_event))
        .route(
            "/_recv/{name}",
            post(receiver::deliver).layer(DefaultBodyLimit::max(receiver::BODY_LIMIT)),
        )
        .route(
            "/_recv/{name}/config",
            get(receiver::get_config).put(receiver::put_config),
        )
        .route("/_recv/{name}/stats", get(receiver::stats))
        .route("/_recv/{name}/reset", post(receiver::reset))
        .route("/healthz", get(|| async { "ok" }))
        // Nothing to wait for once it listens (so `make up` can check every role the same way).
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(render_metrics))
        .with_state(shared)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let t = token.trim();
        (!t.is_empty()).then_some(t)
    } else {
        None
    }
}

fn code_label(code: u32) -> &'static str {
    match code {
        1 => "1",
        2 => "2",
        100 => "100",
        190 => "190",
        130429 => "130429",
        131000 => "131000",
        131008 => "131008",
        131009 => "131009",
        131051 => "131051",
        131056 => "131056",
        132000 => "132000",
        132001 => "132001",
        132012 => "132012",
        132018 => "132018",
        _ => "other",
    }
}

fn reject(shared: &Shared, err: GraphError, seq: u64) -> Response {
    match code_label(err.code) {
        "other" => shared.stats.reject(&err.code.to_string()),
        known => shared.stats.reject(known),
    }
    metrics::counter!("ezpulze_sim_messages_rejected_total", "code" => code_label(err.code))
        .increment(1);
    err.into_response_with(seq)
}

#[derive(Serialize)]
struct SendOk<'a> {
    messaging_product: &'static str,
    contacts: [Contact<'a>; 1],
    messages: [MessageId<'a>; 1],
}
#[derive(Serialize)]
struct Contact<'a> {
    input: &'a str,
    wa_id: &'a str,
}
#[derive(Serialize)]
struct MessageId<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_status: Option<&'static str>,
}

/// A wamid in Meta's style: `wamid.` + base64 of an opaque id.
/// `boot` makes ids unique across restarts of the simulator (the engine's database outlives it).
pub(crate) fn make_wamid(boot: u64, seq: u64, wa_id: &str) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = Vec::with_capacity(48);
    raw.extend_from_slice(&[0x1c, 0x18, wa_id.len() as u8]);
    raw.extend_from_slice(wa_id.as_bytes());
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, 0x1a]);
    let boot = boot & 0xff_ffff_ffff;
    raw.extend_from_slice(format!("{boot:010X}{seq:016X}").as_bytes());
    raw.push(0);
    let mut out = String::with_capacity(6 + raw.len() * 4 / 3 + 4);
    out.push_str("wamid.");
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

enum Injected {
    None,
    Sync(GraphError),
    Async(u32),
    Timeout,
}

fn draw_injection(cfg: &SimConfig, seq: u64) -> Injected {
    let r = &cfg.error_rates;
    let u = rng::draw(cfg.seed, seq, 2);
    let mut acc = r.e5xx;
    if u < acc {
        return Injected::Sync(if rng::draw(cfg.seed, seq, 3) < 0.5 {
            GraphError::unknown_1()
        } else {
            GraphError::service_2()
        });
    }
    acc += r.e131000;
    if u < acc {
        return Injected::Sync(GraphError::internal_131000());
    }
    acc += r.e190;
    if u < acc {
        return Injected::Sync(GraphError::bad_token());
    }
    acc += r.timeout;
    if u < acc {
        return Injected::Timeout;
    }
    acc += r.e131026;
    if u < acc {
        return Injected::Async(131026);
    }
    acc += r.e131049;
    if u < acc {
        return Injected::Async(131049);
    }
    acc += r.e131050;
    if u < acc {
        return Injected::Async(131050);
    }
    Injected::None
}

/// Graph also serves unversioned paths (the app's default version).
async fn send_unversioned(
    state: State<Arc<Shared>>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send_message(state, Path((String::new(), phone_number_id)), headers, body).await
}

async fn send_message(
    State(shared): State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = shared.request_seq.fetch_add(1, AO::Relaxed);
    let rt = shared.runtime();
    let cfg = &rt.cfg;
    if cfg.latency_ms > 0 || cfg.latency_jitter_ms > 0 {
        let d = cfg.latency_ms + rng::draw_upto(cfg.seed, seq, 1, cfg.latency_jitter_ms);
        tokio::time::sleep(Duration::from_millis(d)).await;
    }
    // Token, then the phone number object.
    let token = bearer(&headers);
    let number: Arc<NumberInfo> = if rt.numbers.is_empty() {
        if token.is_none() {
            return reject(&shared, GraphError::bad_token(), seq);
        }
        Arc::new(NumberInfo {
            phone_number_id: phone_number_id.clone(),
            display_phone_number: phone_number_id.clone(),
            waba_id: phone_number_id.clone(),
            webhook_url: None,
            app_secret: None,
        })
    } else {
        match (rt.numbers.get(&phone_number_id), token) {
            (Some((info, expected, _)), Some(t))
                if t == expected || cfg.sandbox_token.as_deref() == Some(t) =>
            {
                if cfg.sandbox_token.as_deref() == Some(t) {
                    shared.stats.sandbox_sends.fetch_add(1, AO::Relaxed);
                }
                info.clone()
            }
            (None, Some(t)) if rt.numbers.values().any(|(_, e, _)| e == t) => {
                return reject(&shared, GraphError::unknown_object(&phone_number_id), seq)
            }
            _ => return reject(&shared, GraphError::bad_token(), seq),
        }
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return reject(
                &shared,
                GraphError::invalid_param("The request body is not valid JSON."),
                seq,
            )
        }
    };
    let valid = match validate::validate(&value, &rt.book) {
        Ok(v) => v,
        Err(e) => return reject(&shared, e, seq),
    };
    // A template submitted here and not approved fails as at Meta (`templates`).
    if let Some(e) = shared.templates.send_refusal(&number.waba_id, &value) {
        return reject(&shared, e, seq);
    }
    let injected = draw_injection(cfg, seq);
    let timeout_accepts = match &injected {
        Injected::Sync(e) => return reject(&shared, e.clone(), seq),
        Injected::Timeout if !cfg.timeout_accepts => {
            shared.hold(cfg.timeout_ms).await;
            shared.stats.reject("timeout");
            metrics::counter!("ezpulze_sim_messages_rejected_total", "code" => "timeout")
                .increment(1);
            return GraphError::timeout().into_response_with(seq);
        }
        Injected::Timeout => true,
        _ => false,
    };
    let limit = rt
        .numbers
        .get(&phone_number_id)
        .and_then(|(_, _, l)| *l)
        .unwrap_or(cfg.mps_limit);
    if !shared.limiter.admit_throughput(&phone_number_id, limit) {
        return reject(&shared, GraphError::throughput(), seq);
    }
    if !shared.limiter.admit_pair(
        &phone_number_id,
        &valid.wa_id,
        Duration::from_millis(cfg.pair_gap_ms),
    ) {
        return reject(&shared, GraphError::pair_limit(), seq);
    }
    // The portfolio's messaging limit: over it, accepted and then failed (`tier`). Sandbox
    // sends (the engine's test mode) are not Meta's and do not count.
    let sandboxed = token.is_some() && cfg.sandbox_token.as_deref() == token;
    let over_limit = !shared.portfolios.admit(
        &number.waba_id,
        &valid.wa_id,
        cfg.messaging_tier
            .as_deref()
            .filter(|_| !sandboxed)
            .and_then(|t| tier::limit_of(t).ok().flatten()),
        Duration::from_millis(cfg.messaging_window_ms),
    );
    // Accepted.
    let wamid = make_wamid(shared.boot, seq, &valid.wa_id);
    shared.stats.accepted.fetch_add(1, AO::Relaxed);
    metrics::counter!("ezpulze_sim_messages_accepted_total").increment(1);
    let response = serde_json::to_vec(&SendOk {
        messaging_product: "whatsapp",
        contacts: [Contact {
            input: &valid.input,
            wa_id: &valid.wa_id,
        }],
        messages: [MessageId {
            id: &wamid,
            message_status: valid.is_template.then_some("accepted"),
        }],
    })
    .unwrap_or_default();
    if cfg.webhook_url.is_some() || number.webhook_url.is_some() {
        let msg = Arc::new(Msg {
            wamid,
            recipient: valid.wa_id,
            number,
            biz_opaque: valid.biz_opaque,
            category: valid
                .category
                .unwrap_or_else(|| cfg.default_category.clone()),
            error_code: match injected {
                _ if over_limit => Some(tier::OVER_LIMIT_CODE),
                Injected::Async(code) => Some(code),
                _ => None,
            },
            acked: AtomicU8::new(0),
            generation: shared.generation.load(AO::Relaxed),
        });
        shared.hooks.plan(cfg, seq, msg);
    }
    if timeout_accepts {
        shared.hold(cfg.timeout_ms).await;
        return GraphError::timeout().into_response_with(seq);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        response,
    )
        .into_response()
}

async fn get_stats(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let s = &shared.stats;
    let rejected = s.rejected();
    Json(json!({
        "accepted": s.accepted.load(AO::Relaxed),
        "rejected": rejected,
        "sandbox_sends": s.sandbox_sends.load(AO::Relaxed),
        "statuses": {
            "sent": s.statuses[0].load(AO::Relaxed),
            "delivered": s.statuses[1].load(AO::Relaxed),
            "read": s.statuses[2].load(AO::Relaxed),
            "failed": s.statuses[3].load(AO::Relaxed),
        },
        "max_mps_by_number": shared.limiter.max_mps(),
        "inbound": shared.inbound.json(),
        "templates": shared.templates.json(),
        "events": shared.events.json(),
        "messaging_limit": shared.portfolios.json(),
    }))
}

async fn get_pending(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let h = &shared.hooks;
    Json(json!({
        "webhook_statuses_pending": h.pending.load(AO::Relaxed),
        "webhook_statuses_dropped": h.dropped.load(AO::Relaxed),
        "webhook_posts_ok": h.posts_ok.load(AO::Relaxed),
        "webhook_posts_failed": h.posts_failed.load(AO::Relaxed),
        "webhook_posts_in_flight": h.in_flight_posts.load(AO::Relaxed),
        "requests_held": shared.held.load(AO::Relaxed),
        "inbound_pending": shared.inbound.pending.load(AO::Relaxed),
    }))
}

async fn get_config(State(shared): State<Arc<Shared>>) -> Json<SimConfig> {
    Json(SimConfig::clone(&shared.config()))
}

async fn put_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid JSON: {e}")})),
            )
                .into_response()
        }
    };
    match shared.config().merged(&patch) {
        Ok(cfg) => {
            shared.set_config(cfg.clone());
            tracing::info!("simulator configuration updated");
            Json(cfg).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.generation.fetch_add(1, AO::Relaxed);
    shared.stats.reset();
    shared.inbound.reset();
    shared.templates.reset();
    shared.events.reset();
    shared.portfolios.reset();
    shared.limiter.reset();
    StatusCode::NO_CONTENT
}

async fn render_metrics(State(shared): State<Arc<Shared>>) -> Response {
    metrics::gauge!("ezpulze_sim_webhook_statuses_pending")
        .set(shared.hooks.pending.load(AO::Relaxed) as f64);
    metrics::gauge!("ezpulze_sim_pair_entries").set(shared.limiter.pairs_len() as f64);
    let body = shared
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamid_shape() {
        let a = make_wamid(1, 1, "16505551234");
        let b = make_wamid(1, 2, "16505551234");
        assert!(a.starts_with("wamid.HBgL"), "{a}");
        assert_ne!(a, b);
    }
}
