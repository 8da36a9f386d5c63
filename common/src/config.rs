//! One typed configuration for every process: defaults, then environment variables,
//! validated at start-up. Every setting is listed in the README with its default.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};

/// The pepper used when none is configured: fine for a laptop, refused when `EZPULZE_ENV=production`.
pub const DEV_PEPPER: &str = "ezpulze-development-pepper-change-me";
/// The bearer token test-mode sends carry unless `TEST_GRAPH_API_TOKEN` says otherwise (the
/// simulator accepts it for every number when started with `SIM_SANDBOX_TOKEN` set to it).
pub const DEFAULT_TEST_GRAPH_API_TOKEN: &str = "ezpulze-sandbox";

#[derive(Debug, Clone)]
pub struct Config {
    /// `production` or `development`; production refuses development defaults for secrets.
    pub environment: String,
    pub api_addr: SocketAddr,
    /// Where the api serves `/metrics`, `/healthz` and `/readyz` apart from the public
    /// listener (which then answers 404 for `/metrics`); `None`: `/metrics` is public.
    pub api_metrics_addr: Option<SocketAddr>,
    /// How long a client may take to send a request's headers before the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body (from its headers) before
    /// the request is answered 408 and the connection closed.
    pub body_read_timeout: Duration,
    pub worker_metrics_addr: SocketAddr,
    pub scheduler_metrics_addr: SocketAddr,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    pub redis_url: SecretString,
    /// `REDIS_CLUSTER_URLS`: seed nodes of a Redis Cluster (comma-separated `redis://` URLs).
    /// When set, every Redis key, queue, lane and channel lives on the cluster and
    /// `REDIS_URL` is not used.
    pub redis_cluster_urls: Vec<SecretString>,
    /// Prefix of every Redis key and channel, so several stacks (or tests) share one Redis.
    pub redis_prefix: String,
    pub root_token: Option<SecretString>,
    pub key_pepper: SecretString,
    pub trusted_proxies: Vec<IpNet>,
    pub key_cache_ttl: Duration,
    pub negative_cache_max: usize,
    pub body_limit_bytes: usize,
    /// Requests the api serves at once; more answer 503 `overloaded`.
    pub api_max_concurrent_requests: usize,
    /// How long one api request may run before it is stopped (503 `timeout`).
    pub api_request_timeout: Duration,
    pub last_used_flush: Duration,
    /// Audience fan-out workers per api process (0: this process expands none).
    pub audience_expanders: usize,
    /// Contacts read per fan-out chunk (one transaction).
    pub audience_chunk: i64,
    /// How long a claimed fan-out slice stays with its expander without progress (then any
    /// process takes it over).
    pub audience_lease: Duration,
    pub public_base_url: String,
    pub graph_api_base: String,
    /// Where sends of `sk_test_` keys go (the simulator); never the real Graph API.
    pub test_graph_api_base: String,
    /// The bearer token of every test-mode send (a public sandbox value): a `sk_test_` key's
    /// messages never carry the account's real access token.
    pub test_graph_api_token: String,
    pub log_format: LogFormat,
    pub migrate_on_start: bool,
    /// Key material for secrets at rest (access tokens, app secrets).
    pub secrets_key: SecretString,
    /// Graph API version in send URLs, e.g. `v23.0`.
    pub graph_api_version: String,
    /// Jobs a worker fetches and claims per batch.
    pub worker_batch: usize,
    /// Shards of the send lanes' registry (each its own hash tag on a Redis Cluster).
    pub lane_shards: u16,
    /// Shards of the webhook (status) stream (each its own stream and hash tag).
    pub status_shards: u16,
    /// Sends a worker process keeps in flight at once.
    pub worker_concurrency: usize,
    /// Timeout of one Graph API call.
    pub send_timeout: std::time::Duration,
    /// Attempts before a retryable failure becomes final.
    pub send_max_attempts: u32,
    /// What to do with a message whose previous attempt's outcome is unknown (a worker died
    /// mid-send): `fail` (default: mark it failed, never send twice) or `resend`.
    pub unknown_outcome_policy: UnknownOutcomePolicy,
    /// Status events read per batch by the status consumer.
    pub status_batch: usize,
    /// Rows queued longer than this are pushed again by the outbox sweep.
    pub outbox_after: std::time::Duration,
    /// Days of messages kept (whole daily partitions are dropped after that).
    pub retention_days: u32,
    /// A message accepted by WhatsApp with no status webhook for this long will get none
    /// (Meta retries a webhook for up to 7 days): the scheduler settles it as `sent`.
    pub accepted_status_horizon: Duration,
    /// `MESSAGING_WINDOW_SECS`: the moving window of the portfolio's messaging limit (unique
    /// users reached per window; Meta's is 24 h). Shortened in tests only
    /// (`docs/messaging-limits.md`).
    pub messaging_window: Duration,
    /// `TEMPLATE_SYNC_SECS`: how often the scheduler syncs every account's templates with
    /// Meta (`docs/templates.md`); `None` (0): never (Meta's webhooks and
    /// `POST /api/v1/templates/sync` only).
    pub template_sync: Option<Duration>,
    /// Delivery of integrator events (outbound webhooks), run by the workers.
    pub webhooks: WebhookDelivery,
    /// CSV imports of contacts, run by the api processes (`docs/contact-import.md`).
    pub contact_imports: ContactImports,
}

