//! The API keys admin API: every row of the seed's tables and actions, bad input, isolation.

mod support;

use serde_json::{json, Value};
use support::{acme, assert_error, status_json, strs, TestApp, ROOT};

#[tokio::test]
async fn create_with_a_scope_group_shows_the_key_once_and_masks_it_after() {
    let (app, acc) = acme().await;
    let spec = json!({"name": "Website Contact Form", "scope_group": "broadcast_manager"});
    let k = app.create_key(&acc.admin, spec).await;
    let key = k["key"].as_str().expect("key");
    assert!(
        key.starts_with("sk_live_") && key.len() >= 8 + 32 + 6,
        "{key}"
    );
    assert_eq!(k["scope_group"], "broadcast_manager");
    assert_eq!(k["scope_group_name"], "Broadcast Manager");
    assert_eq!(
        k["scopes"],
        json!(["broadcast:send", "contacts:read", "template:read"])
    );
    assert_eq!(k["rate_limit_per_hour"], 1000, "default limit");
    assert_eq!(k["expires_at"], Value::Null);
    assert_eq!(k["last_used_at"], Value::Null);
    assert_eq!(k["status"], "active");
    assert_eq!(k["active"], true);
    assert_eq!(k["allowed_ips"], json!([]));
    let masked = k["masked_key"].as_str().expect("masked");
    assert_eq!(
        masked,
        format!("{}...{}", &key[..14], &key[key.len() - 4..])
    );

    // Afterwards only the masked form is ever shown.
    let id = k["id"].as_str().expect("id");
    let route = format!("/admin/v1/api-keys/{id}");
    let (s, got) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200);
    assert!(got.get("key").is_none());
    assert_eq!(got["masked_key"], masked);
    let (_, list) = app.get("/admin/v1/api-keys", &acc.admin).await;
    assert!(!list.to_string().contains(key));
    // And it is not stored anywhere in the database.
    let pool = app.pool().await;
    let dump: String = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert!(!dump.contains(&key[8..]), "the key must not be stored");
}

#[tokio::test]
async fn create_with_individual_scopes_and_advanced_settings() {
    let (app, acc) = acme().await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let spec = json!({ "name": "CRM Integration", "scopes": ["leads:read", "contacts:create", "contacts:read", "leads:read"], "allowed_ips": ["203.0.113.7", "10.1.0.0/16", "2001:db8::/32"], "rate_limit_per_hour": 250, "expires_at": expires, });
    let k = app.create_key(&acc.admin, spec).await;
    assert_eq!(k["scope_group"], Value::Null);
    assert_eq!(
        k["scopes"],
        json!(["contacts:create", "contacts:read", "leads:read"]),
        "sorted, de-duplicated"
    );
    assert_eq!(
        k["allowed_ips"],
        json!(["10.1.0.0/16", "2001:db8::/32", "203.0.113.7/32"])
    );
    assert_eq!(k["rate_limit_per_hour"], 250);
    assert!(k["expires_at"].as_str().is_some());

    // Empty rate limit = no limit.
    let k2 = app.create_key(&acc.admin, json!({"name": "n8n Automation", "scopes": ["chatbot_flows:webhook"], "rate_limit_per_hour": null})).await;
    assert_eq!(k2["rate_limit_per_hour"], Value::Null);

    // Test-mode keys.
    let spec = json!({"name": "sandbox", "scope_group": "read_only", "mode": "test"});
    let k3 = app.create_key(&acc.admin, spec).await;
    assert!(k3["key"].as_str().expect("key").starts_with("sk_test_"));
    assert_eq!(k3["mode"], "test");
}

