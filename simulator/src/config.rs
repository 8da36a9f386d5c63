//! Simulator configuration: one JSON document, settable at start (env vars, file) and at run
//! time (`PUT /_sim/config`, merged key by key into the current one).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Hard upper bound on statuses per webhook POST.
pub const MAX_BATCH: usize = 1000;

/// A registered business phone number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NumberConfig {
    pub phone_number_id: String,
    #[serde(default)]
    pub display_phone_number: String,
    pub access_token: String,
    /// WhatsApp Business Account id used as `entry[].id` in webhooks (default: the phone number id).
    #[serde(default)]
    pub waba_id: Option<String>,
    /// Per-number messages/s cap overriding the global `mps_limit` (0 = no cap).
    #[serde(default)]
    pub mps_limit: Option<u32>,
    /// Per-number webhook URL overriding the global one (numbers of another app).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Per-number app secret overriding the global one (numbers of another app).
    #[serde(default)]
    pub app_secret: Option<String>,
}

/// A button of a registered template that takes runtime values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ButtonConfig {
    /// quick_reply, url, copy_code, flow, catalog, mpm, ...
    #[serde(alias = "type")]
    pub sub_type: String,
    pub index: u32,
    /// Whether a send must carry this button component. Default: true for url, copy_code and mpm.
    #[serde(default)]
    pub required: Option<bool>,
}

impl ButtonConfig {
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or_else(|| {
            matches!(
                self.sub_type.to_ascii_lowercase().as_str(),
                "url" | "copy_code" | "mpm"
            )
        })
    }
}

/// A template the simulator knows as approved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub name: String,
    pub language: String,
    /// Pricing category echoed in status webhooks (marketing, utility, authentication...).
    #[serde(default)]
    pub category: Option<String>,
    /// none, text, image, video, document, location, product.
    #[serde(default = "default_none", alias = "header_kind")]
    pub header_format: String,
    /// Variables of the header; default 1 for media/location/product headers, 0 otherwise.
    #[serde(default)]
    pub header_params: Option<u32>,
    #[serde(default)]
    pub body_params: u32,
    /// `positional` or `named` (unset: only the all-or-none rule is checked).
    #[serde(default)]
    pub parameter_format: Option<String>,
    /// Names of the body variables of a NAMED template (unset = not checked).
    #[serde(default)]
    pub body_param_names: Option<Vec<String>>,
    #[serde(default)]
    pub buttons: Vec<ButtonConfig>,
    /// Number of carousel cards (0 = not a carousel template).
    #[serde(default)]
    pub cards: u32,
    /// image, video or product.
    #[serde(default = "default_image")]
    pub card_header_format: String,
    /// Body variables per card (unset = not checked).
    #[serde(default)]
    pub card_body_params: Option<u32>,
    #[serde(default)]
    pub card_buttons: Vec<ButtonConfig>,
}

impl TemplateConfig {
    pub fn header_param_count(&self) -> u32 {
        self.header_params.unwrap_or_else(|| {
            match self.header_format.to_ascii_lowercase().as_str() {
                "none" | "text" | "" => 0,
                _ => 1,
            }
        })
    }
}

fn default_none() -> String {
    "none".to_owned()
}
fn default_image() -> String {
    "image".to_owned()
}

/// Probabilities (0..=1) of injected errors, drawn per request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRates {
    /// HTTP 500 code 1 or HTTP 503 code 2 (even odds).
    #[serde(rename = "5xx")]
    pub e5xx: f64,
    /// HTTP 500 code 131000.
    #[serde(rename = "131000")]
    pub e131000: f64,
    /// Accepted, then a `failed` status with 131026.
    #[serde(rename = "131026")]
    pub e131026: f64,
    /// Accepted, then a `failed` status with 131049.
    #[serde(rename = "131049")]
    pub e131049: f64,
    /// Accepted, then a `failed` status with 131050 (the user stopped marketing messages).
    #[serde(rename = "131050")]
    pub e131050: f64,
    /// HTTP 401 code 190 even with the right token.
    #[serde(rename = "190")]
    pub e190: f64,
    /// Request held for `timeout_ms`, then HTTP 504.
    pub timeout: f64,
}

impl ErrorRates {
    fn sum(&self) -> f64 {
        self.e5xx
            + self.e131000
            + self.e131026
            + self.e131049
            + self.e131050
            + self.e190
            + self.timeout
    }
}

