//! Contacts and leads on `/api/v1`: every route with and without its scope, read vs read_all,
//! phone normalisation, one contact per phone per account, tenant isolation, cursor
//! pagination, filters, and every kind of bad input.

mod support;

use std::collections::HashSet;

use serde_json::{json, Value};
use support::{acme_scoped, assert_error, id_of, status_json, validation_details, TestApp};

/// A request with a raw (possibly malformed) body.
async fn send_raw(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: &str,
    body: &str,
) -> (u16, Value) {
    let json = [("content-type", "application/json")];
    let raw = Some(body.as_bytes().to_vec());
    let r = app.request_with(method, path, bearer, &json, raw).await;
    let status = r.status().as_u16();
    (
        status,
        serde_json::from_str(&r.text().await.expect("text")).unwrap_or(Value::Null),
    )
}

fn assert_field(status: u16, body: &Value, field: &str) {
    let explained = |d: &Value| d["message"].as_str().is_some_and(|m| !m.is_empty());
    let details = validation_details(status, body);
    assert!(
        details.iter().any(|d| d["field"] == field && explained(d)),
        "expected an error on {field}: {body}"
    );
}

/// Malformed JSON: 422 `validation_failed` (the field is wherever the parser stopped).
fn assert_malformed(status: u16, body: &Value) {
    assert_error(status, body, 422, "validation_failed");
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// POST `body` to `path`, asserting 201; returns the object made.
async fn created(app: &TestApp, path: &str, bearer: &str, body: Value) -> Value {
    let (s, v) = app.post(path, bearer, body).await;
    assert_eq!(s, 201, "{v}");
    v
}

async fn contact(app: &TestApp, bearer: &str, body: Value) -> Value {
    created(app, "/api/v1/contacts", bearer, body).await
}

async fn lead(app: &TestApp, bearer: &str, body: Value) -> Value {
    created(app, "/api/v1/leads", bearer, body).await
}

/// (method, path, body, required scope, success status)
type ScopedRoute = (&'static str, String, Option<Value>, &'static str, u16);

/// A key with any scope of `family` but the route's own (and `extra`) is refused the route
/// with 403, naming the scope it needs.
async fn assert_needs_its_scope(
    app: &TestApp,
    admin: &str,
    route: &ScopedRoute,
    family: &[&str],
    extra: &[&str],
) {
    let (method, path, body, scope, _) = route;
    for other in family.iter().filter(|o| *o != scope) {
        let scopes: Vec<&str> = std::iter::once(*other)
            .chain(extra.iter().copied())
            .collect();
        let k = app.scoped_key(admin, &scopes).await;
        let (s, v) = app.send(method, path, &k, body.clone()).await;
        assert_error(s, &v, 403, "insufficient_scope");
        assert_eq!(
            v["error"]["required_scope"], *scope,
            "{method} {path} with {other}"
        );
    }
}

#[tokio::test]
async fn contact_routes_need_their_scopes() {
    let (app, acc, all) = acme_scoped(&["contacts:all"]).await;
    let c = contact(&app, &all, json!({"phone": "+14155550100"})).await;
    let id = id_of(&c);

    let (list, one) = (
        "/api/v1/contacts".to_string(),
        format!("/api/v1/contacts/{id}"),
    );
    let (new, edit) = (json!({"phone": "+14155550101"}), json!({"name": "Ann"}));
    let routes: Vec<ScopedRoute> = vec![
        ("POST", list.clone(), Some(new), "contacts:create", 201),
        ("GET", one.clone(), None, "contacts:read", 200),
        ("GET", list, None, "contacts:read_all", 200),
        ("PATCH", one, Some(edit), "contacts:update", 200),
    ];
    let others = [
        "contacts:create",
        "contacts:read",
        "contacts:read_all",
        "contacts:update",
        "contacts:delete",
    ];
    for route in &routes {
        // Every other contacts scope, and other resources' :all, are refused naming the scope.
        let extra = ["leads:all", "broadcast:all"];
        assert_needs_its_scope(&app, &acc.admin, route, &others, &extra).await;
        let (method, path, body, scope, ok) = route;
        let k = app.scoped_key(&acc.admin, &[scope]).await;
        let body = body.clone().map(|mut b| {
            if b.get("phone").is_some() {
                b["phone"] = json!("+14155550102");
            }
            b
        });
        let (s, v) = app.send(method, path, &k, body).await;
        assert_eq!(s, *ok, "{method} {path} with {scope}: {v}");
    }
    // contacts:all grants every action, delete included.
    let (s, v) = app.get("/api/v1/contacts", &all).await;
    assert_eq!(s, 200, "{v}");
    let k = app
        .scoped_key(
            &acc.admin,
            &["contacts:read", "contacts:read_all", "contacts:update"],
        )
        .await;
    let (s, v) = app.delete(&format!("/api/v1/contacts/{id}"), &k).await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "contacts:delete");
    let k = app.scoped_key(&acc.admin, &["contacts:delete"]).await;
    let (s, _) = app.delete(&format!("/api/v1/contacts/{id}"), &k).await;
    assert_eq!(s, 204);
    let (s, v) = app.get(&format!("/api/v1/contacts/{id}"), &all).await;
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app.delete(&format!("/api/v1/contacts/{id}"), &all).await;
    assert_error(s, &v, 404, "not_found");
    // The account admin token has full access to /api/v1.
    let req = json!({"phone": "+14155550109"});
    let (s, v) = app.post("/api/v1/contacts", &acc.admin, req).await;
    assert_eq!(s, 201, "{v}");
    // Scope groups: webhook_automation reads one contact but cannot list.
    let spec = json!({"name": "g", "scope_group": "webhook_automation"});
    let g = app.create_key(&acc.admin, spec).await;
    let g = g["key"].as_str().expect("key");
    let (s, _) = app.get(&format!("/api/v1/contacts/{}", id_of(&v)), g).await;
    assert_eq!(s, 200);
    let (s, v) = app.get("/api/v1/contacts", g).await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "contacts:read_all");
}

