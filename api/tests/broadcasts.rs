//! Templates, broadcasts and the send ingest path: validation, recording, queueing,
//! idempotency, scheduling, dispatch progress, the example generator, scopes and isolation.

mod support;

use ezpulze_testkit::send_jobs::SendJobs;
use serde_json::{json, Value};
use support::{acme, assert_error, status_json, templates, TestApp};

struct Fixture {
    app: TestApp,
    admin: String,
    key: String,
    key_id: String,
    broadcast: String,
}

async fn fixture(template: Value, defaults: Value) -> Fixture {
    fixture_with(&[], template, defaults).await
}

async fn fixture_with(extra: &[(&str, &str)], template: Value, defaults: Value) -> Fixture {
    let app = TestApp::spawn_with(extra).await;
    let s = app.sender(template, defaults).await;
    Fixture {
        admin: s.account.admin,
        key: s.key,
        key_id: s.key_id,
        broadcast: s.broadcast_id,
        app,
    }
}

impl Fixture {
    /// The path that sends the fixture's broadcast.
    fn send_path(&self) -> String {
        format!("/api/v1/broadcasts/{}/send", self.broadcast)
    }

    /// Asserts that a bodiless POST of the fixture's key to `path` answers 409 `conflict`;
    /// returns the error body.
    async fn post_conflicts(&self, path: &str) -> Value {
        let (s, v) = self.app.send("POST", path, &self.key, None).await;
        assert_error(s, &v, 409, "conflict");
        v
    }
}

/// How many message rows there are.
async fn count_messages(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(pool)
        .await
        .expect("count")
}

/// One pass of the scheduler's outbox sweep (rows older than a minute); returns how many
/// messages it pushed again.
async fn sweep(pool: &sqlx::PgPool, q: &SendJobs) -> usize {
    let stale = std::time::Duration::from_secs(60);
    ezpulze_scheduler::outbox::repush_stale(pool, &q.lanes, stale, 1000)
        .await
        .expect("sweep")
}

async fn queue(app: &TestApp) -> SendJobs {
    app.send_queue().await
}