/// The limits and pace of contact CSV imports (`POST /api/v1/contacts/import`).
#[derive(Debug, Clone)]
pub struct ContactImports {
    /// `CONTACT_IMPORT_MAX_BYTES`: largest upload (413 `payload_too_large` above).
    pub max_bytes: usize,
    /// `CONTACT_IMPORT_MAX_ROWS`: most data rows of one file (422 `too_many_rows` above).
    pub max_rows: usize,
    /// `CONTACT_IMPORT_BATCH_ROWS`: rows upserted per statement (and per committed step).
    pub batch_rows: usize,
    /// `CONTACT_IMPORT_CONCURRENCY`: imports one api process runs at once.
    pub concurrency: usize,
}

/// Default of `CONTACT_IMPORT_MAX_BYTES`: 256 MiB.
pub const DEFAULT_CONTACT_IMPORT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// The settings of the workers' integrator event deliverer (`docs/integrator-events.md`).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    /// `WEBHOOK_DELIVERERS` (0 or 1): whether this worker process delivers events.
    pub enabled: bool,
    /// Requests in flight per endpoint in one process.
    pub per_endpoint_concurrency: usize,
    /// Requests in flight in one process, all endpoints.
    pub concurrency: usize,
    /// Deliveries claimed per endpoint per pass (at most the endpoint's rate per second).
    pub batch: usize,
    /// One attempt's whole exchange.
    pub timeout: Duration,
    /// Waits before the 2nd, 3rd, ... attempt; after the last the delivery is `failed`.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
    /// `true` in development: `http://` to loopback allowed, loopback addresses allowed.
    pub allow_loopback: bool,
}

/// The default retry schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_WEBHOOK_RETRY_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// `5s`, `300ms`, `5m`, `2h` or a plain number of seconds.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (num, unit) = raw.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{raw:?}: unit must be ms, s, m or h")),
    })
}

/// Default of `ACCEPTED_STATUS_HORIZON_SECS`: Meta's 7 days of webhook retries and a day of
/// margin.
pub const DEFAULT_ACCEPTED_STATUS_HORIZON: Duration = Duration::from_secs(8 * 24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownOutcomePolicy {
    Fail,
    Resend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// The settings `EZPULZE_ENV=production` checks beyond their format.
struct Unsafe<'a> {
    graph_api_base: &'a str,
    test_graph_api_base: &'a str,
    secrets_key: &'a str,
    key_pepper: &'a str,
    root_token: Option<&'a str>,
    trusted_proxies: &'a [IpNet],
}

/// What production refuses: every unsafe setting, each in one line.
fn production_problems(u: &Unsafe<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, url) in [
        ("GRAPH_API_BASE", u.graph_api_base),
        ("TEST_GRAPH_API_BASE", u.test_graph_api_base),
    ] {
        if !url.starts_with("https://") {
            out.push(format!("{name} must be an https:// URL in production"));
        }
    }
    if u.secrets_key.len() < 32 {
        out.push("EZPULZE_SECRETS_KEY must be at least 32 bytes in production".into());
    }
    if u.secrets_key == u.key_pepper {
        out.push("EZPULZE_SECRETS_KEY must differ from EZPULZE_KEY_PEPPER".into());
    }
    if u.root_token.is_some_and(|t| t.chars().count() < 32) {
        out.push("EZPULZE_ROOT_TOKEN must be at least 32 characters in production".into());
    }
    if u.trusted_proxies.iter().any(|n| n.prefix_len() == 0) {
        out.push("TRUSTED_PROXIES must not trust every address (0.0.0.0/0 or ::/0)".into());
    }
    out
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

struct Reader<'a> {
    src: &'a dyn Source,
    errors: Vec<String>,
}