#[tokio::test]
async fn contact_fields_phone_normalisation_and_duplicates() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    let c = contact(
        &app,
        &k,
        json!({"phone": " +1 (650) 555-1234 ", "name": " Maria ", "email": "maria@example.com",
               "attributes": {"plan": "gold", "n": 3}, "tags": ["vip", " vip", "b2b"]}),
    )
    .await;
    assert_eq!(c["phone"], "+16505551234");
    assert_eq!(c["name"], "Maria");
    assert_eq!(c["email"], "maria@example.com");
    assert_eq!(c["attributes"], json!({"plan": "gold", "n": 3}));
    assert_eq!(c["tags"], json!(["vip", "b2b"]));
    for f in ["id", "created_at", "updated_at"] {
        assert!(c[f].is_string(), "{f}: {c}");
    }
    let id = id_of(&c);
    let (s, v) = app.get(&format!("/api/v1/contacts/{id}"), &k).await;
    assert_eq!(s, 200);
    assert_eq!(v, c);

    // The same number written differently is the same contact: 409.
    for dup in [
        "+16505551234",
        "0016505551234",
        "1 650 555 1234",
        "+1.650.555.1234",
    ] {
        let (s, v) = app
            .post("/api/v1/contacts", &k, json!({"phone": dup}))
            .await;
        assert_error(s, &v, 409, "conflict");
    }
    // Another account may hold the same number.
    let other = app.account("Other").await;
    let ok = app.scoped_key(&other.admin, &["contacts:create"]).await;
    contact(&app, &ok, json!({"phone": "+16505551234"})).await;

    // PATCH: absent fields stay, null clears, phone changes are normalised and unique.
    let c2 = contact(&app, &k, json!({"phone": "+442079460958"})).await;
    let id2 = id_of(&c2);
    let route = format!("/api/v1/contacts/{id2}");
    let req = json!({"phone": "+1 650 555 1234"});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_error(s, &v, 409, "conflict");
    let route = format!("/api/v1/contacts/{id}");
    let req = json!({"email": null, "tags": ["new"], "phone": "00 1 650 555 9999"});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["phone"], "+16505559999");
    assert_eq!(v["email"], Value::Null);
    assert_eq!(v["name"], "Maria");
    assert_eq!(v["tags"], json!(["new"]));
    assert_eq!(v["attributes"], json!({"plan": "gold", "n": 3}));
    let req = json!({"attributes": null, "tags": null, "name": null});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["attributes"], json!({}));
    assert_eq!(v["tags"], json!([]));
    assert_eq!(v["name"], Value::Null);
    // The old number is free again.
    contact(&app, &k, json!({"phone": "+16505551234"})).await;
}

