//! Chatbot flows: the admin record (`/admin/v1/chatbot-flows`) and the webhook trigger
//! `POST /api/v1/chatbot-flows/{id}/webhook` (scope, validation, tenant isolation, contact
//! find-or-create, the first message recorded and queued, nothing half-written).

mod support;

use serde_json::{json, Value};
use sqlx::Row;
use support::{acme, assert_error, id_of, templates, validation_details, TestApp};

fn assert_field(status: u16, body: &Value, prefix: &str) {
    let on_field = |d: &Value| d["field"].as_str().is_some_and(|f| f.starts_with(prefix));
    let details = validation_details(status, body);
    assert!(
        details.iter().any(on_field),
        "expected an error on {prefix}: {body}"
    );
}

/// A text template ("Hi {{1}}, your order {{2}} has shipped.") of the account.
async fn template(app: &TestApp, admin: &str) -> String {
    id_of(&app.create_template(admin, templates::text()).await)
}

/// The account's flow "Welcome" of [`template`] with body variables; returns it and the
/// path of its webhook.
async fn welcome(app: &TestApp, admin: &str) -> (Value, String) {
    let t = template(app, admin).await;
    let variables = json!({"body": ["friend", "0000"]});
    let f = flow(
        app,
        admin,
        json!({"name": "Welcome", "template_id": t, "variables": variables}),
    )
    .await;
    let path = format!("/api/v1/chatbot-flows/{}/webhook", id_of(&f));
    (f, path)
}

async fn flow(app: &TestApp, admin: &str, body: Value) -> Value {
    let (s, v) = app.post("/admin/v1/chatbot-flows", admin, body).await;
    assert_eq!(s, 201, "{v}");
    v
}

