//! The integrator-event test receiver (`/_recv/{name}`): Standard Webhooks verification,
//! counters and configured answers. Requests are signed here with an independent HMAC.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER: &str = "whsec_c2VjcmV0LW51bWJlci10d28=";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{body}")>`
fn sign(secret: &str, id: &str, ts: u64, body: &str) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn event(id: &str, kind: &str, phone: bool) -> String {
    let mut data = json!({"message_id": "m1", "status": "sent"});
    if phone {
        data["phone"] = json!("+4917012345678");
    }
    json!({"id": id, "type": kind, "created_at": "2026-12-07T10:00:00.123Z", "data": data})
        .to_string()
}

struct Rx<'a> {
    sim: &'a Sim,
    name: String,
}

impl Rx<'_> {
    fn path(&self, tail: &str) -> String {
        self.sim.url(&format!("/_recv/{}{tail}", self.name))
    }

    async fn configure(&self, patch: Value) -> (u16, Value) {
        let r = self
            .sim
            .client
            .put(self.path("/config"))
            .json(&patch)
            .send()
            .await
            .expect("put");
        let s = r.status().as_u16();
        (s, r.json().await.expect("json"))
    }

    async fn stats(&self) -> Value {
        self.sim
            .get_json(&format!("/_recv/{}/stats", self.name))
            .await
    }

    /// POSTs `body` with the given headers: the status and the Retry-After header.
    async fn post_raw(&self, id: &str, ts: u64, sig: &str, body: &str) -> (u16, Option<String>) {
        let r = self
            .sim
            .client
            .post(self.path(""))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body.to_owned())
            .send()
            .await
            .expect("post");
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (r.status().as_u16(), retry_after)
    }

    /// POSTs a correctly signed event `id` of type `kind`.
    async fn post(&self, id: &str, kind: &str) -> (u16, Option<String>) {
        let body = event(id, kind, false);
        let ts = now();
        self.post_raw(id, ts, &sign(SECRET, id, ts, &body), &body)
            .await
    }
}

async fn rx<'a>(sim: &'a Sim, name: &str) -> Rx<'a> {
    let rx = Rx {
        sim,
        name: name.to_owned(),
    };
    let (s, v) = rx.configure(json!({"secrets": [SECRET]})).await;
    assert_eq!(s, 200, "{v}");
    rx
}

#[tokio::test]
async fn signed_request_counts_and_wrong_signature_is_401() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "basic").await;
    assert_eq!(rx.post("evt_1", "message.sent").await.0, 200);
    let body = event("evt_2", "message.delivered", true);
    let ts = now();
    assert_eq!(
        rx.post_raw("evt_2", ts, &sign(SECRET, "evt_2", ts, &body), &body)
            .await
            .0,
        200
    );
    // Signed with another secret, or over another body: refused and not received-distinct.
    let bad = sign(OTHER, "evt_3", ts, &body);
    assert_eq!(rx.post_raw("evt_3", ts, &bad, &body).await.0, 401);
    let tampered = sign(SECRET, "evt_4", ts, "{}");
    assert_eq!(rx.post_raw("evt_4", ts, &tampered, &body).await.0, 401);
    // No headers at all.
    let r = sim
        .client
        .post(rx.path(""))
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);

    let s = rx.stats().await;
    assert_eq!(s["received"], 5, "{s}");
    assert_eq!(s["distinct"], 2, "{s}");
    assert_eq!(s["verify_failures"], 3, "{s}");
    assert_eq!(s["duplicates"], 0, "{s}");
    assert_eq!(
        s["by_type"],
        json!({"message.sent": 1, "message.delivered": 1})
    );
    assert_eq!(s["with_phone"], 1, "{s}");
    assert_eq!(s["acknowledged"], 2, "{s}");
    assert!(s.get("ids").is_none());
    let s = sim.get_json("/_recv/basic/stats?ids=true").await;
    assert_eq!(s["ids"], json!(["evt_1", "evt_2"]));

    // Another receiver is another set of counters, created on first use (no secrets yet:
    // everything is refused).
    let r2 = Rx {
        sim: &sim,
        name: "fresh".into(),
    };
    assert_eq!(r2.post("evt_1", "message.sent").await.0, 401);
    let s2 = r2.stats().await;
    assert_eq!(
        (s2["received"].clone(), s2["distinct"].clone()),
        (json!(1), json!(0))
    );

    // Reset clears counters but keeps the secrets.
    let r = sim
        .client
        .post(rx.path("/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(rx.stats().await["received"], 0);
    assert_eq!(rx.post("evt_1", "message.sent").await.0, 200);
    assert_eq!(rx.stats().await["distinct"], 1);
}

#[tokio::test]
async fn multiple_signatures_and_rotation() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "rotation").await;
    let body = event("evt_r", "message.read", false);
    let ts = now();
    // Two signatures (new first, as after a rotation): the second is the valid one.
    let header = format!(
        "{} {}",
        sign(OTHER, "evt_r", ts, &body),
        sign(SECRET, "evt_r", ts, &body)
    );
    assert_eq!(rx.post_raw("evt_r", ts, &header, &body).await.0, 200);
    // Only the unknown one: refused.
    let only_other = sign(OTHER, "evt_x", ts, &body);
    assert_eq!(rx.post_raw("evt_x", ts, &only_other, &body).await.0, 401);
    // The receiver configured with both secrets accepts either.
    let (s, v) = rx.configure(json!({"secrets": [OTHER, SECRET]})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(rx.post_raw("evt_x", ts, &only_other, &body).await.0, 200);
    let s = rx.stats().await;
    assert_eq!(
        (s["distinct"].clone(), s["verify_failures"].clone()),
        (json!(2), json!(1))
    );
}