/// The whole runtime configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub numbers: Vec<NumberConfig>,
    pub webhook_url: Option<String>,
    pub app_secret: String,
    pub templates: Vec<TemplateConfig>,
    /// A token accepted for every registered number besides the number's own (a sandbox the
    /// engine's test-mode sends are pointed at; they carry `TEST_GRAPH_API_TOKEN`, never the
    /// account's token). Unset: each number takes only its own token, as the Graph API does.
    pub sandbox_token: Option<String>,
    /// A WhatsApp Business Account id known besides the numbers' own (`/{waba_id}/
    /// message_templates` takes any configured number's token for it): the dev stack's and
    /// tests' accounts are configured with it.
    pub waba_id: Option<String>,
    /// What the review of a submitted template ends in: `APPROVED` (default: a send right
    /// after the create works), `REJECTED` or `PENDING` (stays pending until
    /// `POST /_sim/templates/{name}/status`).
    pub template_auto_status: String,
    /// How long the review takes: 0 answers the create with `template_auto_status` at once;
    /// otherwise the create answers `PENDING` and the status changes (with its webhook) later.
    pub template_approval_delay_ms: u64,
    /// Messages per second per phone number (0 = no cap) -> 130429.
    pub mps_limit: u32,
    /// Minimum gap between two messages from one number to one recipient (0 = off) -> 131056.
    pub pair_gap_ms: u64,
    /// The business portfolios' messaging tier (`TIER_250` .. `TIER_UNLIMITED`; null: not
    /// enforced): each portfolio (a `waba_id`) reaches at most that many unique users outside
    /// a customer-service window per `messaging_window_ms`; beyond, a message is accepted and
    /// then fails with 131049 (`tier.rs`).
    pub messaging_tier: Option<String>,
    /// The moving window of the messaging limit (Meta: 24 h; shortened in tests).
    pub messaging_window_ms: u64,
    pub error_rates: ErrorRates,
    /// How long a `timeout` injection holds the request.
    pub timeout_ms: u64,
    /// Whether a timed-out request was nevertheless accepted (statuses follow).
    pub timeout_accepts: bool,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// Share of accepted (non-failing) messages that get `delivered`.
    pub delivered_rate: f64,
    /// Share of accepted (non-failing) messages that get `read` (implies delivered; <= delivered_rate).
    pub read_rate: f64,
    /// Share of read messages whose `delivered` status is never sent (Meta skips it when the
    /// user reads at once). Such messages are not counted in `statuses.delivered`.
    pub skip_delivered_rate: f64,
    pub sent_delay_ms: u64,
    pub delivered_delay_ms: u64,
    pub read_delay_ms: u64,
    pub failed_delay_ms: u64,
    /// Uniform extra delay 0..=jitter added to every status.
    pub delay_jitter_ms: u64,
    /// Probability that a status is posted twice.
    pub duplicate_rate: f64,
    /// Probability that a status is held back by `reorder_delay_ms` (arrives after later ones);
    /// any non-zero value also shuffles statuses within each POST.
    pub reorder_rate: f64,
    pub reorder_delay_ms: u64,
    pub webhook_batch_size: usize,
    pub webhook_linger_ms: u64,
    pub webhook_concurrency: usize,
    pub webhook_timeout_ms: u64,
    pub webhook_retry_initial_ms: u64,
    pub webhook_retry_max_ms: u64,
    /// 0 = retry until the receiver accepts.
    pub webhook_max_attempts: u32,
    /// Statuses waiting for delivery beyond this are dropped (counted in /_sim/pending).
    pub webhook_max_pending: u64,
    /// Escape non-ASCII and `/` in webhook bodies as Meta does (`\u00e9`, `\/`).
    pub webhook_meta_escaping: bool,
    pub seed: u64,
    /// Pricing category for templates that are not registered.
    pub default_category: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            numbers: Vec::new(),
            webhook_url: None,
            app_secret: "sim-app-secret".to_owned(),
            templates: Vec::new(),
            sandbox_token: None,
            waba_id: None,
            template_auto_status: "APPROVED".to_owned(),
            template_approval_delay_ms: 0,
            mps_limit: 80,
            pair_gap_ms: 6000,
            messaging_tier: None,
            messaging_window_ms: 86_400_000,
            error_rates: ErrorRates::default(),
            timeout_ms: 30_000,
            timeout_accepts: false,
            latency_ms: 0,
            latency_jitter_ms: 0,
            delivered_rate: 1.0,
            read_rate: 0.8,
            skip_delivered_rate: 0.0,
            sent_delay_ms: 10,
            delivered_delay_ms: 50,
            read_delay_ms: 100,
            failed_delay_ms: 10,
            delay_jitter_ms: 20,
            duplicate_rate: 0.0,
            reorder_rate: 0.0,
            reorder_delay_ms: 500,
            webhook_batch_size: 200,
            webhook_linger_ms: 20,
            webhook_concurrency: 4,
            webhook_timeout_ms: 5000,
            webhook_retry_initial_ms: 100,
            webhook_retry_max_ms: 5000,
            webhook_max_attempts: 0,
            webhook_max_pending: 2_000_000,
            webhook_meta_escaping: true,
            seed: 1,
            default_category: "marketing".to_owned(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration must be a JSON object")]
    NotAnObject,
    #[error("invalid configuration: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("invalid configuration: {0}")]
    Rule(String),
    #[error("environment variable {name}: {reason}")]
    Env { name: String, reason: String },
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
}