#[tokio::test]
async fn template_definitions_are_validated_and_managed() {
    let (app, acc) = acme().await;
    let (s, t) = app
        .post("/api/v1/templates", &acc.admin, templates::text())
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["name"], "order_update");
    assert_eq!(t["status"], "APPROVED");
    let id = t["id"].as_str().expect("id");
    let (s, v) = app
        .post("/api/v1/templates", &acc.admin, templates::text())
        .await;
    assert_error(s, &v, 409, "conflict");
    let bad = [
        json!({"name": "Bad Name", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}]}),
        json!({"name": "t", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "x".repeat(1025)}]}),
        json!({"name": "t", "language": "en", "category": "UTILITY", "components": [{"type": "HEADER", "format": "TEXT", "text": "x".repeat(61)}, {"type": "BODY", "text": "x"}]}),
        json!({"name": "t", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "{{1}} and {{3}}"}]}),
        json!({"name": "t", "language": "en", "category": "SPAM", "components": [{"type": "BODY", "text": "x"}]}),
        json!({"name": "t", "language": "en", "category": "UTILITY", "components": [{"type": "BODY", "text": "x"}], "colour": 1}),
        json!({"name": 5}),
        json!([1, 2]),
    ];
    for b in bad {
        let (s, v) = app.post("/api/v1/templates", &acc.admin, b.clone()).await;
        assert_error(s, &v, 422, "validation_failed");
    }
    let (_, list) = app.get("/api/v1/templates", &acc.admin).await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "nothing else was stored"
    );
    let tp = format!("/api/v1/templates/{id}");
    let req = json!({"category": "MARKETING"});
    let (s, p) = app.patch(&tp, &acc.admin, req).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["category"], "MARKETING");
    let (s, v) = app.patch(&tp, &acc.admin, json!({"components": []})).await;
    assert_error(s, &v, 422, "validation_failed");
    let (s, _) = app.delete(&tp, &acc.admin).await;
    assert_eq!(s, 204);
    let (s, v) = app.get(&tp, &acc.admin).await;
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn send_accepts_valid_recipients_rejects_the_rest_and_records_and_queues() {
    let f = fixture(
        templates::media_buttons(),
        json!({"header": {"type": "image", "link": "https://cdn.example.com/saved.jpg"}}),
    )
    .await;
    let app = &f.app;
    let body = json!({"recipients": [
        {"to": "+1 (415) 555-0101", "ref": "c-1", "variables": {"body": ["Ann", "10%"], "buttons": [{"index": 0, "payload": "stop"}, {"index": 1, "text": "sale"}, {"index": 2, "coupon_code": "SAVE10"}]}},
        {"to": "not a phone", "variables": {"body": ["B", "5%"]}},
        {"to": "+14155550101", "variables": {"body": ["dup", "1%"]}},
        {"to": "+14155550102", "variables": {"body": ["only one"]}},
        {"to": "+14155550103", "variables": {"body": ["C", "5%", "extra"]}},
        {"to": "+14155550104", "variables": {"header": {"type": "video", "link": "https://cdn.example.com/v.mp4"}, "body": ["D", "5%"], "buttons": [{"index": 0, "payload": "stop"}, {"index": 1, "text": "x"}, {"index": 2, "coupon_code": "SAVE10"}]}},
        {"to": "+14155550105", "ref": "c-6", "variables": {"body": ["E\nnew\tline", "5%"], "buttons": [{"index": 0, "payload": "stop"}, {"index": 1, "text": "sale"}, {"index": 2, "coupon_code": "SAVE10"}]}}
    ]});
    let route = f.send_path();
    let (s, r) = app.post(&route, &f.key, body).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["accepted"], 2, "{r}");
    assert_eq!(r["status"], "queued");
    let rejected: Vec<(u64, &str)> = r["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|x| {
            (
                x["index"].as_u64().unwrap_or(99),
                x["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        rejected.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "{r}"
    );
    assert_eq!(rejected[0].1, "invalid_phone");
    assert_eq!(rejected[1].1, "duplicate_recipient");
    assert!(r["rejected"][2]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let messages = r["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["index"], 0);
    assert_eq!(messages[0]["ref"], "c-1");
    assert_eq!(messages[1]["index"], 6);

    // Rows recorded with the exact Graph API body; one job each on the queue.
    let pool = app.pool().await;
    let rows: Vec<(uuid::Uuid, String, Value, String)> =
        sqlx::query_as("SELECT id, to_phone, payload::jsonb, status FROM messages ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1, "+14155550101");
    let p = &rows[0].2;
    assert_eq!(p["messaging_product"], "whatsapp");
    assert_eq!(p["to"], "14155550101");
    assert_eq!(p["type"], "template");
    assert_eq!(p["template"]["name"], "promo_image");
    assert_eq!(
        p["biz_opaque_callback_data"],
        rows[0].0.simple().to_string()
    );
    assert!(
        p.to_string().contains("https://cdn.example.com/saved.jpg"),
        "saved media from the broadcast's defaults: {p}"
    );
    assert!(
        !rows[1].2.to_string().contains("\\n"),
        "text flattened: {}",
        rows[1].2
    );
    let stats = queue(app).await.stats().await.expect("stats");
    assert_eq!(stats.depth, 2, "{stats:?}");

    // Usage counts the key's Broadcast API sends; the admin UI's sends are not counted.
    let route = format!("/admin/v1/api-keys/{}/usage", f.key_id);
    let (_, u) = app.get(&route, &f.admin).await;
    assert_eq!(u["total_messages"], 2);
    assert!(u["last_message_at"].is_string());
    let (s, _) = app.post(&f.send_path(), &f.admin, json!({"recipients": [{"to": "+14155550199", "variables": {"body": ["Z", "1%"], "buttons": [{"index": 0, "payload": "p"}, {"index": 1, "text": "t"}, {"index": 2, "coupon_code": "C"}]}}]})).await;
    assert_eq!(s, 202);
    let (_, u) = app.get(&route, &f.admin).await;
    assert_eq!(u["total_messages"], 2);

    // Progress, listing, lookup.
    let d = r["dispatch_id"].as_str().expect("dispatch");
    let (s, pr) = app.get(&format!("/api/v1/dispatches/{d}"), &f.key).await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            pr["status"].as_str(),
            pr["total"].as_i64(),
            pr["queued"].as_i64()
        ),
        (Some("queued"), Some(2), Some(2))
    );
    let route = format!("/api/v1/dispatches/{d}/messages?limit=1");
    let (_, page1) = app.get(&route, &f.key).await;
    let cursor = page1["next_cursor"].as_str().expect("cursor");
    let route = format!("/api/v1/dispatches/{d}/messages?limit=1&cursor={cursor}");
    let (_, page2) = app.get(&route, &f.key).await;
    assert_ne!(page1["items"][0]["id"], page2["items"][0]["id"]);
    let route = format!(
        "/api/v1/dispatches/{d}/messages?limit=1&cursor={}",
        page2["next_cursor"].as_str().expect("c")
    );
    let (_, page3) = app.get(&route, &f.key).await;
    assert_eq!(page3["items"].as_array().map(Vec::len), Some(0));
    let route = format!("/api/v1/dispatches/{d}/messages?cursor=zzz");
    let (s, v) = app.get(&route, &f.key).await;
    assert_error(s, &v, 422, "validation_failed");
    let route = format!(
        "/api/v1/messages/{}",
        messages[0]["id"].as_str().expect("id")
    );
    let (s, m) = app.get(&route, &f.key).await;
    assert_eq!(s, 200);
    assert_eq!(m["status"], "queued");
    assert_eq!(m["ref"], "c-1");

    // Cancel: queued messages stop, and their jobs leave their number's lane.
    let jobs = queue(app).await;
    let id: uuid::Uuid = d.parse().expect("uuid");
    let lane_jobs = || async {
        let routes = ezpulze_runtime::send_lanes::SendLanes::routes(&app.pool().await, &[id])
            .await
            .expect("routes");
        let lane = routes[&id].lane.clone();
        jobs.lanes
            .lanes()
            .counts(&lane, &[&ezpulze_runtime::send_lanes::group(id)])
            .await
            .expect("counts")[0]
    };
    assert_eq!(lane_jobs().await, 2, "one job per message in the lane");
    let cancel = format!("/api/v1/dispatches/{d}/cancel");
    let (s, c) = app.send("POST", &cancel, &f.key, None).await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["cancelled"], 2);
    assert_eq!(lane_jobs().await, 0, "the cancel purged the lane");
    f.post_conflicts(&cancel).await;
}

#[tokio::test]
async fn priority_is_normal_or_high_and_high_goes_to_the_high_ring() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let one = json!({"to": "+14155550100", "variables": {"body": ["A", "1"]}});
    for bad in [json!("urgent"), json!(1), json!(null), json!(["high"])] {
        let (s, v) = app
            .post(
                &f.send_path(),
                &f.key,
                json!({"recipients": [one.clone()], "priority": bad}),
            )
            .await;
        assert_error(s, &v, 422, "validation_failed");
    }
    let (s, v) = app
        .post(
            &f.send_path(),
            &f.key,
            json!({"recipients": [one.clone()], "priority": "high"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    let high: uuid::Uuid = v["dispatch_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let (s, v) = app
        .post(&f.send_path(), &f.key, json!({"recipients": [{"to": "+14155550101", "variables": {"body": ["A", "1"]}}], "priority": "normal"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let normal: uuid::Uuid = v["dispatch_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let pool = app.pool().await;
    let routes = ezpulze_runtime::send_lanes::SendLanes::routes(&pool, &[high, normal])
        .await
        .expect("routes");
    assert!(routes[&high].high && !routes[&normal].high, "{routes:?}");
    // Read from the lane: the high-priority message comes first though it was pushed first
    // anyway; push order reversed by a second normal dispatch shows the ring decides.
    let (s, v) = app
        .post(&f.send_path(), &f.key, json!({"recipients": [{"to": "+14155550102", "variables": {"body": ["A", "1"]}}], "priority": "high"}))
        .await;
    assert_eq!(s, 202, "{v}");
    let high2: uuid::Uuid = v["dispatch_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let jobs = queue(app).await;
    let taken = jobs
        .lanes
        .lanes()
        .take(
            &routes[&high].lane,
            ezpulze_queue::TakeLimits {
                interval: std::time::Duration::from_micros(1),
                max: 2,
                horizon: std::time::Duration::from_secs(1),
                bulk_every: 5,
            },
        )
        .await
        .expect("take");
    let groups: Vec<String> = taken.items.iter().map(|i| i.group().to_owned()).collect();
    assert_eq!(
        groups,
        [
            ezpulze_runtime::send_lanes::group(high),
            ezpulze_runtime::send_lanes::group(high2)
        ],
        "both high-priority messages before the normal one"
    );
}

#[tokio::test]
async fn send_bad_input_is_refused_and_nothing_is_half_written() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let path = f.send_path();
    let one = |to: &str| json!({"to": to, "variables": {"body": ["A", "1"]}});
    // None valid -> 422 listing every recipient.
    let (s, v) = app.post(&path, &f.key, json!({"recipients": [one("abc"), {"to": "+14155550100", "variables": {"body": ["A"]}}]})).await;
    assert_error(s, &v, 422, "validation_failed");
    assert_eq!(v["error"]["details"].as_array().map(Vec::len), Some(2));
    // 10,001 recipients.
    let many: Vec<Value> = (0..10_001)
        .map(|i| one(&format!("+1415{:07}", i)))
        .collect();
    let (s, v) = app.post(&path, &f.key, json!({"recipients": many})).await;
    assert_error(s, &v, 422, "validation_failed");
    // Wrong types, unknown fields, empty list, malformed JSON, invalid UTF-8, huge body.
    for b in [
        json!({"recipients": "all"}),
        json!({"recipients": [one("+14155550100")], "priority": 1}),
        json!({"recipients": [one("+14155550100")], "priority": "urgent"}),
        json!({"recipients": [one("+14155550100")], "urgency": "high"}),
        json!({"recipients": []}),
        json!({"recipients": [{"to": 14155550100u64}]}),
        json!({"recipients": [{"to": "+14155550100", "variables": {"body": ["A", "1"], "colour": 1}}]}),
    ] {
        let (s, v) = app.post(&path, &f.key, b.clone()).await;
        assert!(s == 422 || s == 202, "{b}");
        if s == 422 {
            assert_error(s, &v, 422, "validation_failed");
        } else {
            assert_eq!(v["accepted"], 0, "{b} {v}");
        }
    }
    for raw in [b"{\"recipients\": [".to_vec(), vec![b'{', 0xff, 0xfe, b'}']] {
        let (s, v) = app.send_raw_json("POST", &path, &f.key, raw).await;
        assert_error(s, &v, 422, "validation_failed");
    }
    let big = vec![b' '; 50 * 1024 * 1024];
    let r = app
        .client
        .post(app.url(&path))
        .bearer_auth(&f.key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    if let Ok(r) = r {
        let (s, v) = status_json(r).await;
        assert_error(s, &v, 413, "payload_too_large");
    }
    // Unknown and foreign broadcasts.
    let req = json!({"recipients": [one("+14155550100")]});
    let (s, v) = app
        .post(
            "/api/v1/broadcasts/0190a3f0-0000-7000-8000-000000000000/send",
            &f.key,
            req,
        )
        .await;
    assert_error(s, &v, 404, "not_found");
    let other = app.account("Other").await;
    let req = json!({"recipients": [one("+14155550100")]});
    let (s, v) = app.post(&path, &other.admin, req).await;
    assert_error(s, &v, 404, "not_found");
    let pool = app.pool().await;
    let (d, m): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM dispatches), (SELECT count(*) FROM messages)")
            .fetch_one(&pool)
            .await
            .expect("counts");
    assert_eq!((d, m), (0, 0), "nothing recorded");
    assert_eq!(
        queue(app).await.stats().await.expect("stats").depth,
        0,
        "nothing queued"
    );
}

#[tokio::test]
async fn idempotency_key_replays_and_conflicts() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let url = app.url(&f.send_path());
    let body = json!({"recipients": [{"to": "+14155550100", "variables": {"body": ["A", "1"]}}]});
    let send = |b: Value| {
        app.client
            .post(&url)
            .bearer_auth(&f.key)
            .header("Idempotency-Key", "order-77")
            .json(&b)
            .send()
    };
    let r1 = send(body.clone()).await.expect("send");
    assert_eq!(r1.status(), 202);
    assert!(r1.headers().get("idempotent-replayed").is_none());
    let v1: Value = r1.json().await.expect("json");
    let r2 = send(body.clone()).await.expect("send");
    assert_eq!(r2.status(), 202);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    let v2: Value = r2.json().await.expect("json");
    assert_eq!(v1, v2);
    let r3 =
        send(json!({"recipients": [{"to": "+14155550101", "variables": {"body": ["B", "2"]}}]}))
            .await
            .expect("send");
    let s = r3.status().as_u16();
    let v3: Value = r3.json().await.expect("json");
    assert_error(s, &v3, 409, "idempotency_conflict");
    let pool = app.pool().await;
    let n = count_messages(&pool).await;
    assert_eq!(n, 1, "replays record nothing");
    // A failed request does not burn the key.
    let r4 = app
        .client
        .post(&url)
        .bearer_auth(&f.key)
        .header("Idempotency-Key", "order-78")
        .json(&json!({"recipients": []}))
        .send()
        .await
        .expect("send");
    assert_eq!(r4.status(), 422);
    let r5 = app
        .client
        .post(&url)
        .bearer_auth(&f.key)
        .header("Idempotency-Key", "order-78")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r5.status(), 202);
}

/// Redis failing for the idempotency bookkeeping after the work was committed and queued
/// (here: a Redis user that may not run `SETEX` or `DEL`) neither answers 500 for the
/// recorded dispatch nor locks the key: the retry gets the same response at once.
#[tokio::test]
async fn idempotency_bookkeeping_failures_never_fail_done_work_or_lock_the_key() {
    let user = format!("ezp_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let admin = redis::Client::open(support::redis_url()).expect("redis");
    let mut conn = admin
        .get_multiplexed_async_connection()
        .await
        .expect("redis conn");
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER", &user, "on", ">pw", "~*", "&*", "+@all", "-setex", "-del",
            ][..],
        )
        .query_async(&mut conn)
        .await
        .expect("acl setuser");
    let base = support::redis_url();
    let url_with_user = base.replacen("redis://", &format!("redis://{user}:pw@"), 1);
    let f = fixture_with(
        &[("REDIS_URL", &url_with_user)],
        templates::text(),
        json!({}),
    )
    .await;
    let app = &f.app;
    let url = app.url(&f.send_path());
    let body = json!({"recipients": [{"to": "+14155550100", "variables": {"body": ["A", "1"]}}]});
    let send = || {
        app.client
            .post(&url)
            .bearer_auth(&f.key)
            .header("Idempotency-Key", "order-90")
            .json(&body)
            .send()
    };
    let r1 = send().await.expect("send");
    assert_eq!(r1.status(), 202, "work that was done is not a 500");
    let v1: Value = r1.json().await.expect("json");
    let r2 = send().await.expect("send");
    assert_eq!(r2.status(), 202, "the key is not locked");
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    let v2: Value = r2.json().await.expect("json");
    assert_eq!(v1, v2);
    let pool = app.pool().await;
    let n = count_messages(&pool).await;
    assert_eq!(n, 1, "sent once");
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("ezpulze_idempotency_bookkeeping_failures_total{step=\"release\"}"),
        "the failed release is counted"
    );
    let _: () = redis::cmd("ACL")
        .arg(&["DELUSER", &user][..])
        .query_async(&mut conn)
        .await
        .expect("acl deluser");
}

#[tokio::test]
async fn scheduled_dispatches_wait_and_the_outbox_repairs_missing_jobs() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let route = f.send_path();
    let req = json!({"scheduled_at": at, "recipients": [{"to": "+14155550100", "variables": {"body": ["A", "1"]}}]});
    let (s, r) = app.post(&route, &f.key, req).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["status"], "scheduled");
    let q = queue(app).await;
    assert_eq!(
        q.stats().await.expect("stats").depth,
        0,
        "a scheduled dispatch is not queued yet"
    );

    // A crash between commit and push: rows committed as queued, no job. The sweep pushes them.
    let (s, r) = app.post(&f.send_path(), &f.key, json!({"recipients": [{"to": "+14155550101", "variables": {"body": ["B", "1"]}}, {"to": "+14155550102", "variables": {"body": ["C", "1"]}}]})).await;
    assert_eq!(s, 202);
    q.purge().await.expect("purge");
    assert_eq!(q.stats().await.expect("stats").depth, 0);
    let pool = app.pool().await;
    let fresh = sweep(&pool, &q).await;
    assert_eq!(fresh, 0, "recent rows are left alone");
    sqlx::query(
        "UPDATE messages SET updated_at = now() - interval '10 minutes' WHERE dispatch_id = $1",
    )
    .bind(
        r["dispatch_id"]
            .as_str()
            .expect("id")
            .parse::<uuid::Uuid>()
            .expect("uuid"),
    )
    .execute(&pool)
    .await
    .expect("age");
    let pushed = sweep(&pool, &q).await;
    assert_eq!(pushed, 2);
    assert_eq!(q.stats().await.expect("stats").depth, 2);
    // Stale again, but its lane holds its jobs (a capped number's backlog waits there for
    // longer than the timeout): nothing is pushed twice.
    sqlx::query(
        "UPDATE messages SET updated_at = now() - interval '10 minutes' WHERE status = 'queued'",
    )
    .execute(&pool)
    .await
    .expect("age");
    assert_eq!(sweep(&pool, &q).await, 0, "the lane still holds them");
    assert_eq!(q.stats().await.expect("stats").depth, 2);
}

#[tokio::test]
async fn a_paused_dispatch_resumes_and_its_queued_messages_are_queued_again() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let (s, r) = app.post(&f.send_path(), &f.key, json!({"recipients": [{"to": "+14155550101", "variables": {"body": ["B", "1"]}}, {"to": "+14155550102", "variables": {"body": ["C", "1"]}}]})).await;
    assert_eq!(s, 202, "{r}");
    let d = r["dispatch_id"].as_str().expect("id").to_string();
    let path = format!("/api/v1/dispatches/{d}/resume");

    // Not paused: nothing to resume.
    f.post_conflicts(&path).await;

    // A worker halted it (say, an expired token): paused, its jobs gone with the halt.
    let pool = app.pool().await;
    let id: uuid::Uuid = d.parse().expect("uuid");
    sqlx::query("UPDATE dispatches SET status = 'paused' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("pause");
    let q = queue(app).await;
    q.purge().await.expect("purge");

    // Only a key that may send can resume it; another account cannot see it.
    let spec = json!({"name": "reader", "scope_group": "read_only", "rate_limit_per_hour": null});
    let reader = app.create_key(&f.admin, spec).await;
    let (s, v) = app
        .send("POST", &path, reader["key"].as_str().expect("key"), None)
        .await;
    assert_error(s, &v, 403, "insufficient_scope");
    let other = app.account("Other").await;
    let (s, v) = app.send("POST", &path, &other.admin, None).await;
    assert_error(s, &v, 404, "not_found");
    assert_eq!(q.stats().await.expect("stats").depth, 0);

    // An integrator endpoint hears the resume.
    app.webhook_endpoint(
        &f.admin,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["dispatch.resumed"]}),
    )
    .await;
    let (s, v) = app.send("POST", &path, &f.key, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "sending");
    assert_eq!(v["queued"], 2, "{v}");
    let resumed: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT body FROM webhook_deliveries WHERE event_type = 'dispatch.resumed'",
    )
    .fetch_all(&pool)
    .await
    .expect("deliveries");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0]["data"]["dispatch_id"], d.as_str());
    assert_eq!(resumed[0]["data"]["status"], "sending");
    assert_eq!(
        q.stats().await.expect("stats").depth,
        2,
        "both messages queued again"
    );
    f.post_conflicts(&path).await;
}

