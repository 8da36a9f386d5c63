//! Throughput cap, pair limit and injected errors.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn throughput_cap_gives_130429() {
    let sim = Arc::new(Sim::start(patch(base_config(), json!({"mps_limit": 3}))).await);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..30 {
        let sim = sim.clone();
        set.spawn(async move {
            sim.send(&template_msg(&format!("1650555{:04}", i), "t", 1))
                .await
        });
    }
    let mut ok = 0;
    let mut limited = 0;
    while let Some(r) = set.join_next().await {
        let (s, v) = r.expect("join");
        if s == 200 {
            ok += 1;
        } else {
            assert_eq!(s, 400, "{v}");
            assert_eq!(v["error"]["code"], 130429, "{v}");
            limited += 1;
        }
    }
    assert_eq!(ok + limited, 30);
    // 30 requests cannot span ten 1-second windows.
    assert!(limited > 0, "no 130429 in a burst of 30 against 3/s");
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], ok);
    assert_eq!(stats["rejected"]["130429"], limited);
    let max = stats["max_mps_by_number"][PNID].as_u64().expect("max mps");
    assert!((4..=30).contains(&max), "max_mps {max}");
}

#[tokio::test]
async fn per_number_cap_overrides_global() {
    let cfg = patch(
        base_config(),
        json!({"mps_limit": 0, "numbers": [
            {"phone_number_id": PNID, "display_phone_number": DISPLAY, "access_token": TOKEN, "mps_limit": 2},
            {"phone_number_id": "222", "display_phone_number": "15550002222", "access_token": "t2"}
        ]}),
    );
    let sim = Arc::new(Sim::start(cfg).await);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20 {
        let sim = sim.clone();
        set.spawn(async move {
            let body = template_msg(&format!("1650555{:04}", i), "t", 0);
            let a = sim.send(&body).await.0;
            let b = sim.send_as("222", "t2", &body).await.0;
            (a, b)
        });
    }
    let mut limited_a = 0;
    while let Some(r) = set.join_next().await {
        let (a, b) = r.expect("join");
        if a != 200 {
            limited_a += 1;
        }
        assert_eq!(b, 200, "the uncapped number was limited");
    }
    assert!(limited_a > 0);
}

#[tokio::test]
async fn pair_limit_gives_131056() {
    let sim = Sim::start(patch(base_config(), json!({"pair_gap_ms": 60_000}))).await;
    let (s, _) = sim.send(&template_msg("16505551234", "t", 0)).await;
    assert_eq!(s, 200);
    let (s, v) = sim.send(&template_msg("+16505551234", "t", 0)).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["code"], 131056);
    assert_eq!(
        v["error"]["message"],
        "(#131056) (Business Account, Consumer Account) pair rate limit hit"
    );
    let (s, _) = sim.send(&template_msg("16505551235", "t", 0)).await;
    assert_eq!(s, 200, "another recipient is not limited");
    // Switching the gap off lets the pair through.
    let (c, _) = sim.put_config(json!({"pair_gap_ms": 0})).await;
    assert_eq!(c, 200);
    let (s, _) = sim.send(&template_msg("16505551234", "t", 0)).await;
    assert_eq!(s, 200);
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 3);
    assert_eq!(stats["rejected"]["131056"], 1);
}