#[tokio::test]
async fn contacts_are_isolated_between_accounts() {
    let app = TestApp::spawn().await;
    let a = app.account("A").await;
    let b = app.account("B").await;
    let ka = app
        .scoped_key(&a.admin, &["contacts:all", "leads:all"])
        .await;
    let kb = app
        .scoped_key(&b.admin, &["contacts:all", "leads:all"])
        .await;
    let req = json!({"phone": "+14155550100", "name": "Secret"});
    let c = contact(&app, &ka, req).await;
    let id = id_of(&c);
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "x"}))),
        ("DELETE", None),
    ] {
        let (s, v) = app
            .send(method, &format!("/api/v1/contacts/{id}"), &kb, body)
            .await;
        assert_error(s, &v, 404, "not_found");
    }
    let (s, v) = app.get("/api/v1/contacts", &kb).await;
    assert_eq!(s, 200);
    assert_eq!(v["items"], json!([]));
    let (s, v) = app.get("/api/v1/contacts?phone=%2B14155550100", &kb).await;
    assert_eq!(s, 200);
    assert_eq!(v["items"], json!([]));
    // B cannot hang a lead on A's contact.
    let req = json!({"contact_id": id, "title": "t"});
    let (s, v) = app.post("/api/v1/leads", &kb, req).await;
    assert_field(s, &v, "contact_id");
    let (s, v) = app.get(&format!("/api/v1/contacts/{id}"), &a.admin).await;
    assert_eq!(s, 200);
    assert_eq!(v["name"], "Secret");
    // An id that is not a UUID is simply not found.
    let (s, v) = app.get("/api/v1/contacts/not-a-uuid", &ka).await;
    assert_error(s, &v, 404, "not_found");
}

/// Walks a list with `limit`, returning every id in order and the number of pages.
async fn walk(app: &TestApp, bearer: &str, path: &str, limit: usize) -> (Vec<String>, usize) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let (s, v) = app.get(&url, bearer).await;
        assert_eq!(s, 200, "{url}: {v}");
        let items = v["items"].as_array().expect("items");
        assert!(items.len() <= limit);
        ids.extend(items.iter().map(id_of));
        pages += 1;
        assert!(pages < 1000, "pagination does not end");
        match v["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "a page before the last is full");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    (ids, pages)
}

