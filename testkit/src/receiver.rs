//! A client of the simulator's integrator-event test receiver (`/_recv/{name}/...`): a named,
//! in-memory webhook target that verifies Standard Webhooks signatures and counts what it got.
//!
//! ```ignore
//! let rx = Receiver::unique(&sim_url);
//! rx.configure(&json!({"secrets": [secret]})).await;
//! // ... point a webhook endpoint at rx.url(), send ...
//! let s = rx.stats().await; // {"received", "distinct", "duplicates", "verify_failures", ...}
//! ```

use std::time::Duration;

use serde_json::Value;

/// The receiver `name` of the simulator at `base` (its URL), over `http`.
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    pub name: String,
    http: reqwest::Client,
}

impl Receiver {
    /// The receiver `name` (created by the simulator on first use).
    pub fn new(base: impl Into<String>, name: impl Into<String>) -> Receiver {
        Receiver {
            base: base.into().trim_end_matches('/').to_owned(),
            name: name.into(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }

    /// A receiver with a name no other test uses.
    pub fn unique(base: impl Into<String>) -> Receiver {
        Receiver::new(base, crate::unique_name())
    }

    /// The webhook target: `POST` here.
    pub fn url(&self) -> String {
        format!("{}/_recv/{}", self.base, self.name)
    }

    /// Merges `patch` into the receiver's configuration (`secrets`, `fail_status`,
    /// `fail_first_n`, `retry_after`, `latency_ms`), asserting it was taken; returns the
    /// configuration in force.
    pub async fn configure(&self, patch: &Value) -> Value {
        let r = self
            .http
            .put(format!("{}/config", self.url()))
            .json(patch)
            .send()
            .await
            .expect("receiver config");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "receiver config: {status} {body}");
        serde_json::from_str(&body).expect("receiver config JSON")
    }

    /// The counters: `received`, `distinct`, `duplicates`, `verify_failures`,
    /// `max_per_second`, `by_type`, `with_phone`, `acknowledged`, `answered_failure`.
    pub async fn stats(&self) -> Value {
        self.get_stats(false).await
    }

    /// [`Receiver::stats`] plus `ids`: the distinct webhook ids, sorted.
    pub async fn stats_with_ids(&self) -> Value {
        self.get_stats(true).await
    }

    async fn get_stats(&self, ids: bool) -> Value {
        let r = self
            .http
            .get(format!("{}/stats?ids={ids}", self.url()))
            .send()
            .await
            .expect("receiver stats");
        assert!(r.status().is_success(), "receiver stats: {}", r.status());
        r.json().await.expect("receiver stats JSON")
    }

    /// Clears the counters (the configuration stays).
    pub async fn reset(&self) {
        let r = self
            .http
            .post(format!("{}/reset", self.url()))
            .send()
            .await
            .expect("receiver reset");
        assert!(r.status().is_success(), "receiver reset: {}", r.status());
    }

    /// Waits until the receiver has seen at least `n` distinct webhook ids.
    pub async fn wait_distinct(&self, n: u64, deadline: Duration) {
        let what = format!("{n} distinct webhooks at receiver {}", self.name);
        crate::wait_until(&what, deadline, || async {
            self.stats().await["distinct"].as_u64().unwrap_or(0) >= n
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn sign(id: &str, ts: &str, body: &str) -> String {
        let key = STANDARD
            .decode(SECRET.trim_start_matches("whsec_"))
            .expect("key");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
        mac.update(format!("{id}.{ts}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    #[tokio::test]
    async fn client_round_trip() {
        let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
            .await
            .expect("simulator");
        let rx = Receiver::unique(sim.url());
        let cfg = rx.configure(&json!({"secrets": [SECRET]})).await;
        assert_eq!(cfg["secrets"][0], SECRET);
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            .to_string();
        let body = r#"{"id":"evt_1","type":"message.sent","data":{}}"#;
        let http = reqwest::Client::new();
        let r = http
            .post(rx.url())
            .header("webhook-id", "evt_1")
            .header("webhook-timestamp", &ts)
            .header("webhook-signature", sign("evt_1", &ts, body))
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        rx.wait_distinct(1, Duration::from_secs(5)).await;
        let s = rx.stats_with_ids().await;
        assert_eq!(s["by_type"]["message.sent"], 1, "{s}");
        assert_eq!(s["ids"], json!(["evt_1"]));
        assert!(rx.stats().await.get("ids").is_none());
        rx.reset().await;
        assert_eq!(rx.stats().await["received"], 0);
        sim.stop().await.expect("stop");
    }
}