#[tokio::test]
async fn a_completed_dispatch_cannot_be_cancelled_or_resumed() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let req = json!({"recipients": [{"to": "+14155550101", "variables": {"body": ["B", "1"]}}]});
    let (s, r) = app.post(&f.send_path(), &f.key, req).await;
    assert_eq!(s, 202, "{r}");
    let d = r["dispatch_id"].as_str().expect("id").to_string();
    // Everything went out and was read (what workers and webhooks do).
    sqlx::query("UPDATE messages SET status = 'read' WHERE dispatch_id = $1::uuid")
        .bind(&d)
        .execute(&app.pool().await)
        .await
        .expect("read");
    let (s, v) = app.get(&format!("/api/v1/dispatches/{d}"), &f.key).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("completed")), "{v}");
    for action in ["cancel", "resume"] {
        let route = format!("/api/v1/dispatches/{d}/{action}");
        let v = f.post_conflicts(&route).await;
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("completed")),
            "{action}: {v}"
        );
    }
    let (_, v) = app.get(&format!("/api/v1/dispatches/{d}"), &f.key).await;
    assert_eq!(v["status"], "completed", "nothing changed: {v}");
}

#[tokio::test]
async fn concurrent_template_patches_of_different_fields_both_land() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let (_, list) = app.get("/api/v1/templates", &f.key).await;
    let path = format!(
        "/api/v1/templates/{}",
        list["items"][0]["id"].as_str().expect("id")
    );
    for i in 0..15 {
        let category = if i % 2 == 0 { "MARKETING" } else { "UTILITY" };
        let text = format!("Round {i}: hi {{{{1}}}}, order {{{{2}}}} shipped.");
        let components =
            json!([{"type": "BODY", "text": text, "example": {"body_text": [["Maria", "4721"]]}}]);
        let (a, b) = tokio::join!(
            app.patch(&path, &f.key, json!({"category": category})),
            app.patch(&path, &f.key, json!({"components": components})),
        );
        assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
        let (_, v) = app.get(&path, &f.key).await;
        assert_eq!(v["category"], category, "round {i}: {v}");
        assert_eq!(v["components"][0]["text"], text, "round {i}: {v}");
    }
}

