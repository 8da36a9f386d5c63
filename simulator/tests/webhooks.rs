//! Status webhooks: signature, shape, batching, duplicates, reordering, retries, ground truth.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use common::*;
use serde_json::{json, Value};

fn hook_config(url: &str, extra: Value) -> ezpulze_simulator::SimConfig {
    let cfg = patch(
        base_config(),
        json!({
            "webhook_url": url,
            "delivered_rate": 1.0,
            "read_rate": 1.0,
            "sent_delay_ms": 0,
            "delivered_delay_ms": 5,
            "read_delay_ms": 10,
            "delay_jitter_ms": 0,
            "webhook_linger_ms": 300,
            "webhook_batch_size": 1000,
            "webhook_retry_initial_ms": 20,
            "webhook_retry_max_ms": 100,
        }),
    );
    patch(cfg, extra)
}

/// A receiver that refuses its first `fail_first` deliveries, and a simulator that sends it
/// statuses (`hook_config` with `extra`).
async fn hooked(fail_first: usize, extra: Value) -> (Receiver, Sim) {
    let rx = receiver(fail_first).await;
    let sim = Sim::start(hook_config(&rx.url(), extra)).await;
    (rx, sim)
}

async fn send_n(sim: &Sim, n: usize, opaque: bool) -> Vec<String> {
    let mut wamids = Vec::new();
    for i in 0..n {
        let mut body = template_msg(&format!("4917012{:05}", i), "promo", 2);
        if opaque {
            body["biz_opaque_callback_data"] = json!(format!("msg-{i}"));
        }
        let (s, v) = sim.send(&body).await;
        assert_eq!(s, 200, "{v}");
        wamids.push(v["messages"][0]["id"].as_str().expect("wamid").to_owned());
    }
    wamids
}

/// Sends `n` messages and waits until every status planned for them was delivered.
async fn send_settled(sim: &Sim, n: usize) {
    send_n(sim, n, false).await;
    sim.wait_delivered().await;
}

#[tokio::test]
async fn signed_batched_statuses_in_meta_shape() {
    let (rx, sim) = hooked(0, json!({})).await;
    let wamids = send_n(&sim, 20, true).await;
    sim.wait_delivered().await;

    let posts = rx.posts();
    assert!(!posts.is_empty());
    for p in &posts {
        let sig = p.signature.as_deref().expect("X-Hub-Signature-256 header");
        assert!(signature_ok(SECRET, &p.raw, sig), "bad signature {sig}");
        assert!(!signature_ok("other-secret", &p.raw, sig));
        let v: Value = serde_json::from_slice(&p.raw).expect("json");
        assert_eq!(v["object"], "whatsapp_business_account");
        for e in v["entry"].as_array().expect("entry") {
            assert_eq!(e["id"], PNID);
            let change = &e["changes"][0];
            assert_eq!(change["field"], "messages");
            assert_eq!(change["value"]["messaging_product"], "whatsapp");
            assert_eq!(change["value"]["metadata"]["phone_number_id"], PNID);
            assert_eq!(change["value"]["metadata"]["display_phone_number"], DISPLAY);
        }
    }
    let statuses = rx.statuses();
    assert_eq!(statuses.len(), 60);
    assert!(posts.len() < statuses.len(), "statuses were not batched");
    let by_id: HashMap<&str, usize> = wamids
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for s in &statuses {
        let id = s["id"].as_str().expect("id");
        let i = by_id[id];
        assert_eq!(s["recipient_id"], format!("4917012{:05}", i));
        assert_eq!(s["biz_opaque_callback_data"], format!("msg-{i}"));
        assert!(s["timestamp"].as_str().expect("ts").parse::<u64>().is_ok());
        let status = s["status"].as_str().expect("status").to_owned();
        if status == "sent" || status == "delivered" {
            assert_eq!(s["pricing"]["pricing_model"], "PMP");
            assert_eq!(s["pricing"]["category"], "marketing");
            assert!(s["conversation"]["id"].as_str().is_some());
        }
        assert!(s.get("errors").is_none());
        *seen.entry((id.to_owned(), status)).or_default() += 1;
    }
    for w in &wamids {
        for st in ["sent", "delivered", "read"] {
            assert_eq!(seen.get(&(w.clone(), st.to_owned())), Some(&1), "{w} {st}");
        }
    }
    // Without reordering, each message's statuses arrive in order.
    let mut order: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in &statuses {
        order
            .entry(s["id"].as_str().expect("id"))
            .or_default()
            .push(s["status"].as_str().expect("status"));
    }
    for v in order.values() {
        assert_eq!(v, &vec!["sent", "delivered", "read"]);
    }
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 20);
    assert_eq!(
        stats["statuses"],
        json!({"sent": 20, "delivered": 20, "read": 20, "failed": 0})
    );
}