impl Reader<'_> {
    fn parse<T: FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: std::fmt::Display,
    {
        match self.src.get(name) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(v) => v,
                Err(e) => {
                    self.errors.push(format!("{name}={raw:?}: {e}"));
                    default
                }
            },
        }
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.src.get(name).unwrap_or_else(|| default.to_string())
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    pub fn from_source(src: &dyn Source) -> Result<Self, ConfigError> {
        let mut r = Reader {
            src,
            errors: Vec::new(),
        };
        let environment = r.string("EZPULZE_ENV", "development");
        let api_addr = r.parse("API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)));
        let api_metrics_addr = match src.get("API_METRICS_ADDR") {
            None => None,
            Some(raw) => match raw.trim().parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(e) => {
                    r.errors.push(format!("API_METRICS_ADDR={raw:?}: {e}"));
                    None
                }
            },
        };
        let header_read_timeout =
            Duration::from_millis(r.parse("API_HEADER_READ_TIMEOUT_MS", 10_000u64));
        let body_read_timeout =
            Duration::from_millis(r.parse("API_BODY_READ_TIMEOUT_MS", 30_000u64));
        let worker_metrics_addr = r.parse(
            "WORKER_METRICS_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9101)),
        );
        let scheduler_metrics_addr = r.parse(
            "SCHEDULER_METRICS_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9102)),
        );
        let database_url = r.string("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ezpulze");
        let database_max_connections = r.parse("DATABASE_MAX_CONNECTIONS", 16u32);
        let redis_url = r.string("REDIS_URL", "redis://127.0.0.1:6379/0");
        let redis_cluster_urls: Vec<String> = src
            .get("REDIS_CLUSTER_URLS")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let redis_prefix = r.string("REDIS_PREFIX", "ezp");
        let root_token = src.get("EZPULZE_ROOT_TOKEN").map(SecretString::from);
        let key_pepper = r.string("EZPULZE_KEY_PEPPER", DEV_PEPPER);
        let trusted_proxies = match src.get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .filter_map(|s| match parse_net(s) {
                    Some(n) => Some(n),
                    None => {
                        r.errors
                            .push(format!("TRUSTED_PROXIES: {s:?} is not an IP or CIDR"));
                        None
                    }
                })
                .collect(),
        };
        let key_cache_ttl = Duration::from_secs(r.parse("KEY_CACHE_TTL_SECS", 60u64));
        let negative_cache_max = r.parse("KEY_NEGATIVE_CACHE_MAX", 10_000usize);
        let body_limit_bytes = r.parse("API_BODY_LIMIT_BYTES", 8 * 1024 * 1024usize);
        let api_max_concurrent_requests = r.parse("API_MAX_CONCURRENT_REQUESTS", 4096usize);
        if api_max_concurrent_requests == 0 {
            r.errors
                .push("API_MAX_CONCURRENT_REQUESTS must be at least 1".into());
        }
        let api_request_timeout_secs = r.parse("API_REQUEST_TIMEOUT_SECS", 30u64);
        if api_request_timeout_secs == 0 {
            r.errors
                .push("API_REQUEST_TIMEOUT_SECS must be at least 1".into());
        }
        let api_request_timeout = Duration::from_secs(api_request_timeout_secs);
        let last_used_flush = Duration::from_millis(r.parse("LAST_USED_FLUSH_MS", 1000u64));
        let audience_expanders = r.parse("AUDIENCE_EXPANDERS", 2usize);
        let audience_chunk = r.parse("AUDIENCE_CHUNK", 5000i64);
        let audience_lease_secs = r.parse("AUDIENCE_LEASE_SECS", 30u64);
        if !(2..=3600).contains(&audience_lease_secs) {
            r.errors
                .push("AUDIENCE_LEASE_SECS must be between 2 and 3600".into());
        }
        let audience_lease = Duration::from_secs(audience_lease_secs);
        if !(10..=50_000).contains(&audience_chunk) {
            r.errors
                .push("AUDIENCE_CHUNK must be between 10 and 50000".into());
        }
        let public_base_url = r.string("PUBLIC_BASE_URL", &format!("http://{api_addr}"));
        let graph_api_base = r.string("GRAPH_API_BASE", "http://127.0.0.1:8090");
        let test_graph_api_base = r.string("TEST_GRAPH_API_BASE", "http://127.0.0.1:8090");
        let test_graph_api_token = r.string("TEST_GRAPH_API_TOKEN", DEFAULT_TEST_GRAPH_API_TOKEN);
        let log_format = match r.string("LOG_FORMAT", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                r.errors
                    .push(format!("LOG_FORMAT={other:?}: expected text or json"));
                LogFormat::Text
            }
        };
        let migrate_on_start = r.parse("MIGRATE_ON_START", true);
        let secrets_key = r.string("EZPULZE_SECRETS_KEY", DEV_PEPPER);
        let graph_api_version = r.string("GRAPH_API_VERSION", "v23.0");
        let worker_batch = r.parse("WORKER_BATCH", 200usize);
        let lane_shards = r.parse("LANE_SHARDS", 4u16);
        let status_shards = r.parse("STATUS_SHARDS", 1u16);
        let worker_concurrency = r.parse("WORKER_CONCURRENCY", 256usize);
        let send_timeout = Duration::from_millis(r.parse("SEND_TIMEOUT_MS", 10_000u64));
        let send_max_attempts = r.parse("SEND_MAX_ATTEMPTS", 6u32);
        let unknown_outcome_policy = match r.string("UNKNOWN_OUTCOME_POLICY", "fail").as_str() {
            "fail" => UnknownOutcomePolicy::Fail,
            "resend" => UnknownOutcomePolicy::Resend,
            other => {
                r.errors.push(format!(
                    "UNKNOWN_OUTCOME_POLICY={other:?}: expected fail or resend"
                ));
                UnknownOutcomePolicy::Fail
            }
        };
        let status_batch = r.parse("STATUS_BATCH", 1000usize);
        let outbox_after = Duration::from_secs(r.parse("OUTBOX_AFTER_SECS", 300u64));
        let retention_days = r.parse("RETENTION_DAYS", 30u32);
        let accepted_status_horizon = Duration::from_secs(r.parse(
            "ACCEPTED_STATUS_HORIZON_SECS",
            DEFAULT_ACCEPTED_STATUS_HORIZON.as_secs(),
        ));
        let messaging_window_secs = r.parse("MESSAGING_WINDOW_SECS", 86_400u64);
        if !(1..=7 * 86_400).contains(&messaging_window_secs) {
            r.errors
                .push("MESSAGING_WINDOW_SECS must be between 1 and 604800".into());
        }
        let messaging_window = Duration::from_secs(messaging_window_secs);
        let template_sync_secs = r.parse("TEMPLATE_SYNC_SECS", 900u64);
        if template_sync_secs != 0 && !(10..=7 * 86_400).contains(&template_sync_secs) {
            r.errors
                .push("TEMPLATE_SYNC_SECS must be 0 (off) or between 10 and 604800".into());
        }
        let template_sync =
            (template_sync_secs > 0).then(|| Duration::from_secs(template_sync_secs));
        let webhooks = WebhookDelivery {
            enabled: r.parse("WEBHOOK_DELIVERERS", 1u8) > 0,
            per_endpoint_concurrency: r.parse("WEBHOOK_CONCURRENCY_PER_ENDPOINT", 64usize).max(1),
            concurrency: r.parse("WEBHOOK_CONCURRENCY", 4096usize).max(1),
            batch: r.parse("WEBHOOK_BATCH", 1000usize).max(1),
            timeout: Duration::from_millis(r.parse("WEBHOOK_TIMEOUT_MS", 10_000u64).max(1)),
            retry_schedule: {
                let raw = r.string("WEBHOOK_RETRY_SCHEDULE", DEFAULT_WEBHOOK_RETRY_SCHEDULE);
                let parsed: Result<Vec<Duration>, String> = raw
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(parse_duration)
                    .collect();
                match parsed {
                    Ok(v) => v,
                    Err(e) => {
                        r.errors.push(format!("WEBHOOK_RETRY_SCHEDULE: {e}"));
                        Vec::new()
                    }
                }
            },
            disable_after: Duration::from_secs(
                r.parse("WEBHOOK_DISABLE_AFTER_SECS", 5 * 24 * 3600u64),
            ),
            allow_loopback: environment == "development",
        };
        let contact_imports = ContactImports {
            max_bytes: r.parse("CONTACT_IMPORT_MAX_BYTES", DEFAULT_CONTACT_IMPORT_MAX_BYTES),
            max_rows: r.parse("CONTACT_IMPORT_MAX_ROWS", 1_000_000usize),
            batch_rows: r.parse("CONTACT_IMPORT_BATCH_ROWS", 5000usize),
            concurrency: r.parse("CONTACT_IMPORT_CONCURRENCY", 2usize),
        };

        let mut errors = r.errors;
        if !matches!(environment.as_str(), "development" | "production") {
            errors.push(format!(
                "EZPULZE_ENV={environment:?}: expected development or production"
            ));
        }
        if key_cache_ttl.is_zero() || key_cache_ttl > Duration::from_secs(60) {
            errors.push("KEY_CACHE_TTL_SECS must be between 1 and 60".into());
        }
        if contact_imports.max_bytes < 1024 {
            errors.push("CONTACT_IMPORT_MAX_BYTES must be at least 1024".into());
        }
        if contact_imports.max_rows == 0 {
            errors.push("CONTACT_IMPORT_MAX_ROWS must be at least 1".into());
        }
        if !(1..=50_000).contains(&contact_imports.batch_rows) {
            errors.push("CONTACT_IMPORT_BATCH_ROWS must be between 1 and 50000".into());
        }
        if database_max_connections < 2 {
            errors.push("DATABASE_MAX_CONNECTIONS must be at least 2".into());
        }
        if header_read_timeout.is_zero() || header_read_timeout > Duration::from_secs(300) {
            errors.push("API_HEADER_READ_TIMEOUT_MS must be between 1 and 300000".into());
        }
        if body_read_timeout.is_zero() || body_read_timeout > Duration::from_secs(3600) {
            errors.push("API_BODY_READ_TIMEOUT_MS must be between 1 and 3600000".into());
        }
        if api_metrics_addr.is_some_and(|m| m == api_addr && m.port() != 0) {
            errors.push("API_METRICS_ADDR must differ from API_ADDR".into());
        }
        if body_limit_bytes < 1024 {
            errors.push("API_BODY_LIMIT_BYTES must be at least 1024".into());
        }
        if last_used_flush.is_zero() {
            errors.push("LAST_USED_FLUSH_MS must be positive".into());
        }
        if redis_prefix.is_empty() || redis_prefix.contains(['{', '}', ' ']) {
            errors.push("REDIS_PREFIX must be non-empty without braces or spaces".into());
        }
        if key_pepper.len() < 16 {
            errors.push("EZPULZE_KEY_PEPPER must be at least 16 characters".into());
        }
        if environment == "production" && key_pepper == DEV_PEPPER {
            errors.push("EZPULZE_KEY_PEPPER must be set in production".into());
        }
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            errors.push("DATABASE_URL must be a postgres:// URL".into());
        }
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            errors.push("REDIS_URL must be a redis:// URL".into());
        }
        if redis_cluster_urls
            .iter()
            .any(|u| !u.starts_with("redis://") && !u.starts_with("rediss://"))
        {
            errors.push("REDIS_CLUSTER_URLS must be comma-separated redis:// URLs".into());
        }
        if environment == "production" && secrets_key == DEV_PEPPER {
            errors.push("EZPULZE_SECRETS_KEY must be set in production".into());
        }
        if !(1..=10_000).contains(&worker_batch) {
            errors.push("WORKER_BATCH must be between 1 and 10000".into());
        }
        if !(1..=1024).contains(&lane_shards) {
            errors.push("LANE_SHARDS must be between 1 and 1024".into());
        }
        if !(1..=64).contains(&status_shards) {
            errors.push("STATUS_SHARDS must be between 1 and 64".into());
        }
        if worker_concurrency == 0 {
            errors.push("WORKER_CONCURRENCY must be positive".into());
        }
        if send_max_attempts == 0 {
            errors.push("SEND_MAX_ATTEMPTS must be positive".into());
        }
        if !(1..=10_000).contains(&status_batch) {
            errors.push("STATUS_BATCH must be between 1 and 10000".into());
        }
        if retention_days < 2 {
            errors.push("RETENTION_DAYS must be at least 2".into());
        }
        if accepted_status_horizon < Duration::from_secs(3600) {
            errors.push("ACCEPTED_STATUS_HORIZON_SECS must be at least 3600".into());
        }
        if environment == "production" {
            errors.extend(production_problems(&Unsafe {
                graph_api_base: &graph_api_base,
                test_graph_api_base: &test_graph_api_base,
                secrets_key: &secrets_key,
                key_pepper: &key_pepper,
                root_token: root_token.as_ref().map(|t| t.expose_secret()),
                trusted_proxies: &trusted_proxies,
            }));
        }
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            environment,
            api_addr,
            api_metrics_addr,
            header_read_timeout,
            body_read_timeout,
            worker_metrics_addr,
            scheduler_metrics_addr,
            database_url: database_url.into(),
            database_max_connections,
            redis_url: redis_url.into(),
            redis_cluster_urls: redis_cluster_urls
                .into_iter()
                .map(SecretString::from)
                .collect(),
            redis_prefix,
            root_token,
            key_pepper: key_pepper.into(),
            trusted_proxies,
            key_cache_ttl,
            negative_cache_max,
            body_limit_bytes,
            api_max_concurrent_requests,
            api_request_timeout,
            last_used_flush,
            audience_expanders,
            audience_chunk,
            audience_lease,
            public_base_url,
            graph_api_base,
            test_graph_api_base,
            test_graph_api_token,
            log_format,
            migrate_on_start,
            secrets_key: secrets_key.into(),
            graph_api_version,
            worker_batch,
            lane_shards,
            status_shards,
            worker_concurrency,
            send_timeout,
            send_max_attempts,
            unknown_outcome_policy,
            status_batch,
            outbox_after,
            retention_days,
            accepted_status_horizon,
            messaging_window,
            template_sync,
            webhooks,
            contact_imports,
        })
    }

    /// Whether the public base URL is https (the UI's cookie is then `__Host-` and `Secure`).
    pub fn public_base_is_https(&self) -> bool {
        self.public_base_url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// The origin (`scheme://host[:port]`, lower case, without a default port) of the public
    /// base URL: what a browser sends as `Origin` from the web UI.
    pub fn public_origin(&self) -> String {
        origin_of(&self.public_base_url)
    }

    pub fn sealer(&self) -> crate::secrets::Sealer {
        crate::secrets::Sealer::new(self.secrets_key.expose_secret())
    }

    pub fn pepper(&self) -> &[u8] {
        self.key_pepper.expose_secret().as_bytes()
    }

    /// The settings as `NAME  default  meaning` lines, for `--help`.
    pub fn help() -> &'static str {
        include_str!("config_help.txt")
    }
}