async fn one_injected(rate_key: &str, extra: Value) -> (u16, Value, Sim) {
    let mut p = json!({"error_rates": {rate_key: 1.0}});
    if let (Some(o), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let sim = Sim::start(patch(base_config(), p)).await;
    let (s, v) = sim.send(&template_msg("16505551234", "t", 1)).await;
    (s, v, sim)
}

#[tokio::test]
async fn injected_sync_errors_at_rate_one() {
    let (s, v, sim) = one_injected("131000", json!({})).await;
    assert_eq!(s, 500);
    assert_eq!(v["error"]["code"], 131000);
    assert_eq!(sim.stats().await["rejected"]["131000"], 1);

    let (s, v, _) = one_injected("190", json!({})).await;
    assert_eq!(s, 401);
    assert_eq!(v["error"]["code"], 190);

    let (_, _, sim) = one_injected("5xx", json!({})).await;
    let mut seen = Vec::new();
    for i in 0..20 {
        let (s, v) = sim
            .send(&template_msg(&format!("1650555{:04}", i), "t", 1))
            .await;
        let code = v["error"]["code"].as_u64().expect("code");
        match (s, code) {
            (500, 1) | (503, 2) => {}
            other => panic!("unexpected 5xx injection {other:?}"),
        }
        seen.push((s, code));
    }
    assert!(seen.iter().any(|c| c.1 == 1) && seen.iter().any(|c| c.1 == 2));

    // Same seed, same order of requests: same choices.
    let again = Sim::start(patch(base_config(), json!({"error_rates": {"5xx": 1.0}}))).await;
    let _ = again.send(&template_msg("16505551234", "t", 1)).await;
    let mut seen2 = Vec::new();
    for i in 0..20 {
        let (s, v) = again
            .send(&template_msg(&format!("1650555{:04}", i), "t", 1))
            .await;
        seen2.push((s, v["error"]["code"].as_u64().expect("code")));
    }
    assert_eq!(seen, seen2);

    let (s, v, sim) = one_injected("timeout", json!({"timeout_ms": 150})).await;
    assert_eq!(s, 504, "{v}");
    let stats = sim.stats().await;
    assert_eq!(stats["rejected"]["timeout"], 1);
    assert_eq!(stats["accepted"], 0);
}

#[tokio::test]
async fn injected_async_failures_arrive_as_failed_statuses() {
    for code in [131026u64, 131049] {
        let rx = receiver(0).await;
        let (s, v, sim) = one_injected(
            &code.to_string(),
            json!({"webhook_url": rx.url(), "webhook_linger_ms": 5}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let wamid = v["messages"][0]["id"].as_str().expect("wamid").to_owned();
        sim.wait_delivered().await;
        let statuses = rx.statuses();
        assert_eq!(statuses.len(), 1, "{statuses:?}");
        let st = &statuses[0];
        assert_eq!(st["id"], wamid.as_str());
        assert_eq!(st["status"], "failed");
        assert_eq!(st["errors"][0]["code"], code);
        assert!(st["errors"][0]["title"].as_str().is_some());
        assert!(st["errors"][0]["error_data"]["details"].as_str().is_some());
        assert!(st.get("pricing").is_none());
        let stats = sim.stats().await;
        assert_eq!(stats["accepted"], 1);
        assert_eq!(stats["statuses"]["failed"], 1);
        assert_eq!(stats["statuses"]["sent"], 0);
    }
}

#[tokio::test]
async fn timeout_that_was_accepted_still_sends_statuses() {
    let rx = receiver(0).await;
    let (s, v, sim) = one_injected(
        "timeout",
        json!({"timeout_ms": 100, "timeout_accepts": true, "webhook_url": rx.url(),
               "webhook_linger_ms": 5, "delivered_rate": 0.0, "read_rate": 0.0}),
    )
    .await;
    assert_eq!(s, 504, "{v}");
    sim.wait_delivered().await;
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 1);
    assert_eq!(stats["statuses"]["sent"], 1);
    assert_eq!(rx.statuses().len(), 1);
}

#[tokio::test]
async fn unversioned_path_and_shutdown_releases_held_requests() {
    let sim = Sim::start(patch(
        base_config(),
        json!({"error_rates": {"timeout": 1.0}, "timeout_ms": 600_000}),
    ))
    .await;
    let client = sim.client.clone();
    let url = sim.url(&format!("/{PNID}/messages"));
    let held = tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(TOKEN)
            .json(&template_msg("16505551234", "t", 0))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // Wait until the request is being held, then stop the server: the request ends early.
    let is_held = wait_until(std::time::Duration::from_secs(20), || async {
        sim.get_json("/_sim/pending").await["requests_held"] == 1
    })
    .await;
    assert!(is_held);
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(20), sim.handle.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited for the held request");
    let status = held.await.expect("join");
    assert_eq!(status.expect("response"), 504);
}

/// A client that gives up while its request is held (the handler future is dropped) leaves
/// `requests_held` at 0, so the documented drain condition comes true after a timeout run.
#[tokio::test]
async fn client_giving_up_during_a_hold_leaves_nothing_held() {
    for accepts in [false, true] {
        let sim = Sim::start(patch(
            base_config(),
            json!({"error_rates": {"timeout": 1.0}, "timeout_ms": 600_000, "timeout_accepts": accepts}),
        ))
        .await;
        let impatient = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(300))
            .build()
            .expect("client");
        let sent = impatient
            .post(sim.url(&format!("/v23.0/{PNID}/messages")))
            .bearer_auth(TOKEN)
            .json(&template_msg("16505551234", "t", 0))
            .send()
            .await;
        assert!(sent.is_err(), "the client timed out (accepts={accepts})");
        let drained = wait_until(std::time::Duration::from_secs(10), || async {
            sim.get_json("/_sim/pending").await["requests_held"] == 0
        })
        .await;
        assert!(drained, "requests_held went back to 0 (accepts={accepts})");
    }
}

#[tokio::test]
async fn latency_is_added() {
    let sim = Sim::start(patch(base_config(), json!({"latency_ms": 120}))).await;
    let t = std::time::Instant::now();
    let (s, _) = sim.send(&template_msg("16505551234", "t", 0)).await;
    assert_eq!(s, 200);
    // A lower bound only: it cannot flake on a slow machine.
    assert!(t.elapsed() >= std::time::Duration::from_millis(120));
}