#[tokio::test]
async fn the_generated_example_is_accepted_for_every_template_kind() {
    let (app, acc) = acme().await;
    let spec =
        json!({"name": "sender", "scope_group": "message_sender", "rate_limit_per_hour": null});
    let k = app.create_key(&acc.admin, spec).await;
    let key = k["key"].as_str().expect("key");
    for (kind, t) in templates::all() {
        let (s, t) = app.post("/api/v1/templates", &acc.admin, t).await;
        assert_eq!(s, 201, "{kind}: {t}");
        let req = json!({"name": kind, "template_id": t["id"]});
        let (s, b) = app.post("/api/v1/broadcasts", &acc.admin, req).await;
        assert_eq!(s, 201, "{kind}: {b}");
        let route = format!(
            "/admin/v1/broadcasts/{}/example",
            b["id"].as_str().expect("id")
        );
        let (s, ex) = app.get(&route, &acc.admin).await;
        assert_eq!(s, 200, "{kind}: {ex}");
        assert_eq!(ex["request"]["method"], "POST");
        assert!(ex["curl"]
            .as_str()
            .is_some_and(|c| c.starts_with("curl -X POST")));
        assert!(ex["javascript"]
            .as_str()
            .is_some_and(|c| c.contains("fetch(")));
        let url = ex["request"]["url"].as_str().expect("url");
        let path = &url[url.find("/api/v1").expect("path")..];
        let (s, r) = app.post(path, key, ex["request"]["body"].clone()).await;
        assert_eq!(s, 202, "{kind}: {r}");
        assert_eq!(r["accepted"], 1, "{kind}: {r}");
    }
}