#[tokio::test]
async fn every_scope_group_of_the_seed_is_offered_and_creates_its_scopes() {
    let (app, acc) = acme().await;
    let (s, cat) = app.get("/admin/v1/scopes", &acc.admin).await;
    assert_eq!(s, 200);
    let groups = cat["groups"].as_array().expect("groups");
    // (group, name, its scopes separated by spaces)
    let want = [
        ("broadcast_manager", "Broadcast Manager", "broadcast:send contacts:read template:read"),
        ("contact_manager", "Contact Manager", "contacts:all leads:read"),
        ("lead_manager", "Lead Manager", "contacts:read leads:all"),
        ("message_sender", "Message Sender", "broadcast:send template:read"),
        ("read_only", "Read Only", "broadcast:read contacts:read contacts:read_all leads:read leads:read_all template:read"),
        ("webhook_automation", "Webhook Automation", "chatbot_flows:webhook contacts:read"),
    ];
    assert_eq!(groups.len(), 7);
    for (id, name, scopes) in want {
        let scopes: Vec<&str> = scopes.split(' ').collect();
        let g = groups.iter().find(|g| g["id"] == id).expect(id);
        assert_eq!(g["name"], name);
        assert_eq!(g["scopes"], json!(scopes));
        assert!(g["best_for"].as_str().is_some_and(|s| !s.is_empty()));
        let spec = json!({"name": id, "scope_group": id});
        let k = app.create_key(&acc.admin, spec).await;
        assert_eq!(k["scopes"], json!(scopes));
    }
    let full = groups
        .iter()
        .find(|g| g["id"] == "full_access")
        .expect("full");
    assert_eq!(full["scopes"].as_array().map(Vec::len), Some(25));
    let resources: Vec<(&str, usize)> = cat["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or(""),
                r["actions"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        resources,
        vec![
            ("Broadcast", 5),
            ("Contacts", 6),
            ("Leads", 7),
            ("Template", 5),
            ("Chatbot Flows", 1),
            ("Webhooks", 1)
        ]
    );
}

#[tokio::test]
async fn bad_input_gets_field_errors_and_changes_nothing() {
    let (app, acc) = acme().await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "", "scope_group": "read_only"}), "name"),
        (json!({"name": "   ", "scope_group": "read_only"}), "name"),
        (
            json!({"name": "x".repeat(101), "scope_group": "read_only"}),
            "name",
        ),
        (json!({"name": "k"}), "scopes"),
        (json!({"name": "k", "scopes": []}), "scopes"),
        (
            json!({"name": "k", "scopes": ["contacts:fly"]}),
            "scopes[0]",
        ),
        (
            json!({"name": "k", "scope_group": "super_admin"}),
            "scope_group",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "scopes": ["leads:all"]}),
            "scopes",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "allowed_ips": ["1.2.3"]}),
            "allowed_ips[0]",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips[0]",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": 0}),
            "rate_limit_per_hour",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": -5}),
            "rate_limit_per_hour",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": "many"}),
            "rate_limit_per_hour",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "expires_at": "tomorrow"}),
            "expires_at",
        ),
        (
            json!({"name": "k", "scope_group": "read_only", "colour": "red"}),
            "body",
        ),
        (json!({"name": 5, "scope_group": "read_only"}), "name"),
        (
            json!({"name": "k", "scope_group": "read_only", "mode": "prod"}),
            "mode",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = app
            .post("/admin/v1/api-keys", &acc.admin, body.clone())
            .await;
        assert_error(s, &v, 422, "validation_failed");
        let fields: Vec<&str> = v["error"]["details"]
            .as_array()
            .expect("details")
            .iter()
            .filter_map(|d| d["field"].as_str())
            .collect();
        assert!(
            fields
                .iter()
                .any(|f| *f == field || (field == "body" && !f.is_empty())),
            "{body} -> {v}"
        );
    }
    // Malformed JSON and oversized bodies.
    let keys = "/admin/v1/api-keys";
    let (s, v) = app
        .send_raw_json("POST", keys, &acc.admin, "{\"name\": ")
        .await;
    assert_error(s, &v, 422, "validation_failed");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let r = app
        .request_with("POST", keys, &acc.admin, &[], Some(big.into_bytes()))
        .await;
    let (s, v) = status_json(r).await;
    assert_error(s, &v, 413, "payload_too_large");

    let (_, list) = app.get("/admin/v1/api-keys", &acc.admin).await;
    assert_eq!(list["total"], 0, "nothing was created");

    // Unknown and malformed ids.
    let (s, v) = app
        .get(
            "/admin/v1/api-keys/0190a3f0-0000-7000-8000-000000000000",
            &acc.admin,
        )
        .await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app
        .patch(
            "/admin/v1/api-keys/not-a-uuid",
            &acc.admin,
            json!({"name": "x"}),
        )
        .await;
    assert_error(s, &v, 404, "not_found");

    // Bad list queries.
    for q in [
        "per_page=7",
        "page=0",
        "sort=colour",
        "order=up",
        "page=abc",
    ] {
        let route = format!("/admin/v1/api-keys?{q}");
        let (s, v) = app.get(&route, &acc.admin).await;
        assert_error(s, &v, 422, "validation_failed");
    }
}

