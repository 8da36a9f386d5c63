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
pub mod openapi;
pub mod send;
pub mod session;
pub mod templates;
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
use openapi::Audience;

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
        .routes(routes!(accounts::create))
        .routes(routes!(meta::scope_catalogue))
        .routes(routes!(api_keys::create, api_keys::list))
        .routes(routes!(api_keys::get, api_keys::patch, api_keys::delete))
        .routes(routes!(api_keys::regenerate))
        .routes(routes!(api_keys::usage))
        .routes(routes!(key_docs::docs))
        .routes(routes!(whatsapp::get, whatsapp::put))
        .merge(broadcasts::admin_routes())
        .merge(flows::admin_routes());
    let public = OpenApiRouter::default()
        .routes(routes!(meta::me))
        .routes(routes!(meta::ping_authenticated))
        .merge(templates::routes())
        .merge(broadcasts::routes())
        .merge(send::routes())
        .merge(dispatches::routes())
        .merge(contacts::routes())
        .merge(leads::routes())
        .merge(flows::routes());
    let root = OpenApiRouter::default()
        .merge(crate::ui::routes())
        .routes(routes!(session::sign_in, session::sign_out))
        .routes(routes!(webhooks::verify, webhooks::receive))
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::readyz))
        .routes(routes!(meta::metrics))
        .routes(routes!(meta::openapi))
        .routes(routes!(meta::ping));
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
        .layer(axum::middleware::from_fn(mw::request_id))
        .with_state(state)
}
