//! WABA-level webhooks on request (`POST /_sim/events`): Meta's shape, signed like the status
//! webhooks (or with a given secret), posted at once (a 5xx retried), counted in the ground
//! truth; a THROUGHPUT_UPGRADE raises the number's own limit to 1,000/s; bad input refused.

mod common;

use common::*;
use serde_json::{json, Value};

async fn post_event(sim: &Sim, body: Value) -> (u16, Value) {
    let resp = sim
        .client
        .post(sim.url("/_sim/events"))
        .json(&body)
        .send()
        .await
        .expect("event");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn events_are_posted_signed_in_metas_shape_and_counted() {
    // The first POST is refused with a 500: tried again.
    let rx = receiver(1).await;
    let sim = Sim::start(patch(
        base_config(),
        json!({"webhook_url": rx.url(), "mps_limit": 80}),
    ))
    .await;
    let (s, v) = post_event(
        &sim,
        json!({"field": "phone_number_quality_update", "phone_number_id": PNID,
               "event": "THROUGHPUT_UPGRADE", "value": {"current_limit": "TIER_10K"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["delivered"].clone(), v["status"].clone()),
        (json!(true), json!(200))
    );
    let posts = rx.posts();
    assert_eq!(posts.len(), 1);
    let sig = posts[0].signature.as_deref().expect("signature");
    assert!(signature_ok(SECRET, &posts[0].raw, sig));
    let body: Value = serde_json::from_slice(&posts[0].raw).expect("json");
    assert_eq!(body["object"], "whatsapp_business_account");
    // No waba_id configured: the number's id is its WABA's.
    assert_eq!(body["entry"][0]["id"], PNID);
    let change = &body["entry"][0]["changes"][0];
    assert_eq!(change["field"], "phone_number_quality_update");
    assert_eq!(
        change["value"],
        json!({"display_phone_number": DISPLAY, "event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_10K"})
    );
    // The upgrade raised the number's own limit.
    let cfg = sim.get_json("/_sim/config").await;
    assert_eq!(cfg["numbers"][0]["mps_limit"], 1000, "{cfg}");

    // Another secret (a bad-signature test) and a WABA given by hand; any field.
    let (s, v) = post_event(
        &sim,
        json!({"field": "business_capability_update", "waba_id": "999", "app_secret": "wrong",
               "value": {"max_daily_conversation_per_phone": 1000}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let posts = rx.posts();
    let last = posts.last().expect("post");
    let sig = last.signature.as_deref().expect("signature");
    assert!(signature_ok("wrong", &last.raw, sig));
    assert!(!signature_ok(SECRET, &last.raw, sig));
    let stats = sim.stats().await;
    assert_eq!(stats["events"]["emitted"], 2, "{stats}");
    assert_eq!(
        stats["events"]["by_field"]["phone_number_quality_update"],
        1
    );
    assert_eq!(stats["events"]["delivered"], 2);
    sim.reset().await;
    assert_eq!(sim.stats().await["events"]["emitted"], 0);
}

#[tokio::test]
async fn bad_event_requests_are_refused() {
    let rx = receiver(0).await;
    let sim = Sim::start(patch(base_config(), json!({"webhook_url": rx.url()}))).await;
    for bad in [
        json!([]),
        json!({}),
        json!({"field": ""}),
        json!({"field": 7, "phone_number_id": PNID}),
        json!({"field": "account_update"}),
        json!({"field": "account_update", "phone_number_id": "404"}),
        json!({"field": "account_update", "phone_number_id": PNID, "value": [1]}),
        json!({"field": "account_update", "phone_number_id": PNID, "event": {"x": 1}}),
    ] {
        let (s, v) = post_event(&sim, bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    assert!(rx.posts().is_empty());
    // No webhook URL: refused too.
    let sim = Sim::start(base_config()).await;
    let (s, _) = post_event(
        &sim,
        json!({"field": "account_update", "phone_number_id": PNID}),
    )
    .await;
    assert_eq!(s, 400);
}
