//! CSV import of contacts (`POST /api/v1/contacts/import`, docs/contact-import.md): counts,
//! tag union and attribute merge, re-runs that change nothing, every whole-file refusal (with
//! nothing stored), per-row rejections, national numbers with `default_country`, multipart,
//! resumption after a crash or a lost lease (exact counts, no row twice), tenants and scopes.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{acme_scoped, assert_error, status_json, wait_until, TestApp, DEADLINE};

const IMPORT: &str = "/api/v1/contacts/import";

async fn upload(app: &TestApp, key: &str, query: &str, ct: &str, body: &[u8]) -> (u16, Value) {
    let headers = [("content-type", ct)];
    let r = app
        .request_with(
            "POST",
            &format!("{IMPORT}{query}"),
            key,
            &headers,
            Some(body.to_vec()),
        )
        .await;
    status_json(r).await
}

async fn csv(app: &TestApp, key: &str, query: &str, body: &str) -> (u16, Value) {
    upload(app, key, query, "text/csv", body.as_bytes()).await
}

/// Uploads, asserts 202, waits for `done`; returns the import.
async fn imported(app: &TestApp, key: &str, query: &str, body: &str) -> Value {
    let (s, v) = csv(app, key, query, body).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["state"], "validating", "{v}");
    wait_done(app, key, v["id"].as_str().expect("id")).await
}