fn rate_ok(name: &str, v: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::Rule(format!(
            "{name} must be within 0..=1, got {v}"
        )))
    }
}

impl SimConfig {
    /// Checks the rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = &self.error_rates;
        for (n, v) in [
            ("error_rates.5xx", r.e5xx),
            ("error_rates.131000", r.e131000),
            ("error_rates.131026", r.e131026),
            ("error_rates.131049", r.e131049),
            ("error_rates.131050", r.e131050),
            ("error_rates.190", r.e190),
            ("error_rates.timeout", r.timeout),
            ("delivered_rate", self.delivered_rate),
            ("read_rate", self.read_rate),
            ("skip_delivered_rate", self.skip_delivered_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
        ] {
            rate_ok(n, v)?;
        }
        if r.sum() > 1.0 + 1e-9 {
            return Err(ConfigError::Rule(
                "the error_rates must add up to at most 1".to_owned(),
            ));
        }
        if let Some(tier) = &self.messaging_tier {
            crate::tier::limit_of(tier).map_err(ConfigError::Rule)?;
        }
        if self.messaging_window_ms == 0 {
            return Err(ConfigError::Rule(
                "messaging_window_ms must be at least 1".to_owned(),
            ));
        }
        if !crate::templates::AUTO_STATUSES.contains(&self.template_auto_status.as_str()) {
            return Err(ConfigError::Rule(format!(
                "template_auto_status must be one of {:?}",
                crate::templates::AUTO_STATUSES
            )));
        }
        if self
            .waba_id
            .as_ref()
            .is_some_and(|w| w.is_empty() || w.len() > 32 || !w.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(ConfigError::Rule(
                "waba_id: digits only, up to 32".to_owned(),
            ));
        }
        if self.webhook_batch_size == 0 || self.webhook_batch_size > MAX_BATCH {
            return Err(ConfigError::Rule(format!(
                "webhook_batch_size must be within 1..={MAX_BATCH}"
            )));
        }
        if self.webhook_concurrency == 0 || self.webhook_concurrency > 256 {
            return Err(ConfigError::Rule(
                "webhook_concurrency must be within 1..=256".to_owned(),
            ));
        }
        if let Some(url) = &self.webhook_url {
            check_webhook_url(url)?;
        }
        let mut seen = std::collections::HashSet::new();
        for n in &self.numbers {
            if n.phone_number_id.is_empty() || n.access_token.is_empty() {
                return Err(ConfigError::Rule(
                    "numbers need a phone_number_id and an access_token".to_owned(),
                ));
            }
            if let Some(url) = &n.webhook_url {
                check_webhook_url(url)?;
            }
            if !seen.insert(n.phone_number_id.as_str()) {
                return Err(ConfigError::Rule(format!(
                    "phone_number_id {} is listed twice",
                    n.phone_number_id
                )));
            }
        }
        for t in &self.templates {
            if t.name.is_empty() || t.language.is_empty() {
                return Err(ConfigError::Rule(
                    "templates need a name and a language".to_owned(),
                ));
            }
            let hf = t.header_format.to_ascii_lowercase();
            if !matches!(
                hf.as_str(),
                "none" | "text" | "image" | "video" | "document" | "location" | "product"
            ) {
                return Err(ConfigError::Rule(format!(
                    "template {}: unknown header_format {}",
                    t.name, t.header_format
                )));
            }
            if t.cards > 10 {
                return Err(ConfigError::Rule(format!(
                    "template {}: at most 10 cards",
                    t.name
                )));
            }
        }
        Ok(())
    }

