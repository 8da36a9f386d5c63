//! Templates at the simulator's "Meta": create and list (paging, tokens, WABAs, Meta's rules),
//! the review (at once by default, after a delay, on request), the signed
//! `message_template_status_update` webhook, sends of unapproved templates failing as at Meta,
//! and the ground truth in `/_sim/stats`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The default number's WABA (its phone number id when none is configured).
const WABA: &str = PNID;

fn definition(name: &str) -> Value {
    json!({"name": name, "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hi {{1}}", "example": {"body_text": [["Ann"]]}}]})
}

async fn call(
    sim: &Sim,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = match method {
        "GET" => sim.client.get(sim.url(path)),
        _ => sim.client.post(sim.url(path)),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create(sim: &Sim, name: &str) -> (u16, Value) {
    call(
        sim,
        "POST",
        &format!("/v23.0/{WABA}/message_templates"),
        Some(TOKEN),
        Some(definition(name)),
    )
    .await
}

#[tokio::test]
async fn a_create_is_approved_at_once_by_default_and_listed_with_paging() {
    let sim = Sim::start(base_config()).await;
    for i in 0..5 {
        let (s, v) = create(&sim, &format!("t_{i}")).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "APPROVED");
        assert_eq!(v["category"], "UTILITY");
        assert!(v["id"]
            .as_str()
            .is_some_and(|id| id.bytes().all(|b| b.is_ascii_digit())));
    }
    // Pages of two: 2 + 2 + 1, following paging.cursors.after while paging.next is given.
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..5 {
        let path = match &after {
            Some(a) => format!("/v23.0/{WABA}/message_templates?limit=2&after={a}"),
            None => format!("/v23.0/{WABA}/message_templates?limit=2"),
        };
        let (s, v) = call(&sim, "GET", &path, Some(TOKEN), None).await;
        assert_eq!(s, 200, "{v}");
        for t in v["data"].as_array().expect("data") {
            names.push(t["name"].as_str().expect("name").to_owned());
        }
        if v["paging"]["next"].is_null() {
            break;
        }
        after = v["paging"]["cursors"]["after"].as_str().map(str::to_owned);
    }
    assert_eq!(names, ["t_0", "t_1", "t_2", "t_3", "t_4"]);
    let stats = sim.stats().await;
    assert_eq!(stats["templates"]["created"], 5, "{stats}");
    assert_eq!(stats["templates"]["by_status"]["APPROVED"], 5, "{stats}");
}

#[tokio::test]
async fn meta_refuses_bad_definitions_tokens_wabas_and_duplicates() {
    // The number keeps a WABA of its own id beside the global one (777).
    let sim = Sim::start(patch(
        base_config(),
        json!({"waba_id": "777", "numbers": [{"phone_number_id": PNID, "display_phone_number": DISPLAY,
                                              "access_token": TOKEN, "waba_id": WABA}]}),
    ))
    .await;
    let path = format!("/v23.0/{WABA}/message_templates");
    let mut bad = Vec::new();
    for (k, v) in [
        ("name", json!("Bad Name")),
        ("language", json!("english")),
        ("category", json!("PROMO")),
        ("components", json!([])),
    ] {
        let mut d = definition("ok_name");
        d[k] = v;
        bad.push(d);
    }
    bad.push(json!({"language": "en", "category": "UTILITY", "components": [{}]}));
    for d in bad {
        let (s, v) = call(&sim, "POST", &path, Some(TOKEN), Some(d.clone())).await;
        assert_eq!(s, 400, "{d}: {v}");
        assert_eq!(v["error"]["code"], 100, "{v}");
    }
    let (s, v) = call(&sim, "POST", &path, None, Some(definition("x"))).await;
    assert_eq!((s, v["error"]["code"].as_u64()), (401, Some(190)), "{v}");
    let (s, v) = call(&sim, "POST", &path, Some("wrong"), Some(definition("x"))).await;
    assert_eq!((s, v["error"]["code"].as_u64()), (401, Some(190)), "{v}");
    // A WABA nobody has, with a valid token: Meta's unknown object.
    let (s, v) = call(
        &sim,
        "POST",
        "/v23.0/999/message_templates",
        Some(TOKEN),
        Some(definition("x")),
    )
    .await;
    assert_eq!((s, v["error"]["code"].as_u64()), (400, Some(100)), "{v}");
    // The global WABA takes any configured number's token.
    let (s, v) = call(
        &sim,
        "POST",
        "/v23.0/777/message_templates",
        Some(TOKEN),
        Some(definition("x")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // The same name and language twice in a WABA.
    let (s, v) = create(&sim, "twice").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = create(&sim, "twice").await;
    assert_eq!(
        (s, v["error"]["error_subcode"].as_u64()),
        (400, Some(2_388_024)),
        "{v}"
    );
    let (s, v) = call(&sim, "GET", &format!("{path}?limit=0"), Some(TOKEN), None).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&sim, "GET", &format!("{path}?after=x"), Some(TOKEN), None).await;
    assert_eq!(s, 400, "{v}");
    // The status endpoint: unknown status 400, no such template 404.
    let (s, _) = call(
        &sim,
        "POST",
        "/_sim/templates/twice/status",
        None,
        Some(json!({"status": "MAYBE"})),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &sim,
        "POST",
        "/_sim/templates/nope/status",
        None,
        Some(json!({"status": "APPROVED"})),
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(sim.stats().await["templates"]["created"], 2);
}

#[tokio::test]
async fn reviews_end_after_the_delay_or_on_request_with_a_signed_webhook() {
    let rx = receiver(0).await;
    let sim = Sim::start(patch(
        base_config(),
        json!({"webhook_url": rx.url(),
        "template_approval_delay_ms": 200, "template_auto_status": "APPROVED"}),
    ))
    .await;
    let (s, v) = create(&sim, "later").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "PENDING");
    let id = v["id"].as_str().expect("id").to_owned();
    // Pending: a send fails as at Meta (132001).
    let (s, v) = sim.send(&template_msg("4917012345678", "later", 1)).await;
    assert_eq!(
        (s, v["error"]["code"].as_u64()),
        (400, Some(132_001)),
        "{v}"
    );
    assert!(wait_until(Duration::from_secs(10), || async { !rx.posts().is_empty() }).await);
    let post = rx.posts().remove(0);
    let sig = post.signature.as_deref().expect("signature");
    assert!(signature_ok(SECRET, &post.raw, sig));
    let body: Value = serde_json::from_slice(&post.raw).expect("json");
    assert_eq!(body["object"], "whatsapp_business_account");
    assert_eq!(body["entry"][0]["id"], WABA);
    let change = &body["entry"][0]["changes"][0];
    assert_eq!(change["field"], "message_template_status_update");
    assert_eq!(change["value"]["event"], "APPROVED");
    assert_eq!(change["value"]["message_template_id"].to_string(), id);
    assert_eq!(change["value"]["message_template_name"], "later");
    assert_eq!(change["value"]["message_template_language"], "en_US");
    assert_eq!(change["value"]["reason"], "NONE");
    let (s, v) = sim.send(&template_msg("4917012345678", "later", 1)).await;
    assert_eq!(s, 200, "{v}");

    // On request: paused (132015), disabled (132016), with the reason in the webhook.
    for (status, code) in [("PAUSED", 132_015u64), ("DISABLED", 132_016)] {
        let (s, v) = call(
            &sim,
            "POST",
            "/_sim/templates/later/status",
            None,
            Some(json!({"status": status, "reason": "LOW_QUALITY"})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["webhooks"][0]["delivered"], true, "{v}");
        let (s, v) = sim.send(&template_msg("4917012345679", "later", 1)).await;
        assert_eq!((s, v["error"]["code"].as_u64()), (400, Some(code)), "{v}");
    }
    let last: Value = serde_json::from_slice(&rx.posts().last().expect("post").raw).expect("json");
    assert_eq!(
        last["entry"][0]["changes"][0]["value"]["reason"],
        "LOW_QUALITY"
    );
    let stats = sim.stats().await;
    assert_eq!(stats["templates"]["status_changes"], 3, "{stats}");
    assert_eq!(stats["templates"]["webhooks_delivered"], 3, "{stats}");
    assert_eq!(stats["templates"]["refused_sends"], 3, "{stats}");
    assert_eq!(stats["accepted"], 1, "{stats}");
}
