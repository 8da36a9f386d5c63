//! Audience sends: a broadcast to a segment of the account's contacts, expanded in the
//! background in chunks. The messages created equal the SQL ground truth (no contact twice,
//! none skipped), also when a chunk's transaction dies mid-way and when a process holding the
//! fan-out disappears; variables come from the contacts; suppressed contacts are rejected
//! `suppressed`; bad input gets clear errors.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use support::{assert_error, templates, validation_details, wait_until, Sender, TestApp};
use uuid::Uuid;

/// `n` contacts: every 5th tagged `vip`, every 7th `churned`, the rest `regular`; city Lisbon
/// for even numbers, Porto for odd; an `order_id` for all but every 1000th (from 10).
async fn seed_contacts(pool: &PgPool, account: &str, n: i64) {
    let account: Uuid = account.parse().expect("account id");
    sqlx::query(
        "INSERT INTO contacts (id, account_id, phone, name, tags, attributes)
         SELECT ezp_uuid7(), $1, '+1555' || lpad(i::text, 7, '0'), 'Name' || i,
                (CASE WHEN i % 5 = 0 THEN ARRAY['vip'] ELSE ARRAY['regular'] END)
                  || (CASE WHEN i % 7 = 0 THEN ARRAY['churned'] ELSE '{}'::text[] END),
                jsonb_build_object('city', CASE WHEN i % 2 = 0 THEN 'Lisbon' ELSE 'Porto' END)
                  || (CASE WHEN i % 1000 = 10 THEN '{}'::jsonb ELSE jsonb_build_object('order_id', 'ORD' || i) END)
           FROM generate_series(1, $2) AS i",
    )
    .bind(account)
    .bind(n)
    .execute(pool)
    .await
    .expect("seed contacts");
    sqlx::query(
        "INSERT INTO contact_attribute_keys (account_id, key) VALUES ($1, 'city'), ($1, 'order_id')
         ON CONFLICT DO NOTHING",
    )
    .bind(account)
    .execute(pool)
    .await
    .expect("attribute keys");
}

async fn suppress(pool: &PgPool, account: &str, phone: &str, scope: &str) {
    sqlx::query(
        "INSERT INTO suppressions (account_id, phone, reason, scope, source) VALUES ($1, $2, 'manual', $3, 'test')",
    )
    .bind(account.parse::<Uuid>().expect("account"))
    .bind(phone)
    .bind(scope)
    .execute(pool)
    .await
    .expect("suppress");
}

fn phone(i: i64) -> String {
    format!("+1555{i:07}")
}

/// Waits until the dispatch's fan-out has ended; returns its progress.
async fn expanded(app: &TestApp, key: &str, dispatch: &str) -> Value {
    let path = format!("/api/v1/dispatches/{dispatch}");
    wait_until("the fan-out to end", Duration::from_secs(60), || async {
        let (s, v) = app.get(&path, key).await;
        assert_eq!(s, 200, "{v}");
        v["audience"]["state"] != "expanding"
    })
    .await;
    app.get(&path, key).await.1
}

async fn message_phones(pool: &PgPool, dispatch: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT to_phone FROM messages WHERE dispatch_id = $1")
        .bind(dispatch.parse::<Uuid>().expect("dispatch"))
        .fetch_all(pool)
        .await
        .expect("messages")
}

/// Asserts two phone sets are equal, printing only their differences.
fn same(got: &HashSet<String>, want: &HashSet<String>, what: &str) {
    let extra: Vec<&String> = got.difference(want).take(5).collect();
    let missing: Vec<&String> = want.difference(got).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: {} messages, {} wanted; extra (first 5) {extra:?}, missing {missing:?}",
        got.len(),
        want.len()
    );
}

