//! Inbound messages (`POST /_sim/inbound`): Meta's `messages` webhook, signed like the status
//! webhooks, posted to the webhook URL and counted in the ground truth; bad input refused. And
//! the `131050` injection (the user stopped marketing messages) as a failed status.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn post_inbound(sim: &Sim, body: Value) -> (u16, Value) {
    let resp = sim
        .client
        .post(sim.url("/_sim/inbound"))
        .json(&body)
        .send()
        .await
        .expect("inbound");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn hooked(rx: &Receiver) -> Sim {
    Sim::start(patch(
        base_config(),
        json!({"webhook_url": rx.url(), "webhook_retry_initial_ms": 20, "webhook_retry_max_ms": 50}),
    ))
    .await
}

#[tokio::test]
async fn an_inbound_text_is_posted_signed_in_metas_shape() {
    let rx = receiver(1).await;
    let sim = hooked(&rx).await;
    let (s, v) = post_inbound(
        &sim,
        json!({"from": "+15551234567", "to_number": PNID, "text": "STOP"}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("wamid."), "{id}");
    let (s, v2) = post_inbound(
        &sim,
        json!({"from": "15551234568", "to_number": PNID, "text": "Café / start"}),
    )
    .await;
    assert_eq!(s, 202, "{v2}");
    assert_ne!(v2["id"], v["id"]);

    // The first POST is refused by the receiver: retried.
    let delivered = wait_until(Duration::from_secs(10), || async { rx.posts().len() == 2 }).await;
    assert!(delivered, "posts: {:?}", rx.posts().len());
    let mut texts = Vec::new();
    for p in rx.posts() {
        let sig = p.signature.as_deref().expect("X-Hub-Signature-256");
        assert!(signature_ok(SECRET, &p.raw, sig), "bad signature {sig}");
        let raw = String::from_utf8(p.raw.to_vec()).expect("utf8");
        assert!(raw.is_ascii(), "Meta escapes non-ASCII: {raw}");
        let b: Value = serde_json::from_slice(&p.raw).expect("json");
        assert_eq!(b["object"], "whatsapp_business_account");
        let change = &b["entry"][0]["changes"][0];
        assert_eq!(change["field"], "messages");
        let value = &change["value"];
        assert_eq!(value["messaging_product"], "whatsapp");
        assert_eq!(value["metadata"]["phone_number_id"], PNID);
        assert_eq!(value["metadata"]["display_phone_number"], DISPLAY);
        let m = &value["messages"][0];
        assert_eq!(value["contacts"][0]["wa_id"], m["from"]);
        assert_eq!(m["type"], "text");
        assert!(m["timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<u64>().is_ok()));
        assert!(value.get("statuses").is_none());
        texts.push((
            m["from"].as_str().expect("from").to_owned(),
            m["id"].as_str().expect("id").to_owned(),
            m["text"]["body"].as_str().expect("body").to_owned(),
        ));
    }
    texts.sort();
    assert_eq!(
        texts,
        vec![
            ("15551234567".to_owned(), id, "STOP".to_owned()),
            (
                "15551234568".to_owned(),
                v2["id"].as_str().expect("id").to_owned(),
                "Café / start".to_owned()
            ),
        ]
    );
    let stats = sim.stats().await;
    assert_eq!(
        stats["inbound"],
        json!({"accepted": 2, "delivered": 2, "dropped": 0}),
        "{stats}"
    );
    assert_eq!(sim.get_json("/_sim/pending").await["inbound_pending"], 0);
    assert_eq!(sim.reset().await, 204);
    assert_eq!(sim.stats().await["inbound"]["accepted"], 0);
}

#[tokio::test]
async fn bad_inbound_requests_are_refused() {
    let rx = receiver(0).await;
    let sim = hooked(&rx).await;
    for body in [
        json!({"from": "+15551234567", "to_number": PNID}),
        json!({"from": "+15551234567", "to_number": PNID, "text": ""}),
        json!({"from": "+15551234567", "to_number": PNID, "text": "x".repeat(4097)}),
        json!({"from": "abc", "to_number": PNID, "text": "STOP"}),
        json!({"from": "+1555", "to_number": PNID, "text": "STOP"}),
        json!({"from": 15551234567u64, "to_number": PNID, "text": "STOP"}),
        json!({"from": "+15551234567", "to_number": "", "text": "STOP"}),
        json!({"from": "+15551234567", "to_number": "999", "text": "STOP"}),
        json!({"from": "+15551234567", "to_number": PNID, "text": "STOP", "extra": 1}),
    ] {
        let (s, v) = post_inbound(&sim, body.clone()).await;
        assert_eq!(s, 422, "{body} -> {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    let resp = sim
        .client
        .post(sim.url("/_sim/inbound"))
        .body("not json")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 422);
    // Without a webhook URL there is nowhere to post.
    let (s, _) = sim.put_config(json!({"webhook_url": null})).await;
    assert_eq!(s, 200);
    let (s, v) = post_inbound(
        &sim,
        json!({"from": "+15551234567", "to_number": PNID, "text": "STOP"}),
    )
    .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(sim.stats().await["inbound"]["accepted"], 0);
    assert!(rx.posts().is_empty());
}

#[tokio::test]
async fn error_131050_fails_the_message_asynchronously() {
    let rx = receiver(0).await;
    let sim = Sim::start(patch(
        base_config(),
        json!({"webhook_url": rx.url(), "error_rates": {"131050": 1.0}, "failed_delay_ms": 0,
               "webhook_linger_ms": 10}),
    ))
    .await;
    let (s, v) = sim.send(&template_msg("15551234567", "promo", 1)).await;
    assert_eq!(s, 200, "{v}");
    sim.wait_delivered().await;
    let statuses = rx.statuses();
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0]["status"], "failed");
    assert_eq!(statuses[0]["errors"][0]["code"], 131050);
    assert_eq!(sim.stats().await["statuses"]["failed"], 1);
    let (s, _) = sim
        .put_config(json!({"error_rates": {"131050": 0.6, "131049": 0.6}}))
        .await;
    assert_eq!(s, 400, "the rates add up to more than 1");
}
