//! WhatsApp settings and the webhook receiver: verification, signatures over raw bytes, bad
//! input answered clearly with nothing stored.

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{acme, assert_error, TestApp};

const SECRET: &str = "app-secret-for-tests";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn configured() -> (TestApp, String) {
    let (app, acc) = acme().await;
    let (s, v) = app
        .send("PUT", "/admin/v1/whatsapp", &acc.admin, Some(json!({
            "phone_numbers": [{"phone_number_id": "106540352242922", "display_phone_number": "15550783881", "access_token": "EAAG-secret-token", "messages_per_second": 40}],
            "app_secret": SECRET,
            "verify_token": "verify-me"
        })))
        .await;
    assert_eq!(s, 200, "{v}");
    (app, acc.admin)
}

async fn stream_len(app: &TestApp) -> usize {
    let client = redis::Client::open(support::redis_url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    redis::cmd("XLEN")
        .arg(format!("{{{}:webhooks}}:stream", app.prefix))
        .query_async(&mut c)
        .await
        .expect("xlen")
}

fn status_body(extra: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}},"statuses":[{{"id":"wamid.HBgL","status":"delivered","timestamp":"1749416383","recipient_id":"16505551234","biz_opaque_callback_data":"caf\u00e9 https:\/\/x{extra}"}}]}}}}]}}]}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn settings_are_write_only_sealed_and_validated() {
    let (app, admin) = configured().await;
    let (_, v) = app.get("/admin/v1/whatsapp", &admin).await;
    assert_eq!(v["phone_numbers"][0]["phone_number_id"], "106540352242922");
    assert_eq!(v["phone_numbers"][0]["messages_per_second"], 40);
    assert_eq!(v["app_secret_set"], true);
    assert!(!v.to_string().contains("EAAG") && !v.to_string().contains(SECRET));
    let pool = app.pool().await;
    let dump: String = sqlx::query_scalar("SELECT (SELECT string_agg(encode(access_token_enc, 'escape'), ',') FROM phone_numbers) || (SELECT encode(app_secret_enc, 'escape') FROM whatsapp_settings)")
        .fetch_one(&pool).await.expect("dump");
    assert!(
        !dump.contains("EAAG-secret-token") && !dump.contains(SECRET),
        "secrets are sealed at rest"
    );
    // Keeping the token by omitting it; default rate.
    let (s, v) = app.send("PUT", "/admin/v1/whatsapp", &admin, Some(json!({"phone_numbers": [{"phone_number_id": "106540352242922", "display_phone_number": "15550783881"}]}))).await;
    assert_eq!(s, 200, "{v}");
    for bad in [
        json!({"phone_numbers": [{"phone_number_id": "abc", "display_phone_number": "1", "access_token": "t"}]}),
        json!({"phone_numbers": [{"phone_number_id": "2", "display_phone_number": "1"}]}),
        json!({"phone_numbers": [{"phone_number_id": "3", "display_phone_number": "1", "access_token": "t", "messages_per_second": 0}]}),
        json!({"app_secret": ""}),
        json!({"colour": "red"}),
    ] {
        let (s, v) = app
            .send("PUT", "/admin/v1/whatsapp", &admin, Some(bad.clone()))
            .await;
        assert_error(s, &v, 422, "validation_failed");
    }
    let other = app.account("Other").await;
    let (s, v) = app.send("PUT", "/admin/v1/whatsapp", &other.admin, Some(json!({"phone_numbers": [{"phone_number_id": "106540352242922", "display_phone_number": "x", "access_token": "t"}]}))).await;
    assert_error(s, &v, 409, "conflict");
    let (_, v) = app.get("/admin/v1/whatsapp", &admin).await;
    assert_eq!(
        v["phone_numbers"].as_array().map(Vec::len),
        Some(1),
        "the failed requests changed nothing"
    );
}

#[tokio::test]
async fn verification_answers_the_challenge_only_for_our_token() {
    let (app, _) = configured().await;
    let r = app.client.get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444")).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("text"), "1158201444");
    for q in [
        "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1",
        "hub.mode=subscribe",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/webhooks/whatsapp?{q}")))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 403, "{q}");
    }
}

#[tokio::test]
async fn signed_bodies_are_queued_raw_and_everything_else_is_refused() {
    let (app, _) = configured().await;
    let post = |body: Vec<u8>, sig: Option<String>| {
        let mut rb = app
            .client
            .post(app.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = sig {
            rb = rb.header("X-Hub-Signature-256", s);
        }
        rb.send()
    };
    // Meta's escaping (\/ and \u00e9) must verify over the raw bytes.
    let good = status_body("");
    let r = post(good.clone(), Some(sign(SECRET, &good)))
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(stream_len(&app).await, 1);

    let cases: Vec<(Vec<u8>, Option<String>, u16, &str)> = vec![
        (good.clone(), None, 401, "invalid_signature"),
        (
            good.clone(),
            Some("sha256=zz".into()),
            401,
            "invalid_signature",
        ),
        (
            good.clone(),
            Some(sign("wrong-secret", &good)),
            401,
            "invalid_signature",
        ),
        (
            status_body("x"),
            Some(sign(SECRET, &good)),
            401,
            "invalid_signature",
        ),
        (
            b"{not json".to_vec(),
            Some(sign(SECRET, b"{not json")),
            422,
            "validation_failed",
        ),
        (
            b"{\"entry\": []}".to_vec(),
            Some(sign(SECRET, b"{\"entry\": []}")),
            422,
            "validation_failed",
        ),
    ];
    for (body, sig, status, code) in cases {
        let r = post(body, sig).await.expect("post");
        let s = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        assert_error(s, &v, status, code);
    }
    let unknown = String::from_utf8(good.clone())
        .expect("utf8")
        .replace("106540352242922", "999");
    let r = post(
        unknown.clone().into_bytes(),
        Some(sign(SECRET, unknown.as_bytes())),
    )
    .await
    .expect("post");
    assert_eq!(r.status(), 404);
    // A large body (900 KB, under the webhook's 1 MiB limit): unsigned is refused; signed
    // is taken.
    let filler = "a".repeat(900 * 1024);
    let big = status_body(&filler);
    let r = post(big.clone(), Some(sign("wrong", &big)))
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let r = post(big.clone(), Some(sign(SECRET, &big)))
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    // Over the body limit.
    let huge = status_body(&"a".repeat(9 * 1024 * 1024));
    let r = post(huge.clone(), Some(sign(SECRET, &huge)))
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    assert_eq!(
        stream_len(&app).await,
        2,
        "only the two correctly signed bodies were stored"
    );
}
