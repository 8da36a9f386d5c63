//! The real API in-process on port 0, on its own database and Redis prefix, with a typed
//! client and fixtures made through the HTTP API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ezpulze_common::Config;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use crate::ROOT;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub db_url: String,
    pub prefix: String,
    pub settings: HashMap<String, String>,
    db: PgPool,
    cancel: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// An account and its admin token.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub admin: String,
}

/// What sends a broadcast: an account, a full-access key without hourly limit, a template
/// and a broadcast of it, all made through the API.
#[derive(Debug, Clone)]
pub struct Sender {
    pub account: Account,
    pub key: String,
    pub key_id: String,
    pub template_id: String,
    pub broadcast_id: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A fresh database and prefix, with extra settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        // The API applies the migrations at start-up.
        let (name, url) = crate::db::create().await;
        let settings = crate::settings()
            .database_url(&url)
            .redis_prefix(&name)
            .extend(extra);
        Self::start(settings.into_map()).await
    }

    /// [`TestApp::spawn_with`] with both Graph API bases (live and test) at `graph`, e.g. the
    /// simulator's URL.
    pub async fn spawn_against(graph: &str, extra: &[(&str, &str)]) -> TestApp {
        let mut all = vec![("GRAPH_API_BASE", graph), ("TEST_GRAPH_API_BASE", graph)];
        all.extend_from_slice(extra);
        Self::spawn_with(&all).await
    }

    /// Another API process on the same database and Redis prefix (a second replica).
    pub async fn replica(&self) -> TestApp {
        Self::start(self.settings.clone()).await
    }

    /// A dispatch of `n` recipients through `sender` whose messages are `accepted` with the
    /// wamids `wamid.0`, `wamid.1`, ... in recipient order, as a worker would leave them (no
    /// worker runs); returns the dispatch and its messages in that order.
    pub async fn accepted_dispatch(
        &self,
        sender: &Sender,
        n: usize,
    ) -> (uuid::Uuid, Vec<uuid::Uuid>) {
        let dispatch: uuid::Uuid = self
            .dispatch(sender, recipients(n, 0), None)
            .await
            .parse()
            .expect("dispatch id");
        let messages: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id")
                .bind(dispatch)
                .fetch_all(&self.db)
                .await
                .expect("messages");
        sqlx::query(
            "UPDATE messages m SET status = 'accepted', wamid = 'wamid.' || (u.i - 1)
               FROM UNNEST($1::uuid[]) WITH ORDINALITY AS u(id, i) WHERE m.id = u.id",
        )
        .bind(&messages)
        .execute(&self.db)
        .await
        .expect("accepted");
        (dispatch, messages)
    }

    /// [`TestApp::replica`] with some settings changed.
    pub async fn replica_with(&self, extra: &[(&str, &str)]) -> TestApp {
        let mut settings = self.settings.clone();
        for (k, v) in extra {
            settings.insert((*k).to_string(), (*v).to_string());
        }
        Self::start(settings).await
    }

    /// The API on these settings (e.g. a database and prefix another harness made).
    pub async fn start(settings: HashMap<String, String>) -> TestApp {
        let config = Config::from_source(&settings).expect("test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let res = ezpulze_api::run(config, listener, cancel).await;
                let _ = tx.send(());
                if let Err(e) = res {
                    panic!("api stopped: {e:#}");
                }
            });
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let db_url = settings
            .get("DATABASE_URL")
            .cloned()
            .expect("DATABASE_URL in the test settings");
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect_lazy(&db_url)
            .expect("test database URL");
        let base = format!("http://{addr}");
        let app = TestApp {
            addr,
            base: base.clone(),
            client,
            db_url,
            prefix: settings
                .get("REDIS_PREFIX")
                .cloned()
                .expect("REDIS_PREFIX in the test settings"),
            settings,
            db,
            cancel,
        };
        for _ in 0..400 {
            if let Ok(r) = app.client.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    return app;
                }
            }
            if rx.try_recv().is_ok() {
                panic!("api exited during start-up");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("api did not become ready");
    }

    /// The typed configuration this API runs with (for a worker or scheduler beside it).
    pub fn config(&self) -> Config {
        Config::from_source(&self.settings).expect("test config")
    }

    /// The send jobs this API pushes (its lanes, and the legacy stream).
    pub async fn send_queue(&self) -> crate::send_jobs::SendJobs {
        crate::send_jobs::SendJobs::connect(&self.config(), Some(self.pool().await)).await
    }

    /// Stops the API (as its process would on a shutdown signal).
    pub fn stop(&self) {
        self.cancel.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A pool on the API's database.
    pub async fn pool(&self) -> PgPool {
        self.db.clone()
    }

    pub async fn account(&self, name: &str) -> Account {
        let v = self
            .expect_status(
                "POST",
                "/admin/v1/accounts",
                ROOT,
                json!({"name": name}),
                201,
            )
            .await;
        Account {
            id: v["id"].as_str().expect("id").to_string(),
            admin: v["admin_token"].as_str().expect("token").to_string(),
        }
    }

    /// POST /admin/v1/api-keys, asserting 201; returns the key object (with "key").
    pub async fn create_key(&self, admin: &str, body: Value) -> Value {
        self.expect_status("POST", "/admin/v1/api-keys", admin, body, 201)
            .await
    }

    /// POST /admin/v1/api-keys, asserting 201; returns the key's value and id.
    pub async fn key(&self, admin: &str, body: Value) -> (String, String) {
        let k = self.create_key(admin, body).await;
        (
            k["key"].as_str().expect("key").to_string(),
            k["id"].as_str().expect("id").to_string(),
        )
    }

    /// A key with exactly `scopes` and no hourly limit; returns its value.
    pub async fn scoped_key(&self, admin: &str, scopes: &[&str]) -> String {
        let body = json!({"name": "k", "scopes": scopes, "rate_limit_per_hour": null});
        self.key(admin, body).await.0
    }

    /// POST /api/v1/templates, asserting 201; returns the template.
    pub async fn create_template(&self, bearer: &str, template: Value) -> Value {
        self.expect_status("POST", "/api/v1/templates", bearer, template, 201)
            .await
    }

    /// POST /api/v1/webhook-endpoints, asserting 201; returns the endpoint with its secret.
    pub async fn webhook_endpoint(&self, bearer: &str, body: Value) -> Value {
        self.expect_status("POST", "/api/v1/webhook-endpoints", bearer, body, 201)
            .await
    }

    /// POST /api/v1/broadcasts of a template with default variables, asserting 201.
    pub async fn create_broadcast(
        &self,
        bearer: &str,
        name: &str,
        template_id: &str,
        defaults: Value,
    ) -> Value {
        let mut body = json!({"name": name, "template_id": template_id});
        if !defaults.is_null() {
            body["variables"] = defaults;
        }
        self.expect_status("POST", "/api/v1/broadcasts", bearer, body, 201)
            .await
    }

    /// POST /api/v1/broadcasts/{id}/send, asserting 202; returns the answer.
    pub async fn send_broadcast(&self, bearer: &str, broadcast_id: &str, body: Value) -> Value {
        let path = format!("/api/v1/broadcasts/{broadcast_id}/send");
        self.expect_status("POST", &path, bearer, body, 202).await
    }

    /// A new account "Acme" with a full-access key without hourly limit, `template` and a
    /// broadcast "promo" of it with `defaults`.
    pub async fn sender(&self, template: Value, defaults: Value) -> Sender {
        let account = self.account("Acme").await;
        self.sender_in(account, template, defaults).await
    }

    /// [`TestApp::sender`] in an account made already.
    pub async fn sender_in(&self, account: Account, template: Value, defaults: Value) -> Sender {
        let (key, key_id) = self
            .key(
                &account.admin,
                json!({"name": "sender", "scope_group": "full_access", "rate_limit_per_hour": null}),
            )
            .await;
        let t = self.create_template(&key, template).await;
        let template_id = t["id"].as_str().expect("template id").to_string();
        let b = self
            .create_broadcast(&key, "promo", &template_id, defaults)
            .await;
        Sender {
            account,
            key,
            key_id,
            template_id,
            broadcast_id: b["id"].as_str().expect("broadcast id").to_string(),
        }
    }

    /// Sends `recipients` through `sender`'s broadcast, now or at `scheduled_at` (RFC 3339);
    /// asserts every recipient was accepted and returns the dispatch id.
    pub async fn dispatch(
        &self,
        sender: &Sender,
        recipients: Vec<Value>,
        scheduled_at: Option<&str>,
    ) -> String {
        let n = recipients.len();
        let mut body = json!({"recipients": recipients});
        if let Some(at) = scheduled_at {
            body["scheduled_at"] = json!(at);
        }
        let v = self
            .send_broadcast(&sender.key, &sender.broadcast_id, body)
            .await;
        assert_eq!(v["accepted"], n, "{v}");
        v["dispatch_id"].as_str().expect("dispatch id").to_string()
    }

    /// A request asserting its status; returns the JSON body.
    pub async fn expect_status(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Value,
        want: u16,
    ) -> Value {
        let (status, v) = self.send(method, path, bearer, Some(body)).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        v
    }

    /// Any request with a bearer credential; returns status and JSON body (Null if none).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let r = self.request(method, path, bearer, body).await;
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET with a bearer credential (none if empty); returns status and JSON body.
    pub async fn get(&self, path: &str, bearer: &str) -> (u16, Value) {
        self.send("GET", path, bearer, None).await
    }

    /// POST a JSON body; returns status and JSON body.
    pub async fn post(&self, path: &str, bearer: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, bearer, Some(body)).await
    }

    /// PATCH a JSON body; returns status and JSON body.
    pub async fn patch(&self, path: &str, bearer: &str, body: Value) -> (u16, Value) {
        self.send("PATCH", path, bearer, Some(body)).await
    }

    /// DELETE; returns status and JSON body.
    pub async fn delete(&self, path: &str, bearer: &str) -> (u16, Value) {
        self.send("DELETE", path, bearer, None).await
    }

    /// PATCH /admin/v1/api-keys/{id} with `{"active": active}`; returns the status.
    pub async fn set_key_active(&self, admin: &str, id: &str, active: bool) -> u16 {
        let path = format!("/admin/v1/api-keys/{id}");
        self.patch(&path, admin, json!({"active": active})).await.0
    }

    /// GET a page without credentials; returns its text (e.g. `/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let r = self.request("GET", path, "", None).await;
        r.text().await.expect("text")
    }

    /// A request with a bearer credential (none if empty), extra headers and a raw body
    /// (none if `None`); returns the response.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, self.url(path));
        if !bearer.is_empty() {
            rb = rb.bearer_auth(bearer);
        }
        for (name, value) in headers {
            rb = rb.header(*name, *value);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        rb.send().await.expect("send")
    }

    /// A raw body sent as `application/json` (e.g. malformed JSON); returns status and the
    /// JSON body, which must be JSON.
    pub async fn send_raw_json(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value) {
        let headers = [("content-type", "application/json")];
        let r = self
            .request_with(method, path, bearer, &headers, Some(body.into()))
            .await;
        status_json(r).await
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(method, self.url(path));
        if !bearer.is_empty() {
            rb = rb.bearer_auth(bearer);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.expect("request")
    }
}

/// `n` recipients of the text template ([`crate::templates::text`]), numbers from `first`.
pub fn recipients(n: usize, first: usize) -> Vec<Value> {
    (first..first + n)
        .map(|i| json!({"to": format!("+1415{i:07}"), "variables": {"body": ["Ann", i.to_string()]}}))
        .collect()
}

/// The `id` of an API object.
pub fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
}

/// Asserts the contract's error body.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// A response's status and JSON body (which must be JSON).
pub async fn status_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    (status, v)
}

/// The string `field` of every object in the array `v` (objects without it are skipped).
pub fn strs<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .filter_map(|o| o[field].as_str())
        .collect()
}
