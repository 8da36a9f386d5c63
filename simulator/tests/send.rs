//! The send endpoint: success and error shapes, validation against Meta's examples.

mod common;

use common::*;
use serde_json::{json, Value};

fn fixture(name: &str) -> serde_json::Map<String, Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    match serde_json::from_str(&text).expect("fixture json") {
        Value::Object(m) => m,
        _ => panic!("fixture {name} is not an object"),
    }
}

fn assert_success(status: u16, v: &Value, to: &str) {
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["messaging_product"], "whatsapp");
    let contacts = v["contacts"].as_array().expect("contacts");
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["input"], to);
    assert_eq!(contacts[0]["wa_id"], to.trim_start_matches('+'));
    let messages = v["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    let id = messages[0]["id"].as_str().expect("id");
    assert!(id.starts_with("wamid."), "{id}");
    assert_eq!(messages[0]["message_status"], "accepted");
    let keys: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 3, "unexpected keys {keys:?}");
}

fn assert_error(status: u16, v: &Value, http: u16, code: u64) {
    assert_eq!(status, http, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(e["type"], "OAuthException");
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
    assert!(e["error_data"]["details"].as_str().is_some());
    assert!(e["fbtrace_id"].as_str().is_some_and(|t| t.len() >= 10));
}

#[tokio::test]
async fn openapi_template_examples_are_accepted() {
    let sim = Sim::start(base_config()).await;
    let examples = fixture("openapi_template_examples.json");
    assert!(examples.len() >= 10);
    for (i, (name, mut body)) in examples.into_iter().enumerate() {
        // Placeholders like {{Recipient-Phone-Number}} become a real number.
        let to = body["to"].as_str().unwrap_or_default().to_owned();
        let to = if to
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit())
            && !to.is_empty()
        {
            to
        } else {
            let t = format!("1650555{:04}", 1000 + i);
            body["to"] = json!(t);
            t
        };
        let (status, v) = sim.send(&body).await;
        assert_eq!(status, 200, "example {name}: {v}");
        assert_success(status, &v, &to);
    }
}

#[tokio::test]
async fn reference_examples_are_accepted_unregistered_and_registered() {
    let examples = fixture("reference_template_examples.json");
    // Unregistered: any template name is accepted.
    let sim = Sim::start(base_config()).await;
    for (name, body) in &examples {
        let (status, v) = sim.send(body).await;
        assert_eq!(status, 200, "example {name}: {v}");
        assert_success(status, &v, body["to"].as_str().expect("to"));
    }
    // Registered with the matching definitions.
    let cfg = patch(
        base_config(),
        json!({"templates": [
            {"name": "carousel_template_media_cards_v1", "language": "en_US", "body_params": 3, "cards": 2,
             "card_header_format": "image", "card_buttons": [{"sub_type": "quick_reply", "index": 0}, {"sub_type": "url", "index": 1}]},
            {"name": "carousel_template_product_cards_v1", "language": "en_US", "body_params": 1, "cards": 2,
             "card_header_format": "product", "card_body_params": 0},
            {"name": "spm_black_prince", "language": "en_US", "header_format": "product", "body_params": 1},
            {"name": "abandoned_cart", "language": "en_US", "header_format": "text", "header_params": 1, "body_params": 1,
             "buttons": [{"sub_type": "mpm", "index": 0}]},
            {"name": "order_update", "language": "en_US", "header_format": "document", "body_params": 3,
             "buttons": [{"sub_type": "quick_reply", "index": 0}, {"sub_type": "url", "index": 1}, {"sub_type": "copy_code", "index": 2}]},
            {"name": "pickup", "language": "en", "header_format": "location", "buttons": [{"sub_type": "flow", "index": 0}]},
            {"name": "flash_sale", "language": "en_US", "buttons": [{"sub_type": "copy_code", "index": 0}, {"sub_type": "url", "index": 1}]},
            {"name": "otp", "language": "en_US", "body_params": 1, "buttons": [{"sub_type": "url", "index": 0}]}
        ]}),
    );
    let sim = Sim::start(cfg).await;
    for (name, body) in &examples {
        let (status, v) = sim.send(body).await;
        assert_eq!(status, 200, "registered example {name}: {v}");
    }

    // Card count differs from the approved template.
    let mut body = examples["media_card_carousel"].clone();
    let cards = body["template"]["components"][1]["cards"]
        .as_array_mut()
        .expect("cards");
    let mut third = cards[1].clone();
    third["card_index"] = json!(2);
    cards.push(third);
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 132012);

    // Duplicate card_index.
    let mut body = examples["media_card_carousel"].clone();
    body["template"]["components"][1]["cards"][1]["card_index"] = json!(0);
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);

    // Wrong body parameter count.
    let mut body = examples["media_headers_and_buttons"].clone();
    body["template"]["components"][1]["parameters"]
        .as_array_mut()
        .expect("params")
        .pop();
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 132000);
    assert!(v["error"]["error_data"]["details"]
        .as_str()
        .expect("details")
        .contains("body"));

    // Edits of the media example's components, each refused with its error code.
    type Edit = fn(&mut Value);
    let media_cases: [(&str, Edit, u64); 4] = [
        (
            "a required url button missing",
            |c| {
                c.as_array_mut().expect("c").remove(3);
            },
            131008,
        ),
        (
            "a button sub_type that differs from the template at that index",
            |c| {
                c[3] = json!({"type": "button", "sub_type": "quick_reply", "index": "1",
                    "parameters": [{"type": "payload", "payload": "x"}]});
            },
            132012,
        ),
        (
            "header format mismatch: image where the template has a document",
            |c| {
                c[0] = json!({"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]});
            },
            132012,
        ),
        (
            "missing media header entirely",
            |c| {
                c.as_array_mut().expect("c").remove(0);
            },
            132012,
        ),
    ];
    for (what, edit, code) in media_cases {
        let mut body = examples["media_headers_and_buttons"].clone();
        edit(&mut body["template"]["components"]);
        let (s, v) = sim.send(&body).await;
        assert_eq!(s, 400, "{what}: {v}");
        assert_error(s, &v, 400, code);
    }

    // Unknown template / wrong language.
    let (s, v) = sim
        .send(&template_msg("16505551234", "no_such_template", 0))
        .await;
    assert_error(s, &v, 400, 132001);
    let mut body = examples["authentication_otp"].clone();
    body["template"]["language"]["code"] = json!("en");
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 132001);
}

