//! Test harness: the real API on port 0 with its own Postgres database and Redis key prefix.
#![allow(dead_code)]

pub mod templates;

use std::collections::HashMap;
use std::net::SocketAddr;

use ezpulze_common::{db, Config};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const ROOT: &str = "test-root-token-0123456789";

pub fn pg_server() -> String {
    std::env::var("EZPULZE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("EZPULZE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub db_url: String,
    pub prefix: String,
    pub settings: HashMap<String, String>,
    cancel: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub struct Account {
    pub id: String,
    pub admin: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A fresh database and prefix, with extra settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("ezp_t_{}", &id[..16]);
        db::create_database(&pg_server(), &name)
            .await
            .expect("create test database");
        let mut settings: HashMap<String, String> = HashMap::new();
        settings.insert(
            "DATABASE_URL".into(),
            db::with_database(&pg_server(), &name).expect("url"),
        );
        settings.insert("DATABASE_MAX_CONNECTIONS".into(), "4".into());
        settings.insert("REDIS_URL".into(), redis_url());
        settings.insert("REDIS_PREFIX".into(), format!("ezp_t_{}", &id[..16]));
        settings.insert("EZPULZE_ROOT_TOKEN".into(), ROOT.into());
        settings.insert("LAST_USED_FLUSH_MS".into(), "100".into());
        settings.insert("API_ADDR".into(), "127.0.0.1:0".into());
        for (k, v) in extra {
            settings.insert(k.to_string(), v.to_string());
        }
        Self::start(settings).await
    }

    /// Another API process on the same database and Redis prefix (a second replica).
    pub async fn replica(&self) -> TestApp {
        Self::start(self.settings.clone()).await
    }

    async fn start(settings: HashMap<String, String>) -> TestApp {
        let config = Config::from_source(&settings).expect("test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
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
        let base = format!("http://{addr}");
        let app = TestApp {
            addr,
            base: base.clone(),
            client,
            db_url: settings["DATABASE_URL"].clone(),
            prefix: settings["REDIS_PREFIX"].clone(),
            settings,
            cancel,
        };
        let mut rx = rx;
        for _ in 0..200 {
            if let Ok(r) = app.client.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    return app;
                }
            }
            if rx.try_recv().is_ok() {
                panic!("api exited during start-up");
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("api did not become ready");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn account(&self, name: &str) -> Account {
        let r = self
            .client
            .post(self.url("/admin/v1/accounts"))
            .bearer_auth(ROOT)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("create account");
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        Account {
            id: v["id"].as_str().expect("id").to_string(),
            admin: v["admin_token"].as_str().expect("token").to_string(),
        }
    }

    /// POST /admin/v1/api-keys, asserting 201; returns the key object (with "key").
    pub async fn create_key(&self, admin: &str, body: Value) -> Value {
        let (status, v) = self
            .send("POST", "/admin/v1/api-keys", admin, Some(body))
            .await;
        assert_eq!(status, 201, "{v}");
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

    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.db_url).await.expect("pool")
    }
}

/// Asserts the contract's error body and returns it.
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