#[tokio::test]
async fn batch_size_is_respected() {
    let (rx, sim) = hooked(0, json!({"webhook_batch_size": 4})).await;
    send_settled(&sim, 10).await;
    let mut total = 0;
    for p in rx.posts() {
        let v: Value = serde_json::from_slice(&p.raw).expect("json");
        let n: usize = v["entry"]
            .as_array()
            .expect("entry")
            .iter()
            .map(|e| {
                e["changes"][0]["value"]["statuses"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .sum();
        assert!((1..=4).contains(&n), "batch of {n}");
        total += n;
    }
    assert_eq!(total, 30);
}

#[tokio::test]
async fn retries_until_the_receiver_accepts() {
    let (rx, sim) = hooked(3, json!({})).await;
    send_settled(&sim, 5).await;
    assert!(rx.state.attempts.load(Ordering::SeqCst) >= 4);
    assert_eq!(rx.statuses().len(), 15);
    let stats = sim.stats().await;
    assert_eq!(
        stats["statuses"],
        json!({"sent": 5, "delivered": 5, "read": 5, "failed": 0})
    );
    let pending = sim.get_json("/_sim/pending").await;
    assert!(pending["webhook_posts_failed"].as_u64().expect("failed") >= 3);
    assert_eq!(pending["webhook_statuses_dropped"], 0);
}

#[tokio::test]
async fn retries_after_connection_errors() {
    // Nothing listens on the first URL; the receiver comes up later.
    // Port 1 is privileged and unused: connections are refused (a freed ephemeral port could
    // be taken by another test's receiver).
    let dead_url = "http://127.0.0.1:1/wh".to_owned();
    let sim = Sim::start(hook_config(&dead_url, json!({}))).await;
    send_n(&sim, 3, false).await;
    let failed = wait_until(std::time::Duration::from_secs(10), || async {
        sim.get_json("/_sim/pending").await["webhook_posts_failed"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    assert!(failed);
    assert_eq!(sim.stats().await["statuses"]["sent"], 0);
    let rx = receiver(0).await;
    let (c, _) = sim.put_config(json!({"webhook_url": rx.url()})).await;
    assert_eq!(c, 200);
    sim.wait_delivered().await;
    assert_eq!(rx.statuses().len(), 9);
    assert_eq!(sim.stats().await["statuses"]["read"], 3);
}

#[tokio::test]
async fn duplicates_count_once_in_ground_truth() {
    let (rx, sim) = hooked(0, json!({"duplicate_rate": 1.0})).await;
    send_settled(&sim, 10).await;
    let statuses = rx.statuses();
    assert_eq!(statuses.len(), 60, "every status twice");
    let distinct: HashSet<(String, String)> = statuses
        .iter()
        .map(|s| (s["id"].to_string(), s["status"].to_string()))
        .collect();
    assert_eq!(distinct.len(), 30);
    let stats = sim.stats().await;
    assert_eq!(
        stats["statuses"],
        json!({"sent": 10, "delivered": 10, "read": 10, "failed": 0})
    );
}

#[tokio::test]
async fn reordering_when_asked() {
    let (rx, sim) = hooked(0, json!({"reorder_rate": 1.0, "reorder_delay_ms": 50})).await;
    send_settled(&sim, 20).await;
    let statuses = rx.statuses();
    assert_eq!(statuses.len(), 60);
    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    for s in &statuses {
        order
            .entry(s["id"].to_string())
            .or_default()
            .push(s["status"].as_str().expect("status").to_owned());
    }
    let out_of_order = order
        .values()
        .filter(|v| v.as_slice() != ["sent", "delivered", "read"])
        .count();
    assert!(out_of_order > 0, "nothing was reordered");
    assert_eq!(sim.stats().await["statuses"]["delivered"], 20);
}

#[tokio::test]
async fn rates_and_no_webhook() {
    // delivered/read rates at 0: only `sent`.
    let (rx, sim) = hooked(0, json!({"delivered_rate": 0.0, "read_rate": 0.0})).await;
    send_settled(&sim, 5).await;
    assert!(rx.statuses().iter().all(|s| s["status"] == "sent"));
    assert_eq!(
        sim.stats().await["statuses"],
        json!({"sent": 5, "delivered": 0, "read": 0, "failed": 0})
    );

    // No webhook URL: nothing is planned.
    let sim = Sim::start(base_config()).await;
    send_n(&sim, 3, false).await;
    assert_eq!(sim.pending().await, 0);
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 3);
    assert_eq!(stats["statuses"]["sent"], 0);
}

#[tokio::test]
async fn meta_escaping_keeps_signature_valid() {
    let (rx, sim) = hooked(0, json!({"delivered_rate": 0.0, "read_rate": 0.0})).await;
    let mut body = template_msg("16505551234", "promo", 0);
    body["biz_opaque_callback_data"] = json!("café/ü");
    let (s, _) = sim.send(&body).await;
    assert_eq!(s, 200);
    sim.wait_delivered().await;
    let posts = rx.posts();
    let p = &posts[0];
    let raw = std::str::from_utf8(&p.raw).expect("ascii");
    assert!(raw.is_ascii());
    assert!(raw.contains(r"caf\u00e9\/\u00fc"), "{raw}");
    assert!(signature_ok(
        SECRET,
        &p.raw,
        p.signature.as_deref().expect("sig")
    ));
    // Re-serialising would change the bytes (and break the signature): the receiver must not.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&p.raw).expect("json")).expect("vec");
    assert_ne!(reserialised, p.raw.to_vec());
    assert_eq!(rx.statuses()[0]["biz_opaque_callback_data"], "café/ü");
}

#[tokio::test]
async fn per_number_secret_and_url() {
    let rx_a = receiver(0).await;
    let rx_b = receiver(0).await;
    let cfg = hook_config(
        &rx_a.url(),
        json!({"delivered_rate": 0.0, "read_rate": 0.0, "numbers": [
            {"phone_number_id": PNID, "display_phone_number": DISPLAY, "access_token": TOKEN},
            {"phone_number_id": "222", "display_phone_number": "15550002222", "access_token": "t2",
             "waba_id": "333", "app_secret": "secret-b", "webhook_url": rx_b.url()}
        ]}),
    );
    let sim = Sim::start(cfg).await;
    for i in 0..5 {
        let body = template_msg(&format!("4917012{:05}", i), "promo", 0);
        assert_eq!(sim.send(&body).await.0, 200);
        assert_eq!(sim.send_as("222", "t2", &body).await.0, 200);
    }
    sim.wait_delivered().await;
    for p in rx_a.posts() {
        assert!(signature_ok(
            SECRET,
            &p.raw,
            p.signature.as_deref().expect("sig")
        ));
    }
    for p in rx_b.posts() {
        assert!(signature_ok(
            "secret-b",
            &p.raw,
            p.signature.as_deref().expect("sig")
        ));
        let v: Value = serde_json::from_slice(&p.raw).expect("json");
        assert_eq!(v["entry"][0]["id"], "333");
        assert_eq!(
            v["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"],
            "222"
        );
    }
    assert_eq!(rx_a.statuses().len(), 5);
    assert_eq!(rx_b.statuses().len(), 5);
    assert_eq!(sim.stats().await["statuses"]["sent"], 10);
}

#[tokio::test]
async fn gives_up_after_max_attempts_and_counts_drops() {
    // The receiver refuses everything; it lives to the end of the test.
    let (_rx, sim) = hooked(
        1_000,
        json!({"webhook_max_attempts": 2, "delivered_rate": 0.0, "read_rate": 0.0}),
    )
    .await;
    send_settled(&sim, 4).await;
    let p = sim.get_json("/_sim/pending").await;
    assert_eq!(p["webhook_statuses_dropped"], 4);
    assert_eq!(sim.stats().await["statuses"]["sent"], 0);
}

#[tokio::test]
async fn memory_bound_drops_excess_statuses() {
    let (_rx, sim) = hooked(
        0,
        json!({"webhook_max_pending": 2, "sent_delay_ms": 4000,
               "delivered_rate": 0.0, "read_rate": 0.0}),
    )
    .await;
    send_n(&sim, 5, false).await;
    let p = sim.get_json("/_sim/pending").await;
    assert_eq!(p["webhook_statuses_dropped"], 3);
    sim.wait_delivered().await;
    assert_eq!(sim.stats().await["statuses"]["sent"], 2);
}

#[tokio::test]
async fn reset_discards_planned_statuses() {
    let (rx, sim) = hooked(0, json!({"sent_delay_ms": 4000})).await;
    send_n(&sim, 3, false).await;
    assert_eq!(sim.reset().await, 204);
    sim.wait_delivered().await;
    assert!(rx.statuses().is_empty());
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 0);
    assert_eq!(stats["statuses"]["sent"], 0);
}

#[tokio::test]
async fn read_without_delivered_when_asked() {
    let (rx, sim) = hooked(0, json!({"skip_delivered_rate": 1.0})).await;
    send_settled(&sim, 4).await;
    let statuses = rx.statuses();
    assert_eq!(statuses.len(), 8);
    assert!(statuses.iter().all(|s| s["status"] != "delivered"));
    assert_eq!(
        sim.stats().await["statuses"],
        json!({"sent": 4, "delivered": 0, "read": 4, "failed": 0})
    );
    // https webhook URLs are refused with a clear message.
    let (c, v) = sim
        .put_config(json!({"webhook_url": "https://example.com/wh"}))
        .await;
    assert_eq!(c, 400);
    assert!(v["error"].as_str().expect("error").contains("http://"));
}