    /// Applies a JSON patch: objects merge key by key (recursively), anything else replaces.
    pub fn merged(&self, patch: &Value) -> Result<SimConfig, ConfigError> {
        let Value::Object(patch) = patch else {
            return Err(ConfigError::NotAnObject);
        };
        let mut current = serde_json::to_value(self)?;
        if let Value::Object(cur) = &mut current {
            merge_objects(cur, patch);
        }
        let cfg: SimConfig = serde_json::from_value(current)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Builds the start-up configuration: defaults, then `SIM_CONFIG_FILE` / a file path,
    /// then `SIM_CONFIG_JSON`, then one `SIM_<KEY>` variable per top-level key.
    pub fn from_env_and_file(
        file: Option<&str>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<SimConfig, ConfigError> {
        let mut cfg = SimConfig::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            let v: Value = serde_json::from_str(&text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            cfg = cfg.merged(&v)?;
        }
        let vars: Vec<(String, String)> = vars.collect();
        if let Some((_, json)) = vars.iter().find(|(k, _)| k == "SIM_CONFIG_JSON") {
            let v: Value = serde_json::from_str(json).map_err(|e| ConfigError::Env {
                name: "SIM_CONFIG_JSON".to_owned(),
                reason: e.to_string(),
            })?;
            cfg = cfg.merged(&v)?;
        }
        let keys: Vec<String> = match serde_json::to_value(&cfg)? {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let mut patch = Map::new();
        for key in keys {
            let name = format!("SIM_{}", key.to_ascii_uppercase());
            let Some((_, raw)) = vars.iter().find(|(k, _)| *k == name) else {
                continue;
            };
            let value = if key == "numbers" && serde_json::from_str::<Value>(raw).is_err() {
                parse_compact_numbers(raw).map_err(|reason| ConfigError::Env {
                    name: name.clone(),
                    reason,
                })?
            } else if key == "waba_id" && !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit())
            {
                // An id of digits, not a number.
                Value::String(raw.clone())
            } else {
                serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.clone()))
            };
            patch.insert(key, value);
        }
        let cfg = cfg.merged(&Value::Object(patch))?;
        Ok(cfg)
    }
}

/// Webhook URLs are plain http: this build has no TLS (the local stack needs none).
fn check_webhook_url(url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") && url.len() > "http://".len() {
        Ok(())
    } else {
        Err(ConfigError::Rule(format!(
            "webhook URL {url:?} must start with http:// (https is not supported by the simulator)"
        )))
    }
}

/// `id:display:token[,id:display:token...]`
fn parse_compact_numbers(raw: &str) -> Result<Value, String> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = item.splitn(3, ':').collect();
        let [id, display, token] = parts.as_slice() else {
            return Err(format!(
                "expected phone_number_id:display_phone_number:access_token, got {item:?}"
            ));
        };
        out.push(serde_json::json!({
            "phone_number_id": id,
            "display_phone_number": display,
            "access_token": token,
        }));
    }
    Ok(Value::Array(out))
}

fn merge_objects(base: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(p)) => merge_objects(b, p),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_other_keys() {
        let c = SimConfig::default();
        let c2 = c
            .merged(&serde_json::json!({"mps_limit": 5, "error_rates": {"131000": 0.5}}))
            .expect("merge");
        assert_eq!(c2.mps_limit, 5);
        assert_eq!(c2.error_rates.e131000, 0.5);
        assert_eq!(c2.pair_gap_ms, 6000);
    }

    #[test]
    fn rejects_bad_rates_and_unknown_keys() {
        let c = SimConfig::default();
        assert!(c.merged(&serde_json::json!({"read_rate": 2.0})).is_err());
        assert!(c.merged(&serde_json::json!({"nope": 1})).is_err());
        assert!(c
            .merged(&serde_json::json!({"error_rates": {"5xx": 0.7, "190": 0.7}}))
            .is_err());
    }

    #[test]
    fn a_waba_id_of_digits_is_read_as_text() {
        let vars = vec![("SIM_WABA_ID".to_owned(), "102290129340398".to_owned())];
        let c = SimConfig::from_env_and_file(None, vars.into_iter()).expect("env");
        assert_eq!(c.waba_id.as_deref(), Some("102290129340398"));
        let vars = vec![("SIM_WABA_ID".to_owned(), "12ab".to_owned())];
        assert!(SimConfig::from_env_and_file(None, vars.into_iter()).is_err());
    }

    #[test]
    fn env_vars() {
        let vars = vec![
            ("SIM_MPS_LIMIT".to_owned(), "1000".to_owned()),
            (
                "SIM_WEBHOOK_URL".to_owned(),
                "http://localhost:1/wh".to_owned(),
            ),
            (
                "SIM_NUMBERS".to_owned(),
                "111:15550001111:tok1,222:15550002222:tok2".to_owned(),
            ),
            ("SIM_ERROR_RATES".to_owned(), r#"{"5xx":0.01}"#.to_owned()),
        ];
        let c = SimConfig::from_env_and_file(None, vars.into_iter()).expect("env");
        assert_eq!(c.mps_limit, 1000);
        assert_eq!(c.webhook_url.as_deref(), Some("http://localhost:1/wh"));
        assert_eq!(c.numbers.len(), 2);
        assert_eq!(c.numbers[1].access_token, "tok2");
        assert_eq!(c.error_rates.e5xx, 0.01);
    }
}
