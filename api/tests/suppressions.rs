//! The suppression list and consent keywords (`docs/consent.md`): add (upsert), list with
//! paging and filters, delete by phone in any accepted form, the keyword lists with their
//! defaults and rules, tenant isolation (per account, whatever the key's mode), bad input and
//! scopes. Against the real api, Postgres and Redis.

mod support;

use serde_json::{json, Value};
use support::*;

const BASE: &str = "/api/v1/suppressions";
const KEYWORDS: &str = "/api/v1/suppressions/keywords";

/// A fresh api, account "Acme" and a live full-access key.
async fn setup() -> (TestApp, Account, String) {
    let (app, acc) = acme().await;
    let key = app.scoped_key(&acc.admin, &["contacts:all"]).await;
    (app, acc, key)
}

fn phones(page: &Value) -> Vec<&str> {
    strs(&page["items"], "phone")
}

fn fields_of(details: &[Value]) -> Vec<&str> {
    details.iter().filter_map(|d| d["field"].as_str()).collect()
}

#[tokio::test]
async fn add_list_change_and_delete() {
    let (app, _acc, key) = setup().await;
    let (s, row) = app
        .post(BASE, &key, json!({"phone": "+1 (415) 555-0123"}))
        .await;
    assert_eq!(s, 201, "{row}");
    assert_eq!(row["phone"], "+14155550123");
    assert_eq!(row["reason"], "manual");
    assert_eq!(row["scope"], "all");
    assert_eq!(row["source"], "api");
    assert!(row["created_at"].is_string(), "{row}");
    let mut keys: Vec<&String> = row.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "phone", "reason", "scope", "source"]);

    // A second POST for the phone (in another form) changes it.
    let (s, again) = app
        .post(
            BASE,
            &key,
            json!({"phone": "14155550123", "reason": "bounced", "scope": "marketing", "source": "crm sync"}),
        )
        .await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(
        (&again["reason"], &again["scope"], &again["source"]),
        (&json!("bounced"), &json!("marketing"), &json!("crm sync"))
    );
    assert_eq!(again["created_at"], row["created_at"]);

    for (phone, reason) in [("+14155550100", "opt_out"), ("+4930123456", "manual")] {
        app.expect_status(
            "POST",
            BASE,
            &key,
            json!({"phone": phone, "reason": reason}),
            201,
        )
        .await;
    }
    let (s, page) = app.get(BASE, &key).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(
        phones(&page),
        ["+14155550100", "+14155550123", "+4930123456"]
    );
    assert_eq!(page["next_cursor"], Value::Null);

    // Paging by phone.
    let (_, first) = app.get(&format!("{BASE}?limit=2"), &key).await;
    assert_eq!(phones(&first), ["+14155550100", "+14155550123"]);
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let (_, second) = app
        .get(&format!("{BASE}?limit=2&cursor={cursor}"), &key)
        .await;
    assert_eq!(phones(&second), ["+4930123456"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Filters: phone (any form; a `+` in a query string must be %2B, a bare one reads as a
    // space and the digits still parse), reason, scope.
    for q in [
        "phone=%2B14155550123",
        "phone=+14155550123",
        "phone=1-415-555-0123",
    ] {
        let (s, p) = app.get(&format!("{BASE}?{q}"), &key).await;
        assert_eq!(s, 200, "{q}: {p}");
        assert_eq!(phones(&p), ["+14155550123"], "{q}");
    }
    let (_, p) = app.get(&format!("{BASE}?reason=manual"), &key).await;
    assert_eq!(phones(&p), ["+4930123456"]);
    let (_, p) = app.get(&format!("{BASE}?scope=marketing"), &key).await;
    assert_eq!(phones(&p), ["+14155550123"]);
    let (_, p) = app
        .get(&format!("{BASE}?scope=all&reason=opt_out"), &key)
        .await;
    assert_eq!(phones(&p), ["+14155550100"]);
    let (_, p) = app.get(&format!("{BASE}?phone=%2B19995550000"), &key).await;
    assert_eq!(phones(&p), Vec::<&str>::new());

    // Delete: `+` as %2B, digits without it, a literal `+`.
    let (s, _) = app.delete(&format!("{BASE}/%2B14155550123"), &key).await;
    assert_eq!(s, 204);
    let (s, body) = app.delete(&format!("{BASE}/%2B14155550123"), &key).await;
    assert_error(s, &body, 404, "not_found");
    let (s, _) = app.delete(&format!("{BASE}/14155550100"), &key).await;
    assert_eq!(s, 204);
    let (s, _) = app.delete(&format!("{BASE}/+4930123456"), &key).await;
    assert_eq!(s, 204);
    let (s, body) = app.delete(&format!("{BASE}/not-a-phone"), &key).await;
    assert_error(s, &body, 404, "not_found");
    let (_, page) = app.get(BASE, &key).await;
    assert_eq!(page["items"], json!([]));
}

#[tokio::test]
async fn another_account_neither_sees_nor_deletes_and_both_modes_share_the_list() {
    let (app, acc, key) = setup().await;
    let test_key = app
        .key(
            &acc.admin,
            json!({"name": "test", "scopes": ["contacts:all"], "rate_limit_per_hour": null, "mode": "test"}),
        )
        .await
        .0;
    app.expect_status("POST", BASE, &key, json!({"phone": "+14155550123"}), 201)
        .await;
    app.expect_status(
        "PUT",
        KEYWORDS,
        &key,
        json!({"opt_out": ["BASTA"], "opt_in": ["VOLTA"]}),
        200,
    )
    .await;

    // The account's test-mode key sees the same list and keywords.
    let (_, page) = app.get(BASE, &test_key).await;
    assert_eq!(phones(&page), ["+14155550123"]);
    let (_, kw) = app.get(KEYWORDS, &test_key).await;
    assert_eq!(kw["opt_out"], json!(["BASTA"]));

    let other = app.account("Other").await;
    let other_key = app.scoped_key(&other.admin, &["contacts:all"]).await;
    let (_, page) = app.get(BASE, &other_key).await;
    assert_eq!(page["items"], json!([]));
    let (_, page) = app
        .get(&format!("{BASE}?phone=%2B14155550123"), &other_key)
        .await;
    assert_eq!(page["items"], json!([]));
    let (s, body) = app
        .delete(&format!("{BASE}/%2B14155550123"), &other_key)
        .await;
    assert_error(s, &body, 404, "not_found");
    let (_, kw) = app.get(KEYWORDS, &other_key).await;
    assert_eq!(kw["is_default"], true, "{kw}");
    // The other account's own entry for the same phone is its own row.
    app.expect_status(
        "POST",
        BASE,
        &other_key,
        json!({"phone": "+14155550123", "scope": "marketing"}),
        201,
    )
    .await;
    let (_, mine) = app.get(BASE, &key).await;
    assert_eq!(mine["items"][0]["scope"], "all");
    // The account admin token works too (it has every scope).
    let (s, page) = app.get(BASE, &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(phones(&page), ["+14155550123"]);
}

#[tokio::test]
async fn keywords_default_replace_and_validate() {
    let (app, _acc, key) = setup().await;
    let (s, kw) = app.get(KEYWORDS, &key).await;
    assert_eq!(s, 200, "{kw}");
    assert_eq!(
        kw,
        json!({"opt_out": ["STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPALL"],
               "opt_in": ["START", "UNSTOP"], "is_default": true})
    );
    let (s, kw) = app
        .send(
            "PUT",
            KEYWORDS,
            &key,
            Some(json!({"opt_out": [" stop ", "Basta", "STOP", "arrêt"], "opt_in": ["volta"]})),
        )
        .await;
    assert_eq!(s, 200, "{kw}");
    assert_eq!(
        kw,
        json!({"opt_out": ["STOP", "BASTA", "ARRÊT"], "opt_in": ["VOLTA"], "is_default": false})
    );
    let (_, read) = app.get(KEYWORDS, &key).await;
    assert_eq!(read, kw);

    let bad = [
        (json!({"opt_out": ["STOP"]}), "opt_in"),
        (json!({"opt_out": [], "opt_in": ["START"]}), "opt_out"),
        (
            json!({"opt_out": vec!["W"; 51].iter().enumerate().map(|(i, _)| format!("W{i}")).collect::<Vec<_>>(), "opt_in": ["START"]}),
            "opt_out",
        ),
        (
            json!({"opt_out": ["STOP", "  "], "opt_in": ["START"]}),
            "opt_out[1]",
        ),
        (
            json!({"opt_out": ["x".repeat(65)], "opt_in": ["START"]}),
            "opt_out[0]",
        ),
        (
            json!({"opt_out": ["STOP", "BYE"], "opt_in": ["start", "bye"]}),
            "opt_in[1]",
        ),
        (
            json!({"opt_out": ["STOP\u{7}"], "opt_in": ["START"]}),
            "opt_out[0]",
        ),
        (json!({"opt_out": "STOP", "opt_in": ["START"]}), "opt_out"),
        (json!({"opt_out": [1], "opt_in": ["START"]}), "opt_out[0]"),
        (
            json!({"opt_out": ["STOP"], "opt_in": ["START"], "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in bad {
        let (s, v) = app.send("PUT", KEYWORDS, &key, Some(body.clone())).await;
        let details = validation_details(s, &v);
        assert!(
            fields_of(details).iter().any(|f| f.contains(field)),
            "{body} -> {v}"
        );
    }
    let (s, v) = app
        .send_raw_json("PUT", KEYWORDS, &key, "{\"opt_out\": [")
        .await;
    validation_details(s, &v);
    // Nothing changed.
    let (_, read) = app.get(KEYWORDS, &key).await;
    assert_eq!(read, kw);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field() {
    let (app, _acc, key) = setup().await;
    let bad = [
        (json!({}), "phone"),
        (json!({"phone": "abc"}), "phone"),
        (json!({"phone": "+1555"}), "phone"),
        (json!({"phone": 14155550123u64}), "phone"),
        (json!({"phone": "+14155550123", "reason": "spam"}), "reason"),
        (json!({"phone": "+14155550123", "scope": "some"}), "scope"),
        (
            json!({"phone": "+14155550123", "reason": null, "scope": 5}),
            "scope",
        ),
        (json!({"phone": "+14155550123", "source": ""}), "source"),
        (
            json!({"phone": "+14155550123", "source": "x".repeat(101)}),
            "source",
        ),
        (json!({"phone": "+14155550123", "note": "x"}), "note"),
        (json!("+14155550123"), "body"),
    ];
    for (body, field) in bad {
        let (s, v) = app.post(BASE, &key, body.clone()).await;
        let details = validation_details(s, &v);
        assert!(
            fields_of(details).iter().any(|f| f.contains(field)),
            "{body} -> {v}"
        );
    }
    for raw in ["{\"phone\": ", "", "not json"] {
        let (s, v) = app.send_raw_json("POST", BASE, &key, raw).await;
        validation_details(s, &v);
    }
    for q in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=zz",
        "phone=abc",
        "reason=spam",
        "scope=x",
        "unknown=1",
    ] {
        let (s, v) = app.get(&format!("{BASE}?{q}"), &key).await;
        validation_details(s, &v);
    }
    let (_, page) = app.get(BASE, &key).await;
    assert_eq!(page["items"], json!([]), "nothing was written");
}

#[tokio::test]
async fn each_route_needs_its_scope() {
    let (app, acc) = acme().await;
    let read_only = app.scoped_key(&acc.admin, &["contacts:read_all"]).await;
    let update_only = app.scoped_key(&acc.admin, &["contacts:update"]).await;
    let neither = app.scoped_key(&acc.admin, &["contacts:read"]).await;
    let body = json!({"phone": "+14155550123"});
    let kw = json!({"opt_out": ["STOP"], "opt_in": ["START"]});
    let path = format!("{BASE}/%2B14155550123");

    // Reads need contacts:read_all.
    for key in [&update_only, &neither] {
        for p in [BASE, KEYWORDS] {
            let (s, v) = app.get(p, key).await;
            assert_error(s, &v, 403, "insufficient_scope");
            assert_eq!(v["error"]["required_scope"], "contacts:read_all", "{v}");
        }
    }
    // Writes need contacts:update.
    for key in [&read_only, &neither] {
        let (s, v) = app.post(BASE, key, body.clone()).await;
        assert_error(s, &v, 403, "insufficient_scope");
        assert_eq!(v["error"]["required_scope"], "contacts:update", "{v}");
        let (s, v) = app.send("PUT", KEYWORDS, key, Some(kw.clone())).await;
        assert_error(s, &v, 403, "insufficient_scope");
        let (s, v) = app.delete(&path, key).await;
        assert_error(s, &v, 403, "insufficient_scope");
    }
    let (s, _) = app.post(BASE, &update_only, body).await;
    assert_eq!(s, 201);
    let (s, _) = app.send("PUT", KEYWORDS, &update_only, Some(kw)).await;
    assert_eq!(s, 200);
    let (s, page) = app.get(BASE, &read_only).await;
    assert_eq!((s, phones(&page)), (200, vec!["+14155550123"]));
    let (s, _) = app.delete(&path, &update_only).await;
    assert_eq!(s, 204);
    let (s, v) = app.get(BASE, "").await;
    assert_error(s, &v, 401, "missing_api_key");
}
