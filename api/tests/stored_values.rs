//! What contacts and leads store must read back: a number in `attributes` that Postgres would
//! hand back in a form that does not read as a 64-bit float (jsonb keeps numbers as exact
//! decimals and prints them written out in full) is refused with 422 naming its path, before
//! anything is written, on create and on edit; and the reads (one row and the whole list) answer
//! 200 whatever a row already holds.

mod support;

use serde_json::{json, Value};
use support::{acme_scoped, id_of, validation_details, TestApp};
use uuid::Uuid;

/// The largest finite float: JSON can say it, Postgres stores it (as a 309-digit decimal).
const NEAR_MAX: &str = "1.7976931348623157e308";

/// Asserts a 422 naming `field` (and a message saying what is wrong with it).
fn assert_refused(status: u16, body: &Value, field: &str) {
    let details = validation_details(status, body);
    assert!(
        details
            .iter()
            .any(|d| d["field"] == field && d["message"].as_str().is_some_and(|m| !m.is_empty())),
        "expected an error on {field}: {body}"
    );
}

/// A raw JSON body (so the number is sent exactly as written); status and JSON answer.
async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: &str,
    body: &str,
) -> (u16, Value) {
    app.send_raw_json(method, path, bearer, body.as_bytes().to_vec())
        .await
}

/// GET `path`: the status and the body's text (which need not parse as serde_json's f64).
async fn get_text(app: &TestApp, path: &str, bearer: &str) -> (u16, String) {
    let r = app.request("GET", path, bearer, None).await;
    let status = r.status().as_u16();
    (status, r.text().await.expect("text"))
}