async fn wait_done(app: &TestApp, key: &str, id: &str) -> Value {
    let path = format!("/api/v1/contacts/imports/{id}");
    let start = std::time::Instant::now();
    loop {
        let (s, v) = app.get(&path, key).await;
        assert_eq!(s, 200, "{v}");
        assert_ne!(v["state"], "failed", "{v}");
        if v["state"] == "done" {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "import not done: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counts(v: &Value) -> [i64; 5] {
    ["created", "updated", "unchanged", "rejected", "total_rows"]
        .map(|k| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}")))
}

async fn contact_by_phone(app: &TestApp, key: &str, phone: &str) -> Value {
    let (s, v) = app
        .get(
            &format!("/api/v1/contacts?phone={}", phone.replace('+', "%2B")),
            key,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{phone}: {v}");
    v["items"][0].clone()
}

async fn contact_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&app.pool().await)
        .await
        .expect("count")
}

async fn attribute_keys(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT key FROM contact_attribute_keys ORDER BY key")
        .fetch_all(&app.pool().await)
        .await
        .expect("keys")
}

fn rejections(v: &Value) -> Vec<(i64, Option<String>, String)> {
    v["rejections"]["items"]
        .as_array()
        .expect("rejections")
        .iter()
        .map(|r| {
            (
                r["row"].as_i64().expect("row"),
                r["column"].as_str().map(str::to_string),
                r["code"].as_str().expect("code").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn upsert_counts_tags_union_attribute_merge_and_reruns_change_nothing() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    // An existing contact the file updates, one it leaves as it is.
    let (s, _) = app
        .post("/api/v1/contacts", &k, json!({"phone": "+351912000001", "name": "Old",
            "email": "old@example.com", "tags": ["x"], "attributes": {"plan": "gold", "city": "Porto"}}))
        .await;
    assert_eq!(s, 201);
    let (s, _) = app
        .post(
            "/api/v1/contacts",
            &k,
            json!({"phone": "+351912000003", "name": "Same",
            "tags": ["a", "b"], "attributes": {"city": "Faro"}}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(attribute_keys(&app).await, vec!["city", "plan"]);

    let file = "phone,name,email,tags,city,Order Ref\n\
                +351 912 000 001,,,y;x;y,Lisbon,\n\
                +351912000002,New,new@example.com,vip,Braga,A-1\n\
                00351912000003,Same,,b,Faro,\n";
    let v = imported(&app, &k, "", file).await;
    assert_eq!(counts(&v), [1, 1, 1, 0, 3], "{v}");
    assert_eq!(v["rows_done"], 3);
    assert!(v["finished_at"].is_string(), "{v}");

    let a = contact_by_phone(&app, &k, "+351912000001").await;
    assert_eq!(a["name"], "Old", "an empty cell leaves the name");
    assert_eq!(a["email"], "old@example.com");
    assert_eq!(
        a["tags"],
        json!(["x", "y"]),
        "tags are a union, no duplicates"
    );
    assert_eq!(a["attributes"], json!({"plan": "gold", "city": "Lisbon"}));
    let b = contact_by_phone(&app, &k, "+351912000002").await;
    assert_eq!(b["name"], "New");
    assert_eq!(b["tags"], json!(["vip"]));
    assert_eq!(
        b["attributes"],
        json!({"city": "Braga", "Order Ref": "A-1"})
    );
    let c = contact_by_phone(&app, &k, "+351912000003").await;
    assert_eq!(c["tags"], json!(["a", "b"]));
    assert_eq!(
        attribute_keys(&app).await,
        vec!["Order Ref", "city", "plan"]
    );

    // The same file again: nothing written, updated_at untouched.
    let before: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT phone, updated_at FROM contacts ORDER BY phone")
            .fetch_all(&app.pool().await)
            .await
            .expect("rows");
    let v = imported(&app, &k, "", file).await;
    assert_eq!(counts(&v), [0, 0, 3, 0, 3], "{v}");
    let after: Vec<(String, chrono::DateTime<chrono::Utc>)> =
        sqlx::query_as("SELECT phone, updated_at FROM contacts ORDER BY phone")
            .fetch_all(&app.pool().await)
            .await
            .expect("rows");
    assert_eq!(before, after);
    assert_eq!(contact_count(&app).await, 3);

    // Patch records the keys of the attributes it writes.
    let id = a["id"].as_str().expect("id");
    let (s, _) = app
        .patch(
            &format!("/api/v1/contacts/{id}"),
            &k,
            json!({"attributes": {"tier": "2"}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        attribute_keys(&app).await,
        vec!["Order Ref", "city", "plan", "tier"]
    );
}

#[tokio::test]
async fn bom_crlf_quoted_fields_and_multipart() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    let file = "\u{feff}Phone,Name,Tags,note\r\n\
                +14155550101,\"Smith, Ann\",\"a;b\",\"line 1\r\nline \"\"2\"\"\"\r\n\
                \r\n\
                +14155550102,Bob,,\r\n";
    let v = imported(&app, &k, "", file).await;
    assert_eq!(counts(&v), [2, 0, 0, 0, 2], "{v}");
    let a = contact_by_phone(&app, &k, "+14155550101").await;
    assert_eq!(a["name"], "Smith, Ann");
    assert_eq!(a["tags"], json!(["a", "b"]));
    assert_eq!(a["attributes"], json!({"note": "line 1\r\nline \"2\""}));
    let b = contact_by_phone(&app, &k, "+14155550102").await;
    assert_eq!(b["attributes"], json!({}), "an empty cell sets nothing");

    let boundary = "----ezp7MA4YWxkTrZu0gW";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"comment\"\r\n\r\nhi\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.csv\"\r\n\
         Content-Type: text/csv\r\n\r\nphone,name\n+14155550103,Multi\n\r\n--{boundary}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (s, v) = upload(&app, &k, "", &ct, body.as_bytes()).await;
    assert_eq!(s, 202, "{v}");
    let v = wait_done(&app, &k, v["id"].as_str().expect("id")).await;
    assert_eq!(counts(&v), [1, 0, 0, 0, 1], "{v}");
    assert_eq!(
        contact_by_phone(&app, &k, "+14155550103").await["name"],
        "Multi"
    );
}

#[tokio::test]
async fn row_problems_are_reported_and_never_stop_the_good_rows() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    let file = "phone,name,email,tags\n\
                +351912000001,A,,\n\
                00351 912 000 001,Dup,,\n\
                912000002,Local,,\n\
                +351912000003,,not-an-email,\n\
                +35191200000x,,,\n\
                +351912000004,,,ok;\n\
                +351912000005,too,few\n\
                +351912000006,,,{long}\n\
                +351912000007,,,\n";
    let file = file.replace("{long}", &"t".repeat(51));
    let v = imported(&app, &k, "", &file).await;
    assert_eq!(counts(&v), [3, 0, 0, 6, 9], "{v}");
    assert_eq!(
        rejections(&v),
        vec![
            (3, Some("phone".into()), "duplicate_phone".into()),
            (4, Some("phone".into()), "missing_country_code".into()),
            (5, Some("email".into()), "invalid_email".into()),
            (6, Some("phone".into()), "invalid_phone".into()),
            (8, None, "wrong_field_count".into()),
            (9, Some("tags".into()), "invalid_tags".into()),
        ]
    );
    for r in v["rejections"]["items"].as_array().expect("items") {
        assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
    }
    assert_eq!(
        contact_by_phone(&app, &k, "+351912000001").await["name"],
        "A"
    );
    let id = v["id"].as_str().expect("id");

    // The rejections list, by pages of two.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/contacts/imports/{id}/rejections?limit=2");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = app.get(&path, &k).await;
        assert_eq!(s, 200, "{page}");
        for r in page["items"].as_array().expect("items") {
            seen.push(r["row"].as_i64().expect("row"));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, vec![3, 4, 5, 6, 8, 9]);
    let (s, v) = app
        .get(
            &format!("/api/v1/contacts/imports/{id}/rejections?cursor=nope"),
            &k,
        )
        .await;
    assert_error(s, &v, 422, "validation_failed");

    // With a default country, national numbers are imported (trunk 0 dropped; Italy keeps it).
    let v = imported(
        &app,
        &k,
        "?default_country=pt",
        "phone\n912000002\n+351912000001\n",
    )
    .await;
    assert_eq!(counts(&v), [1, 0, 1, 0, 2], "{v}");
    contact_by_phone(&app, &k, "+351912000002").await;
    let v = imported(&app, &k, "?default_country=GB", "phone\n07700 900123\n").await;
    assert_eq!(counts(&v), [1, 0, 0, 0, 1], "{v}");
    contact_by_phone(&app, &k, "+447700900123").await;
    let v = imported(&app, &k, "?default_country=IT", "phone\n06 6982 1234\n").await;
    assert_eq!(counts(&v), [1, 0, 0, 0, 1], "{v}");
    contact_by_phone(&app, &k, "+390669821234").await;
    let (s, v) = csv(&app, &k, "?default_country=XX", "phone\n1\n").await;
    assert_error(s, &v, 422, "validation_failed");
    assert_eq!(v["error"]["details"][0]["field"], "default_country");
}

/// A `text/csv` body sent chunked (no Content-Length) over a raw connection, `lines` chunks of
/// one line each; returns the answer's status and JSON body.
async fn chunked_upload(app: &TestApp, key: &str, lines: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {IMPORT} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let line = b"+14155550101,abcdefghij\n";
    for i in 0..lines {
        let mut chunk = format!("{:x}\r\n", line.len()).into_bytes();
        chunk.extend_from_slice(line);
        chunk.extend_from_slice(b"\r\n");
        if i == 0 {
            chunk.splice(0..0, b"6\r\nphone\n\r\n".to_vec());
        }
        if s.write_all(&chunk).await.is_err() {
            break;
        }
    }
    s.write_all(b"0\r\n\r\n").await.ok();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.ok();
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Asserts a whole-file refusal: status, code, and nothing stored.
async fn refused(app: &TestApp, got: (u16, Value), status: u16, code: &str) -> Value {
    let (s, v) = got;
    assert_error(s, &v, status, code);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    let imports: i64 = sqlx::query_scalar("SELECT count(*) FROM contact_imports")
        .fetch_one(&app.pool().await)
        .await
        .expect("count");
    assert_eq!(imports, 0, "nothing stored after {code}");
    assert_eq!(contact_count(app).await, 0);
    v
}

#[tokio::test]
async fn whole_file_refusals_store_nothing() {
    let app = TestApp::spawn_with(&[
        ("CONTACT_IMPORT_MAX_ROWS", "3"),
        ("CONTACT_IMPORT_MAX_BYTES", "2048"),
    ])
    .await;
    let acc = app.account("Acme").await;
    let k = app.scoped_key(&acc.admin, &["contacts:all"]).await;

    for (file, what) in [
        ("name,email\nA,a@example.com\n", "no phone column"),
        ("phone,name,Name\n+14155550101,a,b\n", "duplicate column"),
        ("phone,,name\n+14155550101,,a\n", "empty column name"),
        ("", "empty file"),
    ] {
        let v = refused(&app, csv(&app, &k, "", file).await, 422, "invalid_header").await;
        assert_eq!(v["error"]["row"], 1, "{what}: {v}");
    }
    // Mixed encodings: a Latin-1 row in a UTF-8 file.
    let mut mixed = "phone,name\n+14155550101,José\n".as_bytes().to_vec();
    mixed.extend_from_slice(b"+14155550102,Jos\xe9\n");
    let v = refused(
        &app,
        upload(&app, &k, "", "text/csv", &mixed).await,
        422,
        "invalid_encoding",
    )
    .await;
    assert_eq!(v["error"]["row"], 3, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("row 3")),
        "{v}"
    );
    refused(
        &app,
        upload(&app, &k, "", "text/csv; charset=iso-8859-1", b"phone\n").await,
        422,
        "invalid_encoding",
    )
    .await;
    let v = refused(
        &app,
        csv(
            &app,
            &k,
            "",
            "phone,name\n+14155550101,\"open\n+14155550102,b\n",
        )
        .await,
        422,
        "malformed_csv",
    )
    .await;
    assert_eq!(v["error"]["row"], 2, "{v}");
    refused(
        &app,
        csv(
            &app,
            &k,
            "",
            "phone\n+14155550101\n+14155550102\n+14155550103\n+14155550104\n",
        )
        .await,
        422,
        "too_many_rows",
    )
    .await;
    // Three rows (and blank lines) are within the limit.
    let v = imported(
        &app,
        &k,
        "",
        "phone\n+14155550101\n\n+14155550102\n+14155550103\n\n",
    )
    .await;
    assert_eq!(counts(&v), [3, 0, 0, 0, 3], "{v}");
    sqlx::query("DELETE FROM contact_imports")
        .execute(&app.pool().await)
        .await
        .expect("delete");
    sqlx::query("DELETE FROM contacts")
        .execute(&app.pool().await)
        .await
        .expect("delete");

    // Over the size limit, with a Content-Length and streamed without one.
    let big = format!("phone,name\n{}", "+14155550101,abcdefghij\n".repeat(200));
    refused(
        &app,
        csv(&app, &k, "", &big).await,
        413,
        "payload_too_large",
    )
    .await;
    refused(
        &app,
        chunked_upload(&app, &k, 200).await,
        413,
        "payload_too_large",
    )
    .await;
    refused(
        &app,
        upload(&app, &k, "", "application/json", b"{}").await,
        415,
        "unsupported_media_type",
    )
    .await;
    refused(
        &app,
        upload(
            &app,
            &k,
            "",
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--zz--\r\n",
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn tenants_and_scopes() {
    let (app, acc, k) = acme_scoped(&["contacts:create"]).await;
    let v = imported(&app, &k, "", "phone\n+14155550101\n+1\n").await;
    let id = v["id"].as_str().expect("id").to_string();
    let read_all = app.scoped_key(&acc.admin, &["contacts:read_all"]).await;
    let read_one = app
        .scoped_key(&acc.admin, &["contacts:read", "contacts:update"])
        .await;
    let paths = [
        format!("/api/v1/contacts/imports/{id}"),
        format!("/api/v1/contacts/imports/{id}/rejections"),
    ];
    for p in &paths {
        assert_eq!(app.get(p, &read_all).await.0, 200, "{p}");
        let (s, v) = app.get(p, &read_one).await;
        assert_error(s, &v, 403, "insufficient_scope");
    }
    let (s, v) = csv(&app, &read_all, "", "phone\n+14155550102\n").await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "contacts:create");
    let (s, v) = csv(&app, "", "", "phone\n+14155550102\n").await;
    assert_error(s, &v, 401, "missing_api_key");

    let other = app.account("Other").await;
    let ok = app.scoped_key(&other.admin, &["contacts:all"]).await;
    for p in &paths {
        let (s, v) = app.get(p, &ok).await;
        assert_error(s, &v, 404, "not_found");
    }
    let (s, v) = app
        .get(
            &format!("/api/v1/contacts/imports/{}", uuid::Uuid::now_v7()),
            &k,
        )
        .await;
    assert_error(s, &v, 404, "not_found");
}

fn big_file(n: usize) -> String {
    let mut s = String::from("phone,name,tags,city\n");
    for i in 0..n {
        s.push_str(&format!(
            "+1415{:07},Name {i},t{};all,C{}\n",
            i,
            i % 7,
            i % 13
        ));
    }
    // One bad row in the middle and a duplicate at the end.
    s.push_str("not a phone,,,\n+14150000000,,,\n");
    s
}

async fn import_row(app: &TestApp, id: &str) -> (String, i32, i32) {
    sqlx::query_as("SELECT state, rows_done, total_rows FROM contact_imports WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&app.pool().await)
        .await
        .expect("import")
}

async fn assert_exact(app: &TestApp, key: &str, id: &str, n: usize) {
    let v = wait_done(app, key, id).await;
    let n = n as i64;
    assert_eq!(
        counts(&v),
        [n, 0, 0, 2, n + 2],
        "no row twice, none skipped: {v}"
    );
    assert_eq!(v["rows_done"], n + 2);
    assert_eq!(contact_count(app).await, n);
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT phone) FROM contacts")
        .fetch_one(&app.pool().await)
        .await
        .expect("distinct");
    assert_eq!(distinct, n);
    let rejections: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contact_import_rejections WHERE import_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&app.pool().await)
    .await
    .expect("rejections");
    assert_eq!(rejections, 2);
}

#[tokio::test]
async fn a_crashed_import_is_resumed_exactly_by_another_process() {
    const N: usize = 20_000;
    let first = TestApp::spawn_with(&[("CONTACT_IMPORT_BATCH_ROWS", "100")]).await;
    let acc = first.account("Acme").await;
    let k = first.scoped_key(&acc.admin, &["contacts:all"]).await;
    let (s, v) = csv(&first, &k, "", &big_file(N)).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    wait_until("some batches committed", DEADLINE, || async {
        import_row(&first, &id).await.1 > 0
    })
    .await;
    // The process dies (its runner stops between batches; the lease stays until it expires).
    first.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (state, done, total) = import_row(&first, &id).await;
    assert_eq!(state, "importing");
    assert!(
        done > 0 && done < total,
        "stopped mid-import: {done}/{total}"
    );
    // The lease runs out; a restarted api takes the import over from its cursor.
    sqlx::query("UPDATE contact_imports SET lease_until = now() WHERE id = $1::uuid")
        .bind(&id)
        .execute(&first.pool().await)
        .await
        .expect("expire");
    let second = first.replica().await;
    assert_exact(&second, &k, &id, N).await;
}

#[tokio::test]
async fn a_stalled_holder_loses_the_import_to_another_process() {
    const N: usize = 20_000;
    let first = TestApp::spawn_with(&[("CONTACT_IMPORT_BATCH_ROWS", "100")]).await;
    let acc = first.account("Acme").await;
    let k = first.scoped_key(&acc.admin, &["contacts:all"]).await;
    let (s, v) = csv(&first, &k, "", &big_file(N)).await;
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    wait_until("some batches committed", DEADLINE, || async {
        import_row(&first, &id).await.1 > 0
    })
    .await;
    // The holder is still running, but its lease is taken from it (as by a process that took
    // the import over and died at once) and expires: the first one's next batch finds the
    // lease gone, and another process resumes from the cursor.
    let second = first.replica().await;
    sqlx::query(
        "UPDATE contact_imports SET lease_until = now(), lease_token = gen_random_uuid()
         WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&first.pool().await)
    .await
    .expect("expire");
    assert_exact(&second, &k, &id, N).await;
}

#[tokio::test]
async fn one_import_per_account_at_a_time_later_ones_wait() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    let (s, a) = csv(&app, &k, "", &big_file(3000)).await;
    assert_eq!(s, 202, "{a}");
    let (s, b) = csv(&app, &k, "", "phone,tags\n+14150000001,late\n").await;
    assert_eq!(s, 202, "{b}");
    let (a, b) = (a["id"].as_str().expect("id"), b["id"].as_str().expect("id"));
    let b_done = wait_done(&app, &k, b).await;
    wait_done(&app, &k, a).await;
    // Had the later import run first, it would have created the contact.
    assert_eq!(
        counts(&b_done),
        [0, 1, 0, 0, 1],
        "the later one ran after: {b_done}"
    );
    assert_eq!(
        contact_by_phone(&app, &k, "+14150000001").await["tags"],
        json!(["t1", "all", "late"])
    );
}

/// A large import refreshes the contacts' planner statistics before it is done, so the
/// audience sends that follow it are planned knowing the new rows (docs/contact-import.md).
#[tokio::test]
async fn a_large_import_leaves_the_contacts_analyzed() {
    const N: usize = 10_000;
    let app = TestApp::spawn().await;
    let acc = app.account("Acme").await;
    let k = app.scoped_key(&acc.admin, &["contacts:all"]).await;
    let (s, v) = csv(&app, &k, "", &big_file(N)).await;
    assert_eq!(s, 202, "{v}");
    let v = wait_done(&app, &k, v["id"].as_str().expect("id")).await;
    assert_eq!(counts(&v)[0], N as i64, "{v}");
    let known: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'contacts'::regclass")
            .fetch_one(&app.pool().await)
            .await
            .expect("reltuples");
    assert!(
        known >= N as f32 * 0.9,
        "the planner's row count of contacts after the import: {known}"
    );
}
