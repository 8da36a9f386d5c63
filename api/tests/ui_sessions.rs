//! The web UI's session cookie: CSRF rules for cookie-authenticated admin requests, the
//! `__Host-` cookie over https, and sessions ended by signing out or rotating the admin token.

mod support;

use serde_json::{json, Value};
use support::{assert_error, TestApp};

const UI: &str = "http://ezpulze.test";

async fn app_at(base: &str) -> TestApp {
    TestApp::spawn_with(&[("PUBLIC_BASE_URL", base)]).await
}

/// Signs in with `admin`; returns the `Set-Cookie` value and the `name=value` pair to send.
async fn sign_in(app: &TestApp, admin: &str) -> (String, String) {
    let r = app
        .request("POST", "/ui/session", "", Some(json!({"token": admin})))
        .await;
    assert_eq!(r.status(), 204);
    let set = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii cookie")
        .to_string();
    let pair = set.split(';').next().expect("name=value").to_string();
    (set, pair)
}

/// A request with the session cookie and extra headers; returns status and JSON body.
async fn with_cookie(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let mut all = vec![("cookie", cookie)];
    all.extend_from_slice(headers);
    let r = app
        .request_with(method, path, "", &all, body.map(|b| b.as_bytes().to_vec()))
        .await;
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const KEY: &str = r#"{"name": "from the UI", "scope_group": "full_access"}"#;
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn cookie_requests_need_the_ui_origin_and_a_json_body() {
    let app = app_at(UI).await;
    let acc = app.account("Acme").await;
    let (_, cookie) = sign_in(&app, &acc.admin).await;
    let origin = ("origin", UI);

    // Reads need nothing more than the cookie.
    let (s, _) = with_cookie(&app, "GET", "/admin/v1/api-keys", &cookie, &[], None).await;
    assert_eq!(s, 200);

    // A post without Origin, from another origin, or as a form or text/plain is refused.
    for headers in [
        vec![JSON],
        vec![JSON, ("origin", "http://evil.test")],
        vec![JSON, ("origin", "null")],
        vec![JSON, ("origin", "https://ezpulze.test")],
        vec![origin, ("content-type", "text/plain")],
        vec![
            origin,
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        vec![origin],
    ] {
        let (s, v) = with_cookie(
            &app,
            "POST",
            "/admin/v1/api-keys",
            &cookie,
            &headers,
            Some(KEY),
        )
        .await;
        assert_error(s, &v, 403, "csrf_rejected");
    }
    let (s, v) = app.get("/admin/v1/api-keys", &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(v["total"], 0, "nothing was made from another site: {v}");

    // From the UI's origin with JSON it works; bodiless unsafe requests need the Origin.
    let (s, v) = with_cookie(
        &app,
        "POST",
        "/admin/v1/api-keys",
        &cookie,
        &[origin, JSON],
        Some(KEY),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let key_id = v["id"].as_str().expect("id").to_string();
    let regenerate = format!("/admin/v1/api-keys/{key_id}/regenerate");
    let (s, v) = with_cookie(&app, "POST", &regenerate, &cookie, &[], None).await;
    assert_error(s, &v, 403, "csrf_rejected");
    let (s, _) = with_cookie(&app, "POST", &regenerate, &cookie, &[origin], None).await;
    assert_eq!(s, 200);
    let key = format!("/admin/v1/api-keys/{key_id}");
    let (s, v) = with_cookie(
        &app,
        "DELETE",
        &key,
        &cookie,
        &[("origin", "http://evil.test")],
        None,
    )
    .await;
    assert_error(s, &v, 403, "csrf_rejected");
    let (s, _) = with_cookie(&app, "DELETE", &key, &cookie, &[origin], None).await;
    assert_eq!(s, 204);

    // The bearer admin token is not held to these rules.
    let (s, _) = app
        .send_raw_json("POST", "/admin/v1/api-keys", &acc.admin, KEY)
        .await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_secure() {
    let app = app_at("https://ezpulze.test/").await;
    let acc = app.account("Acme").await;
    let (set, cookie) = sign_in(&app, &acc.admin).await;
    assert!(cookie.starts_with("__Host-ezp_session="), "{set}");
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    for want in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attributes.contains(&want), "{want} in {set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    let origin = ("origin", "https://ezpulze.test");
    let (s, v) = with_cookie(
        &app,
        "POST",
        "/admin/v1/api-keys",
        &cookie,
        &[origin, JSON],
        Some(KEY),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // The same id under the unprefixed name (which any host could set) is not a session.
    let sid = cookie.split_once('=').expect("pair").1;
    let plain = format!("ezp_session={sid}");
    let (s, v) = with_cookie(&app, "GET", "/admin/v1/api-keys", &plain, &[], None).await;
    assert_error(s, &v, 401, "missing_api_key");
    // Signing out clears the prefixed cookie.
    let r = app
        .request_with(
            "DELETE",
            "/ui/session",
            "",
            &[("cookie", &cookie), origin],
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let cleared = r.headers()["set-cookie"].to_str().expect("ascii");
    assert!(cleared.starts_with("__Host-ezp_session=;"), "{cleared}");
    assert!(
        cleared.contains("Secure") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn signing_out_ends_every_session_of_the_account() {
    let app = app_at(UI).await;
    let acme = app.account("Acme").await;
    let other = app.account("Other").await;
    let (_, first) = sign_in(&app, &acme.admin).await;
    let (_, second) = sign_in(&app, &acme.admin).await;
    let (_, others) = sign_in(&app, &other.admin).await;
    for cookie in [&first, &second, &others] {
        let (s, _) = with_cookie(&app, "GET", "/admin/v1/api-keys", cookie, &[], None).await;
        assert_eq!(s, 200);
    }
    // Signing out from another site is refused (and ends nothing).
    let (s, v) = with_cookie(
        &app,
        "DELETE",
        "/ui/session",
        &first,
        &[("origin", "http://evil.test")],
        None,
    )
    .await;
    assert_error(s, &v, 403, "csrf_rejected");
    let (s, _) = with_cookie(&app, "GET", "/admin/v1/api-keys", &second, &[], None).await;
    assert_eq!(s, 200);

    let (s, _) = with_cookie(
        &app,
        "DELETE",
        "/ui/session",
        &first,
        &[("origin", UI)],
        None,
    )
    .await;
    assert_eq!(s, 204);
    for cookie in [&first, &second] {
        let (s, v) = with_cookie(&app, "GET", "/admin/v1/api-keys", cookie, &[], None).await;
        assert_error(s, &v, 401, "invalid_api_key");
    }
    // Another account's session and the admin token itself go on working.
    let (s, _) = with_cookie(&app, "GET", "/admin/v1/api-keys", &others, &[], None).await;
    assert_eq!(s, 200);
    assert_eq!(app.get("/admin/v1/api-keys", &acme.admin).await.0, 200);
    // Signing out again (the session is gone) just clears the cookie.
    let (s, _) = with_cookie(&app, "DELETE", "/ui/session", &first, &[], None).await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn rotating_the_admin_token_shows_the_new_one_once_and_ends_the_old_one_and_every_session() {
    let app = app_at(UI).await;
    let acme = app.account("Acme").await;
    let other = app.account("Other").await;
    let (_, first) = sign_in(&app, &acme.admin).await;
    let (_, second) = sign_in(&app, &acme.admin).await;
    let (_, others) = sign_in(&app, &other.admin).await;

    let r = app
        .request("POST", "/admin/v1/admin-token/rotate", &acme.admin, None)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["account_id"], acme.id.as_str(), "{v}");
    let new = v["admin_token"].as_str().expect("token").to_string();
    assert!(new.starts_with("adm_") && new != acme.admin, "{v}");

    // The old token stops at once, on the admin API, /api/v1 and sign-in.
    let (s, v) = app.get("/admin/v1/api-keys", &acme.admin).await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app.get("/api/v1/me", &acme.admin).await;
    assert_error(s, &v, 401, "invalid_api_key");
    let (s, v) = app
        .post("/ui/session", "", json!({"token": acme.admin}))
        .await;
    assert_error(s, &v, 401, "invalid_api_key");
    // Every session of the account ended; another account's did not.
    for cookie in [&first, &second] {
        let (s, v) = with_cookie(&app, "GET", "/admin/v1/api-keys", cookie, &[], None).await;
        assert_error(s, &v, 401, "invalid_api_key");
    }
    let (s, _) = with_cookie(&app, "GET", "/admin/v1/api-keys", &others, &[], None).await;
    assert_eq!(s, 200);
    assert_eq!(app.get("/admin/v1/api-keys", &other.admin).await.0, 200);
    // The new token works, and the UI can rotate from its session (which then ends too),
    // but not from another site.
    let (s, me) = app.get("/api/v1/me", &new).await;
    assert_eq!(s, 200);
    assert_eq!(me["account_id"], acme.id.as_str());
    let (_, session) = sign_in(&app, &new).await;
    let rotate = "/admin/v1/admin-token/rotate";
    let (s, v) = with_cookie(&app, "POST", rotate, &session, &[], None).await;
    assert_error(s, &v, 403, "csrf_rejected");
    let (s, v) = with_cookie(&app, "POST", rotate, &session, &[("origin", UI)], None).await;
    assert_eq!(s, 200, "{v}");
    let newest = v["admin_token"].as_str().expect("token");
    let (s, _) = with_cookie(&app, "GET", "/admin/v1/api-keys", &session, &[], None).await;
    assert_eq!(s, 401);
    assert_eq!(app.get("/admin/v1/api-keys", &new).await.0, 401);
    assert_eq!(app.get("/admin/v1/api-keys", newest).await.0, 200);
    // Without credentials: 401.
    let (s, v) = app.post(rotate, "", json!({})).await;
    assert_error(s, &v, 401, "missing_api_key");
}