#[tokio::test]
async fn old_or_future_timestamp_fails() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "time").await;
    let body = event("evt_t", "message.sent", false);
    let old = now() - 301;
    let (s, _) = rx
        .post_raw("evt_t", old, &sign(SECRET, "evt_t", old, &body), &body)
        .await;
    assert_eq!(s, 401);
    let future = now() + 400;
    let (s, _) = rx
        .post_raw(
            "evt_t",
            future,
            &sign(SECRET, "evt_t", future, &body),
            &body,
        )
        .await;
    assert_eq!(s, 401);
    let recent = now() - 200;
    let (s, _) = rx
        .post_raw(
            "evt_t",
            recent,
            &sign(SECRET, "evt_t", recent, &body),
            &body,
        )
        .await;
    assert_eq!(s, 200);
    let s = rx.stats().await;
    assert_eq!(s["verify_failures"], 2, "{s}");
    assert_eq!(s["distinct"], 1, "{s}");
}

#[tokio::test]
async fn fail_first_n_with_retry_after_and_duplicates() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "flaky").await;
    let (s, v) = rx
        .configure(json!({"fail_status": 503, "fail_first_n": 2, "retry_after": 7}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["fail_status"], 503);
    assert_eq!(v["secrets"], json!([SECRET]), "secrets kept by the merge");
    assert_eq!(
        rx.post("evt_f", "message.failed").await,
        (503, Some("7".into()))
    );
    assert_eq!(
        rx.post("evt_f", "message.failed").await,
        (503, Some("7".into()))
    );
    assert_eq!(rx.post("evt_f", "message.failed").await, (200, None));
    assert_eq!(rx.post("evt_g", "message.failed").await, (200, None));
    let s = rx.stats().await;
    assert_eq!(s["received"], 4, "{s}");
    assert_eq!(s["distinct"], 2, "{s}");
    assert_eq!(s["duplicates"], 2, "{s}");
    assert_eq!(s["answered_failure"], 2, "{s}");
    assert_eq!(s["acknowledged"], 2, "{s}");
    assert_eq!(s["by_type"]["message.failed"], 2, "{s}");

    // Always failing with 400, no Retry-After.
    let (s, v) = rx
        .configure(json!({"fail_status": 400, "fail_first_n": null, "retry_after": null}))
        .await;
    assert_eq!(s, 200, "{v}");
    for _ in 0..3 {
        assert_eq!(rx.post("evt_h", "message.sent").await, (400, None));
    }
    // A bad signature is 401 even while failing.
    let body = event("evt_h", "message.sent", false);
    assert_eq!(rx.post_raw("evt_h", now(), "v1,AAAA", &body).await.0, 401);
    let (s, _) = rx.configure(json!({"fail_status": null})).await;
    assert_eq!(s, 200);
    assert_eq!(rx.post("evt_h", "message.sent").await, (200, None));
    let s = rx.stats().await;
    assert_eq!(s["duplicates"], 2 + 3, "{s}");
    assert_eq!(s["distinct"], 3, "{s}");
    assert_eq!(s["verify_failures"], 1, "{s}");
}

#[tokio::test]
async fn config_is_validated() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "cfg").await;
    for bad in [
        json!({"unknown": 1}),
        json!({"secrets": "whsec_x"}),
        json!({"secrets": ["whsec_***"]}),
        json!({"fail_status": 42}),
        json!({"latency_ms": -1}),
        json!([1]),
    ] {
        let (s, v) = rx.configure(bad.clone()).await;
        assert_eq!(s, 400, "{bad} -> {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    let r = sim
        .client
        .put(rx.path("/config"))
        .body("not json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 400);
    // Nothing taken.
    let v = sim.get_json("/_recv/cfg/config").await;
    assert_eq!(
        v,
        json!({"secrets": [SECRET], "fail_status": null, "fail_first_n": null,
               "retry_after": null, "latency_ms": 0})
    );
}

#[tokio::test]
async fn body_over_one_mib_is_refused() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "big").await;
    let body = format!(
        r#"{{"type":"message.sent","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    let ts = now();
    let (s, _) = rx
        .post_raw("evt_big", ts, &sign(SECRET, "evt_big", ts, &body), &body)
        .await;
    assert_eq!(s, 413);
    assert_eq!(rx.stats().await["distinct"], 0);
}

#[tokio::test]
async fn latency_and_max_per_second() {
    let sim = Sim::start(base_config()).await;
    let rx = rx(&sim, "rate").await;
    // 40 requests at once: within one second unless the machine is very slow.
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (client, url) = (sim.client.clone(), rx.path(""));
        let id = format!("evt_{i}");
        let body = event(&id, "message.sent", false);
        let ts = now();
        let sig = sign(SECRET, &id, ts, &body);
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("post"), 200);
    }
    let burst = started.elapsed();
    let s = rx.stats().await;
    if burst < Duration::from_millis(1000) {
        // Every arrival fell between the first send and the last answer.
        assert_eq!(s["max_per_second"], 40, "{s}");
    } else {
        let m = s["max_per_second"].as_u64().expect("max");
        assert!((1..=40).contains(&m), "{s} (burst took {burst:?})");
    }
    let burst_max = s["max_per_second"].clone();
    // Then a slow trickle: the maximum stays.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..3 {
        rx.post(&format!("evt_slow_{i}"), "message.sent").await;
    }
    let s = rx.stats().await;
    assert_eq!(s["max_per_second"], burst_max, "{s}");
    assert_eq!(s["distinct"], 43, "{s}");

    // latency_ms holds the answer.
    let (st, _) = rx.configure(json!({"latency_ms": 300})).await;
    assert_eq!(st, 200);
    let t = std::time::Instant::now();
    assert_eq!(rx.post("evt_late", "message.sent").await.0, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(rx.stats().await["acknowledged"], 44);
}
