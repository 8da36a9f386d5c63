//! The router: admin API, public API, UI session, operations endpoints.

pub mod accounts;
pub mod api_keys;
pub mod broadcasts;
pub mod contacts;
pub mod dispatches;
pub mod flows;
pub mod key_docs;
pub mod leads;
pub mod meta;
pub mod send;
pub mod session;
pub mod templates;
pub mod webhooks;
pub mod whatsapp;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::auth;
use crate::extract::BodyLimit;
use crate::middleware as mw;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit_bytes;
    let admin = Router::new()
        .route("/accounts", post(accounts::create))
        .route("/scopes", get(meta::scope_catalogue))
        .route("/api-keys", post(api_keys::create).get(api_keys::list))
        .route(
            "/api-keys/{id}",
            get(api_keys::get)
                .patch(api_keys::patch)
                .delete(api_keys::delete),
        )
        .route("/api-keys/{id}/regenerate", post(api_keys::regenerate))
        .route("/api-keys/{id}/usage", get(api_keys::usage))
        .route("/api-keys/{id}/docs", get(key_docs::docs))
        .route("/whatsapp", get(whatsapp::get).put(whatsapp::put))
        .merge(broadcasts::admin_routes())
        .merge(flows::admin_routes());

    // The public API is registered with full paths and merged, not nested: a nested router
    // rebuilds every request's URI without its prefix, which was ~3% of an authenticated
    // request's CPU (`make bench-auth`).
    let public = Router::new()
        .route("/api/v1/me", get(meta::me))
        .route("/api/v1/ping", get(meta::ping))
        .merge(templates::routes())
        .merge(broadcasts::routes())
        .merge(send::routes())
        .merge(dispatches::routes())
        .merge(contacts::routes())
        .merge(leads::routes())
        .merge(flows::routes())
        .layer(auth::ApiAuthLayer::new(state.clone()));

    Router::new()
        .nest("/admin/v1", admin)
        .merge(public)
        .merge(crate::ui::routes())
        .route(
            "/ui/session",
            post(session::sign_in).delete(session::sign_out),
        )
        .route(
            "/webhooks/whatsapp",
            get(webhooks::verify).post(webhooks::receive),
        )
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .route("/ping", get(meta::ping))
        .route_layer(axum::middleware::from_fn(mw::http_metrics))
        .fallback(auth::not_found_after_auth)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(axum::middleware::from_fn(mw::request_id))
        .with_state(state)
}
