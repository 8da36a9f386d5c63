//! Test harness: the shared test kit (the real API on port 0 with its own Postgres database
//! and Redis key prefix, its typed client and fixtures).
#![allow(dead_code, unused_imports)]

pub use ezpulze_testkit::app::{
    assert_error, id_of, recipients, status_json, strs, Account, Sender, TestApp, ROOT,
};
pub use ezpulze_testkit::{pg_server, redis_url, templates, wait_until, DEADLINE};

use serde_json::Value;

/// Asserts a 422 `validation_failed` error body; returns its field details.
pub fn validation_details(status: u16, body: &Value) -> &[Value] {
    assert_error(status, body, 422, "validation_failed");
    body["error"]["details"].as_array().expect("details")
}

/// A fresh API with an account "Acme".
pub async fn acme() -> (TestApp, Account) {
    let app = TestApp::spawn().await;
    let acc = app.account("Acme").await;
    (app, acc)
}

/// A fresh API, an account "Acme" and a key with exactly `scopes` (no hourly limit).
pub async fn acme_scoped(scopes: &[&str]) -> (TestApp, Account, String) {
    let (app, acc) = acme().await;
    let key = app.scoped_key(&acc.admin, scopes).await;
    (app, acc, key)
}

/// A fresh API, an account "Acme" and a key made from `body`; returns the key's value.
pub async fn acme_key(body: Value) -> (TestApp, Account, String) {
    let (app, acc) = acme().await;
    let (key, _) = app.key(&acc.admin, body).await;
    (app, acc, key)
}