/// The ground truth: the account's contacts matching `cond` (SQL over `c`), minus those in
/// `minus`.
async fn truth(pool: &PgPool, account: &str, cond: &str) -> HashSet<String> {
    sqlx::query_scalar::<_, String>(&format!(
        "SELECT c.phone FROM contacts c WHERE c.account_id = $1 AND {cond}"
    ))
    .bind(account.parse::<Uuid>().expect("account"))
    .fetch_all(pool)
    .await
    .expect("truth")
    .into_iter()
    .collect()
}

async fn sender(app: &TestApp, template: Value) -> Sender {
    app.sender(template, Value::Null).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audience_send_queues_exactly_its_contacts_with_their_variables() {
    let app = TestApp::spawn_with(&[("AUDIENCE_CHUNK", "1000")]).await;
    let s = sender(&app, templates::text()).await;
    let pool = app.pool().await;
    seed_contacts(&pool, &s.account.id, 12_000).await;
    // In the audience: two suppressed for everything; one suppressed for marketing only (the
    // template is UTILITY, so it is sent).
    suppress(&pool, &s.account.id, &phone(2), "all").await;
    suppress(&pool, &s.account.id, &phone(4), "all").await;
    suppress(&pool, &s.account.id, &phone(6), "marketing").await;

    let body = json!({
        "audience": {"tags_none": ["churned"], "attributes": {"city": "Lisbon"}},
        "variables_from": {"body": ["{{contact.name|there}}", "{{attributes.order_id}}"]},
    });
    let v = app.send_broadcast(&s.key, &s.broadcast_id, body).await;
    assert_eq!(v["status"], "expanding", "{v}");
    let dispatch = v["dispatch_id"].as_str().expect("dispatch").to_string();
    let progress = expanded(&app, &s.key, &dispatch).await;

    let audience = truth(
        &pool,
        &s.account.id,
        "NOT (c.tags && '{churned}') AND c.attributes @> '{\"city\": \"Lisbon\"}'",
    )
    .await;
    let sendable = truth(
        &pool,
        &s.account.id,
        "NOT (c.tags && '{churned}') AND c.attributes @> '{\"city\": \"Lisbon\"}'
         AND c.attributes ? 'order_id' AND c.phone NOT IN ('+15550000002', '+15550000004')",
    )
    .await;
    let phones = message_phones(&pool, &dispatch).await;
    let distinct: HashSet<String> = phones.iter().cloned().collect();
    assert_eq!(phones.len(), distinct.len(), "a contact got two messages");
    same(&distinct, &sendable, "the messages are not the audience");
    assert!(
        distinct.contains(&phone(6)),
        "a marketing-only suppression blocks no utility template"
    );

    // Rejections: the two suppressed, and those without an order_id.
    let missing = audience.len() - sendable.len() - 2;
    assert!(missing > 0);
    assert_eq!(progress["rejected_by_code"]["suppressed"], 2, "{progress}");
    assert_eq!(
        progress["rejected_by_code"]["missing_variable"], missing,
        "{progress}"
    );
    assert_eq!(progress["total"], sendable.len(), "{progress}");
    assert_eq!(progress["audience_total"], audience.len(), "{progress}");
    assert_eq!(progress["audience"]["passed"], audience.len(), "{progress}");
    let (st, r) = app
        .get(
            &format!("/api/v1/dispatches/{dispatch}/rejections?limit=1000"),
            &s.key,
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let items = r["items"].as_array().expect("items");
    assert_eq!(items.len(), missing + 2);
    let suppressed: HashSet<&str> = items
        .iter()
        .filter(|i| i["code"] == "suppressed")
        .filter_map(|i| i["phone"].as_str())
        .collect();
    assert_eq!(suppressed, HashSet::from(["+15550000002", "+15550000004"]));

    // Every message carries its own contact's name and order id.
    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages m JOIN contacts c ON c.account_id = m.account_id AND c.phone = m.to_phone
          WHERE m.dispatch_id = $1
            AND (m.payload::jsonb #>> '{template,components,0,parameters,0,text}' IS DISTINCT FROM c.name
              OR m.payload::jsonb #>> '{template,components,0,parameters,1,text}' IS DISTINCT FROM c.attributes->>'order_id')",
    )
    .bind(dispatch.parse::<Uuid>().expect("dispatch"))
    .fetch_one(&pool)
    .await
    .expect("payload check");
    assert_eq!(wrong, 0, "a message's variables are not its contact's");
    // The key's usage counted what was queued.
    let used: i64 =
        sqlx::query_scalar("SELECT total_messages FROM api_key_usage WHERE key_id = $1")
            .bind(s.key_id.parse::<Uuid>().expect("key id"))
            .fetch_one(&pool)
            .await
            .expect("usage");
    assert_eq!(used as usize, sendable.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_survives_a_dying_chunk_and_a_vanished_process() {
    // The first api takes the send but expands nothing (as if it died right after answering).
    let app = TestApp::spawn_with(&[("AUDIENCE_EXPANDERS", "0"), ("AUDIENCE_CHUNK", "1000")]).await;
    let s = sender(&app, templates::text()).await;
    let pool = app.pool().await;
    seed_contacts(&pool, &s.account.id, 40_000).await;
    let body = json!({
        "audience": {"tags_any": ["vip", "churned"]},
        "variables_from": {"body": ["{{contact.name}}", "{{attributes.order_id|none}}"]},
    });
    let v = app.send_broadcast(&s.key, &s.broadcast_id, body).await;
    let dispatch: Uuid = v["dispatch_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    // A process that claimed it and vanished: its lease runs for 2 more seconds.
    sqlx::query(
        "UPDATE dispatch_audiences SET lease_token = $2, lease_until = now() + interval '2 seconds' WHERE dispatch_id = $1",
    )
    .bind(dispatch)
    .bind(Uuid::now_v7())
    .execute(&pool)
    .await
    .expect("dead lease");

    // A second api process takes it over once the lease expires.
    let second = app.replica_with(&[("AUDIENCE_EXPANDERS", "1")]).await;
    // Kill chunk transactions mid-insert a few times (as a crash would): they roll back and
    // the fan-out resumes from the last committed cursor.
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .expect("db");
    let mut killed = 0;
    for _ in 0..4000 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
                AND state IN ('active', 'idle in transaction')",
        )
        .bind(&db)
        .fetch_one(&pool)
        .await
        .expect("terminate");
        killed += n;
        if killed >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(killed >= 1, "no chunk transaction was caught to kill");
    let progress = expanded(&second, &s.key, &dispatch.to_string()).await;

    let want = truth(&pool, &s.account.id, "c.tags && '{vip,churned}'").await;
    let phones = message_phones(&pool, &dispatch.to_string()).await;
    let distinct: HashSet<String> = phones.iter().cloned().collect();
    assert_eq!(phones.len(), distinct.len(), "a contact got two messages");
    same(&distinct, &want, "contacts were skipped or added");
    assert_eq!(progress["total"], want.len(), "{progress}");
    assert_eq!(progress["rejected"], 0, "{progress}");
    let slices: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch_audiences WHERE dispatch_id = $1")
            .bind(dispatch)
            .fetch_one(&pool)
            .await
            .expect("slices");
    assert!(slices > 1, "the audience was expanded as {slices} slice(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_sends_refuse_bad_input_clearly() {
    let app = TestApp::spawn().await;
    let s = sender(&app, templates::text()).await;
    let pool = app.pool().await;
    seed_contacts(&pool, &s.account.id, 50).await;
    let path = format!("/api/v1/broadcasts/{}/send", s.broadcast_id);
    let vars = json!({"body": ["{{contact.name}}", "{{attributes.order_id|-}}"]});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"audience": {}, "variables_from": vars}), "audience"),
        (
            json!({"audience": {"tags_some": ["vip"]}, "variables_from": vars}),
            "audience",
        ),
        (
            json!({"audience": {"tags_all": "vip"}, "variables_from": vars}),
            "audience.tags_all",
        ),
        (
            json!({"audience": {"tags_all": ["vip*"]}, "variables_from": vars}),
            "audience.tags_all[0]",
        ),
        (
            json!({"audience": {"tags_all": ["!vip"]}, "variables_from": vars}),
            "audience.tags_all[0]",
        ),
        (
            json!({"audience": {"tags_any": [""]}, "variables_from": vars}),
            "audience.tags_any[0]",
        ),
        (
            json!({"audience": {"attributes": {"city": ["Lisbon"]}}, "variables_from": vars}),
            "audience.attributes.city",
        ),
        (
            json!({"audience": {"all": true, "tags_any": ["vip"]}, "variables_from": vars}),
            "audience.all",
        ),
        (
            json!({"audience": {"contact_ids": ["not-a-uuid"]}, "variables_from": vars}),
            "audience.contact_ids",
        ),
        (
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": {"body": ["{{contact.nickname}}", "x"]}}),
            "variables_from",
        ),
        (
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": {"body": ["{{attributes.shoe_size}}", "x"]}}),
            "variables_from",
        ),
        (
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": {"body": ["{{contact.name"]}}),
            "variables_from",
        ),
        // Wrong parameter count for the template (it takes two).
        (
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": {"body": ["{{contact.name}}"]}}),
            "variables_from",
        ),
        (
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": {"body": ["a", "b", "c"]}}),
            "variables_from",
        ),
        // No variables for a template with parameters and no defaults.
        (json!({"audience": {"tags_any": ["vip"]}}), "variables_from"),
        (
            json!({"audience": {"tags_any": ["vip"]}, "recipients": [{"to": "+15550000001"}], "variables_from": vars}),
            "recipients",
        ),
        (
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": vars, "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in cases {
        let (st, v) = app.post(&path, &s.key, body.clone()).await;
        let details = validation_details(st, &v);
        assert!(
            details
                .iter()
                .any(|d| d["field"].as_str().is_some_and(|f| f.starts_with(field))),
            "{body}: expected a detail on {field}: {v}"
        );
    }
    // Malformed JSON.
    let (st, v) = app
        .send_raw_json(
            "POST",
            &path,
            &s.key,
            b"{\"audience\": {\"tags_any\": [\"vip\"]".to_vec(),
        )
        .await;
    assert_error(st, &v, 422, "validation_failed");
    // No contact matches.
    let (st, v) = app
        .post(
            &path,
            &s.key,
            json!({"audience": {"tags_any": ["nobody-has-this"]}, "variables_from": vars}),
        )
        .await;
    assert_error(st, &v, 422, "empty_audience");
    // Without contacts:read_all: 403 naming it.
    let k = app
        .scoped_key(&s.account.admin, &["broadcast:send", "contacts:read"])
        .await;
    let (st, v) = app
        .post(
            &path,
            &k,
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": vars}),
        )
        .await;
    assert_error(st, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "contacts:read_all", "{v}");
    // Another account's contacts are never in an audience: its own has none tagged `vip`.
    let other = app.account("Other").await;
    let o = app.sender_in(other, templates::text(), Value::Null).await;
    let (st, v) = app
        .post(
            &format!("/api/v1/broadcasts/{}/send", o.broadcast_id),
            &o.key,
            json!({"audience": {"tags_any": ["vip"]}, "variables_from": {"body": ["a", "b"]}}),
        )
        .await;
    assert_error(st, &v, 422, "empty_audience");
    // Nothing was recorded by any of these.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatches")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audience_sends_are_idempotent_cancellable_and_drop_suppressed_list_recipients() {
    let app = TestApp::spawn_with(&[("AUDIENCE_EXPANDERS", "0")]).await;
    let s = sender(&app, templates::media_buttons()).await;
    let pool = app.pool().await;
    seed_contacts(&pool, &s.account.id, 100).await;
    let path = format!("/api/v1/broadcasts/{}/send", s.broadcast_id);
    let vars = json!({"header": {"type": "image", "link": "https://cdn.example.com/a.jpg"},
                      "body": ["{{contact.name}}", "10%"],
                      "buttons": [{"index": 1, "text": "sale"}, {"index": 2, "coupon_code": "SAVE10"}]});
    let body = json!({"audience": {"tags_all": ["vip"]}, "variables_from": vars});
    let headers = [
        ("idempotency-key", "aud-1"),
        ("content-type", "application/json"),
    ];
    let raw = serde_json::to_vec(&body).expect("body");
    let (s1, v1) = support::status_json(
        app.request_with("POST", &path, &s.key, &headers, Some(raw.clone()))
            .await,
    )
    .await;
    let (s2, v2) = support::status_json(
        app.request_with("POST", &path, &s.key, &headers, Some(raw))
            .await,
    )
    .await;
    assert_eq!((s1, s2), (202, 202), "{v1} {v2}");
    assert_eq!(v1["dispatch_id"], v2["dispatch_id"]);
    let dispatch = v1["dispatch_id"].as_str().expect("id").to_string();
    // Cancelled before any chunk ran: the fan-out stops and nothing is queued.
    let (st, v) = app
        .post(
            &format!("/api/v1/dispatches/{dispatch}/cancel"),
            &s.key,
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "cancelled", "{v}");
    let second = app.replica_with(&[("AUDIENCE_EXPANDERS", "1")]).await;
    let _ = expanded(&second, &s.key, &dispatch).await;
    let (_, v) = app
        .get(&format!("/api/v1/dispatches/{dispatch}"), &s.key)
        .await;
    assert_eq!(v["audience"]["state"], "cancelled", "{v}");
    assert!(message_phones(&pool, &dispatch).await.is_empty());

    // A recipient list drops suppressed phones for a MARKETING template, marketing scope too.
    suppress(&pool, &s.account.id, &phone(1), "marketing").await;
    suppress(&pool, &s.account.id, &phone(3), "all").await;
    let mut list = json!({"recipients": [
        {"to": phone(1)}, {"to": phone(2)}, {"to": phone(3)},
    ]});
    for r in list["recipients"].as_array_mut().expect("array") {
        r["variables"] = vars.clone();
        r["variables"]["body"] = json!(["Ann", "10%"]);
    }
    let v = app.send_broadcast(&s.key, &s.broadcast_id, list).await;
    assert_eq!(v["accepted"], 1, "{v}");
    let codes: Vec<(&str, &str)> = v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["to"].as_str().unwrap_or(""),
                r["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("+15550000001", "suppressed"),
            ("+15550000003", "suppressed")
        ]
    );
    let d = v["dispatch_id"].as_str().expect("id");
    let (_, p) = app.get(&format!("/api/v1/dispatches/{d}"), &s.key).await;
    assert_eq!(p["rejected_by_code"]["suppressed"], 2, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expanders_take_turns_between_accounts() {
    // Nothing expands until both tenants' sends are in; then one expander does all the work.
    let app = TestApp::spawn_with(&[("AUDIENCE_EXPANDERS", "0"), ("AUDIENCE_CHUNK", "100")]).await;
    let big = sender(&app, templates::text()).await;
    let other = app.account("Small").await;
    let small = app.sender_in(other, templates::text(), Value::Null).await;
    let pool = app.pool().await;
    seed_contacts(&pool, &big.account.id, 2_000).await;
    seed_contacts(&pool, &small.account.id, 2_000).await;
    let body = json!({"audience": {"all": true},
                      "variables_from": {"body": ["{{contact.name}}", "{{attributes.order_id|-}}"]}});
    for _ in 0..4 {
        app.send_broadcast(&big.key, &big.broadcast_id, body.clone())
            .await;
    }
    let v = app
        .send_broadcast(&small.key, &small.broadcast_id, body)
        .await;
    let small_dispatch = v["dispatch_id"].as_str().expect("id").to_string();
    let worker = app.replica_with(&[("AUDIENCE_EXPANDERS", "1")]).await;
    let _ = expanded(&worker, &small.key, &small_dispatch).await;
    let passed = |account: &str| {
        let account: Uuid = account.parse().expect("account");
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COALESCE(sum(passed), 0) FROM dispatch_audiences WHERE account_id = $1",
            )
            .bind(account)
            .fetch_one(&pool)
            .await
            .expect("passed")
        }
    };
    let (small_done, big_done) = (
        passed(&small.account.id).await,
        passed(&big.account.id).await,
    );

    assert_eq!(small_done, 2_000);
    // Turns between accounts: the four big sends together got about as many chunks as the
    // small one while it waited, not four times as many (8,000). The slack covers the splits
    // and the chunks the expander runs between the small one's end and these reads.
    assert!(
        big_done <= small_done + 8 * 100,
        "the big account passed {big_done} contacts while the small one passed {small_done}"
    );
}

/// A scheduled audience send expands at once, in slices, into `scheduled` messages, queues
/// none of them, and leaves its release due at `scheduled_at` (pushed once a slice is done
/// and stored as done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_audience_send_expands_its_messages_scheduled_and_leaves_its_release_due() {
    let app = TestApp::spawn_with(&[("AUDIENCE_CHUNK", "50")]).await;
    let s = sender(&app, templates::text()).await;
    let pool = app.pool().await;
    seed_contacts(&pool, &s.account.id, 5_000).await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let vars = json!({"body": ["{{contact.name}}", "{{attributes.order_id|none}}"]});
    let (st, v) = app
        .post(
            &format!("/api/v1/broadcasts/{}/send", s.broadcast_id),
            &s.key,
            json!({"audience": {"tags_all": ["vip"]}, "variables_from": vars, "scheduled_at": at}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let dispatch = v["dispatch_id"].as_str().expect("id").to_string();
    let v = expanded(&app, &s.key, &dispatch).await;
    let want = truth(&pool, &s.account.id, "'vip' = ANY(c.tags)").await;
    assert_eq!(v["status"], "scheduled", "{v}");
    assert_eq!(v["audience"]["state"], "done", "{v}");
    assert_eq!(v["audience"]["audience_total"], want.len(), "{v}");
    assert_eq!(v["total"], want.len(), "{v}");
    let got: HashSet<String> = message_phones(&pool, &dispatch).await.into_iter().collect();
    same(&got, &want, "scheduled audience");
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status FROM messages WHERE dispatch_id = $1")
            .bind(dispatch.parse::<Uuid>().expect("dispatch"))
            .fetch_all(&pool)
            .await
            .expect("statuses");
    assert_eq!(statuses, ["scheduled"]);
    let slices: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dispatch_audiences WHERE dispatch_id = $1")
            .bind(dispatch.parse::<Uuid>().expect("dispatch"))
            .fetch_one(&pool)
            .await
            .expect("slices");
    assert!(
        slices > 1,
        "a 1,000-contact audience in chunks of 50 is split: {slices}"
    );
    let sends = app.send_queue().await.stats().await.expect("send stats");
    assert_eq!(sends.depth, 0, "nothing is queued before scheduled_at");
    let config = app.config();
    let releases = ezpulze_runtime::queues::connect::<ezpulze_common::jobs::ReleaseJob>(
        &config,
        ezpulze_runtime::queues::schedule(&config),
    )
    .await
    .expect("schedule queue");
    let q = releases.stats().await.expect("schedule stats");
    assert!(
        q.delayed >= 1 && q.depth == 0,
        "the release waits for scheduled_at: {q:?}"
    );
}