#[tokio::test]
async fn cursor_pagination_walks_every_row_once_and_filters() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    let mut created = Vec::new();
    for i in 0..53u32 {
        let tags = if i % 3 == 0 {
            json!(["vip"])
        } else {
            json!(["lead"])
        };
        let c = contact(
            &app,
            &k,
            json!({"phone": format!("+1415555{i:04}"), "name": format!("Person {i}"),
                   "email": format!("p{i}@example.com"), "tags": tags}),
        )
        .await;
        created.push(id_of(&c));
    }
    let (ids, pages) = walk(&app, &k, "/api/v1/contacts", 10).await;
    assert_eq!(pages, 6);
    assert_eq!(ids.len(), 53);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 53, "no row twice");
    // Newest first.
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(ids, newest_first);
    // Default page size 25; exact multiples end without an empty page.
    let (s, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(25));
    let (ids, _) = walk(&app, &k, "/api/v1/contacts", 53).await;
    assert_eq!(ids.len(), 53);
    let (ids, pages) = walk(&app, &k, "/api/v1/contacts", 100).await;
    assert_eq!((ids.len(), pages), (53, 1));

    // Filters, also paginated.
    let (vip, _) = walk(&app, &k, "/api/v1/contacts?tag=vip", 4).await;
    assert_eq!(vip.len(), 18);
    let want: HashSet<&String> = created
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(vip.iter().collect::<HashSet<_>>(), want);
    let (s, v) = app
        .get("/api/v1/contacts?phone=%2B1%20(415)%20555-0007", &k)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["items"][0]["name"], "Person 7");
    for (q, n) in [
        ("Person%205", 4), // Person 5, 50, 51, 52
        ("p52%40example", 1),
        ("PERSON", 53),
        ("555-004", 10), // phone digits whatever the separators: +14155550040..49
        ("(415)%20555", 53),
        ("%25", 0), // a literal %, not a wildcard
        ("_", 0),
        ("nobody", 0),
    ] {
        let route = format!("/api/v1/contacts?limit=100&q={q}");
        let (s, v) = app.get(&route, &k).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["items"].as_array().map(Vec::len), Some(n), "q={q}: {v}");
    }
    let (s, v) = app.get("/api/v1/contacts?tag=vip&q=Person%203", &k).await;
    assert_eq!(s, 200);
    // Person 3, 30..39 tagged vip: 3, 30, 33, 36, 39.
    assert_eq!(v["items"].as_array().map(Vec::len), Some(5), "{v}");
}

