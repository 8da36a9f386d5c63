//! What one tenant's input can cost or reveal, black-box against the real api, Postgres and
//! Redis: echoes and idempotency records stay small, the webhook takes small bodies only,
//! scopes mean what they say (lead phones, allow-lists), and the smaller rules of the
//! hardening review (nosniff, currencies, one-line names, template changes, null names,
//! IPv4-mapped allow-list entries).

mod support;

use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn an_over_long_to_is_refused_early_and_echoed_short_and_so_is_what_is_stored() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let long = format!("+1{}", "5".repeat(100_000));
    let body = json!({"recipients": [
        {"to": long, "variables": {"body": ["Ann", "1"]}},
        {"to": "+14155550100", "variables": {"body": ["Ann", "2"]}}
    ]});
    let path = format!("/api/v1/broadcasts/{}/send", sender.broadcast_id);
    let headers = [
        ("content-type", "application/json"),
        ("idempotency-key", "long-to"),
    ];
    let bytes = serde_json::to_vec(&body).expect("body");
    let r = app
        .request_with("POST", &path, &sender.key, &headers, Some(bytes.clone()))
        .await;
    let (s, v) = status_json(r).await;
    assert_eq!(s, 202, "{v}");
    let rejected = &v["rejected"][0];
    assert_eq!(rejected["code"], "invalid_phone", "{v}");
    assert_eq!(rejected["message"], "to: at most 64 characters");
    let echoed = rejected["to"].as_str().expect("to");
    assert_eq!(echoed.chars().count(), 64, "{echoed}");
    assert!(echoed.ends_with('…'));
    // What the idempotency record keeps is the short answer, not the 100 KB `to`.
    let stored: i32 = sqlx::query_scalar("SELECT octet_length(summary) FROM idempotency_records")
        .fetch_one(&app.pool().await)
        .await
        .expect("record");
    assert!(stored < 2_000, "stored {stored} bytes");
    let r = app
        .request_with("POST", &path, &sender.key, &headers, Some(bytes))
        .await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_key_holding_its_idempotency_budget_gets_429_for_new_keys_only() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let path = format!("/api/v1/broadcasts/{}/send", sender.broadcast_id);
    let send = |key: &'static str| {
        let (app, path, bearer) = (&app, &path, sender.key.clone());
        async move {
            let body = json!({"recipients": recipients(1, 0)});
            let headers = [
                ("content-type", "application/json"),
                ("idempotency-key", key),
            ];
            let bytes = serde_json::to_vec(&body).expect("body");
            status_json(
                app.request_with("POST", path, &bearer, &headers, Some(bytes))
                    .await,
            )
            .await
        }
    };
    assert_eq!(send("first").await.0, 202);
    // The key's records filled to the bound (made directly: 10,000 sends would be slow).
    sqlx::query(
        "INSERT INTO idempotency_records (account_id, caller, key_digest, body_digest, dispatch_id, summary)
         SELECT account_id, caller, md5(i::text), body_digest, dispatch_id, summary
           FROM idempotency_records, generate_series(1, 10000) i",
    )
    .execute(&app.pool().await)
    .await
    .expect("fill");
    let (s, v) = send("second").await;
    assert_error(s, &v, 429, "rate_limited");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Idempotency-Key")),
        "{v}"
    );
    // A replay of a held key still answers, and a send without the header goes on.
    assert_eq!(send("first").await.0, 202);
    let (s, v) = app
        .post(&path, &sender.key, json!({"recipients": recipients(1, 5)}))
        .await;
    assert_eq!(s, 202, "{v}");
}

#[tokio::test]
async fn the_webhook_takes_bodies_up_to_one_mib() {
    let app = TestApp::spawn().await;
    let big = vec![b' '; 1024 * 1024 + 1];
    let headers = [
        ("content-type", "application/json"),
        ("x-hub-signature-256", "sha256=00"),
    ];
    let r = app
        .request_with("POST", "/webhooks/whatsapp", "", &headers, Some(big))
        .await;
    let (s, v) = status_json(r).await;
    assert_error(s, &v, 413, "payload_too_large");
}

