//! Input no route may pass on to Postgres: a NUL character (`\u0000` in JSON, `%00` in a
//! query string) is refused with 422 naming the field, on every kind of route, and nothing is
//! written.

mod support;

use serde_json::{json, Value};
use support::*;

/// Asserts a 422 naming `field` as holding a NUL.
fn assert_nul(status: u16, body: &Value, field: &str) {
    let details = validation_details(status, body);
    assert!(
        details
            .iter()
            .any(|d| d["field"] == field && d["message"] == "must not contain NUL characters"),
        "{field}: {body}"
    );
}

#[tokio::test]
async fn a_nul_character_is_refused_with_its_field_on_every_kind_of_route() {
    let app = TestApp::spawn().await;
    let (s, v) = app
        .post("/admin/v1/accounts", ROOT, json!({"name": "Acme\u{0}"}))
        .await;
    assert_nul(s, &v, "name");
    let sender = app.sender(templates::text(), json!({})).await;
    let admin = sender.account.admin.as_str();
    let key = sender.key.as_str();
    let bodies: Vec<(&str, &str, &str, Value, &str)> = vec![
        (
            "POST",
            "/admin/v1/api-keys",
            admin,
            json!({"name": "k\u{0}", "scope_group": "read_only"}),
            "name",
        ),
        (
            "PUT",
            "/admin/v1/whatsapp",
            admin,
            json!({"verify_token": "v\u{0}"}),
            "verify_token",
        ),
        (
            "POST",
            "/api/v1/contacts",
            key,
            json!({"phone": "+14155550100", "attributes": {"city": "Lis\u{0}bon"}}),
            "attributes.city",
        ),
        (
            "POST",
            "/api/v1/contacts",
            key,
            json!({"phone": "+14155550100", "attributes": {"c\u{0}": 1}}),
            "attributes.c\\u0000",
        ),
        (
            "POST",
            "/api/v1/templates",
            key,
            json!({"name": "t", "language": "en", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi\u{0}"}]}),
            "components[0].text",
        ),
        (
            "POST",
            "/api/v1/broadcasts",
            key,
            json!({"name": "b\u{0}", "template_id": sender.template_id}),
            "name",
        ),
    ];
    for (method, path, bearer, body, field) in bodies {
        let (s, v) = app.send(method, path, bearer, Some(body)).await;
        assert_nul(s, &v, field);
    }
    let send = format!("/api/v1/broadcasts/{}/send", sender.broadcast_id);
    let (s, v) = app
        .post(
            &send,
            key,
            json!({"recipients": [{"to": "+14155550100", "ref": "r\u{0}"}]}),
        )
        .await;
    assert_nul(s, &v, "recipients[0].ref");
    for (path, field) in [
        ("/api/v1/contacts?q=a%00", "q"),
        ("/api/v1/leads?status=%00", "status"),
        (
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=%00&hub.challenge=1",
            "hub.verify_token",
        ),
    ] {
        let (s, v) = app.get(path, key).await;
        assert_nul(s, &v, field);
    }
    // Nothing of the refused requests was written.
    let (_, contacts) = app.get("/api/v1/contacts", key).await;
    assert_eq!(
        contacts["items"].as_array().map(Vec::len),
        Some(0),
        "{contacts}"
    );
    let (_, broadcasts) = app.get("/api/v1/broadcasts", key).await;
    assert_eq!(
        broadcasts["items"].as_array().map(Vec::len),
        Some(1),
        "{broadcasts}"
    );
}