#[tokio::test]
async fn contact_bad_input_is_422_naming_the_field() {
    let (app, _, k) = acme_scoped(&["contacts:all"]).await;
    let c = contact(&app, &k, json!({"phone": "+14155550100"})).await;
    let id = id_of(&c);

    // Malformed JSON and an empty body.
    for raw in [
        "{\"phone\": ",
        "not json",
        "",
        "[1,2]",
        "{\"phone\": \"+14155550101\",}",
        "\u{0}",
    ] {
        let (s, v) = send_raw(&app, "POST", "/api/v1/contacts", &k, raw).await;
        assert_malformed(s, &v);
    }
    let (s, v) = send_raw(
        &app,
        "PATCH",
        &format!("/api/v1/contacts/{id}"),
        &k,
        "{\"name\":",
    )
    .await;
    assert_malformed(s, &v);

    let long = "x".repeat(201);
    let cases = vec![
        (json!({}), "phone"),
        (json!({"phone": null}), "phone"),
        (json!({"phone": 14155550100u64}), "phone"),
        (json!({"phone": "+1 650 CALL NOW"}), "phone"),
        (json!({"phone": "+1234567"}), "phone"),
        (json!({"phone": "+1234567890123456"}), "phone"),
        (json!({"phone": "06505551234"}), "phone"),
        (
            json!({"phone": "+14155550199", "nickname": "x"}),
            "nickname",
        ),
        (json!({"phone": "+14155550199", "name": long}), "name"),
        (json!({"phone": "+14155550199", "name": 5}), "name"),
        (json!({"phone": "+14155550199", "name": "a\u{0}b"}), "name"),
        (
            json!({"phone": "+14155550199", "email": "not-an-email"}),
            "email",
        ),
        (json!({"phone": "+14155550199", "email": "a@b"}), "email"),
        (
            json!({"phone": "+14155550199", "email": "a b@example.com"}),
            "email",
        ),
        (
            json!({"phone": "+14155550199", "attributes": [1]}),
            "attributes",
        ),
        (
            json!({"phone": "+14155550199", "attributes": {"big": "x".repeat(17_000)}}),
            "attributes",
        ),
        (json!({"phone": "+14155550199", "tags": "vip"}), "tags"),
        (json!({"phone": "+14155550199", "tags": [""]}), "tags[0]"),
        (
            json!({"phone": "+14155550199", "tags": ["ok", "y".repeat(51)]}),
            "tags[1]",
        ),
        (
            json!({"phone": "+14155550199", "tags": (0..51).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = app.post("/api/v1/contacts", &k, body.clone()).await;
        assert_field(s, &v, field);
        let route = format!("/api/v1/contacts/{id}");
        let (s, v) = app.patch(&route, &k, body.clone()).await;
        if field != "phone" || body.get("phone").is_some() {
            assert_eq!(s, 422, "PATCH {body}: {v}");
        }
    }
    // PATCH cannot remove the phone number.
    let route = format!("/api/v1/contacts/{id}");
    let (s, v) = app.patch(&route, &k, json!({"phone": null})).await;
    assert_field(s, &v, "phone");
    // Several errors at once are all reported.
    let req = json!({"phone": "x", "email": "y"});
    let (s, v) = app.post("/api/v1/contacts", &k, req).await;
    assert_field(s, &v, "phone");
    assert_field(s, &v, "email");
    // Nothing was written by any of these.
    let (_, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let (_, v) = app.get(&format!("/api/v1/contacts/{id}"), &k).await;
    assert_eq!(v, c);

    // Bad list queries.
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=00112233445566778899aabbccddeeff", "cursor"),
        ("phone=12", "phone"),
        ("tag=", "tag"),
        ("sort=name", "sort"),
    ] {
        let (s, v) = app.get(&format!("/api/v1/contacts?{q}"), &k).await;
        assert_eq!(s, 422, "{q}: {v}");
        assert_error(s, &v, 422, "validation_failed");
        if field != "sort" {
            assert_field(s, &v, field);
        }
    }
    let route = format!("/api/v1/contacts?q={}", "a".repeat(101));
    let (s, v) = app.get(&route, &k).await;
    assert_field(s, &v, "q");
}

#[tokio::test]
async fn lead_routes_need_their_scopes() {
    let (app, acc, all) = acme_scoped(&["leads:all", "contacts:create"]).await;
    let req = json!({"phone": "+14155550100", "title": "Website form"});
    let l = lead(&app, &all, req).await;
    let id = id_of(&l);
    let (list, one) = ("/api/v1/leads".to_string(), format!("/api/v1/leads/{id}"));
    // The contact exists now: creating another lead for it needs leads:create only.
    let new = json!({"phone": "+14155550100", "title": "t"});
    let (edit, assign) = (json!({"status": "contacted"}), json!({"assignee": "sam"}));
    let routes: Vec<ScopedRoute> = vec![
        ("POST", list.clone(), Some(new), "leads:create", 201),
        ("GET", one.clone(), None, "leads:read", 200),
        ("GET", list, None, "leads:read_all", 200),
        ("PATCH", one.clone(), Some(edit), "leads:update", 200),
        (
            "POST",
            format!("{one}/assign"),
            Some(assign),
            "leads:assign",
            200,
        ),
        ("DELETE", one, None, "leads:delete", 204),
    ];
    let scopes = [
        "leads:create",
        "leads:read",
        "leads:read_all",
        "leads:update",
        "leads:assign",
        "leads:delete",
    ];
    for route in &routes {
        assert_needs_its_scope(&app, &acc.admin, route, &scopes, &["contacts:all"]).await;
        let (method, path, body, scope, ok) = route;
        let k = app.scoped_key(&acc.admin, &[scope]).await;
        let (s, v) = app.send(method, path, &k, body.clone()).await;
        assert_eq!(s, *ok, "{method} {path} with {scope}: {v}");
    }
    // Setting an assignee on create or PATCH is an assignment: it needs leads:assign too.
    let k = app
        .scoped_key(&acc.admin, &["leads:create", "leads:update"])
        .await;
    let req = json!({"phone": "+14155550100", "title": "t", "assignee": "sam"});
    let (s, v) = app.post("/api/v1/leads", &k, req).await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "leads:assign");
    let l2 = lead(&app, &k, json!({"phone": "+14155550100", "title": "t"})).await;
    let route = format!("/api/v1/leads/{}", id_of(&l2));
    let req = json!({"assignee": "sam"});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "leads:assign");
    let k = app
        .scoped_key(&acc.admin, &["leads:update", "leads:assign"])
        .await;
    let req = json!({"assignee": "sam"});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["assignee"], "sam");
    // lead_manager (leads:all, contacts:read) creates leads with inline phones of existing
    // contacts; a new phone would create a contact, which needs contacts:create.
    let spec = json!({"name": "g", "scope_group": "lead_manager"});
    let g = app.create_key(&acc.admin, spec).await;
    let g = g["key"].as_str().expect("key");
    let req = json!({"phone": "+14155550103", "title": "t", "assignee": "kim"});
    let (s, v) = app.post("/api/v1/leads", g, req).await;
    assert_error(s, &v, 403, "insufficient_scope");
    assert_eq!(v["error"]["required_scope"], "contacts:create");
    let req = json!({"phone": "+14155550100", "title": "t", "assignee": "kim"});
    let l3 = lead(&app, g, req).await;
    assert_eq!(l3["contact_phone"], "+14155550100", "{l3}");
    let route = format!(
        "/api/v1/contacts/{}",
        l3["contact_id"].as_str().expect("cid")
    );
    let (s, _) = app.get(&route, g).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn leads_link_to_contacts_and_validate() {
    let (app, _, k) = acme_scoped(&["leads:all", "contacts:all"]).await;
    let c = contact(&app, &k, json!({"phone": "+14155550100", "name": "Ann"})).await;
    let cid = id_of(&c);

    let l = lead(
        &app,
        &k,
        json!({"contact_id": cid, "title": " Roof repair ", "value_cents": 125000, "currency": "usd",
               "source": "website", "notes": "Call after 5pm\nor email", "attributes": {"utm": "x"}}),
    )
    .await;
    assert_eq!(l["contact_id"], cid);
    assert_eq!(l["contact_phone"], "+14155550100");
    assert_eq!(l["title"], "Roof repair");
    assert_eq!(l["status"], "new");
    assert_eq!(l["value_cents"], 125000);
    assert_eq!(l["currency"], "USD");
    assert_eq!(l["assignee"], Value::Null);
    assert_eq!(l["attributes"], json!({"utm": "x"}));
    // An inline phone reuses the existing contact (whatever its formatting)...
    let req = json!({"phone": "+1 (415) 555-0100", "title": "Second"});
    let l2 = lead(&app, &k, req).await;
    assert_eq!(l2["contact_id"], cid);
    // ...or creates one.
    let req = json!({"phone": "0044 20 7946 0958", "title": "New"});
    let l3 = lead(&app, &k, req).await;
    assert_eq!(l3["contact_phone"], "+442079460958");
    let route = format!(
        "/api/v1/contacts/{}",
        l3["contact_id"].as_str().expect("cid")
    );
    let (s, v) = app.get(&route, &k).await;
    assert_eq!(s, 200);
    assert_eq!(v["phone"], "+442079460958");

    // PATCH and assign.
    let lid = id_of(&l);
    let route = format!("/api/v1/leads/{lid}");
    let req = json!({"status": "qualified", "value_cents": null, "notes": null});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "qualified");
    assert_eq!(v["value_cents"], Value::Null);
    assert_eq!(v["currency"], "USD");
    assert_eq!(v["notes"], Value::Null);
    assert_eq!(v["title"], "Roof repair");
    let route = format!("/api/v1/leads/{lid}/assign");
    let req = json!({"assignee": "sam@acme.test"});
    let (s, v) = app.post(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["assignee"], "sam@acme.test");
    let route = format!("/api/v1/leads/{lid}");
    let req = json!({"contact_id": l3["contact_id"]});
    let (s, v) = app.patch(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["contact_phone"], "+442079460958");

    // Filters.
    for (q, n) in [
        ("status=qualified", 1),
        ("status=new", 2),
        ("assignee=sam%40acme.test", 1),
        ("source=website", 1),
        (&format!("contact_id={cid}") as &str, 1),
        ("phone=%2B442079460958", 2),
        ("q=roof", 1),
        ("q=e", 3),
    ] {
        let (s, v) = app.get(&format!("/api/v1/leads?{q}"), &k).await;
        assert_eq!(s, 200, "{q}: {v}");
        assert_eq!(v["items"].as_array().map(Vec::len), Some(n), "{q}: {v}");
    }
    let route = format!("/api/v1/leads/{lid}/assign");
    let req = json!({"assignee": null});
    let (s, v) = app.post(&route, &k, req).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["assignee"], Value::Null);

    // Bad input.
    let cases = vec![
        (json!({"title": "t"}), "contact_id"),
        (
            json!({"contact_id": cid, "phone": "+14155550100", "title": "t"}),
            "phone",
        ),
        (json!({"contact_id": "nope", "title": "t"}), "contact_id"),
        (
            json!({"contact_id": "00000000-0000-7000-8000-000000000000", "title": "t"}),
            "contact_id",
        ),
        (json!({"phone": "123", "title": "t"}), "phone"),
        (json!({"phone": "+14155550100"}), "title"),
        (json!({"phone": "+14155550100", "title": "  "}), "title"),
        (
            json!({"phone": "+14155550100", "title": "x".repeat(201)}),
            "title",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "status": "hot"}),
            "status",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "value_cents": 10}),
            "currency",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "value_cents": -1, "currency": "USD"}),
            "value_cents",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "value_cents": 12.5, "currency": "USD"}),
            "value_cents",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "value_cents": "100", "currency": "USD"}),
            "value_cents",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "value_cents": 1, "currency": "dollars"}),
            "currency",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "notes": "n".repeat(5001)}),
            "notes",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "source": "s".repeat(101)}),
            "source",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "attributes": "x"}),
            "attributes",
        ),
        (
            json!({"phone": "+14155550100", "title": "t", "owner": "x"}),
            "owner",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = app.post("/api/v1/leads", &k, body.clone()).await;
        assert_field(s, &v, field);
    }
    for (body, field) in [
        (json!({"status": "done"}), "status"),
        (json!({"status": null}), "status"),
        (json!({"title": null}), "title"),
        (json!({"contact_id": null}), "contact_id"),
        (
            json!({"contact_id": "00000000-0000-7000-8000-000000000000"}),
            "contact_id",
        ),
        (json!({"currency": null, "value_cents": 5}), "currency"),
        (json!({"id": "x"}), "id"),
    ] {
        let route = format!("/api/v1/leads/{}", id_of(&l2));
        let (s, v) = app.patch(&route, &k, body).await;
        assert_field(s, &v, field);
    }
    for body in [
        json!({}),
        json!({"assignee": ""}),
        json!({"assignee": 5}),
        json!({"assignee": "a", "x": 1}),
    ] {
        let route = format!("/api/v1/leads/{lid}/assign");
        let (s, v) = app.post(&route, &k, body.clone()).await;
        assert_eq!(s, 422, "{body}: {v}");
        assert_error(s, &v, 422, "validation_failed");
    }
    let (s, v) = send_raw(&app, "POST", "/api/v1/leads", &k, "{oops").await;
    assert_malformed(s, &v);
    for q in [
        "status=hot",
        "limit=0",
        "cursor=abc",
        "contact_id=nope",
        "phone=1",
    ] {
        let (s, v) = app.get(&format!("/api/v1/leads?{q}"), &k).await;
        assert_error(s, &v, 422, "validation_failed");
    }

    // Tenant isolation.
    let other = app.account("Other").await;
    let ko = app.scoped_key(&other.admin, &["leads:all"]).await;
    for (method, path, body) in [
        ("GET", format!("/api/v1/leads/{lid}"), None),
        (
            "PATCH",
            format!("/api/v1/leads/{lid}"),
            Some(json!({"status": "won"})),
        ),
        (
            "POST",
            format!("/api/v1/leads/{lid}/assign"),
            Some(json!({"assignee": "x"})),
        ),
        ("DELETE", format!("/api/v1/leads/{lid}"), None),
    ] {
        let (s, v) = app.send(method, &path, &ko, body).await;
        assert_error(s, &v, 404, "not_found");
    }
    let (_, v) = app.get("/api/v1/leads", &ko).await;
    assert_eq!(v["items"], json!([]));

    // Deleting a contact deletes its leads.
    let (s, _) = app.delete(&format!("/api/v1/contacts/{cid}"), &k).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/api/v1/leads/{}", id_of(&l2)), &k).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn lead_pagination_walks_every_row_once() {
    // Leads with inline phones make their contacts: that needs contacts:create.
    let (app, _, k) = acme_scoped(&["leads:all", "contacts:create"]).await;
    let mut created = Vec::new();
    for i in 0..23u32 {
        let status = if i % 2 == 0 { "won" } else { "lost" };
        let l = lead(&app, &k, json!({"phone": format!("+1415555{:04}", i % 5), "title": format!("L{i}"), "status": status})).await;
        created.push(id_of(&l));
    }
    let (ids, pages) = walk(&app, &k, "/api/v1/leads", 5).await;
    assert_eq!(pages, 5);
    created.reverse();
    assert_eq!(ids, created);
    let (won, _) = walk(&app, &k, "/api/v1/leads?status=won", 3).await;
    assert_eq!(won.len(), 12);
    assert_eq!(won.iter().collect::<HashSet<_>>().len(), 12);
}