#[tokio::test]
async fn named_and_positional_parameters() {
    let cfg = patch(
        base_config(),
        json!({"templates": [
            {"name": "named_t", "language": "en", "parameter_format": "named", "body_params": 2,
             "body_param_names": ["first_name", "order"]},
            {"name": "pos_t", "language": "en", "parameter_format": "positional", "body_params": 1}
        ]}),
    );
    let sim = Sim::start(cfg).await;
    let msg = |name: &str, params: Value| {
        json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
            "template": {"name": name, "language": {"code": "en"},
                "components": [{"type": "body", "parameters": params}]}})
    };
    let named = json!([
        {"type": "text", "parameter_name": "first_name", "text": "Maria"},
        {"type": "text", "parameter_name": "order", "text": "4721"}]);
    let (s, v) = sim.send(&msg("named_t", named)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = sim
        .send(&msg(
            "named_t",
            json!([{"type": "text", "text": "Maria"}, {"type": "text", "text": "4721"}]),
        ))
        .await;
    assert_error(s, &v, 400, 131008);
    let (s, v) = sim
        .send(&msg(
            "named_t",
            json!([
            {"type": "text", "parameter_name": "first_name", "text": "Maria"},
            {"type": "text", "parameter_name": "nope", "text": "4721"}]),
        ))
        .await;
    assert_error(s, &v, 400, 131009);
    let (s, v) = sim
        .send(&msg(
            "pos_t",
            json!([{"type": "text", "parameter_name": "x", "text": "Maria"}]),
        ))
        .await;
    assert_error(s, &v, 400, 131009);
    let (s, v) = sim
        .send(&msg("pos_t", json!([{"type": "text", "text": "Maria"}])))
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn bad_token_and_unknown_number() {
    let sim = Sim::start(base_config()).await;
    let body = template_msg("16505551234", "hello_world", 0);
    let (s, v) = sim.send_as(PNID, "wrong-token", &body).await;
    assert_error(s, &v, 401, 190);
    // No Authorization header at all.
    let resp = sim
        .client
        .post(sim.url(&format!("/v23.0/{PNID}/messages")))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"]["code"], 190);
    // A valid token on a number the simulator does not know.
    let (s, v) = sim.send_as("999999999999999", TOKEN, &body).await;
    assert_error(s, &v, 400, 100);
    assert_eq!(v["error"]["error_subcode"], 33);
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 0);
    assert_eq!(stats["rejected"]["190"], 2);
    assert_eq!(stats["rejected"]["100"], 1);
}

