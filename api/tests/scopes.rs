//! `Authorized<S>`: a key holds the exact scope or its resource's `:all`; else 403 naming it.

mod support;

use axum::routing::get;
use axum::Router;
use ezpulze_api::auth::{scope, Authorized};
use serde_json::json;
use support::{acme, assert_error};

async fn contacts_read(_: Authorized<scope::ContactsRead>) -> &'static str {
    "ok"
}

#[tokio::test]
async fn insufficient_scope_names_the_required_scope() {
    let (app, acc) = acme().await;
    let config = ezpulze_common::Config::from_source(&app.settings).expect("config");
    let cancel = tokio_util::sync::CancellationToken::new();
    let state = ezpulze_api::build_state(config, &cancel)
        .await
        .expect("state");
    let router = Router::new()
        .route("/api/v1/contacts/x", get(contacts_read))
        .layer(ezpulze_api::auth::ApiAuthLayer::new(state.clone()))
        .layer(axum::middleware::from_fn(
            ezpulze_api::middleware::request_id,
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let url = format!("http://{addr}/api/v1/contacts/x");
    let client = reqwest::Client::new();
    for (scopes, want) in [
        (json!(["contacts:read"]), 200),
        (json!(["contacts:all"]), 200),
        (json!(["contacts:read_all"]), 403),
        (json!(["leads:all", "broadcast:all"]), 403),
    ] {
        let spec = json!({"name": "k", "scopes": scopes});
        let k = app.create_key(&acc.admin, spec).await;
        let r = client
            .get(&url)
            .bearer_auth(k["key"].as_str().expect("key"))
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        assert_eq!(status, want, "{scopes}");
        if want == 403 {
            let v: serde_json::Value = r.json().await.expect("json");
            assert_error(status, &v, 403, "insufficient_scope");
            assert_eq!(v["error"]["required_scope"], "contacts:read");
        }
    }
    cancel.cancel();
}