#[tokio::test]
async fn oversized_and_non_utf8_bodies() {
    let app = TestApp::spawn_with(&[("API_BODY_LIMIT_BYTES", "4096")]).await;
    let acc = app.account("Acme").await;
    let k = app
        .scoped_key(&acc.admin, &["contacts:all", "leads:all"])
        .await;
    let big = json!({"phone": "+14155550100", "name": "x".repeat(10_000)}).to_string();
    for path in ["/api/v1/contacts", "/api/v1/leads"] {
        let (s, v) = send_raw(&app, "POST", path, &k, &big).await;
        assert_error(s, &v, 413, "payload_too_large");
    }
    let raw = b"{\"phone\": \"+14155550100\", \"name\": \"\xff\xfe\"}";
    let (status, v) = app
        .send_raw_json("POST", "/api/v1/contacts", &k, raw.as_slice())
        .await;
    assert_error(status, &v, 422, "validation_failed");
    let (_, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(v["items"], json!([]));
}

#[tokio::test]
async fn concurrent_inline_phones_make_one_contact() {
    let (app, _, k) = acme_scoped(&["leads:all", "contacts:all"]).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = app.client.clone();
        let url = app.url("/api/v1/leads");
        let k = k.clone();
        // The same number, written in different ways.
        let phone = ["+1 415 555 0100", "0014155550100", "+14155550100"][i % 3];
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(k)
                .json(&json!({"phone": phone, "title": format!("lead {i}")}))
                .send()
                .await
                .expect("send");
            status_json(r).await
        }));
    }
    let mut contacts = HashSet::new();
    for t in tasks {
        let (s, v) = t.await.expect("task");
        assert_eq!(s, 201, "{v}");
        contacts.insert(v["contact_id"].as_str().expect("cid").to_string());
    }
    assert_eq!(contacts.len(), 1, "one contact per phone per account");
    let (_, v) = app.get("/api/v1/contacts", &k).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let (ids, _) = walk(&app, &k, "/api/v1/leads", 100).await;
    assert_eq!(ids.len(), 12);
    // Concurrent creates of one phone: exactly one wins, the rest are 409.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/v1/contacts");
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(k)
                .json(&json!({"phone": "+14155550199"}))
                .send()
                .await;
            r.expect("send").status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task"));
    }
    codes.sort_unstable();
    assert_eq!(codes, [201, 409, 409, 409, 409, 409, 409, 409]);
}