#[tokio::test]
async fn list_paginates_by_10_25_50_and_sorts_by_name_and_status() {
    let (app, acc) = acme().await;
    let mut ids = Vec::new();
    for i in 0..27 {
        let spec = json!({"name": format!("key {i:02}"), "scope_group": "read_only"});
        let k = app.create_key(&acc.admin, spec).await;
        ids.push(k["id"].as_str().expect("id").to_string());
    }
    // Two inactive keys.
    for id in &ids[..2] {
        let route = format!("/admin/v1/api-keys/{id}");
        let (s, _) = app
            .patch(&route, &acc.admin, json!({"active": false}))
            .await;
        assert_eq!(s, 200);
    }
    for (per_page, pages) in [(10, 3), (25, 2), (50, 1)] {
        let mut seen = 0;
        for page in 1..=pages {
            let route = format!("/admin/v1/api-keys?page={page}&per_page={per_page}");
            let (s, v) = app.get(&route, &acc.admin).await;
            assert_eq!(s, 200);
            assert_eq!(v["total"], 27);
            assert_eq!(v["per_page"], per_page);
            assert_eq!(v["page"], page);
            seen += v["items"].as_array().map_or(0, Vec::len);
        }
        assert_eq!(seen, 27);
    }
    let sorted_by = |field: &str| format!("/admin/v1/api-keys?per_page=50&sort={field}&order=desc");
    let (_, v) = app.get(&sorted_by("name"), &acc.admin).await;
    let names = strs(&v["items"], "name");
    let mut sorted = names.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(names, sorted);
    let (_, v) = app.get(&sorted_by("status"), &acc.admin).await;
    let statuses = strs(&v["items"], "status");
    assert_eq!(&statuses[..2], &["inactive", "inactive"]);
    assert!(statuses[2..].iter().all(|s| *s == "active"));
}