#[tokio::test]
async fn each_scope_allows_exactly_its_routes() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let acc_admin = &f.admin;
    let b = &f.broadcast;
    let (_, t) = app.get("/api/v1/templates", &f.key).await;
    let t = t["items"][0]["id"].as_str().expect("template").to_string();
    let route = format!("/api/v1/broadcasts/{b}/send");
    let req = json!({"recipients": [{"to": "+14155550100", "variables": {"body": ["A", "1"]}}]});
    let (_, sent) = app.post(&route, &f.key, req).await;
    let d = sent["dispatch_id"].as_str().expect("d").to_string();
    let m = sent["messages"][0]["id"].as_str().expect("m").to_string();
    let send_body =
        json!({"recipients": [{"to": "+14155550111", "variables": {"body": ["A", "1"]}}]});
    let routes: Vec<(&str, String, Option<Value>, Vec<&str>)> = vec![
        (
            "GET",
            "/api/v1/templates".into(),
            None,
            vec!["template:read"],
        ),
        (
            "GET",
            format!("/api/v1/templates/{t}"),
            None,
            vec!["template:read"],
        ),
        (
            "POST",
            "/api/v1/templates".into(),
            Some(json!({"name": "x"})),
            vec!["template:create"],
        ),
        (
            "PATCH",
            format!("/api/v1/templates/{t}"),
            Some(json!({"category": "UTILITY"})),
            vec!["template:update"],
        ),
        (
            "GET",
            "/api/v1/broadcasts".into(),
            None,
            vec!["broadcast:read"],
        ),
        (
            "GET",
            format!("/api/v1/broadcasts/{b}"),
            None,
            vec!["broadcast:read"],
        ),
        (
            "POST",
            "/api/v1/broadcasts".into(),
            Some(json!({"name": "x"})),
            vec!["broadcast:create"],
        ),
        (
            "POST",
            format!("/api/v1/broadcasts/{b}/send"),
            Some(send_body),
            vec!["broadcast:send"],
        ),
        (
            "GET",
            format!("/api/v1/dispatches/{d}"),
            None,
            vec!["broadcast:read", "broadcast:send"],
        ),
        (
            "GET",
            format!("/api/v1/dispatches/{d}/messages"),
            None,
            vec!["broadcast:read", "broadcast:send"],
        ),
        (
            "GET",
            format!("/api/v1/messages/{m}"),
            None,
            vec!["broadcast:read", "broadcast:send"],
        ),
        (
            "DELETE",
            "/api/v1/broadcasts/0190a3f0-0000-7000-8000-000000000000".into(),
            None,
            vec!["broadcast:delete"],
        ),
        (
            "DELETE",
            "/api/v1/templates/0190a3f0-0000-7000-8000-000000000000".into(),
            None,
            vec!["template:delete"],
        ),
    ];
    let mut keys = std::collections::HashMap::new();
    for scope in ezpulze_common::scopes::FULL_ACCESS {
        let spec = json!({"name": scope, "scopes": [scope], "rate_limit_per_hour": null});
        let k = app.create_key(acc_admin, spec).await;
        keys.insert(*scope, k["key"].as_str().expect("key").to_string());
    }
    for (method, path, body, allowed) in &routes {
        for scope in ezpulze_common::scopes::FULL_ACCESS {
            let resource = scope.split(':').next().unwrap_or("");
            let grants = allowed
                .iter()
                .any(|a| a == scope || (scope.ends_with(":all") && a.starts_with(resource)));
            let (s, v) = app.send(method, path, &keys[scope], body.clone()).await;
            if grants {
                assert_ne!(s, 403, "{scope} must reach {method} {path}: {v}");
            } else {
                assert_error(s, &v, 403, "insufficient_scope");
                assert_eq!(v["error"]["required_scope"], allowed[0], "{method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn broadcasts_and_templates_are_isolated_per_account() {
    let f = fixture(templates::text(), json!({})).await;
    let app = &f.app;
    let other = app.account("Other").await;
    let (_, list) = app.get("/api/v1/broadcasts", &other.admin).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    let route = format!("/api/v1/broadcasts/{}", f.broadcast);
    let (s, v) = app.get(&route, &other.admin).await;
    assert_error(s, &v, 404, "not_found");
    let route = format!("/admin/v1/broadcasts/{}/example", f.broadcast);
    let (s, v) = app.get(&route, &other.admin).await;
    assert_error(s, &v, 404, "not_found");
    let (_, t) = app.get("/api/v1/templates", &f.key).await;
    let tid = t["items"][0]["id"].clone();
    let req = json!({"name": "steal", "template_id": tid});
    let (s, v) = app.post("/api/v1/broadcasts", &other.admin, req).await;
    assert_error(s, &v, 422, "validation_failed");
    // Bad broadcast defaults are refused.
    let req = json!({"name": "x", "template_id": tid, "variables": {"body": ["A", "B", "C"]}});
    let (s, v) = app.post("/api/v1/broadcasts", &f.key, req).await;
    assert_error(s, &v, 422, "validation_failed");
    let (s, v) = app.post("/api/v1/broadcasts", &f.key, json!({"name": "x", "template_id": tid, "variables": {"header": {"type": "image", "link": "https://x/y.jpg"}}})).await;
    assert_error(s, &v, 422, "validation_failed");
}