/// The origin of a URL or of an `Origin` header value: `scheme://host[:port]` in lower case,
/// the scheme's default port (80, 443) left out, any path dropped.
pub fn origin_of(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let host = match default_port {
        Some(port) => authority.strip_suffix(port).unwrap_or(&authority),
        None => &authority,
    };
    format!("{scheme}://{host}")
}

/// An IP address (as a single-host network) or a CIDR network.
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// An allow-list entry as it is matched: [`parse_net`], truncated to its network, with an
/// IPv4-mapped IPv6 network (`::ffff:127.0.0.1`, `::ffff:10.0.0.0/104`) written as the IPv4
/// network it means (clients are matched by their IPv4 address).
pub fn parse_allowed_net(s: &str) -> Option<IpNet> {
    let net = parse_net(s)?.trunc();
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .ok()
                .map(IpNet::V4);
        }
    }
    Some(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_source(&map)
    }

    #[test]
    fn ipv4_mapped_allow_list_entries_mean_their_ipv4_network() {
        for (entry, want) in [
            ("::ffff:127.0.0.1", "127.0.0.1/32"),
            ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("2001:db8::1", "2001:db8::1/128"),
        ] {
            let net = parse_allowed_net(entry).map(|n| n.to_string());
            assert_eq!(net.as_deref(), Some(want), "{entry}");
        }
        assert!(parse_allowed_net("10.0.0.0/33").is_none());
    }

    #[test]
    fn defaults_are_valid() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.api_addr.port(), 8080);
        assert_eq!(c.key_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.accepted_status_horizon, Duration::from_secs(691_200));
    }

    #[test]
    fn templates_sync_every_quarter_hour_unless_set() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.template_sync, Some(Duration::from_secs(900)));
        let c = cfg(&[("TEMPLATE_SYNC_SECS", "0")]).expect("off");
        assert_eq!(c.template_sync, None);
        let c = cfg(&[("TEMPLATE_SYNC_SECS", "60")]).expect("valid");
        assert_eq!(c.template_sync, Some(Duration::from_secs(60)));
        for bad in ["9", "604801", "hourly", "-1"] {
            let text = cfg(&[("TEMPLATE_SYNC_SECS", bad)])
                .expect_err("refused")
                .to_string();
            assert!(text.contains("TEMPLATE_SYNC_SECS"), "{bad}: {text}");
        }
    }

    #[test]
    fn the_messaging_window_is_a_day_unless_set() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.messaging_window, Duration::from_secs(86_400));
        let c = cfg(&[("MESSAGING_WINDOW_SECS", "15")]).expect("valid");
        assert_eq!(c.messaging_window, Duration::from_secs(15));
        for bad in ["0", "604801", "a day"] {
            let text = cfg(&[("MESSAGING_WINDOW_SECS", bad)])
                .expect_err("refused")
                .to_string();
            assert!(text.contains("MESSAGING_WINDOW_SECS"), "{bad}: {text}");
        }
    }

    #[test]
    fn the_accepted_status_horizon_is_a_setting_of_at_least_an_hour() {
        let c = cfg(&[("ACCEPTED_STATUS_HORIZON_SECS", "7200")]).expect("valid");
        assert_eq!(c.accepted_status_horizon, Duration::from_secs(7200));
        let text = cfg(&[("ACCEPTED_STATUS_HORIZON_SECS", "60")])
            .expect_err("too short")
            .to_string();
        assert!(text.contains("ACCEPTED_STATUS_HORIZON_SECS"), "{text}");
    }

    #[test]
    fn the_webhook_retry_schedule_is_read_and_checked() {
        let c = cfg(&[]).expect("defaults");
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(
            c.webhooks.retry_schedule,
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                hours(2),
                hours(5),
                hours(10),
                hours(10)
            ]
        );
        assert!(c.webhooks.enabled && c.webhooks.allow_loopback);
        let c = cfg(&[
            ("WEBHOOK_RETRY_SCHEDULE", "250ms, 2, 1m"),
            ("WEBHOOK_DELIVERERS", "0"),
        ])
        .expect("valid");
        assert_eq!(
            c.webhooks.retry_schedule,
            vec![
                Duration::from_millis(250),
                Duration::from_secs(2),
                Duration::from_secs(60)
            ]
        );
        assert!(!c.webhooks.enabled);
        for bad in ["5 days", "1d", "-5s", "s"] {
            let text = cfg(&[("WEBHOOK_RETRY_SCHEDULE", bad)])
                .expect_err(bad)
                .to_string();
            assert!(text.contains("WEBHOOK_RETRY_SCHEDULE"), "{bad}: {text}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let err = cfg(&[
            ("API_ADDR", "nope"),
            ("KEY_CACHE_TTL_SECS", "600"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, bad"),
            ("EZPULZE_ENV", "production"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("API_ADDR"), "{text}");
        assert!(text.contains("KEY_CACHE_TTL_SECS"), "{text}");
        assert!(text.contains("\"bad\""), "{text}");
        assert!(
            text.contains("EZPULZE_KEY_PEPPER must be set in production"),
            "{text}"
        );
    }

    #[test]
    fn production_refuses_every_unsafe_setting_at_once() {
        let err = cfg(&[
            ("EZPULZE_ENV", "production"),
            ("EZPULZE_KEY_PEPPER", "pepper-pepper-pepper-0123456789ab"),
            ("EZPULZE_SECRETS_KEY", "short-secrets-key"),
            ("EZPULZE_ROOT_TOKEN", "short-root"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 0.0.0.0/0"),
        ])
        .expect_err("unsafe");
        let text = err.to_string();
        for want in [
            "GRAPH_API_BASE must be an https:// URL",
            "TEST_GRAPH_API_BASE must be an https:// URL",
            "EZPULZE_SECRETS_KEY must be at least 32 bytes",
            "EZPULZE_ROOT_TOKEN must be at least 32 characters",
            "TRUSTED_PROXIES must not trust every address",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        let same = "same-key-same-key-same-key-012345";
        let err = cfg(&[
            ("EZPULZE_ENV", "production"),
            ("EZPULZE_KEY_PEPPER", same),
            ("EZPULZE_SECRETS_KEY", same),
            ("TRUSTED_PROXIES", "::/0"),
        ])
        .expect_err("unsafe");
        let text = err.to_string();
        assert!(
            text.contains("must differ from EZPULZE_KEY_PEPPER"),
            "{text}"
        );
        assert!(text.contains("TRUSTED_PROXIES must not trust"), "{text}");
        // The same settings are fine for development.
        assert!(cfg(&[
            ("EZPULZE_SECRETS_KEY", "short-secrets-key"),
            ("TRUSTED_PROXIES", "0.0.0.0/0")
        ])
        .is_ok());
        // And a safe production configuration starts.
        let ok = cfg(&[
            ("EZPULZE_ENV", "production"),
            ("EZPULZE_KEY_PEPPER", "pepper-pepper-pepper-0123456789ab"),
            ("EZPULZE_SECRETS_KEY", "secrets-secrets-secrets-0123456789"),
            ("EZPULZE_ROOT_TOKEN", "root-token-root-token-0123456789ab"),
            ("GRAPH_API_BASE", "https://graph.facebook.com"),
            ("TEST_GRAPH_API_BASE", "https://sandbox.example.com"),
        ]);
        assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
    }

    #[test]
    fn slow_client_timeouts_and_metrics_address() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.api_metrics_addr, None);
        let c = cfg(&[("API_METRICS_ADDR", "127.0.0.1:9100")]).expect("valid");
        assert_eq!(c.api_metrics_addr.map(|a| a.port()), Some(9100));
        let text = cfg(&[
            ("API_METRICS_ADDR", "nope"),
            ("API_HEADER_READ_TIMEOUT_MS", "0"),
            ("API_BODY_READ_TIMEOUT_MS", "0"),
        ])
        .expect_err("invalid")
        .to_string();
        for want in [
            "API_METRICS_ADDR",
            "API_HEADER_READ_TIMEOUT_MS",
            "API_BODY_READ_TIMEOUT_MS",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        let same = cfg(&[
            ("API_ADDR", "0.0.0.0:80"),
            ("API_METRICS_ADDR", "0.0.0.0:80"),
        ]);
        assert!(same.is_err());
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://App.Example.com/"),
            "https://app.example.com"
        );
        assert_eq!(origin_of("https://a.test:443/x?y"), "https://a.test");
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("http://a.test:80"), "http://a.test");
        let c = cfg(&[("PUBLIC_BASE_URL", "HTTPS://ezpulze.test/base")]).expect("valid");
        assert!(c.public_base_is_https());
        assert_eq!(c.public_origin(), "https://ezpulze.test");
        assert!(!cfg(&[]).expect("defaults").public_base_is_https());
    }

    #[test]
    fn secrets_do_not_print() {
        let c = cfg(&[("EZPULZE_ROOT_TOKEN", "very-secret-root")]).expect("valid");
        assert!(!format!("{c:?}").contains("very-secret-root"));
    }
}