async fn queue_depth(app: &TestApp) -> u64 {
    app.send_queue().await.stats().await.expect("stats").depth
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[tokio::test]
async fn admin_flow_record() {
    let (app, acc) = acme().await;
    let t = template(&app, &acc.admin).await;
    let f = flow(
        &app,
        &acc.admin,
        json!({"name": " Welcome ", "template_id": t, "variables": {"body": ["friend", "0000"]}}),
    )
    .await;
    assert_eq!(f["name"], "Welcome");
    assert_eq!(f["template_id"], t);
    assert_eq!(f["variables"], json!({"body": ["friend", "0000"]}));
    assert_eq!(f["active"], true);
    let id = id_of(&f);
    let bare = flow(&app, &acc.admin, json!({"name": "Draft"})).await;
    assert_eq!(bare["template_id"], Value::Null);
    assert_eq!(bare["variables"], json!({}));

    let route = format!("/admin/v1/chatbot-flows/{id}");
    let (s, v) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(v, f);
    let (s, v) = app.get("/admin/v1/chatbot-flows?limit=1", &acc.admin).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"][0]["name"], "Draft");
    let cursor = v["next_cursor"].as_str().expect("cursor").to_string();
    let route = format!("/admin/v1/chatbot-flows?limit=1&cursor={cursor}");
    let (s, v) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(v["items"][0]["name"], "Welcome");
    assert_eq!(v["next_cursor"], Value::Null);

    let route = format!("/admin/v1/chatbot-flows/{id}");
    let req = json!({"active": false, "name": "W2"});
    let (s, v) = app.patch(&route, &acc.admin, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["active"].clone(), v["name"].clone()),
        (json!(false), json!("W2"))
    );
    assert_eq!(v["template_id"], t);

    // Bad input.
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "f", "steps": []}), "steps"),
        (json!({"name": "f", "template_id": "nope"}), "template_id"),
        (
            json!({"name": "f", "template_id": "00000000-0000-7000-8000-000000000000"}),
            "template_id",
        ),
        (
            json!({"name": "f", "variables": {"colour": 1}}),
            "variables",
        ),
        (
            json!({"name": "f", "template_id": t, "variables": {"body": ["a", "b", "c"]}}),
            "variables",
        ),
        (json!({"name": "f", "active": "yes"}), "active"),
    ] {
        let (s, v) = app
            .post("/admin/v1/chatbot-flows", &acc.admin, body.clone())
            .await;
        assert_field(s, &v, field);
    }
    let req = json!({"variables": {"body": ["a", "b", "c"]}});
    let (s, v) = app.patch(&route, &acc.admin, req).await;
    assert_field(s, &v, "variables");
    let req = json!({"template_id": "00000000-0000-7000-8000-000000000000"});
    let (s, v) = app.patch(&route, &acc.admin, req).await;
    assert_field(s, &v, "template_id");

    // Admin credentials only; other accounts see nothing.
    let k = app.scoped_key(&acc.admin, &["chatbot_flows:webhook"]).await;
    let (s, v) = app.get("/admin/v1/chatbot-flows", &k).await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app.get("/admin/v1/chatbot-flows", "").await;
    assert_error(s, &v, 401, "missing_api_key");
    let other = app.account("Other").await;
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "x"}))),
        ("DELETE", None),
    ] {
        let (s, v) = app
            .send(
                method,
                &format!("/admin/v1/chatbot-flows/{id}"),
                &other.admin,
                body,
            )
            .await;
        assert_error(s, &v, 404, "not_found");
    }
    let (_, v) = app.get("/admin/v1/chatbot-flows", &other.admin).await;
    assert_eq!(v["items"], json!([]));
    // Another account's template cannot be referenced.
    let req = json!({"name": "f", "template_id": t});
    let (s, v) = app.post("/admin/v1/chatbot-flows", &other.admin, req).await;
    assert_field(s, &v, "template_id");

    assert_eq!(app.delete(&route, &acc.admin).await.0, 204);
    let (s, v) = app.get(&route, &acc.admin).await;
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn webhook_trigger_queues_the_first_message() {
    let (app, acc) = acme().await;
    let pool = app.pool().await;
    let (f, path) = welcome(&app, &acc.admin).await;
    let hook = app.scoped_key(&acc.admin, &["chatbot_flows:webhook"]).await;

    let req = json!({"to": "+1 (650) 555-1234", "variables": {"body": ["Ann", "4721"]}});
    let (s, v) = app.post(&path, &hook, req).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "queued");
    assert_eq!(v["to"], "+16505551234");
    assert_eq!(v["contact_created"], true);
    assert_eq!(v["flow_id"], f["id"]);
    let message_id = v["message_id"].as_str().expect("message id").to_string();
    let contact_id = v["contact_id"].as_str().expect("contact id").to_string();

    // The contact exists with the normalised phone.
    let route = format!("/api/v1/contacts/{contact_id}");
    let (s, c) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(c["phone"], "+16505551234");
    // The message row holds the expanded Graph API body with our id as callback data.
    let row = sqlx::query("SELECT to_phone, status, payload::jsonb AS payload, key_id, dispatch_id::text AS d FROM messages WHERE id = $1::uuid")
        .bind(&message_id)
        .fetch_one(&pool)
        .await
        .expect("message row");
    assert_eq!(row.get::<String, _>("to_phone"), "+16505551234");
    assert_eq!(row.get::<String, _>("status"), "queued");
    assert_eq!(row.get::<Option<uuid::Uuid>, _>("key_id"), None);
    assert_eq!(
        row.get::<String, _>("d"),
        v["dispatch_id"].as_str().expect("dispatch")
    );
    let payload: Value = row.get("payload");
    assert_eq!(payload["to"], "16505551234");
    assert_eq!(payload["type"], "template");
    assert_eq!(payload["template"]["name"], "order_update");
    assert_eq!(
        payload["biz_opaque_callback_data"],
        message_id.replace('-', "")
    );
    let text = payload.to_string();
    assert!(text.contains("Ann") && text.contains("4721"), "{text}");
    // The dispatch of one is readable like a broadcast's.
    let route = format!(
        "/api/v1/dispatches/{}",
        v["dispatch_id"].as_str().expect("d")
    );
    let (s, d) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["total"], 1);

    // The same phone again reuses the contact; trigger defaults fill what is not given.
    let (s, v) = app.post(&path, &hook, json!({"to": "0016505551234"})).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["contact_created"], false);
    assert_eq!(v["contact_id"], contact_id.as_str());
    let payload: Value =
        sqlx::query_scalar("SELECT payload::jsonb FROM messages WHERE id = $1::uuid")
            .bind(v["message_id"].as_str().expect("id"))
            .fetch_one(&pool)
            .await
            .expect("row");
    assert!(payload.to_string().contains("friend"), "{payload}");
    assert_eq!(count(&pool, "SELECT count(*) FROM contacts").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM messages").await, 2);
    // One job per message on the send queue.
    assert_eq!(queue_depth(&app).await, 2);

    // Flow messages are not Broadcast API sends: the key's usage stays at zero.
    let (_, keys) = app.get("/admin/v1/api-keys", &acc.admin).await;
    let key_id = keys["items"][0]["id"].as_str().expect("key id");
    let route = format!("/admin/v1/api-keys/{key_id}/usage");
    let (s, u) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["total_messages"], 0);

    // webhook_automation keys trigger; the admin token too.
    let spec = json!({"name": "g", "scope_group": "webhook_automation"});
    let g = app.create_key(&acc.admin, spec).await;
    let req = json!({"to": "+442079460958"});
    let (s, v) = app.post(&path, g["key"].as_str().expect("key"), req).await;
    assert_eq!(s, 202, "{v}");
    let req = json!({"to": "+442079460959"});
    let (s, v) = app.post(&path, &acc.admin, req).await;
    assert_eq!(s, 202, "{v}");
}

