//! A client of the WhatsApp simulator's control endpoints (`/_sim/...`).

use std::time::Duration;

use serde_json::Value;

/// The simulator at `base` (its URL), over `http`.
#[derive(Clone)]
pub struct SimClient {
    pub base: String,
    http: reqwest::Client,
}

impl SimClient {
    pub fn new(base: impl Into<String>) -> SimClient {
        SimClient {
            base: base.into(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }

    /// Merges `patch` into the simulator's configuration (asserting it was taken).
    pub async fn configure(&self, patch: &Value) {
        let r = self
            .http
            .put(format!("{}/_sim/config", self.base))
            .json(patch)
            .send()
            .await
            .expect("simulator config");
        assert!(
            r.status().is_success(),
            "simulator config: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// One of the simulator's JSON pages (`stats`, `pending`, ...).
    pub async fn page(&self, name: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/_sim/{name}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("simulator {name}: {e}"));
        assert!(r.status().is_success(), "simulator {name}: {}", r.status());
        r.json().await.expect("simulator JSON")
    }

    /// What the simulator accepted and rejected: its ground truth.
    pub async fn stats(&self) -> Value {
        self.page("stats").await
    }

    /// Waits until the simulator has posted every status webhook it owes.
    pub async fn webhooks_posted(&self, deadline: Duration) {
        crate::wait_until("the simulator's webhooks posted", deadline, || async {
            let p = self.page("pending").await;
            p["webhook_statuses_pending"] == 0 && p["webhook_posts_in_flight"] == 0
        })
        .await;
    }
}