#[tokio::test]
async fn a_number_that_does_not_read_back_is_refused_before_anything_is_written() {
    let (app, _, k) = acme_scoped(&["contacts:all", "leads:all"]).await;

    // Create: 422 with the number's path, at any depth, and nothing written.
    let bodies = [
        (
            format!(r#"{{"phone": "+14155550100", "attributes": {{"n": {NEAR_MAX}}}}}"#),
            "attributes.n",
        ),
        (
            format!(r#"{{"phone": "+14155550100", "attributes": {{"n": -{NEAR_MAX}}}}}"#),
            "attributes.n",
        ),
        (
            format!(
                r#"{{"phone": "+14155550100", "attributes": {{"a": {{"b": [1, {NEAR_MAX}]}}}}}}"#
            ),
            "attributes.a.b[1]",
        ),
    ];
    for (body, field) in &bodies {
        let (s, v) = send_raw(&app, "POST", "/api/v1/contacts", &k, body).await;
        assert_refused(s, &v, field);
    }
    let (s, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(s, 200, "the list after refused creates: {v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v}");

    // Ordinary numbers, large and small, are kept.
    let (s, c) = send_raw(
        &app,
        "POST",
        "/api/v1/contacts",
        &k,
        r#"{"phone": "+14155550100", "attributes": {"big": 1e300, "small": 5e-324, "int": 18446744073709551615, "neg": -9223372036854775808}}"#,
    )
    .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["attributes"]["int"], json!(u64::MAX));
    assert_eq!(c["attributes"]["neg"], json!(i64::MIN));
    let cid = id_of(&c);
    let route = format!("/api/v1/contacts/{cid}");

    // Edit: 422, the contact unchanged.
    let body = format!(r#"{{"name": "Ann", "attributes": {{"n": {NEAR_MAX}}}}}"#);
    let (s, v) = send_raw(&app, "PATCH", &route, &k, &body).await;
    assert_refused(s, &v, "attributes.n");
    let (s, v) = app.get(&route, &k).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["name"],
        Value::Null,
        "the refused edit changed the contact: {v}"
    );
    assert_eq!(v["updated_at"], c["updated_at"], "{v}");

    // Leads share the rule, on create (with an existing or an inline contact) and on edit.
    let body =
        format!(r#"{{"contact_id": "{cid}", "title": "Roof", "attributes": {{"n": {NEAR_MAX}}}}}"#);
    let (s, v) = send_raw(&app, "POST", "/api/v1/leads", &k, &body).await;
    assert_refused(s, &v, "attributes.n");
    let body = format!(
        r#"{{"phone": "+14155550199", "title": "Roof", "attributes": {{"x": [{NEAR_MAX}]}}}}"#
    );
    let (s, v) = send_raw(&app, "POST", "/api/v1/leads", &k, &body).await;
    assert_refused(s, &v, "attributes.x[0]");
    let (s, v) = app.get("/api/v1/leads", &k).await;
    assert_eq!(s, 200, "the list after refused creates: {v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v}");
    let (_, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(
        v["items"].as_array().map(Vec::len),
        Some(1),
        "a refused lead made its inline contact: {v}"
    );
    let (s, l) = app
        .post(
            "/api/v1/leads",
            &k,
            json!({"contact_id": cid, "title": "Roof", "attributes": {"utm": "x"}}),
        )
        .await;
    assert_eq!(s, 201, "{l}");
    let lroute = format!("/api/v1/leads/{}", id_of(&l));
    let body = format!(r#"{{"title": "Changed", "attributes": {{"n": {NEAR_MAX}}}}}"#);
    let (s, v) = send_raw(&app, "PATCH", &lroute, &k, &body).await;
    assert_refused(s, &v, "attributes.n");
    let (s, v) = app.get(&lroute, &k).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["title"], "Roof", "the refused edit changed the lead: {v}");
    assert_eq!(v["attributes"], json!({"utm": "x"}), "{v}");
    let (s, v) = app.get("/api/v1/leads", &k).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn reads_answer_whatever_a_row_already_holds() {
    let (app, acc, k) = acme_scoped(&["contacts:all", "leads:all"]).await;
    let c = app
        .post(
            "/api/v1/contacts",
            &k,
            json!({"phone": "+14155550100", "name": "Ann"}),
        )
        .await
        .1;
    let l = app
        .post(
            "/api/v1/leads",
            &k,
            json!({"contact_id": id_of(&c), "title": "Roof"}),
        )
        .await
        .1;
    // Rows written before the check existed (or by hand): numbers jsonb holds but that do not
    // read back as a 64-bit float.
    let db = app.pool().await;
    let account: Uuid = acc.id.parse().expect("account id");
    let odd = format!(r#"{{"n": {NEAR_MAX}, "huge": 1e400, "deep": {{"m": [-{NEAR_MAX}]}}}}"#);
    let other: Uuid = sqlx::query_scalar(
        "INSERT INTO contacts (id, account_id, phone, attributes)
         VALUES (gen_random_uuid(), $1, '+14155550101', $2::jsonb) RETURNING id",
    )
    .bind(account)
    .bind(&odd)
    .fetch_one(&db)
    .await
    .expect("insert");
    for (table, id) in [("contacts", id_of(&c)), ("leads", id_of(&l))] {
        let id: Uuid = id.parse().expect("id");
        sqlx::query(&format!(
            "UPDATE {table} SET attributes = $1::jsonb WHERE id = $2"
        ))
        .bind(&odd)
        .bind(id)
        .execute(&db)
        .await
        .expect("update");
    }
    let paths = [
        "/api/v1/contacts".to_string(),
        format!("/api/v1/contacts/{}", id_of(&c)),
        format!("/api/v1/contacts/{other}"),
        "/api/v1/leads".to_string(),
        format!("/api/v1/leads/{}", id_of(&l)),
    ];
    for path in &paths {
        let (s, text) = get_text(&app, path, &k).await;
        assert_eq!(s, 200, "{path}: {text}");
        // The stored value is answered as it is stored.
        assert!(text.contains("17976931348623157000"), "{path}: {text}");
    }
    // The row can still be edited (its attributes replaced) and deleted.
    let route = format!("/api/v1/contacts/{other}");
    let (s, v) = app.patch(&route, &k, json!({"attributes": {"n": 1}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["attributes"], json!({"n": 1}));
    let (s, _) = app.delete(&route, &k).await;
    assert_eq!(s, 204);
}