#[tokio::test]
async fn a_lead_with_a_new_inline_phone_needs_contacts_create_and_phones_need_contacts_read() {
    let (app, acc) = acme().await;
    let leads_only = app
        .scoped_key(
            &acc.admin,
            &[
                "leads:create",
                "leads:read",
                "leads:read_all",
                "leads:update",
            ],
        )
        .await;
    // A new phone would create a contact: refused, and nothing is written.
    let (s, v) = app
        .post(
            "/api/v1/leads",
            &leads_only,
            json!({"title": "Deal", "phone": "+14155550111"}),
        )
        .await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "contacts:create");
    let pool = app.pool().await;
    let counts: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM leads)")
            .fetch_one(&pool)
            .await
            .expect("counts");
    assert_eq!(counts, (0, 0));
    // An existing contact's phone is fine; the lead shows no phone to this key.
    let (s, c) = app
        .post(
            "/api/v1/contacts",
            &acc.admin,
            json!({"phone": "+14155550111"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let (s, lead) = app
        .post(
            "/api/v1/leads",
            &leads_only,
            json!({"title": "Deal", "phone": "+14155550111"}),
        )
        .await;
    assert_eq!(s, 201, "{lead}");
    assert_eq!(lead["contact_phone"], Value::Null, "{lead}");
    let id = id_of(&lead);
    let (_, read) = app.get(&format!("/api/v1/leads/{id}"), &leads_only).await;
    assert_eq!(read["contact_phone"], Value::Null, "{read}");
    let (_, list) = app.get("/api/v1/leads", &leads_only).await;
    assert_eq!(list["items"][0]["contact_phone"], Value::Null, "{list}");
    let (s, v) = app
        .patch(
            &format!("/api/v1/leads/{id}"),
            &leads_only,
            json!({"notes": "x"}),
        )
        .await;
    assert_eq!((s, v["contact_phone"].clone()), (200, Value::Null), "{v}");
    // Filtering by phone would reveal who is a lead: it needs contacts:read too.
    let (s, v) = app
        .get("/api/v1/leads?phone=%2B14155550111", &leads_only)
        .await;
    assert_error(s, &v, 403, "insufficient_scope");
    // A key that reads contacts sees the phone.
    let reader = app
        .scoped_key(&acc.admin, &["leads:read", "contacts:read"])
        .await;
    let (_, read) = app.get(&format!("/api/v1/leads/{id}"), &reader).await;
    assert_eq!(read["contact_phone"], "+14155550111", "{read}");
}

#[tokio::test]
async fn allow_lists_match_ipv4_mapped_entries_and_an_unparsable_entry_denies() {
    let (app, acc) = acme().await;
    let body =
        json!({"name": "mapped", "scope_group": "read_only", "allowed_ips": ["::ffff:127.0.0.1"]});
    let k = app.create_key(&acc.admin, body).await;
    assert_eq!(k["allowed_ips"], json!(["127.0.0.1/32"]), "{k}");
    let key = k["key"].as_str().expect("key");
    let (s, v) = app.get("/api/v1/ping", key).await;
    assert_eq!(s, 200, "{v}");

    // An entry stored unparsable (an older version, a hand edit) matches nothing: with it
    // alone the key is usable from nowhere, not from everywhere.
    let body = json!({"name": "broken", "scope_group": "read_only", "allowed_ips": ["10.9.9.9"]});
    let k = app.create_key(&acc.admin, body).await;
    sqlx::query("UPDATE api_keys SET allowed_ips = ARRAY['not-an-ip'] WHERE id = $1::uuid")
        .bind(id_of(&k))
        .execute(&app.pool().await)
        .await
        .expect("update");
    let (s, v) = app
        .get("/api/v1/ping", k["key"].as_str().expect("key"))
        .await;
    assert_error(s, &v, 403, "ip_not_allowed");
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let (app, acc) = acme().await;
    for (path, bearer) in [
        (
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=<b>",
            "",
        ),
        ("/healthz", ""),
        ("/metrics", ""),
        ("/api/v1/ping", ""),
        ("/admin/v1/api-keys", acc.admin.as_str()),
        ("/no/such/route", ""),
        ("/", ""),
    ] {
        let r = app.request("GET", path, bearer, None).await;
        assert_eq!(
            r.headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn currencies_are_iso_4217_and_key_names_are_one_line_and_never_null() {
    let (app, acc) = acme().await;
    let (s, c) = app
        .post(
            "/api/v1/contacts",
            &acc.admin,
            json!({"phone": "+14155550122"}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let lead = |currency: &str| json!({"title": "Deal", "contact_id": id_of(&c), "value_cents": 100, "currency": currency});
    let (s, v) = app.post("/api/v1/leads", &acc.admin, lead("ZZZ")).await;
    let details = validation_details(s, &v);
    assert_eq!(details[0]["field"], "currency", "{v}");
    let (s, v) = app.post("/api/v1/leads", &acc.admin, lead("eur")).await;
    assert_eq!((s, v["currency"].clone()), (201, json!("EUR")), "{v}");

    for name in ["two\nlines", "car\rriage", "tab\there"] {
        let (s, v) = app
            .post(
                "/admin/v1/api-keys",
                &acc.admin,
                json!({"name": name, "scope_group": "read_only"}),
            )
            .await;
        let details = validation_details(s, &v);
        assert_eq!(details[0]["field"], "name", "{name:?}: {v}");
    }
    let k = app
        .create_key(&acc.admin, json!({"name": "k", "scope_group": "read_only"}))
        .await;
    let path = format!("/admin/v1/api-keys/{}", id_of(&k));
    let (s, v) = app.patch(&path, &acc.admin, json!({"name": null})).await;
    let details = validation_details(s, &v);
    assert_eq!(details[0]["field"], "name", "{v}");
    let (s, v) = app.patch(&path, &acc.admin, json!({"name": "a\nb"})).await;
    validation_details(s, &v);
    let (_, v) = app.get(&path, &acc.admin).await;
    assert_eq!(v["name"], "k", "{v}");
    // Broadcast and account names follow the same rule.
    let (s, v) = app
        .post("/admin/v1/accounts", ROOT, json!({"name": "Ac\nme"}))
        .await;
    validation_details(s, &v);
}

#[tokio::test]
async fn a_template_in_use_keeps_its_parameters() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let path = format!("/api/v1/templates/{}", sender.template_id);
    // One body parameter fewer: the broadcast's sends (two values) would all fail.
    let fewer = json!({"components": [{"type": "BODY", "text": "Hi {{1}}, it has shipped.",
                                        "example": {"body_text": [["Maria"]]}}]});
    let (s, v) = app.patch(&path, &sender.key, fewer.clone()).await;
    assert_error(s, &v, 409, "conflict");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("promo") && message.contains(&sender.broadcast_id),
        "{message}"
    );
    let (_, t) = app.get(&path, &sender.key).await;
    assert_eq!(
        t["components"][0]["text"],
        "Hi {{1}}, your order {{2}} has shipped."
    );
    // Other wording with the same parameters (and new examples) is fine.
    let same = json!({"components": [{"type": "BODY", "text": "Hello {{1}}, order {{2}} is on its way.",
                                       "example": {"body_text": [["Ann", "1"]]}}]});
    let (s, v) = app.patch(&path, &sender.key, same).await;
    assert_eq!(s, 200, "{v}");
    // Once no broadcast uses it, any valid change is.
    let (s, _) = app
        .delete(
            &format!("/api/v1/broadcasts/{}", sender.broadcast_id),
            &sender.key,
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = app.patch(&path, &sender.key, fewer).await;
    assert_eq!(s, 200, "{v}");
}