#[tokio::test]
async fn webhook_trigger_refuses_what_it_cannot_send() {
    let (app, acc) = acme().await;
    let pool = app.pool().await;
    let t = template(&app, &acc.admin).await;
    let f = flow(
        &app,
        &acc.admin,
        json!({"name": "Welcome", "template_id": t}),
    )
    .await;
    let path = format!("/api/v1/chatbot-flows/{}/webhook", id_of(&f));
    let hook = app.scoped_key(&acc.admin, &["chatbot_flows:webhook"]).await;

    // Scope: nothing else grants the trigger.
    for scopes in [
        &["contacts:all", "leads:all"][..],
        &["broadcast:all", "template:all"][..],
    ] {
        let k = app.scoped_key(&acc.admin, scopes).await;
        let (s, v) = app.post(&path, &k, json!({"to": "+16505551234"})).await;
        assert_error(s, &v, 403, "insufficient_scope");
        assert_eq!(v["error"]["required_scope"], "chatbot_flows:webhook");
    }
    let (s, v) = app.post(&path, "", json!({"to": "+16505551234"})).await;
    assert_error(s, &v, 401, "missing_api_key");

    // Bad input.
    for (body, field) in [
        (json!({}), "to"),
        (json!({"to": null}), "to"),
        (json!({"to": 16505551234u64}), "to"),
        (json!({"to": "not a phone"}), "to"),
        (json!({"to": "+1234567"}), "to"),
        (json!({"to": "+16505551234", "contact": {}}), "contact"),
        (
            json!({"to": "+16505551234", "variables": {"colour": "red"}}),
            "variables",
        ),
        (json!({"to": "+16505551234", "variables": []}), "variables"),
        // Three body parameters for a two-parameter template: refused by expansion.
        (
            json!({"to": "+16505551234", "variables": {"body": ["a", "b", "c"]}}),
            "variables",
        ),
    ] {
        let (s, v) = app.post(&path, &hook, body.clone()).await;
        assert_field(s, &v, field);
    }
    // No default and no value for the template's parameters: refused, nothing written.
    let (s, v) = app.post(&path, &hook, json!({"to": "+16505551234"})).await;
    assert_field(s, &v, "variables");
    let json = [("content-type", "application/json")];
    let malformed = Some(b"{\"to\": ".to_vec());
    let r = app
        .request_with("POST", &path, &hook, &json, malformed)
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM contacts").await,
        0,
        "no contact left behind"
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM messages").await, 0);

    // Unknown, malformed or another account's flow id: 404.
    let other = app.account("Other").await;
    let of = flow(&app, &other.admin, json!({"name": "Theirs"})).await;
    for p in [
        format!("/api/v1/chatbot-flows/{}/webhook", id_of(&of)),
        "/api/v1/chatbot-flows/00000000-0000-7000-8000-000000000000/webhook".to_string(),
        "/api/v1/chatbot-flows/nope/webhook".to_string(),
    ] {
        let (s, v) = app.post(&p, &hook, json!({"to": "+16505551234"})).await;
        assert_error(s, &v, 404, "not_found");
    }

    // A flow without a template, an inactive flow, a deleted template: 409, nothing written.
    let bare = flow(&app, &acc.admin, json!({"name": "Draft"})).await;
    let route = format!("/api/v1/chatbot-flows/{}/webhook", id_of(&bare));
    let req = json!({"to": "+16505551234"});
    let (s, v) = app.post(&route, &hook, req).await;
    assert_error(s, &v, 409, "conflict");
    let off = flow(
        &app,
        &acc.admin,
        json!({"name": "Off", "template_id": t, "active": false}),
    )
    .await;
    let route = format!("/api/v1/chatbot-flows/{}/webhook", id_of(&off));
    let req = json!({"to": "+16505551234"});
    let (s, v) = app.post(&route, &hook, req).await;
    assert_error(s, &v, 409, "conflict");
    let route = format!("/api/v1/templates/{t}");
    let (s, _) = app.delete(&route, &acc.admin).await;
    assert_eq!(s, 204);
    let req = json!({"to": "+16505551234", "variables": {"body": ["a", "b"]}});
    let (s, v) = app.post(&path, &hook, req).await;
    assert_error(s, &v, 409, "conflict");
    assert_eq!(count(&pool, "SELECT count(*) FROM contacts").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM messages").await, 0);
    assert_eq!(queue_depth(&app).await, 0, "nothing queued");
}

/// A flow triggered with a `sk_test_` key records a test-mode dispatch (its message goes to
/// `TEST_GRAPH_API_BASE`, like every other test-key send); a live key's trigger does not.
#[tokio::test]
async fn a_test_key_trigger_records_a_test_mode_dispatch() {
    let (app, acc) = acme().await;
    let pool = app.pool().await;
    let (_, path) = welcome(&app, &acc.admin).await;
    for (mode, to) in [("test", "+16505551234"), ("live", "+16505551235")] {
        let spec = json!({"name": mode, "scopes": ["chatbot_flows:webhook"], "mode": mode});
        let k = app.create_key(&acc.admin, spec).await;
        let key = k["key"].as_str().expect("key");
        let (s, v) = app.post(&path, key, json!({"to": to})).await;
        assert_eq!(s, 202, "{v}");
        let test_mode: bool =
            sqlx::query_scalar("SELECT test_mode FROM dispatches WHERE id = $1::uuid")
                .bind(v["dispatch_id"].as_str().expect("dispatch id"))
                .fetch_one(&pool)
                .await
                .expect("dispatch row");
        assert_eq!(test_mode, mode == "test", "{mode} key");
    }
}

#[tokio::test]
async fn a_trigger_to_a_suppressed_phone_is_refused_and_records_nothing() {
    let (app, acc) = acme().await;
    let pool = app.pool().await;
    let (_, path) = welcome(&app, &acc.admin).await;
    let hook = app.scoped_key(&acc.admin, &["chatbot_flows:webhook"]).await;
    for (phone, scope) in [("+16505551234", "all"), ("+16505551235", "marketing")] {
        sqlx::query(
            "INSERT INTO suppressions (account_id, phone, reason, scope, source) VALUES ($1, $2, 'opt_out', $3, 'test')",
        )
        .bind(acc.id.parse::<uuid::Uuid>().expect("account"))
        .bind(phone)
        .bind(scope)
        .execute(&pool)
        .await
        .expect("suppress");
    }
    let (s, v) = app.post(&path, &hook, json!({"to": "+16505551234"})).await;
    assert_error(s, &v, 422, "suppressed");
    assert_eq!(count(&pool, "SELECT count(*) FROM messages").await, 0);
    assert_eq!(count(&pool, "SELECT count(*) FROM contacts").await, 0);
    // A marketing-only suppression does not block the flow's UTILITY template.
    let (s, v) = app.post(&path, &hook, json!({"to": "+16505551235"})).await;
    assert_eq!(s, 202, "{v}");
}
