//! The portfolio messaging limit as Meta enforces it (`docs/messaging-limits.md`): past the
//! tier, a message to a new unique user is accepted and then fails asynchronously with 131049;
//! a user already reached, or who wrote in the last 24 h, goes; the window moves; the ground
//! truth counts it; a tier Meta does not use is refused.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn over_the_tier_a_message_is_accepted_then_fails_and_the_window_moves() {
    let rx = receiver(0).await;
    let sim = Sim::start(patch(
        base_config(),
        json!({"webhook_url": rx.url(), "failed_delay_ms": 0, "webhook_linger_ms": 10,
               "delivered_rate": 0.0, "read_rate": 0.0,
               "messaging_tier": "TIER_250", "messaging_window_ms": 6000}),
    ))
    .await;
    for i in 0..250 {
        let (s, v) = sim
            .send(&template_msg(&format!("1555100{i:04}"), "promo", 1))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // Already reached: free.
    let (s, _) = sim.send(&template_msg("15551000000", "promo", 1)).await;
    assert_eq!(s, 200);
    // A user who wrote: in their customer-service window.
    let (s, v) = sim
        .client
        .post(sim.url("/_sim/inbound"))
        .json(&json!({"from": "15552000000", "to_number": PNID, "text": "hi"}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("inbound");
    assert_eq!(s, 202, "{:?}", v.text().await);
    let (s, _) = sim.send(&template_msg("15552000000", "promo", 1)).await;
    assert_eq!(s, 200);
    // The 251st unique user: accepted with a wamid, then failed 131049.
    let (s, v) = sim.send(&template_msg("15553000000", "promo", 1)).await;
    assert_eq!(s, 200, "{v}");
    let wamid = v["messages"][0]["id"].as_str().expect("wamid").to_owned();
    sim.wait_delivered().await;
    // The receiver also got the inbound message's webhook (no statuses).
    let failed: Vec<Value> = rx
        .posts()
        .iter()
        .filter_map(|p| serde_json::from_slice::<Value>(&p.raw).ok())
        .flat_map(|v| {
            v["entry"][0]["changes"][0]["value"]["statuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|s| s["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["id"], wamid.as_str());
    assert_eq!(failed[0]["errors"][0]["code"], 131049);
    let stats = sim.stats().await;
    let ml = &stats["messaging_limit"];
    assert_eq!(
        (
            &ml["counted"],
            &ml["already_counted"],
            &ml["service_window"],
            &ml["over_limit"]
        ),
        (&json!(250), &json!(1), &json!(1), &json!(1)),
        "{stats}"
    );
    // The window moves: a new user goes again.
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let (s, _) = sim.send(&template_msg("15554000000", "promo", 1)).await;
    assert_eq!(s, 200);
    assert_eq!(sim.stats().await["messaging_limit"]["over_limit"], 1);
    // Reset forgets the counts.
    assert_eq!(sim.reset().await, 204);
    assert_eq!(sim.stats().await["messaging_limit"]["counted"], 0);
}

#[tokio::test]
async fn no_tier_enforces_nothing_and_a_tier_meta_does_not_use_is_refused() {
    let sim = Sim::start(base_config()).await;
    for i in 0..300 {
        let (s, _) = sim
            .send(&template_msg(&format!("1555100{i:04}"), "promo", 1))
            .await;
        assert_eq!(s, 200);
    }
    assert_eq!(sim.stats().await["messaging_limit"]["over_limit"], 0);
    for bad in [
        json!({"messaging_tier": "TIER_1K"}),
        json!({"messaging_tier": "tier_2k"}),
        json!({"messaging_window_ms": 0}),
    ] {
        let (s, v) = sim.put_config(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = sim.put_config(json!({"messaging_tier": "TIER_2K"})).await;
    assert_eq!((s, &v["messaging_tier"]), (200, &json!("TIER_2K")), "{v}");
}