#[tokio::test]
async fn text_rules_and_top_level_fields() {
    let sim = Sim::start(base_config()).await;
    let with_text = |t: &str| {
        json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
            "template": {"name": "t", "language": {"code": "en"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": t}]}]}})
    };
    for bad in ["line\nbreak", "tab\there", "five     spaces", "cr\rhere"] {
        let (s, v) = sim.send(&with_text(bad)).await;
        assert_error(s, &v, 400, 132018);
        assert!(v["error"]["error_data"]["details"]
            .as_str()
            .expect("details")
            .contains("new-line/tab"));
    }
    let (s, v) = sim.send(&with_text("four    spaces ok")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = sim.send(&with_text("")).await;
    assert_error(s, &v, 400, 131008);
    let (s, v) = sim.send(&with_text(&"x".repeat(1025))).await;
    assert_error(s, &v, 400, 131009);
    // Header text limit 60.
    let body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "header", "parameters": [{"type": "text", "text": "h".repeat(61)}]}]}});
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 131009);
    // Static phone button is refused with Meta's sub_type message.
    let body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "phone_number", "index": "0", "parameters": []}]}});
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);
    assert!(v["error"]["message"]
        .as_str()
        .expect("m")
        .contains("must be one of {BOOKING_CONFIRMATION"));
    // Button index out of range, coupon too long.
    let body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "url", "index": "12", "parameters": [{"type": "text", "text": "a"}]}]}});
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);
    let body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "copy_code", "index": 0, "parameters": [{"type": "coupon_code", "coupon_code": "0123456789ABCDEF"}]}]}});
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 131009);
    // LTO in seconds instead of milliseconds.
    let body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "limited_time_offer", "parameters": [{"type": "limited_time_offer", "limited_time_offer": {"expiration_time_ms": 1767225599}}]}]}});
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 131009);
    // Recipient and product checks.
    for to in [
        "abc",
        "123",
        "+1650555123456789",
        "16505551234x",
        "0016505551234",
    ] {
        let (s, v) = sim.send(&template_msg(to, "t", 0)).await;
        assert_error(s, &v, 400, 100);
    }
    let mut body = template_msg("16505551234", "t", 0);
    body.as_object_mut().expect("o").remove("messaging_product");
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);
    let mut body = template_msg("16505551234", "t", 0);
    body["messaging_product"] = json!("sms");
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);
    let mut body = template_msg("16505551234", "t", 0);
    body["template"]["language"]["policy"] = json!("fallback");
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);
    let mut body = template_msg("16505551234", "t", 0);
    body["biz_opaque_callback_data"] = json!("x".repeat(513));
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 100);
    // Not JSON at all.
    let resp = sim
        .client
        .post(sim.url(&format!("/v23.0/{PNID}/messages")))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    // MPM without thumbnail.
    let body = json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "template",
        "template": {"name": "t", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "mpm", "index": 0, "parameters": [{"type": "action", "action": {"sections": []}}]}]}});
    let (s, v) = sim.send(&body).await;
    assert_error(s, &v, 400, 131008);
    // Formatting characters Meta accepts; wa_id is the digits.
    let (s, v) = sim.send(&template_msg("+1 (650) 555-1299", "t", 0)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["contacts"][0]["input"], "+1 (650) 555-1299");
    assert_eq!(v["contacts"][0]["wa_id"], "16505551299");
    // A plain text message (no message_status for non-templates).
    let (s, v) = sim
        .send(&json!({"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "hi"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["messages"][0].get("message_status").is_none());
}

#[tokio::test]
async fn config_endpoint_health_and_metrics() {
    let sim = Sim::start(base_config()).await;
    let (s, v) = sim.put_config(json!({"read_rate": 3})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = sim
        .put_config(json!({"mps_limit": 7, "error_rates": {"131000": 0.0}}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["mps_limit"], 7);
    let cfg = sim.get_json("/_sim/config").await;
    assert_eq!(cfg["mps_limit"], 7);
    assert_eq!(cfg["numbers"][0]["phone_number_id"], PNID);
    let (h, _) = sim.get_text("/healthz").await;
    assert_eq!(h, 200);
    let (s, _) = sim.send(&template_msg("16505551234", "t", 1)).await;
    assert_eq!(s, 200);
    let (_, m) = sim.get_text("/metrics").await;
    assert!(m.contains("ezpulze_sim_messages_accepted_total"), "{m}");
    // Reset clears the counters.
    assert!((200..300).contains(&sim.reset().await));
    let stats = sim.stats().await;
    assert_eq!(stats["accepted"], 0, "{stats}");
    assert_eq!(
        stats["statuses"],
        json!({"sent": 0, "delivered": 0, "read": 0, "failed": 0})
    );
    // Every counter of every section (inbound, events, templates, ...) is back to 0.
    fn all_zero(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
            serde_json::Value::Object(m) => m.values().all(all_zero),
            serde_json::Value::Array(a) => a.is_empty(),
            _ => true,
        }
    }
    assert!(all_zero(&stats), "{stats}");
}
