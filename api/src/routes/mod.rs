//! The router: admin API, public API, UI session, operations endpoints.

pub mod accounts;
pub mod admin_token;
pub mod api_keys;
pub mod broadcasts;
pub mod contacts;
pub mod currency;
pub mod dispatches;
pub mod flows;
pub mod key_docs;
pub mod leads;
pub mod messaging_limit;
pub mod meta;
pub mod number_limits;
pub mod openapi;
pub mod owned;
pub mod send;
pub mod session;
pub mod suppressions;
pub mod templates;
pub mod webhook_endpoints;
pub mod webhooks;
pub mod whatsapp;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth;
use crate::extract::BodyLimit;
use crate::middleware as mw;
use crate::state::AppState;
use openapi::{single, tagged, Audience};

/// Every route the api serves, each registered once with its annotated handler: the router
/// and the OpenAPI document are both built from these three sub-routers.
struct Api {
    /// Served under `/admin/v1` (paths relative to it).
    admin: OpenApiRouter<AppState>,
    /// `/api/v1`, behind `auth::ApiAuthLayer`.
    public: OpenApiRouter<AppState>,
    /// Web UI, session, webhooks and operations endpoints.
    root: OpenApiRouter<AppState>,
}

fn api() -> Api {
    let admin = OpenApiRouter::default()
        .merge(tagged("Accounts", single(routes!(accounts::create))))
        .merge(tagged("Accounts", single(routes!(admin_token::rotate))))
        .merge(tagged("API keys", api_keys::admin_routes()))
        .merge(tagged(
            "WhatsApp",
            single(routes!(whatsapp::get, whatsapp::put)),
        ))
        .merge(tagged(
            "WhatsApp",
            single(routes!(messaging_limit::get_admin, messaging_limit::put)),
        ))
        .merge(tagged("Broadcasts", broadcasts::admin_routes()))
        .merge(tagged("Chatbot flows", flows::admin_routes()))
        .merge(tagged("Webhooks", webhook_endpoints::admin_routes()));
    let public = OpenApiRouter::default()
        .merge(tagged("Meta", single(routes!(meta::me))))
        .merge(tagged("Meta", single(routes!(meta::ping_authenticated))))
        .merge(tagged("Templates", templates::routes()))
        .merge(tagged("Broadcasts", broadcasts::routes()))
        .merge(tagged("Broadcasts", send::routes()))
        .merge(tagged("Dispatches", dispatches::routes()))
        .merge(tagged("WhatsApp", single(routes!(number_limits::get))))
        .merge(tagged("WhatsApp", single(routes!(messaging_limit::get))))
        .merge(tagged("Contacts", contacts::routes()))
        .merge(tagged("Suppressions", suppressions::routes()))
        .merge(tagged("Leads", leads::routes()))
        .merge(tagged("Chatbot flows", flows::routes()))
        .merge(tagged("Webhooks", webhook_endpoints::routes()));
    let root = OpenApiRouter::default()
        .merge(crate::ui::routes())
        .merge(tagged(
            "Web UI",
            single(routes!(session::sign_in, session::sign_out)),
        ))
        .merge(tagged(
            "WhatsApp",
            single(routes!(webhooks::verify, webhooks::receive))
                // Meta's bodies are a few KB: a smaller limit than the API's keeps what an
                // unauthenticated sender can make the api buffer small.
                .layer(DefaultBodyLimit::max(webhooks::BODY_LIMIT_BYTES))
                .layer(axum::Extension(BodyLimit(webhooks::BODY_LIMIT_BYTES))),
        ))
        .merge(tagged("Operations", meta::operations_routes()));
    Api {
        admin,
        public,
        root,
    }
}

/// The OpenAPI document of [`api`] (served from [`openapi::document`], built once).
fn document() -> Value {
    let Api {
        admin,
        public,
        root,
    } = api();
    let mut paths = openapi::paths_of(admin.into_openapi(), "/admin/v1", Audience::Admins);
    paths.extend(openapi::paths_of(
        public.into_openapi(),
        "",
        Audience::Integrators,
    ));
    paths.extend(openapi::paths_of(root.into_openapi(), "", Audience::Anyone));
    openapi::assemble(paths)
}

pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit_bytes;
    // Built now, not on the first request for it.
    openapi::document();
    let Api {
        admin,
        public,
        root,
    } = api();
    let (admin, _) = admin.split_for_parts();
    // The public API is registered with full paths and merged, not nested: a nested router
    // rebuilds every request's URI without its prefix, which was ~3% of an authenticated
    // request's CPU (`make bench-auth`).
    let (public, _) = public.split_for_parts();
    let public = public.layer(auth::ApiAuthLayer::new(state.clone()));
    let (root, _) = root.split_for_parts();

    Router::new()
        .nest("/admin/v1", admin)
        .merge(public)
        .merge(root)
        .route_layer(axum::middleware::from_fn(mw::http_metrics))
        .fallback(auth::not_found_after_auth)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::Extension(BodyLimit(limit)))
        .layer(axum::middleware::from_fn_with_state(
            mw::Bounds::new(
                state.config().api_max_concurrent_requests,
                state.config().api_request_timeout,
            ),
            mw::bounded,
        ))
        .layer(axum::middleware::from_fn(mw::request_id))
        // No response is ever to be sniffed into another type (the verification challenge
        // is echoed as text/plain).
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            axum::http::HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}
