//! Webhook endpoints (`docs/integrator-events.md`): create/list/read/patch/delete, the secret
//! shown once and rotated with a grace period, the URL rules in development and production, the
//! per-account limit, tenant and key-mode isolation, the scope, and the delivery log with its
//! paging, recover and retry. Against the real api, Postgres and Redis.

mod support;

use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

const BASE: &str = "/api/v1/webhook-endpoints";
const ADMIN_BASE: &str = "/admin/v1/webhook-endpoints";

const ENDPOINT_FIELDS: [&str; 15] = [
    "id",
    "mode",
    "url",
    "events",
    "key_ids",
    "max_per_second",
    "active",
    "description",
    "include_phone",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "secret_rotated_until",
    "created_at",
    "updated_at",
];

const DELIVERY_FIELDS: [&str; 12] = [
    "id",
    "event_id",
    "event_type",
    "state",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_status",
    "last_latency_ms",
    "last_error",
    "created_at",
    "body",
];

fn keys_of(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn sorted(fields: &[&'static str]) -> Vec<&'static str> {
    let mut f = fields.to_vec();
    f.sort_unstable();
    f
}

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

/// A full-access key without hourly limit, of `mode`; returns (value, id).
async fn full_key(app: &TestApp, admin: &str, mode: &str) -> (String, String) {
    let body = json!({"name": format!("{mode} key"), "scope_group": "full_access",
        "rate_limit_per_hour": null, "mode": mode});
    app.key(admin, body).await
}

/// A fresh api, account "Acme" and a live full-access key.
async fn setup() -> (TestApp, Account, String) {
    let (app, acc) = acme().await;
    let (key, _) = full_key(&app, &acc.admin, "live").await;
    (app, acc, key)
}

/// Creates an endpoint at `url` (201); returns it.
async fn create(app: &TestApp, base: &str, bearer: &str, body: Value) -> Value {
    app.expect_status("POST", base, bearer, body, 201).await
}

async fn endpoint(app: &TestApp, bearer: &str, url: &str) -> Value {
    create(app, BASE, bearer, json!({ "url": url })).await
}

async fn count_endpoints(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(&app.pool().await)
        .await
        .expect("count")
}

/// Inserts a delivery of `endpoint` in `state`, created `ago_secs` ago; returns its id.
async fn insert_delivery(
    app: &TestApp,
    endpoint: &str,
    account: &str,
    state: &str,
    ago_secs: i64,
) -> Uuid {
    let id = Uuid::now_v7();
    let event = format!("evt_{}", id.simple());
    let body = json!({"id": event, "type": "message.delivered",
        "created_at": "2026-12-07T10:00:00.123Z", "data": {"status": "delivered"}});
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body,
             state, attempts, next_attempt_at, lease_until, last_attempt_at, last_status,
             last_latency_ms, last_error, created_at)
         VALUES ($1, $2::uuid, $3::uuid, $4, 'message.delivered', $5, $6, 3,
                 now() + interval '1 hour',
                 CASE WHEN $6 = 'delivering' THEN now() + interval '1 minute' END,
                 now() - make_interval(secs => $7), 500, 12, 'HTTP 500',
                 now() - make_interval(secs => $7))",
    )
    .bind(id)
    .bind(endpoint)
    .bind(account)
    .bind(&event)
    .bind(&body)
    .bind(state)
    .bind(ago_secs as f64)
    .execute(&app.pool().await)
    .await
    .expect("insert a delivery");
    id
}

#[derive(Debug, sqlx::FromRow, PartialEq)]
struct StoredDelivery {
    state: String,
    attempts: i32,
    lease_until: Option<chrono::DateTime<chrono::Utc>>,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
}

async fn stored(app: &TestApp, id: Uuid) -> StoredDelivery {
    sqlx::query_as(
        "SELECT state, attempts, lease_until, next_attempt_at FROM webhook_deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool().await)
    .await
    .expect("the delivery")
}

fn assert_field(status: u16, v: &Value, field: &str, what: &str) {
    let details = validation_details(status, v);
    assert!(
        details.iter().any(|d| d["field"] == field),
        "{what}: want a detail for {field}: {v}"
    );
}

#[tokio::test]
async fn create_shows_the_secret_once_and_stores_it_sealed() {
    let (app, _acc, key) = setup().await;
    let body = json!({"url": "https://hooks.example.com/ezpulze",
        "events": ["message.failed", "message.delivered", "message.failed"], "key_ids": null,
        "max_per_second": 120, "active": true, "description": "  CRM sync  ",
        "include_phone": true});
    let e = create(&app, BASE, &key, body).await;
    let mut want = ENDPOINT_FIELDS.to_vec();
    want.push("secret");
    assert_eq!(keys_of(&e), sorted(&want), "{e}");
    let id = id_of(&e);
    assert_eq!(
        Uuid::parse_str(&id).expect("uuid").get_version_num(),
        7,
        "ids are UUIDv7"
    );
    assert_eq!(e["mode"], "live");
    assert_eq!(e["url"], "https://hooks.example.com/ezpulze");
    // Repeats dropped, in the catalogue's order.
    assert_eq!(e["events"], json!(["message.delivered", "message.failed"]));
    assert_eq!(e["key_ids"], Value::Null);
    assert_eq!(e["max_per_second"], 120);
    assert_eq!(e["active"], true);
    assert_eq!(e["description"], "CRM sync");
    assert_eq!(e["include_phone"], true);
    for f in [
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "secret_rotated_until",
    ] {
        assert_eq!(e[f], Value::Null, "{f}");
    }
    let secret = e["secret"].as_str().expect("secret").to_string();
    assert_eq!(
        ezpulze_common::hooks::secret_key(&secret).map(|k| k.len()),
        Ok(24)
    );

    // Sealed at rest with the app's key.
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT secret_enc FROM webhook_endpoints")
        .fetch_one(&app.pool().await)
        .await
        .expect("stored");
    assert!(!sealed.windows(6).any(|w| w == b"whsec_"));
    assert_eq!(app.config().sealer().open(&sealed).expect("opens"), secret);

    // Never again: not in the list, not in a read.
    let (s, list) = app.get(BASE, &key).await;
    assert_eq!(s, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(keys_of(&items[0]), sorted(&ENDPOINT_FIELDS));
    let (s, one) = app.get(&format!("{BASE}/{id}"), &key).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(keys_of(&one), sorted(&ENDPOINT_FIELDS));
    assert_eq!(one["id"], e["id"]);
    assert!(!one.to_string().contains(&secret));

    // The defaults.
    let d = endpoint(&app, &key, "https://Hooks.Example.com").await;
    assert_eq!(d["url"], "https://hooks.example.com/", "stored normalised");
    assert_eq!(d["events"], json!([]));
    assert_eq!(d["key_ids"], Value::Null);
    assert_eq!(d["max_per_second"], 50);
    assert_eq!(d["active"], true);
    assert_eq!(d["description"], "");
    assert_eq!(d["include_phone"], false);
    assert_ne!(d["secret"], e["secret"]);
    // Newest first.
    let (_, list) = app.get(BASE, &key).await;
    assert_eq!(strs(&list["items"], "id"), vec![id_of(&d), id]);
}

#[tokio::test]
async fn rotating_gives_a_new_secret_and_keeps_the_old_one_signing_for_a_day() {
    let (app, _acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/x").await;
    let old = e["secret"].as_str().expect("secret").to_string();
    let path = format!("{BASE}/{}/rotate-secret", id_of(&e));
    let (s, r) = app.send("POST", &path, &key, None).await;
    assert_eq!(s, 200, "{r}");
    let new = r["secret"].as_str().expect("a new secret").to_string();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    let until = at(&r["secret_rotated_until"]);
    let want = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!(
        (until - want).num_seconds().abs() < 60,
        "{until} is about 24 h from now"
    );
    let (current, previous, previous_until): (
        Vec<u8>,
        Option<Vec<u8>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as(
        "SELECT secret_enc, old_secret_enc, old_secret_until FROM webhook_endpoints",
    )
    .fetch_one(&app.pool().await)
    .await
    .expect("stored");
    let sealer = app.config().sealer();
    assert_eq!(sealer.open(&current).expect("current"), new);
    assert_eq!(
        sealer
            .open(&previous.expect("old secret kept"))
            .expect("old"),
        old
    );
    assert_eq!(previous_until, Some(until));
    // Shown once: a read has the time, not the secret.
    let (_, one) = app.get(&format!("{BASE}/{}", id_of(&e)), &key).await;
    assert_eq!(one["secret_rotated_until"], r["secret_rotated_until"]);
    assert!(one.get("secret").is_none());
    // Past the grace period the field is null again.
    sqlx::query("UPDATE webhook_endpoints SET old_secret_until = now() - interval '1 second'")
        .execute(&app.pool().await)
        .await
        .expect("age");
    let (_, one) = app.get(&format!("{BASE}/{}", id_of(&e)), &key).await;
    assert_eq!(one["secret_rotated_until"], Value::Null);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_nothing_is_stored() {
    let (app, acc, key) = setup().await;
    let (_, test_key_id) = full_key(&app, &acc.admin, "test").await;
    let ok = "https://hooks.example.com/x";
    let cases: Vec<(Value, &str)> = vec![
        // wrong types
        (json!({"url": 5}), "url"),
        (json!({"url": ok, "events": "message.sent"}), "events"),
        (json!({"url": ok, "events": [1]}), "events[0]"),
        (
            json!({"url": ok, "max_per_second": "fast"}),
            "max_per_second",
        ),
        (json!({"url": ok, "max_per_second": 1.5}), "max_per_second"),
        (json!({"url": ok, "active": "yes"}), "active"),
        (json!({"url": ok, "include_phone": 1}), "include_phone"),
        (json!({"url": ok, "description": ["x"]}), "description"),
        (json!({"url": ok, "key_ids": ["not-a-uuid"]}), "key_ids[0]"),
        (json!({"url": ok, "key_ids": "all"}), "key_ids"),
        // absent or null where a value is required
        (json!({}), "url"),
        (json!({"url": null}), "url"),
        (json!({"url": ok, "active": null}), "active"),
        (json!({"url": ok, "max_per_second": null}), "max_per_second"),
        // URLs
        (json!({"url": ""}), "url"),
        (json!({"url": "hooks.example.com/x"}), "url"),
        (json!({"url": "ftp://hooks.example.com/x"}), "url"),
        (json!({"url": "http://hooks.example.com/x"}), "url"),
        (json!({"url": "http://10.0.0.1/x"}), "url"),
        (json!({"url": "https://user:pw@hooks.example.com/x"}), "url"),
        (json!({"url": "https://10.0.0.1/x"}), "url"),
        (json!({"url": "https://169.254.169.254/latest"}), "url"),
        (json!({"url": "https://[fd00::1]/"}), "url"),
        (
            json!({"url": format!("https://hooks.example.com/{}", "a".repeat(2048))}),
            "url",
        ),
        // events
        (
            json!({"url": ok, "events": ["message.bounced"]}),
            "events[0]",
        ),
        (
            json!({"url": ok, "events": ["message.sent", "Message.Read"]}),
            "events[1]",
        ),
        // max_per_second
        (json!({"url": ok, "max_per_second": 0}), "max_per_second"),
        (json!({"url": ok, "max_per_second": 1001}), "max_per_second"),
        (json!({"url": ok, "max_per_second": -1}), "max_per_second"),
        (
            json!({"url": ok, "max_per_second": 10_000_000_000_i64}),
            "max_per_second",
        ),
        // description
        (
            json!({"url": ok, "description": "x".repeat(501)}),
            "description",
        ),
        // key_ids
        (json!({"url": ok, "key_ids": []}), "key_ids"),
        (
            json!({"url": ok, "key_ids": [Uuid::now_v7().to_string()]}),
            "key_ids[0]",
        ),
        // a test-mode key on a live endpoint never matches
        (json!({"url": ok, "key_ids": [test_key_id]}), "key_ids[0]"),
        (json!({"url": ok, "mode": "prod"}), "mode"),
        (json!({"url": ok, "mode": null}), "mode"),
        // mode: a live key creates live endpoints only (last: the admin may choose it)
        (json!({"url": ok, "mode": "test"}), "mode"),
    ];
    for (body, field) in &cases {
        let (s, v) = app.post(BASE, &key, body.clone()).await;
        assert_field(s, &v, field, &body.to_string());
    }
    // Unknown fields (the secret cannot be chosen either).
    for extra in ["secret", "colour", "account_id", "test_mode"] {
        let mut body = json!({"url": ok});
        body[extra] = json!("x");
        let (s, v) = app.post(BASE, &key, body).await;
        assert_error(s, &v, 422, "validation_failed");
        assert!(v.to_string().contains(extra), "{extra}: {v}");
    }
    // Malformed JSON, no body, a body that is not an object.
    for raw in [
        "{\"url\": ",
        "",
        "[]",
        "\"https://hooks.example.com\"",
        "nul",
    ] {
        let (s, v) = app.send_raw_json("POST", BASE, &key, raw).await;
        assert_error(s, &v, 422, "validation_failed");
    }
    // The admin API refuses the same way.
    for (body, field) in &cases[..cases.len() - 1] {
        let (s, v) = app.post(ADMIN_BASE, &acc.admin, body.clone()).await;
        assert_field(s, &v, field, &body.to_string());
    }
    assert_eq!(count_endpoints(&app).await, 0, "nothing was stored");

    // PATCH: the same rules, and the endpoint stays as it was.
    let e = endpoint(&app, &key, ok).await;
    let path = format!("{BASE}/{}", id_of(&e));
    let (_, before) = app.get(&path, &key).await;
    let patches: Vec<(Value, &str)> = vec![
        (json!({"url": null}), "url"),
        (json!({"url": "http://hooks.example.com/"}), "url"),
        (json!({"url": "https://10.1.2.3:8443/x"}), "url"),
        (json!({"url": "https://[::ffff:192.168.0.1]/"}), "url"),
        (json!({"events": ["nope"]}), "events[0]"),
        (json!({"max_per_second": 0}), "max_per_second"),
        (json!({"max_per_second": 1001}), "max_per_second"),
        (json!({"active": null}), "active"),
        (json!({"description": null}), "description"),
        (json!({"include_phone": null}), "include_phone"),
        (json!({"description": "y".repeat(501)}), "description"),
        (json!({"key_ids": []}), "key_ids"),
        (json!({"key_ids": [test_key_id]}), "key_ids[0]"),
        (json!({"mode": "test"}), "body"),
    ];
    for (body, field) in &patches {
        let (s, v) = app.patch(&path, &key, body.clone()).await;
        if *field == "body" {
            assert_error(s, &v, 422, "validation_failed");
        } else {
            assert_field(s, &v, field, &body.to_string());
        }
    }
    let (s, v) = app
        .send_raw_json("PATCH", &path, &key, "{\"active\": tru")
        .await;
    assert_error(s, &v, 422, "validation_failed");
    let (_, after) = app.get(&path, &key).await;
    assert_eq!(after, before, "no bad PATCH changed anything");
}

#[tokio::test]
async fn development_takes_http_and_https_to_loopback_and_nothing_else_non_public() {
    let (app, _acc, key) = setup().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "https://127.0.0.1/x",
        "https://localhost/x",
    ] {
        let e = endpoint(&app, &key, url).await;
        assert!(
            e["url"].as_str().is_some_and(|u| u.starts_with(&url[..8])),
            "{e}"
        );
    }
    // A name is not resolved in development (it may be anything a laptop resolves).
    endpoint(&app, &key, "https://no-such-host.invalid/x").await;
    for url in [
        "http://hooks.example.com/",
        "https://10.0.0.1",
        "https://192.168.1.10/",
        "https://172.16.0.1/",
        "https://100.64.0.1/",
        "https://169.254.169.254/",
        "https://[fe80::1]/",
        "https://224.0.0.1/",
        "https://0.0.0.0/",
    ] {
        let (s, v) = app.post(BASE, &key, json!({ "url": url })).await;
        assert_field(s, &v, "url", url);
    }
}

const PROD_ROOT: &str = "production-root-token-0123456789abcdef";

/// The api with `EZPULZE_ENV=production` (and the settings production requires), an account
/// and a live full-access key.
async fn production() -> (TestApp, Account, String) {
    let app = TestApp::spawn_with(&[
        ("EZPULZE_ENV", "production"),
        ("EZPULZE_ROOT_TOKEN", PROD_ROOT),
        ("EZPULZE_KEY_PEPPER", "production-test-pepper-0123456789"),
        (
            "EZPULZE_SECRETS_KEY",
            "production-test-secrets-key-0123456789abcdef",
        ),
        ("GRAPH_API_BASE", "https://graph.example.com"),
        ("TEST_GRAPH_API_BASE", "https://sandbox.example.com"),
    ])
    .await;
    let v = app
        .expect_status(
            "POST",
            "/admin/v1/accounts",
            PROD_ROOT,
            json!({"name": "Prod"}),
            201,
        )
        .await;
    let acc = Account {
        id: id_of(&v),
        admin: v["admin_token"].as_str().expect("token").to_string(),
    };
    let (key, _) = full_key(&app, &acc.admin, "live").await;
    (app, acc, key)
}

#[tokio::test]
async fn production_refuses_plain_http_and_every_non_public_host() {
    let (app, acc, key) = production().await;
    assert_eq!(app.config().environment, "production");
    for url in [
        "http://hooks.example.com/x",
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "https://127.0.0.1/x",
        "https://10.0.0.1",
        "https://[::1]/",
        "https://localhost/",
        "https://api.localhost/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:10.0.0.1]/",
        "https://[fd00::1]/",
        "https://0x7f.1/",
        "https://192.0.2.1/",
        // A name that resolves to nothing.
        "https://no-such-host.invalid/x",
    ] {
        for (base, bearer) in [(BASE, key.as_str()), (ADMIN_BASE, acc.admin.as_str())] {
            let (s, v) = app.post(base, bearer, json!({ "url": url })).await;
            assert_field(s, &v, "url", url);
        }
    }
    let (s, v) = app
        .post(BASE, &key, json!({"url": "https://no-such-host.invalid/"}))
        .await;
    assert_field(s, &v, "url", "unresolvable");
    assert!(
        v["error"]["details"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not resolve")),
        "{v}"
    );
    assert_eq!(count_endpoints(&app).await, 0);
    // A public address is taken (an IP literal: nothing to resolve), and a PATCH to a private
    // one is refused.
    let e = endpoint(&app, &key, "https://8.8.8.8/hook").await;
    let path = format!("{BASE}/{}", id_of(&e));
    let (s, v) = app
        .patch(&path, &key, json!({"url": "https://192.168.0.10/hook"}))
        .await;
    assert_field(s, &v, "url", "patch");
    let (_, one) = app.get(&path, &key).await;
    assert_eq!(one["url"], "https://8.8.8.8/hook");
}

#[tokio::test]
async fn an_account_has_at_most_20_endpoints_of_both_modes() {
    let (app, acc, key) = setup().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let e = if i % 2 == 0 {
            endpoint(&app, &key, &format!("https://hooks.example.com/{i}")).await
        } else {
            let body = json!({"url": format!("https://hooks.example.com/{i}"), "mode": "test"});
            create(&app, ADMIN_BASE, &acc.admin, body).await
        };
        ids.push(id_of(&e));
    }
    let (s, v) = app
        .post(BASE, &key, json!({"url": "https://hooks.example.com/21"}))
        .await;
    assert_error(s, &v, 409, "conflict");
    let (s, v) = app
        .post(
            ADMIN_BASE,
            &acc.admin,
            json!({"url": "https://hooks.example.com/21"}),
        )
        .await;
    assert_error(s, &v, 409, "conflict");
    assert_eq!(count_endpoints(&app).await, 20);
    // Another account is not affected.
    let other = app.account("Other").await;
    let (other_key, _) = full_key(&app, &other.admin, "live").await;
    endpoint(&app, &other_key, "https://hooks.example.com/other").await;
    // Room again after a delete.
    let (s, _) = app.delete(&format!("{BASE}/{}", ids[0]), &key).await;
    assert_eq!(s, 204);
    endpoint(&app, &key, "https://hooks.example.com/again").await;
}

#[tokio::test]
async fn concurrent_creates_do_not_pass_the_limit() {
    let (app, _acc, key) = setup().await;
    let results = futures::future::join_all((0..30).map(|i| {
        let (app, key) = (&app, key.clone());
        async move {
            app.post(
                BASE,
                &key,
                json!({"url": format!("https://hooks.example.com/{i}")}),
            )
            .await
            .0
        }
    }))
    .await;
    assert_eq!(results.iter().filter(|s| **s == 201).count(), 20);
    assert_eq!(results.iter().filter(|s| **s == 409).count(), 10);
    assert_eq!(count_endpoints(&app).await, 20);
}

#[tokio::test]
async fn another_accounts_endpoint_is_not_found_on_every_route() {
    let (app, acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/mine").await;
    let id = id_of(&e);
    let delivery = insert_delivery(&app, &id, &acc.id, "failed", 10).await;
    let other = app.account("Other").await;
    let (other_key, _) = full_key(&app, &other.admin, "live").await;
    for (base, bearer) in [
        (BASE, other_key.as_str()),
        (ADMIN_BASE, other.admin.as_str()),
    ] {
        let one = format!("{base}/{id}");
        let calls: Vec<(&str, String, Option<Value>)> = vec![
            ("GET", one.clone(), None),
            ("PATCH", one.clone(), Some(json!({"active": false}))),
            ("POST", format!("{one}/rotate-secret"), None),
            ("GET", format!("{one}/deliveries"), None),
            (
                "POST",
                format!("{one}/recover"),
                Some(json!({"since": "2020-01-01T00:00:00Z"})),
            ),
            ("POST", format!("{one}/deliveries/{delivery}/retry"), None),
            ("DELETE", one.clone(), None),
        ];
        for (method, path, body) in calls {
            let (s, v) = app.send(method, &path, bearer, body).await;
            assert_error(s, &v, 404, "not_found");
        }
        let (_, list) = app.get(base, bearer).await;
        assert_eq!(list["items"], json!([]));
    }
    // Untouched.
    let (s, mine) = app.get(&format!("{BASE}/{id}"), &key).await;
    assert_eq!(s, 200);
    assert_eq!(mine["active"], true);
    assert_eq!(mine["secret_rotated_until"], Value::Null);
    assert_eq!(stored(&app, delivery).await.state, "failed");
    // Ids that are not UUIDs are simply not found.
    for path in [
        format!("{BASE}/not-an-id"),
        format!("{BASE}/{id}/deliveries/not-an-id/retry"),
    ] {
        let (s, v) = app.send("GET", &path, &key, None).await;
        assert!(s == 404 || s == 405, "{path}: {s} {v}");
    }
    let (s, v) = app
        .send(
            "POST",
            &format!("{BASE}/{id}/deliveries/nope/retry"),
            &key,
            None,
        )
        .await;
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn a_key_sees_and_creates_endpoints_of_its_own_mode_only() {
    let (app, acc, live) = setup().await;
    let (test, _) = full_key(&app, &acc.admin, "test").await;
    let l = endpoint(&app, &live, "https://hooks.example.com/live").await;
    assert_eq!(l["mode"], "live");
    let t = endpoint(&app, &test, "https://hooks.example.com/test").await;
    assert_eq!(t["mode"], "test");
    let stored_mode: bool =
        sqlx::query_scalar("SELECT test_mode FROM webhook_endpoints WHERE id = $1::uuid")
            .bind(id_of(&t))
            .fetch_one(&app.pool().await)
            .await
            .expect("mode");
    assert!(stored_mode);
    // A test key naming its own mode is fine, the other is refused.
    let (s, v) = app
        .post(
            BASE,
            &test,
            json!({"url": "https://hooks.example.com/t2", "mode": "test"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .post(
            BASE,
            &test,
            json!({"url": "https://hooks.example.com/t3", "mode": "live"}),
        )
        .await;
    assert_field(s, &v, "mode", "test key, live mode");

    let (_, list) = app.get(BASE, &test).await;
    assert!(
        strs(&list["items"], "mode").iter().all(|m| *m == "test"),
        "{list}"
    );
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let (_, list) = app.get(BASE, &live).await;
    assert_eq!(strs(&list["items"], "id"), vec![id_of(&l)]);

    // The other mode's endpoint is not found on any route.
    let delivery = insert_delivery(&app, &id_of(&l), &acc.id, "failed", 5).await;
    let one = format!("{BASE}/{}", id_of(&l));
    for (method, path, body) in [
        ("GET", one.clone(), None),
        ("PATCH", one.clone(), Some(json!({"description": "x"}))),
        ("POST", format!("{one}/rotate-secret"), None),
        ("GET", format!("{one}/deliveries"), None),
        (
            "POST",
            format!("{one}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
        ("POST", format!("{one}/deliveries/{delivery}/retry"), None),
        ("DELETE", one.clone(), None),
    ] {
        let (s, v) = app.send(method, &path, &test, body).await;
        assert_error(s, &v, 404, "not_found");
    }
    let (s, v) = app.get(&format!("{BASE}/{}", id_of(&t)), &live).await;
    assert_error(s, &v, 404, "not_found");

    // The admin sees both, and creates either.
    let (_, all) = app.get(ADMIN_BASE, &acc.admin).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    let a = create(
        &app,
        ADMIN_BASE,
        &acc.admin,
        json!({"url": "https://hooks.example.com/a", "mode": "test"}),
    )
    .await;
    assert_eq!(a["mode"], "test");
    assert!(a["secret"].as_str().is_some());
    let (s, _) = app.get(&format!("{BASE}/{}", id_of(&a)), &test).await;
    assert_eq!(s, 200, "a test key sees the admin's test-mode endpoint");
    let d = create(
        &app,
        ADMIN_BASE,
        &acc.admin,
        json!({"url": "https://hooks.example.com/d"}),
    )
    .await;
    assert_eq!(d["mode"], "live", "live by default");
    // An admin token on /api/v1 sees both modes too.
    let (_, all) = app.get(BASE, &acc.admin).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn a_key_without_webhooks_manage_gets_403_on_every_route() {
    let (app, acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/x").await;
    let id = id_of(&e);
    let delivery = insert_delivery(&app, &id, &acc.id, "failed", 5).await;
    let narrow = app
        .scoped_key(
            &acc.admin,
            &["broadcast:all", "contacts:all", "template:all"],
        )
        .await;
    let one = format!("{BASE}/{id}");
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            BASE.to_string(),
            Some(json!({"url": "https://hooks.example.com/y"})),
        ),
        ("GET", BASE.to_string(), None),
        ("GET", one.clone(), None),
        ("PATCH", one.clone(), Some(json!({"active": false}))),
        ("POST", format!("{one}/rotate-secret"), None),
        ("GET", format!("{one}/deliveries"), None),
        (
            "POST",
            format!("{one}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z"})),
        ),
        ("POST", format!("{one}/deliveries/{delivery}/retry"), None),
        ("DELETE", one.clone(), None),
    ];
    for (method, path, body) in &calls {
        let (s, v) = app.send(method, path, &narrow, body.clone()).await;
        assert_error(s, &v, 403, "insufficient_scope");
        assert_eq!(
            v["error"]["required_scope"], "webhooks:manage",
            "{method} {path}"
        );
    }
    assert_eq!(count_endpoints(&app).await, 1);
    assert_eq!(stored(&app, delivery).await.state, "failed");
    // The scope alone is enough.
    let only = app.scoped_key(&acc.admin, &["webhooks:manage"]).await;
    for (method, path, body) in &calls {
        let (s, v) = app.send(method, path, &only, body.clone()).await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    }
}

#[tokio::test]
async fn the_scope_is_in_the_catalogue_and_full_access() {
    let (app, acc) = acme().await;
    let (s, cat) = app.get("/admin/v1/scopes", &acc.admin).await;
    assert_eq!(s, 200);
    let webhooks = cat["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["id"] == "webhooks")
        .unwrap_or_else(|| panic!("a Webhooks resource: {cat}"));
    assert_eq!(webhooks["name"], "Webhooks");
    assert_eq!(strs(&webhooks["actions"], "scope"), vec!["webhooks:manage"]);
    let full = cat["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["id"] == "full_access")
        .expect("full_access");
    assert!(full["scopes"]
        .as_array()
        .expect("scopes")
        .contains(&json!("webhooks:manage")));
    let (_, key_id) = full_key(&app, &acc.admin, "live").await;
    let (s, k) = app
        .get(&format!("/admin/v1/api-keys/{key_id}"), &acc.admin)
        .await;
    assert_eq!(s, 200);
    assert!(k["scopes"]
        .as_array()
        .expect("scopes")
        .contains(&json!("webhooks:manage")));
    // The per-key documentation lists the routes under their own section.
    let (s, docs) = app
        .get(&format!("/admin/v1/api-keys/{key_id}/docs"), &acc.admin)
        .await;
    assert_eq!(s, 200);
    let section = docs["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["id"] == "webhooks")
        .unwrap_or_else(|| panic!("a webhooks section: {docs}"));
    assert_eq!(section["endpoints"].as_array().map(Vec::len), Some(9));
}

#[tokio::test]
async fn patch_changes_what_it_names_and_active_true_clears_a_disable() {
    let (app, acc, key) = setup().await;
    let (_, live_key_id) = full_key(&app, &acc.admin, "live").await;
    let e = create(
        &app,
        BASE,
        &key,
        json!({"url": "https://hooks.example.com/a", "events": ["message.sent"], "description": "A"}),
    )
    .await;
    let path = format!("{BASE}/{}", id_of(&e));
    // Nothing named: nothing changes.
    let (s, same) = app.patch(&path, &key, json!({})).await;
    assert_eq!(s, 200, "{same}");
    for f in [
        "url",
        "events",
        "key_ids",
        "max_per_second",
        "active",
        "description",
    ] {
        assert_eq!(same[f], e[f], "{f}");
    }
    let (s, v) = app
        .patch(
            &path,
            &key,
            json!({"url": "https://Other.example.com:8443/b?x=1", "events": ["dispatch.paused", "message.read"],
                   "key_ids": [live_key_id, live_key_id], "max_per_second": 1000, "description": "B",
                   "include_phone": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["url"], "https://other.example.com:8443/b?x=1");
    assert_eq!(v["events"], json!(["message.read", "dispatch.paused"]));
    assert_eq!(v["key_ids"], json!([live_key_id]));
    assert_eq!(v["max_per_second"], 1000);
    assert_eq!(v["description"], "B");
    assert_eq!(v["include_phone"], true);
    assert!(at(&v["updated_at"]) >= at(&e["updated_at"]));
    assert_eq!(
        keys_of(&v),
        sorted(&ENDPOINT_FIELDS),
        "no secret in a PATCH"
    );
    // Null: every event, every key.
    let (_, v) = app
        .patch(&path, &key, json!({"events": null, "key_ids": null}))
        .await;
    assert_eq!(v["events"], json!([]));
    assert_eq!(v["key_ids"], Value::Null);
    let (_, v) = app
        .patch(&path, &key, json!({"events": ["message.failed"]}))
        .await;
    let (_, v2) = app.patch(&path, &key, json!({"events": []})).await;
    assert_eq!(v["events"], json!(["message.failed"]));
    assert_eq!(v2["events"], json!([]));

    // Disabled by the deliverer; a manual deactivation keeps no reason; active: true clears.
    sqlx::query(
        "UPDATE webhook_endpoints SET active = false, disabled_reason = 'every attempt failed for 5 days',
             disabled_at = now(), failing_since = now() - interval '5 days'",
    )
    .execute(&app.pool().await)
    .await
    .expect("disable");
    let (_, v) = app.get(&path, &key).await;
    assert_eq!(v["active"], false);
    assert!(v["disabled_reason"].is_string() && v["disabled_at"].is_string());
    assert!(v["failing_since"].is_string());
    let (s, v) = app.patch(&path, &key, json!({"active": true})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["active"], true);
    for f in ["disabled_reason", "disabled_at", "failing_since"] {
        assert_eq!(v[f], Value::Null, "{f} cleared");
    }
    let (_, v) = app.patch(&path, &key, json!({"active": false})).await;
    assert_eq!(v["active"], false);
    assert_eq!(v["disabled_reason"], Value::Null);
    // The admin API patches the same way.
    let (s, v) = app
        .patch(
            &format!("{ADMIN_BASE}/{}", id_of(&e)),
            &acc.admin,
            json!({"active": true, "description": "admin"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["description"], "admin");
}

#[tokio::test]
async fn deleting_removes_the_endpoint_and_its_deliveries() {
    let (app, acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/x").await;
    let keep = endpoint(&app, &key, "https://hooks.example.com/keep").await;
    for state in ["pending", "failed", "succeeded"] {
        insert_delivery(&app, &id_of(&e), &acc.id, state, 1).await;
    }
    let kept = insert_delivery(&app, &id_of(&keep), &acc.id, "pending", 1).await;
    let path = format!("{BASE}/{}", id_of(&e));
    let (s, v) = app.delete(&path, &key).await;
    assert_eq!(s, 204, "{v}");
    let (s, v) = app.get(&path, &key).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app.delete(&path, &key).await;
    assert_error(s, &v, 404, "not_found");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM webhook_deliveries")
        .fetch_all(&app.pool().await)
        .await
        .expect("deliveries");
    assert_eq!(left, vec![kept]);
    let (s, _) = app
        .delete(&format!("{ADMIN_BASE}/{}", id_of(&keep)), &acc.admin)
        .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn deliveries_are_listed_newest_first_with_a_cursor_and_a_state_filter() {
    let (app, acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/x").await;
    let other = endpoint(&app, &key, "https://hooks.example.com/other").await;
    let states = [
        "succeeded",
        "failed",
        "pending",
        "delivering",
        "failed",
        "succeeded",
        "failed",
    ];
    let mut ids = Vec::new();
    for (i, state) in states.iter().enumerate() {
        ids.push(insert_delivery(&app, &id_of(&e), &acc.id, state, 100 - i as i64).await);
    }
    insert_delivery(&app, &id_of(&other), &acc.id, "failed", 1).await;
    let newest_first: Vec<String> = ids.iter().rev().map(Uuid::to_string).collect();
    for base in [BASE, ADMIN_BASE] {
        let bearer = if base == BASE {
            key.as_str()
        } else {
            acc.admin.as_str()
        };
        let path = format!("{base}/{}/deliveries", id_of(&e));
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                None => format!("{path}?limit=3"),
                Some(c) => format!("{path}?limit=3&cursor={c}"),
            };
            let (s, page) = app.get(&url, bearer).await;
            assert_eq!(s, 200, "{page}");
            pages += 1;
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 3);
            for d in items {
                assert_eq!(keys_of(d), sorted(&DELIVERY_FIELDS), "{d}");
                seen.push(id_of(d));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, newest_first);
        // One delivery as listed.
        let (_, page) = app.get(&format!("{path}?limit=1"), bearer).await;
        let d = &page["items"][0];
        assert_eq!(d["state"], "failed");
        assert_eq!(d["event_type"], "message.delivered");
        assert!(d["event_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_")));
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["last_status"], 500);
        assert_eq!(d["last_latency_ms"], 12);
        assert_eq!(d["last_error"], "HTTP 500");
        assert_eq!(d["body"]["id"], d["event_id"]);
        // The state filter.
        let (_, failed) = app.get(&format!("{path}?state=failed"), bearer).await;
        let want: Vec<String> = ids
            .iter()
            .zip(states)
            .filter(|(_, s)| *s == "failed")
            .map(|(id, _)| id.to_string())
            .rev()
            .collect();
        assert_eq!(strs(&failed["items"], "id"), want);
        assert_eq!(failed["next_cursor"], Value::Null);
        let (_, delivering) = app.get(&format!("{path}?state=delivering"), bearer).await;
        assert_eq!(strs(&delivering["items"], "id"), vec![ids[3].to_string()]);
        // Bad paging and filters.
        for (q, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=many", "limit"),
            ("cursor=nope", "cursor"),
            ("state=lost", "state"),
            ("state=FAILED", "state"),
            ("order=asc", ""),
        ] {
            let (s, v) = app.get(&format!("{path}?{q}"), bearer).await;
            if field.is_empty() {
                assert_error(s, &v, 422, "validation_failed");
            } else {
                assert_field(s, &v, field, q);
            }
        }
    }
    // An endpoint without deliveries has an empty log.
    let (_, empty) = app
        .get(
            &format!("{BASE}/{}/deliveries?state=pending", id_of(&other)),
            &key,
        )
        .await;
    assert_eq!(empty, json!({"items": [], "next_cursor": null}));
}

#[tokio::test]
async fn recover_requeues_only_the_failed_deliveries_created_since_the_time() {
    let (app, acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/x").await;
    let other = endpoint(&app, &key, "https://hooks.example.com/other").await;
    let day = 24 * 3600;
    let old_failed = insert_delivery(&app, &id_of(&e), &acc.id, "failed", 2 * day).await;
    let failed_1 = insert_delivery(&app, &id_of(&e), &acc.id, "failed", 3600).await;
    let failed_2 = insert_delivery(&app, &id_of(&e), &acc.id, "failed", 60).await;
    let succeeded = insert_delivery(&app, &id_of(&e), &acc.id, "succeeded", 60).await;
    let pending = insert_delivery(&app, &id_of(&e), &acc.id, "pending", 60).await;
    let delivering = insert_delivery(&app, &id_of(&e), &acc.id, "delivering", 60).await;
    let elsewhere = insert_delivery(&app, &id_of(&other), &acc.id, "failed", 60).await;
    let before: Vec<StoredDelivery> = futures::future::join_all(
        [old_failed, succeeded, pending, delivering, elsewhere].map(|id| stored(&app, id)),
    )
    .await;

    let path = format!("{BASE}/{}/recover", id_of(&e));
    let since = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let (s, v) = app.post(&path, &key, json!({ "since": since })).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"recovered": 2}));
    for id in [failed_1, failed_2] {
        let d = stored(&app, id).await;
        assert_eq!(d.state, "pending");
        assert_eq!(d.attempts, 3, "attempts are kept");
        assert_eq!(d.lease_until, None);
        assert!(
            (d.next_attempt_at - chrono::Utc::now()).num_seconds().abs() < 30,
            "due now: {d:?}"
        );
    }
    let after: Vec<StoredDelivery> = futures::future::join_all(
        [old_failed, succeeded, pending, delivering, elsewhere].map(|id| stored(&app, id)),
    )
    .await;
    assert_eq!(after, before, "nothing else changed");
    // Again: nothing left to recover since then; an older time takes the old one too.
    let (_, v) = app.post(&path, &key, json!({ "since": since })).await;
    assert_eq!(v, json!({"recovered": 0}));
    let admin_path = format!("{ADMIN_BASE}/{}/recover", id_of(&e));
    let (s, v) = app
        .post(
            &admin_path,
            &acc.admin,
            json!({"since": "2020-01-01T00:00:00+02:00"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"recovered": 1}));
    assert_eq!(stored(&app, old_failed).await.state, "pending");

    // A bad `since`.
    for body in [
        json!({"since": "yesterday"}),
        json!({"since": "2026-13-01T00:00:00Z"}),
        json!({"since": 1733565600}),
        json!({"since": null}),
        json!({}),
    ] {
        let (s, v) = app.post(&path, &key, body.clone()).await;
        assert_field(s, &v, "since", &body.to_string());
    }
    let (s, v) = app
        .post(&path, &key, json!({"since": since, "until": since}))
        .await;
    assert_error(s, &v, 422, "validation_failed");
    for raw in ["", "{\"since\": ", "[]"] {
        let (s, v) = app.send_raw_json("POST", &path, &key, raw).await;
        assert_error(s, &v, 422, "validation_failed");
    }
}

#[tokio::test]
async fn retry_requeues_one_delivery_unless_an_attempt_is_under_way() {
    let (app, acc, key) = setup().await;
    let e = endpoint(&app, &key, "https://hooks.example.com/x").await;
    let other = endpoint(&app, &key, "https://hooks.example.com/other").await;
    let base = format!("{BASE}/{}", id_of(&e));
    for state in ["succeeded", "failed", "pending"] {
        let id = insert_delivery(&app, &id_of(&e), &acc.id, state, 60).await;
        let (s, v) = app
            .send("POST", &format!("{base}/deliveries/{id}/retry"), &key, None)
            .await;
        assert_eq!(s, 202, "{state}: {v}");
        assert_eq!(keys_of(&v), sorted(&DELIVERY_FIELDS));
        assert_eq!(v["id"], id.to_string());
        assert_eq!(v["state"], "pending");
        assert!(
            (at(&v["next_attempt_at"]) - chrono::Utc::now())
                .num_seconds()
                .abs()
                < 30
        );
        let d = stored(&app, id).await;
        assert_eq!(
            (d.state.as_str(), d.attempts, d.lease_until),
            ("pending", 3, None)
        );
    }
    // An attempt under way: 409, unchanged.
    let busy = insert_delivery(&app, &id_of(&e), &acc.id, "delivering", 60).await;
    let before = stored(&app, busy).await;
    let (s, v) = app
        .send(
            "POST",
            &format!("{base}/deliveries/{busy}/retry"),
            &key,
            None,
        )
        .await;
    assert_error(s, &v, 409, "conflict");
    assert_eq!(stored(&app, busy).await, before);
    // An unknown delivery, or another endpoint's, is not found.
    let theirs = insert_delivery(&app, &id_of(&other), &acc.id, "failed", 60).await;
    for id in [Uuid::now_v7(), theirs] {
        let (s, v) = app
            .send("POST", &format!("{base}/deliveries/{id}/retry"), &key, None)
            .await;
        assert_error(s, &v, 404, "not_found");
    }
    assert_eq!(stored(&app, theirs).await.state, "failed");
    // The admin API retries the same way.
    let (s, v) = app
        .send(
            "POST",
            &format!("{ADMIN_BASE}/{}/deliveries/{theirs}/retry", id_of(&other)),
            &acc.admin,
            None,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(stored(&app, theirs).await.state, "pending");
}