#[tokio::test]
async fn edit_toggle_regenerate_and_delete() {
    let (app, acc) = acme().await;
    let spec = json!({"name": "CRM", "scope_group": "contact_manager"});
    let k = app.create_key(&acc.admin, spec).await;
    let key = k["key"].as_str().expect("key").to_string();
    let id = k["id"].as_str().expect("id");
    let path = format!("/admin/v1/api-keys/{id}");

    // Edit: name, scopes (leaving the group), advanced settings. The key value is unchanged.
    let req = json!({"name": "CRM sync", "scopes": ["contacts:read"], "allowed_ips": ["127.0.0.1"], "rate_limit_per_hour": 50});
    let (s, e) = app.patch(&path, &acc.admin, req).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["name"], "CRM sync");
    assert_eq!(e["scope_group"], Value::Null);
    assert_eq!(e["scopes"], json!(["contacts:read"]));
    assert_eq!(e["rate_limit_per_hour"], 50);
    assert_eq!(e["masked_key"], k["masked_key"]);
    let (s, me) = app.get("/api/v1/me", &key).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(
        me["scopes"],
        json!(["contacts:read"]),
        "the existing key works with the new permissions"
    );
    // Back to a group; then remove the limit (null).
    let req = json!({"scope_group": "lead_manager", "rate_limit_per_hour": null});
    let (_, e) = app.patch(&path, &acc.admin, req).await;
    assert_eq!(e["scopes"], json!(["contacts:read", "leads:all"]));
    assert_eq!(e["rate_limit_per_hour"], Value::Null);
    // Bad edits change nothing.
    let req = json!({"name": "", "scopes": []});
    let (s, v) = app.patch(&path, &acc.admin, req).await;
    assert_error(s, &v, 422, "validation_failed");
    let (_, same) = app.get(&path, &acc.admin).await;
    assert_eq!(same["name"], "CRM sync");

    // Toggle.
    let (_, t) = app.patch(&path, &acc.admin, json!({"active": false})).await;
    assert_eq!(t["status"], "inactive");
    let (s, v) = app.get("/api/v1/me", &key).await;
    assert_error(s, &v, 401, "key_inactive");
    let (_, t) = app.patch(&path, &acc.admin, json!({"active": true})).await;
    assert_eq!(t["status"], "active");
    assert_eq!(app.get("/api/v1/me", &key).await.0, 200);

    // Regenerate: new value shown once, old value refused at once.
    let (s, r) = app
        .send("POST", &format!("{path}/regenerate"), &acc.admin, None)
        .await;
    assert_eq!(s, 200);
    let new_key = r["key"].as_str().expect("new key");
    assert_ne!(new_key, key);
    assert_ne!(r["masked_key"], k["masked_key"]);
    let (s, v) = app.get("/api/v1/me", &key).await;
    assert_error(s, &v, 401, "invalid_api_key");
    assert_eq!(app.get("/api/v1/me", new_key).await.0, 200);

    // Usage of a new key: all zero.
    let (s, u) = app.get(&format!("{path}/usage"), &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(
        u,
        json!({"total_messages": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0, "last_message_at": null, "delivery_rate": 0.0, "read_rate": 0.0})
    );

    // Delete.
    let (s, _) = app.delete(&path, &acc.admin).await;
    assert_eq!(s, 204);
    let (s, v) = app.get("/api/v1/me", new_key).await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app.get(&path, &acc.admin).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app.delete(&path, &acc.admin).await;
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn last_used_is_never_then_recorded() {
    let (app, acc) = acme().await;
    let spec = json!({"name": "k", "scope_group": "read_only"});
    let k = app.create_key(&acc.admin, spec).await;
    assert_eq!(k["last_used_at"], Value::Null);
    let id = k["id"].as_str().expect("id");
    assert_eq!(
        app.get("/api/v1/me", k["key"].as_str().expect("key"))
            .await
            .0,
        200
    );
    let mut last = Value::Null;
    for _ in 0..50 {
        let route = format!("/admin/v1/api-keys/{id}");
        let (_, v) = app.get(&route, &acc.admin).await;
        last = v["last_used_at"].clone();
        if !last.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(last.is_string(), "last_used_at recorded");
}

#[tokio::test]
async fn accounts_need_the_root_token_and_see_only_their_own_keys() {
    let app = TestApp::spawn().await;
    let (s, v) = app
        .post("/admin/v1/accounts", "", json!({"name": "x"}))
        .await;
    assert_error(s, &v, 401, "missing_api_key");
    let (s, v) = app
        .post(
            "/admin/v1/accounts",
            "wrong-root-token",
            json!({"name": "x"}),
        )
        .await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app
        .post("/admin/v1/accounts", ROOT, json!({"name": ""}))
        .await;
    assert_error(s, &v, 422, "validation_failed");

    let a = app.account("A").await;
    let b = app.account("B").await;
    assert_ne!(a.id, b.id);
    let spec = json!({"name": "a-key", "scope_group": "full_access"});
    let ka = app.create_key(&a.admin, spec).await;
    let id = ka["id"].as_str().expect("id");
    // B sees nothing of A's, and cannot change it.
    let (_, list) = app.get("/admin/v1/api-keys", &b.admin).await;
    assert_eq!(list["total"], 0);
    for (m, p) in [
        ("GET", format!("/admin/v1/api-keys/{id}")),
        ("PATCH", format!("/admin/v1/api-keys/{id}")),
        ("DELETE", format!("/admin/v1/api-keys/{id}")),
        ("POST", format!("/admin/v1/api-keys/{id}/regenerate")),
        ("GET", format!("/admin/v1/api-keys/{id}/usage")),
    ] {
        let body = (m == "PATCH").then(|| json!({"active": false}));
        let (s, v) = app.send(m, &p, &b.admin, body).await;
        assert_error(s, &v, 404, "not_found");
    }
    let (_, still) = app.get(&format!("/admin/v1/api-keys/{id}"), &a.admin).await;
    assert_eq!(still["active"], true);
    // A key is not an admin credential, and the root token is not an account's.
    let (s, v) = app
        .get("/admin/v1/api-keys", ka["key"].as_str().expect("key"))
        .await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app.get("/admin/v1/api-keys", ROOT).await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app.get("/admin/v1/api-keys", "").await;
    assert_error(s, &v, 401, "missing_api_key");
}

#[tokio::test]
async fn docs_page_data_follows_the_key_scopes() {
    let (app, acc) = acme().await;
    let spec =
        json!({"name": "sender", "scope_group": "message_sender", "rate_limit_per_hour": 250});
    let sender = app.create_key(&acc.admin, spec).await;
    let route = format!(
        "/admin/v1/api-keys/{}/docs",
        sender["id"].as_str().expect("id")
    );
    let (s, d) = app.get(&route, &acc.admin).await;
    assert_eq!(s, 200, "{d}");
    let ids: Vec<&str> = d["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["broadcast", "template"]);
    let paths = endpoint_lines(&d["sections"][0]);
    assert!(
        paths.contains(&"POST /api/v1/broadcasts/{id}/send".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&"POST /api/v1/broadcasts".to_string()),
        "no broadcast:create: {paths:?}"
    );
    assert_eq!(d["rate_limit"]["requests_per_hour"], 250);
    assert!(d["rate_limit"]["headers"]
        .as_array()
        .is_some_and(|h| h.iter().any(|x| x == "X-RateLimit-Remaining")));
    assert!(d["base_url"]
        .as_str()
        .is_some_and(|b| b.ends_with("/api/v1")));
    assert_eq!(d["error_codes"].as_array().map(Vec::len), Some(8));
    assert!(
        !d.to_string().contains(sender["key"].as_str().expect("key")),
        "the key is never shown again"
    );

    let (_, d) = docs_of_group(&app, &acc.admin, "read_only").await;
    assert_eq!(
        section_ids(&d),
        vec!["broadcast", "contacts", "leads", "template"]
    );
    assert!(
        !d.to_string().contains("/send\""),
        "a read-only key is not shown the send endpoint"
    );
    let (flows_id, d) = docs_of_group(&app, &acc.admin, "webhook_automation").await;
    assert_eq!(section_ids(&d), vec!["contacts", "chatbot_flows"]);
    let other = app.account("Other").await;
    let route = format!("/admin/v1/api-keys/{flows_id}/docs");
    let (s, _) = app.get(&route, &other.admin).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn docs_page_data_shows_a_read_only_key_the_reads_but_not_cancel() {
    let (app, acc) = acme().await;
    let spec = json!({"name": "reader", "scopes": ["broadcast:read"]});
    let k = app.create_key(&acc.admin, spec).await;
    let route = format!("/admin/v1/api-keys/{}/docs", k["id"].as_str().expect("id"));
    let (_, d) = app.get(&route, &acc.admin).await;
    let paths = endpoint_lines(&d["sections"][0]);
    assert!(
        paths.contains(&"GET /api/v1/dispatches/{id}".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("/cancel") || p.contains("/send")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn docs_page_of_a_full_access_key_lists_every_scoped_operation_of_the_document() {
    let (app, acc) = acme().await;
    let (_, d) = docs_of_group(&app, &acc.admin, "full_access").await;
    let listed: std::collections::BTreeSet<String> = d["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .flat_map(endpoint_lines)
        .collect();
    let (s, doc) = app.get("/openapi.json", "").await;
    assert_eq!(s, 200);
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if op.get("x-required-scope").is_some() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(
        listed.contains("POST /api/v1/dispatches/{id}/resume"),
        "{listed:?}"
    );
    assert_eq!(listed, documented);
}

#[tokio::test]
async fn concurrent_edits_of_different_fields_both_land() {
    let (app, acc) = acme().await;
    let spec = json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": 10});
    let k = app.create_key(&acc.admin, spec).await;
    let path = format!("/admin/v1/api-keys/{}", k["id"].as_str().expect("id"));
    for i in 0..20 {
        let name = format!("name {i}");
        let (a, b) = tokio::join!(
            app.patch(&path, &acc.admin, json!({"name": name})),
            app.patch(&path, &acc.admin, json!({"rate_limit_per_hour": 100 + i})),
        );
        assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
        let (s, v) = app.get(&path, &acc.admin).await;
        assert_eq!(s, 200);
        assert_eq!(v["name"], name, "round {i}: {v}");
        assert_eq!(v["rate_limit_per_hour"], 100 + i, "round {i}: {v}");
    }
}

/// A new key of `group` and its docs page data.
async fn docs_of_group(app: &TestApp, admin: &str, group: &str) -> (String, Value) {
    let spec = json!({"name": group, "scope_group": group});
    let (_, id) = app.key(admin, spec).await;
    let path = format!("/admin/v1/api-keys/{id}/docs");
    let (s, d) = app.get(&path, admin).await;
    assert_eq!(s, 200, "{d}");
    (id, d)
}

/// "METHOD path" of each endpoint a docs page section lists.
fn endpoint_lines(section: &Value) -> Vec<String> {
    section["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["method"].as_str().unwrap_or(""),
                e["path"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The ids of a docs page's sections, in order.
fn section_ids(d: &Value) -> Vec<&str> {
    d["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect()
}
